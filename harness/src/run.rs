//! Running one point: in this process (the child side), or in a fresh child process so each
//! point's memory peak and CPU time are its own.
//!
//! The parent writes a [`PointJob`] as JSON to the child's stdin (`harness point`); the child
//! runs warm-up frames, opens the measurement window, runs the measured frames, flushes, and
//! writes a [`PointRun`] as JSON to stdout.

use crate::cpucap::{CpuCap, CpuFigures};
use crate::profile::Profiling;
use crate::record::{Recorder, SpanStats};
use crate::scenario::CpuPlan;
use crate::scenario::LinkPlan;
use crate::scenario::RunSettings;
use crate::shaped::{LinkFigures, LinkSample, ShapedLink};
use crate::system::{Sampler, threads_cpu_seconds};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use std::time::Instant;
use streamer::config::StreamConfig;
use streamer::core::CoreMetrics;
use streamer::output::Output;
use streamer::output::SinkStats;
use streamer::pipeline::Drops;
use streamer::probe::{NoProbe, Probe};
use streamer::rtmp::player::{PlayerLoad, PlayerReport};
use streamer::rtmp::{LocalRelay, RelayError};
use streamer::stream::{PipelineStats, Stream, StreamError};

/// What the child is asked to run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PointJob {
    pub config: StreamConfig,
    pub settings: RunSettings,
    /// Attach the recorder (true) or the no-op probe (false, to measure the recorder's cost).
    pub record: bool,
    /// Players on an embedded RTMP server the stream publishes to (0: encode only, null output).
    #[serde(default)]
    pub players: u32,
    /// Measure PSNR/SSIM of the encoded stream (the frames suite's quality part) instead of
    /// the usual window.
    #[serde(default)]
    pub quality: bool,
    /// Profile the measured window and write its flame graph here (`--profile`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<ProfileTarget>,
    /// Publish through a link the kernel shapes on this schedule (needs root).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<crate::scenario::LinkPlan>,
    /// Run under a CPU quota on this schedule (needs root).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<crate::scenario::CpuPlan>,
}

/// Where a profiled run writes its flame graph.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProfileTarget {
    /// The SVG file.
    pub svg: std::path::PathBuf,
    /// What the results call it (relative to the results folder).
    pub name: String,
}

/// One run of one point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PointRun {
    /// Encoded frames per second of wall time over the measured window (flush included).
    pub fps: f64,
    /// Process CPU over the window, percent of one core.
    pub cpu_percent: f64,
    /// Peak RSS during the window, bytes.
    pub rss_bytes: u64,
    pub dropped_frames: u64,
    /// Encoded bitrate over the measured frames, kbit/s.
    pub bitrate_kbps: f64,
    /// Frames encoded in the window.
    pub frames: u64,
    pub wall_s: f64,
    /// The encoder that ran.
    pub encoder: String,
    pub notes: Vec<String>,
    /// End marks with no start (should be 0).
    pub unmatched_marks: u64,
    pub spans: BTreeMap<String, SpanStats>,
    /// `(ms, RSS bytes)` over the window.
    pub rss_timeline: Vec<(u64, u64)>,
    /// With players on the embedded server: what they received.
    pub network: Option<NetworkFigures>,
    /// The frame pipeline over the measured window.
    #[serde(default)]
    pub pipeline: Option<PipelineFigures>,
    /// The core stage (with layers): the guide's CoreMetrics over the whole run, and timings of
    /// its parts measured before the window.
    #[serde(default)]
    pub core: Option<CoreFigures>,
    /// PSNR and SSIM (quality runs).
    #[serde(default)]
    pub quality: Option<crate::quality::QualityFigures>,
    /// The render stage: the guide's RenderMetrics over the whole run, and the backend that ran.
    #[serde(default)]
    pub render: Option<streamer::render::RenderMetrics>,
    /// CPU milliseconds per frame by stage over the window, from the threads' own clocks
    /// ([`STAGES`]; `server` and `players` with the embedded server).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub stage_cpu_ms: BTreeMap<String, f64>,
    /// Through a shaped link: the timeline and what it took to recover.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<LinkFigures>,
    /// Under a CPU quota: the schedule and the frame rate over time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuFigures>,
    /// What adaptation changed over the whole run (bitrate, drops, workers), in order; empty
    /// when it is off.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adaptation: Vec<streamer::adapt::AdaptEvent>,
    /// A profiled run's profile of the measured window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<crate::profile::ProfileFigures>,
}

