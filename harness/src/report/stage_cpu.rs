//! Where a frame's CPU goes, per point: each stage's CPU milliseconds per frame from its
//! threads' own clocks, beside the wall time a frame took, under every suite's table whose
//! results carry them.

use crate::point::STAGES;
use crate::results::Results;
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
         x264 threads (libx264's own), send (muxing and writing each packet){}{}. Process is the \
         whole process's CPU per frame (the CPU column's clock); Covered is the stages' total \
         over it (what no stage's threads account for is the rest: the main thread's \
         waiting, the sampler). Wall is the wall time per frame (1000 ÷ FPS); CPU above it \
         means stages ran in parallel.\n",
        if shown.contains(&"decode") {
            ", decode (a file source's decoding and scaling, on the render thread, taken out of \
             render's share)"
        } else {
            ""
        },
        if shown.contains(&"server") {
            ", server and players (the embedded RTMP server and the players in the same process)"
        } else {
            ""
        }
    );
    let (axes, under) = super::format::axis_header(r);
    out.push_str(&axes);
    for s in &shown {
        let _ = write!(out, " {s} |");
    }
    let _ = write!(out, " Total CPU | Process | Covered | Wall |\n{under}");
    out.push_str(&"---:|".repeat(shown.len() + 4));
    out.push('\n');
    for p in r.points.iter().filter(|p| !p.stage_cpu_ms.is_empty()) {
        out.push_str(&super::format::axis_row(p));
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
        // Over the stages' own window where measured so; older results: the CPU column's.
        let process = p.process_cpu_ms.unwrap_or(p.cpu_percent / 100.0 * wall);
        let covered = if process > 0.0 {
            format!("{:.0}%", total / process * 100.0)
        } else {
            "—".to_string()
        };
        let _ = writeln!(out, " {total:.2} | {process:.2} | {covered} | {wall:.2} |");
    }
    out.push('\n');
}

/// With `--profile`: each point's flame graph, how fast its profiled run went beside the
/// point's own figure, and where the samples landed.
pub(super) fn profiles(out: &mut String, r: &Results) {
    let profiled: Vec<_> = r
        .points
        .iter()
        .filter_map(|p| p.profile.as_ref().map(|f| (p, f)))
        .collect();
    if profiled.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "### Profiles (`--profile`)\n\n\
         One extra run per point, not counted in its figures, sampled at {} Hz of CPU time on \
         every thread (pprof-rs); open the flame graph to see every call path. Profiled FPS \
         beside the point's FPS is what profiling cost. Hottest: the functions that used the \
         most CPU themselves (self time, percent of all samples); threads: where the samples \
         were taken.\n",
        crate::profile::FREQUENCY
    );
    out.push_str(
        "| Point | Flame graph | FPS | Profiled FPS | Samples | Hottest functions | Threads |\n\
         |-------|-------------|----:|-------------:|--------:|-------------------|---------|\n",
    );
    let shares = |v: &[crate::profile::Share], n: usize| {
        v.iter()
            .take(n)
            .map(|s| format!("`{}` {:.0}%", s.name.replace('|', "\\|"), s.percent))
            .collect::<Vec<_>>()
            .join(", ")
    };
    for (p, f) in profiled {
        let _ = writeln!(
            out,
            // The detail page sits in the suite's folder; `svg` is from the results folder.
            "| {} | [svg](../{}) | {:.1} | {:.1} | {} | {} | {} |",
            p.id,
            f.svg,
            p.fps,
            f.fps,
            f.samples,
            shares(&f.hot, 3),
            shares(&f.threads, 3)
        );
    }
    out.push('\n');
}
