//! Figures that add up: the invariants every results file must keep, checked by
//! `cargo xtask results check` over every `results/*/latest.json` (and, with `--committed`,
//! over what git's index holds, the committed report included).
//!
//! Each schema version has its invariants. Version 1 (results from before the version was
//! written) is held to what its figures allow: percentiles in order, the fps spread around
//! its median, the drops its repetitions add up to. Version 2 adds what it measures for the
//! purpose: every frame due accounted for ([`crate::point::figures::FrameLedger`]), the stages'
//! CPU within the process's over the same window, and at least 3 runs a point in a full run.

use super::model::{PointResult, Results};
use crate::record::SpanStats;
use std::fmt;

/// The schema version new results are written with.
pub const SCHEMA: u32 = 2;

/// How far the stages' CPU may pass the process's: the clocks' granularity and the instants
/// between their reads.
pub const CPU_SLACK: f64 = 0.02;

/// Least runs a point of a full run takes (so that spread exists).
pub const MIN_FULL_RUNS: usize = 3;

/// One broken invariant: where, which, and the figures that break it.
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    pub suite: String,
    /// The point's id (empty for the suite as a whole).
    pub point: String,
    pub rule: &'static str,
    pub figures: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.point.is_empty() {
            write!(f, "{}: {}: {}", self.suite, self.rule, self.figures)
        } else {
            write!(
                f,
                "{}, point {}: {}: {}",
                self.suite, self.point, self.rule, self.figures
            )
        }
    }
}

/// Every invariant `r` breaks, in point order.
pub fn check(r: &Results) -> Vec<Violation> {
    let mut out = Vec::new();
    if r.schema > SCHEMA {
        out.push(Violation {
            suite: r.suite.clone(),
            point: String::new(),
            rule: "a schema this harness knows",
            figures: format!("schema {} > {SCHEMA}", r.schema),
        });
        return out;
    }
    for p in &r.points {
        let mut fail = |rule: &'static str, figures: String| {
            out.push(Violation {
                suite: r.suite.clone(),
                point: p.id.clone(),
                rule,
                figures,
            })
        };
        for (rule, figures) in point_v1(p) {
            fail(rule, figures);
        }
        if r.schema >= 2 {
            for (rule, figures) in point_v2(p, !r.quick) {
                fail(rule, figures);
            }
        }
    }
    out
}

/// Version 1's invariants of one point.
fn point_v1(p: &PointResult) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    for (name, s) in &p.spans {
        if !percentiles_in_order(s) {
            out.push((
                "span percentiles in order (p50 ≤ p90 ≤ p99 ≤ p99.9 ≤ max)",
                format!(
                    "{name}: {} / {} / {} / {} / {} µs",
                    s.p50_us, s.p90_us, s.p99_us, s.p999_us, s.max_us
                ),
            ));
        }
    }
    if !(p.fps_min <= p.fps + 1e-9 && p.fps <= p.fps_max + 1e-9) {
        out.push((
            "fps between its runs' least and most",
            format!("{} not in {}..={}", p.fps, p.fps_min, p.fps_max),
        ));
    }
    let rep_drops: u64 = p.repetitions.iter().map(|r| r.dropped_frames).sum();
    if !p.repetitions.is_empty() && rep_drops != p.dropped_frames {
        out.push((
            "drops are the runs' drops added up",
            format!(
                "{} ≠ {rep_drops} over {} runs",
                p.dropped_frames,
                p.repetitions.len()
            ),
        ));
    }
    if p.cpu_percent < 0.0 || p.fps < 0.0 || p.bitrate_kbps < 0.0 {
        out.push((
            "no negative rate",
            format!(
                "fps {}, CPU {} %, {} kbit/s",
                p.fps, p.cpu_percent, p.bitrate_kbps
            ),
        ));
    }
    out
}

/// Version 2's invariants of one point (`full`: not a `--quick` run).
fn point_v2(p: &PointResult, full: bool) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    match &p.ledger {
        None => out.push(("a frame ledger", "none".to_string())),
        Some(l) => {
            if l.unaccounted() != 0 {
                out.push((
                    "frames due = encoded + dropped",
                    format!(
                        "{} due, {} encoded, {} dropped ({} unaccounted)",
                        l.due,
                        l.encoded,
                        l.dropped.total(),
                        l.unaccounted()
                    ),
                ));
            }
            if l.lost > l.encoded || l.dropped.total() + l.lost != p.dropped_frames {
                out.push((
                    "drops = dropped by reason + lost by the output",
                    format!(
                        "{} ≠ {} + {} (lost of {} encoded)",
                        p.dropped_frames,
                        l.dropped.total(),
                        l.lost,
                        l.encoded
                    ),
                ));
            }
        }
    }
    if let Some(l) = p.network.as_ref().and_then(|n| n.ledger.as_ref())
        && l.unaccounted() > 0
    {
        out.push((
            "per player: sent = delivered + dropped (+ in flight at the start)",
            format!(
                "{} players × {} sent ≠ {} delivered + {} dropped ({} unaccounted)",
                l.players,
                l.sent,
                l.delivered,
                l.dropped,
                l.unaccounted()
            ),
        ));
    }
    if let Some(process) = p.process_cpu_ms {
        let stages: f64 = p.stage_cpu_ms.values().sum();
        if stages > process * (1.0 + CPU_SLACK) {
            out.push((
                "stages' CPU ≤ their process's + 2%",
                format!(
                    "{stages:.3} ms > {process:.3} ms a frame ({:.1}%)",
                    stages / process * 100.0
                ),
            ));
        }
    } else if !p.stage_cpu_ms.is_empty() {
        out.push((
            "the process's CPU over the stages' window",
            "stages without it".to_string(),
        ));
    }
    if full && p.repetitions.len() < MIN_FULL_RUNS {
        out.push((
            "at least 3 runs a point in a full run",
            format!("{} run(s)", p.repetitions.len()),
        ));
    }
    out
}

fn percentiles_in_order(s: &SpanStats) -> bool {
    s.count == 0
        || (s.p50_us <= s.p90_us
            && s.p90_us <= s.p99_us
            && s.p99_us <= s.p999_us
            && s.p999_us <= s.max_us)
}

/// What a report that is committed must not be: one that shows `--quick` runs (said by the
/// line the report writes for them).
pub fn check_report(text: &str) -> Vec<Violation> {
    if text.contains(crate::report::QUICK_SETS) {
        let line = text
            .lines()
            .find(|l| l.contains(crate::report::QUICK_SETS))
            .unwrap_or_default();
        vec![Violation {
            suite: "REPORT.md".to_string(),
            point: String::new(),
            rule: "a committed report from full runs only",
            figures: line.to_string(),
        }]
    } else {
        Vec::new()
    }
}
