//! `harness`: run a scenario's sweep, write results and the report.

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use harness::compare;
use harness::peers::{self, PeerKind, PeerPrograms};
use harness::report;
use harness::results::{AxisValue, Comparisons, PointResult, Results};
use harness::run::{PointJob, run_here, run_in_child};
use harness::scenario::Scenario;
use harness::system::Machine;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use streamer::config::Preset;

/// Benchmark harness for stream-manager: expands a scenario file into run points, runs each
/// in a fresh process with every monitoring-point span recorded in HDR histograms, and writes
/// results/<suite>/latest.{json,csv} and results/REPORT.md.
#[derive(Parser)]
#[command(name = "harness", version)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a scenario file's sweep.
    Run(RunArgs),
    /// Regenerate results/REPORT.md from every suite's latest.json.
    Report {
        /// Results folder.
        #[arg(long, default_value = "results")]
        results: PathBuf,
    },
    /// Show the points a scenario expands to, without running them.
    Plan {
        scenario: PathBuf,
        #[arg(long)]
        quick: bool,
    },
    /// Join the shard files of suites (results/<suite>/shard-K-of-N.json, from `run --shard`)
    /// into each suite's latest.json and refresh the report. Without SUITE, every suite that
    /// has shards.
    Merge {
        suites: Vec<String>,
        /// Results folder.
        #[arg(long, default_value = "results")]
        results: PathBuf,
    },
    /// The CI gate: instruction counts (gungraun's JSON output, see `cargo xtask gate`) and
    /// wall-time ratios measured now, against results/baselines/; prints a Markdown table of
    /// every figure and fails on a regression.
    Gate(GateArgs),
    /// Internal: run one point from a JSON job on stdin, print its result as JSON.
    #[command(hide = true)]
    Point,
}

#[derive(clap::Args)]
struct GateArgs {
    /// gungraun's `--output-format=json` output of `cargo bench -p benches --bench
    /// instructions` (one summary per line).
    #[arg(long)]
    instructions: Option<PathBuf>,
    /// Folder of instructions.json and ratios.json.
    #[arg(long, default_value = "results/baselines")]
    baselines: PathBuf,
    /// Repetitions of each wall-time ratio (the verdict uses their median and its 95% CI).
    #[arg(long, default_value_t = 9)]
    reps: usize,
    /// Skip the wall-time ratios (instruction counts only).
    #[arg(long)]
    no_ratios: bool,
    /// Rewrite the baselines with what was measured now (keeping tolerances and noise).
    #[arg(long)]
    update: bool,
    /// Also write the table to this file.
    #[arg(long)]
    markdown: Option<PathBuf>,
    /// Also write every ratio sample to this JSON file.
    #[arg(long)]
    samples: Option<PathBuf>,
}

#[derive(clap::Args)]
struct RunArgs {
    /// Scenario file (scenarios/<suite>.toml).
    scenario: PathBuf,
    /// The scenario's short form: fewer points and frames (its [quick] section).
    #[arg(long)]
    quick: bool,
    /// Results folder; results go to <results>/<suite>/.
    #[arg(long, default_value = "results")]
    results: PathBuf,
    /// Also encode the same raw frames with the ffmpeg CLI for ultrafast, veryfast and medium,
    /// alternating with the in-process encoder, and report the fps ratio.
    #[arg(long)]
    compare_cli: bool,
    /// Also measure the recorder's cost: the baseline point with the recorder vs the no-op probe.
    #[arg(long)]
    probe_overhead: bool,
    /// Also run the same publisher and player load against our server, nginx-rtmp and
    /// node-media-server 2.7, each in its own process, and compare server CPU, RSS, real-time
    /// players, latency and join time.
    #[arg(long)]
    peers: bool,
    /// Player counts for --peers (comma-separated; default 1,10,100,200,400, or 10,100 with
    /// --quick).
    #[arg(long, value_delimiter = ',')]
    peer_players: Vec<u32>,
    /// Seconds measured per server and player count for --peers.
    #[arg(long, default_value_t = 8.0)]
    peer_seconds: f64,
    /// Runs of each server at each player count for --peers, the servers taking turns run by
    /// run; the table shows medians (default 3, or 1 with --quick). A server's CPU over one
    /// window wanders by ±10% with whatever else the machine does, as much as the servers
    /// differ.
    #[arg(long)]
    peer_reps: Option<u32>,
    /// Servers for --peers (comma-separated; all three by default).
    #[arg(long, value_delimiter = ',', value_enum)]
    peer_servers: Vec<PeerKind>,
    /// A folder whose node_modules holds node-media-server 2.7 (xtask installs it).
    #[arg(long, default_value = "target/peers")]
    nms_dir: PathBuf,
    /// Print the results JSON on stdout when done.
    #[arg(long)]
    json: bool,
    /// Run only every N-th point starting at the K-th (K from 1), e.g. 2/4, and write
    /// <results>/<suite>/shard-K-of-N.json; `harness merge SUITE` joins the shards.
    /// Comparisons (--compare-cli, --peers, --probe-overhead) run in shard 1 only.
    #[arg(long, value_name = "K/N")]
    shard: Option<harness::results::Shard>,
}

