//! The `harness run` command: a scenario's sweep, each point's repetitions in fresh child
//! processes, the side-by-side comparisons, then the results files, the report and a summary
//! (or, for one shard of a split sweep, the shard's file).

use super::comparisons::side_by_side;
use super::options::RunOptions;
use super::progress::Progress;
use super::summary::summarize;
use crate::results::{AxisValue, PointResult, Results, now_rfc3339};
use crate::run::{PointJob, run_in_child};
use crate::scenario::{GuideTable, Plan, Scenario};
use crate::system::Machine;
use anyhow::{Context, Result, bail};
use std::path::Path;

/// Runs a scenario's sweep and writes its results and the report.
///
/// # Errors
/// The scenario cannot be loaded, a point or comparison fails, a file cannot be written, or
/// some end marks had no start mark.
pub fn run(args: &RunOptions) -> Result<()> {
    let scenario = Scenario::load(&args.scenario)?;
    let mut plan = scenario.plan(args.quick);
    let all_points = plan.points.len();
    if let Some(shard) = args.shard {
        plan.points = shard.select(plan.points);
        eprintln!(
            "{}: shard {shard}: {} of the sweep's {all_points} points",
            scenario.suite,
            plan.points.len()
        );
    }
    // Side-by-side comparisons belong to one shard.
    let first_shard = args.shard.is_none_or(|s| s.k == 1);
    let exe = std::env::current_exe().context("locating the harness binary")?;
    let started = now_rfc3339();
    let reps = plan.settings.repetitions;
    eprintln!(
        "{}: {} points × {} runs ({}){}",
        scenario.suite,
        plan.points.len(),
        reps,
        scenario.file.display(),
        if args.quick { ", quick" } else { "" }
    );
    let mut progress = Progress::new(plan.points.len() as u64 * u64::from(reps));
    let points = measure_points(&scenario, &plan, &exe, &mut progress)?;
    let comparisons = if first_shard {
        side_by_side(args, &scenario.base, &exe, &progress)?
    } else {
        Default::default()
    };
    progress.finish();
    let results = Results {
        suite: scenario.suite.clone(),
        table: scenario.table,
        scenario: scenario.file.display().to_string(),
        description: scenario.description.clone(),
        quick: args.quick,
        started,
        finished: now_rfc3339(),
        commit: crate::system::commit(),
        machine: Machine::detect(),
        settings: plan.settings,
        points,
        comparisons,
        shard: args.shard,
    };
    finish(args, &results)
}

/// Every point of the plan, each repetition in a fresh child process.
fn measure_points(
    scenario: &Scenario,
    plan: &Plan,
    exe: &Path,
    progress: &mut Progress,
) -> Result<Vec<PointResult>> {
    let reps = plan.settings.repetitions;
    let mut points = Vec::new();
    for point in &plan.points {
        let job = PointJob {
            config: point.config.clone(),
            settings: plan.settings,
            record: true,
            players: point.players,
            quality: scenario.table == GuideTable::Quality,
        };
        let mut runs = Vec::new();
        for _ in 0..reps {
            let r = run_in_child(exe, &job).with_context(|| format!("point {}", point.id()))?;
            progress.step(&format!("{}: {:.1} fps", point.id(), r.fps));
            runs.push(r);
        }
        let axes = point
            .axes
            .iter()
            .map(|(path, value)| AxisValue {
                path: path.clone(),
                value: value.clone(),
            })
            .collect();
        points.push(PointResult::aggregate(
            point.id(),
            axes,
            point.config.clone(),
            &runs,
        ));
    }
    Ok(points)
}

/// Writes the shard's file, or the suite's results and the report (then the summary).
fn finish(args: &RunOptions, results: &Results) -> Result<()> {
    if let Some(shard) = args.shard {
        let path = crate::results::merge::write(results, shard, &args.results)?;
        eprintln!(
            "shard {shard} of {}: {} (when every shard is in, `cargo xtask results merge {}`)",
            results.suite,
            path.display(),
            results.suite
        );
        if args.json {
            println!("{}", serde_json::to_string_pretty(results)?);
        }
        return Ok(());
    }
    let latest = results.write(&args.results)?;
    let report = crate::report::write(&args.results)?;
    summarize(results, &latest, &report);
    if args.json {
        println!("{}", serde_json::to_string_pretty(results)?);
    }
    if results.points.iter().any(|p| p.unmatched_marks > 0) {
        bail!("some end marks had no start mark; the spans above are incomplete");
    }
    Ok(())
}
