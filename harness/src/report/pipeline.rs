//! The frame pipeline table (the `workers` suite): queue, pool, quality and format.

use super::baseline::pipeline_baseline;
use super::format::{drop_reasons, header, mib, spread};
use crate::results::Results;
use std::fmt::Write as _;

pub(super) fn pipeline_table(out: &mut String, r: &Results) {
    let engine = r.points.first().map_or("-".to_string(), |p| {
        format!(
            "{}, {} encoder threads",
            p.config.encoder.preset, p.config.encoder.pipeline.threads
        )
    });
    header(
        out,
        "Frame Pipeline — Tested Configurations",
        r,
        &format!(
            "Encoder: {engine}. FPS is frames encoded per second of wall time (median, \
             min–max); Memory is peak RSS; Drops are all repetitions' drops by reason (behind: \
             the renderer was past the frame's slot; queue full: the queue's drop policy; \
             stale: waited past dropThreshold; late: past maxLatency at the encoder; pressure: \
             shed under memory pressure; congestion: non-keyframes the network could not carry, \
             with adaptive bitrate)."
        ),
    );
    out.push_str("| Queue Size | Pool Size | Quality | Format | FPS | Memory | Drops | Notes |\n");
    out.push_str(
        "|------------|-----------|---------|--------|-----|---------|--------|-------|\n",
    );
    for p in &r.points {
        let c = &p.config.pipeline;
        let mut notes = Vec::new();
        if pipeline_baseline(&p.config) {
            notes.push("Baseline".to_string());
        }
        if let Some(pf) = &p.pipeline {
            if pf.format_bytes_per_frame > 0.0 {
                notes.push(format!(
                    "{:.0} KiB/frame as {}",
                    pf.format_bytes_per_frame / 1024.0,
                    c.format
                ));
            }
            notes.push(format!("bufferHealth {:.2}", pf.buffer_health));
        }
        if let Some(t) = p.spans.get("frame:total") {
            notes.push(format!("frame total {}", super::format::tail_ms(t, 1)));
        }
        if let Some(t) = p.spans.get("pipeline:process") {
            notes.push(format!("process p50 {} ms", super::format::ms(t.p50(), 2)));
        }
        notes.push(format!("{:.0}% CPU", p.cpu_percent));
        let drops = p
            .pipeline
            .as_ref()
            .map_or(p.dropped_frames.to_string(), |pf| drop_reasons(&pf.drops));
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            c.max_queue_size,
            c.pool_size,
            c.jpeg_quality,
            c.format,
            spread(p),
            mib(p.rss_bytes),
            drops,
            notes.join("; ").replace('|', "/"),
        );
    }
    out.push('\n');
}
