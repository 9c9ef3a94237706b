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

use crate::config::{ConfigError, StreamConfig};
use crate::core::{Core, CoreError, CoreMetrics};
use crate::encode::{EncodeError, Encoder, Packet};
use crate::output::{self, Output, OutputError, Sink};
use crate::pipeline::buffers::{BufferPool, PoolStats, Slot};
use crate::pipeline::format::Ingest;
use crate::pipeline::queue::{FrameQueue, Pushed};
use crate::pipeline::worker::{self, WorkerCounters, WorkerSettings};
use crate::pipeline::{Done, DropCounters, DropReason, Drops, Reorder, RssWatch};
use crate::probe::{Point, Probe};
use crate::render::{RenderError, Renderer};
use crate::source::Scene;
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

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
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "max" => Ok(Pacing::Max),
            "realtime" => Ok(Pacing::Realtime),
            _ => Err(format!("pacing {s:?}: expected `max` or `realtime`")),
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

/// The frame pipeline's own figures.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PipelineStats {
    /// Drops by reason.
    pub drops: Drops,
    /// Buffer pool hits and misses.
    pub pool: PoolStats,
    /// Queue depth seen by each arriving frame: `occupancy[d]` frames found `d` queued.
    pub occupancy: Vec<u64>,
    /// Bytes of the frames in the transport format (jpeg/png), summed.
    pub format_bytes: u64,
    /// Times memory pressure shed load.
    pub pressure_events: u64,
}

impl PipelineStats {
    /// The guide's `bufferHealth`: 1 − the queue's mean fill (1 = the encoder keeps up and the
    /// queue stays empty; 0 = always full).
    pub fn buffer_health(&self) -> f64 {
        let n: u64 = self.occupancy.iter().sum();
        let cap = self.occupancy.len().saturating_sub(1).max(1) as f64;
        if n == 0 {
            return 1.0;
        }
        let mean = self
            .occupancy
            .iter()
            .enumerate()
            .map(|(d, c)| d as f64 * *c as f64)
            .sum::<f64>()
            / n as f64;
        1.0 - mean / cap
    }
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
}

/// State the pipeline's threads share.
struct Shared {
    pool: BufferPool,
    drops: DropCounters,
    pool_copies: AtomicU64,
    format_bytes: AtomicU64,
    pressure_events: AtomicU64,
    occupancy: Vec<AtomicU64>,
    rss: RssWatch,
    /// What a live view reads while the stream runs (see [`Live`]).
    sent_packets: AtomicU64,
    sent_bytes: AtomicU64,
    queue_depth: AtomicU64,
    queue_capacity: u64,
}

/// A view of a running stream for another thread (the metrics endpoint): counters the stream
/// publishes as it goes.
#[derive(Clone)]
pub struct Live(std::sync::Arc<Shared>);

/// What [`Live`] reads.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LiveSnapshot {
    /// Packets and bytes sent so far.
    pub packets: u64,
    pub bytes: u64,
    /// Drops by reason so far.
    pub drops: Drops,
    /// Frames in the queue as the last frame arrived, and the queue's capacity.
    pub queue_depth: u64,
    pub queue_capacity: u64,
    /// Resident memory now, bytes.
    pub rss_bytes: u64,
}

impl Live {
    /// The counters now.
    pub fn snapshot(&self) -> LiveSnapshot {
        let s = &self.0;
        LiveSnapshot {
            packets: s.sent_packets.load(Ordering::Relaxed),
            bytes: s.sent_bytes.load(Ordering::Relaxed),
            drops: s.drops.snapshot(),
            queue_depth: s.queue_depth.load(Ordering::Relaxed),
            queue_capacity: s.queue_capacity,
            rss_bytes: s.rss.rss(),
        }
    }
}

