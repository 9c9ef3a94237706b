//! The encoder's loop, on the calling thread: the workers' frames back in order, dropped when
//! older than `maxLatency` (realtime), decoded from jpeg/png if need be, encoded (straight from
//! the slot with `zeroCopy`, through a fresh frame without) and each packet sent to the output
//! (`network:send`); slots back to the pool.

use super::live::Shared;
use super::{Counters, StreamError};
use crate::adapt::network::NetQualityView;
use crate::adapt::{AdaptEvent, BitrateController, QualityController, Rung, Size};
use crate::config::StreamConfig;
use crate::encode::{Downscale, Encoder, Packet, Settings as EncodeSettings};
use crate::output::{OutputError, Sink};
use crate::pipeline::buffers::Slot;
use crate::pipeline::format::Ingest;
use crate::pipeline::{Done, DropReason, Reorder};
use crate::probe::{Point, Probe};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Where the encoder's loop sends what it encodes, and what it counts.
pub(super) struct Send<'a> {
    pub encoder: &'a mut Encoder,
    pub sink: &'a mut Box<dyn Sink>,
    pub counters: &'a mut Counters,
    /// Adaptive bitrate, when on and the output has a connection to watch.
    pub adapting: Option<&'a mut Adapting>,
    /// Quality scaling under load, when on.
    pub scaling: Option<&'a mut QualityScaling>,
}

/// Quality scaling in the encoder's loop: the controller, what it watches, the changes it
/// made, and the step (preset and picture size) to switch to at the next frame.
pub struct QualityScaling {
    controller: QualityController,
    interval_ms: f64,
    /// Frames dropped for falling behind (behind, queue full, stale, late) so far.
    behind_seen: u64,
    global_header: bool,
    started: Instant,
    pending: Option<Rung>,
    /// Every change so far.
    pub events: Vec<AdaptEvent>,
}

impl QualityScaling {
    /// Quality scaling for `cfg` (None when `adaptive.quality.enabled` is off).
    pub fn of(cfg: &StreamConfig, global_header: bool, epoch: Instant) -> Option<Self> {
        let q = &cfg.adaptive.quality;
        let v = &cfg.core.viewport;
        let size = Size {
            width: v.width,
            height: v.height,
        };
        q.enabled.then(|| QualityScaling {
            controller: QualityController::new(q, cfg.encoder.preset, size),
            interval_ms: 1000.0 / f64::from(cfg.core.viewport.fps.max(1)),
            behind_seen: 0,
            global_header,
            started: epoch,
            pending: None,
            events: Vec::new(),
        })
    }

    /// One frame took `encode` to encode; `behind` frames dropped for falling behind so far.
    fn observe(&mut self, encode: Duration, behind: u64) {
        let new = behind.saturating_sub(self.behind_seen);
        self.behind_seen = behind;
        let t = self.started.elapsed().as_millis() as u64;
        let ms = encode.as_secs_f64() * 1000.0;
        let changes = self.controller.update(t, ms, self.interval_ms, new);
        if !changes.is_empty() {
            self.pending = Some(self.controller.rung());
            self.events.extend(changes);
        }
    }
}

/// Adaptive bitrate in the encoder's loop: the controller, the connection it watches, the
/// changes it made, and whether frames are being skipped until the next keyframe.
pub struct Adapting {
    controller: BitrateController,
    /// The configured bitrate and VBV buffer: the buffer scales with the target, so it holds
    /// the same duration of media at every bitrate, but below the configured bitrate (the
    /// link is the limit) at most two frame intervals' worth, so that no frame, a keyframe
    /// included, takes longer than two intervals to cross a link that carries the target.
    configured: (u32, u32),
    fps: u32,
    connection: NetQualityView,
    started: Instant,
    /// Every change so far.
    pub events: Vec<AdaptEvent>,
    skipping: bool,
}

