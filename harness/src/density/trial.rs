//! One trial of the density search: N streams at once, every one publishing to one
//! `stream-manager serve` in its own process, which measures each as it arrives.
//!
//! Our side is one `stream-manager run --streams N` process; the CLI's is N `ffmpeg -re`
//! processes transcoding the clip. After every stream's first frame has reached the server,
//! the trial waits out the warm-up, then reads the server, the streams' drops, CPU and PSS at
//! the window's start and end. A stream holds when, over the window, none of its frames came
//! more than 500 ms behind its timestamps' real-time schedule (the server's count), it dropped
//! none, and at least 95 % of the frames due arrived.

use super::{Side, Trial};
use crate::served::{ServerProc, scrape, start_server};
use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// What a trial runs: the programs, the settings as `--set` overrides, the CLI's arguments.
pub struct Setup<'a> {
    pub stream_manager: &'a Path,
    /// Every `--set PATH=VALUE` of our side.
    pub overrides: Vec<String>,
    /// The ffmpeg CLI's arguments for one stream, but for the URL it publishes to (last).
    pub cli_args: Vec<String>,
    pub fps: u32,
    pub warmup: Duration,
    pub window: Duration,
}

/// A trial that could not be run at all (a program that would not start).
#[derive(Debug, thiserror::Error)]
pub enum TrialError {
    #[error("the server: {0}")]
    Server(#[from] crate::served::StartError),
    #[error("starting {what}: {why}")]
    Start { what: String, why: String },
}

/// The processes of one side, killed when dropped.
struct Procs(Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Procs {
    fn pids(&self) -> Vec<u32> {
        self.0.iter().map(Child::id).collect()
    }

    /// Why one of them has ended, if one has.
    fn ended(&mut self) -> Option<String> {
        self.0.iter_mut().find_map(|c| {
            let s = c.try_wait().ok()??;
            Some(format!("a process ended early ({s})"))
        })
    }
}

/// What is read at the window's start and end.
struct Reading {
    at: Instant,
    /// Per stream key: (frames arrived, frames late) at the server.
    server: Vec<(u64, u64)>,
    /// Per stream key: frames our process dropped (0 for the CLI's).
    dropped: Vec<u64>,
    cpu_ns: u64,
}

/// Runs `n` streams of `side` and measures them over the window.
///
/// # Errors
/// The server or a stream's process cannot be started.
pub fn run(setup: &Setup<'_>, side: Side, n: u32) -> Result<Trial, TrialError> {
    let server = start_server(setup.stream_manager, 0.0)?;
    let keys: Vec<String> = (0..n as usize).map(streamer::streams::key).collect();
    let (mut procs, metrics) = match side {
        Side::Cli => (cli(setup, &server, &keys)?, None),
        Side::Ours | Side::Bare => {
            let (child, metrics) = ours(setup, &server, n, side)?;
            (Procs(vec![child]), Some(metrics))
        }
    };
    let mut trial = Trial::new(n);
    // Every stream's first frame at the server (opening n encoders takes a while).
    let opened = Instant::now();
    loop {
        let text = scrape(&server.metrics);
        if keys.iter().all(|k| ingest(&text, k).0 > 0) {
            break;
        }
        if let Some(why) = procs.ended() {
            trial.why = why;
            return Ok(trial);
        }
        if opened.elapsed() > Duration::from_secs(60) {
            trial.why = "not every stream reached the server within 60 s".into();
            return Ok(trial);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(setup.warmup);
    let read = |procs: &Procs| Reading {
        at: Instant::now(),
        server: {
            let text = scrape(&server.metrics);
            keys.iter().map(|k| ingest(&text, k)).collect()
        },
        dropped: {
            let text = metrics.as_deref().map(scrape).unwrap_or_default();
            keys.iter().map(|k| dropped(&text, k)).collect()
        },
        cpu_ns: procs
            .pids()
            .iter()
            .filter_map(|p| streamer::clock::process_cpu_ns_of(*p))
            .sum(),
    };
    let start = read(&procs);
    std::thread::sleep(setup.window);
    let end = read(&procs);
    trial.pss_bytes = procs.pids().iter().map(|p| pss_bytes(*p)).sum();
    if let Some(why) = procs.ended() {
        trial.why = why;
        return Ok(trial);
    }
    judge(&mut trial, setup, &keys, &start, &end);
    Ok(trial)
}

/// Fills the trial's figures from the window's readings and says whether every stream held
/// (and, where one did not, which and why).
fn judge(trial: &mut Trial, setup: &Setup<'_>, keys: &[String], start: &Reading, end: &Reading) {
    let secs = end.at.duration_since(start.at).as_secs_f64();
    trial.window_s = secs;
    trial.cpu_percent = (end.cpu_ns - start.cpu_ns) as f64 * 1e-9 / secs * 100.0;
    let due = f64::from(setup.fps) * secs;
    let mut why = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let frames = end.server[i].0.saturating_sub(start.server[i].0);
        let late = end.server[i].1.saturating_sub(start.server[i].1);
        let dropped = end.dropped[i].saturating_sub(start.dropped[i]);
        trial.late += late;
        trial.dropped += dropped;
        trial.frames_min = Some(trial.frames_min.map_or(frames, |m: u64| m.min(frames)));
        if late > 0 {
            why.push(format!("{key}: {late} frames late"));
        } else if dropped > 0 {
            why.push(format!("{key}: {dropped} dropped"));
        } else if (frames as f64) < 0.95 * due {
            why.push(format!("{key}: {frames} of {due:.0} frames arrived"));
        }
    }
    trial.held = why.is_empty();
    let more = why.len().saturating_sub(1);
    trial.why = match why.first() {
        None => String::new(),
        Some(first) if more > 0 => format!("{first} (and {more} more streams)"),
        Some(first) => first.clone(),
    };
}

/// Our side: one `stream-manager run --streams n` process publishing to the server; returns it
/// and the address of its metrics.
fn ours(
    setup: &Setup<'_>,
    server: &ServerProc,
    n: u32,
    side: Side,
) -> Result<(Child, String), TrialError> {
    let secs = setup.warmup + setup.window + Duration::from_secs(90);
    let frames = (secs.as_secs_f64() * f64::from(setup.fps)).ceil() as u64;
    let mut cmd = Command::new(setup.stream_manager);
    cmd.args(["run", "--pacing", "realtime", "--metrics", "127.0.0.1:0"])
        .args(["--streams", &n.to_string(), "--frames", &frames.to_string()])
        .arg("--output")
        .arg(format!("rtmp://{}/live/s", server.rtmp));
    for o in &setup.overrides {
        cmd.args(["--set", o]);
    }
    if side == Side::Bare {
        cmd.args(["--set", "core.layout.layers=0"]);
    }
    let start = |why: String| TrialError::Start {
        what: format!("stream-manager run --streams {n}"),
        why,
    };
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| start(e.to_string()))?;
    let stderr = child.stderr.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut last = Vec::new();
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if let Some(addr) = line.strip_prefix("metrics: http://") {
                let _ = tx.send(Ok(addr.trim_end_matches("/metrics").to_string()));
            }
            last.push(line);
        }
        let _ = tx.send(Err(last.join("\n")));
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(Ok(addr)) => Ok((child, addr)),
        Ok(Err(said)) => {
            let _ = child.wait();
            Err(start(format!("it ended: {said}")))
        }
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(start("it did not serve its metrics within 60 s".into()))
        }
    }
}

