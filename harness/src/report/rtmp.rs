//! The RTMP server table (the `network` suite): chunk size, GOP cache and ping against
//! bandwidth, latency and join time.

use super::baseline::rtmp_baseline;
use super::comparisons::comparisons;
use super::format::{measured_on, mib};
use crate::results::Results;
use std::fmt::Write as _;

pub(super) fn rtmp_table(out: &mut String, r: &Results) {
    let first = r.points.first();
    let _ = writeln!(out, "## RTMP Server — Tested Configurations\n");
    measured_on(out, r);
    let _ = writeln!(
        out,
        "From `{}` ({}{}): one publisher at {}×{}@{} ({}, pacing `{}`) to the embedded server on \
         loopback, {} run(s) of {} per point after {} warm-up frames. Bandwidth is RTMP bytes \
         sent by the publisher / payload delivered to each player (mean), per second of wall \
         time. Latency is glass to glass (`e2e`: frame capture → a player receives it). Join is \
         a player arriving after the warm-up: connect → first keyframe.\n",
        r.scenario,
        r.started,
        if r.quick { ", --quick" } else { "" },
        first.map_or(0, |p| p.config.core.viewport.width),
        first.map_or(0, |p| p.config.core.viewport.height),
        first.map_or(0, |p| p.config.core.viewport.fps),
        first.map_or("-".to_string(), |p| p.config.encoder.preset.to_string()),
        r.settings.pacing,
        r.settings.repetitions,
        r.settings.length,
        r.settings.warmup_frames,
    );
    out.push_str("| Chunk Size | GOP Cache | Ping | Timeout | Bandwidth | Latency | Notes |\n");
    out.push_str("|------------|-----------|------|---------|-----------|---------|-------|\n");
    for p in &r.points {
        let t = &p.config.rtmp;
        let Some(n) = &p.network else { continue };
        let latency = p
            .spans
            .get("e2e")
            .map_or("no e2e samples".to_string(), |e| {
                format!(
                    "p50 {:.1} / p99 {:.1} ms",
                    e.p50_us / 1000.0,
                    e.p99_us / 1000.0
                )
            });
        let mut notes = Vec::new();
        if rtmp_baseline(&p.config) {
            notes.push("Baseline".to_string());
        }
        notes.push(format!(
            "{} players, {} kept real time",
            n.players, n.players_realtime
        ));
        if let Some(j) = n.late_join_ms {
            notes.push(format!("join {j:.0} ms"));
        }
        notes.push(format!(
            "{} dropped by the server, {} by the publisher",
            n.server_dropped, n.publisher_dropped
        ));
        notes.push(format!("{:.0}% CPU, {}", p.cpu_percent, mib(p.rss_bytes)));
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | sent {:.0} / delivered {:.0} kbit/s | {} | {} |",
            t.chunk_size,
            t.gop_cache,
            t.ping,
            t.ping_timeout,
            n.sent_kbps,
            n.delivered_kbps,
            latency,
            notes.join("; ")
        );
    }
    out.push('\n');
    comparisons(out, r);
}
