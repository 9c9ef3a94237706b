//! The `harness plan` command: the points a scenario expands to, without running them.

use crate::scenario::Scenario;
use anyhow::Result;
use std::path::Path;

/// Prints the scenario's plan: its size and settings, then one line per point.
///
/// # Errors
/// The scenario cannot be loaded.
pub fn plan(scenario: &Path, quick: bool) -> Result<()> {
    let s = Scenario::load(scenario)?;
    let plan = s.plan(quick);
    println!(
        "{}: {} points × {} runs of {}, warm-up {} frames, pacing {}",
        s.suite,
        plan.points.len(),
        plan.settings.repetitions,
        plan.settings.length,
        plan.settings.warmup_frames,
        plan.settings.pacing
    );
    for p in &plan.points {
        println!("  {}", p.id());
    }
    Ok(())
}