/// A running stream.
pub struct Stream<'p, P: Probe> {
    cfg: StreamConfig,
    probe: &'p P,
    scene: Scene,
    core: Core,
    renderer: Renderer,
    encoder: Encoder,
    sink: Box<dyn Sink>,
    shared: std::sync::Arc<Shared>,
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
        let p = &cfg.pipeline;
        probe.mark(Point::RenderSetupStart, 0);
        let scene = Scene::new(v.width, v.height);
        let mut core = Core::new(cfg)?;
        let renderer = crate::render::open(cfg)?;
        core.setup(probe)?;
        probe.mark(Point::RenderSetupEnd, 0);
        let encoder = Encoder::open(cfg, output.needs_global_header())?;
        // Slots in use at once: the queue, one per worker, the reorder window, the renderer's
        // round.
        let slots = (p.max_queue_size + 3 * p.pool_size + 1) as usize + renderer.round_size();
        // Slots are made on first need and kept: a live stream whose queue stays short holds
        // only the few it uses.
        let pool = BufferPool::new(v.width, v.height, slots, p.buffer_pool);
        let sink = output::open(output, &encoder)?;
        Ok(Stream {
            cfg: cfg.clone(),
            probe,
            scene,
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
                rss: RssWatch::new(),
                sent_packets: AtomicU64::new(0),
                sent_bytes: AtomicU64::new(0),
                queue_depth: AtomicU64::new(0),
                queue_capacity: p.max_queue_size.into(),
            }),
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
        let (probe, shared, scene) = (self.probe, &self.shared, &self.scene);
        let stage = (&mut self.core, &mut self.renderer);
        let (encoder, sink, counters) = (&mut self.encoder, &mut self.sink, &mut self.counters);
        let live = pacing == Pacing::Realtime;
        let settings = WorkerSettings::of(cfg, live);
        let tally = WorkerCounters {
            drops: &shared.drops,
            format_bytes: &shared.format_bytes,
        };
        std::thread::scope(|sc| {
            let (queue, reorder, abort, tally) = (&queue, &reorder, &abort, &tally);
            let renderer = std::thread::Builder::new()
                .name("render".into())
                .spawn_scoped(sc, move || {
                    // Closes the queue however the renderer ends, a panic included, so the
                    // workers and the encoder finish instead of waiting for frames forever.
                    struct CloseOnExit<'q>(&'q FrameQueue<Slot>);
                    impl Drop for CloseOnExit<'_> {
                        fn drop(&mut self) {
                            self.0.close();
                        }
                    }
                    let _close = CloseOnExit(queue);
                    render(
                        cfg,
                        scene,
                        stage,
                        shared,
                        queue,
                        probe,
                        abort,
                        first..first + frames,
                        start,
                        pacing,
                    )
                })
                .map_err(|e| StreamError::Pipeline(format!("starting the renderer: {e}")))?;
            for w in 0..workers {
                let started = std::thread::Builder::new()
                    .name(format!("pipeline-{w}"))
                    .spawn_scoped(sc, move || {
                        worker::work(settings, tally, queue, reorder, probe);
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
            let result =
                encode_in_order(cfg, shared, reorder, encoder, sink, counters, probe, live);
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
            captured.1.map_err(StreamError::from)
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

    /// The render stage's figures so far.
    pub fn render_metrics(&self) -> crate::render::RenderMetrics {
        self.renderer.metrics()
    }

    /// The core stage, to time its parts (the `core` suite).
    pub fn core_mut(&mut self) -> &mut Core {
        &mut self.core
    }

    /// The output's counters so far.
    pub fn sink_stats(&self) -> crate::output::SinkStats {
        self.sink.stats()
    }

    /// The configuration the stream runs.
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
        self.encoder
            .finish(probe, |p| deliver(probe, sink, counters, p, &mut failed))?;
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
            notes: self.encoder.notes().to_vec(),
        })
    }
}

