//! A GPU buffer holding entries of any size by key, bounded in bytes, that evicts the least
//! recently used entries to make room: the GPU renderer's texture cache (`textureCache` MB)
//! and geometry cache (`geometryCache` MB) are one each.
//!
//! Entries are placed first-fit in the holes evicted entries leave, else after the last entry;
//! the buffer starts small and doubles up to the bound; when the bytes fit but no hole is large
//! enough the live entries are packed into a fresh buffer. Entries used since the frame began
//! (its *epoch*) are never evicted: a frame whose entries alone exceed the bound is an error.
//!
//! Reusing the space of an entry that a frame still in flight reads is safe: wgpu orders a
//! queue's writes after the work submitted before them.

use lru::LruCache;
use std::hash::Hash;

/// Where an entry lies in the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// Bytes from the buffer's start.
    pub offset: u64,
    pub size: u64,
    /// The caller's data about the entry (a texture's width and height).
    pub meta: [u32; 2],
    /// The frame that last used it.
    epoch: u64,
}

/// The entries of the frame being built do not fit the bound together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full {
    /// Bytes the frame's entries need.
    pub need: u64,
    pub limit: u64,
}

/// Counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ArenaStats {
    pub hits: u64,
    pub misses: u64,
    pub evictions: u64,
    /// Entries dropped for being idle (see [`Arena::expire`]).
    pub expired: u64,
    /// Times the live entries were packed into a fresh buffer.
    pub compactions: u64,
}

/// The arena. See the module's documentation.
pub struct Arena<K: Hash + Eq> {
    buffer: wgpu::Buffer,
    capacity: u64,
    limit: u64,
    entries: LruCache<K, Slot>,
    /// Bytes of live entries.
    used: u64,
    /// The end of the last entry.
    end: u64,
    /// Free ranges below `end`, (offset, size), sorted and merged.
    holes: Vec<(u64, u64)>,
    /// Bumped whenever `buffer` is replaced (bind groups must be rebuilt).
    generation: u64,
    stats: ArenaStats,
}

/// A storage buffer (the shaders read the entries) that copies can fill and read.
fn make(device: &wgpu::Device, size: u64) -> wgpu::Buffer {
    device.create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size,
        usage: wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_DST
            | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    })
}

impl<K: Hash + Eq> Arena<K> {
    /// An arena of at most `limit` bytes (a multiple of 4), starting at `start` bytes.
    pub fn new(device: &wgpu::Device, start: u64, limit: u64) -> Self {
        let capacity = start.min(limit).max(4);
        Arena {
            buffer: make(device, capacity),
            capacity,
            limit,
            entries: LruCache::unbounded(),
            used: 0,
            end: 0,
            holes: Vec::new(),
            generation: 0,
            stats: ArenaStats::default(),
        }
    }

    pub fn buffer(&self) -> &wgpu::Buffer {
        &self.buffer
    }

