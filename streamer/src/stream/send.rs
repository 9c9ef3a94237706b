//! The encoder's loop, on the calling thread: the workers' frames back in order, dropped when
//! older than `maxLatency` (realtime), decoded from jpeg/png if need be, encoded (straight from
//! the slot with `zeroCopy`, through a fresh frame without) and each packet sent to the output
//! (`network:send`); slots back to the pool.

use super::shared::Shared;
use super::{Counters, StreamError};
use crate::config::StreamConfig;
use crate::encode::{Encoder, Packet};
use crate::output::{OutputError, Sink};
use crate::pipeline::buffers::Slot;
use crate::pipeline::format::Ingest;
use crate::pipeline::{Done, DropReason, Reorder};
use crate::probe::{Point, Probe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Where the encoder's loop sends what it encodes, and what it counts.
pub(super) struct Send<'a> {
    pub encoder: &'a mut Encoder,
    pub sink: &'a mut Box<dyn Sink>,
    pub counters: &'a mut Counters,
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
            let (sink, counters) = (&mut *self.sink, &mut *self.counters);
            let encoded = ingested
                .map_err(|e| StreamError::Pipeline(e.to_string()))
                .and_then(|()| {
                    self.encoder
                        .encode_frame(id, &mut slot.picture, copy, probe, |pkt| {
                            deliver(probe, sink, counters, pkt, &shared.cpu.send_ns, &mut failed)
                        })
                        .map_err(StreamError::from)
                });
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

/// Sends one packet to the sink, marking `network:send`, counting it and charging its CPU time
/// to `cpu`; keeps the first error.
pub(super) fn deliver<P: Probe>(
    probe: &P,
    sink: &mut Box<dyn Sink>,
    counters: &mut Counters,
    packet: Packet<'_>,
    cpu: &AtomicU64,
    failed: &mut Option<OutputError>,
) {
    if failed.is_some() {
        return;
    }
    let (id, size, key) = (packet.frame, packet.data().len() as u64, packet.is_key());
    probe.mark(Point::NetworkSendStart, id);
    let sent = {
        let _cpu = super::cpu::ThreadClock::start(cpu);
        sink.send(packet)
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
