//! Where a frame's CPU goes, per point: each stage's CPU milliseconds per frame from its
//! threads' own clocks, beside the wall time a frame took, under every suite's table whose
//! results carry them.

use crate::results::Results;
use crate::run::STAGES;
use std::fmt::Write as _;

pub(super) fn stage_cpu(out: &mut String, r: &Results) {
    let shown: Vec<&str> = STAGES
        .into_iter()
        .filter(|s| r.points.iter().any(|p| p.stage_cpu_ms.contains_key(*s)))
        .collect();
    if shown.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "### Where a frame's CPU goes (ms of CPU per frame)\n\n\
         Each stage's threads on their own CPU clocks over the measured window, per encoded \
         frame: render (scene, layout, compositor and its pool), workers (format conversion), \
         encode (the encoder's thread: ingest, the encoder wrapper and libx264's work on it), \
         x264 threads (libx264's own), send (muxing and writing each packet){}. Wall is the \
         wall time per frame (1000 ÷ FPS); CPU above it means stages ran in parallel.\n",
        if shown.contains(&"server") {
            ", server and players (the embedded RTMP server and the players in the same process)"
        } else {
            ""
        }
    );
    let _ = write!(out, "| Point |");
    for s in &shown {
        let _ = write!(out, " {s} |");
    }
    out.push_str(" Total CPU | Wall |\n|-------|");
    out.push_str(&"---:|".repeat(shown.len() + 2));
    out.push('\n');
    for p in r.points.iter().filter(|p| !p.stage_cpu_ms.is_empty()) {
        let _ = write!(out, "| {} |", p.id);
        for s in &shown {
            match p.stage_cpu_ms.get(*s) {
                Some(ms) => {
                    let _ = write!(out, " {ms:.2} |");
                }
                None => out.push_str(" — |"),
            }
        }
        let total: f64 = p.stage_cpu_ms.values().sum();
        let wall = if p.fps > 0.0 { 1000.0 / p.fps } else { 0.0 };
        let _ = writeln!(out, " {total:.2} | {wall:.2} |");
    }
    out.push('\n');
}
