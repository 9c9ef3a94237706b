//! The gate's timed figures: each is a ratio of two sides measured alternately in this process
//! on a CPU clock ([`clock`](super::clock)), the *reference* side (code the figure does not
//! test) over the *measured* side (the code it gates), so a slower measured side lowers the
//! ratio and the machine's drift falls on both sides. The figure is the lower quartile of the
//! reference side's times over the lower quartile of the measured side's
//! ([`verdict::ratio_of_quartiles`](super::verdict::ratio_of_quartiles)): on a shared machine
//! a side's time is now and then 10–40% high (another tenant, a migration), never low, and a
//! quartile per side drops those spikes where a median of per-pair ratios keeps them.
//!
//! - `compositor_over_memcpy`: the CPU compositor (8 layers at 720p) against memcpy of the same
//!   frame, on the calling thread's clock;
//! - `stream_over_bare_x264`: the whole stream (render, compose, pipeline, the encoder wrapper
//!   and libx264) against libx264 alone through ffmpeg-next on the same settings, on the
//!   process's clock. The bare side does not go through the streamer's encoder wrapper, so a
//!   slower wrapper lowers the ratio;
//! - `recorder_over_noop_probe`: the stream with the recorder against the same stream with the
//!   no-op probe, on the process's clock.
//!
//! `gate --power` slows each measured side by a known fraction with calibrated busy work
//! ([`clock::burn`](super::clock::burn)) in its per-frame path: after each composed frame, and
//! on the stream's encoder thread at each frame's encode start.

use super::clock::{burn, process_cpu, thread_cpu};
use super::verdict::{ratio_interval, ratio_of_quartiles};
use crate::hot::Compose;
use anyhow::{Context, Result};
use ffmpeg_next as ff;
use std::collections::BTreeMap;
use streamer::probe::{NoProbe, Point, Probe};

/// One gated figure: reference ÷ measured, both in CPU seconds.
pub trait Figure {
    /// The figure's key in `ratios.json`.
    fn name(&self) -> &'static str;
    /// What it measures, in a sentence (written into `ratios.json` and the report).
    fn what(&self) -> &'static str;
    /// CPU seconds of the reference side.
    fn reference(&mut self) -> Result<f64>;
    /// CPU seconds of the measured side, with `units` of [`burn`] added to each of its
    /// [`Figure::calls`].
    fn measured(&mut self, units: u64) -> Result<f64>;
    /// Per-frame calls of the measured side in one measurement (where the burn goes).
    fn calls(&self) -> u64;
}

/// Every figure the gate times.
///
/// # Errors
/// FFmpeg or libx264 cannot be opened.
pub fn figures() -> Result<Vec<Box<dyn Figure>>> {
    Ok(vec![
        Box::new(CompositorOverMemcpy::new()),
        Box::new(StreamOverBare(StreamBench::new()?)),
        Box::new(RecorderOverNoop(StreamBench::new()?)),
    ])
}

/// One repetition of a figure: CPU seconds of its reference side and of its measured side.
pub type Pair = [f64; 2];

/// One repetition of `fig`: the reference side once and the measured side once per entry of
/// `levels` (burn units per call), in an order that rotates with `rep` so that no side always
/// runs first. Returns a (reference, measured) pair per level, the reference shared.
///
/// # Errors
/// A side failed to run.
pub fn repetition(fig: &mut dyn Figure, rep: usize, levels: &[u64]) -> Result<Vec<Pair>> {
    let n = levels.len() + 1;
    let mut times = vec![0.0; n];
    for k in 0..n {
        let i = (k + rep) % n;
        times[i] = if i == 0 {
            fig.reference()?
        } else {
            fig.measured(levels[i - 1])?
        };
    }
    Ok(times[1..].iter().map(|&m| [times[0], m]).collect())
}

/// Whether a figure's repetitions pin it down: the 95% interval's half-width is at most half
/// the figure's noise threshold (`noise`), so a slowdown of twice the threshold puts the whole
/// interval beyond it.
pub fn settled(pairs: &[Pair], noise: f64) -> bool {
    let (lo, hi) = ratio_interval(pairs);
    (hi - lo) / 2.0 <= noise / 2.0 * ratio_of_quartiles(pairs)
}