impl Adapting {
    /// Adaptation for `cfg` on `connection` (None when `adaptive.bitrate.enabled` is off).
    pub fn of(
        cfg: &StreamConfig,
        connection: Option<NetQualityView>,
        epoch: Instant,
    ) -> Option<Self> {
        let connection = connection.filter(|_| cfg.adaptive.bitrate.enabled)?;
        Some(Adapting {
            controller: BitrateController::new(
                &cfg.adaptive.bitrate,
                cfg.encoder.rate_control.bitrate_kbps,
            ),
            configured: (
                cfg.encoder.rate_control.bitrate_kbps,
                cfg.encoder.rate_control.vbv_buffer_kbits,
            ),
            fps: cfg.core.viewport.fps.max(1),
            connection,
            started: epoch,
            events: Vec::new(),
            skipping: false,
        })
    }

    /// The target bitrate now, kbit/s.
    pub fn target_kbps(&self) -> u32 {
        self.controller.target_kbps()
    }

    /// Whether a packet is to be dropped before sending: non-keyframes while the controller
    /// drops, and after any dropped frame until the next keyframe (so players can decode).
    fn skip(&mut self, key: bool) -> bool {
        if key {
            self.skipping = false;
        } else if self.controller.dropping() || self.skipping {
            self.skipping = true;
        }
        self.skipping
    }

    /// Sets `encoder`'s bitrate to the target now (after it was reopened).
    fn apply(&self, encoder: &mut Encoder) {
        let to = self.controller.target_kbps();
        if to != self.configured.0 {
            encoder.set_bitrate_kbps(to, self.buffer_kbits(to));
        }
    }

    /// The rate-control buffer at target `to`, kbit.
    fn buffer_kbits(&self, to: u32) -> u32 {
        let (kbps, buffer) = self.configured;
        let mut scaled = u64::from(buffer) * u64::from(to) / u64::from(kbps.max(1));
        if to < kbps {
            scaled = scaled.min(u64::from(to) * 2 / u64::from(self.fps));
        }
        scaled.max(16) as u32
    }

    /// Feeds the connection's latest sample to the controller and applies what it changes.
    fn steer(&mut self, encoder: &mut Encoder) {
        let Some(q) = self.connection.latest() else {
            return;
        };
        let t = self.started.elapsed().as_millis() as u64;
        for e in self.controller.update(t, &q) {
            if let crate::adapt::AdaptChange::Bitrate { to, .. } = e.change {
                encoder.set_bitrate_kbps(to, self.buffer_kbits(to));
            }
            self.events.push(e);
        }
    }
}

impl Send<'_> {
    /// Takes the workers' results in order until they are done, encoding and sending each
    /// frame. `live`: frames older than `maxLatency` are dropped as late.
    ///
    /// # Errors
    /// A worker could not convert a frame, decoding or encoding failed, or the output failed.
    pub fn run<P: Probe>(
        &mut self,
        cfg: &StreamConfig,
        shared: &Shared,
        reorder: &Reorder<Slot>,
        probe: &P,
        live: bool,
    ) -> Result<(), StreamError> {
        let v = &cfg.core.viewport;
        let max_latency = Duration::from_millis(cfg.encoder.pipeline.max_latency.into());
        let copy = !cfg.encoder.pipeline.zero_copy;
        let mut ingest = Ingest::new(cfg.pipeline.format, v.width, v.height)
            .map_err(|e| StreamError::Pipeline(e.to_string()))?;
        // Below ultrafast, quality scaling encodes a smaller picture.
        let mut downscale: Option<Downscale> = None;
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
            if let Some(to) = self.scaling.as_mut().and_then(|q| q.pending.take()) {
                let global_header = self.scaling.as_ref().is_some_and(|q| q.global_header);
                self.switch(cfg, to, id, global_header, shared, probe)?;
                downscale = if (to.size.width, to.size.height) == (v.width, v.height) {
                    None
                } else {
                    let to = (to.size.width, to.size.height);
                    Some(Downscale::new((v.width, v.height), to)?)
                };
            }
            probe.mark(Point::EncodeStart, id);
            let ingested = ingest.ingest(&mut slot);
            let mut failed = None;
            let (sink, counters) = (&mut *self.sink, &mut *self.counters);
            let mut adapting = self.adapting.as_deref_mut();
            let encode_started = Instant::now();
            let mut sending = Duration::ZERO;
            let encoded = ingested
                .map_err(|e| StreamError::Pipeline(e.to_string()))
                .and_then(|()| {
                    let picture = match downscale.as_mut() {
                        Some(d) => d.run(&slot.picture)?,
                        None => &mut slot.picture,
                    };
                    self.encoder
                        .encode_frame(id, picture, copy, probe, |pkt| {
                            if adapting.as_mut().is_some_and(|a| a.skip(pkt.is_key())) {
                                shared.drops.count(DropReason::Congestion);
                                return;
                            }
                            let t = Instant::now();
                            deliver(probe, sink, counters, pkt, shared, &mut failed);
                            sending += t.elapsed();
                        })
                        .map_err(StreamError::from)
                });
            if let Some(q) = self.scaling.as_deref_mut() {
                q.observe(
                    encode_started.elapsed().saturating_sub(sending),
                    shared.drops.snapshot().falling_behind(),
                );
            }
            if let Some(a) = adapting {
                self.sink.sample_quality();
                a.steer(self.encoder);
                shared
                    .target_kbps
                    .store(a.target_kbps().into(), Ordering::Relaxed);
                shared
                    .adapt_changes
                    .store(a.events.len() as u64, Ordering::Relaxed);
            }
            shared.pool.give(slot);
            shared
                .sent_packets
                .store(self.counters.packets, Ordering::Relaxed);
            shared
                .sent_bytes
                .store(self.counters.bytes, Ordering::Relaxed);
            encoded?;
            if let Some(e) = failed {
                return Err(e.into());
            }
        }
        Ok(())
    }
}

