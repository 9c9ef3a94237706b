//! `cargo xtask`: the one entry point. It links no FFmpeg, so it runs on a fresh machine,
//! checks (and where it can, installs) what the workspace needs, then builds and runs it.

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
    /// the benchmarks once each in test mode.
    Test,
    /// Regenerate results/REPORT.md from the latest results of every suite.
    Report,
}

#[derive(clap::Args)]
struct PerfArgs {
    /// The suite: a scenario file in scenarios/ (stream = encoder presets × threads × zero copy).
    suite: String,
    /// The short form (about a minute): fewer points, fewer frames, one run each.
    #[arg(long)]
    quick: bool,
    /// Also compare the in-process encoder with the ffmpeg CLI on the same raw frames
    /// (ultrafast, veryfast, medium), side by side in this run.
    #[arg(long)]
    compare_cli: bool,
    /// Also measure the recorder's cost on the full path against the no-op probe.
    #[arg(long)]
    probe_overhead: bool,
    /// (network) Also run the same publisher and players against nginx-rtmp and
    /// node-media-server 2.7 (installed with npm into target/peers), each server in its own
    /// process, and compare CPU, memory, latency and join time.
    #[arg(long)]
    peers: bool,
    /// Print the results as JSON on stdout.
    #[arg(long)]
    json: bool,
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
                    e.file_name()
                        .to_str()?
                        .strip_suffix(".toml")
                        .map(String::from)
                })
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn main() -> Result<ExitCode> {
    let cli = Cli::parse();
    if let Some(code) = deps::ensure()? {
        return Ok(code);
    }
    match cli.command {
        Cmd::Perf(args) => {
            let scenario = root()
                .join("scenarios")
                .join(format!("{}.toml", args.suite));
            if !scenario.exists() {
                eprintln!(
                    "xtask: no suite {:?}: there is no scenarios/{}.toml (suites: {})",
                    args.suite,
                    args.suite,
                    suites().join(", ")
                );
                return Ok(ExitCode::from(2));
            }
            let mut c = harness()?;
            c.arg("run")
                .arg(Path::new("scenarios").join(format!("{}.toml", args.suite)));
            for (on, flag) in [
                (args.quick, "--quick"),
                (args.compare_cli, "--compare-cli"),
                (args.probe_overhead, "--probe-overhead"),
                (args.json, "--json"),
                (args.peers, "--peers"),
            ] {
                if on {
                    c.arg(flag);
                }
            }
            if args.peers {
                if let Some(code) = deps::node_media_server(&root().join("target/peers"))? {
                    return Ok(code);
                }
                c.arg("--nms-dir").arg(root().join("target/peers"));
            }
            run(c)?;
        }
        Cmd::Report => {
            let mut c = harness()?;
            c.arg("report");
            run(c)?;
        }
        Cmd::Test => {
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
            let mut test = cargo();
            test.args(["test", "--workspace"]);
            run(test)?;
            let mut benches = cargo();
            benches.args(["test", "-p", "benches", "--benches"]);
            run(benches)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
