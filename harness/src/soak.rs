//! The soak (`cargo xtask soak`): the embedded server (`stream-manager serve`, its own process)
//! for a long run under churn, sampled every second, with a verdict on whether anything leaks.
//!
//! - One publisher (this process, 320×180@30 ultrafast) publishes for a random 10–40 s, then
//!   goes away (half the time closing properly, half the time dropping the connection), and
//!   comes back after a random 0.5–3 s.
//! - Players join and leave continuously in groups of ten, their number following waves from
//!   none up to `max_players` and back (`wave_s` a wave); at the bottom of each wave there are
//!   none for a few seconds.
//! - Every 20 s a player that plays and then stops reading (the server must close it for its
//!   silence past `rtmp.ping_timeout`, 10 s here); every 2 s a hostile connection (garbage
//!   instead of a handshake, a wrong version, a handshake followed by garbage, or a
//!   connection that says nothing).
//! - Every second: the server's resident memory, open file descriptors and threads (from
//!   `/proc`), and from its `/metrics` the connections and players open and the items in the
//!   players' queues.
//!
//! It fails when resident memory trends upward after the first minute (a least-squares slope
//! above `rss_bound_mib` per 10 minutes), when file descriptors or threads are not back to
//! their idle count at the bottom of every wave (descriptors counted beyond one per open
//! connection), when a player that kept reading missed a frame it should have had (a gap in
//! its frames' timestamps while the publisher itself dropped none), or when the server exits.

use crate::results::write_atomic;
use crate::system::{Machine, commit};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use streamer::config::{Preset, StreamConfig};
use streamer::output::Output;
use streamer::probe::NoProbe;
use streamer::rtmp::client::RtmpUrl;
use streamer::rtmp::player::{PlayerLoad, PlayerReport};
use streamer::stream::{Pacing, Stream};

/// How to soak.
#[derive(Debug, Clone)]
pub struct SoakOptions {
    /// How long.
    pub duration: Duration,
    /// Players at the top of each wave.
    pub max_players: usize,
    /// Seconds a wave takes, up and down.
    pub wave_s: f64,
    /// Seed of the random intervals (printed, so a run can be repeated).
    pub seed: u64,
    /// The resident-memory slope allowed after the warm-up, MiB per 10 minutes.
    pub rss_bound_mib: f64,
    /// Seconds left out of the memory trend at the start (60 for a real soak).
    pub warmup_s: f64,
    /// `stream-manager`.
    pub stream_manager: PathBuf,
}

/// One second's sample of the server.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SoakSample {
    pub t_s: f64,
    pub rss_bytes: u64,
    pub fds: u64,
    pub threads: u64,
    pub connections_open: u64,
    pub players_open: u64,
    pub queued_items: u64,
    /// Players the wave asked for then.
    pub players_target: u64,
    /// The publisher was connected.
    pub publishing: bool,
}

/// The bottom of a wave: no players of ours for a few seconds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Trough {
    pub t_s: f64,
    /// Descriptors beyond the idle count and one per open connection, the least over the
    /// bottom's samples: a connection caught between its accept and its count, or between
    /// its slot's release and its close, is there for one sample; a leak stays.
    pub fd_excess: i64,
    /// Threads beyond the idle count (the least over the bottom's samples).
    pub thread_excess: i64,
    pub connections_open: u64,
}

/// A verdict line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Check {
    pub what: String,
    pub passed: bool,
    pub measured: String,
}

/// A soak's results (`results/soak/latest.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SoakResults {
    pub commit: String,
    pub machine: Machine,
    pub started: String,
    pub seconds: f64,
    pub seed: u64,
    pub max_players: usize,
    pub wave_s: f64,
    pub idle_fds: u64,
    pub idle_threads: u64,
    pub samples: Vec<SoakSample>,
    pub troughs: Vec<Trough>,
    pub rss_slope_mib_per_10min: f64,
    pub rss_bound_mib: f64,
    pub publisher_sessions: u64,
    pub publisher_frames: u64,
    pub publisher_dropped: u64,
    pub players: u64,
    pub players_missed_frames: u64,
    /// Players whose missed frames fall on the publisher's own drops (not the server's).
    pub players_excused: u64,
    pub frames_received: u64,
    pub stalled_readers: u64,
    pub hostile: u64,
    pub server_timed_out: u64,
    pub server_protocol_errors: u64,
    pub server_panics: u64,
    pub server_exit: Option<String>,
    pub checks: Vec<Check>,
    pub passed: bool,
}