#[global_allocator]
static ALLOCATOR: harness::allocs::Counting = harness::allocs::Counting;

fn main() -> Result<()> {
    match Cli::parse().command {
        Cmd::Run(args) => run(args),
        Cmd::Merge { suites, results } => merge(&results, suites),
        Cmd::Gate(args) => gate(&args),
        Cmd::Report { results } => {
            let path = report::write(&results)?;
            println!("wrote {}", path.display());
            Ok(())
        }
        Cmd::Plan { scenario, quick } => {
            let s = Scenario::load(&scenario)?;
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
        Cmd::Point => {
            let mut input = String::new();
            std::io::stdin().read_to_string(&mut input)?;
            let job: PointJob = serde_json::from_str(&input).context("reading the job")?;
            let result = run_here(&job)?;
            println!("{}", serde_json::to_string(&result)?);
            Ok(())
        }
    }
}

/// Progress on a terminal (bar with ETA) or, in logs, one line per step.
struct Progress {
    bar: Option<ProgressBar>,
    total: u64,
    done: u64,
}

impl Progress {
    fn new(total: u64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template(
                    "{elapsed_precise} [{bar:30}] {pos}/{len} ETA {eta} {wide_msg}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar
        });
        Progress {
            bar,
            total,
            done: 0,
        }
    }

    fn step(&mut self, msg: &str) {
        self.done += 1;
        match &self.bar {
            Some(bar) => {
                bar.set_message(msg.to_string());
                bar.inc(1);
            }
            None => eprintln!("[{}/{}] {msg}", self.done, self.total),
        }
    }

    fn note(&self, msg: &str) {
        match &self.bar {
            Some(bar) => bar.set_message(msg.to_string()),
            None => eprintln!("{msg}"),
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

fn gate(args: &GateArgs) -> Result<()> {
    harness::gate::check(&harness::gate::GateOptions {
        instructions: args.instructions.clone(),
        baselines: args.baselines.clone(),
        reps: args.reps,
        no_ratios: args.no_ratios,
        update: args.update,
        markdown: args.markdown.clone(),
        samples: args.samples.clone(),
    })
}

fn merge(root: &Path, mut suites: Vec<String>) -> Result<()> {
    if suites.is_empty() {
        for e in std::fs::read_dir(root)
            .with_context(|| format!("reading {}", root.display()))?
            .flatten()
        {
            let has_shards = std::fs::read_dir(e.path()).is_ok_and(|d| {
                d.flatten()
                    .any(|f| f.file_name().to_string_lossy().starts_with("shard-"))
            });
            if has_shards {
                suites.push(e.file_name().to_string_lossy().into_owned());
            }
        }
        suites.sort();
        if suites.is_empty() {
            bail!(
                "no shard files under {} (run `cargo xtask perf SUITE --shard K/N`)",
                root.display()
            );
        }
    }
    for suite in &suites {
        let merged = harness::results::merge::merge(root, suite)?;
        let latest = merged.write(root)?;
        eprintln!(
            "{suite}: {} points merged into {}",
            merged.points.len(),
            latest.display()
        );
    }
    let report = report::write(root)?;
    eprintln!("report:  {}", report.display());
    Ok(())
}

fn run(args: RunArgs) -> Result<()> {
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
    let started = harness::results::now_rfc3339();
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
    let mut points = Vec::new();
    for point in &plan.points {
        let job = PointJob {
            config: point.config.clone(),
            settings: plan.settings,
            record: true,
            players: point.players,
            quality: scenario.table == harness::scenario::GuideTable::Quality,
        };
        let mut runs = Vec::new();
        for _ in 0..reps {
            let r = run_in_child(&exe, &job).with_context(|| format!("point {}", point.id()))?;
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
    let mut comparisons = Comparisons::default();
    let base = &scenario.base;
    if args.compare_cli && first_shard {
        let frames = if args.quick { 150 } else { 600 };
        let runs = if args.quick { 2 } else { 5 };
        comparisons.cli = compare::versus_cli(
            base,
            &[Preset::Ultrafast, Preset::Veryfast, Preset::Medium],
            frames,
            runs,
            |m| progress.note(&format!("vs ffmpeg CLI, {m}")),
        )?;
    }
    if args.probe_overhead && first_shard {
        let frames = if args.quick { 300 } else { 900 };
        let runs = if args.quick { 3 } else { 5 };
        comparisons.probe_overhead = Some(compare::probe_overhead(
            &exe,
            base,
            "base configuration",
            frames,
            runs,
            |m| progress.note(m),
        )?);
    }
    if args.peers && first_shard {
        let programs = PeerPrograms {
            stream_manager: exe.with_file_name("stream-manager"),
            nginx_module: peers::default_nginx_module(),
            node_media_server: args.nms_dir.clone(),
        };
        let counts: Vec<u32> = match (args.peer_players.is_empty(), args.quick) {
            (false, _) => args.peer_players.clone(),
            (true, true) => vec![10, 100],
            (true, false) => vec![1, 10, 100, 200, 400],
        };
        let seconds = if args.quick {
            3.0_f64.min(args.peer_seconds)
        } else {
            args.peer_seconds
        };
        let reps = args
            .peer_reps
            .unwrap_or(if args.quick { 1 } else { 3 })
            .max(1);
        let kinds = if args.peer_servers.is_empty() {
            <PeerKind as clap::ValueEnum>::value_variants().to_vec()
        } else {
            args.peer_servers.clone()
        };
        // Servers side by side at each player count, taking turns run by run, so the
        // machine's drift over the run falls on all of them alike.
        for &n in &counts {
            let mut runs: Vec<Vec<harness::results::PeerRow>> = vec![Vec::new(); kinds.len()];
            for rep in 1..=reps {
                for (k, &kind) in kinds.iter().enumerate() {
                    progress.note(&format!(
                        "peers: {} with {n} players (run {rep} of {reps})",
                        kind.name()
                    ));
                    runs[k].push(peers::measure(kind, base, &programs, n, 30, seconds)?);
                }
            }
            comparisons
                .peers
                .extend(runs.iter().filter_map(|r| peers::combine(r)));
        }
    }
    progress.finish();
    let results = Results {
        suite: scenario.suite.clone(),
        table: scenario.table,
        scenario: scenario.file.display().to_string(),
        description: scenario.description.clone(),
        quick: args.quick,
        started,
        finished: harness::results::now_rfc3339(),
        machine: Machine::detect(),
        settings: plan.settings,
        points,
        comparisons,
        shard: args.shard,
    };
    if let Some(shard) = args.shard {
        let path = harness::results::merge::write(&results, shard, &args.results)?;
        eprintln!(
            "shard {shard} of {}: {} (when every shard is in, `cargo xtask results merge {}`)",
            results.suite,
            path.display(),
            results.suite
        );
        if args.json {
            println!("{}", serde_json::to_string_pretty(&results)?);
        }
        return Ok(());
    }
    let latest = results.write(&args.results)?;
    let report = report::write(&args.results)?;
    summarize(&results, &latest, &report);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    }
    if results.points.iter().any(|p| p.unmatched_marks > 0) {
        bail!("some end marks had no start mark; the spans above are incomplete");
    }
    Ok(())
}

fn summarize(r: &Results, latest: &Path, report: &Path) {
    eprintln!();
    for p in &r.points {
        eprintln!(
            "  {:<70} {:>7.1} fps {:>5.0}% CPU {:>10}",
            p.id,
            p.fps,
            p.cpu_percent,
            report::mib(p.rss_bytes)
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
            report::mib(p.rss_idle_bytes),
            report::mib(p.rss_peak_bytes),
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
