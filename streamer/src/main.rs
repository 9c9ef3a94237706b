//! `stream-manager`: run a stream from the command line.

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::time::Instant;
use streamer::config::StreamConfig;
use streamer::encode::hw;
use streamer::output::Output;
use streamer::probe::NoProbe;
use streamer::stream::{Pacing, Stream};

/// A live-stream manager: draws a synthetic scene, encodes it to H.264 with FFmpeg's libx264
/// and writes it out.
///
/// Configuration comes from the defaults (the optimization guide's baseline), then an optional
/// TOML file (--config), then --set overrides, in that order. Field names are the guide's:
/// `encoder.preset`, `encoder.pipeline.zeroCopy`, `pipeline.maxQueueSize`, `rtmp.chunk_size`…
/// Run `stream-manager config` to see every field with its default.
#[derive(Parser)]
#[command(name = "stream-manager", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Stream: draw, encode and write frames until --frames are done.
    Run(RunArgs),
    /// Print the effective configuration (defaults, --config, --set) as TOML, after validating it.
    Config(ConfigArgs),
    /// Probe every hardware encoder family (nvidia, qsv, vaapi, amf, videotoolbox) and say which
    /// can encode this stream and why the others cannot.
    Hwaccel(ConfigArgs),
}

#[derive(clap::Args)]
struct ConfigArgs {
    /// TOML file with any part of the configuration; absent fields keep their defaults.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Override one field by its dotted path, e.g. `--set encoder.preset=veryfast`
    /// or `--set encoder.pipeline.cpuFlags=["SSE2","AVX2"]`. Repeatable; applied in order.
    #[arg(long = "set", value_name = "PATH=VALUE")]
    overrides: Vec<String>,
}

#[derive(clap::Args)]
struct RunArgs {
    /// Where the stream goes: a file ending in .flv, or `null` to encode and discard.
    #[arg(long, short)]
    output: Output,
    /// Number of frames to stream (at 30 fps, 300 frames are 10 seconds).
    #[arg(long, default_value_t = 300)]
    frames: u64,
    /// `realtime` streams at the configured frame rate, dropping frames that fall more than
    /// encoder.pipeline.dropThreshold behind; `max` runs as fast as the machine allows.
    #[arg(long, default_value = "realtime")]
    pacing: Pacing,
    #[command(flatten)]
    config: ConfigArgs,
}

impl ConfigArgs {
    fn load(&self) -> Result<StreamConfig> {
        let mut cfg = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                StreamConfig::from_toml(&text).with_context(|| format!("in {}", path.display()))?
            }
            None => StreamConfig::default(),
        };
        for spec in &self.overrides {
            cfg.apply_override(spec)
                .with_context(|| format!("--set {spec}"))?;
        }
        cfg.validate()?;
        Ok(cfg)
    }
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Run(args) => run(args),
        Command::Config(args) => {
            print!("{}", toml::to_string(&args.load()?)?);
            Ok(())
        }
        Command::Hwaccel(args) => {
            let cfg = args.load()?;
            for (device, result) in hw::survey(&cfg) {
                match result {
                    Ok(encoder) => println!("{device:<13} available ({encoder})"),
                    Err(e) => println!("{device:<13} unavailable: {}", e.reason),
                }
            }
            Ok(())
        }
    }
}

fn run(args: RunArgs) -> Result<()> {
    let cfg = args.config.load()?;
    if args.frames == 0 {
        bail!("--frames must be at least 1");
    }
    let started = Instant::now();
    let mut stream = Stream::open(&cfg, &args.output, &NoProbe)?;
    let v = &cfg.core.viewport;
    eprintln!(
        "streaming {} frames of {}x{}@{} ({} {}, {} threads) to {}",
        args.frames,
        v.width,
        v.height,
        v.fps,
        cfg.encoder.preset,
        args.pacing,
        cfg.encoder.pipeline.threads,
        args.output
    );
    stream.run(args.frames, args.pacing)?;
    let summary = stream.finish()?;
    let secs = started.elapsed().as_secs_f64();
    let c = summary.counters;
    println!(
        "{} frames encoded by {} in {:.2} s ({:.1} fps), {} dropped, {} keyframes, {:.0} kbit/s",
        c.packets,
        summary.encoder,
        secs,
        c.packets as f64 / secs,
        c.dropped,
        c.keyframes,
        summary.bitrate_kbps
    );
    for note in &summary.notes {
        println!("note: {note}");
    }
    Ok(())
}
