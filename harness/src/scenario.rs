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

use crate::sweep::{self, Axis, RunPoint};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};
use streamer::config::StreamConfig;
use streamer::stream::Pacing;
use toml::Spanned;

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAxis {
    path: Spanned<String>,
    values: Spanned<Vec<Spanned<toml::Value>>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawQuick {
    frames: Option<Spanned<u64>>,
    duration_s: Option<Spanned<f64>>,
    warmup_frames: Option<u64>,
    repetitions: Option<Spanned<u32>>,
    #[serde(default)]
    sweep: Vec<RawAxis>,
    link: Option<Spanned<RawLink>>,
    cpu: Option<Spanned<RawCpu>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    suite: String,
    table: GuideTable,
    #[serde(default)]
    description: String,
    pacing: Pacing,
    #[serde(default)]
    warmup_frames: u64,
    frames: Option<Spanned<u64>>,
    duration_s: Option<Spanned<f64>>,
    repetitions: Spanned<u32>,
    #[serde(default)]
    players: Option<Spanned<toml::Value>>,
    #[serde(default)]
    base: Option<Spanned<StreamConfig>>,
    #[serde(default)]
    sweep: Vec<RawAxis>,
    #[serde(default)]
    exclude: Vec<Spanned<toml::Table>>,
    quick: Option<RawQuick>,
    #[serde(default)]
    link: Option<Spanned<RawLink>>,
    #[serde(default)]
    cpu: Option<Spanned<RawCpu>>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct RawCpu {
    schedule: Vec<(f64, f64)>,
}

/// A CPU quota over the measured window: `(seconds into the window, cores)`, the first at 0,
/// in time order (see [`crate::cpucap`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CpuPlan {
    pub schedule: Vec<(f64, f64)>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct RawLink {
    schedule: Vec<(f64, u32)>,
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

        let (base, base_span) = match raw.base {
            Some(b) => {
                let span = b.span();
                (b.into_inner(), span)
            }
            None => (StreamConfig::default(), 0..0),
        };
        if let Err(e) = base.validate() {
            let field = e
                .invalid()
                .first()
                .map(|b| b.field.clone())
                .unwrap_or_default();
            let leaf = field.rsplit('.').next().unwrap_or_default();
            // The first `leaf =` after the [base] header is where the value was written.
            let after = &text[base_span.start..];
            let offset = after
                .match_indices(leaf)
                .find(|(i, _)| after[i + leaf.len()..].trim_start().starts_with('='))
                .map_or(base_span.start, |(i, _)| base_span.start + i);
            return Err(at(offset, &format!("base.{field}"), e.to_string()));
        }

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
        let link = match raw.link {
            Some(l) => {
                let offset = l.span().start;
                let plan = link_plan(&at, l, "link.schedule")?;
                if players == 0 && !axes.0.iter().any(|a| a.path == sweep::PLAYERS) {
                    return Err(at(
                        offset,
                        "link",
                        "a shaped link carries the stream to the embedded server: set \
                         `players` to at least 1"
                            .to_string(),
                    ));
                }
                Some(plan)
            }
            None => None,
        };
        let cpu = raw
            .cpu
            .map(|c| cpu_plan(&at, c, "cpu.schedule"))
            .transpose()?;
        // `--quick`'s schedules: its own where given (only for a table the full run has),
        // else the full run's.
        let quick_link = match quick_link {
            Some(l) if link.is_none() => return Err(no_full(&at, l.span().start, "link")),
            Some(l) => Some(link_plan(&at, l, "quick.link.schedule")?),
            None => link.clone(),
        };
        let quick_cpu = match quick_cpu {
            Some(c) if cpu.is_none() => return Err(no_full(&at, c.span().start, "cpu")),
            Some(c) => Some(cpu_plan(&at, c, "quick.cpu.schedule")?),
            None => cpu.clone(),
        };
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
            link,
            cpu,
            quick_link,
            quick_cpu,
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

type At<'a> = dyn Fn(usize, &str, String) -> ScenarioError + 'a;

/// A `[link]` table's plan, its schedule checked (errors name `field`).
fn link_plan(at: &At<'_>, raw: Spanned<RawLink>, field: &str) -> Result<LinkPlan, ScenarioError> {
    let offset = raw.span().start;
    let plan = LinkPlan {
        schedule: raw.into_inner().schedule,
    };
    check_link(&plan).map_err(|e| at(offset, field, e))?;
    Ok(plan)
}

/// A `[cpu]` table's plan, its schedule checked (errors name `field`).
fn cpu_plan(at: &At<'_>, raw: Spanned<RawCpu>, field: &str) -> Result<CpuPlan, ScenarioError> {
    let offset = raw.span().start;
    let plan = CpuPlan {
        schedule: raw.into_inner().schedule,
    };
    check_cpu(&plan).map_err(|e| at(offset, field, e))?;
    Ok(plan)
}

/// `[quick.TABLE]` without the full run's `[TABLE]`.
fn no_full(at: &At<'_>, offset: usize, table: &str) -> ScenarioError {
    at(
        offset,
        &format!("quick.{table}"),
        format!("a quick schedule for a [{table}] the full run does not have: add [{table}]"),
    )
}

/// A schedule that starts at 0, goes forward in time, and names rates a link can have.
fn check_link(plan: &LinkPlan) -> Result<(), String> {
    check_schedule(
        &plan.schedule,
        16..=10_000_000,
        "rate",
        "kbit/s",
        "[[0, 8000], …]",
    )
}

/// A schedule that starts at 0, goes forward in time, and names quotas a cgroup can have.
fn check_cpu(plan: &CpuPlan) -> Result<(), String> {
    check_schedule(
        &plan.schedule,
        0.01..=1024.0,
        "quota",
        "cores",
        "[[0, 2.0], …]",
    )
}

/// `[seconds, value]` steps: the first at 0, times increasing, every value in `range`.
fn check_schedule<T: PartialOrd + std::fmt::Display>(
    s: &[(f64, T)],
    range: std::ops::RangeInclusive<T>,
    what: &str,
    unit: &str,
    example: &str,
) -> Result<(), String> {
    if s.first().is_none_or(|(t, _)| *t != 0.0) {
        return Err(format!(
            "the schedule must start with a step at 0 s, e.g. {example}"
        ));
    }
    if s.windows(2).any(|w| w[1].0 <= w[0].0) {
        return Err("the steps' times must increase".into());
    }
    if let Some((t, v)) = s.iter().find(|(_, v)| !range.contains(v)) {
        return Err(format!(
            "the {what} at {t} s is {v} {unit} (expected {}..={})",
            range.start(),
            range.end()
        ));
    }
    Ok(())
}

/// The settings and axes of `--quick`: the full run's, with what `[quick]` changes.
fn quick(
    at: &At<'_>,
    base: &StreamConfig,
    settings: RunSettings,
    axes: &[Axis],
    raw_quick: Option<RawQuick>,
) -> Result<(RunSettings, Vec<Axis>), ScenarioError> {
    let Some(q) = raw_quick else {
        return Ok((settings, axes.to_vec()));
    };
    let len =
        self::length(at, q.frames.as_ref(), q.duration_s.as_ref())?.unwrap_or(settings.length);
    let reps = match &q.repetitions {
        Some(r) => check_reps(at, r)?,
        None => settings.repetitions,
    };
    let quick_settings = RunSettings {
        pacing: settings.pacing,
        warmup_frames: q.warmup_frames.unwrap_or(settings.warmup_frames),
        length: len,
        repetitions: reps,
    };
    let narrowed = self::axes(at, base, q.sweep)?;
    let mut quick_axes = axes.to_vec();
    for (axis, offset) in narrowed.0.into_iter().zip(narrowed.1) {
        match quick_axes.iter_mut().find(|a| a.path == axis.path) {
            Some(a) => *a = axis,
            None => {
                return Err(at(
                    offset,
                    "quick.sweep.path",
                    format!("{:?} is not an axis of [[sweep]]", axis.path),
                ));
            }
        }
    }
    Ok((quick_settings, quick_axes))
}

/// `[[exclude]]` rules: each a table of axis paths and values (`"renderer.backend" = "cpu"`);
/// every path must be an axis and every value one of its values.
fn exclusions(
    at: &At<'_>,
    axes: &[Axis],
    raw: Vec<Spanned<toml::Table>>,
) -> Result<Vec<Vec<(String, String)>>, ScenarioError> {
    let mut rules = Vec::new();
    for rule in raw {
        let offset = rule.span().start;
        let mut pairs = Vec::new();
        for (path, value) in rule.into_inner() {
            let Some(axis) = axes.iter().find(|a| a.path == path) else {
                return Err(at(
                    offset,
                    "exclude",
                    format!("{path:?} is not an axis of [[sweep]]"),
                ));
            };
            let shown = sweep::show(&value);
            if !axis.values.iter().any(|v| sweep::show(v) == shown) {
                return Err(at(
                    offset,
                    "exclude",
                    format!("{path} = {shown} is not one of the axis's values"),
                ));
            }
            pairs.push((path, shown));
        }
        if pairs.is_empty() {
            return Err(at(
                offset,
                "exclude",
                "an empty rule would exclude every point".into(),
            ));
        }
        rules.push(pairs);
    }
    Ok(rules)
}

fn length(
    at: &At<'_>,
    frames: Option<&Spanned<u64>>,
    duration: Option<&Spanned<f64>>,
) -> Result<Option<Length>, ScenarioError> {
    match (frames, duration) {
        (Some(f), Some(_)) => Err(at(
            f.span().start,
            "frames",
            "give `frames` or `duration_s`, not both".into(),
        )),
        (Some(f), None) if *f.get_ref() == 0 || *f.get_ref() > 1_000_000 => Err(at(
            f.span().start,
            "frames",
            format!("invalid frames = {} (expected 1..=1000000)", f.get_ref()),
        )),
        (Some(f), None) => Ok(Some(Length::Frames(*f.get_ref()))),
        (None, Some(d)) if !(0.1..=3600.0).contains(d.get_ref()) => Err(at(
            d.span().start,
            "duration_s",
            format!("invalid duration_s = {} (expected 0.1..=3600)", d.get_ref()),
        )),
        (None, Some(d)) => Ok(Some(Length::DurationS(*d.get_ref()))),
        (None, None) => Ok(None),
    }
}

fn check_reps(at: &At<'_>, reps: &Spanned<u32>) -> Result<u32, ScenarioError> {
    let n = *reps.get_ref();
    if (1..=100).contains(&n) {
        Ok(n)
    } else {
        Err(at(
            reps.span().start,
            "repetitions",
            format!("invalid repetitions = {n} (expected 1..=100)"),
        ))
    }
}

/// Axes with, for error reporting, the offset of each axis's path.
type AxesWithSpans = (Vec<Axis>, Vec<usize>);

fn axes(
    at: &At<'_>,
    base: &StreamConfig,
    raw: Vec<RawAxis>,
) -> Result<AxesWithSpans, ScenarioError> {
    let mut axes = Vec::new();
    let mut path_offsets = Vec::new();
    for a in raw {
        let path = a.path.get_ref().clone();
        let path_at = a.path.span().start;
        if axes.iter().any(|x: &Axis| x.path == path) {
            return Err(at(path_at, &path, "this path is already an axis".into()));
        }
        if a.values.get_ref().is_empty() {
            return Err(at(
                a.values.span().start,
                &path,
                "an axis needs at least one value".into(),
            ));
        }
        let mut values = Vec::new();
        for v in a.values.into_inner() {
            let offset = v.span().start;
            let value = v.into_inner();
            let checked = if path == sweep::PLAYERS {
                sweep::players(&value).map(|_| ())
            } else {
                let mut probe = base.clone();
                probe
                    .set(&path, value.clone())
                    .and_then(|()| probe.validate())
            };
            checked.map_err(|e| at(offset, &path, e.to_string()))?;
            values.push(value);
        }
        axes.push(Axis { path, values });
        path_offsets.push(path_at);
    }
    Ok((axes, path_offsets))
}

/// 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())]
        .bytes()
        .filter(|&b| b == b'\n')
        .count()
        + 1
}

/// The key written on the line holding `offset` (`threads` in `threads = 0`).
fn key_at(text: &str, offset: usize) -> String {
    let start = text[..offset.min(text.len())]
        .rfind('\n')
        .map_or(0, |i| i + 1);
    let line = text[start..].lines().next().unwrap_or_default();
    match line.split_once('=') {
        Some((key, _)) => key.trim().trim_matches('"').to_string(),
        None => line.trim().trim_matches(['[', ']']).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"suite = "stream"
table = "encoder"
pacing = "max"
warmup_frames = 5
frames = 30
repetitions = 2

[base]
encoder.gop = 30

[[sweep]]
path = "encoder.preset"
values = ["ultrafast", "veryfast", "medium"]

[[sweep]]
path = "encoder.pipeline.threads"
values = [1, 2]

[quick]
frames = 10
repetitions = 1
[[quick.sweep]]
path = "encoder.preset"
values = ["ultrafast"]
"#;

    fn parse(text: &str) -> Result<Scenario, ScenarioError> {
        Scenario::parse(Path::new("scenarios/test.toml"), text)
    }

    #[test]
    fn parses_and_expands() {
        let s = parse(GOOD).unwrap();
        assert_eq!(s.suite, "stream");
        assert_eq!(s.base.encoder.gop, 30);
        let full = s.plan(false);
        assert_eq!(full.points.len(), 6);
        assert_eq!(full.settings.repetitions, 2);
        let quick = s.plan(true);
        assert_eq!(quick.points.len(), 2);
        assert_eq!(quick.settings.length, Length::Frames(10));
        assert_eq!(quick.settings.warmup_frames, 5);
    }

    #[test]
    fn excluded_combinations_are_not_planned() {
        let rule =
            "[[exclude]]\n\"encoder.preset\" = \"medium\"\n\"encoder.pipeline.threads\" = 1\n";
        let text = GOOD.replace("\n[quick]", &format!("\n{rule}\n[quick]"));
        let full = parse(&text).unwrap().plan(false);
        assert_eq!(full.points.len(), 5, "6 points less medium with 1 thread");
        assert!(
            !full
                .points
                .iter()
                .any(|p| p.id() == "encoder.preset=medium, encoder.pipeline.threads=1")
        );
        let not_an_axis = text.replace("\"encoder.preset\" = \"medium\"", "\"encoder.gop\" = 30");
        let e = parse(&not_an_axis).unwrap_err();
        assert!(e.to_string().contains("not an axis"), "{e}");
        let not_a_value = text.replace(
            "= \"medium\"\n\"encoder.pipeline",
            "= \"slow\"\n\"encoder.pipeline",
        );
        let e = parse(&not_a_value).unwrap_err();
        assert!(
            e.to_string().contains("not one of the axis's values"),
            "{e}"
        );
    }

    fn expect_err(text: &str, line: usize, field: &str, words: &str) {
        let e = parse(text).unwrap_err();
        assert_eq!((e.line, e.field.as_str()), (line, field), "{e}");
        let shown = e.to_string();
        assert!(
            shown.starts_with(&format!("scenarios/test.toml:{line}: {field}")),
            "{shown}"
        );
        assert!(shown.contains(words), "{shown}");
    }

    #[test]
    fn errors_name_file_line_and_field() {
        expect_err(
            &GOOD.replace("values = [1, 2]", "values = [1, 0]"),
            17,
            "encoder.pipeline.threads",
            "1..=64",
        );
        expect_err(
            &GOOD.replace("\"veryfast\", \"medium\"", "\"veryfast\", \"slowest\""),
            13,
            "encoder.preset",
            "slowest",
        );
        expect_err(
            &GOOD.replace("encoder.gop = 30", "encoder.gop = 0"),
            9,
            "base.encoder.gop",
            "1..=1000",
        );
        expect_err(
            &GOOD.replace("encoder.gop = 30", "encoder.gopp = 30"),
            9,
            "encoder.gopp",
            "unknown field",
        );
        expect_err(
            &GOOD.replace("frames = 30", "frames = \"30\""),
            5,
            "frames",
            "invalid type",
        );
        expect_err(
            &GOOD.replace("repetitions = 2", "repetitions = 0"),
            6,
            "repetitions",
            "1..=100",
        );
        expect_err(
            &GOOD.replace("pacing = \"max\"", "pacing = \"slow\""),
            3,
            "pacing",
            "slow",
        );
        expect_err(
            &GOOD.replace(
                "path = \"encoder.pipeline.threads\"",
                "path = \"encoder.threads\"",
            ),
            17,
            "encoder.threads",
            "unknown field",
        );
        expect_err(
            &GOOD.replace(
                "path = \"encoder.preset\"\nvalues = [\"ultrafast\"]",
                "path = \"encoder.gop\"\nvalues = [30]",
            ),
            23,
            "quick.sweep.path",
            "not an axis",
        );
    }

    #[test]
    fn a_cpu_schedule_is_checked() {
        let cpu = |schedule: &str| parse(&format!("{GOOD}\n[cpu]\nschedule = {schedule}\n"));
        let ok = cpu("[[0, 2.0], [5, 0.6], [20, 2.0]]").unwrap();
        assert_eq!(ok.cpu.unwrap().schedule[1], (5.0, 0.6));
        let e = cpu("[[0, 2.0], [5, 0.0]]").unwrap_err();
        assert_eq!(e.field, "cpu.schedule");
        assert!(e.message.contains("0 cores (expected 0.01..=1024)"), "{e}");
        assert!(cpu("[[1, 2.0]]").is_err());
    }

    #[test]
    fn a_link_schedule_is_checked_and_needs_players() {
        // `players` at the top level, before the tables.
        let top = |link: &str, players: u32| {
            parse(&format!("players = {players}\n{GOOD}\n[link]\n{link}\n"))
        };
        let ok = top("schedule = [[0, 8000], [5, 1500], [20, 8000]]", 1).unwrap();
        assert_eq!(ok.link.unwrap().schedule[1], (5.0, 1500));
        let e = top("schedule = [[1, 8000]]", 1).unwrap_err();
        assert_eq!(e.field, "link.schedule");
        assert!(e.message.contains("start with a step at 0 s"), "{e}");
        let e = top("schedule = [[0, 8000], [5, 1500], [5, 900]]", 1).unwrap_err();
        assert!(e.message.contains("must increase"), "{e}");
        let e = top("schedule = [[0, 8]]", 1).unwrap_err();
        assert!(
            e.message.contains("8 kbit/s (expected 16..=10000000)"),
            "{e}"
        );
        let e = top("schedule = [[0, 8000]]", 0).unwrap_err();
        assert_eq!(e.field, "link");
    }

    #[test]
    fn quick_schedules_replace_the_full_runs_and_are_checked() {
        let link = "[link]\nschedule = [[0, 8000], [5, 1500], [20, 8000]]\n";
        let quick = "[quick.link]\nschedule = [[0, 8000], [2, 1500], [7, 8000]]\n";
        let s = parse(&format!("players = 1\n{GOOD}{quick}{link}")).unwrap();
        assert_eq!(s.plan(false).link.unwrap().schedule[1], (5.0, 1500));
        assert_eq!(s.plan(true).link.unwrap().schedule[1], (2.0, 1500));
        assert!(s.plan(true).cpu.is_none());
        // Without [quick.link], --quick keeps the full run's schedule.
        let s = parse(&format!("players = 1\n{GOOD}{link}")).unwrap();
        assert_eq!(s.plan(true).link.unwrap().schedule[1], (5.0, 1500));
        let e = parse(&format!("players = 1\n{GOOD}{quick}")).unwrap_err();
        assert_eq!(e.field, "quick.link");
        let bad = "[quick.cpu]\nschedule = [[0, 2.0], [2, 0.0]]\n";
        let cpu = "[cpu]\nschedule = [[0, 2.0]]\n";
        let e = parse(&format!("{GOOD}{bad}{cpu}")).unwrap_err();
        assert_eq!(e.field, "quick.cpu.schedule", "{e}");
    }
}
