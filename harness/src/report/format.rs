//! The report's shared formatting: sizes, fps with its spread, drops by reason, span
//! percentiles in ms, a suite table's header paragraph, and Markdown table rows.

use crate::record::SpanStats;
use crate::results::{PointResult, Results};
use std::fmt::Write as _;

/// Human-readable bytes (MiB with one decimal).
pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

pub(super) fn spread(p: &PointResult) -> String {
    if p.repetitions.len() > 1 {
        format!("{:.1} ({:.1}–{:.1})", p.fps, p.fps_min, p.fps_max)
    } else {
        format!("{:.1}", p.fps)
    }
}

/// Drops by reason, the nonzero ones.
pub(super) fn drop_reasons(d: &streamer::pipeline::Drops) -> String {
    let parts: Vec<String> = [
        ("behind", d.behind),
        ("queue full", d.queue_full),
        ("stale", d.stale),
        ("late", d.late),
        ("pressure", d.pressure),
        ("congestion", d.congestion),
    ]
    .iter()
    .filter(|(_, n)| *n > 0)
    .map(|(what, n)| format!("{n} {what}"))
    .collect();
    if parts.is_empty() {
        "0".to_string()
    } else {
        format!("{} ({})", d.total(), parts.join(", "))
    }
}

pub(super) fn span_ms(p: &PointResult, span: &str, f: fn(&SpanStats) -> Option<f64>) -> String {
    p.spans.get(span).map_or("-".to_string(), |s| ms(f(s), 2))
}

/// A table's first columns for its points: one per axis, headed by the axis's setting (its
/// path's last part; the whole path where two would read the same), and the line under them;
/// `Point` where the suite has no axis.
pub(super) fn axis_header(r: &Results) -> (String, String) {
    let paths: Vec<&str> = r
        .points
        .first()
        .map(|p| p.axes.iter().map(|a| a.path.as_str()).collect())
        .unwrap_or_default();
    if paths.is_empty() {
        return ("| Point |".to_string(), "|-------|".to_string());
    }
    // The last part of the path, or the last two where the last says little alone.
    let short = |p: &str| {
        let mut parts = p.rsplit('.');
        let last = parts.next().unwrap_or(p);
        match parts.next() {
            Some(before) if ["enabled", "min", "mode"].contains(&last) => {
                format!("{before}.{last}")
            }
            _ => last.to_string(),
        }
    };
    let names: Vec<String> = paths
        .iter()
        .map(|p| {
            let s = short(p);
            if paths.iter().filter(|q| short(q) == s).count() > 1 {
                p.to_string()
            } else {
                s
            }
        })
        .collect();
    (
        format!("| {} |", names.join(" | ")),
        format!("|{}", "---|".repeat(names.len())),
    )
}

/// A point's cells under [`axis_header`]: its axes' values (its id where it has none).
pub(super) fn axis_row(p: &PointResult) -> String {
    if p.axes.is_empty() {
        return format!("| {} |", p.id);
    }
    let values: Vec<String> = p.axes.iter().map(|a| a.value.replace('|', "/")).collect();
    format!("| {} |", values.join(" | "))
}

/// A ratio of paired runs with its 95% interval, judged: "1.02 (0.97–1.06): no measurable
/// difference" where the interval holds 1, the ratio and its interval where it does not, and
/// "not judged" where there are not two pairs to bootstrap (older results kept no pairs).
pub fn judged_ratio(ratio: f64, pairs: &[[f64; 2]]) -> String {
    match pairs.len() {
        0 => return format!("{ratio:.3} (not judged: its runs were not kept)"),
        1 => return format!("{ratio:.3} (not judged: 1 run)"),
        _ => {}
    }
    let (lo, hi) = crate::stats::ratio_interval(pairs);
    if lo <= 1.0 && 1.0 <= hi {
        format!("no measurable difference ({lo:.2}–{hi:.2})")
    } else {
        format!("{ratio:.3} ({lo:.3}–{hi:.3})")
    }
}

/// A time in µs as ms with `decimals`, or "—" where there is none (a percentile with too few
/// samples beyond it: see [`SpanStats::quantile`]).
pub fn ms(us: Option<f64>, decimals: usize) -> String {
    us.map_or("—".to_string(), |v| {
        format!("{:.*}", decimals, v / 1000.0)
    })
}

/// A span's tail as its samples allow: "p99 X ms" from 500 samples, else "p90 X ms" from 50,
/// else "p90 — ms" (the percentile rule: at least 5 samples beyond the percentile).
pub fn tail_ms(s: &crate::record::SpanStats, decimals: usize) -> String {
    match (s.p99(), s.p90()) {
        (Some(p99), _) => format!("p99 {} ms", ms(Some(p99), decimals)),
        (None, p90) => format!("p90 {} ms", ms(p90, decimals)),
    }
}

/// The line under every table's heading: the commit and machine it was measured on, and when.
pub(super) fn measured_on(out: &mut String, r: &Results) {
    let _ = writeln!(
        out,
        "Measured on commit `{}`, {}, {}.\n",
        r.commit,
        r.machine.short(),
        r.started
    );
}

pub(super) fn header(out: &mut String, title: &str, r: &Results, what: &str) {
    let first = r.points.first();
    let _ = writeln!(out, "## {title}\n");
    measured_on(out, r);
    let _ = writeln!(
        out,
        "From `{}` ({}{}): {}×{} at {} fps, pacing `{}`, {} run(s) of {} per point after {} \
         warm-up frames. {what}\n",
        r.scenario,
        r.started,
        if r.quick { ", --quick" } else { "" },
        first.map_or(0, |p| p.config.core.viewport.width),
        first.map_or(0, |p| p.config.core.viewport.height),
        first.map_or(0, |p| p.config.core.viewport.fps),
        r.settings.pacing,
        r.settings.repetitions,
        r.settings.length,
        r.settings.warmup_frames,
    );
}

pub(super) fn row(out: &mut String, cells: &[String]) {
    let _ = writeln!(out, "| {} |", cells.join(" | ").replace('\n', " "));
}

pub(super) fn head(out: &mut String, columns: &[&str]) {
    let _ = writeln!(out, "| {} |", columns.join(" | "));
    let _ = writeln!(out, "|{}", "---|".repeat(columns.len()));
}