/// Every figure measured at least `reps` and at most `4 × reps` times, the figures taking turns
/// within each repetition: a figure stops once [`settled`] at its threshold from `noise`, so a
/// quiet machine pays for `reps` and a noisy one for more, not for a wider interval.
///
/// # Errors
/// A figure could not be set up or run.
pub fn measure_ratios(
    reps: usize,
    noise: impl Fn(&str) -> f64,
    mut progress: impl FnMut(&str),
) -> Result<BTreeMap<String, Vec<Pair>>> {
    let mut figs = figures()?;
    let mut out: BTreeMap<String, Vec<Pair>> = BTreeMap::new();
    for rep in 0..reps * 4 {
        let pending: Vec<&mut Box<dyn Figure>> = figs
            .iter_mut()
            .filter(|f| {
                let done = out.get(f.name()).map_or(&[][..], |v| &v[..]);
                rep < reps || !settled(done, noise(f.name()))
            })
            .collect();
        if pending.is_empty() {
            break;
        }
        progress(&format!(
            "ratios: repetition {} ({} figure(s) not yet within half their threshold)",
            rep + 1,
            pending.len()
        ));
        for fig in pending {
            let r = repetition(fig.as_mut(), rep, &[0])?;
            out.entry(fig.name().into()).or_default().push(r[0]);
        }
    }
    Ok(out)
}

/// The description of figure `name` (empty for one the code no longer has).
pub fn what(name: &str) -> &'static str {
    match name {
        "compositor_over_memcpy" => COMPOSITOR_WHAT,
        "stream_over_bare_x264" => STREAM_WHAT,
        "recorder_over_noop_probe" => RECORDER_WHAT,
        _ => "",
    }
}

const COMPOSITOR_WHAT: &str = "memcpy's CPU time for a 720p frame over the CPU compositor's \
    for 8 layers on it (40 frames each, one thread's CPU clock)";
const STREAM_WHAT: &str = "libx264 alone through ffmpeg-next over the whole stream (render, \
    compose, pipeline, encoder wrapper, libx264), process CPU time for 60 frames of 720p \
    ultrafast, 1 x264 thread, null output";
const RECORDER_WHAT: &str = "the stream with the no-op probe over the same stream with the \
    recorder, process CPU time for 60 frames";

/// Frames composed (and copied) per measurement.
const COMPOSE_ROUNDS: u64 = 40;

struct CompositorOverMemcpy {
    compose: Compose,
    src: Vec<u8>,
    dst: Vec<u8>,
}

impl CompositorOverMemcpy {
    fn new() -> Self {
        let compose = Compose::new(1280, 720, 8);
        let n = compose.frame_bytes();
        CompositorOverMemcpy {
            compose,
            src: vec![7u8; n],
            dst: vec![0u8; n],
        }
    }
}

impl Figure for CompositorOverMemcpy {
    fn name(&self) -> &'static str {
        "compositor_over_memcpy"
    }

    fn what(&self) -> &'static str {
        COMPOSITOR_WHAT
    }

    fn reference(&mut self) -> Result<f64> {
        let start = thread_cpu();
        for i in 0..COMPOSE_ROUNDS as usize {
            self.src[i % 64] = i as u8;
            self.dst
                .copy_from_slice(std::hint::black_box(&self.src[..]));
        }
        std::hint::black_box(&self.dst);
        Ok(thread_cpu() - start)
    }

    fn measured(&mut self, units: u64) -> Result<f64> {
        let start = thread_cpu();
        for _ in 0..COMPOSE_ROUNDS {
            self.compose.frame();
            burn(units);
        }
        Ok(thread_cpu() - start)
    }

    fn calls(&self) -> u64 {
        COMPOSE_ROUNDS
    }
}

/// Frames per stream measurement.
const STREAM_FRAMES: u64 = 60;

/// The stream's configuration (720p ultrafast, one x264 thread, CPU renderer) and 10 pictures
/// of its scene for the bare encoder.
struct StreamBench {
    cfg: streamer::config::StreamConfig,
    pictures: Vec<ff::frame::Video>,
}

impl StreamBench {
    fn new() -> Result<Self> {
        streamer::encode::init_ffmpeg()?;
        let mut cfg = streamer::config::StreamConfig::default();
        cfg.encoder.pipeline.threads = 1;
        cfg.renderer.backend = streamer::config::RenderBackend::Cpu;
        let v = &cfg.core.viewport;
        let scene = streamer::source::Scene::new(v.width, v.height);
        let pictures = (0..10)
            .map(|i| {
                let mut f = ff::frame::Video::new(ff::format::Pixel::YUV420P, v.width, v.height);
                scene.draw(i, streamer::encode::frame_planes(&mut f));
                f
            })
            .collect();
        Ok(StreamBench { cfg, pictures })
    }

