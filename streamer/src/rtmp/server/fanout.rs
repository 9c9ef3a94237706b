//! The fan-out thread pool ([`FanOut`]): a large frame is handed to a channel's players on
//! several threads, the publisher's and helpers that claim blocks of players from a [`Job`].

use super::media::Media;
use super::player_queue::{PlayerQueue, Tally, lock};
use super::stats::ServerStats;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// Bytes a frame's fan-out copies (its size × players) below which the publisher's thread
/// hands it to every player by itself: waking a helper costs more than it saves on small
/// copies, and splitting every frame costs CPU (about +8% at 200 players here, sockets' cache
/// lines moving between cores). At the network suite's 2.5 Mbit/s a keyframe is ~110 KB and a
/// frame ~10 KB: keyframes to 40 players or more go on several threads, other frames from
/// about 400 players up.
const FANOUT_MIN_BYTES: usize = 4 << 20;

/// Hands each large frame to a channel's players on `rtmp.fanout_threads` threads: the
/// publisher's own and helpers, claiming blocks of players from the frame's [`Job`] until none
/// are left. A fan-out is the kernel copying the frame into every player's socket, one after
/// another; for a keyframe (~110 KB) to 100 players that is several milliseconds, and it sets
/// the p99 of the relay latency. Two threads on two cores take about half as long. A helper
/// sleeps between frames (no spinning); the publisher waits until every player has the frame
/// before the next one, so every player gets frames in order.
pub(super) struct FanOut {
    threads: usize,
    helpers: OnceLock<Vec<Helper>>,
}

pub(super) struct Helper {
    inner: Arc<HelperInner>,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[derive(Default)]
struct HelperInner {
    state: Mutex<HelperState>,
    wake: std::sync::Condvar,
}

#[derive(Default)]
struct HelperState {
    job: Option<Arc<Job>>,
    stop: bool,
}

/// Players claimed at a time from a shared frame's list.
const FANOUT_BLOCK: usize = 4;

/// One frame for a list of players, handed out in blocks to whichever thread asks next: the
/// publisher's thread starts at once and a helper joins when it wakes, so a helper that wakes
/// late (its core busy) leaves the publisher's thread more, not the frame waiting for its half.
struct Job {
    players: Arc<[Arc<PlayerQueue>]>,
    media: Arc<Media>,
    stats: Arc<ServerStats>,
    /// The first player nobody has claimed yet.
    next: AtomicUsize,
    /// Players handed so far.
    handed: AtomicUsize,
    /// Where the publisher's thread waits for the last blocks other threads claimed.
    finished: Mutex<()>,
    all_handed: std::sync::Condvar,
}

impl Job {
    fn new(
        players: &Arc<[Arc<PlayerQueue>]>,
        media: &Arc<Media>,
        stats: &Arc<ServerStats>,
    ) -> Self {
        Job {
            players: Arc::clone(players),
            media: Arc::clone(media),
            stats: Arc::clone(stats),
            next: AtomicUsize::new(0),
            handed: AtomicUsize::new(0),
            finished: Mutex::new(()),
            all_handed: std::sync::Condvar::new(),
        }
    }

    fn complete(&self) -> bool {
        self.handed.load(Ordering::Acquire) >= self.players.len()
    }

    /// Claims and hands blocks of players until none are left.
    fn work(&self) {
        /// Counts a claimed block as handed even if handing it panicked, so the publisher's
        /// thread is never left waiting for it.
        struct Handed<'a>(&'a Job, usize);
        impl Drop for Handed<'_> {
            fn drop(&mut self) {
                let Handed(job, k) = *self;
                if job.handed.fetch_add(k, Ordering::AcqRel) + k >= job.players.len() {
                    let _g = lock(&job.finished);
                    job.all_handed.notify_all();
                }
            }
        }
        let n = self.players.len();
        let mut tally = Tally::default();
        loop {
            let start = self.next.fetch_add(FANOUT_BLOCK, Ordering::Relaxed);
            if start >= n {
                break;
            }
            let end = (start + FANOUT_BLOCK).min(n);
            let _handed = Handed(self, end - start);
            for q in &self.players[start..end] {
                q.push_media(&self.media, &mut tally);
            }
        }
        tally.add_to(&self.stats);
    }
}