impl SoakResults {
    /// Where a soak's results go under the results folder.
    pub fn path(root: &Path) -> PathBuf {
        root.join("soak").join("latest.json")
    }

    /// Reads a soak's results.
    pub fn load(root: &Path) -> Option<Self> {
        let text = std::fs::read_to_string(Self::path(root)).ok()?;
        serde_json::from_str(&text).ok()
    }
}

/// A small, seeded generator for the intervals (xorshift64*).
struct Rng(u64);

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

/// The server, killed when dropped; its stderr's last lines kept for when it exits.
struct ServerProc {
    child: Child,
    rtmp: SocketAddr,
    metrics: String,
    last_lines: Arc<Mutex<Vec<String>>>,
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(exe: &Path) -> Result<ServerProc, String> {
    let mut child = Command::new(exe)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--metrics",
            "127.0.0.1:0",
            "--ping",
            "5",
            "--ping-timeout",
            "10",
            "--set",
            "rtmp.max_connections=2000",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{}: {e}", exe.display()))?;
    let stderr = child.stderr.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    let last_lines = Arc::new(Mutex::new(Vec::new()));
    let keep = Arc::clone(&last_lines);
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line.clone());
            let mut k = keep.lock().unwrap_or_else(|e| e.into_inner());
            k.push(line);
            if k.len() > 20 {
                k.remove(0);
            }
        }
    });
    let (mut rtmp, mut metrics) = (None, None);
    while rtmp.is_none() || metrics.is_none() {
        let line = rx
            .recv_timeout(Duration::from_secs(10))
            .map_err(|_| "the server did not announce its addresses within 10 s".to_string())?;
        if let Some(rest) = line.strip_prefix("metrics: http://") {
            metrics = rest.strip_suffix("/metrics").map(String::from);
        }
        if let Some(rest) = line.strip_prefix("serving RTMP on rtmp://") {
            rtmp = rest.split('/').next().and_then(|a| a.parse().ok());
        }
    }
    Ok(ServerProc {
        child,
        rtmp: rtmp.expect("parsed"),
        metrics: metrics.expect("parsed"),
        last_lines,
    })
}

/// `name value` lines of a Prometheus text exposition: the value of `name`.
fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| {
            let (n, v) = l.split_once(' ')?;
            (n == name).then(|| v.trim().parse::<f64>().ok())?
        })
        .map_or(0, |v| v as u64)
}

fn scrape(addr: &str) -> String {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n");
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    text
}

/// `Name:  value` from `/proc/PID/status`.
fn status_field(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                let rest = l.strip_prefix(field)?.strip_prefix(':')?;
                rest.split_whitespace().next()?.parse().ok()
            })
        })
        .unwrap_or(0)
}

fn open_fds(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64)
}

/// Least-squares slope of `points` (x, y).
pub fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let (mx, my) = points
        .iter()
        .fold((0.0, 0.0), |(a, b), (x, y)| (a + x / n, b + y / n));
    let (num, den) = points.iter().fold((0.0, 0.0), |(a, b), (x, y)| {
        (a + (x - mx) * (y - my), b + (x - mx) * (x - mx))
    });
    if den == 0.0 { 0.0 } else { num / den }
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
struct PublisherCounters {
    sessions: AtomicU64,
    frames: AtomicU64,
    /// Frames the publisher itself dropped (pipeline or a lost connection), all sessions.
    dropped: AtomicU64,
    connected: AtomicBool,
}

