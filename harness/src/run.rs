//! Running one point: in this process (the child side), or in a fresh child process so each
//! point's memory peak and CPU time are its own.
//!
//! The parent writes a [`PointJob`] as JSON to the child's stdin (`harness point`); the child
//! runs warm-up frames, opens the measurement window, runs the measured frames, flushes, and
//! writes a [`PointRun`] as JSON to stdout.

use crate::record::{Recorder, SpanStats};
use crate::scenario::RunSettings;
use crate::system::Sampler;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;
use streamer::config::StreamConfig;
use streamer::output::Output;
use streamer::probe::{NoProbe, Probe};
use streamer::stream::{Stream, StreamError};

/// What the child is asked to run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PointJob {
    pub config: StreamConfig,
    pub settings: RunSettings,
    /// Attach the recorder (true) or the no-op probe (false, to measure the recorder's cost).
    pub record: bool,
}

/// One run of one point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PointRun {
    /// Encoded frames per second of wall time over the measured window (flush included).
    pub fps: f64,
    /// Process CPU over the window, percent of one core.
    pub cpu_percent: f64,
    /// Peak RSS during the window, bytes.
    pub rss_bytes: u64,
    pub dropped_frames: u64,
    /// Encoded bitrate over the measured frames, kbit/s.
    pub bitrate_kbps: f64,
    /// Frames encoded in the window.
    pub frames: u64,
    pub wall_s: f64,
    /// The encoder that ran.
    pub encoder: String,
    pub notes: Vec<String>,
    /// End marks with no start (should be 0).
    pub unmatched_marks: u64,
    pub spans: BTreeMap<String, SpanStats>,
    /// `(ms, RSS bytes)` over the window.
    pub rss_timeline: Vec<(u64, u64)>,
}

/// Why a point could not be run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Stream(#[from] StreamError),
    #[error("could not start {exe}: {source}")]
    Spawn { exe: String, source: std::io::Error },
    #[error("the point's child process failed ({status}): {stderr}")]
    Child { status: String, stderr: String },
    #[error("the point's child process wrote no valid result: {0}")]
    Protocol(String),
}

/// Runs `job` in this process.
///
/// # Errors
/// The stream could not be opened or failed while running.
pub fn run_here(job: &PointJob) -> Result<PointRun, RunError> {
    if job.record {
        let recorder = Recorder::new();
        let mut run = measure(job, &recorder, |warmup| recorder.begin_measurement(warmup))?;
        run.unmatched_marks = recorder.unmatched();
        run.spans = recorder
            .snapshot()
            .into_iter()
            .map(|(name, h)| (name.to_string(), SpanStats::from_histogram(&h)))
            .collect();
        Ok(run)
    } else {
        measure(job, &NoProbe, |_| {})
    }
}

fn measure<P: Probe>(
    job: &PointJob,
    probe: &P,
    begin: impl FnOnce(u64),
) -> Result<PointRun, RunError> {
    let s = &job.settings;
    let mut stream = Stream::open(&job.config, &Output::Null, probe)?;
    stream.run(s.warmup_frames, s.pacing)?;
    let before = stream.counters();
    begin(s.warmup_frames);
    let sampler = Sampler::start();
    let started = Instant::now();
    stream.run(s.length.frames(job.config.core.viewport.fps), s.pacing)?;
    let summary = stream.finish()?;
    let wall_s = started.elapsed().as_secs_f64();
    let usage = sampler.stop();
    let after = summary.counters;
    let frames = after.packets - before.packets;
    let media_s = frames as f64 / f64::from(job.config.core.viewport.fps);
    let mut notes = summary.notes;
    if summary.pool_copies > 0 {
        notes.push(format!(
            "{} pooled frames had to be copied",
            summary.pool_copies
        ));
    }
    Ok(PointRun {
        fps: frames as f64 / wall_s,
        cpu_percent: usage.cpu_percent,
        rss_bytes: usage.rss_peak_bytes,
        dropped_frames: after.dropped - before.dropped,
        bitrate_kbps: if media_s > 0.0 {
            (after.bytes - before.bytes) as f64 * 8.0 / media_s / 1000.0
        } else {
            0.0
        },
        frames,
        wall_s,
        encoder: summary.encoder,
        notes,
        unmatched_marks: 0,
        spans: BTreeMap::new(),
        rss_timeline: usage.rss_timeline,
    })
}

/// Runs `job` in a child process `exe point`.
///
/// # Errors
/// The child could not be started, failed, or answered with something that is not a result.
pub fn run_in_child(exe: &Path, job: &PointJob) -> Result<PointRun, RunError> {
    let mut child = Command::new(exe)
        .arg("point")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| RunError::Spawn {
            exe: exe.display().to_string(),
            source,
        })?;
    let input = serde_json::to_vec(job).map_err(|e| RunError::Protocol(e.to_string()))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A child that dies early closes its stdin; its exit status says why.
        let _ = stdin.write_all(&input);
    }
    let out = child.wait_with_output().map_err(|source| RunError::Spawn {
        exe: exe.display().to_string(),
        source,
    })?;
    if !out.status.success() {
        return Err(RunError::Child {
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    serde_json::from_slice(&out.stdout).map_err(|e| RunError::Protocol(e.to_string()))
}
