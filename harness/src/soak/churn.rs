//! The churn a soak puts the server under: a publisher that drops and comes back, players in
//! waves, players that stop reading, hostile connections.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use streamer::config::{Preset, StreamConfig};
use streamer::output::Output;
use streamer::probe::NoProbe;
use streamer::rtmp::client::RtmpUrl;
use streamer::rtmp::player::{PlayerLoad, PlayerReport};
use streamer::stream::{Pacing, Stream};

/// A small, seeded generator for the intervals (xorshift64*).
pub(super) struct Rng(pub(super) u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `[lo, hi)`.
    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Players the wave asks for at `t` seconds: a triangle from 0 up to `max` and back each
/// `wave_s`, held at 0 for the last tenth of each wave, at least 5 s (its bottom).
pub fn wave_target(t: f64, wave_s: f64, max: usize) -> usize {
    let phase = (t % wave_s) / wave_s;
    let rest = (5.0 / wave_s).clamp(0.1, 0.5);
    let up = (1.0 - rest) / 2.0;
    let level = if phase < up {
        phase / up
    } else if phase < 2.0 * up {
        (2.0 * up - phase) / up
    } else {
        0.0
    };
    (level * max as f64).round() as usize
}

/// The publisher's counters, shared with the main loop.
#[derive(Default)]
pub(super) struct PublisherCounters {
    pub(super) sessions: AtomicU64,
    pub(super) frames: AtomicU64,
    /// Frames the publisher itself dropped (pipeline or a lost connection), all sessions.
    pub(super) dropped: AtomicU64,
    pub(super) connected: AtomicBool,
}

pub(super) fn soak_config() -> StreamConfig {
    let mut cfg = StreamConfig::default();
    cfg.core.viewport.width = 320;
    cfg.core.viewport.height = 180;
    cfg.encoder.preset = Preset::Ultrafast;
    cfg.encoder.zerolatency = true;
    cfg.encoder.gop = 30;
    cfg
}

/// Publishes, drops and comes back until `stop`.
fn publisher(url: RtmpUrl, seed: u64, c: Arc<PublisherCounters>, stop: Arc<AtomicBool>) {
    let mut rng = Rng(seed ^ 0x9e37_79b9_7f4a_7c15);
    let cfg = soak_config();
    let output = Output::Rtmp(url);
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut stream) = Stream::open(&cfg, &output, &NoProbe) else {
            std::thread::sleep(Duration::from_secs(1));
            continue;
        };
        c.sessions.fetch_add(1, Ordering::Relaxed);
        c.connected.store(true, Ordering::Relaxed);
        let life = Duration::from_secs_f64(rng.range(10.0, 40.0));
        let began = Instant::now();
        let (mut frames, mut dropped) = (0, 0);
        while began.elapsed() < life && !stop.load(Ordering::Relaxed) {
            if stream.run(30, Pacing::Realtime).is_err() {
                break;
            }
            let (f, d) = (
                stream.sink_stats().frames_sent,
                stream.drops().total() + stream.sink_stats().dropped,
            );
            c.frames.fetch_add(f - frames, Ordering::Relaxed);
            c.dropped.fetch_add(d - dropped, Ordering::Relaxed);
            (frames, dropped) = (f, d);
        }
        if rng.next() % 2 == 0 {
            let _ = stream.finish();
        } else {
            drop(stream);
        }
        c.connected.store(false, Ordering::Relaxed);
        std::thread::sleep(Duration::from_secs_f64(rng.range(0.5, 3.0)));
    }
}

/// A player that plays and then never reads again.
fn stalled_reader(addr: SocketAddr) -> std::io::Result<TcpStream> {
    use rml_rtmp::sessions::{
        ClientSession, ClientSessionConfig, ClientSessionEvent, ClientSessionResult,
    };
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let rest = streamer::rtmp::client::handshake(&mut s)?;
    let fail = |e: &dyn std::fmt::Debug| std::io::Error::other(format!("{e:?}"));
    let (mut session, initial) =
        ClientSession::new(ClientSessionConfig::new()).map_err(|e| fail(&e))?;
    let mut pending = initial;
    pending.push(
        session
            .request_connection("live".into())
            .map_err(|e| fail(&e))?,
    );
    let mut input = rest;
    let mut buf = [0u8; 8192];
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let mut events = Vec::new();
        for r in pending.drain(..) {
            match r {
                ClientSessionResult::OutboundResponse(p) => s.write_all(&p.bytes)?,
                ClientSessionResult::RaisedEvent(e) => events.push(e),
                ClientSessionResult::UnhandleableMessageReceived(_) => {}
            }
        }
        for e in events {
            match e {
                ClientSessionEvent::ConnectionRequestAccepted => pending.push(
                    session
                        .request_playback("soak".into())
                        .map_err(|e| fail(&e))?,
                ),
                ClientSessionEvent::PlaybackRequestAccepted => return Ok(s),
                _ => {}
            }
        }
        if !pending.is_empty() {
            continue;
        }
        if !input.is_empty() {
            pending = session.handle_input(&input).map_err(|e| fail(&e))?;
            input.clear();
            continue;
        }
        let n = s.read(&mut buf)?;
        if n == 0 {
            return Err(std::io::Error::other("closed before playing"));
        }
        input.extend_from_slice(&buf[..n]);
    }
    Err(std::io::Error::other("no play within 5 s"))
}

