//! `cargo xtask perf density`: how many real-time streams fit on this machine, measured.
//!
//! For each cell of `scenarios/density.toml` (preset × x264 threads × size × source), the
//! largest N that one process sustains in real time, found by search ([`search`]: grow, then
//! bisect), each trial N streams publishing to one `stream-manager serve` ([`trial`]). Beside
//! ours, for the clip: the same process with no overlay layers, and N ffmpeg CLI processes
//! transcoding the same clip at the same settings — the anchor, by the same criteria, to the
//! same server. And the old extrapolation (CPU per frame at max pacing × frame rate) for the
//! same settings, to say how far off it was.
//!
//! Results go to `results/density/latest.json` (a `--quick` run's to `quick.json`), written
//! whole or not at all.

pub mod plan;
pub mod search;
pub mod trial;

use crate::system::Machine;
use plan::{Cell, Plan, Source};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The version of the density results' form.
pub const SCHEMA: u32 = 1;

/// Who runs the streams of a trial.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// One `stream-manager run --streams N` process, the cell's overlay layers drawn.
    Ours,
    /// The same with no overlay layers (`core.layout.layers = 0`): the CLI's work exactly.
    Bare,
    /// N `ffmpeg -re` processes transcoding the clip, no overlays.
    Cli,
}

impl Side {
    pub fn describe(self) -> &'static str {
        match self {
            Side::Ours => "stream-manager",
            Side::Bare => "stream-manager, no overlays",
            Side::Cli => "ffmpeg CLI processes",
        }
    }
}

/// One trial: N streams at once over the window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trial {
    pub n: u32,
    /// Every stream held: no late frame, no drop, ≥ 95 % of the frames due arrived.
    pub held: bool,
    /// The first stream that did not hold and why (empty when all held).
    pub why: String,
    pub window_s: f64,
    /// The side's processes' CPU over the window, percent of one core.
    pub cpu_percent: f64,
    /// The side's processes' proportional set size at the window's end (shared pages once).
    pub pss_bytes: u64,
    /// Frames that arrived late / were dropped, over every stream.
    pub late: u64,
    pub dropped: u64,
    /// The fewest frames one stream brought over the window.
    pub frames_min: Option<u64>,
}

impl Trial {
    pub fn new(n: u32) -> Self {
        Trial {
            n,
            held: false,
            why: String::new(),
            window_s: 0.0,
            cpu_percent: 0.0,
            pss_bytes: 0,
            late: 0,
            dropped: 0,
            frames_min: None,
        }
    }
}

/// One side's search in one cell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SideResult {
    pub side: Side,
    /// The largest N that held (0: not even one).
    pub n: u32,
    /// Every trial, in the order run.
    pub trials: Vec<Trial>,
}

impl SideResult {
    /// The trial at the largest N that held.
    pub fn at_n(&self) -> Option<&Trial> {
        self.trials.iter().rev().find(|t| t.held && t.n == self.n)
    }

    /// CPU per stream at N, percent of a core.
    pub fn cpu_per_stream(&self) -> Option<f64> {
        self.at_n().map(|t| t.cpu_percent / f64::from(t.n))
    }

    /// PSS per stream at N, bytes.
    pub fn pss_per_stream(&self) -> Option<f64> {
        self.at_n().map(|t| t.pss_bytes as f64 / f64::from(t.n))
    }
}

/// The extrapolation the report used to make: one stream at max pacing, its CPU per frame
/// times the frame rate, the machine's cores divided by that.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Extrapolation {
    pub frames: u64,
    pub cpu_ms_per_frame: f64,
    /// Streams the machine would hold by that arithmetic.
    pub streams: f64,
}

/// One cell's measurements.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellResult {
    pub cell: Cell,
    /// The streams' frame rate (the clip's own, or the synthetic scene's).
    pub fps: u32,
    pub extrapolation: Option<Extrapolation>,
    pub sides: Vec<SideResult>,
}

impl CellResult {
    pub fn side(&self, side: Side) -> Option<&SideResult> {
        self.sides.iter().find(|s| s.side == side)
    }
}

/// A density run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DensityResults {
    pub schema: u32,
    pub quick: bool,
    pub started: String,
    pub finished: String,
    pub commit: String,
    pub machine: Machine,
    pub warmup_s: u32,
    pub window_s: u32,
    pub max_streams: u32,
    pub cells: Vec<CellResult>,
}

