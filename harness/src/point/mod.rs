//! Running one point: in this process (the child side, [`run_here`]), or in a fresh child
//! process so each point's memory peak and CPU time are its own ([`run_in_child`]).
//!
//! The parent writes a [`PointJob`] as JSON to the child's stdin (`harness point`); the child
//! runs the point and writes a [`PointRun`] as JSON to stdout. A point's run goes through its
//! phases in order, each a function of its own:
//!
//! 1. prepare ([`run_here`]): asset files when the scenario asks for them, the recorder;
//! 2. start the load ([`load::Load::start`]): a shaped link, players on an embedded server, a
//!    CPU quota;
//! 3. stream ([`window::measure`]): open and warm up, open the window, run the measured
//!    frames while samplers step the link or the quota on schedule ([`samplers`]);
//! 4. collect: close the window, read every counter again;
//! 5. figures: the window's [`Figures`] ([`figures`]), the recorder's spans added.
//!
//! The frames suite's quality part runs the picture-fidelity measurement instead of 3–4.

mod assets;
mod core_timings;
pub mod figures;
mod load;
mod samplers;
mod window;

pub use assets::ASSET_FILES;
pub use figures::{CoreFigures, Figures, NetworkFigures, PipelineFigures, STAGES};

use crate::record::{Recorder, SpanStats};
use crate::scenario::RunSettings;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use streamer::config::StreamConfig;
use streamer::probe::NoProbe;
use streamer::rtmp::RelayError;
use streamer::stream::StreamError;

/// What the child is asked to run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PointJob {
    pub config: StreamConfig,
    pub settings: RunSettings,
    /// Attach the recorder (true) or the no-op probe (false, to measure the recorder's cost).
    pub record: bool,
    /// Players on an embedded RTMP server the stream publishes to (0: encode only, null output).
    #[serde(default)]
    pub players: u32,
    /// Measure the picture's fidelity (PSNR/SSIM of the encoded stream: the frames suite's
    /// quality part) instead of the usual window.
    #[serde(default)]
    pub fidelity: bool,
    /// Profile the measured window and write its flame graph here (`--profile`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<ProfileTarget>,
    /// Publish through a link the kernel shapes on this schedule (needs root).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<crate::scenario::LinkPlan>,
    /// Run under a CPU quota on this schedule (needs root).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<crate::scenario::CpuPlan>,
}

/// Where a profiled run writes its flame graph.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProfileTarget {
    /// The SVG file.
    pub svg: std::path::PathBuf,
    /// What the results call it (relative to the results folder).
    pub name: String,
}

/// One run of one point: its [`Figures`] (read as its own fields), and what the window
/// covered.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PointRun {
    #[serde(flatten)]
    pub figures: Figures,
    /// Frames encoded in the window.
    pub frames: u64,
    pub wall_s: f64,
}

impl std::ops::Deref for PointRun {
    type Target = Figures;

    fn deref(&self) -> &Figures {
        &self.figures
    }
}

impl std::ops::DerefMut for PointRun {
    fn deref_mut(&mut self) -> &mut Figures {
        &mut self.figures
    }
}

/// Why a point could not be run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Stream(#[from] StreamError),
    #[error(transparent)]
    Relay(#[from] RelayError),
    #[error("players: {0}")]
    Players(std::io::Error),
    #[error("could not start {exe}: {source}")]
    Spawn { exe: String, source: std::io::Error },
    #[error("the point's child process failed ({status}): {stderr}")]
    Child { status: String, stderr: String },
    #[error("the point's child process wrote no valid result: {0}")]
    Protocol(String),
    #[error(transparent)]
    Link(#[from] crate::shaped::ShapeError),
}

/// Runs `job` in this process.
///
/// # Errors
/// The stream could not be opened or failed while running.
pub fn run_here(job: &PointJob) -> Result<PointRun, RunError> {
    // Prepare: `core.assets.dir = "<files>"` writes the generated badges as PNG and JPEG files
    // into a temporary folder, so assets are decoded from files (removed when the point ends).
    let (job, _asset_dir) = assets::prepare(job)?;
    let job = &job;
    if job.fidelity {
        return fidelity_run(job);
    }
    let fps = job.config.core.viewport.fps;
    let recorder = Arc::new(Recorder::new());
    recorder.set_period(Duration::from_secs_f64(1.0 / f64::from(fps.max(1))));
    // Start the load.
    let load = load::Load::start(job, &recorder)?;
    // Stream and collect, with the recorder or the no-op probe.
    let around = load.around(job, &recorder);
    let mut run = if job.record {
        window::measure(job, &*recorder, &around, |warmup| {
            recorder.begin_measurement(warmup)
        })?
    } else {
        window::measure(job, &NoProbe, &around, |_| {})?
    };
    load.stop(&mut run);
    // The figures the recorder holds.
    if job.record {
        run.unmatched_marks = recorder.unmatched();
        run.spans = spans(&recorder);
    }
    Ok(run)
}

/// Every span the recorder holds, as its figures.
fn spans(recorder: &Recorder) -> std::collections::BTreeMap<String, SpanStats> {
    recorder
        .snapshot()
        .into_iter()
        .map(|(name, h)| (name.to_string(), SpanStats::from_histogram(&h)))
        .collect()
}

/// A fidelity run: the stream encoded to a file, then compared with its source frames.
fn fidelity_run(job: &PointJob) -> Result<PointRun, RunError> {
    let frames = job.settings.length.frames(job.config.core.viewport.fps);
    let recorder = Recorder::new();
    let started = Instant::now();
    let q = crate::fidelity::measure(&job.config, frames, &recorder)
        .map_err(|e| RunError::Protocol(e.to_string()))?;
    let wall_s = started.elapsed().as_secs_f64();
    Ok(PointRun {
        figures: Figures {
            fps: q.frames as f64 / wall_s,
            bitrate_kbps: q.bitrate_kbps,
            encoder: "libx264".to_string(),
            notes: vec!["fps includes decoding and comparing every frame".to_string()],
            unmatched_marks: recorder.unmatched(),
            spans: spans(&recorder),
            fidelity: Some(q.clone()),
            // Encoded to a file at max pacing: nothing is dropped.
            ledger: Some(figures::FrameLedger {
                due: frames,
                encoded: q.frames,
                ..figures::FrameLedger::default()
            }),
            ..Figures::default()
        },
        frames: q.frames,
        wall_s,
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