    /// Process CPU seconds of a whole stream of [`STREAM_FRAMES`] with `probe`.
    fn stream<P: Probe>(&self, probe: &P) -> Result<f64> {
        let start = process_cpu();
        let mut s =
            streamer::stream::Stream::open(&self.cfg, &streamer::output::Output::Null, probe)?;
        s.run(STREAM_FRAMES, streamer::stream::Pacing::Max)?;
        s.finish()?;
        Ok(process_cpu() - start)
    }

    /// Process CPU seconds of libx264 alone on the same settings: ffmpeg-next's encoder opened
    /// with the streamer's option list, fed the pictures, its packets read and dropped.
    fn bare(&mut self) -> Result<f64> {
        let start = process_cpu();
        let v = &self.cfg.core.viewport;
        let codec = ff::encoder::find_by_name("libx264").context("libx264 not found")?;
        let mut ctx = ff::codec::Context::new_with_codec(codec)
            .encoder()
            .video()?;
        ctx.set_width(v.width);
        ctx.set_height(v.height);
        ctx.set_format(ff::format::Pixel::YUV420P);
        let fps = self.cfg.core.viewport.fps as i32;
        ctx.set_time_base(ff::Rational::new(1, fps));
        ctx.set_frame_rate(Some(ff::Rational::new(fps, 1)));
        let mut dict = ff::Dictionary::new();
        for (k, value) in streamer::encode::codec_options(&self.cfg.encoder, false) {
            dict.set(&k, &value);
        }
        let mut enc = ctx.open_with(dict)?;
        let mut packet = ff::Packet::empty();
        let mut drain = |enc: &mut ff::encoder::Video| {
            while enc.receive_packet(&mut packet).is_ok() {
                std::hint::black_box(packet.size());
            }
        };
        let n = self.pictures.len();
        for id in 0..STREAM_FRAMES {
            let frame = &mut self.pictures[id as usize % n];
            frame.set_pts(Some(id as i64));
            enc.send_frame(frame)?;
            drain(&mut enc);
        }
        enc.send_eof()?;
        drain(&mut enc);
        Ok(process_cpu() - start)
    }
}

/// A probe that burns `units` on the encoder's thread as each frame's encode starts, then
/// passes the mark on: the injected regression of the stream figures.
struct Slowed<'a, P> {
    inner: &'a P,
    units: u64,
}

impl<P: Probe> Probe for Slowed<'_, P> {
    fn mark(&self, point: Point, frame: u64) {
        if point == Point::EncodeStart {
            burn(self.units);
        }
        self.inner.mark(point, frame);
    }

    fn mark_at(&self, point: Point, frame: u64, at: std::time::Instant) {
        if point == Point::EncodeStart {
            burn(self.units);
        }
        self.inner.mark_at(point, frame, at);
    }
}

struct StreamOverBare(StreamBench);

impl Figure for StreamOverBare {
    fn name(&self) -> &'static str {
        "stream_over_bare_x264"
    }

    fn what(&self) -> &'static str {
        STREAM_WHAT
    }

    fn reference(&mut self) -> Result<f64> {
        self.0.bare()
    }

    fn measured(&mut self, units: u64) -> Result<f64> {
        if units == 0 {
            self.0.stream(&NoProbe)
        } else {
            self.0.stream(&Slowed {
                inner: &NoProbe,
                units,
            })
        }
    }

    fn calls(&self) -> u64 {
        STREAM_FRAMES
    }
}

struct RecorderOverNoop(StreamBench);

impl Figure for RecorderOverNoop {
    fn name(&self) -> &'static str {
        "recorder_over_noop_probe"
    }

    fn what(&self) -> &'static str {
        RECORDER_WHAT
    }

    fn reference(&mut self) -> Result<f64> {
        self.0.stream(&NoProbe)
    }

    fn measured(&mut self, units: u64) -> Result<f64> {
        let recorder = crate::record::Recorder::new();
        if units == 0 {
            self.0.stream(&recorder)
        } else {
            self.0.stream(&Slowed {
                inner: &recorder,
                units,
            })
        }
    }

    fn calls(&self) -> u64 {
        STREAM_FRAMES
    }
}
