//! The renderer thread's loop: paces the frame slots (realtime), sheds what cannot be on time or
//! would overload memory or the queue, draws each frame into a pooled slot, has the render
//! stage compose the layers over it (one frame at a time, or rounds of `maxConcurrent` in
//! flight on the GPU) and queues it for the workers, counting what the queue's policy drops.

use super::Pacing;
use super::StreamError;
use super::live::Shared;
use crate::adapt::worker_scaling::WorkerScaler;
use crate::adapt::{AdaptChange, AdaptEvent};
use crate::config::{DropPolicy, StreamConfig};
use crate::core::Core;
use crate::frame::Planes;
use crate::pipeline::DropReason;
use crate::pipeline::buffers::Slot;
use crate::pipeline::queue::{FrameQueue, Pushed};
use crate::probe::{Point, Probe};
use crate::render::{RenderError, Renderer};
use crate::source::{Source, SourceError};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// One run of the renderer's loop: what it reads and where its frames go.
pub(super) struct Capture<'a, P: Probe> {
    pub shared: &'a Shared,
    pub queue: &'a FrameQueue<Slot>,
    pub probe: &'a P,
    /// Set when another thread failed: stop taking frames.
    pub abort: &'a AtomicBool,
    /// When frame 0 was due (the stream clock).
    pub start: Instant,
    pub pacing: Pacing,
    /// The configured frame rate.
    pub fps: u32,
}

/// The settings the loop reads, from the configuration.
struct Limits {
    fps: u32,
    /// A slot more than this late is dropped as behind (`encoder.pipeline.dropThreshold`).
    drop_after: Duration,
    /// Queue depth at which frames are shed (`pipeline.pressureQueuePercent`), if below 100%.
    queue_limit: Option<usize>,
    /// Resident bytes past which memory is trimmed and frames shed (0: never).
    rss_limit: u64,
}

