//! The side-by-side measurements of a run: the in-process encoder against the ffmpeg CLI,
//! the file source's decoding against the CLI's, the same load on other RTMP servers, and the
//! recorder's overhead.

use super::format::{judged_ratio, mib};
use crate::peers::PeerKind;
use crate::results::Results;
use std::fmt::Write as _;

pub(super) fn comparisons(out: &mut String, r: &Results) {
    let c = &r.comparisons;
    if !c.cli.is_empty() {
        let _ = writeln!(
            out,
            "### In-process encoder vs the ffmpeg CLI (same raw frames, same run)\n"
        );
        let stream = c.cli.iter().any(|r| r.stream_fps.is_some());
        if stream {
            out.push_str(
                "The whole stream (scene, core, compositor, pipeline, encoder, null output; no \
                 recorder) took its turn with the two encoders at the same settings, with no \
                 overlay layers so that it encodes the clip's pictures (the scene alone; the \
                 suite's points compose 4 layers, which make the pictures harder to encode); \
                 Stream ÷ bare is the median of each turn's ratio. Where the stream's CPU goes \
                 beyond the encoder's is in the stage table above.\n\n",
            );
        }
        out.push_str("| Preset | Threads | Frames | In-process fps | ffmpeg CLI fps | Ratio |");
        out.push_str(if stream {
            " Whole stream fps | Stream ÷ bare |\n"
        } else {
            "\n"
        });
        out.push_str("|--------|---------|--------|----------------|----------------|-------|");
        out.push_str(if stream { "---:|---:|\n" } else { "\n" });
        for row in &c.cli {
            let _ = write!(
                out,
                "| {} | {} | {} | {:.1} | {:.1} | {} |",
                row.preset,
                row.threads,
                row.frames,
                row.in_process_fps,
                row.cli_fps,
                judged_ratio(row.ratio, &row.pairs)
            );
            if stream {
                match (row.stream_fps, row.stream_ratio) {
                    (Some(f), Some(r)) => {
                        let _ = write!(out, " {f:.1} | {} |", judged_ratio(r, &row.stream_pairs));
                    }
                    _ => out.push_str(" — | — |"),
                }
            }
            out.push('\n');
        }
        if let Some(row) = c.cli.first() {
            let _ = writeln!(out, "\nCLI command (per preset): `{}`\n", row.command);
        }
    }
    if let Some(d) = &c.decode {
        decode(out, d);
    }
    if !c.peers.is_empty() {
        let reps = c.peers.iter().map(|p| p.repetitions).max().unwrap_or(1);
        let _ = writeln!(
            out,
            "### The same load on other RTMP servers (loopback, each server its own process)\n\n\
             {} Server CPU is the process's CPU clock over the measured window (all threads), \
             percent of one core. Relay is publisher send → the frame's last byte in a player's \
             socket (kernel receive time); e2e is frame capture → the same moment. Players run in \
             one process beside the servers, under SCHED_IDLE (only on CPU time the server \
             and publisher leave idle, as if on other machines).\n",
            if reps > 1 {
                format!(
                    "Each server ran {reps} times at each player count, the servers taking \
                     turns; figures are medians (RSS: peak; players in real time: fewest), and \
                     the CPU of every run is listed."
                )
            } else {
                "One run per server and player count.".to_string()
            }
        );
        out.push_str("| Server | Players | Server CPU % | CPU % per player | RSS idle → peak | Players in real time | e2e p50 / p99 | Relay p99 | Join | CPU % of each run |\n");
        out.push_str("|--------|---------|--------------|------------------|-----------------|----------------------|---------------|-----------|------|-------------------|\n");
        let ms = |v: Option<f64>| v.map_or("no samples".to_string(), |v| format!("{v:.1} ms"));
        let ms2 = |v: Option<f64>| v.map_or("no samples".to_string(), |v| format!("{v:.2} ms"));
        for p in &c.peers {
            let _ = writeln!(
                out,
                "| {} | {} | {:.1} | {:.3} | {} → {} | {}/{} | {} / {} | {} | {} | {} |",
                p.server,
                p.players,
                p.cpu_percent,
                p.cpu_per_player,
                mib(p.rss_idle_bytes),
                mib(p.rss_peak_bytes),
                p.players_realtime,
                p.players,
                ms(p.e2e_p50_ms),
                ms(p.e2e_p99_ms),
                ms2(p.relay_p99_ms),
                ms(p.join_ms),
                p.cpu_percent_runs
                    .iter()
                    .map(|c| format!("{c:.2}"))
                    .collect::<Vec<_>>()
                    .join(" "),
            );
        }
        out.push('\n');
        tls_cost(out, &c.peers);
    }
    if let Some(o) = &c.probe_overhead {
        let _ = writeln!(out, "### Recorder overhead\n");
        let _ = writeln!(
            out,
            "Full path at `{}`, {} interleaved runs each: recorder {:.1} fps, no-op probe {:.1} fps; \
             recorder ÷ no-op, the median of back-to-back pairs with its 95% interval: {}.\n",
            o.point,
            o.runs,
            o.recorder_fps,
            o.noop_fps,
            judged_ratio(o.ratio, &o.pairs)
        );
    }
}

/// What RTMPS costs our server beside plain RTMP, at each player count both ran.
fn tls_cost(out: &mut String, peers: &[crate::results::PeerRow]) {
    let find = |kind: PeerKind, n: u32| {
        peers
            .iter()
            .find(|p| p.server == kind.name() && p.players == n)
    };
    let pairs: Vec<String> = peers
        .iter()
        .filter(|p| p.server == PeerKind::Embedded.name())
        .filter_map(|plain| {
            let tls = find(PeerKind::EmbeddedTls, plain.players)?;
            (plain.cpu_per_player > 0.0).then(|| {
                format!(
                    "{} players {:.3} vs {:.3} % per player ({:.2}×)",
                    plain.players,
                    tls.cpu_per_player,
                    plain.cpu_per_player,
                    tls.cpu_per_player / plain.cpu_per_player
                )
            })
        })
        .collect();
    if !pairs.is_empty() {
        let _ = writeln!(
            out,
            "RTMPS against plain RTMP on our server, same run: {}. RTMPS is a TLS terminator in \
             the server's process relaying to its plain listener over loopback, so this is TLS \
             plus one loopback hop per player.\n",
            pairs.join("; ")
        );
    }
}

/// The file source's decoding against the ffmpeg CLI's, in a few lines.
fn decode(out: &mut String, d: &crate::results::DecodeComparison) {
    let _ = writeln!(
        out,
        "### Decoding a real clip: the file source vs the ffmpeg CLI (same run)\n\n\
         `{}` decoded {} frames a run on each side, one decoding thread each, runs \
         alternating: the file source's decode stage (reading and decoding with libavcodec \
         through ffmpeg-next; copying the picture into the stream's frame is render's) on \
         its thread's CPU clock, the CLI by its own \
         `-benchmark` user + system time. Ours {:.3} ms of CPU a frame, the CLI's {:.3} ms; \
         ours ÷ CLI: {}.\n\nCLI command: `{}`\n",
        d.clip,
        d.frames,
        d.ours_ms,
        d.cli_ms,
        judged_ratio(d.ratio, &d.pairs),
        d.command
    );
}
