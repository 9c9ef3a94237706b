//! The gate's wall-time ratios, both sides of each measured alternately in this process.

use crate::hot::Compose;
use std::collections::BTreeMap;
use std::time::Instant;

/// Wall-time ratios, each measured `reps` times with both sides alternating in this process.
pub fn measure_ratios(
    reps: usize,
    mut progress: impl FnMut(&str),
) -> anyhow::Result<BTreeMap<String, Vec<f64>>> {
    let mut out: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut path = PathRatios::new()?;
    let mut compose = Compose::new(1280, 720, 8);
    let mut src = vec![7u8; compose.frame_bytes()];
    let mut dst = vec![0u8; compose.frame_bytes()];
    for rep in 0..reps {
        progress(&format!("ratios: repetition {}/{reps}", rep + 1));
        let (path_ratio, probe_ratio) = path.once()?;
        out.entry("path_fps_over_bare_encoder_fps".into())
            .or_default()
            .push(path_ratio);
        out.entry("recorder_fps_over_noop_probe_fps".into())
            .or_default()
            .push(probe_ratio);
        // Compositor bandwidth (frame bytes per second composing 8 layers, the background's
        // copy included) over memcpy bandwidth (frame bytes per second copied).
        let rounds = 200;
        let t = Instant::now();
        for _ in 0..rounds {
            compose.frame();
        }
        let compose_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        for i in 0..rounds {
            src[i % 64] = i as u8;
            dst.copy_from_slice(std::hint::black_box(&src));
        }
        let copy_s = t.elapsed().as_secs_f64();
        std::hint::black_box(&dst);
        out.entry("compositor_bandwidth_over_memcpy_bandwidth".into())
            .or_default()
            .push(copy_s / compose_s);
    }
    Ok(out)
}

/// The full stream (null output, max pacing, 720p ultrafast, one encoder thread) against the
/// bare encoder on the same pictures, and with the recorder against the no-op probe.
struct PathRatios {
    cfg: streamer::config::StreamConfig,
    pictures: Vec<ffmpeg_next::frame::Video>,
}

const PATH_FRAMES: u64 = 150;

impl PathRatios {
    fn new() -> anyhow::Result<Self> {
        let mut cfg = streamer::config::StreamConfig::default();
        cfg.encoder.pipeline.threads = 1;
        cfg.renderer.backend = streamer::config::RenderBackend::Cpu;
        let v = &cfg.core.viewport;
        let scene = streamer::source::Scene::new(v.width, v.height);
        let pictures = (0..30)
            .map(|i| {
                let mut f = ffmpeg_next::frame::Video::new(
                    ffmpeg_next::format::Pixel::YUV420P,
                    v.width,
                    v.height,
                );
                scene.draw(i, streamer::encode::frame_planes(&mut f));
                f
            })
            .collect();
        Ok(PathRatios { cfg, pictures })
    }

    fn stream<P: streamer::probe::Probe + Sync>(&self, probe: &P) -> anyhow::Result<f64> {
        let mut s =
            streamer::stream::Stream::open(&self.cfg, &streamer::output::Output::Null, probe)?;
        let t = Instant::now();
        s.run(PATH_FRAMES, streamer::stream::Pacing::Max)?;
        s.finish()?;
        Ok(PATH_FRAMES as f64 / t.elapsed().as_secs_f64())
    }

    fn bare(&mut self) -> anyhow::Result<f64> {
        let mut enc =
            streamer::encode::Encoder::open(&streamer::encode::Settings::of(&self.cfg), false)?;
        let t = Instant::now();
        for id in 0..PATH_FRAMES {
            let n = self.pictures.len();
            enc.encode_frame(
                id,
                &mut self.pictures[id as usize % n],
                true,
                &streamer::probe::NoProbe,
                |p| {
                    std::hint::black_box(p.data().len());
                },
            )?;
        }
        enc.finish(&streamer::probe::NoProbe, |p| {
            std::hint::black_box(p.data().len());
        })?;
        Ok(PATH_FRAMES as f64 / t.elapsed().as_secs_f64())
    }

    /// (path ÷ bare, recorder ÷ no-op), one measurement each.
    fn once(&mut self) -> anyhow::Result<(f64, f64)> {
        let noop = self.stream(&streamer::probe::NoProbe)?;
        let bare = self.bare()?;
        let recorder = crate::record::Recorder::new();
        let recorded = self.stream(&recorder)?;
        Ok((noop / bare, recorded / noop))
    }
}
