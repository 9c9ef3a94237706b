//! `harness`: run a scenario's sweep, write results and the report.

use anyhow::Result;
use clap::{Parser, Subcommand};
use harness::commands::{self, RunOptions};
use harness::gate::GateOptions;
use harness::peers::PeerKind;
use harness::report;
use std::path::PathBuf;

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
    /// Regenerate results/REPORT.md from every suite's results: the newer of its full run
    /// (latest.json) and its quick run (quick.json, marked as quick).
    Report {
        /// Results folder.
        #[arg(long, default_value = "results")]
        results: PathBuf,
        /// From full runs only (each suite's latest.json): the report that is committed.
        #[arg(long)]
        full: bool,
    },
    /// Soak the embedded server (`stream-manager serve`, its own process) under churn: a
    /// publisher that drops and comes back, players joining and leaving in waves, players
    /// that stop reading, hostile connections; samples its memory, descriptors, threads and
    /// queues every second and fails on a leak, a missed frame or an exit. Writes
    /// <results>/soak/latest.json and refreshes the report.
    Soak(SoakArgs),
    /// How many real-time streams fit on this machine: for each cell of the density plan
    /// (preset × x264 threads × size × source), the largest N one stream-manager process
    /// sustains, each trial N streams publishing to one `stream-manager serve` that measures
    /// them as they arrive (grow, then bisect); beside it, for the clip, the same with no
    /// overlays and N ffmpeg CLI processes. Writes <results>/density/latest.json (quick.json
    /// with --quick) and refreshes the report.
    Density(DensityArgs),
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
    /// Check every invariant of the results (frames due = encoded + dropped, the stages' CPU
    /// within the process's, percentiles in order, …) over every suite's latest.json, and with
    /// --committed over what git's index holds (the committed report too: no --quick runs in
    /// it). Names the suite, point and figures of each broken one and fails.
    Check {
        /// Results folder.
        #[arg(long, default_value = "results")]
        results: PathBuf,
        /// Check the results as git's index holds them, in the repository here, not the
        /// working tree's.
        #[arg(long)]
        committed: bool,
    },
    /// The CI gate: instruction counts (gungraun's JSON output, see `cargo xtask gate`) and
    /// wall-time ratios measured now, against results/baselines/; prints a Markdown table of
    /// every figure and fails on a regression.
    Gate(GateArgs),
    /// Internal: run one point from a JSON job on stdin, print its result as JSON.
    #[command(hide = true)]
    Point,
    /// Internal: one side of the gate's timed figures (runs work on request from stdin).
    #[command(hide = true)]
    GateSide,
}

#[derive(clap::Args)]
struct SoakArgs {
    /// Minutes to run.
    #[arg(long, default_value_t = 30.0)]
    minutes: f64,
    /// Players at the top of each wave.
    #[arg(long, default_value_t = 200)]
    max_players: usize,
    /// Seconds per wave (up, down, and a rest at none).
    #[arg(long, default_value_t = 120.0)]
    wave_seconds: f64,
    /// Seed of the random intervals (default: from the clock; printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Resident-memory rise allowed after the first minute, MiB per 10 minutes (or 1% of what
    /// the server held then, whichever allows more).
    #[arg(long, default_value_t = 1.0)]
    rss_bound: f64,
    /// Results folder.
    #[arg(long, default_value = "results")]
    results: PathBuf,
}

