//! The frame buffer pool: every frame travels in a [`Slot`] taken from the pool and given back
//! once the encoder is done with it, so a stream in steady state allocates no frame memory.
//!
//! The pool is bounded: it never holds more than `capacity` free slots (the queue, the workers
//! and the encoder's reorder window can hold no more than that many at once), and its free list
//! is allocated once. With the pool off, every frame gets a fresh slot and drops it after use,
//! which is what the `memory` suite compares against.

use ffmpeg_next as ff;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// One frame on its way through the pipeline.
pub struct Slot {
    /// The frame's id (its presentation time in frame periods).
    pub id: u64,
    /// When the frame was captured (rendered).
    pub captured: Instant,
    /// The picture, YUV420P at the stream's geometry; also where the encoder's input is decoded.
    pub picture: ff::frame::Video,
    /// The picture in the pipeline's transport format (jpeg/png); empty for raw.
    pub encoded: Vec<u8>,
}

/// Counters of the pool.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PoolStats {
    /// Slots handed out from the free list.
    pub hits: u64,
    /// Slots that had to be allocated (the free list was empty, or the pool is off).
    pub misses: u64,
    /// Free slots released under memory pressure.
    pub trimmed: u64,
}

impl PoolStats {
    /// Hits ÷ all takes, 0–1.
    pub fn hit_rate(&self) -> f64 {
        crate::hit_rate(self.hits, self.misses)
    }
}

/// A bounded pool of frame slots.
pub struct BufferPool {
    free: Mutex<Vec<Slot>>,
    enabled: bool,
    capacity: usize,
    width: u32,
    height: u32,
    hits: AtomicU64,
    misses: AtomicU64,
    trimmed: AtomicU64,
}

impl BufferPool {
    /// A pool of at most `capacity` free slots of `width × height` (`enabled = false`: no
    /// reuse at all).
    pub fn new(width: u32, height: u32, capacity: usize, enabled: bool) -> Self {
        BufferPool {
            free: Mutex::new(Vec::with_capacity(if enabled { capacity } else { 0 })),
            enabled,
            capacity,
            width,
            height,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            trimmed: AtomicU64::new(0),
        }
    }

    /// Allocates the pool's slots now, so the first frames find them ready.
    pub fn fill(&self) {
        if !self.enabled {
            return;
        }
        let mut free = self.lock();
        while free.len() < self.capacity {
            free.push(self.allocate());
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Slot>> {
        self.free.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn allocate(&self) -> Slot {
        Slot {
            id: 0,
            captured: Instant::now(),
            picture: ff::frame::Video::new(ff::format::Pixel::YUV420P, self.width, self.height),
            encoded: Vec::new(),
        }
    }

    /// A slot for frame `id`, captured now.
    pub fn take(&self, id: u64) -> Slot {
        let reused = if self.enabled {
            self.lock().pop()
        } else {
            None
        };
        let mut slot = match reused {
            Some(s) => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                s
            }
            None => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                self.allocate()
            }
        };
        slot.id = id;
        slot.captured = Instant::now();
        slot.encoded.clear();
        slot
    }

    /// Gives a slot back (kept if the pool is on and has room).
    pub fn give(&self, slot: Slot) {
        if !self.enabled {
            return;
        }
        let mut free = self.lock();
        if free.len() < self.capacity {
            free.push(slot);
        }
    }

    /// Releases all but `keep` free slots (memory pressure); returns how many went.
    pub fn trim(&self, keep: usize) -> usize {
        let gone: Vec<Slot> = {
            let mut free = self.lock();
            let n = free.len().saturating_sub(keep);
            let at = free.len() - n;
            free.drain(at..).collect()
        };
        self.trimmed.fetch_add(gone.len() as u64, Ordering::Relaxed);
        gone.len()
    }

    /// Free slots now.
    pub fn free(&self) -> usize {
        self.lock().len()
    }

    /// The counters so far.
    pub fn stats(&self) -> PoolStats {
        PoolStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            trimmed: self.trimmed.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_reused_up_to_the_bound() {
        crate::encode::init_ffmpeg().unwrap();
        let pool = BufferPool::new(64, 32, 2, true);
        pool.fill();
        let a = pool.take(1);
        let b = pool.take(2);
        let c = pool.take(3);
        assert_eq!(pool.stats().hits, 2);
        assert_eq!(pool.stats().misses, 1);
        for s in [a, b, c] {
            pool.give(s);
        }
        assert_eq!(pool.free(), 2, "never more than the bound");
        assert_eq!(pool.trim(1), 1);
        assert_eq!(pool.free(), 1);
    }

    #[test]
    fn a_disabled_pool_allocates_every_time() {
        crate::encode::init_ffmpeg().unwrap();
        let pool = BufferPool::new(64, 32, 4, false);
        pool.fill();
        let a = pool.take(1);
        pool.give(a);
        let _b = pool.take(2);
        assert_eq!(pool.stats().misses, 2);
        assert_eq!(pool.stats().hits, 0);
    }
}
