//! Assembles the stages for one `StreamConfig` and runs them: the only module that knows them all.
//!
//! Per frame: the scene is drawn (`frame:capture`, `render:frame`) into a pooled encoder frame
//! (zero copy) or into a picture that the encoder copies; the encoder's packets go to the sink
//! (`network:send`). With realtime pacing each frame waits for its due time on the stream clock,
//! and a frame that is already more than `dropThreshold` late when its turn comes is dropped and
//! counted instead of encoded, so a slow encoder sheds frames rather than drifting behind.

use crate::config::{ConfigError, StreamConfig};
use crate::encode::{EncodeError, Encoder, Packet};
use crate::output::{self, Output, OutputError, Sink};
use crate::probe::{Point, Probe};
use crate::source::{RawPicture, Scene};
use std::fmt;
use std::str::FromStr;
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
}

/// Counters of a stream so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Frames whose picture was drawn and handed to the encoder.
    pub captured: u64,
    /// Frames dropped because they were more than `dropThreshold` late.
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
    /// Things a reader of the results should know.
    pub notes: Vec<String>,
}

/// A running stream.
pub struct Stream<'p, P: Probe> {
    cfg: StreamConfig,
    probe: &'p P,
    scene: Scene,
    encoder: Encoder,
    sink: Box<dyn Sink>,
    /// The copy path's picture (zeroCopy = false).
    picture: Option<RawPicture>,
    next_frame: u64,
    clock: Option<Instant>,
    counters: Counters,
}

impl<'p, P: Probe> Stream<'p, P> {
    /// Validates `cfg`, sets up every stage and opens `output`.
    ///
    /// # Errors
    /// The configuration is invalid, the encoder cannot be opened, or the output cannot be
    /// created.
    pub fn open(cfg: &StreamConfig, output: &Output, probe: &'p P) -> Result<Self, StreamError> {
        cfg.validate()?;
        let v = &cfg.core.viewport;
        probe.mark(Point::RenderSetupStart, 0);
        let scene = Scene::new(v.width, v.height);
        let picture = (!cfg.encoder.pipeline.zero_copy).then(|| RawPicture::new(v.width, v.height));
        probe.mark(Point::RenderSetupEnd, 0);
        let encoder = Encoder::open(cfg, output.needs_global_header())?;
        let sink = output::open(output, &encoder)?;
        Ok(Stream {
            cfg: cfg.clone(),
            probe,
            scene,
            encoder,
            sink,
            picture,
            next_frame: 0,
            clock: None,
            counters: Counters::default(),
        })
    }

    /// Runs the next `frames` frame slots (drawn and encoded, or dropped when late).
    ///
    /// # Errors
    /// Encoding or writing failed.
    pub fn run(&mut self, frames: u64, pacing: Pacing) -> Result<(), StreamError> {
        let fps = self.cfg.core.viewport.fps;
        let drop_after = Duration::from_millis(self.cfg.encoder.pipeline.drop_threshold.into());
        let start = *self.clock.get_or_insert_with(Instant::now);
        for _ in 0..frames {
            let id = self.next_frame;
            self.next_frame += 1;
            if pacing == Pacing::Realtime {
                let due = start + Duration::from_secs_f64(id as f64 / f64::from(fps));
                let now = Instant::now();
                if now < due {
                    std::thread::sleep(due - now);
                } else if now - due > drop_after {
                    self.counters.dropped += 1;
                    continue;
                }
            }
            self.frame(id)?;
        }
        Ok(())
    }

    /// Counters so far.
    pub fn counters(&self) -> Counters {
        self.counters
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
        let c = self.counters;
        let seconds = c.packets as f64 / f64::from(self.cfg.core.viewport.fps);
        let bitrate_kbps = if seconds > 0.0 {
            c.bytes as f64 * 8.0 / seconds / 1000.0
        } else {
            0.0
        };
        Ok(Summary {
            counters: c,
            encoder: self.encoder.name().to_string(),
            bitrate_kbps,
            pool_copies: self.encoder.pool_copies(),
            sink: self.sink.stats(),
            notes: self.encoder.notes().to_vec(),
        })
    }

    fn frame(&mut self, id: u64) -> Result<(), StreamError> {
        let probe = self.probe;
        probe.mark(Point::FrameCapture, id);
        probe.mark(Point::RenderFrameStart, id);
        let mut failed = None;
        let (sink, counters) = (&mut self.sink, &mut self.counters);
        let on_packet = |p: Packet<'_>| deliver(probe, sink, counters, p, &mut failed);
        match &mut self.picture {
            None => {
                self.scene.draw(id, self.encoder.pooled_planes());
                probe.mark(Point::RenderFrameEnd, id);
                self.encoder.send_pooled(id, probe, on_packet)?;
            }
            Some(picture) => {
                self.scene.draw(id, picture.planes());
                probe.mark(Point::RenderFrameEnd, id);
                self.encoder.send_copy(id, picture, probe, on_packet)?;
            }
        }
        self.counters.captured += 1;
        match failed {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }
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
