//! The CPU backend: the compositor ([`compose`]) over each frame, one frame at a time, and the
//! figures it reports.

pub mod compose;

pub use compose::{ComposeError, Compositor, Sprite, scale, sprite};

use super::metrics::{RenderMetrics, percent};
use crate::config::StreamConfig;
use crate::core::{ComposeStats, Core};
use crate::frame::Planes;
use crate::probe::Probe;

/// The CPU compositor as a render backend.
pub struct CpuRenderer {
    compositor: Compositor,
    /// `core.composition.batchSize`.
    batch_size: u32,
    /// Setting the compositor up (its thread pool, its caches), ns.
    setup_ns: u64,
    /// Blending, every frame so far, ns.
    draw_ns: u64,
    drawn: u64,
}

impl CpuRenderer {
    /// The compositor for `cfg`, sampling as `renderer.quality` says.
    ///
    /// # Errors
    /// The thread pool or the disk cache's folder could not be created.
    pub fn new(cfg: &StreamConfig) -> Result<Self, ComposeError> {
        let q = &cfg.renderer.quality;
        let started = std::time::Instant::now();
        let compositor =
            Compositor::new(&cfg.core.composition)?.with_sampling(q.filter_mode, q.texture_quality);
        Ok(CpuRenderer {
            compositor,
            batch_size: cfg.core.composition.batch_size,
            setup_ns: started.elapsed().as_nanos() as u64,
            draw_ns: 0,
            drawn: 0,
        })
    }

    /// Composes `core`'s layers (updated for frame `id`) over `planes`.
    ///
    /// # Errors
    /// A lazily loaded asset failed, or the disk cache failed.
    pub fn render<P: Probe>(
        &mut self,
        core: &mut Core,
        id: u64,
        planes: &mut Planes<'_>,
        probe: &P,
    ) -> Result<(), ComposeError> {
        let size = core.size();
        let (layout, assets) = core.layout_and_assets();
        let started = std::time::Instant::now();
        let composed = self
            .compositor
            .compose(planes, size, layout, assets, id, probe);
        self.draw_ns += started.elapsed().as_nanos() as u64;
        self.drawn += 1;
        composed
    }

    /// The compositor's counters and the layers its static group pre-composes (the core's
    /// figures report them).
    pub fn composition(&self) -> (ComposeStats, u32) {
        (
            self.compositor.stats(),
            self.compositor.grouped_layers() as u32,
        )
    }

    /// Memory pressure: drops the compositor's sprites.
    pub fn trim(&mut self) {
        self.compositor.trim();
    }

    /// This backend's RenderMetrics, measured on its own clock: setting the compositor up, and
    /// blending a frame (the draw; nothing is read back, so post-processing is none and the
    /// total is the draw). The fields every backend shares are the renderer's.
    pub fn metrics(&self) -> RenderMetrics {
        let k = self.compositor.stats();
        let frames = k.frames.max(1) as f64;
        let draw_time = self.draw_ns as f64 / self.drawn.max(1) as f64 / 1e6;
        RenderMetrics {
            backend: "cpu".into(),
            setup_time: self.setup_ns as f64 / 1e6,
            draw_time,
            total_time: draw_time,
            draw_calls: k.passes as f64 / frames,
            texture_memory: k.sprite_bytes,
            batch_efficiency: k.batch_efficiency(self.batch_size),
            cache_hit_rate: percent(k.layers.saturating_sub(k.sprites_built), k.sprites_built),
            max_concurrent: 1,
            ..RenderMetrics::default()
        }
    }
}
