//! `stream-manager`: run a stream from the command line.

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;
use streamer::config::StreamConfig;
use streamer::encode::{Settings, hw};
use streamer::output::Output;
use streamer::probe::NoProbe;
use streamer::render::gpu;
use streamer::rtmp::LocalRelay;
use streamer::rtmp::server::Server;
use streamer::stream::{Pacing, Stream};

mod many;

/// A live-stream manager: draws a synthetic scene (or decodes a file: `--set source.kind=file
/// --set source.path=FILE`), draws its layers over it, encodes it to H.264 with FFmpeg's
/// libx264 and publishes it over RTMP (to its own embedded server by default), or writes it to
/// a file.
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
    /// Stream: draw, encode and send frames until --frames are done. Without --output the stream
    /// goes to an embedded RTMP server on a free loopback port with --players players attached.
    Run(RunArgs),
    /// Run the RTMP server alone until interrupted: publish to rtmp://HOST:PORT/APP/KEY, play
    /// the same URL.
    Serve(ServeArgs),
    /// Print the effective configuration (defaults, --config, --set) as TOML, after validating it.
    Config(ConfigArgs),
    /// Probe every hardware encoder family (nvidia, qsv, vaapi, amf, videotoolbox) and say which
    /// can encode this stream and why the others cannot.
    Hwaccel(ConfigArgs),
    /// List the GPU adapters wgpu finds (headless) and the one the GPU renderer would pick.
    /// `WGPU_BACKEND=vulkan|gl` narrows the search.
    Gpu {
        /// Which API to look on.
        #[arg(long, value_enum, default_value = "auto")]
        api: GpuApi,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum GpuApi {
    Vulkan,
    Gl,
    Auto,
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
pub(crate) struct RunArgs {
    /// Where the stream goes: rtmp://HOST[:PORT]/APP/KEY (any RTMP server), rtmps://… (RTMP
    /// over TLS, port 443 unless given), a file ending in .flv, or `null` to encode and
    /// discard. Default: an embedded server with --players players.
    #[arg(long, short)]
    output: Option<Output>,
    /// Trust the certificates in this PEM file for an rtmps:// output, beside the system's
    /// trusted roots (a private CA, or a server's self-signed certificate). SSL_CERT_FILE
    /// replaces the system's roots, as for OpenSSL.
    #[arg(long, value_name = "FILE")]
    tls_ca: Option<PathBuf>,
    /// Players attached to the embedded server when there is no --output; each counts frames
    /// and the summary shows what they received.
    #[arg(long, default_value_t = 1)]
    players: usize,
    /// Number of frames to stream (at 30 fps, 300 frames are 10 seconds).
    #[arg(long, default_value_t = 300)]
    frames: u64,
    /// `realtime` streams at the configured frame rate, dropping frames that fall more than
    /// encoder.pipeline.dropThreshold behind; `max` runs as fast as the machine allows.
    #[arg(long, default_value = "realtime")]
    pacing: Pacing,
    /// Serve live Prometheus metrics at http://ADDR/metrics while streaming (the guide's
    /// stream_manager_* names, a histogram per monitoring-point span); port 0 picks a free one
    /// and the address is printed. Loopback by default: give 0.0.0.0:PORT to let others scrape.
    #[arg(long, value_name = "ADDR")]
    metrics: Option<String>,
    /// Streams to run at once in this process, each its own source, pipeline, encoder and
    /// publisher, to its own stream key (s0, s1, …: of the embedded server, with --players
    /// players each, or of --output's RTMP server). One stream's failure ends that stream only.
    /// A --config file may give stream sI settings of its own in a [streams.sI] table.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=256))]
    streams: u32,
    #[command(flatten)]
    config: ConfigArgs,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address to listen on. Loopback by default; give 0.0.0.0:1935 to accept other hosts.
    #[arg(long, default_value = "127.0.0.1:1935")]
    listen: std::net::SocketAddr,
    /// Serve the server's counters as Prometheus metrics at http://ADDR/metrics
    /// (stream_manager_server_*: connections accepted, refused, open; players; contained
    /// panics; protocol errors; timeouts; player frames dropped). Port 0 picks a free one.
    #[arg(long, value_name = "ADDR")]
    metrics: Option<String>,
    /// Outgoing RTMP chunk size in bytes (rtmp.chunk_size).
    #[arg(long)]
    chunk_size: Option<u32>,
    /// Keep the frames since the last keyframe for players that join mid-stream (rtmp.gop_cache).
    #[arg(long)]
    gop_cache: Option<bool>,
    /// Seconds between pings to each peer (rtmp.ping).
    #[arg(long)]
    ping: Option<u32>,
    /// Seconds of silence after which a peer is closed (rtmp.ping_timeout).
    #[arg(long)]
    ping_timeout: Option<u32>,
    /// Offer RTMPS (RTMP over TLS) too, with this certificate chain (PEM), on --tls-listen.
    /// Needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key (PEM: PKCS#8, PKCS#1 or SEC1) of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Address for RTMPS. Default: --listen's address on port 1936 (port 0 when --listen's is
    /// 0). Clients use rtmps://HOST:PORT/APP/KEY.
    #[arg(long, value_name = "ADDR", requires = "tls_cert")]
    tls_listen: Option<std::net::SocketAddr>,
    /// Threads serving connections. 1 (the default) runs the whole server on one thread, which
    /// costs the least CPU per player; large frames still go out on rtmp.fanout_threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    #[command(flatten)]
    config: ConfigArgs,
}

impl ConfigArgs {
    fn load(&self) -> Result<StreamConfig> {
        Ok(self.load_each(1)?.remove(0))
    }

    /// Each of `n` streams' settings: the file's shared ones with stream sI's own
    /// `[streams.sI]` table over them, then every `--set`.
    fn load_each(&self, n: usize) -> Result<Vec<StreamConfig>> {
        let mut each = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                streamer::config::each_from_toml(&text, n)
                    .with_context(|| format!("in {}", path.display()))?
            }
            None => vec![StreamConfig::default(); n],
        };
        for (i, cfg) in each.iter_mut().enumerate() {
            for spec in &self.overrides {
                cfg.apply_override(spec)
                    .with_context(|| format!("--set {spec}"))?;
            }
            cfg.validate().with_context(|| match n {
                1 => String::from("checking the settings"),
                _ => format!("checking stream {}'s settings", streamer::streams::key(i)),
            })?;
        }
        Ok(each)
    }
}

