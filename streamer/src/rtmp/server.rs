//! The embedded RTMP server: publish and play by app/stream key, fan-out to any number of
//! players, GOP cache, ping and ping timeout, handshake timeout, connection limit, publish keys.
//!
//! # Model
//!
//! One tokio task per connection owns its socket and its `rml_rtmp` `ServerSession` (which is
//! sans-IO). A publisher's media goes into its channel ([`Channel`]): the metadata, the sequence
//! headers and, with `gop_cache`, every frame since the last keyframe are kept there for players
//! that join later. Each player has a bounded queue ([`PlayerQueue`]); its task drains the queue
//! into its session and socket. When a queue is full the player's non-key frames are dropped
//! until the next keyframe, and counted — a slow player never grows memory, and never slows the
//! publisher or the other players.
//!
//! A frame goes straight from the publisher's connection to each idle player's socket with
//! one `send(2)` of chunks built once for everyone; a large fan-out (a keyframe to many players)
//! is split over `rtmp.fanout_threads` threads ([`FanOut`]).
//!
//! Faults stay inside their connection: malformed bytes end that connection with a log line,
//! and so does a panic inside `rml_rtmp` (it panics on some malformed messages), caught around
//! every call into the session. Every write has a deadline of `ping_timeout`, so a peer that
//! stops reading is closed just as one that stops sending is.

use super::flv;
use crate::config::RtmpConfig;
use bytes::Bytes;
use rml_rtmp::chunk_io::{ChunkSerializer, Packet};
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::messages::RtmpMessage;
use rml_rtmp::rml_amf0::Amf0Value;
use rml_rtmp::sessions::{
    ServerSession, ServerSessionConfig, ServerSessionEvent, ServerSessionResult, StreamMetadata,
};
use rml_rtmp::time::RtmpTimestamp;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::time::{Instant, timeout_at};

/// One media message as the publisher sent it.
#[derive(Debug, Clone)]
pub struct Media {
    pub kind: MediaKind,
    pub timestamp: u32,
    pub data: Bytes,
    /// A video keyframe (players can start decoding here).
    pub key: bool,
    /// An AVC or AAC sequence header (kept for late joiners, never dropped). Worked out once
    /// here, not once per player.
    header: bool,
    /// The message as RTMP chunks for message stream 1 at the server's chunk size, built once
    /// and shared by every player on stream 1 (what rml_rtmp assigns to the first stream).
    chunked: OnceLock<Bytes>,
}

impl Media {
    /// A media message as the publisher sent it.
    pub fn new(kind: MediaKind, timestamp: u32, data: Bytes, key: bool) -> Self {
        Media {
            header: is_sequence_header(kind, &data),
            kind,
            timestamp,
            data,
            key,
            chunked: OnceLock::new(),
        }
    }

    /// A video frame (not a sequence header): what the drop policy may pass over.
    fn is_frame(&self) -> bool {
        self.kind == MediaKind::Video && !self.header
    }

    /// This message as chunks for `stream_id` at `chunk_size`, shared when `stream_id` is 1.
    fn chunks(&self, stream_id: u32, chunk_size: u32) -> Bytes {
        self.with_chunks(stream_id, chunk_size, Bytes::clone)
    }

    /// Calls `f` with this message's chunks, without touching the shared buffer's reference
    /// count when `stream_id` is 1 (several fan-out threads read it at once).
    fn with_chunks<R>(&self, stream_id: u32, chunk_size: u32, f: impl FnOnce(&Bytes) -> R) -> R {
        let build = || {
            Bytes::from(chunk_message(
                self.kind,
                stream_id,
                self.timestamp,
                &self.data,
                chunk_size,
            ))
        };
        if stream_id == 1 {
            f(self.chunked.get_or_init(build))
        } else {
            f(&build())
        }
    }
}

/// Chunk streams for media. `rml_rtmp`'s serializer uses 2–6; media goes on its own so its
/// full (type 0) headers never disturb the session's header compression.
const VIDEO_CSID: u8 = 7;
/// Socket send buffer per connection (the kernel doubles it and caps it at wmem_max).
const SEND_BUFFER: usize = 1 << 20;
const AUDIO_CSID: u8 = 8;

/// One audio or video message as RTMP chunks: a type 0 header, then type 3 continuations.
fn chunk_message(
    kind: MediaKind,
    stream_id: u32,
    timestamp: u32,
    payload: &[u8],
    chunk_size: u32,
) -> Vec<u8> {
    let (csid, type_id) = match kind {
        MediaKind::Video => (VIDEO_CSID, 9u8),
        MediaKind::Audio => (AUDIO_CSID, 8u8),
    };
    let extended = timestamp >= 0xff_ffff;
    let size = chunk_size.max(1) as usize;
    let chunks = payload.len().div_ceil(size).max(1);
    let mut out = Vec::with_capacity(payload.len() + 16 + chunks * 5);
    out.push(csid);
    let ts = if extended { 0xff_ffff } else { timestamp };
    out.extend_from_slice(&ts.to_be_bytes()[1..]);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    out.push(type_id);
    out.extend_from_slice(&stream_id.to_le_bytes());
    if extended {
        out.extend_from_slice(&timestamp.to_be_bytes());
    }
    for (i, part) in payload.chunks(size).enumerate() {
        if i > 0 {
            out.push(0xc0 | csid);
            if extended {
                out.extend_from_slice(&timestamp.to_be_bytes());
            }
        }
        out.extend_from_slice(part);
    }
    out
}