/// The stages of [`PointRun::stage_cpu_ms`], in the order of a frame's path.
pub const STAGES: [&str; 7] = [
    "render",
    "workers",
    "encode",
    "x264 threads",
    "send",
    "server",
    "players",
];

/// The core stage's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CoreFigures {
    pub metrics: CoreMetrics,
    /// Mean time of a viewport update (grid and margin), µs.
    pub viewport_update_us: f64,
    /// Mean time of a resize, including re-placing every layer, µs.
    pub viewport_resize_us: f64,
    /// Mean time to place one rectangle, µs.
    pub viewport_transform_us: f64,
    /// Mean cold load (decode or draw) of an asset, ms.
    pub asset_cold_ms: f64,
    /// Mean warm lookup (cache hit) of an asset, µs.
    pub asset_warm_us: f64,
}

/// Times the core's parts on the stream's own core (before the measured window, so the
/// window's figures are the stream's alone). `metrics` is filled in after the run.
fn core_timings(stream: &mut Stream<'_, impl Probe>, cfg: &StreamConfig) -> CoreFigures {
    use streamer::core::assets::AssetCache;
    use streamer::core::viewport::Rect;
    let core = stream.core_mut();
    let n = 2000u32;
    let vp = core.viewport_mut().clone();
    let t = Instant::now();
    let mut placed = 0i64;
    for i in 0..n {
        let r = vp.transform(Rect {
            x: i as i32 * 7 % 1000,
            y: i as i32 * 3 % 600,
            w: 100 + i % 50,
            h: 60 + i % 30,
        });
        placed += i64::from(r.x);
    }
    std::hint::black_box(placed);
    let transform = t.elapsed().as_secs_f64() * 1e6 / f64::from(n);
    let t = Instant::now();
    for i in 0..n {
        let margin = streamer::config::Margin {
            x: vp.margin.x + i % 2,
            y: vp.margin.y,
        };
        core.viewport_mut().update(vp.grid, margin);
    }
    let update = t.elapsed().as_secs_f64() * 1e6 / f64::from(n);
    let resizes = 200u32;
    let t = Instant::now();
    for i in 0..resizes {
        let (w, h) = if i % 2 == 0 {
            (vp.width - 64, vp.height - 36)
        } else {
            (vp.width, vp.height)
        };
        core.viewport_mut().resize(w, h);
        core.replace_all();
    }
    let resize = t.elapsed().as_secs_f64() * 1e6 / f64::from(resizes);
    *core.viewport_mut() = vp;
    core.replace_all();
    // Cold and warm asset lookups on a fresh cache over the same sources.
    let sources = streamer::core::asset_sources(&cfg.core.assets).unwrap_or_default();
    let count = sources.len().max(1);
    let mut cache = AssetCache::new(sources, u64::MAX, Duration::from_secs(3600));
    let t = Instant::now();
    for id in 0..count {
        let _ = cache.get(id, 0, &NoProbe);
    }
    let cold = t.elapsed().as_secs_f64() * 1e3 / count as f64;
    let lookups = 10_000;
    let t = Instant::now();
    for i in 0..lookups {
        let _ = std::hint::black_box(cache.get(i % count, 0, &NoProbe));
    }
    let warm = t.elapsed().as_secs_f64() * 1e6 / lookups as f64;
    CoreFigures {
        metrics: CoreMetrics::default(),
        viewport_update_us: update,
        viewport_resize_us: resize,
        viewport_transform_us: transform,
        asset_cold_ms: cold,
        asset_warm_us: warm,
    }
}

/// The frame pipeline's figures over a measured window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PipelineFigures {
    /// Drops by reason.
    pub drops: Drops,
    /// Buffer pool hits ÷ takes, 0–1.
    pub pool_hit_rate: f64,
    /// Frame buffers allocated (pool misses) per frame.
    pub buffer_allocs_per_frame: f64,
    /// Rust heap allocations per frame, whole process (None where not counted).
    pub allocs_per_frame: Option<f64>,
    /// Queue depth seen by each arriving frame: `occupancy[d]` frames found `d` queued.
    pub occupancy: Vec<u64>,
    /// The guide's bufferHealth: 1 − the queue's mean fill.
    pub buffer_health: f64,
    /// Mean size of a frame in the pipeline's format (jpeg/png), bytes; 0 for raw.
    pub format_bytes_per_frame: f64,
    pub pressure_events: u64,
}

