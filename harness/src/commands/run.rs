//! The `harness run` command: a scenario's sweep, each point's repetitions in fresh child
//! processes, the side-by-side comparisons, then the results files, the report and a summary
//! (or, for one shard of a split sweep, the shard's file).

use super::comparisons::side_by_side;
use super::options::RunOptions;
use super::progress::Progress;
use super::summary::summarize;
use crate::point::{PointJob, ProfileTarget, run_in_child};
use crate::profile::ProfileFigures;
use crate::results::{AxisValue, PointResult, Results, now_rfc3339};
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
    // SAFETY: geteuid has no preconditions.
    if scenario.link.is_some() && unsafe { libc::geteuid() } != 0 {
        eprintln!(
            "{}: this suite shapes the publisher's link in a network namespace with tc, which \
             needs root: run it as root (e.g. `sudo cargo xtask perf {}`)",
            scenario.suite, scenario.suite
        );
        std::process::exit(2);
    }
    // SAFETY: geteuid has no preconditions.
    if scenario.cpu.is_some() && unsafe { libc::geteuid() } != 0 {
        eprintln!(
            "{}: this suite runs the stream under a CPU quota in a cgroup of its own, which \
             needs root: run it as root (e.g. `sudo cargo xtask perf adapt`)",
            scenario.suite
        );
        std::process::exit(2);
    }
    let plan = if args.smallest {
        scenario.smallest_plan()
    } else {
        scenario.plan(args.quick)
    };
    needs_clip(&scenario, &plan);
    let all_points = plan.points.len();
    let shard = match args.shard {
        Some(s) => Some(s),
        // An array job's index, from the engine's environment.
        None => crate::results::Shard::from_env(|k| std::env::var(k).ok())?.map(|(s, from)| {
            eprintln!("{}: shard {s} from {from}", scenario.suite);
            s
        }),
    };
    let reps = plan.settings.repetitions;
    let sweep: Vec<String> = plan.points.iter().map(|p| p.id()).collect();
    // The runs (point × repetition, in sweep order) this process makes, per point.
    let runs: Vec<u32> = (0..all_points)
        .map(|i| {
            (0..reps)
                .filter(|&r| shard.is_none_or(|s| s.has(i * reps as usize + r as usize)))
                .count() as u32
        })
        .collect();
    if let Some(shard) = shard {
        let total: u32 = runs.iter().sum();
        eprintln!(
            "{}: shard {shard}: {total} of the sweep's {} runs ({all_points} points × {reps})",
            scenario.suite,
            all_points * reps as usize
        );
    }
    // Side-by-side comparisons belong to one shard.
    let first_shard = shard.is_none_or(|s| s.k == 1);
    let exe = std::env::current_exe().context("locating the harness binary")?;
    let started = now_rfc3339();
    eprintln!(
        "{}: {} points × {} runs ({}){}",
        scenario.suite,
        runs.iter().filter(|&&r| r > 0).count(),
        reps,
        scenario.file.display(),
        if args.quick { ", quick" } else { "" }
    );
    let mut progress = Progress::new(runs.iter().map(|&r| u64::from(r)).sum());
    let profile = args.profile.then(|| ProfileDir {
        // A whole sweep's flame graphs replace the last sweep's when its results are written
        // (`finish`); a shard's go straight beside its shard file.
        dir: args.results.join(&scenario.suite).join(if shard.is_some() {
            PROFILE_DIR
        } else {
            PROFILE_PARTIAL
        }),
        name: format!("{}/{PROFILE_DIR}", scenario.suite),
        // The profiled run of a point is made where its first repetition is.
        has: Box::new(move |i: usize| shard.is_none_or(|s| s.has(i * reps as usize))),
    });
    let points = measure_points(
        &scenario,
        &plan,
        &runs,
        &exe,
        profile.as_ref(),
        &mut progress,
    )?;
    let comparisons = if first_shard {
        side_by_side(args, &scenario, &plan, &exe, &progress)?
    } else {
        Default::default()
    };
    progress.finish();
    let results = Results {
        schema: crate::results::check::SCHEMA,
        suite: scenario.suite.clone(),
        table: scenario.table,
        scenario: scenario.file.display().to_string(),
        description: scenario.description.clone(),
        quick: args.quick || args.smallest,
        started,
        finished: now_rfc3339(),
        commit: crate::system::commit(),
        machine: Machine::detect(),
        settings: plan.settings,
        points,
        comparisons,
        shard,
        sweep: if shard.is_some() { sweep } else { Vec::new() },
    };
    finish(args, &results)
}

