//! The `harness density` command (`cargo xtask perf density`): the density search over a plan,
//! its results written and the report refreshed, and a line per cell.

use crate::density::{self, Side, plan::Plan};
use anyhow::{Context, Result};
use std::path::Path;

/// Runs the density plan at `plan` (its quick cells with `quick`) with the clip at `clip`,
/// writing under `results`.
///
/// # Errors
/// The plan or clip cannot be read, a program cannot be started, or results cannot be written.
pub fn density(plan: &Path, quick: bool, clip: &Path, results: &Path) -> Result<()> {
    let text =
        std::fs::read_to_string(plan).with_context(|| format!("reading {}", plan.display()))?;
    let plan_of = Plan::parse(&text).with_context(|| format!("in {}", plan.display()))?;
    let clip = clip.to_str().context("a clip path in UTF-8")?.to_string();
    let mut probe = streamer::config::StreamConfig::default();
    probe.source.kind = streamer::config::SourceKind::File;
    probe.source.path.clone_from(&clip);
    let clip_fps = streamer::stream::effective_config(&probe)
        .with_context(|| format!("reading the clip {clip}"))?
        .core
        .viewport
        .fps;
    let timing = if quick { &plan_of.quick } else { &plan_of.full };
    eprintln!(
        "density: {} cells, {} s warm-up and {} s window a trial{}",
        Plan::cells(timing).len(),
        timing.warmup_s,
        timing.window_s,
        if quick { " (quick)" } else { "" }
    );
    let opts = density::Options {
        plan: plan_of,
        quick,
        stream_manager: std::env::current_exe()?.with_file_name("stream-manager"),
        clip,
        clip_fps,
        out: results.to_path_buf(),
    };
    let r = density::run(&opts)?;
    for c in &r.cells {
        let n = |side| c.side(side).map_or(String::from("—"), |s| s.n.to_string());
        println!(
            "{}: {} streams (no overlays {}, ffmpeg CLI {}); extrapolated {}",
            c.cell,
            n(Side::Ours),
            n(Side::Bare),
            n(Side::Cli),
            c.extrapolation
                .as_ref()
                .map_or(String::from("—"), |e| format!("{:.1}", e.streams))
        );
    }
    let report = crate::report::write(results)?;
    println!(
        "results: {}\nreport:  {}",
        density::path(results, quick).display(),
        report.display()
    );
    Ok(())
}