impl PipelineFigures {
    /// The window between two snapshots of a stream's pipeline.
    pub fn between(
        before: &PipelineStats,
        after: &PipelineStats,
        frames: u64,
        allocs: Option<u64>,
    ) -> Self {
        let n = frames.max(1) as f64;
        let takes = (after.pool.hits + after.pool.misses) - (before.pool.hits + before.pool.misses);
        let occupancy: Vec<u64> = after
            .occupancy
            .iter()
            .zip(&before.occupancy)
            .map(|(a, b)| a - b)
            .collect();
        let window = PipelineStats {
            occupancy: occupancy.clone(),
            ..PipelineStats::default()
        };
        PipelineFigures {
            drops: after.drops.since(&before.drops),
            pool_hit_rate: if takes == 0 {
                0.0
            } else {
                (after.pool.hits - before.pool.hits) as f64 / takes as f64
            },
            buffer_allocs_per_frame: (after.pool.misses - before.pool.misses) as f64 / n,
            allocs_per_frame: allocs.map(|a| a as f64 / n),
            buffer_health: window.buffer_health(),
            occupancy,
            format_bytes_per_frame: (after.format_bytes - before.format_bytes) as f64 / n,
            pressure_events: after.pressure_events - before.pressure_events,
        }
    }
}

/// The RTMP side of a run with players.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkFigures {
    pub players: u32,
    /// Publisher → server, RTMP bytes on the wire, kbit/s of wall time.
    pub sent_kbps: f64,
    /// Server → each player, payload kbit/s of wall time, mean over players.
    pub delivered_kbps: f64,
    /// Server → each player, RTMP bytes on the wire (chunk headers included), kbit/s of wall
    /// time: the server's bytes written over the window ÷ its players (the late joiner too).
    /// 0 in results from before it was measured.
    #[serde(default)]
    pub wire_kbps_per_player: f64,
    /// Players that kept real time: media received ÷ wall time ≥ 0.99.
    pub players_realtime: u32,
    /// A player joining after the warm-up: connect → first keyframe, ms.
    pub late_join_ms: Option<f64>,
    /// Whether that player's first frame was a keyframe.
    pub late_first_frame_key: Option<bool>,
    /// Frames the publisher could not send (connection lost).
    pub publisher_dropped: u64,
    pub reconnects: u64,
    /// Frames the server dropped for slow players (queue full), all players.
    pub server_dropped: u64,
    /// The embedded server's own threads (`rtmp-server*`, `rtmp-fanout-*`) over the window,
    /// percent of one core; None in results from before it was measured.
    #[serde(default)]
    pub server_cpu_percent: Option<f64>,
    /// The load it served: the players' threads (`rtmp-players`), percent of one core.
    #[serde(default)]
    pub players_cpu_percent: Option<f64>,
    /// The publisher's connection at the end of the window (round-trip time, retransmits,
    /// delivery rate, media queued unsent and its peak, send rate); None in older results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<streamer::adapt::network::NetQuality>,
}

/// The embedded server's threads, by name.
const SERVER_THREADS: [&str; 2] = ["rtmp-server", "rtmp-fanout-"];
/// The players' threads.
const PLAYER_THREADS: [&str; 1] = ["rtmp-players"];

