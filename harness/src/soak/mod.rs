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
//! It fails when resident memory rises after the warm-up (its least-squares line) by more than
//! `rss_bound_mib` per 10 minutes or 1% of what it held then, whichever allows more, when file descriptors or threads are not back to
//! their idle count at the bottom of every wave (descriptors counted beyond one per open
//! connection), when a player that kept reading missed a frame it should have had (a gap in
//! its frames' timestamps while the publisher itself dropped none), or when the server exits.

mod churn;
mod verdict;

pub use churn::wave_target;
pub use verdict::slope;

use crate::results::{now_rfc3339, write_atomic};
use crate::served::{ServerProc, metric, open_fds, scrape, start_server, status_field};
use crate::system::{Machine, commit};
use churn::Churn;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Why a soak could not run or its results could not be saved.
#[derive(Debug, thiserror::Error)]
pub enum SoakError {
    #[error("the server could not start: {0}")]
    Start(String),
    #[error(transparent)]
    Results(#[from] crate::results::ResultsError),
    #[error("{0}")]
    Json(#[from] serde_json::Error),
}

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
    /// A leak planted in the server, MiB a minute (0 for none): for the test that shows the
    /// check catches one.
    pub leak_mib_per_min: f64,
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

/// What is watched of the server every second, and the wave bottoms found in it.
struct Watch {
    pid: u32,
    idle_fds: u64,
    idle_threads: u64,
    samples: Vec<SoakSample>,
    troughs: Vec<Trough>,
    empty_since: Option<f64>,
    /// The excesses `(descriptors, threads)` of each sample of the wave's bottom now (empty
    /// while players are on).
    bottom: Vec<(i64, i64)>,
    last_text: String,
}

impl Watch {
    /// The server's idle counts, read with no connection but the metrics scrape's (closed
    /// once read).
    fn idle(server: &ServerProc) -> Self {
        let pid = server.child.id();
        std::thread::sleep(Duration::from_millis(500));
        let _ = scrape(&server.metrics);
        std::thread::sleep(Duration::from_millis(200));
        Watch {
            pid,
            idle_fds: open_fds(pid),
            idle_threads: status_field(pid, "Threads"),
            samples: Vec::new(),
            troughs: Vec::new(),
            empty_since: None,
            bottom: Vec::new(),
            last_text: String::new(),
        }
    }

    /// One second's sample at `t`: the process first, then its metrics (whose connection
    /// would count as a descriptor). With none of our players (`empty`) for 3 s and the server
    /// agreeing, a wave's bottom: its excesses are the least over its samples.
    fn sample(
        &mut self,
        server: &ServerProc,
        t: f64,
        target: usize,
        publishing: bool,
        empty: bool,
    ) -> &SoakSample {
        let pid = self.pid;
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
            publishing,
        };
        if empty {
            let since = *self.empty_since.get_or_insert(t);
            if t - since >= 3.0 && sample.players_open == 0 {
                self.trough(&sample);
            }
        } else {
            self.empty_since = None;
            self.bottom.clear();
        }
        self.last_text = text;
        self.samples.push(sample);
        self.samples.last().expect("just pushed")
    }

    /// The idle counts as the least the server showed with nothing connected: at the start,
    /// or at a wave's bottom where lower (a descriptor or thread of its start-up that went
    /// later). Each bottom's excess is then over that, never under 0; a leak still shows, as
    /// bottoms above the first.
    fn rebase(&mut self) {
        let least = |excess: &mut dyn Iterator<Item = i64>| excess.min().unwrap_or(0).min(0);
        let fd = least(&mut self.troughs.iter().map(|t| t.fd_excess));
        let th = least(&mut self.troughs.iter().map(|t| t.thread_excess));
        for t in &mut self.troughs {
            t.fd_excess -= fd;
            t.thread_excess -= th;
        }
        self.idle_fds = self.idle_fds.saturating_sub(fd.unsigned_abs());
        self.idle_threads = self.idle_threads.saturating_sub(th.unsigned_abs());
    }

    /// A sample at a wave's bottom. The bottom's excess is the one most of its samples show:
    /// descriptors and connections are read a moment apart, so a connection between its
    /// accept and its count reads +1 for a sample, one between its close and its count −1; a
    /// leak stays in every sample.
    fn trough(&mut self, sample: &SoakSample) {
        let fd = sample.fds as i64 - sample.connections_open as i64 - self.idle_fds as i64;
        let th = sample.threads as i64 - self.idle_threads as i64;
        let first = self.bottom.is_empty();
        self.bottom.push((fd, th));
        let now = Trough {
            t_s: sample.t_s,
            fd_excess: mode(self.bottom.iter().map(|b| b.0)),
            thread_excess: mode(self.bottom.iter().map(|b| b.1)),
            connections_open: sample.connections_open,
        };
        match self.troughs.last_mut() {
            Some(last) if !first => {
                last.fd_excess = now.fd_excess;
                last.thread_excess = now.thread_excess;
            }
            _ => self.troughs.push(now),
        }
    }
}

/// The value most of `values` take (the one nearer 0 on a tie).
fn mode(values: impl Iterator<Item = i64>) -> i64 {
    let mut counts = std::collections::BTreeMap::new();
    for v in values {
        *counts.entry(v).or_insert(0usize) += 1;
    }
    counts
        .into_iter()
        .max_by(|a, b| a.1.cmp(&b.1).then(b.0.abs().cmp(&a.0.abs())))
        .map_or(0, |(v, _)| v)
}

/// Runs the soak; `progress` gets a line every 10 s.
///
/// # Errors
/// The server cannot start.
pub fn run(opts: &SoakOptions, progress: impl Fn(&str)) -> Result<SoakResults, SoakError> {
    let started = now_rfc3339();
    let machine = Machine::detect();
    let mut server = start_server(&opts.stream_manager, opts.leak_mib_per_min)
        .map_err(|e| SoakError::Start(e.to_string()))?;
    let mut watch = Watch::idle(&server);
    let mut churn = Churn::start(server.rtmp, opts.seed);
    let mut server_exit = None;
    let began = Instant::now();
    let mut tick = 0u64;
    while began.elapsed() < opts.duration {
        let t = began.elapsed().as_secs_f64();
        let target = wave_target(t, opts.wave_s, opts.max_players);
        churn.follow(target);
        churn.abuse(tick);
        if let Some(exit) = server.exited() {
            server_exit = Some(exit);
            break;
        }
        let publishing = churn.publisher.connected.load(Ordering::Relaxed);
        let s = watch.sample(&server, t, target, publishing, churn.players() == 0);
        if tick % 10 == 0 {
            progress(&format!(
                "soak {:>5.0}/{:.0} s: {} players (wave {}), RSS {:.1} MiB, {} fds, {} threads, \
                 {} queued, publisher session {}{}, {} stalled readers and {} hostile so far",
                t,
                opts.duration.as_secs_f64(),
                s.players_open,
                target,
                s.rss_bytes as f64 / 1048576.0,
                s.fds,
                s.threads,
                s.queued_items,
                churn.publisher.sessions.load(Ordering::Relaxed),
                if s.publishing { "" } else { " (away)" },
                churn.stalled_n,
                churn.hostile_n,
            ));
        }
        tick += 1;
        if let Some(wait) = Duration::from_secs(tick).checked_sub(began.elapsed()) {
            std::thread::sleep(wait);
        }
    }
    let ended = churn.stop();
    if server_exit.is_none() && !watch.last_text.is_empty() {
        watch.last_text = scrape(&server.metrics);
    }
    let seconds = began.elapsed().as_secs_f64();
    drop(ended.held);
    watch.rebase();
    let v = verdict::verdict(
        opts,
        &watch.samples,
        &watch.troughs,
        watch.idle_threads,
        &ended.reports,
        server_exit.as_ref(),
    );
    let counter = |name| metric(&watch.last_text, name);
    let p = &ended.publisher;
    Ok(SoakResults {
        commit: commit(),
        machine,
        started,
        seconds,
        seed: opts.seed,
        max_players: opts.max_players,
        wave_s: opts.wave_s,
        idle_fds: watch.idle_fds,
        idle_threads: watch.idle_threads,
        rss_slope_mib_per_10min: v.rss_slope,
        rss_bound_mib: opts.rss_bound_mib,
        publisher_sessions: p.sessions.load(Ordering::Relaxed),
        publisher_frames: p.frames.load(Ordering::Relaxed),
        publisher_dropped: p.dropped.load(Ordering::Relaxed),
        players: ended.reports.len() as u64,
        players_missed_frames: v.players_missed,
        players_excused: v.players_excused,
        frames_received: ended.reports.iter().map(|(r, _)| r.frames).sum(),
        stalled_readers: ended.stalled_n,
        hostile: ended.hostile_n,
        server_timed_out: counter("stream_manager_server_timed_out_total"),
        server_protocol_errors: counter("stream_manager_server_protocol_errors_total"),
        server_panics: counter("stream_manager_server_panics_total"),
        server_exit,
        passed: v.checks.iter().all(|c| c.passed),
        checks: v.checks,
        samples: watch.samples,
        troughs: watch.troughs,
    })
}

/// Writes `results` to `root/soak/latest.json` (atomically).
///
/// # Errors
/// The file cannot be written.
pub fn save(root: &Path, results: &SoakResults) -> Result<PathBuf, SoakError> {
    let path = SoakResults::path(root);
    write_atomic(&path, &serde_json::to_vec_pretty(results)?)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::served::metric;

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