impl FanOut {
    pub(super) fn new(threads: usize) -> Self {
        FanOut {
            threads: threads.max(1),
            helpers: OnceLock::new(),
        }
    }

    /// The helper threads, started on first use; none when they cannot start.
    pub(super) fn helpers(&self) -> &[Helper] {
        self.helpers.get_or_init(|| {
            (1..self.threads)
                .map_while(|i| {
                    let inner = Arc::new(HelperInner::default());
                    let mine = Arc::clone(&inner);
                    let thread = std::thread::Builder::new()
                        .name(format!("rtmp-fanout-{i}"))
                        .spawn(move || helper_loop(&mine))
                        .ok()?;
                    Some(Helper {
                        inner,
                        thread: Some(thread),
                    })
                })
                .collect()
        })
    }

    /// Hands `media` to every player of `players`, returning once every one has it.
    pub(super) fn hand(
        &self,
        players: &Arc<[Arc<PlayerQueue>]>,
        media: &Arc<Media>,
        stats: &Arc<ServerStats>,
    ) {
        let helpers = if self.threads > 1 && players.len() * media.data.len() >= FANOUT_MIN_BYTES {
            self.helpers()
        } else {
            &[]
        };
        if helpers.is_empty() {
            let mut tally = Tally::default();
            for q in players.iter() {
                q.push_media(media, &mut tally);
            }
            tally.add_to(stats);
            return;
        }
        let job = Arc::new(Job::new(players, media, stats));
        for h in helpers {
            // A helper still asleep since the last frame just gets this one instead: that one
            // was handed in full before the last `hand` returned.
            lock(&h.inner.state).job = Some(Arc::clone(&job));
            h.inner.wake.notify_one();
        }
        job.work();
        if !job.complete() {
            let mut g = lock(&job.finished);
            while !job.complete() {
                g = job.all_handed.wait(g).unwrap_or_else(|e| e.into_inner());
            }
        }
    }
}

fn helper_loop(inner: &HelperInner) {
    loop {
        let job = {
            let mut st = lock(&inner.state);
            loop {
                if st.stop {
                    return;
                }
                if let Some(job) = st.job.take() {
                    break job;
                }
                st = inner.wake.wait(st).unwrap_or_else(|e| e.into_inner());
            }
        };
        // The push path does not panic; if it did, the block still counts as handed (see
        // `Job::work`) and this thread goes on serving.
        let _ = catch_unwind(AssertUnwindSafe(|| job.work()));
    }
}

impl Drop for FanOut {
    fn drop(&mut self) {
        if let Some(helpers) = self.helpers.get_mut() {
            for h in helpers.iter_mut() {
                lock(&h.inner.state).stop = true;
                h.inner.wake.notify_one();
                if let Some(t) = h.thread.take() {
                    let _ = t.join();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtmp::flv;
    use crate::rtmp::server::media::MediaKind;
    use crate::rtmp::server::player_queue::Item;

    #[test]
    fn a_fan_out_on_several_threads_gives_every_player_every_frame_in_order() {
        // 48 players × a 100 KB keyframe is over FANOUT_MIN_BYTES: three threads share it.
        let fanout = FanOut::new(3);
        let stats = Arc::new(ServerStats::default());
        let queues: Arc<[Arc<PlayerQueue>]> = (0..48)
            .map(|_| Arc::new(PlayerQueue::new(1000, false)))
            .collect();
        let mut sent = Vec::new();
        for i in 0..30u32 {
            let key = i % 10 == 0;
            let mut data = Vec::new();
            let size = if key { 100_000 } else { 10 };
            flv::frame_tag(key, 0, &vec![0x41; size], &mut data);
            let media = Arc::new(Media::new(MediaKind::Video, i, data.into(), key));
            fanout.hand(&queues, &media, &stats);
            sent.push(i);
        }
        assert_eq!(
            fanout.helpers().len(),
            2,
            "the large frames started two helpers"
        );
        for q in queues.iter() {
            let got: Vec<u32> = lock(&q.state)
                .items
                .iter()
                .filter_map(|i| match i {
                    Item::Media(m) => Some(m.timestamp),
                    _ => None,
                })
                .collect();
            assert_eq!(got, sent);
        }
        drop(fanout); // stops and joins the helpers
    }
}
