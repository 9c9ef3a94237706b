//! A worker of the frame pipeline: takes frames out of the queue in order of arrival, drops
//! the ones that waited too long (live pacing), converts the rest to the pipeline's format and
//! files each result in the reorder window for the encoder. `poolSize` of them run at once.

use super::buffers::Slot;
use super::format::Converter;
use super::queue::FrameQueue;
use super::{Done, DropCounters, DropReason, Reorder};
use crate::adapt::worker_scaling::WorkerGate;
use crate::config::{FrameFormat, StreamConfig};
use crate::probe::{Point, Probe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What a worker needs to know of the configuration.
#[derive(Debug, Clone, Copy)]
pub struct WorkerSettings {
    /// `pipeline.format` and `pipeline.quality` (JPEG).
    pub format: FrameFormat,
    pub jpeg_quality: u32,
    /// The picture's size (`core.viewport`).
    pub width: u32,
    pub height: u32,
    /// Frames that waited longer than this in the queue are dropped as stale
    /// (`encoder.pipeline.dropThreshold`; live pacing only, `None` otherwise).
    pub stale_after: Option<Duration>,
}

impl WorkerSettings {
    /// The settings of `cfg`; `live` is whether frames are paced in real time.
    pub fn of(cfg: &StreamConfig, live: bool) -> Self {
        let v = &cfg.core.viewport;
        WorkerSettings {
            format: cfg.pipeline.format,
            jpeg_quality: cfg.pipeline.jpeg_quality,
            width: v.width,
            height: v.height,
            stale_after: live
                .then(|| Duration::from_millis(cfg.encoder.pipeline.drop_threshold.into())),
        }
    }
}

/// The counters a worker adds to, and the gate that parks it (`adaptive.workers`).
pub struct WorkerCounters<'a> {
    pub drops: &'a DropCounters,
    /// Bytes of the converted frames, summed.
    pub format_bytes: &'a AtomicU64,
    pub gate: &'a WorkerGate,
}

/// Worker `index`'s loop: takes frames out until the queue is closed and empty (waiting parked
/// while the gate does not let it in), drops the stale ones, converts the rest. A converter
/// that cannot be made fails every frame it is given, so the encoder reports why.
pub fn work<P: Probe>(
    index: u32,
    settings: WorkerSettings,
    counters: &WorkerCounters<'_>,
    queue: &FrameQueue<Slot>,
    reorder: &Reorder<Slot>,
    probe: &P,
) {
    let s = settings;
    let mut converter = Converter::new(s.format, s.jpeg_quality, s.width, s.height);
    loop {
        counters.gate.wait_turn(index, || queue.is_closed());
        reorder.reserve();
        let Some((seq, mut slot)) = queue.pop() else {
            reorder.unreserve();
            break;
        };
        probe.mark(Point::PipelineProcessStart, slot.id);
        if s.stale_after
            .is_some_and(|after| slot.captured.elapsed() > after)
        {
            counters.drops.count(DropReason::Stale);
            reorder.put(seq, Done::Skip(slot));
            continue;
        }
        let started = Instant::now();
        let converted = converter.as_mut().map(|c| c.convert(&mut slot));
        counters.gate.record_process(started.elapsed());
        let done = match converted {
            Ok(r) => match r {
                Ok(()) => {
                    counters
                        .format_bytes
                        .fetch_add(slot.encoded.len() as u64, Ordering::Relaxed);
                    Done::Frame(slot)
                }
                Err(e) => Done::Failed(slot, e.to_string()),
            },
            Err(e) => Done::Failed(slot, e.to_string()),
        };
        if let Done::Frame(s) = &done {
            probe.mark(Point::PipelineProcessEnd, s.id);
        }
        reorder.put(seq, done);
    }
}
