//! The core stage's parts timed on a point's own stream, before its window opens.

use super::figures::CoreFigures;
use std::time::{Duration, Instant};
use streamer::config::StreamConfig;
use streamer::core::CoreMetrics;
use streamer::probe::{NoProbe, Probe};
use streamer::stream::Stream;

/// Times the core's parts on the stream's own core (before the measured window, so the
/// window's figures are the stream's alone). `metrics` is filled in after the run.
pub(super) fn core_timings(stream: &mut Stream<'_, impl Probe>, cfg: &StreamConfig) -> CoreFigures {
    use streamer::core::assets::AssetCache;
    use streamer::core::viewport::Rect;
    let core = stream.core_mut();
    let n = 2000u32;
    let vp = core.viewport_mut().clone();
    let t = Instant::now();
    let mut placed = 0i64;
    for i in 0..n {
        let r = vp.transform(Rect {
            x: i as i32 * 7 % 1000,
            y: i as i32 * 3 % 600,
            w: 100 + i % 50,
            h: 60 + i % 30,
        });
        placed += i64::from(r.x);
    }
    std::hint::black_box(placed);
    let transform = t.elapsed().as_secs_f64() * 1e6 / f64::from(n);
    let t = Instant::now();
    for i in 0..n {
        let margin = streamer::config::Margin {
            x: vp.margin.x + i % 2,
            y: vp.margin.y,
        };
        core.viewport_mut().update(vp.grid, margin);
    }
    let update = t.elapsed().as_secs_f64() * 1e6 / f64::from(n);
    let resizes = 200u32;
    let t = Instant::now();
    for i in 0..resizes {
        let (w, h) = if i % 2 == 0 {
            (vp.width - 64, vp.height - 36)
        } else {
            (vp.width, vp.height)
        };
        core.viewport_mut().resize(w, h);
        core.replace_all();
    }
    let resize = t.elapsed().as_secs_f64() * 1e6 / f64::from(resizes);
    *core.viewport_mut() = vp;
    core.replace_all();
    // Cold and warm asset lookups on a fresh cache over the same sources.
    let sources = streamer::core::asset_sources(&cfg.core.assets).unwrap_or_default();
    let count = sources.len().max(1);
    let mut cache = AssetCache::new(sources, u64::MAX, Duration::from_secs(3600));
    let t = Instant::now();
    for id in 0..count {
        let _ = cache.get(id, 0, &NoProbe);
    }
    let cold = t.elapsed().as_secs_f64() * 1e3 / count as f64;
    let lookups = 10_000;
    let t = Instant::now();
    for i in 0..lookups {
        let _ = std::hint::black_box(cache.get(i % count, 0, &NoProbe));
    }
    let warm = t.elapsed().as_secs_f64() * 1e6 / lookups as f64;
    CoreFigures {
        metrics: CoreMetrics::default(),
        viewport_update_us: update,
        viewport_resize_us: resize,
        viewport_transform_us: transform,
        asset_cold_ms: cold,
        asset_warm_us: warm,
    }
}
