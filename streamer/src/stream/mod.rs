//! Assembles the stages for one `StreamConfig` and runs them: the only module that knows them all.
//!
//! Three kinds of thread per [`Stream::run`]: the renderer draws each frame (`frame:capture`,
//! `render:frame`) into a slot from the buffer pool and queues it (`pipeline:queue:start`);
//! `poolSize` workers take frames out (`pipeline:process:start`) and convert them to the
//! pipeline's format (`pipeline:process:end`); the calling thread reads the workers' results
//! back in order, decodes jpeg/png (`encode:start`), encodes (`encode:end`) — straight from the
//! slot with `zeroCopy`, through a fresh frame without — and sends the packets (`network:send`).
//! With realtime pacing each frame waits for its due time on the stream clock, and frames that
//! cannot be on time are dropped by the pipeline's rules and counted by reason (see
//! [`crate::pipeline`]), so a slow stage sheds frames rather than drifting behind.
//!
//! The rooms: this file opens the stages and runs the threads; `capture` is the renderer
//! thread's loop (pacing, shedding, draw, render, queue), the workers' loop is
//! [`crate::pipeline::worker`], `send` is the encoder's loop (in order, encode, send), and
//! `shared` holds what the threads share and the figures read from it.

mod capture;
mod interrupt;
mod live;
mod observed;
mod send;
mod stage_cpu;

use crate::adapt::worker_scaling::WorkerGate;
use crate::config::{ConfigError, StreamConfig};
use crate::core::{Core, CoreError, CoreMetrics};
use crate::encode::{EncodeError, Encoder, Settings as EncodeSettings};
use crate::output::{self, Output, OutputError, Sink};
use crate::pipeline::buffers::{BufferPool, Slot};
use crate::pipeline::queue::FrameQueue;
use crate::pipeline::worker::{self, WorkerCounters, WorkerSettings};
use crate::pipeline::{Done, DropCounters, Drops, Reorder, RssWatch};
use crate::probe::{Point, Probe};
use crate::render::{RenderError, Renderer};
use crate::source::Source;
use capture::Capture;
pub use interrupt::Interrupt;
use live::Shared;
pub use live::{Live, LiveSnapshot, PipelineStats};
pub use observed::{RunFacts, observed, peak_rss_bytes};
use send::{Send, deliver};
pub use stage_cpu::StageCpu;
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

/// Settings this stream has nothing to act on, or acts on otherwise than asked, each said as
/// such: the hardware decoder and scaler (`encoder.hwaccel.decode`, `.scaling`) act on a
/// decoded input; the synthetic source is drawn, not decoded; a file is decoded on the device
/// where one opens (its own note says so, or why not), a feed in software; pictures are
/// scaled in software (swscale) either way.
fn no_effect(cfg: &StreamConfig, source: &Source) -> Vec<String> {
    let h = &cfg.encoder.hwaccel;
    let file = matches!(source, Source::File(_));
    [("decode", h.decode), ("scaling", h.scaling)]
        .into_iter()
        .filter_map(|(what, on)| match (on, source.decodes()) {
            (None, _) | (Some(false), true) => None,
            (Some(_), false) => Some(format!(
                "encoder.hwaccel.{what}: no effect: nothing is decoded (a synthetic source)"
            )),
            (Some(true), true) if what == "decode" && file => None,
            (Some(true), true) if what == "decode" => Some(
                "encoder.hwaccel.decode = true: a feed is decoded in software (libavcodec)"
                    .to_string(),
            ),
            (Some(true), true) => Some(
                "encoder.hwaccel.scaling = true: scaled in software (swscale): no hardware \
                 scaler is built"
                    .to_string(),
            ),
        })
        .collect()
}

/// `cfg` as a stream runs it: with a file source, at the file's own frame rate (which
/// replaces `core.viewport.fps`). What sets up beside a stream (players that count frames by
/// their timestamps, the diagnosis) reads this one.
///
/// # Errors
/// The source's file cannot be read.
pub fn effective_config(cfg: &StreamConfig) -> Result<StreamConfig, StreamError> {
    let mut out = cfg.clone();
    if let Some(fps) = Source::own_fps(&cfg.source)? {
        out.core.viewport.fps = fps;
    }
    Ok(out)
}