fn main() -> Result<()> {
    // SAFETY: first thing in main, no other thread yet.
    unsafe { streamer::render::gpu::quiet_headless_vulkan() };
    match Cli::parse().command {
        Command::Run(args) => run(args),
        Command::Serve(args) => serve(args),
        Command::Config(args) => {
            print!("{}", toml::to_string(&args.load()?)?);
            Ok(())
        }
        Command::Hwaccel(args) => {
            let cfg = args.load()?;
            for (device, result) in hw::survey(&Settings::of(&cfg)) {
                match result {
                    Ok(encoder) => println!("{device:<13} available ({encoder})"),
                    Err(e) => println!("{device:<13} unavailable: {}", e.reason),
                }
            }
            Ok(())
        }
        Command::Gpu { api } => {
            let api = match api {
                GpuApi::Vulkan => gpu::Api::Vulkan,
                GpuApi::Gl => gpu::Api::Gl,
                GpuApi::Auto => gpu::Api::Auto,
            };
            list_adapters(api)
        }
    }
}

/// Prints the adapters on `api` and the one the GPU renderer would pick.
#[cfg(feature = "gpu")]
fn list_adapters(api: gpu::Api) -> Result<()> {
    for a in gpu::adapters(api) {
        println!("adapter  {a}");
    }
    let (_, picked) = gpu::pick(api)?;
    println!("picked   {picked}");
    Ok(())
}

