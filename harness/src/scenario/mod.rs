//! Scenario files: one TOML file per suite, describing a sweep and how to run each point.
//!
//! ```toml
//! suite = "stream"                 # results go to results/<suite>/
//! table = "encoder"                # the guide table it fills: encoder | pipeline | rtmp | none
//! description = "x264 presets × threads × zero copy"
//! pacing = "max"                   # max (throughput) | realtime (the configured frame rate)
//! warmup_frames = 30               # run before measuring, not recorded
//! frames = 300                     # measured frames per run (or duration_s = 10)
//! repetitions = 3                  # runs per point; the report shows median and spread
//! players = 0                      # players on the embedded RTMP server (0: encode only);
//!                                  # also a sweep axis: path = "players"
//!
//! [base]                           # a partial StreamConfig; the rest keeps its defaults
//! encoder.gop = 60
//!
//! [[sweep]]                        # one axis: a dotted config path and its values
//! path = "encoder.preset"
//! values = ["ultrafast", "veryfast"]
//!
//! [[exclude]]                      # combinations not run: a point matching every pair of a
//! "encoder.preset" = "veryfast"    # rule (axis path = one of its values) would only repeat
//! "encoder.pipeline.threads" = 1   # another, e.g. a setting the chosen backend ignores
//!
//! [link]                           # publisher → server through a link the kernel shapes
//! schedule = [[0, 8000], [10, 1500], [30, 8000]]   # [seconds into the window, kbit/s]
//!                                  # (a network namespace per run: needs root)
//!
//! [cpu]                            # the stream process's CPU quota (a cgroup: needs root)
//! schedule = [[0, 2.0], [5, 0.6], [20, 2.0]]       # [seconds into the window, cores]
//!
//! [quick]                          # what --quick changes: any of the run lengths, and axes
//! frames = 60                      # whose values it narrows (by the same path)
//! [[quick.sweep]]
//! path = "encoder.preset"
//! values = ["ultrafast"]
//! [quick.link]                     # and the link's or the CPU quota's schedule, compressed
//! schedule = [[0, 8000], [2, 1500], [7, 8000]]
//! ```
//!
//! Every mistake is reported with the file, the line and the field.

mod parse;

pub use parse::{CLIP, clip_path};
#[cfg(test)]
mod tests;

use crate::sweep::{self, Axis, RunPoint};
use parse::{
    RawScenario, axes, base, check_reps, exclusions, key_at, length, line_of, quick, schedules,
};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};
use streamer::config::StreamConfig;
use streamer::stream::Pacing;

/// A scenario file that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}: {field}: {message}", file.display())]
pub struct ScenarioError {
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// The key at fault (a dotted config path where there is one).
    pub field: String,
    pub message: String,
}

/// Which of the guide's "Tested Configurations" tables a suite fills.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GuideTable {
    Encoder,
    Pipeline,
    Rtmp,
    /// Core components: viewport, assets, layout.
    Core,
    /// The composition engine.
    Compose,
    /// Memory: allocations, buffer pool, caches, RSS over time.
    Memory,
    /// Frame timing: output jitter against the frame period.
    Timing,
    /// Overload: drops per policy and reason.
    Drops,
    /// Queue occupancy and bufferHealth.
    Buffer,
    /// PSNR and SSIM of the encoded stream.
    Quality,
    /// The render stage: backend, antialiasing, filter, layers, resolution.
    Render,
    None,
}

impl fmt::Display for GuideTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GuideTable::Encoder => "encoder",
            GuideTable::Pipeline => "pipeline",
            GuideTable::Rtmp => "rtmp",
            GuideTable::Core => "core",
            GuideTable::Compose => "compose",
            GuideTable::Memory => "memory",
            GuideTable::Timing => "timing",
            GuideTable::Drops => "drops",
            GuideTable::Buffer => "buffer",
            GuideTable::Quality => "quality",
            GuideTable::Render => "render",
            GuideTable::None => "none",
        })
    }
}

/// A CPU quota over the measured window: `(seconds into the window, cores)`, the first at 0,
/// in time order (see [`crate::quota`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CpuPlan {
    pub schedule: Vec<(f64, f64)>,
}