#[derive(clap::Args)]
struct DensityArgs {
    /// The density plan.
    #[arg(long, default_value = "scenarios/density.toml")]
    plan: PathBuf,
    /// The plan's quick cells and shorter windows.
    #[arg(long)]
    quick: bool,
    /// The real clip (`cargo xtask clip` fetches it).
    #[arg(long, env = "STREAM_MANAGER_CLIP")]
    clip: PathBuf,
    /// Results folder.
    #[arg(long, default_value = "results")]
    results: PathBuf,
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
    /// The base commit's `harness` executable: the timed figures run each piece of work in it
    /// and in this one, taking turns (`cargo xtask gate` builds it from the commit that last
    /// changed ratios.json).
    #[arg(long, requires = "base_commit")]
    base: Option<PathBuf>,
    /// The commit `--base` was built from (named in the verdicts).
    #[arg(long)]
    base_commit: Option<String>,
    /// Least repetitions of each timed figure; one whose 95% interval is still wider than its
    /// noise threshold gets more, up to four times as many. A figure is the base side's lower
    /// quartile of CPU time over this side's, with its bootstrap 95% interval.
    #[arg(long, default_value_t = 12)]
    reps: usize,
    /// Skip the timed figures (instruction counts only).
    #[arg(long)]
    no_ratios: bool,
    /// Rewrite the baselines with what was measured now: this processor kind's instruction
    /// counts (other processors' entries are kept), and the timed figures' record (the commit
    /// that takes it becomes their base; noise thresholds are kept).
    #[arg(long)]
    update: bool,
    /// Also write the table to this file.
    #[arg(long)]
    markdown: Option<PathBuf>,
    /// Also write every ratio sample to this JSON file.
    #[arg(long)]
    samples: Option<PathBuf>,
    /// Measure the gate itself instead: for each timed ratio, run the gate's measurement
    /// `--tries` times unchanged and with the measured side slowed by 5%, 10% and 20%
    /// (calibrated busy work in its per-frame path); write how often each was caught, and the
    /// false alarms, to `--power-out`, and regenerate the report that shows it.
    #[arg(long)]
    power: bool,
    /// Gate measurements per slowdown with --power.
    #[arg(long, default_value_t = 10)]
    tries: usize,
    /// Where --power writes its results (the report reads `gate-power.json` beside the suites).
    #[arg(long, default_value = "results/gate-power.json")]
    power_out: PathBuf,
    /// With --power: measure nothing; work the verdicts of the last --power run (its
    /// `--power-out` file) out again from the CPU times it recorded (this file, its
    /// `--samples`) under the baselines as they are now (after a threshold or median changed).
    #[arg(long, requires = "power")]
    from_samples: Option<PathBuf>,
}

#[derive(clap::Args)]
struct RunArgs {
    /// Scenario file (scenarios/<suite>.toml).
    scenario: PathBuf,
    /// The scenario's short form: fewer points and frames (its [quick] section).
    #[arg(long)]
    quick: bool,
    /// The smallest run that takes the suite end to end: the quick form's first point, one
    /// run of about a second (3 s with a link's or quota's schedule, compressed), and the
    /// comparisons at their smallest; written as a quick run. The tests run every suite so.
    #[arg(long, conflicts_with = "quick")]
    smallest: bool,
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
    /// Also decode the real clip (its path in STREAM_MANAGER_CLIP; `cargo xtask clip` fetches
    /// it) with the file source and with the ffmpeg CLI, one thread each, alternating, and
    /// report the CPU per frame of each and their ratio.
    #[arg(long)]
    compare_decode: bool,
    /// Also run the same publisher and player load against our server (over RTMP and over
    /// RTMPS), nginx-rtmp and node-media-server 2.7, each in its own process, and compare server CPU, RSS, real-time
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
    /// Servers for --peers (comma-separated; every one by default).
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
    /// Comparisons (--compare-cli, --peers, --probe-overhead) run in shard 1 only. Without
    /// it, an array job's index is read from the environment: STREAM_MANAGER_SHARD=K/N (any
    /// CI matrix), JOB_COMPLETION_INDEX with STREAM_MANAGER_SHARDS=N (Kubernetes Indexed Job),
    /// SLURM_ARRAY_TASK_ID/_MIN/_COUNT (Slurm job array), CI_NODE_INDEX/CI_NODE_TOTAL (GitLab).
    #[arg(long, value_name = "K/N")]
    shard: Option<harness::results::Shard>,
    /// Also profile each point: one extra run per point (not counted in its figures) sampled
    /// at 499 Hz of CPU time on every thread; its flame graph goes to
    /// <results>/<suite>/profile/NN.svg, its hottest functions and threads into the results
    /// and the report.
    #[arg(long)]
    profile: bool,
}

#[global_allocator]
static ALLOCATOR: harness::allocs::Counting = harness::allocs::Counting;

