//! The bounded frame queue between the render stage and the worker pool.
//!
//! A full queue follows the configured [`DropPolicy`]: drop the oldest queued frame, drop the
//! arriving one, or make the producer wait. Whatever is dropped is handed back to the caller, so
//! it can be counted and its buffer reused: nothing leaves the queue unseen. Items are numbered
//! in the order they are taken out (`seq`), which is the order the encoder puts them back in.
//!
//! No allocation after construction: the ring is sized once.

use crate::config::DropPolicy;
use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};

/// What happened to a pushed item.
#[derive(Debug)]
pub enum Pushed<T> {
    /// It is queued; nothing was dropped.
    Queued,
    /// It is queued and the oldest item was dropped to make room (`DropPolicy::Oldest`).
    DroppedOldest(T),
    /// The queue was full and the item itself was refused (`DropPolicy::Newest`).
    Refused(T),
    /// The queue is closed.
    Closed(T),
}

struct State<T> {
    items: VecDeque<T>,
    closed: bool,
    next_seq: u64,
}

/// A bounded multi-producer, multi-consumer queue with a drop policy.
pub struct FrameQueue<T> {
    state: Mutex<State<T>>,
    not_empty: Condvar,
    not_full: Condvar,
    capacity: usize,
    policy: DropPolicy,
}

impl<T> FrameQueue<T> {
    /// A queue of at most `capacity` items (at least 1).
    pub fn new(capacity: usize, policy: DropPolicy) -> Self {
        let capacity = capacity.max(1);
        FrameQueue {
            state: Mutex::new(State {
                items: VecDeque::with_capacity(capacity),
                closed: false,
                next_seq: 0,
            }),
            not_empty: Condvar::new(),
            not_full: Condvar::new(),
            capacity,
            policy,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds `item` by the queue's policy.
    pub fn push(&self, item: T) -> Pushed<T> {
        self.push_with(item, self.policy)
    }

    /// Adds `item` by `policy` (a throughput run always blocks: it must not shed frames).
    pub fn push_with(&self, item: T, policy: DropPolicy) -> Pushed<T> {
        let mut s = self.lock();
        if s.closed {
            return Pushed::Closed(item);
        }
        let mut dropped = None;
        if s.items.len() >= self.capacity {
            match policy {
                DropPolicy::Oldest => dropped = s.items.pop_front(),
                DropPolicy::Newest => return Pushed::Refused(item),
                DropPolicy::Block => {
                    while s.items.len() >= self.capacity && !s.closed {
                        s = self.not_full.wait(s).unwrap_or_else(|e| e.into_inner());
                    }
                    if s.closed {
                        return Pushed::Closed(item);
                    }
                }
            }
        }
        s.items.push_back(item);
        drop(s);
        self.not_empty.notify_one();
        match dropped {
            Some(old) => Pushed::DroppedOldest(old),
            None => Pushed::Queued,
        }
    }

    /// Takes the oldest item and its take-out number, waiting for one; `None` once the queue is
    /// closed and empty.
    pub fn pop(&self) -> Option<(u64, T)> {
        let mut s = self.lock();
        loop {
            if let Some(item) = s.items.pop_front() {
                let seq = s.next_seq;
                s.next_seq += 1;
                drop(s);
                self.not_full.notify_one();
                return Some((seq, item));
            }
            if s.closed {
                return None;
            }
            s = self.not_empty.wait(s).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Items waiting now.
    pub fn len(&self) -> usize {
        self.lock().items.len()
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most items it holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Whether [`FrameQueue::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Refuses further pushes; consumers finish what is queued, then get `None`.
    pub fn close(&self) {
        self.lock().closed = true;
        self.not_empty.notify_all();
        self.not_full.notify_all();
    }

    /// Takes everything still queued (after [`FrameQueue::close`], to account for it).
    pub fn drain(&self) -> Vec<T> {
        let mut s = self.lock();
        s.items.drain(..).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    fn filled(policy: DropPolicy) -> FrameQueue<u32> {
        let q = FrameQueue::new(3, policy);
        for i in 0..3 {
            assert!(matches!(q.push(i), Pushed::Queued));
        }
        q
    }

    #[test]
    fn drop_oldest_hands_back_the_oldest_and_keeps_the_newest() {
        let q = filled(DropPolicy::Oldest);
        assert!(matches!(q.push(3), Pushed::DroppedOldest(0)));
        assert!(matches!(q.push(4), Pushed::DroppedOldest(1)));
        let out: Vec<_> = std::iter::from_fn(|| {
            q.close();
            q.pop()
        })
        .collect();
        assert_eq!(out, vec![(0, 2), (1, 3), (2, 4)]);
    }

    #[test]
    fn drop_newest_refuses_the_arrival_and_keeps_the_queue() {
        let q = filled(DropPolicy::Newest);
        assert!(matches!(q.push(3), Pushed::Refused(3)));
        q.close();
        let out: Vec<_> = std::iter::from_fn(|| q.pop()).map(|(_, v)| v).collect();
        assert_eq!(out, vec![0, 1, 2]);
    }

    #[test]
    fn block_waits_for_room_and_loses_nothing() {
        let q = Arc::new(filled(DropPolicy::Block));
        let producer = {
            let q = Arc::clone(&q);
            std::thread::spawn(move || {
                for i in 3..10 {
                    assert!(matches!(q.push(i), Pushed::Queued));
                }
                q.close();
            })
        };
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(q.len(), 3, "the producer must wait while the queue is full");
        let out: Vec<_> = std::iter::from_fn(|| q.pop()).map(|(_, v)| v).collect();
        producer.join().unwrap();
        assert_eq!(out, (0..10).collect::<Vec<_>>());
    }

    #[test]
    fn a_closed_queue_hands_items_back() {
        let q = FrameQueue::new(2, DropPolicy::Block);
        q.close();
        assert!(matches!(q.push(1), Pushed::Closed(1)));
        assert!(q.pop().is_none());
    }
}