/// How frames are clocked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pacing {
    /// As fast as the stages go: a throughput measurement.
    Max,
    /// At the configured frame rate, as a live source would deliver frames.
    Realtime,
}

impl FromStr for Pacing {
    type Err = crate::config::ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "max" => Ok(Pacing::Max),
            "realtime" => Ok(Pacing::Realtime),
            _ => Err(crate::config::ParseError(format!(
                "pacing {s:?}: expected `max` or `realtime`"
            ))),
        }
    }
}

impl fmt::Display for Pacing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Pacing::Max => "max",
            Pacing::Realtime => "realtime",
        })
    }
}

/// Anything that stops a stream.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Encode(#[from] EncodeError),
    #[error(transparent)]
    Output(#[from] OutputError),
    #[error("frame pipeline: {0}")]
    Pipeline(String),
    #[error(transparent)]
    Core(#[from] CoreError),
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error(transparent)]
    Source(#[from] crate::source::SourceError),
}

/// Counters of a stream so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Frames rendered and queued.
    pub captured: u64,
    /// Frames dropped, all reasons (see [`Summary::drops`] and [`Stream::drops`]).
    pub dropped: u64,
    /// Encoded packets written to the output.
    pub packets: u64,
    /// Keyframes among them.
    pub keyframes: u64,
    /// Encoded bytes written.
    pub bytes: u64,
}

/// What a finished stream reports.
#[derive(Debug, Clone)]
pub struct Summary {
    pub counters: Counters,
    /// The encoder that ran (`libx264`, or a hardware one).
    pub encoder: String,
    /// Media bitrate: encoded bits over the encoded frames' duration, kbit/s.
    pub bitrate_kbps: f64,
    /// Pooled frames libavcodec still held and that had to be copied (zero copy broken).
    pub pool_copies: u64,
    /// What the output reports: bytes on the wire, frames it could not deliver, reconnects.
    pub sink: crate::output::SinkStats,
    /// The frame pipeline's drops, buffer pool and queue figures.
    pub pipeline: PipelineStats,
    /// The core stage's figures (the guide's CoreMetrics).
    pub core: CoreMetrics,
    /// The render stage's figures (the guide's RenderMetrics): which backend ran, and how.
    pub render: crate::render::RenderMetrics,
    /// Things a reader of the results should know.
    pub notes: Vec<String>,
    /// The output connection's last quality sample (RTMP outputs).
    pub network: Option<crate::adapt::network::NetQuality>,
    /// Every change adaptive bitrate made, in order (empty when off).
    pub adaptation: Vec<crate::adapt::AdaptEvent>,
}

/// A running stream.
pub struct Stream<'p, P: Probe> {
    cfg: StreamConfig,
    probe: &'p P,
    source: Source,
    /// What opening the source found (the file, its rate, a viewport rate it replaced).
    source_notes: Vec<String>,
    core: Core,
    renderer: Renderer,
    encoder: Encoder,
    sink: Box<dyn Sink>,
    shared: std::sync::Arc<Shared>,
    /// The renderer's helper threads (the compositor's pool, the GPU driver's): those that
    /// opening the renderer started.
    render_threads: std::collections::BTreeSet<u32>,
    /// libx264's own threads: those that opening the encoder started.
    /// Adaptive bitrate (`adaptive.bitrate.enabled` with a network output).
    adapting: Option<send::Adapting>,
    scaling: Option<send::QualityScaling>,
    next_frame: u64,
    clock: Option<Instant>,
    counters: Counters,
}