    /// Bytes allocated on the GPU.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn stats(&self) -> ArenaStats {
        self.stats
    }

    /// The entry `key`, marked as used by frame `epoch` (a hit), or `None` (a miss).
    pub fn get(&mut self, key: &K, epoch: u64) -> Option<Slot> {
        match self.entries.get_mut(key) {
            Some(s) => {
                s.epoch = epoch;
                self.stats.hits += 1;
                Some(*s)
            }
            None => {
                self.stats.misses += 1;
                None
            }
        }
    }

    /// Bytes of live entries.
    pub fn used(&self) -> u64 {
        self.used
    }

    /// Drops the entries last used before frame `epoch`.
    pub fn expire(&mut self, epoch: u64) {
        while let Some((_, s)) = self.entries.peek_lru()
            && s.epoch < epoch
        {
            let (_, s) = self.entries.pop_lru().expect("an entry");
            self.free(s);
            self.stats.expired += 1;
        }
    }

    /// Where entry `key` lies now, without marking it used.
    pub fn peek(&self, key: &K) -> Option<Slot> {
        self.entries.peek(key).copied()
    }

    /// Writes `data` (a multiple of 4 bytes) as entry `key` of frame `epoch`, evicting the least
    /// recently used entries of earlier frames as needed. Entries may move: look their slots up
    /// again once the frame's entries are all in.
    ///
    /// # Errors
    /// The frame's entries with this one exceed the bound.
    pub fn insert(
        &mut self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        key: K,
        data: &[u8],
        meta: [u32; 2],
        epoch: u64,
    ) -> Result<Slot, Full> {
        let size = data.len() as u64;
        debug_assert_eq!(size % 4, 0, "entries are whole words");
        if let Some(old) = self.entries.pop(&key) {
            self.free(old);
        }
        if size > self.limit {
            return Err(Full {
                need: size,
                limit: self.limit,
            });
        }
        while self.used + size > self.limit {
            match self.entries.peek_lru() {
                Some((_, s)) if s.epoch != epoch => {
                    let (_, s) = self.entries.pop_lru().expect("an entry");
                    self.free(s);
                    self.stats.evictions += 1;
                }
                _ => {
                    let pinned: u64 = self
                        .entries
                        .iter()
                        .filter(|(_, s)| s.epoch == epoch)
                        .map(|(_, s)| s.size)
                        .sum();
                    return Err(Full {
                        need: pinned + size,
                        limit: self.limit,
                    });
                }
            }
        }
        let offset = match self.holes.iter().position(|&(_, n)| n >= size) {
            Some(i) => {
                let (at, n) = self.holes[i];
                if n == size {
                    self.holes.remove(i);
                } else {
                    self.holes[i] = (at + size, n - size);
                }
                at
            }
            None => {
                if self.end + size > self.capacity {
                    if self.end + size <= self.limit {
                        let grown = (self.capacity * 2).max(self.end + size).min(self.limit);
                        self.grow(device, queue, grown);
                    } else {
                        self.compact(device, queue, size);
                    }
                }
                let at = self.end;
                self.end += size;
                at
            }
        };
        if size > 0 {
            queue.write_buffer(&self.buffer, offset, data);
        }
        let slot = Slot {
            offset,
            size,
            meta,
            epoch,
        };
        self.entries.put(key, slot);
        self.used += size;
        Ok(slot)
    }

    /// Gives `s`'s range back.
    fn free(&mut self, s: Slot) {
        self.used -= s.size;
        if s.size == 0 {
            return;
        }
        let i = self.holes.partition_point(|&(at, _)| at < s.offset);
        self.holes.insert(i, (s.offset, s.size));
        // Merge with the next hole, then with the previous one.
        if i + 1 < self.holes.len() && self.holes[i].0 + self.holes[i].1 == self.holes[i + 1].0 {
            self.holes[i].1 += self.holes[i + 1].1;
            self.holes.remove(i + 1);
        }
        if i > 0 && self.holes[i - 1].0 + self.holes[i - 1].1 == self.holes[i].0 {
            self.holes[i - 1].1 += self.holes[i].1;
            self.holes.remove(i);
        }
        if let Some(&(at, n)) = self.holes.last()
            && at + n == self.end
        {
            self.end = at;
            self.holes.pop();
        }
    }

    /// Replaces the buffer with one of `capacity` bytes holding the same entries.
    fn grow(&mut self, device: &wgpu::Device, queue: &wgpu::Queue, capacity: u64) {
        let grown = make(device, capacity);
        if self.end > 0 {
            let mut enc = device.create_command_encoder(&wgpu::CommandEncoderDescriptor::default());
            enc.copy_buffer_to_buffer(&self.buffer, 0, &grown, 0, self.end);
            queue.submit([enc.finish()]);
        }
        self.buffer = grown;
        self.capacity = capacity;
        self.generation += 1;
    }

    /// Packs the live entries into a fresh buffer with room for `size` more bytes after them.
    fn compact(&mut self, device: &wgpu::Device, queue: &wgpu::Queue, size: u64) {
        let capacity = self.capacity.max(self.used + size).min(self.limit);
        let packed = make(device, capacity);
        let mut enc = device.create_command_encoder(&wgpu::CommandEncoderDescriptor::default());
        let mut at = 0;
        for (_, s) in self.entries.iter_mut() {
            if s.size > 0 {
                enc.copy_buffer_to_buffer(&self.buffer, s.offset, &packed, at, s.size);
            }
            s.offset = at;
            at += s.size;
        }
        queue.submit([enc.finish()]);
        self.buffer = packed;
        self.capacity = capacity;
        self.end = at;
        self.holes.clear();
        self.generation += 1;
        self.stats.compactions += 1;
    }
}
