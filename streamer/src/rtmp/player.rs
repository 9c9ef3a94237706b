//! RTMP players: many light `rml_rtmp` play clients in one process, as a load and as a
//! measuring instrument.
//!
//! Each player connects, plays `app/key`, and counts frames and bytes. For every video frame it
//! marks `player:receive` on the probe with the frame's id (its presentation time in frame
//! periods), so a recorder that also saw `frame:capture` measures glass-to-glass latency (`e2e`).
//! The mark carries the moment the kernel received the frame's last segment on the player's
//! socket (`SO_TIMESTAMPNS`), not the moment this player got round to parsing it: hundreds of
//! players share two threads here, and their queueing is the instrument's, not the server's.
//! Join time is connect → first complete keyframe received.
//!
//! `rtmps://` players speak TLS through [`super::tls::ClientTls`] over the same reads, so their
//! arrival stamps are still the kernel's.

use super::client::RtmpUrl;
use super::{flv, handshake_driver};
use crate::probe::{Point, Probe};
use rml_rtmp::handshake::{HandshakeError, PeerType};
use rml_rtmp::sessions::{
    ClientSession, ClientSessionConfig, ClientSessionEvent, ClientSessionResult,
};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::TcpStream;
use tokio::sync::watch;

/// One player's counters, updated as it plays.
#[derive(Debug, Default)]
pub struct PlayerCounters {
    pub frames: AtomicU64,
    pub keyframes: AtomicU64,
    /// Video and audio payload bytes received.
    pub bytes: AtomicU64,
    /// Connect → first keyframe, µs (0 until then).
    pub join_us: AtomicU64,
    /// Whether the first frame received was a keyframe (1) or not (2); 0 before any.
    pub first_frame: AtomicU64,
    /// Id of the first frame received (valid once `frames` > 0).
    pub first_frame_id: AtomicU64,
    /// Playback accepted by the server.
    pub playing: AtomicBool,
    /// The connection ended (by error or stop).
    pub ended: AtomicBool,
    /// Time spent stalled, µs: over every gap between two frames' arrivals longer than two
    /// frame intervals, the part beyond those two intervals.
    pub stalled_us: AtomicU64,
    /// Id of the latest frame received (its presentation time in frame periods).
    pub last_frame_id: AtomicU64,
    /// The server said the stream ended (`onStatus NetStream.Play.UnpublishNotify`).
    pub told_ended: AtomicBool,
    /// Frames missing between two frames received: gaps in their decode timestamps (in frame
    /// periods) within one publish (a timestamp that goes back starts a new one).
    pub missed: AtomicU64,
}

/// A snapshot of one player.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlayerReport {
    pub frames: u64,
    pub keyframes: u64,
    pub bytes: u64,
    pub join: Option<Duration>,
    pub first_frame_key: Option<bool>,
    /// Id of the first frame received.
    pub first_frame_id: Option<u64>,
    pub playing: bool,
    pub ended: bool,
    /// Time stalled so far (see [`PlayerCounters::stalled_us`]).
    pub stalled: Duration,
    /// Id of the latest frame received (None before any).
    pub last_frame_id: Option<u64>,
    /// The server said the stream ended.
    pub told_ended: bool,
    /// Frames missing between frames received (see [`PlayerCounters::missed`]).
    pub missed: u64,
}

impl PlayerCounters {
    /// The counters now.
    pub fn report(&self) -> PlayerReport {
        let join = self.join_us.load(Ordering::Relaxed);
        PlayerReport {
            frames: self.frames.load(Ordering::Relaxed),
            keyframes: self.keyframes.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            join: (join > 0).then(|| Duration::from_micros(join)),
            first_frame_key: match self.first_frame.load(Ordering::Relaxed) {
                1 => Some(true),
                2 => Some(false),
                _ => None,
            },
            first_frame_id: (self.frames.load(Ordering::Relaxed) > 0)
                .then(|| self.first_frame_id.load(Ordering::Relaxed)),
            playing: self.playing.load(Ordering::Relaxed),
            ended: self.ended.load(Ordering::Relaxed),
            stalled: Duration::from_micros(self.stalled_us.load(Ordering::Relaxed)),
            last_frame_id: (self.frames.load(Ordering::Relaxed) > 0)
                .then(|| self.last_frame_id.load(Ordering::Relaxed)),
            told_ended: self.told_ended.load(Ordering::Relaxed),
            missed: self.missed.load(Ordering::Relaxed),
        }
    }
}