impl<'p, P: Probe + Sync> Stream<'p, P> {
    /// Validates `cfg`, sets up every stage and opens `output`.
    ///
    /// # Errors
    /// The configuration is invalid, the encoder cannot be opened, or the output cannot be
    /// created.
    pub fn open(cfg: &StreamConfig, output: &Output, probe: &'p P) -> Result<Self, StreamError> {
        cfg.validate()?;
        let v = &cfg.core.viewport;
        let hw = &cfg.encoder.hwaccel;
        let source = Source::open(&cfg.source, hw, (v.width, v.height), v.fps, |url| {
            Ok(Box::new(crate::rtmp::ingest::Feed::play(url)?))
        })?;
        let source_notes = source.notes(&cfg.source, cfg.core.viewport.fps);
        // A file runs at its own rate.
        let mut cfg = cfg.clone();
        cfg.core.viewport.fps = source.fps().unwrap_or(cfg.core.viewport.fps);
        let cfg = &cfg;
        let v = &cfg.core.viewport;
        let p = &cfg.pipeline;
        probe.mark(Point::RenderSetupStart, 0);
        let mut core = Core::new(&cfg.core)?;
        let (renderer, render_threads) = crate::clock::started_by(|| crate::render::open(cfg));
        let renderer = renderer?;
        core.setup(probe)?;
        probe.mark(Point::RenderSetupEnd, 0);
        let (encoder, x264_threads) = crate::clock::started_by(|| {
            Encoder::open(&EncodeSettings::of(cfg), output.needs_global_header())
        });
        let encoder = encoder?;
        // Slots in use at once: the queue, one per worker, the reorder window, the renderer's
        // round.
        let slots = (p.max_queue_size + 3 * p.pool_size + 1) as usize + renderer.round_size();
        // Slots are made on first need and kept: a live stream whose queue stays short holds
        // only the few it uses.
        let pool = BufferPool::new(v.width, v.height, slots, p.buffer_pool);
        let sink = output::open(output, &encoder, source.audio())?;
        let audio = source.audio().is_some();
        let network = sink.net_quality();
        let epoch = std::time::Instant::now();
        let adapting = send::Adapting::of(cfg, network.clone(), epoch);
        let quality_scaling = send::QualityScaling::of(cfg, output.needs_global_header(), epoch);
        let scaling = &cfg.adaptive.workers;
        let scaler = scaling
            .enabled
            .then(|| crate::adapt::worker_scaling::WorkerScaler::new(scaling.min, p.pool_size));
        let cpu = stage_cpu::CpuCounters::default();
        cpu.x264_opened(x264_threads);
        Ok(Stream {
            cfg: cfg.clone(),
            probe,
            source,
            source_notes,
            core,
            renderer,
            encoder,
            sink,
            shared: std::sync::Arc::new(Shared {
                pool,
                drops: DropCounters::default(),
                pool_copies: AtomicU64::new(0),
                format_bytes: AtomicU64::new(0),
                pressure_events: AtomicU64::new(0),
                occupancy: (0..=p.max_queue_size).map(|_| AtomicU64::new(0)).collect(),
                rss_at_open: RssWatch::new().rss(),
                rss: RssWatch::new(),
                sent_packets: AtomicU64::new(0),
                sent_bytes: AtomicU64::new(0),
                queue_depth: AtomicU64::new(0),
                queue_capacity: p.max_queue_size.into(),
                cpu,
                target_kbps: AtomicU64::new(
                    adapting.as_ref().map_or(0, |a| a.target_kbps().into()),
                ),
                adapt_changes: AtomicU64::new(0),
                gate: crate::adapt::worker_scaling::WorkerGate::new(
                    scaler.as_ref().map_or(p.pool_size, |s| s.active()),
                ),
                scaler: scaler.map(std::sync::Mutex::new),
                worker_events: std::sync::Mutex::new(Vec::new()),
                epoch,
                stop: std::sync::atomic::AtomicBool::new(false),
                network,
                audio: audio.then(|| std::sync::Mutex::new(Vec::new())),
            }),
            adapting,
            scaling: quality_scaling,
            render_threads,
            next_frame: 0,
            clock: None,
            counters: Counters::default(),
        })
    }

