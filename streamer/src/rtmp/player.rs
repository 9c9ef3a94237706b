//! RTMP players: many light `rml_rtmp` play clients in one process, as a load and as a
//! measuring instrument.
//!
//! Each player connects, plays `app/key`, and counts frames and bytes. For every video frame it
//! marks `player:receive` on the probe with the frame's id (its presentation time in frame
//! periods), so a recorder that also saw `frame:capture` measures glass-to-glass latency (`e2e`).
//! Join time is connect → first complete keyframe received.

use super::client::RtmpUrl;
use super::flv;
use crate::probe::{Point, Probe};
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ClientSession, ClientSessionConfig, ClientSessionEvent, ClientSessionResult,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
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
        }
    }
}

/// Plays `url` until `stop` turns true or the connection ends.
///
/// # Errors
/// A description of why the connection ended early.
pub async fn play<P: Probe + Send + Sync + 'static>(
    url: RtmpUrl,
    fps: u32,
    probe: Arc<P>,
    counters: Arc<PlayerCounters>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), String> {
    let started = Instant::now();
    let result = async {
        let mut socket = TcpStream::connect((url.host.as_str(), url.port))
            .await
            .map_err(|e| e.to_string())?;
        socket.set_nodelay(true).map_err(|e| e.to_string())?;
        let rest = handshake(&mut socket).await?;
        let mut config = ClientSessionConfig::new();
        config.tc_url = Some(format!("rtmp://{}:{}/{}", url.host, url.port, url.app));
        let (mut session, initial) = ClientSession::new(config).map_err(|e| format!("{e:?}"))?;
        let mut out = Vec::new();
        let mut events = Vec::new();
        collect(initial, &mut out, &mut events);
        let r = session
            .request_connection(url.app.clone())
            .map_err(|e| format!("{e:?}"))?;
        collect(vec![r], &mut out, &mut events);
        let mut input = rest;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            if !input.is_empty() {
                let results = session.handle_input(&input).map_err(|e| format!("{e:?}"))?;
                input.clear();
                collect(results, &mut out, &mut events);
            }
            for e in events.drain(..) {
                match e {
                    ClientSessionEvent::ConnectionRequestAccepted => {
                        let r = session
                            .request_playback(url.key.clone())
                            .map_err(|e| format!("{e:?}"))?;
                        collect(vec![r], &mut out, &mut Vec::new());
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
                        let pts = i64::from(timestamp.value) + i64::from(tag.composition_ms);
                        let id = flv::frame_of_ms(pts, fps).max(0) as u64;
                        probe.mark(Point::PlayerReceive, id);
                        if counters.frames.load(Ordering::Relaxed) == 0 {
                            counters.first_frame_id.store(id, Ordering::Relaxed);
                            counters
                                .first_frame
                                .store(if tag.key { 1 } else { 2 }, Ordering::Relaxed);
                        }
                        counters.frames.fetch_add(1, Ordering::Relaxed);
                        if tag.key && counters.keyframes.fetch_add(1, Ordering::Relaxed) == 0 {
                            let us = started.elapsed().as_micros().max(1) as u64;
                            counters.join_us.store(us, Ordering::Relaxed);
                        }
                    }
                    ClientSessionEvent::AudioDataReceived { data, .. } => {
                        counters
                            .bytes
                            .fetch_add(data.len() as u64, Ordering::Relaxed);
                    }
                    ClientSessionEvent::ConnectionRequestRejected { description } => {
                        return Err(format!("connection refused: {description}"));
                    }
                    _ => {}
                }
            }
            if !out.is_empty() {
                socket.write_all(&out).await.map_err(|e| e.to_string())?;
                out.clear();
            }
            tokio::select! {
                read = socket.read(&mut buf) => match read {
                    Ok(0) => return Err("server closed the connection".to_string()),
                    Ok(n) => input.extend_from_slice(&buf[..n]),
                    Err(e) => return Err(e.to_string()),
                },
                _ = stop.changed() => return Ok(()),
            }
        }
    }
    .await;
    counters.ended.store(true, Ordering::Relaxed);
    result
}

fn collect(
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

async fn handshake(socket: &mut TcpStream) -> Result<Vec<u8>, String> {
    let mut hs = Handshake::new(PeerType::Client);
    let p0p1 = hs
        .generate_outbound_p0_and_p1()
        .map_err(|e| format!("{e:?}"))?;
    socket.write_all(&p0p1).await.map_err(|e| e.to_string())?;
    let mut buf = [0u8; 4096];
    loop {
        let n = socket.read(&mut buf).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("server closed during handshake".into());
        }
        match hs.process_bytes(&buf[..n]).map_err(|e| format!("{e:?}"))? {
            HandshakeProcessResult::InProgress { response_bytes } => {
                socket
                    .write_all(&response_bytes)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            HandshakeProcessResult::Completed {
                response_bytes,
                remaining_bytes,
            } => {
                socket
                    .write_all(&response_bytes)
                    .await
                    .map_err(|e| e.to_string())?;
                return Ok(remaining_bytes);
            }
        }
    }
}

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