/// Why a player's connection ended early.
#[derive(Debug, thiserror::Error)]
pub enum PlayerError {
    /// Connecting, reading or writing.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Kernel arrival stamps could not be turned on.
    #[error("SO_TIMESTAMPNS: {0}")]
    Timestamps(std::io::Error),
    /// The TLS session failed.
    #[error("TLS: {0}")]
    Tls(String),
    /// The TLS client could not be set up, or could not seal what was to be sent.
    #[error("{0}")]
    TlsSetup(String),
    #[error("server closed the TLS session")]
    TlsClosed,
    #[error("server closed the connection")]
    Closed,
    #[error("server closed during handshake")]
    ClosedInHandshake,
    /// The server refused the connection or the stream.
    #[error("connection refused: {0}")]
    Refused(String),
    /// `rml_rtmp` refused the server's bytes or our request (its error as it prints itself).
    #[error("{0}")]
    Session(String),
    /// The server's bytes made `rml_rtmp` panic (contained to this player).
    #[error("the server's bytes made rml_rtmp panic: {0}")]
    Panic(String),
}

impl PlayerError {
    fn session(e: impl std::fmt::Debug) -> Self {
        PlayerError::Session(format!("{e:?}"))
    }
}

/// Plays `url` until `stop` turns true or the connection ends.
///
/// # Errors
/// Why the connection ended early ([`PlayerError`]).
pub async fn play<P: Probe + Send + Sync + 'static>(
    url: RtmpUrl,
    fps: u32,
    probe: Arc<P>,
    counters: Arc<PlayerCounters>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), PlayerError> {
    let started = Instant::now();
    let result = async {
        let mut socket = TcpStream::connect((url.host.as_str(), url.port)).await?;
        socket.set_nodelay(true)?;
        stamp_arrivals(&socket).map_err(PlayerError::Timestamps)?;
        let mut tls = match url.tls {
            true => {
                let mut tls = super::tls::ClientTls::new(&url.host)
                    .map_err(|e| PlayerError::TlsSetup(e.to_string()))?;
                let early = tls
                    .handshake_async(&mut socket)
                    .await
                    .map_err(|e| PlayerError::Tls(e.to_string()))?;
                Some((tls, early))
            }
            false => None,
        };
        let rest = handshake(&mut Handshaking {
            socket: &mut socket,
            tls: tls.as_mut(),
        })
        .await?;
        // Plaintext the RTMP handshake did not take comes after what it returned.
        let (mut tls, leftover) = match tls {
            Some((t, plain)) => (Some(t), plain),
            None => (None, Vec::new()),
        };
        let mut out = Vec::new();
        let mut playing = Playing::new(&url, fps, probe, Arc::clone(&counters), started, &mut out)?;
        let mut input = rest;
        input.extend_from_slice(&leftover);
        let mut arrived = Instant::now();
        let mut buf = vec![0u8; 64 * 1024];
        let mut sealed = Vec::new();
        // The server ended the TLS session: what came with its end is taken first.
        let mut tls_closed = false;
        loop {
            if !input.is_empty() {
                playing.take(&input, arrived, &mut out)?;
                input.clear();
            }
            if tls_closed {
                return Err(PlayerError::TlsClosed);
            }
            if !out.is_empty() {
                let bytes = match &mut tls {
                    Some(tls) => {
                        sealed.clear();
                        tls.seal(&out, &mut sealed)
                            .map_err(|e| PlayerError::TlsSetup(e.to_string()))?;
                        &sealed
                    }
                    None => &out,
                };
                socket.write_all(bytes).await?;
                out.clear();
            }
            tokio::select! {
                ready = socket.readable() => {
                    ready?;
                    match socket.try_io(Interest::READABLE, || recv_stamped(&socket, &mut buf)) {
                        Ok((0, _)) => return Err(PlayerError::Closed),
                        Ok((n, at)) => {
                            match &mut tls {
                                Some(tls) => {
                                    tls_closed = !tls
                                        .open(&buf[..n], &mut input)
                                        .map_err(|e| PlayerError::Tls(e.to_string()))?;
                                }
                                None => input.extend_from_slice(&buf[..n]),
                            }
                            arrived = at;
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(e) => return Err(e.into()),
                    }
                },
                _ = stop.changed() => return Ok(()),
            }
        }
    }
    .await;
    counters.ended.store(true, Ordering::Relaxed);
    result
}

/// A player's session without its socket: the server's bytes in, what to send back out, and
/// the counters and probe marks for what arrived. [`play`] runs it over a socket; the fuzzing
/// harness ([`super::fuzz_client::client_input`]) runs it over arbitrary bytes.
pub(crate) struct Playing<P> {
    session: ClientSession,
    key: String,
    fps: u32,
    probe: Arc<P>,
    counters: Arc<PlayerCounters>,
    started: Instant,
    last_frame: Option<Instant>,
    stall_after: Duration,
    /// The latest frame's decode timestamp in frame periods.
    last_dts: Option<i64>,
}

impl<P: Probe> Playing<P> {
    /// A session that asks to connect to `url`'s app (the request appended to `out`) and then
    /// to play its key.
    pub(crate) fn new(
        url: &RtmpUrl,
        fps: u32,
        probe: Arc<P>,
        counters: Arc<PlayerCounters>,
        started: Instant,
        out: &mut Vec<u8>,
    ) -> Result<Self, PlayerError> {
        let mut config = ClientSessionConfig::new();
        config.tc_url = Some(url.app_url());
        let (mut session, initial) = ClientSession::new(config).map_err(PlayerError::session)?;
        let mut events = Vec::new();
        collect(initial, out, &mut events);
        let r = session
            .request_connection(url.app.clone())
            .map_err(PlayerError::session)?;
        collect(vec![r], out, &mut events);
        let mut playing = Playing {
            session,
            key: url.key.clone(),
            fps,
            probe,
            counters,
            started,
            last_frame: None,
            stall_after: Duration::from_secs(2) / fps.max(1),
            last_dts: None,
        };
        playing.handle(events, Instant::now(), out)?;
        Ok(playing)
    }

    /// Takes bytes from the server that arrived at `arrived`; appends what to answer to `out`.
    ///
    /// # Errors
    /// Why the connection must end: the server refused, or its bytes are not RTMP (a panic
    /// of `rml_rtmp` on them included, contained to this player).
    pub(crate) fn take(
        &mut self,
        input: &[u8],
        arrived: Instant,
        out: &mut Vec<u8>,
    ) -> Result<(), PlayerError> {
        let results = super::server::contain::contained(|| self.session.handle_input(input))
            .map_err(|p| PlayerError::Panic(p.to_string()))?
            .map_err(PlayerError::session)?;
        let mut events = Vec::new();
        collect(results, out, &mut events);
        self.handle(events, arrived, out)
    }

    fn handle(
        &mut self,
        events: Vec<ClientSessionEvent>,
        arrived: Instant,
        out: &mut Vec<u8>,
    ) -> Result<(), PlayerError> {
        let counters = &self.counters;
        for e in events {
            match e {
                ClientSessionEvent::ConnectionRequestAccepted => {
                    let r = self
                        .session
                        .request_playback(self.key.clone())
                        .map_err(PlayerError::session)?;
                    collect(vec![r], out, &mut Vec::new());
                }
                ClientSessionEvent::PlaybackRequestAccepted => {
                    counters.playing.store(true, Ordering::Relaxed);
                }
                ClientSessionEvent::VideoDataReceived { timestamp, data } => {
                    counters
                        .bytes
                        .fetch_add(data.len() as u64, Ordering::Relaxed);
                    let Some(tag) = flv::parse_video_tag(&data) else {
                        continue;
                    };
                    if tag.sequence_header {
                        continue;
                    }
                    let dts = flv::frame_of_ms(i64::from(timestamp.value), self.fps);
                    if let Some(last) = self.last_dts.replace(dts)
                        && dts > last + 1
                    {
                        let gap = (dts - last - 1) as u64;
                        counters.missed.fetch_add(gap, Ordering::Relaxed);
                    }
                    let pts = i64::from(timestamp.value) + i64::from(tag.composition_ms);
                    let id = flv::frame_of_ms(pts, self.fps).max(0) as u64;
                    self.probe.mark_at(Point::PlayerReceive, id, arrived);
                    if counters.frames.load(Ordering::Relaxed) == 0 {
                        counters.first_frame_id.store(id, Ordering::Relaxed);
                        counters
                            .first_frame
                            .store(if tag.key { 1 } else { 2 }, Ordering::Relaxed);
                    }
                    counters.last_frame_id.store(id, Ordering::Relaxed);
                    counters.frames.fetch_add(1, Ordering::Relaxed);
                    if let Some(gap) = self
                        .last_frame
                        .map(|l| arrived.saturating_duration_since(l))
                        && gap > self.stall_after
                    {
                        let us = (gap - self.stall_after).as_micros() as u64;
                        counters.stalled_us.fetch_add(us, Ordering::Relaxed);
                    }
                    self.last_frame = Some(arrived);
                    if tag.key && counters.keyframes.fetch_add(1, Ordering::Relaxed) == 0 {
                        let us = self.started.elapsed().as_micros().max(1) as u64;
                        counters.join_us.store(us, Ordering::Relaxed);
                    }
                }
                ClientSessionEvent::AudioDataReceived { data, .. } => {
                    counters
                        .bytes
                        .fetch_add(data.len() as u64, Ordering::Relaxed);
                }
                ClientSessionEvent::ConnectionRequestRejected { description } => {
                    return Err(PlayerError::Refused(description));
                }
                ClientSessionEvent::UnhandleableOnStatusCode { code }
                    if code == "NetStream.Play.UnpublishNotify" =>
                {
                    counters.told_ended.store(true, Ordering::Relaxed);
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// Asks the kernel to stamp each received segment with its arrival time (`SO_TIMESTAMPNS`).
fn stamp_arrivals(socket: &TcpStream) -> std::io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: a valid socket descriptor and a c_int option value of the size given.
    let r = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            (&raw const on).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Reads what is there, with the moment the kernel received the last segment read (now, when
/// the kernel gave no stamp): when the bytes reached this player, before it got round to them.
fn recv_stamped(socket: &TcpStream, buf: &mut [u8]) -> std::io::Result<(usize, Instant)> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // Room for one SCM_TIMESTAMPNS control message (a timespec), aligned for cmsghdr.
    let mut control = [0u64; 8];
    // SAFETY: msghdr is plain data; every pointer set below outlives the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control);
    // SAFETY: a valid descriptor and a msghdr whose buffers are valid for their lengths.
    let n = unsafe { libc::recvmsg(socket.as_raw_fd(), &raw mut msg, libc::MSG_DONTWAIT) };
    let (now, wall) = (Instant::now(), SystemTime::now());
    let n = usize::try_from(n).map_err(|_| std::io::Error::last_os_error())?;
    let mut at = now;
    // SAFETY: the CMSG_* walk stays within `msg_controllen`, which the kernel set.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&raw const msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                let ts = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::timespec>());
                let stamped = UNIX_EPOCH
                    + Duration::new(
                        ts.tv_sec.max(0) as u64,
                        ts.tv_nsec.clamp(0, 999_999_999) as u32,
                    );
                // The kernel stamps with the wall clock: carry its age over to the monotonic one.
                if let Ok(age) = wall.duration_since(stamped) {
                    at = now.checked_sub(age).unwrap_or(now);
                }
            }
            c = libc::CMSG_NXTHDR(&raw const msg, c);
        }
    }
    Ok((n, at))
}

pub(super) fn collect(
    results: Vec<ClientSessionResult>,
    out: &mut Vec<u8>,
    events: &mut Vec<ClientSessionEvent>,
) {
    for r in results {
        match r {
            ClientSessionResult::OutboundResponse(p) => out.extend_from_slice(&p.bytes),
            ClientSessionResult::RaisedEvent(e) => events.push(e),
            ClientSessionResult::UnhandleableMessageReceived(_) => {}
        }
    }
}

async fn handshake(link: &mut Handshaking<'_>) -> Result<Vec<u8>, PlayerError> {
    handshake_driver::run(link, PeerType::Client).await
}

/// A player's connection as a handshake transport: the socket, and its TLS session with the
/// plaintext that came with the end of the TLS handshake.
struct Handshaking<'a> {
    socket: &'a mut TcpStream,
    tls: Option<&'a mut (super::tls::ClientTls, Vec<u8>)>,
}

impl handshake_driver::Transport for Handshaking<'_> {
    type Error = PlayerError;

    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, PlayerError> {
        let Some((tls, plain)) = self.tls.as_deref_mut() else {
            return Ok(self.socket.read(buf).await?);
        };
        let mut raw = vec![0u8; 16 * 1024];
        while plain.is_empty() {
            let n = self.socket.read(&mut raw).await?;
            if n == 0
                || !tls
                    .open(&raw[..n], plain)
                    .map_err(|e| PlayerError::Tls(e.to_string()))?
            {
                return Ok(0);
            }
        }
        let n = buf.len().min(plain.len());
        buf[..n].copy_from_slice(&plain[..n]);
        plain.drain(..n);
        Ok(n)
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), PlayerError> {
        let sealed;
        let bytes = match self.tls.as_deref_mut() {
            Some((tls, _)) => {
                let mut out = Vec::new();
                tls.seal(bytes, &mut out)
                    .map_err(|e| PlayerError::Tls(e.to_string()))?;
                sealed = out;
                &sealed
            }
            None => bytes,
        };
        Ok(self.socket.write_all(bytes).await?)
    }

    fn closed(&mut self) -> PlayerError {
        PlayerError::ClosedInHandshake
    }

    fn refused(&mut self, e: HandshakeError) -> PlayerError {
        PlayerError::session(e)
    }
}

/// The players' threads run under `SCHED_IDLE`: only on CPU time nothing else wants. Real
/// players are on other machines; these share the cores of the server they measure, and at
/// the default priority a player woken by a frame preempts the server while it is still
/// handing that frame to the others, which then counts as server latency (relay p99 at 100
/// players 2.4 → 1.8 ms here at nice 10, about 1.5 ms under `SCHED_IDLE`). They still get every
/// core the server and publisher leave idle (400 players keep real time here), and every server
/// measured gets the same. Where `SCHED_IDLE` is refused, they run at this niceness instead.
const PLAYER_NICE: libc::c_int = 10;

/// N players in this process, on their own runtime.
pub struct PlayerLoad {
    runtime: Option<tokio::runtime::Runtime>,
    counters: Vec<Arc<PlayerCounters>>,
    stop: watch::Sender<bool>,
}

impl PlayerLoad {
    /// Starts `n` players of `url` at stream rate `fps`, marking on `probe`.
    ///
    /// # Errors
    /// The runtime could not start.
    pub fn start<P: Probe + Send + Sync + 'static>(
        url: &RtmpUrl,
        n: usize,
        fps: u32,
        probe: Arc<P>,
    ) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("rtmp-players")
            .on_thread_start(|| {
                // SAFETY: plain FFI call; `0` is the calling thread (Linux applies
                // PRIO_PROCESS to the one thread). Failure only leaves the default priority.
                unsafe {
                    let idle = libc::sched_param { sched_priority: 0 };
                    if libc::sched_setscheduler(0, libc::SCHED_IDLE, &idle) != 0 {
                        libc::setpriority(libc::PRIO_PROCESS, 0, PLAYER_NICE);
                    }
                }
            })
            .enable_all()
            .build()?;
        let (stop, rx) = watch::channel(false);
        let counters: Vec<Arc<PlayerCounters>> = (0..n).map(|_| Arc::default()).collect();
        for c in &counters {
            let fut = play(
                url.clone(),
                fps,
                Arc::clone(&probe),
                Arc::clone(c),
                rx.clone(),
            );
            runtime.spawn(async move {
                let _ = fut.await;
            });
        }
        Ok(PlayerLoad {
            runtime: Some(runtime),
            counters,
            stop,
        })
    }

    /// Waits until every player is playing (or has ended), at most `limit`; true when all play.
    pub fn wait_playing(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            let reports = self.reports();
            if reports.iter().all(|r| r.playing) {
                return true;
            }
            if reports.iter().all(|r| r.playing || r.ended) || Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Every player's counters now.
    pub fn reports(&self) -> Vec<PlayerReport> {
        self.counters.iter().map(|c| c.report()).collect()
    }

    /// Stops every player and returns their final counters.
    pub fn stop(mut self) -> Vec<PlayerReport> {
        let _ = self.stop.send(true);
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_secs(1));
        }
        self.reports()
    }
}