fn main() -> Result<()> {
    // SAFETY: first thing in main, no other thread yet.
    unsafe { streamer::render::gpu::quiet_headless_vulkan() };
    match Cli::parse().command {
        Cmd::Run(args) => commands::run(&args.into()),
        Cmd::Merge { suites, results } => commands::merge(&results, suites),
        Cmd::Gate(args) if args.power => {
            let opts = harness::gate::power::PowerOptions {
                baselines: args.baselines,
                tries: args.tries.max(1),
                reps: args.reps.max(1),
                slowdowns: vec![0.05, 0.10, 0.20],
                out: args.power_out,
                samples: args.samples,
            };
            let r = match &args.from_samples {
                Some(samples) => {
                    let read = |p: &std::path::Path| {
                        std::fs::read_to_string(p)
                            .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))
                    };
                    let report = serde_json::from_str(&read(&opts.out)?)?;
                    let raw = serde_json::from_str(&read(samples)?)?;
                    let (_, base) = harness::gate::check::load_baselines(&opts.baselines)?;
                    let r = harness::gate::power::reevaluate(&report, &raw, &base);
                    harness::results::write_atomic(&opts.out, &serde_json::to_vec_pretty(&r)?)?;
                    r
                }
                None => harness::gate::power::power(&opts, |m| eprintln!("gate: {m}"))?,
            };
            println!("{}", harness::gate::power::power_table(&r));
            let root = opts.out.parent().unwrap_or(std::path::Path::new("."));
            println!("wrote {}", report::write(root)?.display());
            Ok(())
        }
        Cmd::Gate(args) => harness::gate::check(&args.into()),
        Cmd::Soak(a) => {
            let seed = a.seed.unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
            });
            let opts = harness::soak::SoakOptions {
                duration: std::time::Duration::from_secs_f64(a.minutes * 60.0),
                max_players: a.max_players,
                wave_s: a.wave_seconds,
                seed,
                rss_bound_mib: a.rss_bound,
                warmup_s: 60.0,
                stream_manager: std::env::current_exe()?.with_file_name("stream-manager"),
                leak_mib_per_min: 0.0,
            };
            eprintln!(
                "soak: {} min, waves of up to {} players every {} s, seed {seed}",
                a.minutes, a.max_players, a.wave_seconds
            );
            let r = harness::soak::run(&opts, |line| eprintln!("{line}"))
                .map_err(|e| anyhow::anyhow!("soak: {e}"))?;
            let path = harness::soak::save(&a.results, &r)?;
            let report = report::write(&a.results)?;
            for c in &r.checks {
                eprintln!(
                    "{} {}: {}",
                    if c.passed { "pass" } else { "FAIL" },
                    c.what,
                    c.measured
                );
            }
            eprintln!(
                "results: {}
report:  {}",
                path.display(),
                report.display()
            );
            if !r.passed {
                anyhow::bail!("the soak failed (see above)");
            }
            Ok(())
        }
        Cmd::Density(a) => commands::density(&a.plan, a.quick, &a.clip, &a.results),
        Cmd::Report { results, full } => {
            let path = report::write_from(&results, full)?;
            println!("wrote {}", path.display());
            Ok(())
        }
        Cmd::Plan { scenario, quick } => commands::plan(&scenario, quick),
        Cmd::Check { results, committed } => {
            commands::check_results(&results, committed.then_some(std::path::Path::new(".")))
        }
        Cmd::Point => commands::point(),
        Cmd::GateSide => harness::gate::ratios::serve(),
    }
}

impl From<RunArgs> for RunOptions {
    fn from(a: RunArgs) -> Self {
        RunOptions {
            scenario: a.scenario,
            quick: a.quick,
            smallest: a.smallest,
            results: a.results,
            compare_cli: a.compare_cli,
            probe_overhead: a.probe_overhead,
            compare_decode: a.compare_decode,
            peers: a.peers,
            peer_players: a.peer_players,
            peer_seconds: a.peer_seconds,
            peer_reps: a.peer_reps,
            peer_servers: a.peer_servers,
            nms_dir: a.nms_dir,
            json: a.json,
            shard: a.shard,
            profile: a.profile,
        }
    }
}

impl From<GateArgs> for GateOptions {
    fn from(a: GateArgs) -> Self {
        GateOptions {
            instructions: a.instructions,
            baselines: a.baselines,
            base: a.base.zip(a.base_commit),
            reps: a.reps,
            no_ratios: a.no_ratios,
            update: a.update,
            markdown: a.markdown,
            samples: a.samples,
        }
    }
}
