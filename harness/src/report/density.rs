//! The "Streams per machine" table: the density search's results (`cargo xtask perf
//! density`), and the report's per-core answer, which comes from this table and from nowhere
//! else.

use super::format::mib;
use crate::density::{CellResult, DensityResults, Side};
use std::fmt::Write as _;

/// The section's heading (its anchor is linked from the answers).
pub const HEADING: &str = "Streams per machine";

/// Of the cells of one size, source and preset, the one whose x264 thread count held more
/// streams (the fewer threads where equal).
fn best_cells(r: &DensityResults) -> Vec<&CellResult> {
    let ours = |c: &CellResult| c.side(Side::Ours).map_or(0, |s| s.n);
    let mut best: Vec<&CellResult> = Vec::new();
    for c in &r.cells {
        let same = |b: &&CellResult| {
            (b.cell.size, b.cell.source, b.cell.preset)
                == (c.cell.size, c.cell.source, c.cell.preset)
        };
        match best.iter_mut().find(|b| same(b)) {
            Some(b)
                if ours(c) > ours(b) || (ours(c) == ours(b) && c.cell.threads < b.cell.threads) =>
            {
                *b = c;
            }
            Some(_) => {}
            None => best.push(c),
        }
    }
    best
}

/// The table, with what it measured, on which commit and machine; `every` shows every cell,
/// otherwise (the main report) each preset at its better x264 thread count.
pub fn section(out: &mut String, r: &DensityResults, every: bool) {
    let _ = writeln!(out, "## {HEADING}\n");
    if r.quick {
        let _ = writeln!(
            out,
            "{}: `cargo xtask perf density --quick` ({} s windows; run without --quick for \
             the full grid and 30 s windows).\n",
            super::QUICK_SETS,
            r.window_s
        );
    }
    let _ = writeln!(
        out,
        "Measured by `cargo xtask perf density` on commit `{}`, {}, {} to {}. Each row is the \
         largest number of streams that one process keeps in real time at the source's own \
         frame rate (the clip's 25 fps, the synthetic scene's 30), every stream publishing to \
         one `stream-manager serve` in its own process, found by search (grow, then bisect; \
         every trial in `results/density/`). A stream holds when, over a {} s window after \
         {} s of warm-up, none of its frames reaches the server more than 500 ms behind its \
         timestamps' real-time schedule, it drops none, and 95 % of its frames arrive. CPU \
         and memory a stream are the streaming process's (or all the CLI processes') at that \
         number, ÷ the number; memory is PSS, so shared libraries count once. *No overlays* is \
         our process drawing no layers, the ffmpeg CLI's work exactly; *ffmpeg CLI* is that \
         many `ffmpeg -re` processes transcoding the clip at the same settings (the anchor, \
         same criteria, same server). *Extrapolated* is the old arithmetic: one stream at max \
         pacing, the machine's cores ÷ (its CPU per frame × frame rate).{}\n",
        r.commit,
        r.machine.short(),
        r.started,
        r.finished,
        r.window_s,
        r.warmup_s,
        if every {
            ""
        } else {
            " Here each preset at the x264 thread count that held more streams (the fewer \
             where equal); every cell and every trial in [density/REPORT.md](density/REPORT.md)."
        }
    );
    out.push_str(
        "| Preset | x264 threads | Size | Source | Streams | CPU a stream | PSS a stream \
         | No overlays | ffmpeg CLI | CLI CPU a stream | CLI PSS a stream | No overlays ÷ CLI \
         | Extrapolated | Extrapolation off by |\n",
    );
    out.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    if every {
        for c in &r.cells {
            row(out, c, r.max_streams);
        }
    } else {
        for c in best_cells(r) {
            row(out, c, r.max_streams);
        }
    }
    out.push('\n');
}