    /// Runs the next `frames` frame slots through every stage, and waits until they are
    /// encoded and sent (or dropped and counted).
    ///
    /// # Errors
    /// Encoding, format conversion or writing failed.
    pub fn run(&mut self, frames: u64, pacing: Pacing) -> Result<(), StreamError> {
        let start = *self.clock.get_or_insert_with(Instant::now);
        let first = self.next_frame;
        self.next_frame += frames;
        let cfg = &self.cfg;
        let p = &cfg.pipeline;
        let workers = p.pool_size as usize;
        let queue: FrameQueue<Slot> = FrameQueue::new(p.max_queue_size as usize, p.drop_policy);
        // At most one frame per worker outside the queue: the rest wait in the queue.
        let reorder: Reorder<Slot> = Reorder::new(workers, workers);
        let abort = AtomicBool::new(false);
        let (probe, shared) = (self.probe, &self.shared);
        let stage = (&mut self.source, &mut self.core, &mut self.renderer);
        let (encoder, sink, counters) = (&mut self.encoder, &mut self.sink, &mut self.counters);
        let adapting = &mut self.adapting;
        let scaling = &mut self.scaling;
        let live = pacing == Pacing::Realtime;
        let settings = WorkerSettings::of(cfg, live);
        let tally = WorkerCounters {
            drops: &shared.drops,
            format_bytes: &shared.format_bytes,
            gate: &shared.gate,
        };
        std::thread::scope(|sc| {
            let (queue, reorder, abort, tally) = (&queue, &reorder, &abort, &tally);
            let renderer = std::thread::Builder::new()
                .name("render".into())
                .spawn_scoped(sc, move || {
                    // Closes the queue however the renderer ends, a panic included, so the
                    // workers and the encoder finish instead of waiting for frames forever.
                    struct CloseOnExit<'q>(&'q FrameQueue<Slot>, &'q WorkerGate);
                    impl Drop for CloseOnExit<'_> {
                        fn drop(&mut self) {
                            self.0.close();
                            // Parked workers look again and see the queue closed.
                            self.1.nudge();
                        }
                    }
                    let _close = CloseOnExit(queue, &shared.gate);
                    let _cpu = stage_cpu::ThreadClock::start(&shared.cpu.render_ns);
                    let capture = Capture {
                        shared,
                        queue,
                        probe,
                        abort,
                        start,
                        pacing,
                        fps: cfg.core.viewport.fps,
                    };
                    capture.run(cfg, stage, first..first + frames)
                })
                .map_err(|e| StreamError::Pipeline(format!("starting the renderer: {e}")))?;
            for w in 0..workers {
                let started = std::thread::Builder::new()
                    .name(format!("pipeline-{w}"))
                    .spawn_scoped(sc, move || {
                        let _cpu = stage_cpu::ThreadClock::start(&shared.cpu.workers_ns);
                        worker::work(w as u32, settings, tally, queue, reorder, probe);
                        reorder.worker_done();
                    });
                if let Err(e) = started {
                    abort.store(true, Ordering::Relaxed);
                    queue.close();
                    for _ in w..workers {
                        reorder.worker_done();
                    }
                    let _ = renderer.join();
                    while reorder.take().is_some() {}
                    return Err(StreamError::Pipeline(format!("starting worker {w}: {e}")));
                }
            }
            let mut send = Send {
                encoder,
                sink,
                counters: &mut *counters,
                adapting: adapting.as_mut(),
                scaling: scaling.as_mut(),
            };
            let result = {
                let _cpu = stage_cpu::ThreadClock::start(&shared.cpu.encode_ns);
                send.run(cfg, shared, reorder, probe, live)
            };
            if result.is_err() {
                abort.store(true, Ordering::Relaxed);
                queue.close();
                while let Some(d) = reorder.take() {
                    let (Done::Frame(s) | Done::Skip(s) | Done::Failed(s, _)) = d;
                    shared.pool.give(s);
                }
            }
            let captured = renderer
                .join()
                .map_err(|_| StreamError::Pipeline("the renderer panicked".into()))?;
            counters.captured += captured.0;
            result?;
            captured.1
        })?;
        Ok(())
    }

    /// Counters so far.
    pub fn counters(&self) -> Counters {
        Counters {
            dropped: self.shared.drops.snapshot().total(),
            ..self.counters
        }
    }

    /// A view of this stream's counters for another thread, live while it runs.
    pub fn live(&self) -> Live {
        Live(std::sync::Arc::clone(&self.shared))
    }

    /// Drops by reason so far.
    pub fn drops(&self) -> Drops {
        self.shared.drops.snapshot()
    }

    /// The pipeline's figures so far.
    pub fn pipeline_stats(&self) -> PipelineStats {
        let s = &self.shared;
        PipelineStats {
            drops: s.drops.snapshot(),
            pool: s.pool.stats(),
            occupancy: s
                .occupancy
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .collect(),
            format_bytes: s.format_bytes.load(Ordering::Relaxed),
            pressure_events: s.pressure_events.load(Ordering::Relaxed),
        }
    }

    /// The core stage's figures so far.
    pub fn core_metrics(&self) -> CoreMetrics {
        let (composition, grouped) = self.renderer.composition();
        self.core.metrics(composition, grouped)
    }

    /// The core stage, to time its parts (the `core` suite).
    pub fn core_mut(&mut self) -> &mut Core {
        &mut self.core
    }

    /// The output's counters so far.
    pub fn sink_stats(&self) -> crate::output::SinkStats {
        self.sink.stats()
    }

    /// CPU time per stage so far ([`StageCpu`]); take two and [`StageCpu::since`] for a
    /// window's.
    pub fn stage_cpu(&self) -> StageCpu {
        self.shared.cpu.snapshot(&self.render_threads)
    }

    /// What the source has done so far (pictures decoded, a file's loops).
    pub fn source_stats(&self) -> crate::source::SourceStats {
        self.source.stats()
    }

    /// The configuration the stream runs (with a file source, at the file's frame rate).
    pub fn config(&self) -> &StreamConfig {
        &self.cfg
    }

    /// Flushes the encoder, completes the output, and reports.
    ///
    /// # Errors
    /// Flushing or completing the output failed.
    pub fn finish(mut self) -> Result<Summary, StreamError> {
        let mut failed = None;
        let (probe, sink, counters) = (self.probe, &mut self.sink, &mut self.counters);
        let shared = &*self.shared;
        {
            let _cpu = stage_cpu::ThreadClock::start(&shared.cpu.encode_ns);
            self.encoder.finish(probe, |p| {
                deliver(probe, sink, counters, p, shared, &mut failed)
            })?;
        }
        if let Some(e) = failed {
            return Err(e.into());
        }
        self.sink.finish()?;
        let c = self.counters();
        let seconds = c.packets as f64 / f64::from(self.cfg.core.viewport.fps);
        let bitrate_kbps = if seconds > 0.0 {
            c.bytes as f64 * 8.0 / seconds / 1000.0
        } else {
            0.0
        };
        let pipeline = self.pipeline_stats();
        Ok(Summary {
            counters: c,
            encoder: self.encoder.name().to_string(),
            bitrate_kbps,
            pool_copies: self.encoder.pool_copies()
                + self.shared.pool_copies.load(Ordering::Relaxed),
            sink: self.sink.stats(),
            pipeline,
            core: self.core_metrics(),
            render: self.renderer.metrics(),
            notes: self
                .encoder
                .notes()
                .iter()
                .cloned()
                .chain(self.source_notes.iter().cloned())
                .chain(no_effect(&self.cfg, &self.source))
                .collect(),
            network: self.shared.network.as_ref().and_then(|n| n.latest()),
            adaptation: {
                let mut all = self
                    .adapting
                    .as_ref()
                    .map(|a| a.events.clone())
                    .unwrap_or_default();
                all.extend(self.scaling.iter().flat_map(|q| q.events.iter().cloned()));
                all.extend(
                    self.shared
                        .worker_events
                        .lock()
                        .map(|e| e.clone())
                        .unwrap_or_default(),
                );
                all.sort_by_key(|e| e.t_ms);
                all
            },
        })
    }
}
