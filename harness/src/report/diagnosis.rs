//! The guide's Troubleshooting for every measured point: which of its three symptoms (high
//! memory, frame drops, high latency) a point shows, and the measured cause in one line
//! ([`streamer::diagnose`] holds the rules; `stream-manager run` prints the same for its own
//! stream).

use crate::record::SpanStats;
use crate::results::{PointResult, Results};
use crate::scenario::GuideTable;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use streamer::diagnose::{LATENCY_INTERVALS, MEMORY_ALONE_MIB, Observed, Times, diagnose};
use streamer::stream::Pacing;

/// A point's figures as the checklists need them; `reference` is the leanest peak RSS of its
/// table.
pub fn observed(r: &Results, p: &PointResult, reference: Option<u64>) -> Observed {
    // A percentile with too few samples beyond it is none (see `SpanStats::quantile`).
    let times = |f: fn(&SpanStats) -> Option<f64>| {
        Times::from_spans(|name| p.spans.get(name).and_then(f).map(|us| us / 1000.0))
    };
    let v = &p.config.core.viewport;
    let pipeline = p.pipeline.as_ref();
    Observed {
        fps_target: f64::from(v.fps),
        fps: p.fps,
        realtime: r.settings.pacing == Pacing::Realtime,
        drops: pipeline.map(|x| x.drops).unwrap_or_default(),
        sink_dropped: p.network.as_ref().map_or(0, |n| n.publisher_dropped),
        server_dropped: p.network.as_ref().map_or(0, |n| n.server_dropped),
        players: p.network.as_ref().map_or(0, |n| n.players),
        typical: times(SpanStats::p50),
        typical_stat: "p50",
        tail: Some(times(SpanStats::p99)),
        workers: p.config.pipeline.pool_size,
        max_queue_size: p.config.pipeline.max_queue_size,
        frame_bytes: u64::from(v.width) * u64::from(v.height) * 3 / 2,
        buffer_health: pipeline.map(|x| x.buffer_health),
        cpu_percent: p.cpu_percent,
        cores: r.machine.cores as u32,
        rss_bytes: p.rss_bytes,
        rss_reference: reference,
        rss_growth_mib_s: growth(&p.rss_timeline),
        buffer_allocs_per_frame: pipeline.map(|x| x.buffer_allocs_per_frame),
    }
}

/// RSS growth over the second half of a `(ms, bytes)` timeline, MiB/s.
fn growth(timeline: &[(u64, u64)]) -> Option<f64> {
    let (first, last) = (timeline.get(timeline.len() / 2)?, timeline.last()?);
    let seconds = (last.0.checked_sub(first.0)?) as f64 / 1000.0;
    (seconds >= 0.5).then(|| (last.1 as f64 - first.1 as f64) / (1024.0 * 1024.0) / seconds)
}

/// The findings of a suite's points: `(point index, finding)`.
fn findings(r: &Results) -> Vec<(usize, streamer::diagnose::Finding)> {
    if r.table == GuideTable::Quality {
        return Vec::new();
    }
    let reference = r
        .points
        .iter()
        .map(|p| p.rss_bytes)
        .filter(|&b| b > 0)
        .min();
    r.points
        .iter()
        .enumerate()
        .flat_map(|(i, p)| {
            diagnose(&observed(r, p, reference))
                .into_iter()
                .map(move |f| (i, f))
        })
        .collect()
}

/// How the checks are made, said once.
fn rules() -> String {
    format!(
        "Every measured point is checked for the guide's three symptoms, each answered from its \
         checklist with what was measured. A point shows **frame drops** when it dropped any \
         frame (pipeline, connection or server) or, paced at real time, reached under 98% of \
         its frame rate; **high latency** when, paced at real time, a frame's p99 from capture \
         to sent (or to a player) is over {LATENCY_INTERVALS} frame intervals; **high memory** \
         when its peak RSS is at least 25% and 16 MiB above the leanest point of its table \
         (over {MEMORY_ALONE_MIB} MiB where nothing compares). Bottlenecks compare a stage's \
         p50 with the frame interval.\n"
    )
}

/// The main report's section: one line per symptom and cause, with the points it covers
/// (each point's own line, with its figures, is in its suite's detail page).
pub(super) fn grouped(out: &mut String, loaded: &[Results]) {
    let _ = writeln!(
        out,
        "## Diagnosis (the guide's Troubleshooting)\n\n{}",
        rules()
    );
    // (symptom, cause) → suite → point ids.
    type Points = BTreeMap<String, Vec<String>>;
    let mut by_cause: BTreeMap<(String, &'static str), Points> = BTreeMap::new();
    for r in loaded {
        for (i, f) in findings(r) {
            for cause in f.causes() {
                by_cause
                    .entry((f.symptom.to_string(), cause))
                    .or_default()
                    .entry(r.suite.clone())
                    .or_default()
                    .push(r.points[i].id.clone());
            }
        }
    }
    if by_cause.is_empty() {
        out.push_str("No measured point shows any of the three symptoms.\n\n");
        return;
    }
    out.push_str("| Symptom | Cause | Points (each one's figures in its suite's details) |\n");
    out.push_str("|---|---|---|\n");
    for ((symptom, cause), suites) in &by_cause {
        let points: Vec<String> = suites
            .iter()
            .map(|(suite, ids)| {
                let named: Vec<&str> = ids.iter().take(2).map(String::as_str).collect();
                let more = ids.len().saturating_sub(2);
                format!(
                    "[`{suite}`]({suite}/REPORT.md#diagnosis) {}: {}{}",
                    if ids.len() == 1 {
                        "1 point".to_string()
                    } else {
                        format!("{} points", ids.len())
                    },
                    named.join("; "),
                    if more > 0 {
                        format!("; and {more} more")
                    } else {
                        String::new()
                    }
                )
                .replace('|', "/")
            })
            .collect();
        let _ = writeln!(out, "| {symptom} | {cause} | {} |", points.join("<br>"));
    }
    out.push('\n');
}

/// A suite's detail page's section: every point that shows a symptom, with its line.
pub(super) fn per_point(out: &mut String, r: &Results) {
    let _ = writeln!(out, "## Diagnosis\n\n{}", rules());
    let found = findings(r);
    if found.is_empty() {
        out.push_str("No point of this suite shows any of the three symptoms.\n\n");
        return;
    }
    let mut lines: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for (i, f) in found {
        lines
            .entry(i)
            .or_default()
            .push(format!("**{}**: {}", f.symptom, f.cause));
    }
    for (i, found) in lines {
        let _ = writeln!(out, "- {}", r.points[i].id);
        for line in found {
            let _ = writeln!(out, "  - {line}");
        }
    }
    out.push('\n');
}