/// The CLI's side: one `ffmpeg -re` process a stream.
fn cli(setup: &Setup<'_>, server: &ServerProc, keys: &[String]) -> Result<Procs, TrialError> {
    let mut procs = Procs(Vec::new());
    for key in keys {
        let url = format!("rtmp://{}/live/{key}", server.rtmp);
        let mut args = setup.cli_args.clone();
        args.push(url);
        let child = Command::new("ffmpeg")
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| TrialError::Start {
                what: format!("ffmpeg {}", args.join(" ")),
                why: e.to_string(),
            })?;
        procs.0.push(child);
    }
    Ok(procs)
}

/// `(frames, late frames)` the server counted for `live/KEY`.
fn ingest(text: &str, key: &str) -> (u64, u64) {
    let label = format!("{{stream=\"live/{key}\"}}");
    let value = |name: &str| {
        let series = format!("{name}{label} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&series)?.trim().parse::<f64>().ok())
            .map_or(0, |v| v as u64)
    };
    (
        value("stream_manager_server_stream_frames_total"),
        value("stream_manager_server_stream_late_frames_total"),
    )
}

/// Frames our stream `key` dropped, every reason added up.
fn dropped(text: &str, key: &str) -> u64 {
    let label = format!("stream=\"{key}\"");
    text.lines()
        .filter(|l| l.starts_with("stream_manager_dropped_frames_total{") && l.contains(&label))
        .filter_map(|l| l.rsplit_once(' ')?.1.trim().parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

/// The proportional set size of process `pid` (shared pages divided among their sharers), in
/// bytes; 0 when it cannot be read.
pub fn pss_bytes(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                let kb = l.strip_prefix("Pss:")?.split_whitespace().next()?;
                kb.parse::<u64>().ok()
            })
        })
        .map_or(0, |kb| kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_servers_and_the_streams_series_are_read_by_key() {
        let server = "stream_manager_server_stream_frames_total{stream=\"live/s1\"} 250\n\
                      stream_manager_server_stream_frames_total{stream=\"live/s10\"} 7\n\
                      stream_manager_server_stream_late_frames_total{stream=\"live/s1\"} 3\n";
        assert_eq!(ingest(server, "s1"), (250, 3));
        assert_eq!(ingest(server, "s2"), (0, 0));
        let ours = "stream_manager_dropped_frames_total{reason=\"behind\",stream=\"s0\"} 4\n\
                    stream_manager_dropped_frames_total{reason=\"queue_full\",stream=\"s0\"} 1\n\
                    stream_manager_dropped_frames_total{reason=\"behind\",stream=\"s1\"} 9\n";
        assert_eq!(dropped(ours, "s0"), 5);
        assert!(pss_bytes(std::process::id()) > 0);
    }
}
