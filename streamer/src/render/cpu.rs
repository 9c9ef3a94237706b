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
}

impl CpuRenderer {
    /// The compositor for `cfg`, sampling as `renderer.quality` says.
    ///
    /// # Errors
    /// The thread pool or the disk cache's folder could not be created.
    pub fn new(cfg: &StreamConfig) -> Result<Self, ComposeError> {
        let q = &cfg.renderer.quality;
        Ok(CpuRenderer {
            compositor: Compositor::new(&cfg.core.composition)?
                .with_sampling(q.filter_mode, q.texture_quality),
            batch_size: cfg.core.composition.batch_size,
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
        self.compositor
            .compose(planes, size, layout, assets, id, probe)
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

    /// This backend's RenderMetrics, for `frame_time` ms a frame (the fields every backend
    /// shares are the renderer's).
    pub fn metrics(&self, frame_time: f64) -> RenderMetrics {
        let k = self.compositor.stats();
        let frames = k.frames.max(1) as f64;
        RenderMetrics {
            backend: "cpu".into(),
            draw_time: frame_time,
            total_time: frame_time,
            draw_calls: k.passes as f64 / frames,
            texture_memory: k.sprite_bytes,
            batch_efficiency: k.batch_efficiency(self.batch_size),
            cache_hit_rate: percent(k.layers.saturating_sub(k.sprites_built), k.sprites_built),
            max_concurrent: 1,
            ..RenderMetrics::default()
        }
    }
}
