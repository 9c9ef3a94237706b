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

/// The section: every point that shows a symptom, by suite.
pub(super) fn section(out: &mut String, loaded: &[Results]) {
    let _ = writeln!(
        out,
        "## Diagnosis (the guide's Troubleshooting)\n\n\
         Every measured point checked for the guide's three symptoms, each answered from its \
         checklist with what was measured. A point shows **frame drops** when it dropped any \
         frame (pipeline, connection or server) or, paced at real time, reached under 98% of \
         its frame rate; **high latency** when, paced at real time, a frame's p99 from capture \
         to sent (or to a player) is over {LATENCY_INTERVALS} frame intervals; **high memory** \
         when its peak RSS is at least 25% and 16 MiB above the leanest point of its table \
         (over {MEMORY_ALONE_MIB} MiB where nothing compares). Bottlenecks compare a stage's \
         p50 with the frame interval.\n"
    );
    let mut any = false;
    for r in loaded.iter().filter(|r| r.table != GuideTable::Quality) {
        let reference = r
            .points
            .iter()
            .map(|p| p.rss_bytes)
            .filter(|&b| b > 0)
            .min();
        let mut lines: BTreeMap<usize, Vec<String>> = BTreeMap::new();
        for (i, p) in r.points.iter().enumerate() {
            for f in diagnose(&observed(r, p, reference)) {
                lines
                    .entry(i)
                    .or_default()
                    .push(format!("**{}**: {}", f.symptom, f.cause));
            }
        }
        if lines.is_empty() {
            continue;
        }
        any = true;
        let _ = writeln!(out, "### `{}`\n", r.suite);
        for (i, found) in lines {
            let _ = writeln!(out, "- {}", r.points[i].id);
            for line in found {
                let _ = writeln!(out, "  - {line}");
            }
        }
        out.push('\n');
    }
    if !any {
        out.push_str("No measured point shows any of the three symptoms.\n\n");
    }
}