fn soak_config() -> StreamConfig {
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

/// Runs the soak; `progress` gets a line every 10 s.
///
/// # Errors
/// The server cannot start.
pub fn run(opts: &SoakOptions, progress: impl Fn(&str)) -> Result<SoakResults, String> {
    let started = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let machine = Machine::detect();
    let mut server = start_server(&opts.stream_manager)?;
    let pid = server.child.id();
    let url = RtmpUrl {
        tls: false,
        host: "127.0.0.1".into(),
        port: server.rtmp.port(),
        app: "live".into(),
        key: "soak".into(),
    };
    std::thread::sleep(Duration::from_millis(500));
    // Idle: no connection but the metrics scrape's, which has closed once read.
    let _ = scrape(&server.metrics);
    std::thread::sleep(Duration::from_millis(200));
    let (idle_fds, idle_threads) = (open_fds(pid), status_field(pid, "Threads"));
    let stop = Arc::new(AtomicBool::new(false));
    let pub_counters = Arc::new(PublisherCounters::default());
    let publishing = std::thread::spawn({
        let (url, c, stop, seed) = (
            url.clone(),
            Arc::clone(&pub_counters),
            Arc::clone(&stop),
            opts.seed,
        );
        move || publisher(url, seed, c, stop)
    });
    let mut rng = Rng(opts.seed.max(1));
    let mut groups: Vec<Group> = Vec::new();
    let mut reports: Vec<(PlayerReport, bool)> = Vec::new();
    let mut stalled: Vec<(Instant, TcpStream)> = Vec::new();
    let mut hostiles: Vec<(Instant, TcpStream)> = Vec::new();
    let (mut stalled_n, mut hostile_n) = (0u64, 0u64);
    let mut samples = Vec::new();
    let mut troughs: Vec<Trough> = Vec::new();
    let mut empty_since: Option<f64> = None;
    let mut trough_taken = false;
    let mut server_exit = None;
    let began = Instant::now();
    let mut last_text = String::new();
    let mut tick = 0u64;
    while began.elapsed() < opts.duration {
        let t = began.elapsed().as_secs_f64();
        // Players: follow the wave, ten at a time.
        let target = wave_target(t, opts.wave_s, opts.max_players);
        let want = target.div_ceil(10);
        while groups.len() < want {
            let Ok(load) = PlayerLoad::start(&url, 10, 30, Arc::new(NoProbe)) else {
                break;
            };
            groups.push(Group {
                load,
                dropped_at_start: pub_counters.dropped.load(Ordering::Relaxed),
            });
        }
        while groups.len() > want {
            let g = groups.remove(0);
            let excused = pub_counters.dropped.load(Ordering::Relaxed) != g.dropped_at_start;
            reports.extend(g.load.stop().into_iter().map(|r| (r, excused)));
        }
        // A stalled reader every 20 s (held 30 s), a hostile connection every 2 s (held 15 s).
        if tick % 20 == 5
            && let Ok(s) = stalled_reader(server.rtmp)
        {
            stalled.push((Instant::now(), s));
            stalled_n += 1;
        }
        stalled.retain(|(at, _)| at.elapsed() < Duration::from_secs(30));
        if tick % 2 == 1
            && let Some(s) = hostile(server.rtmp, hostile_n, &mut rng)
        {
            hostiles.push((Instant::now(), s));
            hostile_n += 1;
        }
        hostiles.retain(|(at, _)| at.elapsed() < Duration::from_secs(15));
        // Sample.
        if let Ok(Some(status)) = server.child.try_wait() {
            let lines = server
                .last_lines
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .join("\n");
            server_exit = Some(format!("{status}; its last lines:\n{lines}"));
            break;
        }
        // The process first, then its metrics (whose connection would count as a descriptor).
        let (rss, fds, threads) = (
            status_field(pid, "VmRSS") * 1024,
            open_fds(pid),
            status_field(pid, "Threads"),
        );
        let text = scrape(&server.metrics);
        let sample = SoakSample {
            t_s: t,
            rss_bytes: rss,
            fds,
            threads,
            connections_open: metric(&text, "stream_manager_server_connections_open"),
            players_open: metric(&text, "stream_manager_server_players_open"),
            queued_items: metric(&text, "stream_manager_server_player_queue_items"),
            players_target: target as u64,
            publishing: pub_counters.connected.load(Ordering::Relaxed),
        };
        // The bottom of a wave: none of our players for 3 s and the server agrees.
        if groups.is_empty() {
            let since = *empty_since.get_or_insert(t);
            if t - since >= 3.0 && sample.players_open == 0 {
                let now = Trough {
                    t_s: t,
                    fd_excess: sample.fds as i64 - sample.connections_open as i64 - idle_fds as i64,
                    thread_excess: sample.threads as i64 - idle_threads as i64,
                    connections_open: sample.connections_open,
                };
                match troughs.last_mut() {
                    Some(last) if trough_taken => {
                        last.fd_excess = last.fd_excess.min(now.fd_excess);
                        last.thread_excess = last.thread_excess.min(now.thread_excess);
                    }
                    _ => troughs.push(now),
                }
                trough_taken = true;
            }
        } else {
            empty_since = None;
            trough_taken = false;
        }
        if tick % 10 == 0 {
            progress(&format!(
                "soak {:>5.0}/{:.0} s: {} players (wave {}), RSS {:.1} MiB, {} fds, {} threads, \
                 {} queued, publisher session {}{}, {} stalled readers and {} hostile so far",
                t,
                opts.duration.as_secs_f64(),
                sample.players_open,
                target,
                sample.rss_bytes as f64 / 1048576.0,
                sample.fds,
                sample.threads,
                sample.queued_items,
                pub_counters.sessions.load(Ordering::Relaxed),
                if sample.publishing { "" } else { " (away)" },
                stalled_n,
                hostile_n,
            ));
        }
        samples.push(sample);
        last_text = text;
        tick += 1;
        let next = Duration::from_secs(tick);
        if let Some(wait) = next.checked_sub(began.elapsed()) {
            std::thread::sleep(wait);
        }
    }
    stop.store(true, Ordering::Relaxed);
    for g in groups.drain(..) {
        let excused = pub_counters.dropped.load(Ordering::Relaxed) != g.dropped_at_start;
        reports.extend(g.load.stop().into_iter().map(|r| (r, excused)));
    }
    let _ = publishing.join();
    if server_exit.is_none() && !last_text.is_empty() {
        last_text = scrape(&server.metrics);
    }
    let seconds = began.elapsed().as_secs_f64();
    drop(stalled);
    drop(hostiles);
    let rss_points: Vec<(f64, f64)> = samples
        .iter()
        .filter(|s| s.t_s >= opts.warmup_s)
        .map(|s| (s.t_s / 60.0, s.rss_bytes as f64 / 1048576.0))
        .collect();
    let rss_slope = slope(&rss_points) * 10.0;
    let missed: Vec<&(PlayerReport, bool)> = reports.iter().filter(|(r, _)| r.missed > 0).collect();
    let players_missed = missed.iter().filter(|(_, excused)| !excused).count() as u64;
    let players_excused = missed.iter().filter(|(_, excused)| *excused).count() as u64;
    // Each wave bottom's excess of one kind, in order.
    let excesses = |of: fn(&Trough) -> i64| {
        troughs
            .iter()
            .map(|t| of(t).to_string())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut checks = vec![
        Check {
            what: format!(
                "resident memory slope after the first {:.0} s ≤ {} MiB per 10 min",
                opts.warmup_s, opts.rss_bound_mib
            ),
            passed: rss_points.len() >= 2 && rss_slope <= opts.rss_bound_mib,
            measured: if rss_points.len() >= 2 {
                format!(
                    "{rss_slope:+.3} MiB per 10 min over {} samples",
                    rss_points.len()
                )
            } else {
                "too short to fit (nothing after the warm-up)".into()
            },
        },
        Check {
            what: "file descriptors back to idle (plus one per open connection) at the bottom \
                   of every wave"
                .into(),
            passed: !troughs.is_empty() && troughs.iter().all(|t| t.fd_excess <= 0),
            measured: format!(
                "{} wave bottoms, excess {}",
                troughs.len(),
                excesses(|t| t.fd_excess)
            ),
        },
        Check {
            what: "threads back to idle at the bottom of every wave".into(),
            passed: !troughs.is_empty() && troughs.iter().all(|t| t.thread_excess <= 0),
            measured: format!(
                "idle {idle_threads}; excess {}",
                excesses(|t| t.thread_excess)
            ),
        },
        Check {
            what: "no frame missed by a player that kept reading".into(),
            passed: players_missed == 0,
            measured: format!(
                "{} players, {} missed frames the publisher sent ({} more missed only what the \
                 publisher itself dropped)",
                reports.len(),
                players_missed,
                players_excused
            ),
        },
    ];
    checks.push(Check {
        what: "the server never exited".into(),
        passed: server_exit.is_none(),
        measured: server_exit
            .clone()
            .unwrap_or_else(|| "ran throughout".into()),
    });
    let passed = checks.iter().all(|c| c.passed);
    let counter = |name| metric(&last_text, name);
    Ok(SoakResults {
        commit: commit(),
        machine,
        started,
        seconds,
        seed: opts.seed,
        max_players: opts.max_players,
        wave_s: opts.wave_s,
        idle_fds,
        idle_threads,
        samples,
        troughs,
        rss_slope_mib_per_10min: rss_slope,
        rss_bound_mib: opts.rss_bound_mib,
        publisher_sessions: pub_counters.sessions.load(Ordering::Relaxed),
        publisher_frames: pub_counters.frames.load(Ordering::Relaxed),
        publisher_dropped: pub_counters.dropped.load(Ordering::Relaxed),
        players: reports.len() as u64,
        players_missed_frames: players_missed,
        players_excused,
        frames_received: reports.iter().map(|(r, _)| r.frames).sum(),
        stalled_readers: stalled_n,
        hostile: hostile_n,
        server_timed_out: counter("stream_manager_server_timed_out_total"),
        server_protocol_errors: counter("stream_manager_server_protocol_errors_total"),
        server_panics: counter("stream_manager_server_panics_total"),
        server_exit,
        checks,
        passed,
    })
}

/// Writes `results` to `root/soak/latest.json` (atomically).
///
/// # Errors
/// The file cannot be written.
pub fn save(root: &Path, results: &SoakResults) -> Result<PathBuf, String> {
    let path = SoakResults::path(root);
    let json = serde_json::to_vec_pretty(results).map_err(|e| e.to_string())?;
    write_atomic(&path, &json).map_err(|e| e.to_string())?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slope_of_a_line_is_its_slope() {
        let pts: Vec<(f64, f64)> = (0..10)
            .map(|i| (f64::from(i), 3.0 + 0.5 * f64::from(i)))
            .collect();
        assert!((slope(&pts) - 0.5).abs() < 1e-12);
        assert_eq!(slope(&[(1.0, 2.0)]), 0.0);
        assert_eq!(slope(&[(1.0, 2.0), (1.0, 3.0)]), 0.0);
    }

    #[test]
    fn waves_rise_fall_and_rest_at_zero() {
        assert_eq!(wave_target(0.0, 100.0, 200), 0);
        assert_eq!(wave_target(45.0, 100.0, 200), 200);
        assert_eq!(wave_target(22.5, 100.0, 200), 100);
        assert_eq!(wave_target(90.0, 100.0, 200), 0);
        assert_eq!(wave_target(95.0, 100.0, 200), 0);
        assert_eq!(wave_target(145.0, 100.0, 200), 200);
        // A short wave rests 5 s.
        assert_eq!(wave_target(15.5, 20.0, 30), 0);
        assert_eq!(wave_target(7.5, 20.0, 30), 30);
    }

    #[test]
    fn metrics_are_read_by_name() {
        let text = "# HELP x y\nstream_manager_server_players_open 12\nstream_manager_server_connections_open 3\n";
        assert_eq!(metric(text, "stream_manager_server_players_open"), 12);
        assert_eq!(metric(text, "stream_manager_server_connections_open"), 3);
        assert_eq!(metric(text, "missing"), 0);
    }
}