/// A build without the GPU renderer has no adapters to list.
#[cfg(not(feature = "gpu"))]
fn list_adapters(_: gpu::Api) -> Result<()> {
    bail!("{}", streamer::render::NO_GPU)
}

/// A memory leak planted on purpose, `STREAM_MANAGER_PLANTED_LEAK_MIB_PER_MIN` MiB a minute
/// (unset or 0: none): the soak's test shows its leak check catches one. A fault that cannot be
/// caused from outside the process.
fn plant_leak() {
    let Some(mib_per_min) = std::env::var("STREAM_MANAGER_PLANTED_LEAK_MIB_PER_MIN")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|v| *v > 0.0)
    else {
        return;
    };
    eprintln!("planted leak: {mib_per_min} MiB a minute");
    std::thread::spawn(move || {
        let bytes = (mib_per_min * 1048576.0 / 10.0) as usize;
        loop {
            std::thread::sleep(std::time::Duration::from_millis(6000));
            // Touched, so it is resident; never freed.
            std::mem::forget(vec![1u8; bytes]);
        }
    });
}

fn serve(args: ServeArgs) -> Result<()> {
    plant_leak();
    let mut cfg = args.config.load()?;
    let r = &mut cfg.rtmp;
    r.chunk_size = args.chunk_size.unwrap_or(r.chunk_size);
    r.gop_cache = args.gop_cache.unwrap_or(r.gop_cache);
    r.ping = args.ping.unwrap_or(r.ping);
    r.ping_timeout = args.ping_timeout.unwrap_or(r.ping_timeout);
    cfg.validate()?;
    let r = &cfg.rtmp;
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            let config = streamer::rtmp::tls::server_config(cert, key)?;
            let addr = args.tls_listen.unwrap_or_else(|| {
                let port = if args.listen.port() == 0 { 0 } else { 1936 };
                std::net::SocketAddr::new(args.listen.ip(), port)
            });
            Some((addr, config))
        }
        _ => None,
    };
    let announce = |addr, tls: Option<std::net::SocketAddr>| {
        let also = tls.map_or(String::new(), |t| {
            format!(" and RTMPS on rtmps://{t}/APP/KEY")
        });
        eprintln!(
            "serving RTMP on rtmp://{addr}/APP/KEY{also} (chunk_size {}, gop_cache {}, ping {} s, ping_timeout {} s, {} thread(s)); Ctrl-C drains and stops",
            r.chunk_size, r.gop_cache, r.ping, r.ping_timeout, args.threads
        );
    };
    let stats = Arc::new(streamer::rtmp::server::ServerStats::default());
    let _endpoint = match &args.metrics {
        Some(addr) => {
            let e = streamer::metrics::serve_server(addr, Arc::clone(&stats))?;
            eprintln!("metrics: http://{}/metrics", e.addr);
            Some(e)
        }
        None => None,
    };
    let drained = if args.threads <= 1 {
        // The whole server on this thread (see `Server::serve_here`).
        Server::serve_here(args.listen, r, true, stats, tls, announce)?
    } else {
        let mut server = Server::start_with(args.listen, r, args.threads, true, stats)?;
        let tls = tls
            .map(|(addr, config)| server.offer_tls(addr, config))
            .transpose()?;
        announce(server.local_addr(), tls);
        server.drain_on_signal()?
    };
    if drained.cut == 0 {
        eprintln!(
            "drained: {} players told the stream ended; every connection closed in {:.2} s",
            drained.players_told,
            drained.took.as_secs_f64()
        );
    } else {
        eprintln!(
            "drained: {} players told the stream ended; {} connections still open after {} s \
             (rtmp.drain_timeout) were cut",
            drained.players_told, drained.cut, r.drain_timeout
        );
    }
    Ok(())
}

