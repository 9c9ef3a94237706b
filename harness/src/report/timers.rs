//! The guide's SystemTimers for a point: where a frame's time goes.

use crate::results::PointResult;
use std::fmt::Write as _;

/// The guide's SystemTimers for one point: mean and p99 per timer, and its share of the
/// frame's total.
pub fn system_timers(out: &mut String, p: &PointResult) {
    let span = |n: &str| p.spans.get(n);
    let total = span("frame:total").map_or(0.0, |s| s.mean_us);
    out.push_str("#### SystemTimers (where a frame's time goes, baseline point)\n\n");
    out.push_str("| Timer | Span | Mean ms | p99 ms | Share of frame total |\n");
    out.push_str("|---|---|---:|---:|---:|\n");
    let rows: [(&str, &str); 11] = [
        ("frame.generation", "render:frame"),
        ("frame.preprocessing", "pipeline:process"),
        ("frame.encoding", "encode"),
        ("frame.total", "frame:total"),
        ("core.assetLoad", "asset:load"),
        ("core.layoutUpdate", "layout:update"),
        ("core.renderSetup", "render:setup"),
        ("pipeline.queueTime", "pipeline:queue"),
        ("pipeline.processingTime", "pipeline:process"),
        ("pipeline.encoderLatency", "encode"),
        ("pipeline.networkLatency", "network:send"),
    ];
    for (timer, name) in rows {
        let Some(s) = span(name) else { continue };
        let per_frame = streamer::probe::SPANS
            .iter()
            .any(|sp| sp.name == name && sp.per_frame);
        let share = if total > 0.0 && per_frame {
            format!("{:.0}%", s.mean_us / total * 100.0)
        } else {
            "-".into()
        };
        let _ = writeln!(
            out,
            "| {timer} | `{name}` | {:.3} | {} | {share} |",
            s.mean_us / 1000.0,
            super::format::ms(s.p99(), 3)
        );
    }
    out.push_str(
        "\nframe.composition is inside frame.generation (`render:frame` is the scene and the \
         compositor); core.viewportUpdate is timed by the core suite. Shares need not add up to \
         100%: stages overlap on their threads, and the queue wait is part of the total.\n\n",
    );
}
