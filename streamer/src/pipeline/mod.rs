//! The frame pipeline between the render stage and the encoder: a bounded queue with a drop
//! policy, a pool of workers that turn frames into the configured format, a buffer pool, and a
//! reorder window that gives the encoder its frames back in order.
//!
//! ```text
//! render ──push──▶ FrameQueue ──pop──▶ worker × poolSize ──▶ Reorder ──▶ encoder
//!   ▲                (maxQueueSize,     (raw / jpeg / png)     (in take-out order)   │
//!   └──────────────── BufferPool ◀────────────────── slot given back ◀──────────────┘
//! ```
//!
//! Every frame that does not reach the encoder is counted under one reason ([`Drops`]):
//! `behind` (the renderer was already past the frame's slot by more than `dropThreshold`),
//! `queue_full` (the queue's policy dropped it), `stale` (it waited in the queue longer than
//! `dropThreshold`), `late` (older than `maxLatency` when the encoder got to it), `pressure`
//! (shed because memory or the queue were past their thresholds). Time- and pressure-based
//! shedding apply to live (realtime) pacing; a throughput run (max pacing) makes the renderer
//! wait for room instead, so it measures how fast the stages go rather than what they shed.

pub mod buffers;
pub mod format;
pub mod queue;
pub mod worker;

use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};

/// Frames dropped, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drops {
    pub behind: u64,
    pub queue_full: u64,
    pub stale: u64,
    pub late: u64,
    pub pressure: u64,
    /// Non-keyframes dropped before sending because the network could not carry them
    /// (adaptive bitrate past `adaptive.bitrate.dropMs`, and until the next keyframe).
    #[serde(default)]
    pub congestion: u64,
}

impl Drops {
    /// All drops.
    pub fn total(&self) -> u64 {
        self.behind + self.queue_full + self.stale + self.late + self.pressure + self.congestion
    }

    /// Drops for falling behind (behind, queue full, stale, late): a machine that cannot keep
    /// up, as opposed to the network (congestion) or memory (pressure).
    pub fn falling_behind(&self) -> u64 {
        self.behind + self.queue_full + self.stale + self.late
    }

    /// `self - earlier`, reason by reason.
    pub fn since(&self, earlier: &Drops) -> Drops {
        Drops {
            behind: self.behind - earlier.behind,
            queue_full: self.queue_full - earlier.queue_full,
            stale: self.stale - earlier.stale,
            late: self.late - earlier.late,
            pressure: self.pressure - earlier.pressure,
            congestion: self.congestion - earlier.congestion,
        }
    }
}

/// Why a frame was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    Behind,
    QueueFull,
    Stale,
    Late,
    Pressure,
    Congestion,
}

/// Drop counters shared by the pipeline's threads.
#[derive(Debug, Default)]
pub struct DropCounters([AtomicU64; 6]);