impl Drop for PlayerLoad {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_secs(1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_in_the_frames_timestamps_count_as_missed_and_a_new_publish_does_not() {
        let url: RtmpUrl = "rtmp://h/live/k".parse().unwrap();
        let counters = Arc::new(PlayerCounters::default());
        let now = Instant::now();
        let mut out = Vec::new();
        let mut p = Playing::new(
            &url,
            30,
            Arc::new(crate::probe::NoProbe),
            Arc::clone(&counters),
            now,
            &mut out,
        )
        .unwrap();
        let frame = |ms: u32, key: bool| ClientSessionEvent::VideoDataReceived {
            timestamp: rml_rtmp::time::RtmpTimestamp::new(ms),
            data: bytes::Bytes::from(vec![if key { 0x17 } else { 0x27 }, 1, 0, 0, 0, 0, 0, 0, 1]),
        };
        // Frames 0, 1, 2, then 5 (3 and 4 missing), then a new publish from 0.
        let events = [0, 33, 67, 167, 0, 33]
            .iter()
            .enumerate()
            .map(|(i, &ms)| frame(ms, i == 0 || i == 4))
            .collect();
        p.handle(events, now, &mut out).unwrap();
        let r = counters.report();
        assert_eq!(r.frames, 6);
        assert_eq!(r.missed, 2);
    }

    #[tokio::test]
    async fn the_arrival_stamp_is_when_the_bytes_came_not_when_they_were_read() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let reader = TcpStream::connect(addr).await.unwrap();
        stamp_arrivals(&reader).unwrap();
        let (mut writer, _) = listener.accept().await.unwrap();
        let sent = Instant::now();
        writer.write_all(b"a frame").await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        // The bytes have been in the socket since before this moment; the read comes after it.
        let waited = Instant::now();
        reader.readable().await.unwrap();
        let mut buf = [0u8; 64];
        let (n, at) = reader
            .try_io(Interest::READABLE, || recv_stamped(&reader, &mut buf))
            .unwrap();
        assert_eq!(&buf[..n], b"a frame");
        // The wall-to-monotonic carry-over may be off by microseconds, never by a millisecond.
        assert!(
            at <= waited + Duration::from_millis(1),
            "stamped {:?} after the bytes had arrived: the read's time, not the arrival's",
            at.duration_since(waited)
        );
        assert!(
            at + Duration::from_millis(1) >= sent,
            "stamped {:?} before the send",
            sent.duration_since(at)
        );
    }
}