/// The renderer's loop: paces, draws each frame into a pooled slot and queues it. On the GPU
/// with `maxConcurrent` > 1 frames go in rounds of that many, in flight together. Returns how
/// many frames it queued, and the renderer's error if it stopped on one.
#[allow(clippy::too_many_arguments)]
fn render<P: Probe>(
    cfg: &StreamConfig,
    scene: &Scene,
    (core, renderer): (&mut Core, &mut Renderer),
    shared: &Shared,
    queue: &FrameQueue<Slot>,
    probe: &P,
    abort: &AtomicBool,
    ids: std::ops::Range<u64>,
    start: Instant,
    pacing: Pacing,
) -> (u64, Result<(), RenderError>) {
    let fps = cfg.core.viewport.fps;
    let p = &cfg.pipeline;
    let drop_after = Duration::from_millis(cfg.encoder.pipeline.drop_threshold.into());
    let live = pacing == Pacing::Realtime;
    let queue_limit = (queue.capacity() * p.pressure_queue_percent as usize).div_ceil(100);
    let rss_limit = u64::from(p.pressure_rss_mb) << 20;
    let round_size = renderer.round_size();
    let mut round: Vec<(u64, Slot)> = Vec::with_capacity(round_size);
    let mut captured = 0;
    let mut open = true;
    for id in ids {
        if abort.load(Ordering::Relaxed) || !open {
            break;
        }
        if live {
            let due = start + Duration::from_secs_f64(id as f64 / f64::from(fps));
            let now = Instant::now();
            if now < due {
                std::thread::sleep(due - now);
            } else if now - due > drop_after {
                shared.drops.count(DropReason::Behind);
                continue;
            }
            let depth = queue.len();
            let over_rss = rss_limit > 0 && id % 8 == 0 && shared.rss.rss() > rss_limit;
            if over_rss {
                // Keep what the queue and workers need; give the rest back.
                shared.pool.trim(queue.capacity());
                renderer.trim();
                core.trim();
                shared.pressure_events.fetch_add(1, Ordering::Relaxed);
            }
            if over_rss || (p.pressure_queue_percent < 100 && depth >= queue_limit) {
                shared.drops.count(DropReason::Pressure);
                continue;
            }
        }
        probe.mark(Point::FrameCapture, id);
        let mut slot = shared.pool.take(id);
        if crate::encode::make_writable(&mut slot.picture) {
            shared.pool_copies.fetch_add(1, Ordering::Relaxed);
        }
        probe.mark(Point::RenderFrameStart, id);
        scene.draw(id, crate::encode::frame_planes(&mut slot.picture));
        if round_size == 1 {
            let composed = renderer.render(
                core,
                id,
                &mut crate::encode::frame_planes(&mut slot.picture),
                probe,
            );
            if let Err(e) = composed {
                shared.pool.give(slot);
                return (captured, Err(e));
            }
            open = deliver_frame(shared, queue, probe, live, id, slot);
            captured += u64::from(open);
            continue;
        }
        round.push((id, slot));
        if round.len() == round_size {
            match render_round((core, renderer), shared, queue, probe, live, &mut round) {
                Ok((n, still_open)) => {
                    captured += n;
                    open = still_open;
                }
                Err(e) => return (captured, Err(e)),
            }
        }
    }
    if !round.is_empty() {
        if abort.load(Ordering::Relaxed) || !open {
            for (_, slot) in round.drain(..) {
                shared.pool.give(slot);
            }
        } else {
            match render_round((core, renderer), shared, queue, probe, live, &mut round) {
                Ok((n, _)) => captured += n,
                Err(e) => return (captured, Err(e)),
            }
        }
    }
    (captured, Ok(()))
}

