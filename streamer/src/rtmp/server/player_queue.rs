//! A player's bounded queue ([`PlayerQueue`]) with the keyframe drop rule, and the direct
//! write that skips the queue when the player's task is idle ([`send_now`]).

use super::media::Media;
use super::stats::ServerStats;
use bytes::Bytes;
use rml_rtmp::sessions::StreamMetadata;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::Notify;

/// What a player's queue hands its connection.
#[derive(Debug, Clone)]
pub(super) enum Item {
    Metadata(Arc<StreamMetadata>),
    Media(Arc<Media>),
    /// The publisher left.
    End,
    /// Bytes ready for the wire: the rest of a partial direct write.
    Raw(Bytes),
}

/// A bounded per-player queue with the keyframe drop policy.
///
/// Everything a frame's fan-out reads for this player (the lock, the queue's length, the socket
/// to write to) sits in `state`, at the start of a cache line of its own: one line per player
/// per frame.
#[repr(C, align(64))]
pub struct PlayerQueue {
    pub(super) state: Mutex<QueueState>,
    pub(super) notify: Notify,
    capacity: usize,
    dropped: AtomicU64,
    /// Keeps the socket behind [`Direct::fd`] open once the player plays.
    writer: OnceLock<Arc<OwnedWriteHalf>>,
}

/// Where a frame can go straight away, without a wake-up of the player's task.
#[derive(Clone, Copy)]
pub(super) struct Direct {
    /// The socket's descriptor: a direct write goes straight to `send(2)`, skipping tokio's
    /// readiness bookkeeping (one cache miss per player per frame, ~5% of the server's CPU at
    /// 200 players). A write that would block leaves tokio's readiness set, so the player's task
    /// finds out for itself on its next write.
    fd: std::os::fd::RawFd,
    stream_id: u32,
    chunk_size: u32,
}

/// What handing frames to players did, summed by the thread that did it and added to the
/// server's counters once (shared counters bumped per player would bounce between cores).
#[derive(Default)]
pub(super) struct Tally {
    bytes: u64,
    direct: u64,
    queued: u64,
}

impl Tally {
    pub(super) fn add_to(self, stats: &ServerStats) {
        if self.bytes > 0 {
            stats.bytes_out.fetch_add(self.bytes, Ordering::Relaxed);
        }
        if self.direct > 0 {
            stats
                .direct_writes
                .fetch_add(self.direct, Ordering::Relaxed);
        }
        if self.queued > 0 {
            stats
                .queued_writes
                .fetch_add(self.queued, Ordering::Relaxed);
        }
    }
}