/// A shaped link's rate over the measured window: `(seconds into the window, kbit/s)`, the
/// first at 0, in time order (see [`crate::shaped`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkPlan {
    pub schedule: Vec<(f64, u32)>,
}

/// How long each run of a point is measured.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Length {
    Frames(u64),
    /// Seconds of stream time (frames = seconds × the point's fps).
    DurationS(f64),
}

impl std::fmt::Display for Length {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Length::Frames(n) => write!(f, "{n} frames"),
            Length::DurationS(s) => write!(f, "{s} s"),
        }
    }
}

impl Length {
    /// Measured frames for a stream at `fps`.
    pub fn frames(self, fps: u32) -> u64 {
        match self {
            Length::Frames(n) => n,
            Length::DurationS(s) => (s * f64::from(fps)).round().max(1.0) as u64,
        }
    }
}

/// How every point of a plan is run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RunSettings {
    pub pacing: Pacing,
    pub warmup_frames: u64,
    pub length: Length,
    pub repetitions: u32,
}

/// A parsed, validated scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub file: PathBuf,
    pub suite: String,
    pub table: GuideTable,
    pub description: String,
    pub base: StreamConfig,
    /// Players on the embedded RTMP server when no axis sets them (0: encode only).
    pub players: u32,
    pub axes: Vec<Axis>,
    pub settings: RunSettings,
    /// The settings and axes `--quick` uses.
    pub quick: (RunSettings, Vec<Axis>),
    /// Combinations not run: each is a set of `(axis path, value)` that a point matching all
    /// of them would repeat another (a setting the backend ignores, say).
    pub exclude: Vec<Vec<(String, String)>>,
    /// The publisher's link, shaped on this schedule (None: plain loopback).
    pub link: Option<LinkPlan>,
    /// The stream process's CPU quota, on this schedule (None: no quota).
    pub cpu: Option<CpuPlan>,
    /// The link's and the quota's schedules under `--quick` (`[quick.link]`, `[quick.cpu]`;
    /// the full run's where not given).
    pub quick_link: Option<LinkPlan>,
    pub quick_cpu: Option<CpuPlan>,
}

/// What a scenario expands to for one invocation.
#[derive(Debug, Clone)]
pub struct Plan {
    pub settings: RunSettings,
    pub points: Vec<RunPoint>,
    /// The link's and the CPU quota's schedules.
    pub link: Option<LinkPlan>,
    pub cpu: Option<CpuPlan>,
}

impl Scenario {
    /// Reads and validates a scenario file.
    ///
    /// # Errors
    /// [`ScenarioError`] naming the file, line and field of the first problem.
    pub fn load(file: &Path) -> Result<Self, ScenarioError> {
        let text = std::fs::read_to_string(file).map_err(|e| ScenarioError {
            file: file.to_path_buf(),
            line: 0,
            field: "(file)".into(),
            message: e.to_string(),
        })?;
        Self::parse(file, &text)
    }