impl<P: Probe> Capture<'_, P> {
    fn live(&self) -> bool {
        self.pacing == Pacing::Realtime
    }

    /// Draws, renders and queues the frames `ids`. Returns how many frames it queued, and the
    /// source's or renderer's error if it stopped on one.
    pub fn run(
        &self,
        cfg: &StreamConfig,
        (source, core, renderer): (&mut Source, &mut Core, &mut Renderer),
        ids: std::ops::Range<u64>,
    ) -> (u64, Result<(), StreamError>) {
        let mut decode_ns = 0;
        let out = self.frames(cfg, (source, core, renderer), ids, &mut decode_ns);
        self.shared
            .cpu
            .decode_ns
            .fetch_add(decode_ns, Ordering::Relaxed);
        out
    }

    /// [`Capture::run`]'s loop; the source's decoding CPU goes to `decode_ns`.
    fn frames(
        &self,
        cfg: &StreamConfig,
        (source, core, renderer): (&mut Source, &mut Core, &mut Renderer),
        ids: std::ops::Range<u64>,
        decode_ns: &mut u64,
    ) -> (u64, Result<(), StreamError>) {
        let p = &cfg.pipeline;
        let limits = Limits {
            fps: cfg.core.viewport.fps,
            drop_after: Duration::from_millis(cfg.encoder.pipeline.drop_threshold.into()),
            queue_limit: (p.pressure_queue_percent < 100)
                .then(|| (self.queue.capacity() * p.pressure_queue_percent as usize).div_ceil(100)),
            rss_limit: match (p.pressure_rss_mb, p.pressure_growth_mb) {
                (0, 0) => 0,
                (0, growth) => self.shared.rss_at_open + (u64::from(growth) << 20),
                (mb, _) => u64::from(mb) << 20,
            },
        };
        let round_size = renderer.round_size();
        let mut round: Vec<(u64, Slot)> = Vec::with_capacity(round_size);
        let mut captured = 0;
        let mut open = true;
        for id in ids {
            if self.abort.load(Ordering::Relaxed) || !open {
                break;
            }
            if self.shared.stop.load(Ordering::Relaxed) {
                break;
            }
            if self.live() && !self.on_time(id, &limits, core, renderer) {
                continue;
            }
            let slot = match self.draw(source, id, decode_ns) {
                Ok(slot) => slot,
                Err(e) => return (captured, Err(e.into())),
            };
            if round_size == 1 {
                let mut slot = slot;
                let composed = renderer.render(
                    core,
                    id,
                    &mut crate::encode::frame_planes(&mut slot.picture),
                    self.probe,
                );
                if let Err(e) = composed {
                    self.shared.pool.give(slot);
                    return (captured, Err(e.into()));
                }
                open = self.deliver(id, slot);
                captured += u64::from(open);
                continue;
            }
            round.push((id, slot));
            if round.len() == round_size {
                match self.round((core, renderer), &mut round) {
                    Ok((n, still_open)) => {
                        captured += n;
                        open = still_open;
                    }
                    Err(e) => return (captured, Err(e.into())),
                }
            }
        }
        if !round.is_empty() {
            if self.abort.load(Ordering::Relaxed) || !open {
                for (_, slot) in round.drain(..) {
                    self.shared.pool.give(slot);
                }
            } else {
                match self.round((core, renderer), &mut round) {
                    Ok((n, _)) => captured += n,
                    Err(e) => return (captured, Err(e.into())),
                }
            }
        }
        (captured, Ok(()))
    }

    /// Live pacing: waits for frame `id`'s due time; false (and counted) when the frame is to
    /// be dropped: already behind by more than `dropThreshold`, or shed under memory or queue
    /// pressure (memory pressure also trims the pool, the renderer's and the core's caches).
    fn on_time(&self, id: u64, limits: &Limits, core: &mut Core, renderer: &mut Renderer) -> bool {
        let shared = self.shared;
        let due = self.start + Duration::from_secs_f64(id as f64 / f64::from(limits.fps));
        let now = Instant::now();
        if now < due {
            std::thread::sleep(due - now);
        } else if now - due > limits.drop_after {
            shared.drops.count(DropReason::Behind);
            return false;
        }
        let depth = self.queue.len();
        let over_rss = limits.rss_limit > 0 && id % 8 == 0 && shared.rss.rss() > limits.rss_limit;
        if over_rss {
            // Keep what the queue and workers need; give the rest back.
            shared.pool.trim(self.queue.capacity());
            renderer.trim();
            core.trim();
            shared.pressure_events.fetch_add(1, Ordering::Relaxed);
        }
        if over_rss || limits.queue_limit.is_some_and(|limit| depth >= limit) {
            shared.drops.count(DropReason::Pressure);
            return false;
        }
        true
    }

    /// Takes a slot from the pool and draws the source's frame `id` into it: a file's or a
    /// feed's decoding as the `decode` span (its thread CPU added to `decode_ns`), then the
    /// picture drawn into the slot as the start of `render:frame` (the synthetic scene, or the
    /// decoded picture copied in). The slot goes back to the pool on an error.
    fn draw(&self, source: &mut Source, id: u64, decode_ns: &mut u64) -> Result<Slot, SourceError> {
        self.probe.mark(Point::FrameCapture, id);
        let mut slot = self.shared.pool.take(id);
        if crate::encode::make_writable(&mut slot.picture) {
            self.shared.pool_copies.fetch_add(1, Ordering::Relaxed);
        }
        let decodes = source.decodes();
        let drawn = if decodes {
            self.probe.mark(Point::DecodeStart, id);
            let cpu_start = crate::clock::thread_cpu_ns();
            let decoded = source.decode(id);
            *decode_ns += crate::clock::thread_cpu_ns().saturating_sub(cpu_start);
            self.probe.mark(Point::DecodeEnd, id);
            decoded
        } else {
            Ok(())
        };
        self.probe.mark(Point::RenderFrameStart, id);
        if drawn.is_ok() {
            source.paint(id, crate::encode::frame_planes(&mut slot.picture));
        }
        if let Some(pending) = &self.shared.audio {
            let audio = source.take_audio();
            if !audio.is_empty() {
                pending
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend(audio);
            }
        }
        match drawn {
            Ok(()) => Ok(slot),
            Err(e) => {
                self.shared.pool.give(slot);
                Err(e)
            }
        }
    }

    /// Renders a round of drawn frames on the GPU and queues them in order; returns how many
    /// were queued and whether the queue is still open. The slots go back to the pool on an
    /// error.
    fn round(
        &self,
        (core, renderer): (&mut Core, &mut Renderer),
        round: &mut Vec<(u64, Slot)>,
    ) -> Result<(u64, bool), RenderError> {
        let mut planes: Vec<(u64, Planes<'_>)> = round
            .iter_mut()
            .map(|(id, s)| (*id, crate::encode::frame_planes(&mut s.picture)))
            .collect();
        let rendered = renderer.render_round(core, &mut planes, self.probe);
        drop(planes);
        if let Err(e) = rendered {
            for (_, slot) in round.drain(..) {
                self.shared.pool.give(slot);
            }
            return Err(e);
        }
        let mut queued = 0;
        let mut open = true;
        for (id, slot) in round.drain(..) {
            if open {
                open = self.deliver(id, slot);
                queued += u64::from(open);
            } else {
                self.shared.pool.give(slot);
            }
        }
        Ok((queued, open))
    }

    /// Smart worker scaling: as a frame is queued behind `depth` others, the scaler may let a
    /// worker more or fewer take frames.
    fn scale(&self, scaler: &std::sync::Mutex<WorkerScaler>, depth: usize) {
        let shared = self.shared;
        let t_ms = shared.epoch.elapsed().as_millis() as u64;
        let fill = depth as f64 / self.queue.capacity() as f64;
        let interval_ms = 1000.0 / f64::from(self.fps.max(1));
        let mut s = scaler.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((from, to, signal)) =
            s.update(t_ms, fill, shared.gate.process_ms(), interval_ms)
        {
            shared.gate.set_active(to);
            shared
                .worker_events
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(AdaptEvent {
                    t_ms,
                    change: AdaptChange::Workers { from, to },
                    signal,
                });
        }
    }

    /// Marks a rendered frame and queues it, counting what the queue's policy drops; false
    /// when the queue is closed (the slot went back to the pool).
    fn deliver(&self, id: u64, slot: Slot) -> bool {
        let (shared, probe) = (self.shared, self.probe);
        probe.mark(Point::RenderFrameEnd, id);
        let depth = self.queue.len().min(shared.occupancy.len() - 1);
        shared.occupancy[depth].fetch_add(1, Ordering::Relaxed);
        shared.queue_depth.store(depth as u64, Ordering::Relaxed);
        if let Some(scaler) = &shared.scaler {
            self.scale(scaler, depth);
        }
        probe.mark(Point::PipelineQueueStart, id);
        let pushed = if self.live() {
            self.queue.push(slot)
        } else {
            self.queue.push_with(slot, DropPolicy::Block)
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
}
