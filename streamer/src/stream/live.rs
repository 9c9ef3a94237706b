//! What the stream's threads share while it runs ([`Shared`]: the buffer pool, drop counters,
//! queue occupancy, memory watch and the counters a live view reads), and the figures read
//! from it: [`PipelineStats`] at the end, [`LiveSnapshot`] while it runs.

use crate::pipeline::buffers::{BufferPool, PoolStats};
use crate::pipeline::{DropCounters, Drops, RssWatch};
use std::sync::atomic::{AtomicU64, Ordering};

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

/// State the pipeline's threads share.
pub(super) struct Shared {
    /// The source's audio packets read so far and not yet sent (the render thread adds, the
    /// sending side takes them before each video packet); None for a silent source.
    pub(super) audio: Option<std::sync::Mutex<Vec<crate::source::AudioPacket>>>,
    pub(super) pool: BufferPool,
    pub(super) drops: DropCounters,
    pub(super) pool_copies: AtomicU64,
    pub(super) format_bytes: AtomicU64,
    pub(super) pressure_events: AtomicU64,
    pub(super) occupancy: Vec<AtomicU64>,
    pub(super) rss: RssWatch,
    /// Resident bytes when the stream opened (`pipeline.pressureGrowthMb` counts from it).
    pub(super) rss_at_open: u64,
    /// What a live view reads while the stream runs (see [`Live`]).
    pub(super) sent_packets: AtomicU64,
    pub(super) sent_bytes: AtomicU64,
    pub(super) queue_depth: AtomicU64,
    pub(super) queue_capacity: u64,
    /// CPU time per stage.
    pub(super) cpu: super::stage_cpu::CpuCounters,
    /// The output connection's quality (RTMP).
    pub(super) network: Option<crate::adapt::network::NetQualityView>,
    /// With adaptive bitrate: the encoder's target now (kbit/s) and the changes made so far.
    pub(super) target_kbps: AtomicU64,
    pub(super) adapt_changes: AtomicU64,
    /// Which workers take frames, and (`adaptive.workers`) what decides it and what it did.
    pub(super) gate: crate::adapt::worker_scaling::WorkerGate,
    pub(super) scaler: Option<std::sync::Mutex<crate::adapt::worker_scaling::WorkerScaler>>,
    pub(super) worker_events: std::sync::Mutex<Vec<crate::adapt::AdaptEvent>>,
    /// When the stream opened: adaptation events count from here.
    pub(super) epoch: std::time::Instant,
    /// Asked to stop (see [`Live::stop`]): no new frames are captured.
    pub(super) stop: std::sync::atomic::AtomicBool,
}

/// A view of a running stream for another thread (the metrics endpoint): counters the stream
/// publishes as it goes.
#[derive(Clone)]
pub struct Live(pub(super) std::sync::Arc<Shared>);

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
    /// The output connection's latest quality sample (RTMP, after its first frame).
    pub network: Option<crate::adapt::network::NetQuality>,
    /// With adaptive bitrate: the encoder's target bitrate now (kbit/s; 0 without) and the
    /// changes the controller has made.
    pub target_kbps: u64,
    pub adapt_changes: u64,
    /// Workers taking frames now.
    pub workers_active: u32,
}

impl Live {
    /// Asks the stream to stop early (on Ctrl-C, say): no new frame is captured, the frames in
    /// flight are encoded and sent, and [`super::Stream::run`] returns as if done; then
    /// [`super::Stream::finish`] flushes the encoder and closes the output properly.
    pub fn stop(&self) {
        self.0.stop.store(true, Ordering::Relaxed);
    }

    /// Whether [`Live::stop`] was asked.
    pub fn stopped(&self) -> bool {
        self.0.stop.load(Ordering::Relaxed)
    }

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
            network: s.network.as_ref().and_then(|n| n.latest()),
            target_kbps: s.target_kbps.load(Ordering::Relaxed),
            adapt_changes: s.adapt_changes.load(Ordering::Relaxed)
                + s.worker_events.lock().map_or(0, |e| e.len() as u64),
            workers_active: s.gate.active(),
        }
    }
}