    /// Parses scenario `text` (read from `file`, which errors name).
    ///
    /// # Errors
    /// [`ScenarioError`] naming the file, line and field of the first problem.
    pub fn parse(file: &Path, text: &str) -> Result<Self, ScenarioError> {
        let at = |offset: usize, field: &str, message: String| ScenarioError {
            file: file.to_path_buf(),
            line: line_of(text, offset),
            field: field.to_string(),
            message,
        };
        let raw: RawScenario = toml::from_str(text).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start);
            at(offset, &key_at(text, offset), e.message().to_string())
        })?;
        if raw.suite.is_empty()
            || !raw
                .suite
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(at(
                0,
                "suite",
                format!("{:?} must be a plain name (letters, digits, -)", raw.suite),
            ));
        }
        let length = length(&at, raw.frames.as_ref(), raw.duration_s.as_ref())?
            .ok_or_else(|| at(0, "frames", "give `frames` or `duration_s`".to_string()))?;
        let repetitions = check_reps(&at, &raw.repetitions)?;
        let settings = RunSettings {
            pacing: raw.pacing,
            warmup_frames: raw.warmup_frames,
            length,
            repetitions,
        };
        let base = base(&at, text, raw.base)?;
        let players = match &raw.players {
            Some(p) => sweep::players(p.get_ref())
                .map_err(|e| at(p.span().start, sweep::PLAYERS, e.to_string()))?,
            None => 0,
        };
        let axes = axes(&at, &base, raw.sweep)?;
        let (quick_link, quick_cpu) = match &raw.quick {
            Some(q) => (q.link.clone(), q.cpu.clone()),
            None => (None, None),
        };
        let quick = quick(&at, &base, settings, &axes.0, raw.quick)?;
        let exclude = exclusions(&at, &axes.0, raw.exclude)?;
        let players_swept = players > 0 || axes.0.iter().any(|a| a.path == sweep::PLAYERS);
        let s = schedules(&at, players_swept, raw.link, raw.cpu, quick_link, quick_cpu)?;
        let scenario = Scenario {
            file: file.to_path_buf(),
            suite: raw.suite,
            table: raw.table,
            description: raw.description,
            base,
            players,
            axes: axes.0,
            settings,
            quick,
            exclude,
            link: s.link,
            cpu: s.cpu,
            quick_link: s.quick_link,
            quick_cpu: s.quick_cpu,
        };
        // Each value was checked alone; a combination can still clash (dropThreshold above a
        // swept maxLatency): report it at the axis it belongs to.
        for plan_axes in [&scenario.axes, &scenario.quick.1] {
            if let Err(e) = sweep::expand(&scenario.base, scenario.players, plan_axes) {
                let path = plan_axes[e.axis].path.as_str();
                let offset = text.find(&format!("\"{path}\"")).unwrap_or(0);
                return Err(at(offset, path, e.error.to_string()));
            }
        }
        Ok(scenario)
    }

    /// The smallest run that takes the suite end to end (`harness run --smallest`, the tests'
    /// run of every suite): `--quick`'s axes at their first values (one point), one run of a
    /// second of frames after at most 5 warm-up frames; with a link's or a quota's schedule,
    /// 3 s with the schedule compressed into its first half.
    pub fn smallest_plan(&self) -> Plan {
        let axes: Vec<Axis> = self
            .quick
            .1
            .iter()
            .map(|a| Axis {
                path: a.path.clone(),
                values: a.values[..1].to_vec(),
            })
            .collect();
        let points = sweep::expand(&self.base, self.players, &axes).expect("validated when loaded");
        let fps = points
            .first()
            .map_or(30, |p| p.config.core.viewport.fps)
            .max(1);
        let scheduled = self.quick_link.is_some() || self.quick_cpu.is_some();
        let seconds = if scheduled { 3.0 } else { 1.0 };
        let q = self.quick.0;
        let settings = RunSettings {
            pacing: q.pacing,
            warmup_frames: q.warmup_frames.min(5),
            length: Length::Frames((seconds * f64::from(fps)) as u64),
            repetitions: 1,
        };
        fn squeeze<T: Copy>(schedule: &[(f64, T)], into_s: f64) -> Vec<(f64, T)> {
            let last = schedule.last().map_or(0.0, |s| s.0);
            let k = if last > 0.0 { into_s / last } else { 1.0 };
            schedule.iter().map(|&(t, v)| (t * k, v)).collect()
        }
        Plan {
            settings,
            points,
            link: self.quick_link.as_ref().map(|l| LinkPlan {
                schedule: squeeze(&l.schedule, seconds / 2.0),
            }),
            cpu: self.quick_cpu.as_ref().map(|c| CpuPlan {
                schedule: squeeze(&c.schedule, seconds / 2.0),
            }),
        }
    }

    /// The points and run settings for a full (or `--quick`) run.
    pub fn plan(&self, quick: bool) -> Plan {
        let (settings, axes, link, cpu) = if quick {
            (
                self.quick.0,
                &self.quick.1,
                &self.quick_link,
                &self.quick_cpu,
            )
        } else {
            (self.settings, &self.axes, &self.link, &self.cpu)
        };
        let mut points =
            sweep::expand(&self.base, self.players, axes).expect("validated when loaded");
        points.retain(|p| {
            !self
                .exclude
                .iter()
                .any(|rule| rule.iter().all(|pair| p.axes.contains(pair)))
        });
        Plan {
            settings,
            points,
            link: link.clone(),
            cpu: cpu.clone(),
        }
    }
}