/// Renders a round of drawn frames on the GPU and queues them in order; returns how many were
/// queued and whether the queue is still open. The slots go back to the pool on an error.
fn render_round<P: Probe>(
    (core, renderer): (&mut Core, &mut Renderer),
    shared: &Shared,
    queue: &FrameQueue<Slot>,
    probe: &P,
    live: bool,
    round: &mut Vec<(u64, Slot)>,
) -> Result<(u64, bool), RenderError> {
    let mut planes: Vec<(u64, crate::source::Planes<'_>)> = round
        .iter_mut()
        .map(|(id, s)| (*id, crate::encode::frame_planes(&mut s.picture)))
        .collect();
    let rendered = renderer.render_round(core, &mut planes, probe);
    drop(planes);
    if let Err(e) = rendered {
        for (_, slot) in round.drain(..) {
            shared.pool.give(slot);
        }
        return Err(e);
    }
    let mut queued = 0;
    let mut open = true;
    for (id, slot) in round.drain(..) {
        if open {
            open = deliver_frame(shared, queue, probe, live, id, slot);
            queued += u64::from(open);
        } else {
            shared.pool.give(slot);
        }
    }
    Ok((queued, open))
}

/// Marks a rendered frame and queues it, counting what the queue's policy drops; false when
/// the queue is closed (the slot went back to the pool).
fn deliver_frame<P: Probe>(
    shared: &Shared,
    queue: &FrameQueue<Slot>,
    probe: &P,
    live: bool,
    id: u64,
    slot: Slot,
) -> bool {
    probe.mark(Point::RenderFrameEnd, id);
    let depth = queue.len().min(shared.occupancy.len() - 1);
    shared.occupancy[depth].fetch_add(1, Ordering::Relaxed);
    shared.queue_depth.store(depth as u64, Ordering::Relaxed);
    probe.mark(Point::PipelineQueueStart, id);
    let pushed = if live {
        queue.push(slot)
    } else {
        queue.push_with(slot, crate::config::DropPolicy::Block)
    };
    match pushed {
        Pushed::Queued => true,
        Pushed::DroppedOldest(old) | Pushed::Refused(old) => {
            shared.drops.count(DropReason::QueueFull);
            shared.pool.give(old);
            true
        }
        Pushed::Closed(s) => {
            shared.pool.give(s);
            false
        }
    }
}

/// The encoder's loop on the calling thread: frames back in order, decoded if need be, encoded,
/// sent; slots back to the pool.
#[allow(clippy::too_many_arguments)]
fn encode_in_order<P: Probe>(
    cfg: &StreamConfig,
    shared: &Shared,
    reorder: &Reorder<Slot>,
    encoder: &mut Encoder,
    sink: &mut Box<dyn Sink>,
    counters: &mut Counters,
    probe: &P,
    live: bool,
) -> Result<(), StreamError> {
    let v = &cfg.core.viewport;
    let max_latency = Duration::from_millis(cfg.encoder.pipeline.max_latency.into());
    let copy = !cfg.encoder.pipeline.zero_copy;
    let mut ingest = Ingest::new(cfg.pipeline.format, v.width, v.height)
        .map_err(|e| StreamError::Pipeline(e.to_string()))?;
    while let Some(done) = reorder.take() {
        let mut slot = match done {
            Done::Frame(s) => s,
            Done::Skip(s) => {
                shared.pool.give(s);
                continue;
            }
            Done::Failed(s, why) => {
                shared.pool.give(s);
                return Err(StreamError::Pipeline(why));
            }
        };
        if live && slot.captured.elapsed() > max_latency {
            shared.drops.count(DropReason::Late);
            shared.pool.give(slot);
            continue;
        }
        let id = slot.id;
        probe.mark(Point::EncodeStart, id);
        let ingested = ingest.ingest(&mut slot);
        let mut failed = None;
        let encoded = ingested
            .map_err(|e| StreamError::Pipeline(e.to_string()))
            .and_then(|()| {
                encoder
                    .encode_frame(id, &mut slot.picture, copy, probe, |pkt| {
                        deliver(probe, sink, counters, pkt, &mut failed)
                    })
                    .map_err(StreamError::from)
            });
        shared.pool.give(slot);
        shared
            .sent_packets
            .store(counters.packets, Ordering::Relaxed);
        shared.sent_bytes.store(counters.bytes, Ordering::Relaxed);
        encoded?;
        if let Some(e) = failed {
            return Err(e.into());
        }
    }
    Ok(())
}
/// Sends one packet to the sink, marking `network:send` and counting it; keeps the first error.
fn deliver<P: Probe>(
    probe: &P,
    sink: &mut Box<dyn Sink>,
    counters: &mut Counters,
    packet: Packet<'_>,
    failed: &mut Option<OutputError>,
) {
    if failed.is_some() {
        return;
    }
    let (id, size, key) = (packet.frame, packet.data().len() as u64, packet.is_key());
    probe.mark(Point::NetworkSendStart, id);
    match sink.send(packet) {
        Ok(()) => {
            probe.mark(Point::NetworkSendEnd, id);
            counters.packets += 1;
            counters.bytes += size;
            counters.keyframes += u64::from(key);
        }
        Err(e) => *failed = Some(e),
    }
}