/// Why a point could not be run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Stream(#[from] StreamError),
    #[error(transparent)]
    Relay(#[from] RelayError),
    #[error("players: {0}")]
    Players(std::io::Error),
    #[error("could not start {exe}: {source}")]
    Spawn { exe: String, source: std::io::Error },
    #[error("the point's child process failed ({status}): {stderr}")]
    Child { status: String, stderr: String },
    #[error("the point's child process wrote no valid result: {0}")]
    Protocol(String),
    #[error(transparent)]
    Link(#[from] crate::shaped::ShapeError),
}

/// A quality run: the stream encoded to a file, then compared with its source frames.
fn quality_run(job: &PointJob) -> Result<PointRun, RunError> {
    let frames = job.settings.length.frames(job.config.core.viewport.fps);
    let recorder = Recorder::new();
    let started = Instant::now();
    let q = crate::quality::measure(&job.config, frames, &recorder)
        .map_err(|e| RunError::Protocol(e.to_string()))?;
    let wall_s = started.elapsed().as_secs_f64();
    let spans = recorder
        .snapshot()
        .into_iter()
        .map(|(name, h)| (name.to_string(), SpanStats::from_histogram(&h)))
        .collect();
    Ok(PointRun {
        fps: q.frames as f64 / wall_s,
        cpu_percent: 0.0,
        rss_bytes: 0,
        dropped_frames: 0,
        bitrate_kbps: q.bitrate_kbps,
        frames: q.frames,
        wall_s,
        encoder: "libx264".to_string(),
        notes: vec!["fps includes decoding and comparing every frame".to_string()],
        unmatched_marks: recorder.unmatched(),
        spans,
        rss_timeline: Vec::new(),
        network: None,
        pipeline: None,
        core: None,
        quality: Some(q),
        render: None,
        stage_cpu_ms: BTreeMap::new(),
        link: None,
        cpu: None,
        adaptation: Vec::new(),
        profile: None,
    })
}

/// The `core.assets.dir` value that asks for the generated badges as files.
pub const ASSET_FILES: &str = "<files>";

/// Writes the generated badges as PNG (even ones) and JPEG (odd ones) files.
fn write_asset_files() -> std::io::Result<tempfile::TempDir> {
    let dir = tempfile::Builder::new()
        .prefix("stream-manager-assets-")
        .tempdir()?;
    for (i, src) in streamer::core::generated_assets().iter().enumerate() {
        let img = src
            .load()
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let buf = image::RgbaImage::from_raw(img.width, img.height, img.rgba)
            .ok_or_else(|| std::io::Error::other("badge size"))?;
        let result = if i % 2 == 0 {
            buf.save(dir.path().join(format!("badge-{i}.png")))
        } else {
            image::DynamicImage::ImageRgba8(buf)
                .to_rgb8()
                .save(dir.path().join(format!("badge-{i}.jpg")))
        };
        result.map_err(|e| std::io::Error::other(e.to_string()))?;
    }
    Ok(dir)
}

/// Runs `job` in this process.
///
/// # Errors
/// The stream could not be opened or failed while running.
pub fn run_here(job: &PointJob) -> Result<PointRun, RunError> {
    // `core.assets.dir = "<files>"`: the generated badges written as PNG and JPEG files into a
    // temporary folder, so assets are decoded from files (removed when the point ends).
    let mut job = job.clone();
    let _asset_dir = match &job.config.core.assets.dir {
        Some(d) if d.as_os_str() == ASSET_FILES => {
            let dir =
                write_asset_files().map_err(|e| RunError::Protocol(format!("asset files: {e}")))?;
            job.config.core.assets.dir = Some(dir.path().to_path_buf());
            Some(dir)
        }
        _ => None,
    };
    let job = &job;
    if job.quality {
        return quality_run(job);
    }
    let fps = job.config.core.viewport.fps;
    let recorder = Arc::new(Recorder::new());
    recorder.set_period(Duration::from_secs_f64(1.0 / f64::from(fps.max(1))));
    // A shaped link: this thread, and the server, players and stream it starts, in a network
    // namespace of their own.
    let shaped = match &job.link {
        Some(_) => {
            let link = ShapedLink::create("point")?;
            link.enter()?;
            Some(link)
        }
        None => None,
    };
    let relay = match job.players {
        0 => None,
        n => Some(LocalRelay::start(
            &job.config.rtmp,
            n as usize,
            fps,
            Arc::clone(&recorder),
        )?),
    };
    if let (Some(link), Some(relay), Some(plan)) = (&shaped, &relay, &job.link) {
        link.shape_port(relay.url.port, plan.schedule[0].1)?;
    }
    let link = shaped
        .as_ref()
        .zip(job.link.as_ref())
        .map(|(s, p)| (s, p, &*recorder));
    // A CPU quota: this process (the stream, and the server and players beside it) in a
    // cgroup of its own.
    let cap = match &job.cpu {
        Some(plan) => Some(
            CpuCap::create("point", plan.schedule[0].1)
                .map_err(|e| RunError::Protocol(e.to_string()))?,
        ),
        None => None,
    };
    let cpu = cap.as_ref().zip(job.cpu.as_ref());
    let mut run = if job.record {
        measure(job, &*recorder, relay.as_ref(), link, cpu, |warmup| {
            recorder.begin_measurement(warmup)
        })?
    } else {
        measure(job, &NoProbe, relay.as_ref(), link, cpu, |_| {})?
    };
    if let (Some(relay), Some(net)) = (relay, run.network.as_mut()) {
        let (_, dropped) = relay.stop();
        net.server_dropped = dropped;
    }
    if job.record {
        run.unmatched_marks = recorder.unmatched();
        run.spans = recorder
            .snapshot()
            .into_iter()
            .map(|(name, h)| (name.to_string(), SpanStats::from_histogram(&h)))
            .collect();
    }
    Ok(run)
}

fn measure<P: Probe + Sync>(
    job: &PointJob,
    probe: &P,
    relay: Option<&LocalRelay>,
    link: Option<(&ShapedLink, &LinkPlan, &Recorder)>,
    cpu: Option<(&CpuCap, &CpuPlan)>,
    begin: impl FnOnce(u64),
) -> Result<PointRun, RunError> {
    let s = &job.settings;
    let fps = job.config.core.viewport.fps;
    let output = relay.map_or(Output::Null, |r| Output::Rtmp(r.url.clone()));
    let opened = Instant::now();
    let mut stream = Stream::open(&job.config, &output, probe)?;
    stream.run(s.warmup_frames, s.pacing)?;
    // A run starts its pipeline threads and queue: a fixed cost, measured on a one-frame run
    // and taken off the window's count, so what remains is what the frames themselves cost.
    let counting = crate::allocs::counting();
    let fixed_before = crate::allocs::allocations();
    stream.run(1, s.pacing)?;
    let fixed = crate::allocs::allocations() - fixed_before;
    // The publisher is idle between runs: once the players have every frame sent so far, the
    // publisher's and the players' counters describe the same frames.
    relay.inspect(|r| settle(r));
    let before = stream.counters();
    let sink_before = stream.sink_stats();
    let players_before = relay.map(LocalRelay::reports).unwrap_or_default();
    let wire_before = relay.map_or(0, |r| r.server.stats().bytes_out.load(Ordering::Relaxed));
    let server_cpu_before = threads_cpu_seconds(&SERVER_THREADS);
    let players_cpu_before = threads_cpu_seconds(&PLAYER_THREADS);
    begin(s.warmup_frames + 1);
    // One more player joins mid-stream, after the warm-up: its join time is what a viewer
    // arriving at a live stream sees (with the GOP cache, at once; without, at the next keyframe).
    let late = match relay {
        Some(r) => {
            Some(PlayerLoad::start(&r.url, 1, fps, Arc::new(NoProbe)).map_err(RunError::Players)?)
        }
        None => None,
    };
    let mut core =
        (job.config.core.layout.layers > 0).then(|| core_timings(&mut stream, &job.config));
    let pipeline_before = stream.pipeline_stats();
    let mut sampler = Sampler::start();
    let allocs_before = crate::allocs::allocations();
    let stages_before = stream.stage_cpu();
    let profiling = match &job.profile {
        Some(_) => Some(Profiling::start().map_err(|e| RunError::Protocol(e.to_string()))?),
        None => None,
    };
    let started = Instant::now();
    // Under a CPU quota, a thread steps it on schedule and samples the frame rate meanwhile.
    let cpu_live = stream.live();
    let cpu_stop = AtomicBool::new(false);
    let (link_figures, cpu_figures) = std::thread::scope(|sc| {
        let _stop = StopOnDrop(&cpu_stop);
        let cpu_thread = cpu.map(|(cap, plan)| {
            let (live, stop) = (&cpu_live, &cpu_stop);
            sc.spawn(move || sample_cpu(live, cap, plan, stop, started, fps))
        });
        let link_figures = match (link, relay) {
            (Some((shaped, plan, recorder)), Some(relay)) => {
                let live = stream.live();
                let stop = AtomicBool::new(false);
                let stalled_before: Vec<Duration> =
                    relay.reports().iter().map(|p| p.stalled).collect();
                let sampling_cpu =
                    |l: &streamer::stream::Live| l.snapshot().network.map(|q| q.sampling_cpu_ms);
                let sampling_before = sampling_cpu(&live);
                let (ran, sampled) = std::thread::scope(|sc| {
                    let sampler = sc.spawn(|| {
                        sample_link(&live, relay, (shaped, plan, recorder), &stop, started, fps)
                    });
                    let ran = stream.run(s.length.frames(fps), s.pacing);
                    stop.store(true, Ordering::Relaxed);
                    (ran, sampler.join())
                });
                ran?;
                let window_ms = started.elapsed().as_secs_f64() * 1000.0;
                let stalled: Vec<f64> = relay
                    .reports()
                    .iter()
                    .zip(&stalled_before)
                    .map(|(p, before)| p.stalled.saturating_sub(*before).as_secs_f64() * 1000.0)
                    .collect();
                let (timeline, capped) = sampled
                    .map_err(|_| RunError::Protocol("the link sampler panicked".into()))??;
                let mut f = LinkFigures::of(
                    plan.schedule.clone(),
                    timeline,
                    job.config.encoder.rate_control.bitrate_kbps,
                    &stalled,
                    window_ms,
                );
                f.capped_e2e_ms = capped;
                f.sampling_cpu_ms = sampling_cpu(&live)
                    .zip(sampling_before)
                    .map(|(after, before)| after - before);
                f.window_start_ms = started.duration_since(opened).as_millis() as u64;
                Some(f)
            }
            _ => {
                stream.run(s.length.frames(fps), s.pacing)?;
                None
            }
        };
        cpu_stop.store(true, Ordering::Relaxed);
        let cpu_figures = match cpu_thread {
            Some(t) => Some(
                t.join()
                    .map_err(|_| RunError::Protocol("the CPU sampler panicked".into()))??,
            ),
            None => None,
        };
        Ok::<_, RunError>((link_figures, cpu_figures))
    })?;
    let stages = stream.stage_cpu().since(&stages_before);
    // Memory is the streaming window's: `finish` tears the stream down.
    sampler.end_memory_window();
    let allocs =
        counting.then(|| (crate::allocs::allocations() - allocs_before).saturating_sub(fixed));
    let summary = stream.finish()?;
    let wall_s = started.elapsed().as_secs_f64();
    // Symbolizing and writing the flame graph come after the window.
    let profile = match (profiling, &job.profile) {
        (Some(p), Some(target)) => Some(
            p.finish(&target.svg, &target.name)
                .map_err(|e| RunError::Protocol(e.to_string()))?,
        ),
        _ => None,
    };
    let usage = sampler.stop();
    if let Some(c) = core.as_mut() {
        c.metrics = summary.core.clone();
    }
    let mut server_players_s = None;
    let network = relay.map(|r| {
        // Frames still on their way reach the players before the counters are read (the same
        // frames as the publisher's); this adds no wall time.
        settle(r);
        let after = r.reports();
        let wire = r.server.stats().bytes_out.load(Ordering::Relaxed) - wire_before;
        let late = late.map(PlayerLoad::stop).unwrap_or_default();
        let mut n = network_figures(
            &players_before,
            &after,
            late.first(),
            sink_before,
            summary.sink,
            wall_s,
            fps,
        );
        let receivers = (after.len() + late.len()).max(1) as f64;
        n.wire_kbps_per_player = wire as f64 * 8.0 / wall_s / 1000.0 / receivers;
        let percent = |s: f64| Some(s / wall_s * 100.0);
        let server_s = threads_cpu_seconds(&SERVER_THREADS) - server_cpu_before;
        let players_s = threads_cpu_seconds(&PLAYER_THREADS) - players_cpu_before;
        n.quality = summary.network;
        n.server_cpu_percent = percent(server_s);
        n.players_cpu_percent = percent(players_s);
        server_players_s = Some((server_s, players_s));
        n
    });
    let after = summary.counters;
    let frames = after.packets - before.packets;
    let pipeline = PipelineFigures::between(&pipeline_before, &summary.pipeline, frames, allocs);
    let media_s = frames as f64 / f64::from(fps);
    let per_frame = |seconds: f64| seconds * 1000.0 / frames.max(1) as f64;
    let mut stage_cpu_ms: BTreeMap<String, f64> = STAGES
        .iter()
        .zip([
            stages.render_s,
            stages.workers_s,
            stages.encode_s,
            stages.x264_threads_s,
            stages.send_s,
        ])
        .map(|(name, s)| (name.to_string(), per_frame(s)))
        .collect();
    if let Some((server, players)) = server_players_s {
        stage_cpu_ms.insert("server".into(), per_frame(server));
        stage_cpu_ms.insert("players".into(), per_frame(players));
    }
    let mut notes = summary.notes;
    if summary.pool_copies > 0 {
        notes.push(format!(
            "{} pooled frames had to be copied",
            summary.pool_copies
        ));
    }
    Ok(PointRun {
        fps: frames as f64 / wall_s,
        cpu_percent: usage.cpu_percent,
        rss_bytes: usage.rss_peak_bytes,
        dropped_frames: after.dropped - before.dropped + summary.sink.dropped - sink_before.dropped,
        bitrate_kbps: if media_s > 0.0 {
            (after.bytes - before.bytes) as f64 * 8.0 / media_s / 1000.0
        } else {
            0.0
        },
        frames,
        wall_s,
        encoder: summary.encoder,
        notes,
        unmatched_marks: 0,
        spans: BTreeMap::new(),
        rss_timeline: usage.rss_timeline,
        network,
        pipeline: Some(pipeline),
        core,
        quality: None,
        render: Some(summary.render),
        stage_cpu_ms,
        adaptation: summary.adaptation,
        link: link_figures,
        cpu: cpu_figures,
        profile,
    })
}

/// Every [`crate::shaped::SAMPLE_MS`] while the window runs: changes the link's rate on
/// schedule and records a [`LinkSample`]. Returns the timeline and the players' glass-to-glass
/// p50/p99 (ms) over the frames received while the link was cut.
fn sample_link(
    live: &streamer::stream::Live,
    relay: &LocalRelay,
    (shaped, plan, recorder): (&ShapedLink, &LinkPlan, &Recorder),
    stop: &AtomicBool,
    started: Instant,
    fps: u32,
) -> Result<(Vec<LinkSample>, Option<P50P99>), RunError> {
    let mut timeline = Vec::new();
    let mut next_step = 1;
    let ids = |players: &[PlayerReport]| -> Vec<Option<u64>> {
        players.iter().map(|p| p.last_frame_id).collect()
    };
    let players = relay.reports();
    let id0 = crate::cli_link::median_id(&ids(&players)).unwrap_or(0.0);
    let mut last_frames: Vec<u64> = players.iter().map(|p| p.frames).collect();
    let mut last_bytes = live.snapshot().bytes;
    let mut last_t = 0.0;
    let mut tick = 1;
    let (t_cap, t_lift) = match crate::shaped::cap_and_lift(&plan.schedule) {
        Some((cap, lift)) => (cap, lift.unwrap_or(f64::INFINITY)),
        None => (f64::INFINITY, f64::INFINITY),
    };
    // The e2e histogram when the cut began, and the frames received since, at the lift.
    let mut at_cap = None;
    let mut capped = None;
    let e2e = || recorder.span("e2e");
    while !stop.load(Ordering::Relaxed) {
        let due = started + Duration::from_millis(tick * crate::shaped::SAMPLE_MS);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        tick += 1;
        let t = started.elapsed().as_secs_f64();
        while next_step < plan.schedule.len() && plan.schedule[next_step].0 <= t {
            shaped.set_rate(plan.schedule[next_step].1)?;
            next_step += 1;
        }
        if t >= t_cap && at_cap.is_none() {
            at_cap = e2e();
        }
        if t >= t_lift && capped.is_none() {
            capped = at_cap.as_ref().and_then(|before| since(e2e(), before));
        }
        let snap = live.snapshot();
        let players = relay.reports();
        let now_frames: Vec<u64> = players.iter().map(|p| p.frames).collect();
        let players_stalled = now_frames
            .iter()
            .zip(&last_frames)
            .filter(|(now, before)| now == before)
            .count() as u32;
        last_frames = now_frames;
        let q = snap.network.unwrap_or_default();
        timeline.push(LinkSample {
            t_ms: (t * 1000.0) as u64,
            link_kbps: crate::shaped::rate_at(&plan.schedule, t),
            target_kbps: snap.target_kbps,
            sent_kbps: (snap.bytes - last_bytes) as f64 * 8.0 / (t - last_t).max(1e-3) / 1000.0,
            acked_kbps: q.acked_rate_kbps,
            queued_ms: q.queued_media_ms,
            players_stalled,
            lag_ms: crate::cli_link::lag_ms(&ids(&players), t, 0.0, id0, fps),
        });
        last_bytes = snap.bytes;
        last_t = t;
    }
    // A cut that lasts to the window's end: the frames received since it began.
    if capped.is_none() {
        capped = at_cap.as_ref().and_then(|before| since(e2e(), before));
    }
    Ok((timeline, capped))
}

/// Sets its flag when dropped (a sampler's stop, on every way out of a window).
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Every [`crate::cpucap::SAMPLE_MS`] while the window runs: steps the quota on schedule and
/// records the frames sent since the last sample.
fn sample_cpu(
    live: &streamer::stream::Live,
    cap: &CpuCap,
    plan: &CpuPlan,
    stop: &AtomicBool,
    started: Instant,
    fps: u32,
) -> Result<CpuFigures, RunError> {
    let mut timeline = Vec::new();
    let mut next_step = 1;
    let mut tick = 1;
    let first = live.snapshot();
    let mut last = (0.0, first.packets);
    while !stop.load(Ordering::Relaxed) {
        let due = started + Duration::from_millis(tick * crate::cpucap::SAMPLE_MS);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        tick += 1;
        let t = started.elapsed().as_secs_f64();
        while next_step < plan.schedule.len() && plan.schedule[next_step].0 <= t {
            cap.set_cores(plan.schedule[next_step].1)
                .map_err(|e| RunError::Protocol(e.to_string()))?;
            next_step += 1;
        }
        let snap = live.snapshot();
        timeline.push(crate::cpucap::CpuSample {
            t_ms: (t * 1000.0) as u64,
            cores: crate::shaped::rate_at(&plan.schedule, t),
            fps: (snap.packets - last.1) as f64 / (t - last.0).max(1e-3),
            behind: snap.drops.falling_behind() - first.drops.falling_behind(),
        });
        last = (t, snap.packets);
    }
    Ok(CpuFigures::of(plan.schedule.clone(), timeline, fps))
}

/// p50 and p99, ms.
type P50P99 = (f64, f64);

/// p50 and p99 (ms) of what a histogram of nanoseconds recorded since `before` (None when
/// nothing was).
fn since(
    now: Option<hdrhistogram::Histogram<u64>>,
    before: &hdrhistogram::Histogram<u64>,
) -> Option<P50P99> {
    let mut h = now?;
    h.subtract(before).ok()?;
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1e6;
    (!h.is_empty()).then(|| (ms(0.5), ms(0.99)))
}

/// What the players saw over the measured window.
fn network_figures(
    before: &[PlayerReport],
    after: &[PlayerReport],
    late: Option<&PlayerReport>,
    sink_before: SinkStats,
    sink_after: SinkStats,
    wall_s: f64,
    fps: u32,
) -> NetworkFigures {
    let players = after.len().max(1) as f64;
    let delivered: u64 = after
        .iter()
        .zip(before)
        .map(|(a, b)| a.bytes - b.bytes)
        .sum();
    let realtime = after
        .iter()
        .zip(before)
        .filter(|(a, b)| (a.frames - b.frames) as f64 / f64::from(fps) / wall_s >= 0.99)
        .count() as u32;
    NetworkFigures {
        players: after.len() as u32,
        sent_kbps: (sink_after.bytes_sent - sink_before.bytes_sent) as f64 * 8.0 / wall_s / 1000.0,
        delivered_kbps: delivered as f64 * 8.0 / wall_s / 1000.0 / players,
        wire_kbps_per_player: 0.0,
        players_realtime: realtime,
        late_join_ms: late.and_then(|r| r.join).map(|d| d.as_secs_f64() * 1000.0),
        late_first_frame_key: late.and_then(|r| r.first_frame_key),
        publisher_dropped: sink_after.dropped - sink_before.dropped,
        reconnects: sink_after.reconnects - sink_before.reconnects,
        server_dropped: 0,
        server_cpu_percent: None,
        players_cpu_percent: None,
        quality: None,
    }
}

/// Waits (at most 2 s) until the relay's players have stopped receiving: every frame the
/// publisher has sent has reached them, so counters read now cover the same frames.
fn settle(relay: &LocalRelay) {
    let deadline = Instant::now() + Duration::from_secs(2);
    let seen = |r: &LocalRelay| -> Vec<(u64, u64)> {
        r.reports().iter().map(|p| (p.frames, p.bytes)).collect()
    };
    let mut last = seen(relay);
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(30));
        let now = seen(relay);
        if now == last {
            return;
        }
        last = now;
    }
}

/// Runs `job` in a child process `exe point`.
///
/// # Errors
/// The child could not be started, failed, or answered with something that is not a result.
pub fn run_in_child(exe: &Path, job: &PointJob) -> Result<PointRun, RunError> {
    let mut child = Command::new(exe)
        .arg("point")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| RunError::Spawn {
            exe: exe.display().to_string(),
            source,
        })?;
    let input = serde_json::to_vec(job).map_err(|e| RunError::Protocol(e.to_string()))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A child that dies early closes its stdin; its exit status says why.
        let _ = stdin.write_all(&input);
    }
    let out = child.wait_with_output().map_err(|source| RunError::Spawn {
        exe: exe.display().to_string(),
        source,
    })?;
    if !out.status.success() {
        return Err(RunError::Child {
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    serde_json::from_slice(&out.stdout).map_err(|e| RunError::Protocol(e.to_string()))
}