fn run(args: RunArgs) -> Result<()> {
    let asked = args.config.load_each(args.streams as usize)?;
    // A file source is read for its frame rate once per distinct setting, not once a stream.
    let mut each: Vec<StreamConfig> = Vec::with_capacity(asked.len());
    for (i, cfg) in asked.iter().enumerate() {
        let same = i > 0 && asked[i - 1] == *cfg;
        let effective = match each.last() {
            Some(last) if same => last.clone(),
            _ => streamer::stream::effective_config(cfg)?,
        };
        each.push(effective);
    }
    let cfg = each[0].clone();
    if let Some(ca) = &args.tls_ca {
        streamer::rtmp::tls::trust(ca)?;
    }
    if args.frames == 0 {
        bail!("--frames must be at least 1");
    }
    if args.streams > 1 {
        return many::run_many(&args, &each);
    }
    let v = &cfg.core.viewport;
    let relay = match &args.output {
        Some(_) => None,
        None => Some(
            LocalRelay::start(&cfg.rtmp, args.players, v.fps, Arc::new(NoProbe))
                .context("starting the embedded RTMP server and its players")?,
        ),
    };
    let output = match (&args.output, &relay) {
        (Some(o), _) => o.clone(),
        (None, Some(r)) => Output::Rtmp(r.url.clone()),
        (None, None) => unreachable!("a relay starts when there is no output"),
    };
    // The metrics probe always runs: its span means feed the diagnosis; the endpoint serves
    // them only with --metrics.
    let metrics = Arc::new(streamer::metrics::Metrics::new());
    let cpu_before = streamer::clock::process_cpu_ns() as f64 * 1e-9;
    let started = Instant::now();
    let (summary, streaming_s) = stream_to(
        &args,
        &cfg,
        &output,
        relay.is_some(),
        &*Arc::clone(&metrics),
        |s| match &args.metrics {
            Some(addr) => {
                let server = relay.as_ref().map(|r| r.server.stats_handle());
                let endpoint =
                    streamer::metrics::serve(addr, Arc::clone(&metrics), s.live(), server)?;
                eprintln!("metrics: http://{}/metrics", endpoint.addr);
                Ok(Some(endpoint))
            }
            None => Ok(None),
        },
    )?;
    let secs = started.elapsed().as_secs_f64();
    let cpu_percent =
        ((streamer::clock::process_cpu_ns() as f64 * 1e-9) - cpu_before) / secs * 100.0;
    let server_dropped = report(&summary, &output, relay, secs)?;
    let facts = streamer::stream::RunFacts {
        secs: streaming_s,
        realtime: args.pacing == Pacing::Realtime,
        players: if args.output.is_none() {
            args.players as u32
        } else {
            0
        },
        cpu_percent,
        server_dropped,
    };
    let observed =
        streamer::stream::observed(&cfg, &summary, &facts, |name| metrics.span_mean_ms(name));
    for f in streamer::diagnose::diagnose(&observed) {
        println!("diagnosis: {}: {}", f.symptom, f.cause);
    }
    Ok(())
}

