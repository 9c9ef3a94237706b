//! The RTMP server table (the `network` suite): chunk size, GOP cache and ping against
//! bandwidth, latency and join time.

use super::baseline::rtmp_baseline;
use super::comparisons::comparisons;
use super::format::{measured_on, mib};
use crate::results::Results;
use std::fmt::Write as _;

/// Publisher → server on the wire; server → each player on the wire (chunk headers included)
/// and its payload. Results from before the per-player wire bytes were measured show the
/// payload only.
fn bandwidth(n: &crate::point::NetworkFigures) -> String {
    if n.wire_kbps_per_player > 0.0 {
        format!(
            "sent {:.0} / per player {:.0} on the wire ({:.0} payload) kbit/s",
            n.sent_kbps, n.wire_kbps_per_player, n.delivered_kbps
        )
    } else {
        format!(
            "sent {:.0} / delivered {:.0} kbit/s",
            n.sent_kbps, n.delivered_kbps
        )
    }
}

pub(super) fn rtmp_table(out: &mut String, r: &Results) {
    let first = r.points.first();
    let _ = writeln!(out, "## RTMP Server — Tested Configurations\n");
    measured_on(out, r);
    let _ = writeln!(
        out,
        "From `{}` ({}{}): one publisher at {}×{}@{} ({}, pacing `{}`) to the embedded server on \
         loopback, {} run(s) of {} per point after {} warm-up frames. Bandwidth is RTMP bytes \
         sent by the publisher / RTMP bytes the server wrote to each player, chunk headers \
         included (the chunk size's overhead shows here), and the media payload they carried, \
         per second of wall time, counted over the same frames (the players have received every \
         frame sent before each count is read). The server's CPU is its own threads' (the \
         scheduler's per-thread clock), apart from the publisher and players in the same \
         process; memory cannot be split within a process, so RSS is the whole process's, and \
         the server's own RSS is in the comparison below, where each server runs in a process \
         of its own. Latency is glass to glass (`e2e`: frame capture → a player receives it). Join is \
         a player arriving after the warm-up: connect → first keyframe. `rtmp.chunk_size` is the \
         server's chunk size to its players; the publisher always sends {}-byte chunks, so what \
         it sends does not vary with it.\n",
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
        streamer::rtmp::client::CHUNK_SIZE,
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
                    "p50 {} / p99 {} ms",
                    super::format::ms(e.p50(), 1),
                    super::format::ms(e.p99(), 1)
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
        notes.push(match (n.server_cpu_percent, n.players_cpu_percent) {
            (Some(server), Some(players)) => format!(
                "server {server:.1}% CPU (its own threads), players {players:.0}%, whole \
                 process {:.0}% CPU and {} RSS",
                p.cpu_percent,
                mib(p.rss_bytes)
            ),
            _ => format!(
                "{:.0}% CPU, {} (the whole process)",
                p.cpu_percent,
                mib(p.rss_bytes)
            ),
        });
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            t.chunk_size,
            t.gop_cache,
            t.ping,
            t.ping_timeout,
            bandwidth(n),
            latency,
            notes.join("; ")
        );
    }
    out.push('\n');
    comparisons(out, r);
}