/// Why a density run failed.
#[derive(Debug, thiserror::Error)]
pub enum DensityError {
    #[error("{0}")]
    Plan(#[from] plan::PlanError),
    #[error("{0}")]
    Trial(#[from] trial::TrialError),
    #[error("the extrapolation's run of {cell}: {why}")]
    Extrapolation { cell: Cell, why: String },
    #[error(transparent)]
    Results(#[from] crate::results::ResultsError),
    #[error("{0}")]
    Json(#[from] serde_json::Error),
}

/// What a density run needs.
pub struct Options {
    pub plan: Plan,
    pub quick: bool,
    pub stream_manager: PathBuf,
    /// The real clip (`cargo xtask clip`).
    pub clip: String,
    /// The clip's frame rate.
    pub clip_fps: u32,
    /// Where `density/latest.json` (or `quick.json`) goes.
    pub out: PathBuf,
}

/// The results file a run writes.
pub fn path(out: &Path, quick: bool) -> PathBuf {
    out.join("density")
        .join(if quick { "quick.json" } else { "latest.json" })
}

/// Loads the density results under `root`: the newer of `latest.json` and `quick.json`, or
/// with `full_only` the full run's alone.
pub fn load(root: &Path, full_only: bool) -> Option<DensityResults> {
    let read = |quick| -> Option<DensityResults> {
        serde_json::from_slice(&std::fs::read(path(root, quick)).ok()?).ok()
    };
    let full = read(false);
    if full_only {
        return full;
    }
    match (full, read(true)) {
        (Some(f), Some(q)) => Some(if q.started > f.started { q } else { f }),
        (f, q) => f.or(q),
    }
}

/// Runs every cell of the plan and writes the results.
///
/// # Errors
/// A program cannot be started, or the results cannot be written.
pub fn run(opts: &Options) -> Result<DensityResults, DensityError> {
    let timing = if opts.quick {
        &opts.plan.quick
    } else {
        &opts.plan.full
    };
    let started = now();
    let cells = Plan::cells(timing);
    let mut done: Vec<CellResult> = Vec::new();
    for (i, cell) in cells.iter().enumerate() {
        eprintln!("density [{}/{}] {cell}", i + 1, cells.len());
        done.push(measure_cell(opts, timing, *cell, &done)?);
    }
    let results = DensityResults {
        schema: SCHEMA,
        quick: opts.quick,
        started,
        finished: now(),
        commit: crate::system::commit(),
        machine: Machine::detect(),
        warmup_s: timing.warmup_s,
        window_s: timing.window_s,
        max_streams: opts.plan.max_streams,
        cells: done,
    };
    crate::results::write_atomic(
        &path(&opts.out, opts.quick),
        &serde_json::to_vec_pretty(&results)?,
    )?;
    Ok(results)
}

/// One cell: the extrapolation, then each side's search, each starting where the best
/// guess is (a neighbour cell's N, our side's N, or the extrapolation's).
fn measure_cell(
    opts: &Options,
    timing: &plan::Timing,
    cell: Cell,
    done: &[CellResult],
) -> Result<CellResult, DensityError> {
    let fps = match cell.source {
        Source::Clip => opts.clip_fps,
        Source::Synthetic => 30,
    };
    let overrides = opts.plan.overrides(cell, &opts.clip);
    let extrapolation = extrapolate(opts, cell, &overrides, fps)?;
    let setup = trial::Setup {
        stream_manager: &opts.stream_manager,
        cli_args: cli_args(&overrides, &opts.clip, cell),
        overrides,
        fps,
        warmup: Duration::from_secs(timing.warmup_s.into()),
        window: Duration::from_secs(timing.window_s.into()),
    };
    let sides: &[Side] = match cell.source {
        Source::Clip => &[Side::Ours, Side::Bare, Side::Cli],
        Source::Synthetic => &[Side::Ours],
    };
    // A neighbour measured already: the same cell but for the threads, or the source.
    let neighbour = done
        .iter()
        .filter(|d| d.cell.preset == cell.preset && d.cell.size == cell.size)
        .filter_map(|d| d.side(Side::Ours))
        .map(|s| s.n)
        .next_back();
    let first_guess = neighbour.unwrap_or_else(|| {
        let e = extrapolation.as_ref().map_or(1.0, |e| e.streams);
        // The arithmetic overestimates a little (the server, the sockets, contention).
        (e * 0.85).floor().max(1.0) as u32
    });
    let mut results: Vec<SideResult> = Vec::new();
    for &side in sides {
        let guess = results.last().map_or(first_guess, |r| r.n.max(1));
        let mut trials = Vec::new();
        let n = search::largest(guess, opts.plan.max_streams, |n| {
            let t = trial::run(&setup, side, n)?;
            eprintln!(
                "  {}: {n} streams {} ({:.0}% of a core){}",
                side.describe(),
                if t.held { "held" } else { "did not hold" },
                t.cpu_percent,
                if t.why.is_empty() {
                    String::new()
                } else {
                    format!(": {}", t.why)
                }
            );
            let held = t.held;
            trials.push(t);
            Ok::<bool, DensityError>(held)
        })?;
        results.push(SideResult { side, n, trials });
    }
    Ok(CellResult {
        cell,
        fps,
        extrapolation,
        sides: results,
    })
}

/// The ffmpeg CLI's arguments for one stream of `cell` (the URL to be appended): the clip
/// read at its own rate, looped, decoded on one thread, scaled as ours scales it, encoded
/// with the same codec options, its sound copied.
fn cli_args(overrides: &[String], clip: &str, cell: Cell) -> Vec<String> {
    let mut cfg = streamer::config::StreamConfig::default();
    for o in overrides {
        let _ = cfg.apply_override(o);
    }
    let mut a: Vec<String> = ["-hide_banner", "-nostdin", "-loglevel", "error", "-re"]
        .map(String::from)
        .to_vec();
    a.extend(["-threads".into(), cfg.source.threads.to_string()]);
    a.extend(["-stream_loop", "-1", "-i", clip].map(String::from));
    let (w, h) = cell.size.dims();
    if (w, h) != (1280, 720) {
        a.extend(["-vf".into(), format!("scale={w}:{h}:flags=bilinear")]);
    }
    a.extend(["-c:v".into(), "libx264".into()]);
    for (k, v) in streamer::encode::codec_options(&cfg.encoder, false) {
        a.push(format!("-{k}"));
        a.push(v);
    }
    a.extend(["-c:a", "copy", "-f", "flv"].map(String::from));
    a
}

/// One stream at max pacing, to nowhere: its CPU per frame, and the streams the old
/// arithmetic would fit (cores ÷ (CPU per frame × frame rate)).
fn extrapolate(
    opts: &Options,
    cell: Cell,
    overrides: &[String],
    fps: u32,
) -> Result<Option<Extrapolation>, DensityError> {
    let frames = u64::from(fps) * 10;
    let mut cmd = std::process::Command::new(&opts.stream_manager);
    cmd.args(["run", "--pacing", "max", "--output", "null"])
        .args(["--frames", &frames.to_string()]);
    for o in overrides {
        cmd.args(["--set", o]);
    }
    let fail = |why: String| DensityError::Extrapolation { cell, why };
    let child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| fail(e.to_string()))?;
    let (ok, cpu_s) = wait_cpu(child).map_err(|e| fail(e.to_string()))?;
    if !ok {
        return Err(fail("it failed".into()));
    }
    let per_frame = cpu_s / frames as f64;
    let cores = std::thread::available_parallelism().map_or(1, usize::from) as f64;
    Ok(Some(Extrapolation {
        frames,
        cpu_ms_per_frame: per_frame * 1e3,
        streams: cores / (per_frame * f64::from(fps)),
    }))
}

/// Waits for `child` and returns whether it succeeded and the CPU seconds it used (its
/// rusage, exact at exit).
fn wait_cpu(child: std::process::Child) -> std::io::Result<(bool, f64)> {
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: zeroed is a valid rusage; wait4 fills it for the child we own.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a plain FFI call with valid out-pointers, for a child of this process.
    let r = unsafe { libc::wait4(pid, &raw mut status, 0, &raw mut usage) };
    std::mem::forget(child);
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    Ok((ok, secs(usage.ru_utime) + secs(usage.ru_stime)))
}

fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// The density results' invariants: each side's N is a trial that held, one more did not
/// hold (unless N is the most a trial runs), and no trial above N held.
pub fn check(r: &DensityResults) -> Vec<crate::results::check::Violation> {
    let mut out = Vec::new();
    for c in &r.cells {
        for s in &c.sides {
            let fail = |rule: &'static str, figures: String| crate::results::check::Violation {
                suite: "density".to_string(),
                point: format!("{} ({})", c.cell, s.side.describe()),
                rule,
                figures,
            };
            let trials: Vec<String> = s
                .trials
                .iter()
                .map(|t| format!("{}{}", t.n, if t.held { "✓" } else { "✗" }))
                .collect();
            let trials = trials.join(" ");
            if s.n > 0 && s.at_n().is_none() {
                out.push(fail("N is a trial that held", trials.clone()));
            }
            if s.n < r.max_streams && !s.trials.iter().any(|t| t.n == s.n + 1 && !t.held) {
                out.push(fail("N + 1 is a trial that did not hold", trials.clone()));
            }
            if s.trials.iter().any(|t| t.held && t.n > s.n) {
                out.push(fail("no trial above N held", trials));
            }
        }
    }
    out
}