/// The flame graphs' folder in a suite's results folder.
const PROFILE_DIR: &str = "profile";
/// Where a whole sweep's flame graphs are written until its results are.
const PROFILE_PARTIAL: &str = "profile.partial";

/// Where `--profile` puts the flame graphs, and which points' profiled runs are made here.
struct ProfileDir {
    /// `<results>/<suite>/profile`.
    dir: std::path::PathBuf,
    /// The same, relative to the results folder.
    name: String,
    /// Whether point `i`'s profiled run belongs to this process (its shard).
    has: Box<dyn Fn(usize) -> bool>,
}

/// Every point of the plan that has runs here (`runs[i]` repetitions of point `i`: all of them,
/// or a shard's), each repetition in a fresh child process; with `profile`, one more profiled
/// run per point whose flame graph is written beside the results (not in the point's figures).
fn measure_points(
    scenario: &Scenario,
    plan: &Plan,
    runs_of: &[u32],
    exe: &Path,
    profile: Option<&ProfileDir>,
    progress: &mut Progress,
) -> Result<Vec<PointResult>> {
    let mut points = Vec::new();
    for (i, (point, &reps)) in plan.points.iter().zip(runs_of).enumerate() {
        if reps == 0 {
            continue;
        }
        let job = PointJob {
            config: point.config.clone(),
            settings: plan.settings,
            record: true,
            players: point.players,
            fidelity: scenario.table == GuideTable::Quality,
            profile: None,
            link: plan.link.clone(),
            quota: plan.cpu.clone(),
        };
        let mut runs = Vec::new();
        for _ in 0..reps {
            let r = run_in_child(exe, &job).with_context(|| format!("point {}", point.id()))?;
            progress.step(&format!("{}: {:.1} fps", point.id(), r.fps));
            runs.push(r);
        }
        let profiled = match profile {
            Some(p) if (p.has)(i) && !job.fidelity => {
                let file = format!("{:02}.svg", i + 1);
                let job = PointJob {
                    profile: Some(ProfileTarget {
                        svg: p.dir.join(&file),
                        name: format!("{}/{file}", p.name),
                    }),
                    ..job.clone()
                };
                let r = run_in_child(exe, &job)
                    .with_context(|| format!("profiling point {}", point.id()))?;
                progress.note(&format!("{}: profiled at {:.1} fps", point.id(), r.fps));
                let fps = r.fps;
                r.figures.profile.map(|f| ProfileFigures { fps, ..f })
            }
            _ => None,
        };
        let axes = point
            .axes
            .iter()
            .map(|(path, value)| AxisValue {
                path: path.clone(),
                value: value.clone(),
            })
            .collect();
        let mut result = PointResult::aggregate(point.id(), axes, point.config.clone(), &runs);
        result.profile = profiled;
        points.push(result);
    }
    Ok(points)
}

/// Writes the shard's file, or the suite's results and the report (then the summary).
fn finish(args: &RunOptions, results: &Results) -> Result<()> {
    if let Some(shard) = results.shard {
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
    // The flame graphs named by the results just written replace the last sweep's (none
    // when this sweep was not profiled).
    let dir = args.results.join(&results.suite);
    let _ = std::fs::remove_dir_all(dir.join(PROFILE_DIR));
    if args.profile && dir.join(PROFILE_PARTIAL).is_dir() {
        std::fs::rename(dir.join(PROFILE_PARTIAL), dir.join(PROFILE_DIR))
            .context("moving the flame graphs beside the results")?;
    }
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

/// Stops the run (exit 2, saying what to do) where a point streams the real test clip and
/// this machine's path to it is not given.
fn needs_clip(scenario: &Scenario, plan: &crate::scenario::Plan) {
    let needs = plan.points.iter().any(|p| {
        p.config.source.kind == streamer::config::SourceKind::File
            && p.config.source.path == crate::scenario::CLIP
    });
    if needs && crate::scenario::clip_path().is_none() {
        eprintln!(
            "{}: this suite streams the real test clip: run it with `cargo xtask perf {}` \
             (which fetches it), or set STREAM_MANAGER_CLIP to its path (`cargo xtask clip` \
             fetches it and prints the path)",
            scenario.suite, scenario.suite
        );
        std::process::exit(2);
    }
}
