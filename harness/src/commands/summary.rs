//! The summary a finished run prints on stderr.

use crate::report::mib;
use crate::results::Results;
use std::path::Path;

/// Prints every point's headline figures and the comparisons on stderr, then where the
/// results and the report went.
pub fn summarize(r: &Results, latest: &Path, report: &Path) {
    eprintln!();
    for p in &r.points {
        eprintln!(
            "  {:<70} {:>7.1} fps {:>5.0}% CPU {:>10}",
            p.id,
            p.fps,
            p.cpu_percent,
            mib(p.rss_bytes)
        );
    }
    for c in &r.comparisons.cli {
        eprintln!(
            "  vs ffmpeg CLI {:<10} threads {}: {:.1} vs {:.1} fps, ratio {:.3}",
            c.preset, c.threads, c.in_process_fps, c.cli_fps, c.ratio
        );
    }
    for p in &r.comparisons.peers {
        eprintln!(
            "  {:<26} {:>4} players: server {:>5.1}% CPU ({:.3}/player{}), RSS {} → {}, {}/{} real time, e2e p99 {}, relay p99 {}",
            p.server,
            p.players,
            p.cpu_percent,
            p.cpu_per_player,
            if p.cpu_percent_runs.len() > 1 {
                format!(
                    "; runs {}",
                    p.cpu_percent_runs
                        .iter()
                        .map(|c| format!("{c:.1}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                )
            } else {
                String::new()
            },
            mib(p.rss_idle_bytes),
            mib(p.rss_peak_bytes),
            p.players_realtime,
            p.players,
            p.e2e_p99_ms.map_or("-".into(), |v| format!("{v:.1} ms")),
            p.relay_p99_ms.map_or("-".into(), |v| format!("{v:.2} ms"))
        );
    }
    if let Some(o) = &r.comparisons.probe_overhead {
        eprintln!(
            "  recorder overhead: {:.1} vs {:.1} fps (no-op probe), ratio {:.3}",
            o.recorder_fps, o.noop_fps, o.ratio
        );
    }
    eprintln!(
        "\nresults: {}\nreport:  {}",
        latest.display(),
        report.display()
    );
}