/// What a [`Media`] carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    Video,
    Audio,
}

/// What a player's queue hands its connection.
#[derive(Debug, Clone)]
enum Item {
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
    state: Mutex<QueueState>,
    notify: Notify,
    capacity: usize,
    dropped: AtomicU64,
    /// Keeps the socket behind [`Direct::fd`] open once the player plays.
    writer: OnceLock<Arc<OwnedWriteHalf>>,
}

/// Where a frame can go straight away, without a wake-up of the player's task.
#[derive(Clone, Copy)]
struct Direct {
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
struct Tally {
    bytes: u64,
    direct: u64,
    queued: u64,
}

impl Tally {
    fn add_to(self, stats: &ServerStats) {
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

struct QueueState {
    items: VecDeque<Item>,
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
enum Wait {
    None,
    Join,
    Overflow,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl PlayerQueue {
    fn new(capacity: usize, waiting_for_key: bool) -> Self {
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
    fn push(&self, item: Item, stats: &ServerStats) {
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
    fn push_media(&self, m: &Arc<Media>, tally: &mut Tally) {
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
    fn take_for_writing(&self, into: &mut Vec<Item>) {
        let mut s = lock(&self.state);
        s.writing = true;
        into.extend(s.items.drain(..));
    }

    /// From now on frames may go straight to `writer` (kept open here), as `stream_id`.
    fn write_directly(&self, writer: &Arc<OwnedWriteHalf>, stream_id: u32, chunk_size: u32) {
        if self.writer.set(Arc::clone(writer)).is_ok() {
            lock(&self.state).direct = Some(Direct {
                fd: std::os::fd::AsRawFd::as_raw_fd(AsRef::<TcpStream>::as_ref(&**writer)),
                stream_id,
                chunk_size,
            });
        }
    }

    /// The task finished writing; `true` when more was queued meanwhile (keep writing).
    fn done_writing(&self) -> bool {
        let mut s = lock(&self.state);
        if s.items.is_empty() {
            s.writing = false;
            false
        } else {
            true
        }
    }

    /// Frames dropped for this player so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

fn is_sequence_header(kind: MediaKind, data: &[u8]) -> bool {
    match kind {
        MediaKind::Video => flv::parse_video_tag(data).is_some_and(|t| t.sequence_header),
        MediaKind::Audio => data.len() > 1 && data[0] >> 4 == 10 && data[1] == 0,
    }
}

/// A fraction in [0, 1) that scatters evenly over consecutive ids (Fibonacci hashing).
fn spread(id: u64) -> f64 {
    (id.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11) as f64 / (1u64 << 53) as f64
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

/// One published stream and what late joiners need from it.
#[derive(Default)]
struct Channel {
    publisher: Option<u64>,
    metadata: Option<Arc<StreamMetadata>>,
    video_header: Option<Arc<Media>>,
    audio_header: Option<Arc<Media>>,
    /// Frames since the last keyframe (when `gop_cache` is on).
    gop: Vec<Arc<Media>>,
    players: Vec<(u64, Arc<PlayerQueue>)>,
    /// The players' queues as the fan-out threads take them, rebuilt after a player joins or
    /// leaves (a frame then costs one reference count, not one per player).
    queues: Option<Arc<[Arc<PlayerQueue>]>>,
}

impl Channel {
    fn fan_out_list(&mut self) -> Arc<[Arc<PlayerQueue>]> {
        let players = &self.players;
        Arc::clone(
            self.queues
                .get_or_insert_with(|| players.iter().map(|(_, q)| Arc::clone(q)).collect()),
        )
    }
}

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
struct FanOut {
    threads: usize,
    helpers: OnceLock<Vec<Helper>>,
}

struct Helper {
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
    fn new(threads: usize) -> Self {
        FanOut {
            threads: threads.max(1),
            helpers: OnceLock::new(),
        }
    }

    /// The helper threads, started on first use; none when they cannot start.
    fn helpers(&self) -> &[Helper] {
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
    fn hand(
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

/// Counters of the whole server.
#[derive(Debug, Default)]
pub struct ServerStats {
    pub connections_accepted: AtomicU64,
    pub connections_refused: AtomicU64,
    pub connections_open: AtomicU64,
    pub players_open: AtomicU64,
    /// Player frames dropped by the queue policy, all players, including closed ones.
    pub frames_dropped: AtomicU64,
    /// Connections closed for silence past `ping_timeout` or a write that stalled as long.
    pub timed_out: AtomicU64,
    /// Connections closed because `rml_rtmp` panicked on their input.
    pub panics: AtomicU64,
    /// Connections closed for malformed input.
    pub protocol_errors: AtomicU64,
    pub bytes_out: AtomicU64,
    /// Frames a publisher wrote straight to a player's socket (no queue, no task wake-up).
    pub direct_writes: AtomicU64,
    /// Frames that went through a player's queue.
    pub queued_writes: AtomicU64,
}

struct Shared {
    cfg: RtmpConfig,
    fanout: FanOut,
    channels: Mutex<HashMap<(String, String), Channel>>,
    stats: Arc<ServerStats>,
    next_id: AtomicU64,
    verbose: bool,
}

impl Shared {
    fn new(cfg: &RtmpConfig, stats: Arc<ServerStats>, verbose: bool) -> Arc<Self> {
        Arc::new(Shared {
            cfg: cfg.clone(),
            fanout: FanOut::new(cfg.fanout_threads as usize),
            channels: Mutex::new(HashMap::new()),
            stats,
            next_id: AtomicU64::new(1),
            verbose,
        })
    }

    fn log(&self, id: u64, msg: impl std::fmt::Display) {
        if self.verbose {
            eprintln!("rtmp server: connection {id}: {msg}");
        }
    }
}

/// A running server; dropping it (or [`Server::stop`]) closes the listener and every connection.
pub struct Server {
    addr: SocketAddr,
    runtime: Option<Arc<tokio::runtime::Runtime>>,
    /// With one thread: the thread driving the single-threaded runtime, and its stop signal.
    driver: Option<(Arc<Notify>, std::thread::JoinHandle<()>)>,
    stats: Arc<ServerStats>,
    stopping: Arc<AtomicBool>,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[error("rtmp server on {addr}: {source}")]
pub struct ServerError {
    addr: String,
    source: std::io::Error,
}

impl Server {
    /// Binds `addr` and serves with `cfg` on `threads` worker threads. `verbose` logs each
    /// connection's end and every fault.
    ///
    /// # Errors
    /// The address cannot be bound, or the runtime cannot start.
    pub fn start(
        addr: SocketAddr,
        cfg: &RtmpConfig,
        threads: usize,
        verbose: bool,
    ) -> Result<Self, ServerError> {
        let fail = |source| ServerError {
            addr: addr.to_string(),
            source,
        };
        // One thread: a current-thread runtime on a thread of its own, which spares the
        // work-stealing scheduler's cost on every wake-up (one per frame per player).
        let runtime = if threads <= 1 {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
        } else {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(threads)
                .thread_name("rtmp-server")
                .enable_all()
                .build()
        }
        .map_err(fail)?;
        let listener = runtime.block_on(TcpListener::bind(addr)).map_err(fail)?;
        let addr = listener.local_addr().map_err(fail)?;
        let stats = Arc::new(ServerStats::default());
        let stopping = Arc::new(AtomicBool::new(false));
        let shared = Shared::new(cfg, Arc::clone(&stats), verbose);
        runtime.spawn(accept_loop(listener, shared));
        let runtime = Arc::new(runtime);
        let driver = if threads <= 1 {
            let stop = Arc::new(Notify::new());
            let (rt, signal) = (Arc::clone(&runtime), Arc::clone(&stop));
            let thread = std::thread::Builder::new()
                .name("rtmp-server".into())
                .spawn(move || rt.block_on(signal.notified()))
                .map_err(fail)?;
            Some((stop, thread))
        } else {
            None
        };
        Ok(Server {
            addr,
            runtime: Some(runtime),
            driver,
            stats,
            stopping,
        })
    }

    /// Binds `addr` and serves on the calling thread until the process ends: the whole server
    /// in one thread. A process of one thread is cheaper in the kernel: with more than one,
    /// every `send(2)` takes and drops a reference on the socket's file (the descriptor table is
    /// shared), one more cache line per player per frame. `ready` is called once bound.
    ///
    /// # Errors
    /// The address cannot be bound, or the runtime cannot start.
    pub fn serve_here(
        addr: SocketAddr,
        cfg: &RtmpConfig,
        verbose: bool,
        ready: impl FnOnce(SocketAddr),
    ) -> Result<(), ServerError> {
        let fail = |source| ServerError {
            addr: addr.to_string(),
            source,
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(fail)?;
        let listener = runtime.block_on(TcpListener::bind(addr)).map_err(fail)?;
        ready(listener.local_addr().map_err(fail)?);
        let shared = Shared::new(cfg, Arc::default(), verbose);
        runtime.block_on(accept_loop(listener, shared));
        Ok(())
    }

    /// The bound address (the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server's counters.
    pub fn stats(&self) -> &ServerStats {
        &self.stats
    }

    /// Closes every connection and stops.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stopping.store(true, Ordering::Relaxed);
        if let Some((stop, thread)) = self.driver.take() {
            stop.notify_one();
            let _ = thread.join();
        }
        if let Some(rt) = self.runtime.take().and_then(|rt| Arc::try_unwrap(rt).ok()) {
            rt.shutdown_timeout(Duration::from_secs(1));
        }
    }

    /// Blocks until the process is interrupted.
    pub fn wait(&self) {
        while !self.stopping.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((socket, peer)) = listener.accept().await else {
            continue;
        };
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        let open = shared.stats.connections_open.load(Ordering::Relaxed);
        if open >= u64::from(shared.cfg.max_connections) {
            shared
                .stats
                .connections_refused
                .fetch_add(1, Ordering::Relaxed);
            shared.log(
                id,
                format_args!("refused {peer}: {open} connections open (max_connections)"),
            );
            drop(socket);
            continue;
        }
        shared
            .stats
            .connections_accepted
            .fetch_add(1, Ordering::Relaxed);
        shared
            .stats
            .connections_open
            .fetch_add(1, Ordering::Relaxed);
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            // Setting up is request and answer: with Nagle's algorithm an answer can wait out
            // the peer's delayed acknowledgement (40 ms). A player's socket follows
            // `rtmp.tcp_nodelay` once it has had its first media (see `flush_player`).
            let _ = socket.set_nodelay(true);
            // Room for a whole keyframe: a frame written in one piece goes out from the
            // publisher's task; one that does not fit waits on the player's task and its wake-up.
            let _ = socket2::SockRef::from(&socket).set_send_buffer_size(SEND_BUFFER);
            let mut conn = Connection::new(id, Arc::clone(&shared));
            let why = conn.serve(socket).await;
            conn.leave();
            shared
                .stats
                .connections_open
                .fetch_sub(1, Ordering::Relaxed);
            shared.log(id, format_args!("closed: {why}"));
        });
    }
}

/// What a connection does.
enum Role {
    None,
    Publisher {
        key: (String, String),
    },
    Player {
        key: (String, String),
        stream_id: u32,
        queue: Arc<PlayerQueue>,
    },
}

struct Connection {
    id: u64,
    shared: Arc<Shared>,
    role: Role,
    last_input: Instant,
    /// A player that has had its first media (its socket now follows `rtmp.tcp_nodelay`).
    settled: bool,
}

/// How long a settled player's socket sends every frame at once after a ping, when
/// `rtmp.tcp_nodelay` is off. The player's answer makes its kernel delay acknowledgements (to
/// send them with its next answer) until a delayed-ACK timer fires; while frames arrive faster
/// than that timeout it acknowledges on the next arrival instead, so the mode can outlast this
/// window and the first frame after it can still wait for the timer. Measured here (100
/// players, ping 5 s, in-process suite, 3 runs): relay p99 8.2 ms without this, 3.4–4.8 ms with
/// it, 2.3–2.9 ms at ping 30 s; a 4 s window gave 2.9 ms but is TCP_NODELAY nearly for good,
/// which costs 12–19% more server CPU at 200 players and no better p99 between pings.
const NODELAY_AFTER_PING: Duration = Duration::from_secs(1);

/// Why a connection ended.
type Ended = String;

impl Connection {
    fn new(id: u64, shared: Arc<Shared>) -> Self {
        Connection {
            id,
            shared,
            role: Role::None,
            last_input: Instant::now(),
            settled: false,
        }
    }

    fn set_nodelay(&self, wr: &OwnedWriteHalf, on: bool) {
        if let Err(e) = AsRef::<TcpStream>::as_ref(wr).set_nodelay(on) {
            self.shared
                .log(self.id, format_args!("TCP_NODELAY {on}: {e}"));
        }
    }

    fn ping_timeout(&self) -> Duration {
        Duration::from_secs(self.shared.cfg.ping_timeout.into())
    }

    /// Writes `out` in order (and empties it); the whole write must finish within
    /// `ping_timeout`, or the peer has stopped reading. Most writes fit the socket buffer at
    /// once, so the deadline's timer is armed only when one has to wait.
    async fn write(&mut self, wr: &OwnedWriteHalf, out: &mut Vec<Bytes>) -> Result<(), Ended> {
        let mut deadline = None;
        for bytes in out.drain(..) {
            let mut rest = &bytes[..];
            while !rest.is_empty() {
                match wr.try_write(rest) {
                    Ok(n) => {
                        self.shared
                            .stats
                            .bytes_out
                            .fetch_add(n as u64, Ordering::Relaxed);
                        rest = &rest[n..];
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        let until =
                            *deadline.get_or_insert_with(|| Instant::now() + self.ping_timeout());
                        match timeout_at(until, wr.writable()).await {
                            Ok(Ok(())) => {}
                            Ok(Err(e)) => return Err(format!("write failed: {e}")),
                            Err(_) => {
                                self.shared.stats.timed_out.fetch_add(1, Ordering::Relaxed);
                                return Err(format!(
                                    "peer stopped reading for {} s (ping_timeout)",
                                    self.shared.cfg.ping_timeout
                                ));
                            }
                        }
                    }
                    Err(e) => return Err(format!("write failed: {e}")),
                }
            }
        }
        Ok(())
    }

    async fn handshake(&mut self, socket: &mut TcpStream) -> Result<Vec<u8>, Ended> {
        let deadline =
            Instant::now() + Duration::from_secs(self.shared.cfg.handshake_timeout.into());
        let mut hs = Handshake::new(PeerType::Server);
        let mut buf = [0u8; 4096];
        loop {
            let n = match timeout_at(deadline, socket.read(&mut buf)).await {
                Err(_) => return Err("handshake timed out (handshake_timeout)".into()),
                Ok(Err(e)) => return Err(format!("read failed during handshake: {e}")),
                Ok(Ok(0)) => return Err("peer closed during handshake".into()),
                Ok(Ok(n)) => n,
            };
            let step = catch_unwind(AssertUnwindSafe(|| hs.process_bytes(&buf[..n])));
            let (response, done) = match step {
                Err(_) => {
                    self.shared.stats.panics.fetch_add(1, Ordering::Relaxed);
                    return Err("rml_rtmp panicked on the handshake".into());
                }
                Ok(Err(e)) => {
                    self.shared
                        .stats
                        .protocol_errors
                        .fetch_add(1, Ordering::Relaxed);
                    return Err(format!("bad handshake: {e:?}"));
                }
                Ok(Ok(HandshakeProcessResult::InProgress { response_bytes })) => {
                    (response_bytes, None)
                }
                Ok(Ok(HandshakeProcessResult::Completed {
                    response_bytes,
                    remaining_bytes,
                })) => (response_bytes, Some(remaining_bytes)),
            };
            match timeout_at(deadline, socket.write_all(&response)).await {
                Ok(Ok(())) => {}
                _ => return Err("handshake write failed or timed out".into()),
            }
            if let Some(rest) = done {
                return Ok(rest);
            }
        }
    }

    async fn serve(&mut self, mut socket: TcpStream) -> Ended {
        let rest = match self.handshake(&mut socket).await {
            Ok(rest) => rest,
            Err(why) => return why,
        };
        let mut config = ServerSessionConfig::new();
        config.chunk_size = self.shared.cfg.chunk_size;
        let (mut session, initial) = match ServerSession::new(config) {
            Ok(x) => x,
            Err(e) => return format!("session setup failed: {e:?}"),
        };
        let (mut rd, wr) = socket.into_split();
        let wr = Arc::new(wr);
        let mut out = Vec::new();
        if let Err(why) = self.handle(&mut session, initial, &mut out) {
            return why;
        }
        if !rest.is_empty() {
            if let Err(why) = self.feed(&mut session, &rest, &mut out) {
                return why;
            }
        }
        if let Err(why) = self.write(&wr, &mut out).await {
            return why;
        }
        let ping = Duration::from_secs(self.shared.cfg.ping.into());
        // The first ping comes between half a period and a period after connecting, spread by
        // the connection's id (never later than `ping`, so a quiet peer still answers before
        // `ping_timeout`): players that connect together (a load test, a restart) would
        // otherwise all be pinged, and answer, in the same instant every `ping` seconds.
        let mut next_ping = Instant::now() + ping.mul_f64(0.5 + 0.5 * spread(self.id));
        // When a player's socket goes back to Nagle's algorithm after a ping (see below).
        let mut nagle_back: Option<Instant> = None;
        // One timer for both the next ping and the silence deadline, re-armed only when it
        // fires (a fresh timer per loop turn would cost a timer-wheel entry per frame).
        let timer = tokio::time::sleep_until(next_ping.min(self.last_input + self.ping_timeout()));
        tokio::pin!(timer);
        // Players send little; a publisher gets a larger buffer once it publishes.
        let mut buf = vec![0u8; 4 * 1024];
        let mut items = Vec::new();
        loop {
            if matches!(self.role, Role::Publisher { .. }) && buf.len() < 64 * 1024 {
                buf.resize(64 * 1024, 0);
            }
            let queue = match &self.role {
                Role::Player { queue, .. } => Some(Arc::clone(queue)),
                _ => None,
            };
            tokio::select! {
                read = rd.read(&mut buf) => match read {
                    Ok(0) => return "peer closed the connection".into(),
                    Ok(n) => {
                        self.last_input = Instant::now();
                        if let Err(why) = self.feed(&mut session, &buf[..n], &mut out) {
                            return why;
                        }
                    }
                    Err(e) => return format!("read failed: {e}"),
                },
                () = async {
                    match &queue {
                        Some(q) => q.notify.notified().await,
                        None => std::future::pending().await,
                    }
                } => {},
                () = &mut timer => {
                    let now = Instant::now();
                    let silence_deadline = self.last_input + self.ping_timeout();
                    if now >= silence_deadline {
                        self.shared.stats.timed_out.fetch_add(1, Ordering::Relaxed);
                        return format!("nothing received for {} s (ping_timeout)", self.shared.cfg.ping_timeout);
                    }
                    if nagle_back.is_some_and(|at| now >= at) {
                        nagle_back = None;
                        self.set_nodelay(&wr, false);
                    }
                    if now >= next_ping {
                        next_ping = now + ping;
                        match catch_unwind(AssertUnwindSafe(|| session.send_ping_request())) {
                            Ok(Ok((p, _))) => out.push(Bytes::from(p.bytes)),
                            _ => return "could not build a ping".into(),
                        }
                        if self.settled && !self.shared.cfg.tcp_nodelay {
                            // The player's answer to the ping puts its socket in "interactive"
                            // mode, where it delays its acknowledgements to send them with its
                            // next answer; with Nagle's algorithm a frame would wait for one.
                            // Frames leave at once for a while (see NODELAY_AFTER_PING).
                            self.set_nodelay(&wr, true);
                            nagle_back = Some(now + NODELAY_AFTER_PING);
                        }
                    }
                    let mut wake = next_ping.min(silence_deadline);
                    if let Some(at) = nagle_back {
                        wake = wake.min(at);
                    }
                    timer.as_mut().reset(wake);
                },
            }
            let written = match &self.role {
                Role::Player {
                    queue, stream_id, ..
                } => {
                    let (queue, stream_id) = (Arc::clone(queue), *stream_id);
                    self.flush_player(&mut session, &queue, stream_id, &wr, &mut out, &mut items)
                        .await
                }
                _ => self.write(&wr, &mut out).await,
            };
            if let Err(why) = written {
                return why;
            }
        }
    }

    /// Writes a player's queue and its own output in order: the rest of a partial direct write
    /// first, then what the session answered, then queued media. While this runs the queue is
    /// marked as writing, so the publisher queues instead of writing directly.
    async fn flush_player(
        &mut self,
        session: &mut ServerSession,
        queue: &Arc<PlayerQueue>,
        stream_id: u32,
        wr: &Arc<OwnedWriteHalf>,
        out: &mut Vec<Bytes>,
        items: &mut Vec<Item>,
    ) -> Result<(), Ended> {
        let mut batch = Vec::new();
        loop {
            queue.take_for_writing(items);
            queue.write_directly(wr, stream_id, self.shared.cfg.chunk_size);
            // Only until the player has had its first media.
            let first_media = !self.settled && items.iter().any(|i| matches!(i, Item::Media(_)));
            let raw = items
                .iter()
                .take_while(|i| matches!(i, Item::Raw(_)))
                .count();
            for item in items.drain(..raw) {
                batch.push(self.play_item(session, stream_id, item)?);
            }
            batch.append(out);
            for item in items.drain(..) {
                batch.push(self.play_item(session, stream_id, item)?);
            }
            self.write(wr, &mut batch).await?;
            if first_media {
                // The player has its first media: from here on frames follow rtmp.tcp_nodelay.
                self.settled = true;
                if !self.shared.cfg.tcp_nodelay {
                    self.set_nodelay(wr, false);
                }
            }
            if !queue.done_writing() {
                return Ok(());
            }
        }
    }

    /// One queued item as bytes for this player. Media is chunked once and shared by every
    /// player (see [`Media::chunks`]); metadata goes through the session.
    fn play_item(
        &self,
        session: &mut ServerSession,
        stream_id: u32,
        item: Item,
    ) -> Result<Bytes, Ended> {
        match item {
            Item::Media(m) => Ok(m.chunks(stream_id, self.shared.cfg.chunk_size)),
            Item::Raw(bytes) => Ok(bytes),
            Item::End => Ok(Bytes::from(self.unpublish_notify(stream_id).bytes)),
            Item::Metadata(m) => {
                match catch_unwind(AssertUnwindSafe(|| session.send_metadata(stream_id, &m))) {
                    Ok(Ok(p)) => Ok(Bytes::from(p.bytes)),
                    Ok(Err(e)) => Err(format!("could not send to player: {e:?}")),
                    Err(_) => {
                        self.shared.stats.panics.fetch_add(1, Ordering::Relaxed);
                        Err("rml_rtmp panicked serializing for a player".into())
                    }
                }
            }
        }
    }

    /// `onStatus NetStream.Play.UnpublishNotify`: the publisher left. FFmpeg, like Flash, ends
    /// playback on it (rml_rtmp's `finish_playing` sends `Play.Complete`, which FFmpeg ignores).
    /// The session's serializer is private, so this goes out with a full (type 0) chunk header
    /// from a serializer of its own, at the session's chunk size.
    fn unpublish_notify(&self, stream_id: u32) -> Packet {
        let mut status = HashMap::new();
        for (k, v) in [
            ("level", "status"),
            ("code", "NetStream.Play.UnpublishNotify"),
            ("description", "the publisher stopped"),
        ] {
            status.insert(k.to_string(), Amf0Value::Utf8String(v.to_string()));
        }
        let message = RtmpMessage::Amf0Command {
            command_name: "onStatus".into(),
            transaction_id: 0.0,
            command_object: Amf0Value::Null,
            additional_arguments: vec![Amf0Value::Object(status)],
        };
        let mut serializer = ChunkSerializer::new();
        let built = serializer
            .set_max_chunk_size(self.shared.cfg.chunk_size, RtmpTimestamp::new(0))
            .ok()
            .and_then(|_| {
                message
                    .into_message_payload(RtmpTimestamp::new(0), stream_id)
                    .ok()
            })
            .and_then(|payload| serializer.serialize(&payload, true, false).ok());
        built.unwrap_or(Packet {
            bytes: Vec::new(),
            can_be_dropped: true,
        })
    }

    fn feed(
        &mut self,
        session: &mut ServerSession,
        bytes: &[u8],
        out: &mut Vec<Bytes>,
    ) -> Result<(), Ended> {
        match catch_unwind(AssertUnwindSafe(|| session.handle_input(bytes))) {
            Ok(Ok(results)) => self.handle(session, results, out),
            Ok(Err(e)) => {
                self.shared
                    .stats
                    .protocol_errors
                    .fetch_add(1, Ordering::Relaxed);
                Err(format!("malformed input: {e:?}"))
            }
            Err(_) => {
                self.shared.stats.panics.fetch_add(1, Ordering::Relaxed);
                Err("rml_rtmp panicked on malformed input; connection closed".into())
            }
        }
    }

    fn handle(
        &mut self,
        session: &mut ServerSession,
        results: Vec<ServerSessionResult>,
        out: &mut Vec<Bytes>,
    ) -> Result<(), Ended> {
        for r in results {
            match r {
                ServerSessionResult::OutboundResponse(p) => out.push(Bytes::from(p.bytes)),
                ServerSessionResult::RaisedEvent(e) => {
                    let more = self.event(session, e)?;
                    self.handle(session, more, out)?;
                }
                ServerSessionResult::UnhandleableMessageReceived(_) => {}
            }
        }
        Ok(())
    }

    fn answer(
        &self,
        session: &mut ServerSession,
        f: impl FnOnce(
            &mut ServerSession,
        )
            -> Result<Vec<ServerSessionResult>, rml_rtmp::sessions::ServerSessionError>,
    ) -> Result<Vec<ServerSessionResult>, Ended> {
        match catch_unwind(AssertUnwindSafe(|| f(session))) {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(format!("request failed: {e:?}")),
            Err(_) => {
                self.shared.stats.panics.fetch_add(1, Ordering::Relaxed);
                Err("rml_rtmp panicked answering a request".into())
            }
        }
    }

    fn event(
        &mut self,
        session: &mut ServerSession,
        e: ServerSessionEvent,
    ) -> Result<Vec<ServerSessionResult>, Ended> {
        match e {
            ServerSessionEvent::ConnectionRequested { request_id, .. } => {
                self.answer(session, |s| s.accept_request(request_id))
            }
            ServerSessionEvent::PublishStreamRequested {
                request_id,
                app_name,
                stream_key,
                ..
            } => {
                let keys = &self.shared.cfg.publish_keys;
                if !keys.is_empty() && !keys.contains(&stream_key) {
                    self.shared.log(
                        self.id,
                        format_args!("refused publish of {app_name}/{stream_key}: key not allowed"),
                    );
                    return self.answer(session, |s| {
                        s.reject_request(
                            request_id,
                            "NetStream.Publish.BadName",
                            "stream key not allowed",
                        )
                    });
                }
                let key = (app_name, stream_key);
                {
                    let mut channels = lock(&self.shared.channels);
                    let ch = channels.entry(key.clone()).or_default();
                    if ch.publisher.is_some() {
                        drop(channels);
                        return self.answer(session, |s| {
                            s.reject_request(
                                request_id,
                                "NetStream.Publish.BadName",
                                "stream is already being published",
                            )
                        });
                    }
                    ch.publisher = Some(self.id);
                }
                self.role = Role::Publisher { key };
                self.answer(session, |s| s.accept_request(request_id))
            }
            ServerSessionEvent::PlayStreamRequested {
                request_id,
                app_name,
                stream_key,
                stream_id,
                ..
            } => {
                let results = self.answer(session, |s| s.accept_request(request_id))?;
                let gop_cache = self.shared.cfg.gop_cache;
                let queue = Arc::new(PlayerQueue::new(
                    self.shared.cfg.player_queue as usize,
                    true,
                ));
                let key = (app_name, stream_key);
                {
                    let mut channels = lock(&self.shared.channels);
                    let ch = channels.entry(key.clone()).or_default();
                    if let Some(m) = &ch.metadata {
                        queue.push(Item::Metadata(Arc::clone(m)), &self.shared.stats);
                    }
                    for h in [&ch.video_header, &ch.audio_header].into_iter().flatten() {
                        queue.push(Item::Media(Arc::clone(h)), &self.shared.stats);
                    }
                    if gop_cache {
                        for m in &ch.gop {
                            queue.push(Item::Media(Arc::clone(m)), &self.shared.stats);
                        }
                    }
                    ch.players.push((self.id, Arc::clone(&queue)));
                    ch.queues = None;
                }
                self.shared
                    .stats
                    .players_open
                    .fetch_add(1, Ordering::Relaxed);
                self.role = Role::Player {
                    key,
                    stream_id,
                    queue,
                };
                Ok(results)
            }
            ServerSessionEvent::StreamMetadataChanged { metadata, .. } => {
                if let Role::Publisher { key } = &self.role {
                    let m = Arc::new(metadata);
                    let mut channels = lock(&self.shared.channels);
                    if let Some(ch) = channels.get_mut(key) {
                        ch.metadata = Some(Arc::clone(&m));
                        for (_, q) in &ch.players {
                            q.push(Item::Metadata(Arc::clone(&m)), &self.shared.stats);
                        }
                    }
                }
                Ok(Vec::new())
            }
            ServerSessionEvent::VideoDataReceived {
                data, timestamp, ..
            } => {
                self.publish(MediaKind::Video, data, timestamp);
                Ok(Vec::new())
            }
            ServerSessionEvent::AudioDataReceived {
                data, timestamp, ..
            } => {
                self.publish(MediaKind::Audio, data, timestamp);
                Ok(Vec::new())
            }
            ServerSessionEvent::PublishStreamFinished { .. } => {
                self.leave();
                Ok(Vec::new())
            }
            ServerSessionEvent::PlayStreamFinished { .. } => {
                self.leave();
                Ok(Vec::new())
            }
            _ => Ok(Vec::new()),
        }
    }

    fn publish(&self, kind: MediaKind, data: Bytes, timestamp: RtmpTimestamp) {
        let Role::Publisher { key } = &self.role else {
            return;
        };
        let tag = (kind == MediaKind::Video)
            .then(|| flv::parse_video_tag(&data))
            .flatten();
        let media = Arc::new(Media::new(
            kind,
            timestamp.value,
            data,
            tag.is_some_and(|t| t.key),
        ));
        let header = media.header;
        let mut channels = lock(&self.shared.channels);
        let Some(ch) = channels.get_mut(key) else {
            return;
        };
        if header {
            match kind {
                MediaKind::Video => ch.video_header = Some(Arc::clone(&media)),
                MediaKind::Audio => ch.audio_header = Some(Arc::clone(&media)),
            }
        } else if self.shared.cfg.gop_cache {
            if media.key {
                ch.gop.clear();
            }
            if media.key || !ch.gop.is_empty() {
                ch.gop.push(Arc::clone(&media));
            }
        }
        let players = ch.fan_out_list();
        drop(channels);
        self.shared
            .fanout
            .hand(&players, &media, &self.shared.stats);
    }

    /// Leaves whatever role the connection had.
    fn leave(&mut self) {
        let role = std::mem::replace(&mut self.role, Role::None);
        let mut channels = lock(&self.shared.channels);
        match role {
            Role::None => {}
            Role::Publisher { key } => {
                if let Some(ch) = channels.get_mut(&key) {
                    ch.publisher = None;
                    ch.gop.clear();
                    for (_, q) in &ch.players {
                        q.push(Item::End, &self.shared.stats);
                    }
                }
            }
            Role::Player { key, queue, .. } => {
                if let Some(ch) = channels.get_mut(&key) {
                    ch.players.retain(|(id, _)| *id != self.id);
                    ch.queues = None;
                }
                self.shared
                    .stats
                    .frames_dropped
                    .fetch_add(queue.dropped(), Ordering::Relaxed);
                self.shared
                    .stats
                    .players_open
                    .fetch_sub(1, Ordering::Relaxed);
            }
        }
        if let Some(key) = channels
            .iter()
            .find(|(_, c)| c.publisher.is_none() && c.players.is_empty())
            .map(|(k, _)| k.clone())
        {
            channels.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn shared_chunks_parse_as_the_messages_they_carry() {
        use rml_rtmp::chunk_io::ChunkDeserializer;
        for (chunk_size, timestamp, len) in
            [(128, 33, 1000), (4096, 0x1ff_ffff, 10_000), (60000, 7, 5)]
        {
            let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let bytes = chunk_message(MediaKind::Video, 1, timestamp, &payload, chunk_size);
            let mut d = ChunkDeserializer::new();
            d.set_max_chunk_size(chunk_size as usize).unwrap();
            let m = d
                .get_next_message(&bytes)
                .unwrap()
                .expect("one whole message");
            assert_eq!(
                (m.type_id, m.message_stream_id, m.timestamp.value),
                (9, 1, timestamp)
            );
            assert_eq!(&m.data[..], &payload[..]);
        }
    }

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

    #[test]
    fn first_pings_spread_over_a_period() {
        let mut tenths = [0; 10];
        for id in 1..=100 {
            let f = spread(id);
            assert!((0.0..1.0).contains(&f));
            tenths[(f * 10.0) as usize] += 1;
        }
        assert!(tenths.iter().all(|&n| (5..=15).contains(&n)), "{tenths:?}");
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