impl Send<'_> {
    /// Reopens the encoder with `to`'s preset at its picture size, from frame `id` on (a
    /// keyframe: a new encoder starts with one): what the old one still held is sent first, the
    /// output gets the new sequence header, and the adaptive bitrate's target carries over.
    fn switch<P: Probe>(
        &mut self,
        cfg: &StreamConfig,
        to: Rung,
        id: u64,
        global_header: bool,
        shared: &Shared,
        probe: &P,
    ) -> Result<(), StreamError> {
        let mut c = cfg.clone();
        c.encoder.preset = to.preset;
        let settings = EncodeSettings {
            width: to.size.width,
            height: to.size.height,
            ..EncodeSettings::of(&c)
        };
        let (next, x264_threads) =
            crate::clock::started_by(|| Encoder::open(&settings, global_header));
        let mut next = next?;
        let mut failed = None;
        let (sink, counters) = (&mut *self.sink, &mut *self.counters);
        self.encoder.finish(probe, |pkt| {
            deliver(probe, sink, counters, pkt, shared, &mut failed)
        })?;
        if let Some(e) = failed {
            return Err(e.into());
        }
        self.sink.new_encoder(&next, id)?;
        if let Some(a) = self.adapting.as_deref() {
            a.apply(&mut next);
        }
        // The old encoder's threads exit with it: their CPU so far is kept.
        shared.cpu.x264_opened(x264_threads);
        *self.encoder = next;
        Ok(())
    }
}

/// Sends one packet to the sink, marking `network:send`, counting it and charging its CPU time
/// to `cpu`; keeps the first error.
pub(super) fn deliver<P: Probe>(
    probe: &P,
    sink: &mut Box<dyn Sink>,
    counters: &mut Counters,
    packet: Packet<'_>,
    shared: &Shared,
    failed: &mut Option<OutputError>,
) {
    if failed.is_some() {
        return;
    }
    let (id, size, key) = (packet.frame, packet.data().len() as u64, packet.is_key());
    probe.mark(Point::NetworkSendStart, id);
    let sent = {
        let _cpu = super::stage_cpu::ThreadClock::start(&shared.cpu.send_ns);
        // The source's sound read so far goes first (it leads the video by the pipeline's
        // delay at most; players and muxers interleave by timestamp).
        let audio = shared.audio.as_ref().map_or_else(Vec::new, |a| {
            std::mem::take(&mut *a.lock().unwrap_or_else(|e| e.into_inner()))
        });
        audio
            .iter()
            .try_for_each(|a| sink.audio(a))
            .and_then(|()| sink.send(packet))
    };
    match sent {
        Ok(()) => {
            probe.mark(Point::NetworkSendEnd, id);
            counters.packets += 1;
            counters.bytes += size;
            counters.keyframes += u64::from(key);
        }
        Err(e) => *failed = Some(e),
    }
}