impl DropCounters {
    /// Counts one drop.
    pub fn count(&self, reason: DropReason) {
        self.0[reason as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// The counts now.
    pub fn snapshot(&self) -> Drops {
        let g = |r: DropReason| self.0[r as usize].load(Ordering::Relaxed);
        Drops {
            behind: g(DropReason::Behind),
            queue_full: g(DropReason::QueueFull),
            stale: g(DropReason::Stale),
            late: g(DropReason::Late),
            pressure: g(DropReason::Pressure),
            congestion: g(DropReason::Congestion),
        }
    }
}

/// What a worker hands the encoder for one take-out number.
pub enum Done<T> {
    /// A frame to encode.
    Frame(T),
    /// A frame the worker dropped (already counted); its slot goes back to the pool.
    Skip(T),
    /// A frame the worker could not convert.
    Failed(T, String),
}

struct ReorderState<T> {
    ring: Vec<Option<Done<T>>>,
    next: u64,
    /// Frames workers have reserved room for (taken or about to be taken from the queue).
    reserved: u64,
    workers_left: usize,
}

/// Puts the workers' results back in take-out order for the encoder. Bounded: a worker whose
/// result is more than `window` ahead of the encoder waits, which cannot deadlock, because the
/// result the encoder waits for always fits.
pub struct Reorder<T> {
    state: Mutex<ReorderState<T>>,
    changed: Condvar,
    window: usize,
}

impl<T> Reorder<T> {
    /// A window of `window` results for `workers` workers.
    pub fn new(window: usize, workers: usize) -> Self {
        let window = window.max(1);
        Reorder {
            state: Mutex::new(ReorderState {
                ring: (0..window).map(|_| None).collect(),
                next: 0,
                reserved: 0,
                workers_left: workers,
            }),
            changed: Condvar::new(),
            window,
        }
    }

    fn lock(&self) -> MutexGuard<'_, ReorderState<T>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until the window has room for one more frame and reserves it; a worker calls this
    /// before taking a frame from the queue, so frames wait in the queue (where they are
    /// counted and dropped by policy), not in the workers' hands.
    pub fn reserve(&self) {
        let mut s = self.lock();
        while s.reserved >= s.next + self.window as u64 {
            s = self.changed.wait(s).unwrap_or_else(|e| e.into_inner());
        }
        s.reserved += 1;
    }

    /// Gives back a reservation that found the queue closed.
    pub fn unreserve(&self) {
        self.lock().reserved -= 1;
        self.changed.notify_all();
    }

    /// Files the result for take-out number `seq`.
    pub fn put(&self, seq: u64, done: Done<T>) {
        let mut s = self.lock();
        while seq >= s.next + self.window as u64 {
            s = self.changed.wait(s).unwrap_or_else(|e| e.into_inner());
        }
        let i = (seq % self.window as u64) as usize;
        s.ring[i] = Some(done);
        drop(s);
        self.changed.notify_all();
    }

    /// A worker has finished (the queue is closed and empty for it).
    pub fn worker_done(&self) {
        self.lock().workers_left -= 1;
        self.changed.notify_all();
    }

    /// The next result in order; `None` when every worker is done and nothing is left.
    pub fn take(&self) -> Option<Done<T>> {
        let mut s = self.lock();
        loop {
            let i = (s.next % self.window as u64) as usize;
            if let Some(done) = s.ring[i].take() {
                s.next += 1;
                drop(s);
                self.changed.notify_all();
                return Some(done);
            }
            if s.workers_left == 0 {
                return None;
            }
            s = self.changed.wait(s).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// Reads this process's resident size without allocating: `/proc/self/statm` opened once and
/// re-read in place.
pub struct RssWatch {
    file: Option<std::fs::File>,
    page: u64,
}

impl Default for RssWatch {
    fn default() -> Self {
        Self::new()
    }
}

impl RssWatch {
    /// Opens the watch (on systems without `/proc` it reads 0).
    pub fn new() -> Self {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        RssWatch {
            file: std::fs::File::open("/proc/self/statm").ok(),
            page: u64::try_from(page).unwrap_or(4096),
        }
    }

    /// Resident bytes now (0 when unknown).
    pub fn rss(&self) -> u64 {
        use std::os::unix::fs::FileExt;
        let Some(f) = &self.file else { return 0 };
        let mut buf = [0u8; 128];
        let Ok(n) = f.read_at(&mut buf, 0) else {
            return 0;
        };
        let mut fields = buf[..n].split(|b| *b == b' ');
        let pages = fields
            .nth(1)
            .and_then(|f| std::str::from_utf8(f).ok())
            .and_then(|f| f.trim().parse::<u64>().ok())
            .unwrap_or(0);
        pages * self.page
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn reorder_gives_results_back_in_order() {
        let r = Arc::new(Reorder::new(2, 2));
        let a = {
            let r = Arc::clone(&r);
            std::thread::spawn(move || {
                for seq in [1u64, 3, 5] {
                    r.put(seq, Done::Frame(seq));
                }
                r.worker_done();
            })
        };
        let b = {
            let r = Arc::clone(&r);
            std::thread::spawn(move || {
                for seq in [0u64, 2, 4] {
                    std::thread::sleep(std::time::Duration::from_millis(2));
                    r.put(seq, Done::Skip(seq));
                }
                r.worker_done();
            })
        };
        let mut got = Vec::new();
        while let Some(d) = r.take() {
            got.push(match d {
                Done::Frame(v) | Done::Skip(v) | Done::Failed(v, _) => v,
            });
        }
        a.join().unwrap();
        b.join().unwrap();
        assert_eq!(got, vec![0, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn rss_is_read() {
        assert!(RssWatch::new().rss() > 1 << 20);
    }
}
