//! Reading a scenario file: its raw TOML form, and each part checked with the file, line
//! and field of a mistake.

use super::{CpuPlan, GuideTable, Length, LinkPlan, RunSettings, ScenarioError};
use crate::sweep::{self, Axis};
use serde::Deserialize;
use streamer::config::StreamConfig;
use streamer::stream::Pacing;
use toml::Spanned;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAxis {
    pub(super) path: Spanned<String>,
    pub(super) values: Spanned<Vec<Spanned<toml::Value>>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawQuick {
    pub(super) frames: Option<Spanned<u64>>,
    pub(super) duration_s: Option<Spanned<f64>>,
    pub(super) warmup_frames: Option<u64>,
    pub(super) repetitions: Option<Spanned<u32>>,
    #[serde(default)]
    pub(super) sweep: Vec<RawAxis>,
    pub(super) link: Option<Spanned<RawLink>>,
    pub(super) cpu: Option<Spanned<RawCpu>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawScenario {
    pub(super) suite: String,
    pub(super) table: GuideTable,
    #[serde(default)]
    pub(super) description: String,
    pub(super) pacing: Pacing,
    #[serde(default)]
    pub(super) warmup_frames: u64,
    pub(super) frames: Option<Spanned<u64>>,
    pub(super) duration_s: Option<Spanned<f64>>,
    pub(super) repetitions: Spanned<u32>,
    #[serde(default)]
    pub(super) players: Option<Spanned<toml::Value>>,
    #[serde(default)]
    pub(super) base: Option<Spanned<StreamConfig>>,
    #[serde(default)]
    pub(super) sweep: Vec<RawAxis>,
    #[serde(default)]
    pub(super) exclude: Vec<Spanned<toml::Table>>,
    pub(super) quick: Option<RawQuick>,
    #[serde(default)]
    pub(super) link: Option<Spanned<RawLink>>,
    #[serde(default)]
    pub(super) cpu: Option<Spanned<RawCpu>>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCpu {
    pub(super) schedule: Vec<(f64, f64)>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLink {
    pub(super) schedule: Vec<(f64, u32)>,
}

pub(super) type At<'a> = dyn Fn(usize, &str, String) -> ScenarioError + 'a;

/// A `[link]` table's plan, its schedule checked (errors name `field`).
pub(super) fn link_plan(
    at: &At<'_>,
    raw: Spanned<RawLink>,
    field: &str,
) -> Result<LinkPlan, ScenarioError> {
    let offset = raw.span().start;
    let plan = LinkPlan {
        schedule: raw.into_inner().schedule,
    };
    if let Some(problem) = link_problem(&plan) {
        return Err(at(offset, field, problem));
    }
    Ok(plan)
}

/// A `[cpu]` table's plan, its schedule checked (errors name `field`).
pub(super) fn cpu_plan(
    at: &At<'_>,
    raw: Spanned<RawCpu>,
    field: &str,
) -> Result<CpuPlan, ScenarioError> {
    let offset = raw.span().start;
    let plan = CpuPlan {
        schedule: raw.into_inner().schedule,
    };
    if let Some(problem) = cpu_problem(&plan) {
        return Err(at(offset, field, problem));
    }
    Ok(plan)
}

/// `[quick.TABLE]` without the full run's `[TABLE]`.
pub(super) fn no_full(at: &At<'_>, offset: usize, table: &str) -> ScenarioError {
    at(
        offset,
        &format!("quick.{table}"),
        format!("a quick schedule for a [{table}] the full run does not have: add [{table}]"),
    )
}

/// What is wrong with a link's schedule, if anything: it must start at 0, go forward in
/// time, and name rates a link can have.
pub(super) fn link_problem(plan: &LinkPlan) -> Option<String> {
    schedule_problem(
        &plan.schedule,
        16..=10_000_000,
        "rate",
        "kbit/s",
        "[[0, 8000], …]",
    )
}

/// What is wrong with a CPU quota's schedule, if anything: it must start at 0, go forward in
/// time, and name quotas a cgroup can have.
pub(super) fn cpu_problem(plan: &CpuPlan) -> Option<String> {
    schedule_problem(
        &plan.schedule,
        0.01..=1024.0,
        "quota",
        "cores",
        "[[0, 2.0], …]",
    )
}

/// What is wrong with `[seconds, value]` steps, if anything: the first must be at 0, times
/// must increase, every value must be in `range`.
pub(super) fn schedule_problem<T: PartialOrd + std::fmt::Display>(
    s: &[(f64, T)],
    range: std::ops::RangeInclusive<T>,
    what: &str,
    unit: &str,
    example: &str,
) -> Option<String> {
    if s.first().is_none_or(|(t, _)| *t != 0.0) {
        return Some(format!(
            "the schedule must start with a step at 0 s, e.g. {example}"
        ));
    }
    if s.windows(2).any(|w| w[1].0 <= w[0].0) {
        return Some("the steps' times must increase".into());
    }
    if let Some((t, v)) = s.iter().find(|(_, v)| !range.contains(v)) {
        return Some(format!(
            "the {what} at {t} s is {v} {unit} (expected {}..={})",
            range.start(),
            range.end()
        ));
    }
    None
}

/// The settings and axes of `--quick`: the full run's, with what `[quick]` changes.
pub(super) fn quick(
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
pub(super) fn exclusions(
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

pub(super) fn length(
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

pub(super) fn check_reps(at: &At<'_>, reps: &Spanned<u32>) -> Result<u32, ScenarioError> {
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

pub(super) fn axes(
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
pub(super) fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())]
        .bytes()
        .filter(|&b| b == b'\n')
        .count()
        + 1
}

/// The key written on the line holding `offset` (`threads` in `threads = 0`).
pub(super) fn key_at(text: &str, offset: usize) -> String {
    let start = text[..offset.min(text.len())]
        .rfind('\n')
        .map_or(0, |i| i + 1);
    let line = text[start..].lines().next().unwrap_or_default();
    match line.split_once('=') {
        Some((key, _)) => key.trim().trim_matches('"').to_string(),
        None => line.trim().trim_matches(['[', ']']).to_string(),
    }
}

/// `source.path` in a scenario: the real test clip (`cargo xtask clip`), wherever the machine
/// keeps it. Results keep the placeholder (no path of one machine); a point's run opens the
/// file `STREAM_MANAGER_CLIP` names ([`clip_path`]).
pub const CLIP: &str = "$STREAM_MANAGER_CLIP";

/// The clip's path on this machine (`STREAM_MANAGER_CLIP`, which `cargo xtask perf` sets).
pub fn clip_path() -> Option<String> {
    std::env::var_os("STREAM_MANAGER_CLIP")
        .filter(|c| !c.is_empty())
        .map(|c| c.to_string_lossy().into_owned())
}

/// The `[base]` table over the defaults, validated; a bad value is named where it was written.
pub(super) fn base(
    at: &At<'_>,
    text: &str,
    raw: Option<Spanned<StreamConfig>>,
) -> Result<StreamConfig, ScenarioError> {
    let (base, base_span) = match raw {
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
    Ok(base)
}

/// The link's and the CPU quota's schedules, full and `--quick`.
pub(super) struct Schedules {
    pub link: Option<LinkPlan>,
    pub cpu: Option<CpuPlan>,
    pub quick_link: Option<LinkPlan>,
    pub quick_cpu: Option<CpuPlan>,
}

/// The `[link]`, `[cpu]`, `[quick.link]` and `[quick.cpu]` tables checked: a shaped link
/// needs players; `--quick`'s schedules are its own where given (only for a table the full
/// run has), else the full run's.
pub(super) fn schedules(
    at: &At<'_>,
    players: bool,
    link: Option<Spanned<RawLink>>,
    cpu: Option<Spanned<RawCpu>>,
    quick_link: Option<Spanned<RawLink>>,
    quick_cpu: Option<Spanned<RawCpu>>,
) -> Result<Schedules, ScenarioError> {
    let link = match link {
        Some(l) => {
            let offset = l.span().start;
            let plan = link_plan(at, l, "link.schedule")?;
            if !players {
                return Err(at(
                    offset,
                    "link",
                    "a shaped link carries the stream to the embedded server: set `players` \
                     to at least 1"
                        .to_string(),
                ));
            }
            Some(plan)
        }
        None => None,
    };
    let cpu = cpu.map(|c| cpu_plan(at, c, "cpu.schedule")).transpose()?;
    let quick_link = match quick_link {
        Some(l) if link.is_none() => return Err(no_full(at, l.span().start, "link")),
        Some(l) => Some(link_plan(at, l, "quick.link.schedule")?),
        None => link.clone(),
    };
    let quick_cpu = match quick_cpu {
        Some(c) if cpu.is_none() => return Err(no_full(at, c.span().start, "cpu")),
        Some(c) => Some(cpu_plan(at, c, "quick.cpu.schedule")?),
        None => cpu.clone(),
    };
    Ok(Schedules {
        link,
        cpu,
        quick_link,
        quick_cpu,
    })
}