pub(super) struct QueueState {
    pub(super) items: VecDeque<Item>,
    /// The player's task is writing: nothing may go to the socket past it.
    writing: bool,
    /// Passing over video until the next keyframe: a new player without the GOP cache (not a drop:
    /// it never had those frames), or after an overflow (drops, counted).
    waiting: Wait,
    /// Set once the player plays, so the publisher can write a frame straight to a player that
    /// has nothing queued.
    direct: Option<Direct>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Wait {
    None,
    Join,
    Overflow,
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl PlayerQueue {
    /// A player's queue of `capacity` frames (`rtmp.player_queue`); `waiting_for_key`: passes
    /// over video until the first keyframe (a player that joins without the GOP cache). Public
    /// for the benches ([`fan_out_frame`](super::fan_out_frame)); the server makes its own.
    pub fn new(capacity: usize, waiting_for_key: bool) -> Self {
        PlayerQueue {
            state: Mutex::new(QueueState {
                items: VecDeque::new(),
                writing: false,
                waiting: if waiting_for_key {
                    Wait::Join
                } else {
                    Wait::None
                },
                direct: None,
            }),
            notify: Notify::new(),
            capacity,
            dropped: AtomicU64::new(0),
            writer: OnceLock::new(),
        }
    }

    /// Queues `item` by the drop policy; control items (metadata, sequence headers) always go in.
    pub(super) fn push(&self, item: Item, stats: &ServerStats) {
        match item {
            Item::Media(m) => {
                let mut tally = Tally::default();
                self.push_media(&m, &mut tally);
                tally.add_to(stats);
            }
            other => {
                lock(&self.state).items.push_back(other);
                self.notify.notify_one();
            }
        }
    }

    /// Hands `m` to this player by the drop policy: straight to its socket when nothing is
    /// queued and the socket takes it whole, else into its queue for its task.
    pub(super) fn push_media(&self, m: &Arc<Media>, tally: &mut Tally) {
        let mut s = lock(&self.state);
        if m.is_frame() {
            let full = s.items.len() >= self.capacity;
            if full && m.key {
                // Make room: everything queued is older than this keyframe.
                let before = s.items.len();
                s.items
                    .retain(|i| !matches!(i, Item::Media(m) if m.is_frame()));
                self.dropped
                    .fetch_add((before - s.items.len()) as u64, Ordering::Relaxed);
                s.waiting = Wait::None;
            } else if full {
                s.waiting = Wait::Overflow;
                self.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            } else if s.waiting != Wait::None && !m.key {
                if s.waiting == Wait::Overflow {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                }
                return;
            } else {
                s.waiting = Wait::None;
            }
        }
        if let Some(d) = s.direct {
            if s.items.is_empty() && !s.writing {
                // Nothing queued and the task is idle: write now, from the publisher's side.
                let rest = m.with_chunks(d.stream_id, d.chunk_size, |bytes| {
                    let n = send_now(d.fd, bytes);
                    tally.bytes += n as u64;
                    (n < bytes.len()).then(|| (n, bytes.slice(n..)))
                });
                match rest {
                    None => {
                        tally.direct += 1;
                        return;
                    }
                    Some((n, rest)) if n > 0 => {
                        s.items.push_back(Item::Raw(rest));
                        drop(s);
                        self.notify.notify_one();
                        return;
                    }
                    Some(_) => {}
                }
            }
            tally.queued += 1;
        }
        s.items.push_back(Item::Media(Arc::clone(m)));
        drop(s);
        self.notify.notify_one();
    }

    /// Takes everything queued and marks the task as writing (direct writes stop).
    pub(super) fn take_for_writing(&self, into: &mut Vec<Item>) {
        let mut s = lock(&self.state);
        s.writing = true;
        into.extend(s.items.drain(..));
    }

    /// From now on frames may go straight to `writer` (kept open here), as `stream_id`.
    pub(super) fn write_directly(
        &self,
        writer: &Arc<OwnedWriteHalf>,
        stream_id: u32,
        chunk_size: u32,
    ) {
        if self.writer.set(Arc::clone(writer)).is_ok() {
            lock(&self.state).direct = Some(Direct {
                fd: std::os::fd::AsRawFd::as_raw_fd(AsRef::<TcpStream>::as_ref(&**writer)),
                stream_id,
                chunk_size,
            });
        }
    }

    /// The task finished writing; `true` when more was queued meanwhile (keep writing).
    pub(super) fn done_writing(&self) -> bool {
        let mut s = lock(&self.state);
        if s.items.is_empty() {
            s.writing = false;
            false
        } else {
            true
        }
    }

    /// Items waiting in this queue now.
    pub(super) fn len(&self) -> usize {
        lock(&self.state).items.len()
    }

    /// Frames dropped for this player so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// Writes what the socket takes now without blocking; 0 on any error (the player's task then
/// writes through tokio and meets the error, or waits for room).
fn send_now(fd: std::os::fd::RawFd, bytes: &[u8]) -> usize {
    // SAFETY: `fd` is an open socket, kept open by the `Direct` it came from; `bytes` is valid
    // for its length. MSG_DONTWAIT: never block the publisher; MSG_NOSIGNAL: a closed peer is
    // an error, not SIGPIPE.
    let n = unsafe {
        libc::send(
            fd,
            bytes.as_ptr().cast(),
            bytes.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
    usize::try_from(n).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtmp::flv;
    use crate::rtmp::server::media::MediaKind;

    fn frame(key: bool) -> Item {
        let mut data = Vec::new();
        flv::frame_tag(
            key,
            0,
            &[0, 0, 1, if key { 0x65 } else { 0x41 }, 1],
            &mut data,
        );
        Item::Media(Arc::new(Media::new(MediaKind::Video, 0, data.into(), key)))
    }

    fn queued(q: &PlayerQueue) -> Vec<bool> {
        let v: Vec<Item> = lock(&q.state).items.drain(..).collect();
        v.iter()
            .map(|i| matches!(i, Item::Media(m) if m.key))
            .collect()
    }

    #[test]
    fn a_full_queue_drops_non_key_frames_until_the_next_keyframe() {
        let q = PlayerQueue::new(3, false);
        for key in [true, false, false, false, false] {
            q.push(frame(key), &ServerStats::default());
        }
        assert_eq!(q.dropped(), 2);
        q.push(frame(false), &ServerStats::default()); // still waiting for a keyframe
        assert_eq!(q.dropped(), 3);
        q.push(frame(true), &ServerStats::default()); // full: the queued frames give way to the keyframe
        assert_eq!(q.dropped(), 6);
        assert_eq!(queued(&q), vec![true]);
        q.push(frame(false), &ServerStats::default());
        assert_eq!(queued(&q), vec![false]);
    }

    #[test]
    fn a_new_player_without_cache_starts_at_a_keyframe() {
        let q = PlayerQueue::new(10, true);
        q.push(frame(false), &ServerStats::default());
        q.push(frame(true), &ServerStats::default());
        q.push(frame(false), &ServerStats::default());
        assert_eq!(queued(&q), vec![true, false]);
        assert_eq!(
            q.dropped(),
            0,
            "frames before a player's first keyframe are not drops"
        );
    }
}