fn row(out: &mut String, c: &CellResult, max: u32) {
    let n = |side| {
        c.side(side).map_or("—".to_string(), |s| {
            if s.n >= max {
                format!("≥ {}", s.n)
            } else {
                s.n.to_string()
            }
        })
    };
    let cpu = |side| {
        c.side(side)
            .and_then(|s| s.cpu_per_stream())
            .map_or("—".to_string(), |p| format!("{p:.0}%"))
    };
    let pss = |side| {
        c.side(side)
            .and_then(|s| s.pss_per_stream())
            .map_or("—".to_string(), |b| mib(b as u64))
    };
    let ratio = match (c.side(Side::Bare), c.side(Side::Cli)) {
        (Some(b), Some(cli)) if cli.n > 0 => format!("{:.2}×", f64::from(b.n) / f64::from(cli.n)),
        (Some(b), Some(_)) if b.n > 0 => "CLI held none".to_string(),
        _ => "—".to_string(),
    };
    let ours = c.side(Side::Ours).map_or(0, |s| s.n);
    let (extrapolated, off) = match &c.extrapolation {
        Some(e) if ours > 0 => (
            format!("{:.1}", e.streams),
            format!("{:+.0} %", (e.streams / f64::from(ours) - 1.0) * 100.0),
        ),
        Some(e) => (format!("{:.1}", e.streams), "—".to_string()),
        None => ("—".to_string(), "—".to_string()),
    };
    let _ = writeln!(
        out,
        "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
        c.cell.preset,
        c.cell.threads,
        c.cell.size,
        c.cell.source,
        n(Side::Ours),
        cpu(Side::Ours),
        pss(Side::Ours),
        n(Side::Bare),
        n(Side::Cli),
        cpu(Side::Cli),
        pss(Side::Cli),
        ratio,
        extrapolated,
        off
    );
}

/// The answer to "how many streams fit on this machine?": per size and source, each
/// preset's largest number at its better thread count, and that per core.
pub fn answer(r: &DensityResults, link: &str) -> String {
    let cores = r.machine.cores.max(1) as f64;
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for c in best_cells(r) {
        let Some(n) = c.side(Side::Ours).map(|s| s.n) else {
            continue;
        };
        let group = format!("{} {}", c.cell.size, c.cell.source);
        let item = format!(
            "{} {n} ({:.1} a core, {} x264 thread{})",
            c.cell.preset,
            f64::from(n) / cores,
            c.cell.threads,
            if c.cell.threads == 1 { "" } else { "s" }
        );
        match groups.iter_mut().find(|(g, _)| *g == group) {
            Some((_, items)) => items.push(item),
            None => groups.push((group, vec![item])),
        }
    }
    let groups: Vec<String> = groups
        .into_iter()
        .map(|(g, items)| format!("{g}: {}", items.join(", ")))
        .collect();
    format!(
        "- **How many streams fit on this machine?** Measured in real time, every stream \
         publishing to one server, on {} ({}): {}.{}",
        r.machine.short(),
        link,
        groups.join("; "),
        if r.quick {
            " (A --quick run: short windows.)"
        } else {
            ""
        }
    )
}

/// The detail page: every trial of every search, in the order run.
pub fn detail_page(r: &DensityResults) -> String {
    let mut out = String::from("# `density`: every point (each trial of each search)\n\n");
    section(&mut out, r, true);
    out.push_str("## Every trial\n\n");
    let _ = writeln!(
        out,
        "Commit `{}`, {}, {} to {}; {} s warm-up, {} s window a trial{}. ✓ held, ✗ did not \
         (the first stream that did not hold, and why).\n",
        r.commit,
        r.machine.short(),
        r.started,
        r.finished,
        r.warmup_s,
        r.window_s,
        if r.quick { " (a --quick run)" } else { "" }
    );
    out.push_str(
        "| Cell | Side | Streams | Held | CPU (% of a core) | PSS | Late frames | Dropped | Fewest frames a stream | Why not |\n",
    );
    out.push_str("|---|---|---|---|---|---|---|---|---|---|\n");
    for c in &r.cells {
        if let Some(e) = &c.extrapolation {
            let _ = writeln!(
                out,
                "| {} | one stream at max pacing | 1 | — | {:.2} ms a frame ({} frames) | — | — | — | — | extrapolated {:.1} streams |",
                c.cell, e.cpu_ms_per_frame, e.frames, e.streams
            );
        }
        for s in &c.sides {
            for t in &s.trials {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {:.0} | {} | {} | {} | {} | {} |",
                    c.cell,
                    s.side.describe(),
                    t.n,
                    if t.held { "✓" } else { "✗" },
                    t.cpu_percent,
                    mib(t.pss_bytes),
                    t.late,
                    t.dropped,
                    t.frames_min.map_or("—".to_string(), |f| f.to_string()),
                    t.why
                );
            }
        }
    }
    out
}