/// One hostile connection of kind `k`, left open for the server to deal with.
fn hostile(addr: SocketAddr, k: u64, rng: &mut Rng) -> Option<TcpStream> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    let _ = s.set_write_timeout(Some(Duration::from_secs(1)));
    let junk: Vec<u8> = (0..4096).map(|_| rng.next() as u8).collect();
    match k % 4 {
        // Garbage where a handshake should be.
        0 => {
            let _ = s.write_all(&junk);
        }
        // A version the server does not speak.
        1 => {
            let _ = s.write_all(&[0x06]);
            let _ = s.write_all(&junk[..1536]);
        }
        // A handshake, then garbage chunks.
        2 => {
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            streamer::rtmp::client::handshake(&mut s).ok()?;
            let _ = s.write_all(&junk);
        }
        // Nothing at all (the handshake timeout's case).
        _ => {}
    }
    Some(s)
}

/// A group of ten players and the publisher's drop count when it started.
struct Group {
    load: PlayerLoad,
    dropped_at_start: u64,
}

/// The churn, running: the publisher's thread, the players' groups, the stalled readers and
/// the hostile connections held open.
pub(super) struct Churn {
    url: RtmpUrl,
    rtmp: SocketAddr,
    stop: Arc<AtomicBool>,
    pub(super) publisher: Arc<PublisherCounters>,
    publishing: JoinHandle<()>,
    rng: Rng,
    groups: Vec<Group>,
    /// Every player's report once its group left, and whether the publisher dropped frames
    /// while it played (which excuses frames it missed).
    pub(super) reports: Vec<(PlayerReport, bool)>,
    stalled: Vec<(Instant, TcpStream)>,
    hostiles: Vec<(Instant, TcpStream)>,
    pub(super) stalled_n: u64,
    pub(super) hostile_n: u64,
}

impl Churn {
    /// Starts the publisher against the server at `rtmp`.
    pub(super) fn start(rtmp: SocketAddr, seed: u64) -> Self {
        let url = RtmpUrl {
            tls: false,
            host: "127.0.0.1".into(),
            port: rtmp.port(),
            app: "live".into(),
            key: "soak".into(),
        };
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(PublisherCounters::default());
        let publishing = std::thread::spawn({
            let (url, c, stop) = (url.clone(), Arc::clone(&counters), Arc::clone(&stop));
            move || publisher(url, seed, c, stop)
        });
        Churn {
            url,
            rtmp,
            stop,
            publisher: counters,
            publishing,
            rng: Rng(seed.max(1)),
            groups: Vec::new(),
            reports: Vec::new(),
            stalled: Vec::new(),
            hostiles: Vec::new(),
            stalled_n: 0,
            hostile_n: 0,
        }
    }

    /// Players of ours now.
    pub(super) fn players(&self) -> usize {
        self.groups.len() * 10
    }

    /// Follows the wave's `target`, ten players at a time.
    pub(super) fn follow(&mut self, target: usize) {
        let want = target.div_ceil(10);
        while self.groups.len() < want {
            let Ok(load) = PlayerLoad::start(&self.url, 10, 30, Arc::new(NoProbe)) else {
                break;
            };
            self.groups.push(Group {
                load,
                dropped_at_start: self.publisher.dropped.load(Ordering::Relaxed),
            });
        }
        while self.groups.len() > want {
            let g = self.groups.remove(0);
            self.leave(g);
        }
    }

    fn leave(&mut self, g: Group) {
        let excused = self.publisher.dropped.load(Ordering::Relaxed) != g.dropped_at_start;
        self.reports
            .extend(g.load.stop().into_iter().map(|r| (r, excused)));
    }

    /// At second `tick`: a stalled reader every 20 s (held 30 s), a hostile connection every
    /// 2 s (held 15 s).
    pub(super) fn abuse(&mut self, tick: u64) {
        if tick % 20 == 5
            && let Ok(s) = stalled_reader(self.rtmp)
        {
            self.stalled.push((Instant::now(), s));
            self.stalled_n += 1;
        }
        self.stalled
            .retain(|(at, _)| at.elapsed() < Duration::from_secs(30));
        if tick % 2 == 1
            && let Some(s) = hostile(self.rtmp, self.hostile_n, &mut self.rng)
        {
            self.hostiles.push((Instant::now(), s));
            self.hostile_n += 1;
        }
        self.hostiles
            .retain(|(at, _)| at.elapsed() < Duration::from_secs(15));
    }

    /// Stops the publisher and the players (their reports kept) and waits for the publisher.
    /// The stalled readers and hostile connections stay open in what it returns until that is
    /// dropped.
    pub(super) fn stop(mut self) -> Ended {
        self.stop.store(true, Ordering::Relaxed);
        let groups: Vec<Group> = self.groups.drain(..).collect();
        for g in groups {
            self.leave(g);
        }
        let _ = self.publishing.join();
        let held = self
            .stalled
            .into_iter()
            .chain(self.hostiles)
            .map(|(_, s)| s)
            .collect();
        Ended {
            publisher: self.publisher,
            reports: self.reports,
            stalled_n: self.stalled_n,
            hostile_n: self.hostile_n,
            held,
        }
    }
}

/// The churn once stopped.
pub(super) struct Ended {
    pub(super) publisher: Arc<PublisherCounters>,
    pub(super) reports: Vec<(PlayerReport, bool)>,
    pub(super) stalled_n: u64,
    pub(super) hostile_n: u64,
    /// The stalled readers' and hostile connections, open until dropped.
    pub(super) held: Vec<TcpStream>,
}