/// Opens the stream with `probe`, starts what `serving` starts beside it, runs every frame and
/// finishes; also returns the seconds the frames took (opening and the final flush left out).
fn stream_to<P: streamer::probe::Probe + Sync>(
    args: &RunArgs,
    cfg: &streamer::config::StreamConfig,
    output: &Output,
    embedded: bool,
    probe: &P,
    serving: impl FnOnce(&Stream<'_, P>) -> Result<Option<streamer::metrics::Endpoint>>,
) -> Result<(streamer::stream::Summary, f64)> {
    let mut stream = Stream::open(cfg, output, probe)?;
    let _endpoint = serving(&stream)?;
    eprintln!(
        "streaming {} to {}{}",
        what_streams(args, cfg),
        output,
        if embedded {
            format!(" (embedded server, {} players)", args.players)
        } else {
            String::new()
        }
    );
    let started = Instant::now();
    let interrupt = streamer::stream::Interrupt::watch(stream.live());
    stream.run(args.frames, args.pacing)?;
    let running_s = started.elapsed().as_secs_f64();
    drop(interrupt);
    Ok((stream.finish()?, running_s))
}

/// Prints what a finished stream did (and what its players received); returns the frames the
/// embedded server dropped for slow players.
fn report(
    summary: &streamer::stream::Summary,
    output: &Output,
    relay: Option<LocalRelay>,
    secs: f64,
) -> Result<u64> {
    let c = summary.counters;
    println!(
        "{} frames encoded by {} in {:.2} s ({:.1} fps), {} dropped, {} keyframes, {:.0} kbit/s",
        c.packets,
        summary.encoder,
        secs,
        c.packets as f64 / secs,
        c.dropped + summary.sink.dropped,
        c.keyframes,
        summary.bitrate_kbps
    );
    let r = &summary.render;
    println!(
        "render: {}{}, {:.2} ms per frame ({:.0} fps), {:.1} draw calls per frame{}",
        r.backend,
        r.adapter
            .as_ref()
            .map_or(String::new(), |a| format!(" on {a}")),
        r.frame_time,
        r.fps,
        r.draw_calls,
        r.fallback
            .as_ref()
            .map_or(String::new(), |why| format!(" (auto: {why})"))
    );
    if matches!(output, Output::Rtmp(_)) {
        let s = summary.sink;
        println!(
            "rtmp: {} bytes sent ({:.0} kbit/s on the wire), {} frames lost to the network, {} reconnects",
            s.bytes_sent,
            s.bytes_sent as f64 * 8.0 / secs / 1000.0,
            s.dropped,
            s.reconnects
        );
        if let Some(q) = &summary.network {
            println!(
                "network: rtt {:.2} ms (±{:.2}), {} segments retransmitted, delivery rate {:.0} \
                 kbit/s, over the last second {:.0} kbit/s sent and {:.0} kbit/s acknowledged, media \
                 queued unsent {:.0} ms (peak {:.0} ms)",
                q.rtt_ms,
                q.rtt_var_ms,
                q.retransmits,
                q.delivery_rate_kbps,
                q.send_rate_kbps,
                q.acked_rate_kbps,
                q.queued_media_ms,
                q.queued_media_peak_ms
            );
        }
    }
    let mut server_dropped = 0;
    if let Some(relay) = relay {
        // Let the last frames reach the players before counting.
        relay.settle(c.packets, std::time::Duration::from_secs(30));
        let stats = relay.server.stats();
        let direct = stats
            .direct_writes
            .load(std::sync::atomic::Ordering::Relaxed);
        let queued = stats
            .queued_writes
            .load(std::sync::atomic::Ordering::Relaxed);
        let (players, dropped) = relay.stop();
        server_dropped = dropped;
        println!(
            "server: {direct} frames written straight to players, {queued} through their queues"
        );
        let frames: Vec<u64> = players.iter().map(|p| p.frames).collect();
        let joins: Vec<f64> = players
            .iter()
            .filter_map(|p| p.join)
            .map(|d| d.as_secs_f64() * 1000.0)
            .collect();
        println!(
            "players: {} received {}–{} frames each, join {:.0}–{:.0} ms, {} frames dropped by the server",
            players.len(),
            frames.iter().min().unwrap_or(&0),
            frames.iter().max().unwrap_or(&0),
            joins.iter().copied().fold(f64::INFINITY, f64::min),
            joins.iter().copied().fold(0.0, f64::max),
            dropped
        );
    }
    for e in &summary.adaptation {
        let what = e.change;
        println!(
            "adaptive: at {:.1} s, {what} ({})",
            e.t_ms as f64 / 1000.0,
            e.signal
        );
    }
    for note in &summary.notes {
        println!("note: {note}");
    }
    Ok(server_dropped)
}

/// What `run` streams, for its first line: frames, geometry, preset, pacing and threads.
pub(crate) fn what_streams(args: &RunArgs, cfg: &StreamConfig) -> String {
    let v = &cfg.core.viewport;
    format!(
        "{} frames of {}x{}@{} ({} {}, {} threads)",
        args.frames,
        v.width,
        v.height,
        v.fps,
        cfg.encoder.preset,
        args.pacing,
        cfg.encoder.pipeline.threads
    )
}
