//! The GPU backend: the core's layers handed to the GPU renderer ([`super::gpu_compose`]) with
//! their textures from the core's asset cache, one frame at a time or in rounds of
//! `maxConcurrent` frames in flight, submitted by priority ([`super::queue`]); and the figures
//! it reports.

use super::error::RenderError;
use super::filter::{resample, texture_size};
use super::gpu_compose::{GpuLayer, GpuRenderer, Settings};
use super::metrics::{RenderMetrics, percent};
use super::queue::RenderQueue;
use crate::config::{FilterMode, StreamConfig, TextureQuality};
use crate::core::assets::{AssetCache, Image};
use crate::core::{Core, layout};
use crate::frame::Planes;
use crate::probe::Probe;

/// The GPU backend's state.
pub struct GpuBackend {
    gpu: GpuRenderer,
    filter: FilterMode,
    quality: TextureQuality,
    batch_size: u32,
    gop: u64,
    queue: RenderQueue<Job>,
    /// The layers of the frame being prepared (reused).
    layers: Vec<GpuLayer>,
    /// Frame ids of the last round, in the order they were submitted.
    submitted: Vec<u64>,
}

/// A frame waiting to be submitted: its place in the round and its layers.
struct Job {
    index: usize,
    id: u64,
    layers: Vec<GpuLayer>,
    assets: Vec<usize>,
}

/// The texture of `img` at `quality`, as the GPU renderer caches it.
fn texture_of(img: &Image, filter: FilterMode, quality: TextureQuality) -> (u32, u32, Vec<u8>) {
    let (w, h) = texture_size(img.width, img.height, quality);
    (
        w,
        h,
        resample(&img.rgba, img.width, img.height, w, h, filter),
    )
}

/// A layout layer as the GPU draws it: its asset's texture over its rectangle.
fn gpu_layer(l: &layout::Layer) -> GpuLayer {
    GpuLayer {
        key: l.asset as u64,
        rect: [l.rect.x, l.rect.y, l.rect.w as i32, l.rect.h as i32],
        opacity: l.opacity,
    }
}

impl GpuBackend {
    /// The GPU renderer for `cfg`.
    ///
    /// # Errors
    /// As [`GpuRenderer::new`].
    pub fn new(cfg: &StreamConfig) -> Result<Self, super::gpu_compose::GpuError> {
        let r = &cfg.renderer;
        Ok(GpuBackend {
            gpu: GpuRenderer::new(&Settings::of(cfg))?,
            filter: r.quality.filter_mode,
            quality: r.quality.texture_quality,
            batch_size: r.performance.batch_size,
            gop: cfg.encoder.gop.max(1).into(),
            queue: RenderQueue::new(r.performance.priority_levels),
            layers: Vec::new(),
            submitted: Vec::new(),
        })
    }

    /// Makes sure the textures of `assets` are in the GPU's cache, loading the assets through
    /// the asset cache.
    fn textures<P: Probe>(
        &mut self,
        cache: &mut AssetCache,
        assets: impl Iterator<Item = usize>,
        frame: u64,
        probe: &P,
    ) -> Result<(), RenderError> {
        for asset in assets {
            let image = cache.get(asset, frame, probe)?;
            let (filter, quality) = (self.filter, self.quality);
            self.gpu
                .texture(asset as u64, || texture_of(&image, filter, quality))?;
        }
        Ok(())
    }

    /// Composes `core`'s layers (updated for frame `id`) over `planes` and waits for them.
    ///
    /// # Errors
    /// A lazily loaded asset failed, or the GPU failed.
    pub fn render<P: Probe>(
        &mut self,
        core: &mut Core,
        id: u64,
        planes: &mut Planes<'_>,
        probe: &P,
    ) -> Result<(), RenderError> {
        let mut layers = std::mem::take(&mut self.layers);
        layers.clear();
        layers.extend(core.layers().iter().map(gpu_layer));
        let (layout, assets) = core.layout_and_assets();
        self.textures(assets, layout.layers().iter().map(|l| l.asset), id, probe)?;
        let composed = self.gpu.compose(planes, &layers);
        self.layers = layers;
        Ok(composed?)
    }

    /// Frames in flight at most.
    pub fn round_size(&self) -> usize {
        self.gpu.frame_sets()
    }

    /// Renders a round of frames: `core`'s layout is updated frame by frame in id order, the
    /// frames are submitted by priority (`priorityLevels`: see [`super::queue::level`]) and all are in flight together, then read back.
    ///
    /// # Errors
    /// As [`render`](Self::render).
    pub fn render_round<P: Probe>(
        &mut self,
        core: &mut Core,
        frames: &mut [(u64, Planes<'_>)],
        probe: &P,
    ) -> Result<(), RenderError> {
        let top = self.queue.top();
        for (index, (id, _)) in frames.iter().enumerate() {
            core.update(*id, probe);
            let layers = core.layers();
            let level = super::queue::level(*id, self.gop, top);
            self.queue.push(
                level,
                Job {
                    index,
                    id: *id,
                    layers: layers.iter().map(gpu_layer).collect(),
                    assets: layers.iter().map(|l| l.asset).collect(),
                },
            );
        }
        let mut sets = vec![usize::MAX; frames.len()];
        self.submitted.clear();
        let mut failed = None;
        while let Some(job) = self.queue.pop() {
            if failed.is_some() {
                continue;
            }
            let submitted = self
                .textures(core.assets_mut(), job.assets.iter().copied(), job.id, probe)
                .and_then(|()| Ok(self.gpu.submit(&frames[job.index].1, &job.layers)?));
            match submitted {
                Ok(set) => {
                    sets[job.index] = set;
                    self.submitted.push(job.id);
                }
                Err(e) => failed = Some(e),
            }
        }
        // Whatever was submitted is read back, so the frame sets are free again.
        for ((_, planes), set) in frames.iter_mut().zip(&sets) {
            if *set != usize::MAX {
                let finished = self.gpu.finish(*set, planes);
                if failed.is_none() {
                    failed = finished.err().map(RenderError::from);
                }
            }
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Frame ids of the last round, in the order they were submitted.
    pub fn last_round_order(&self) -> &[u64] {
        &self.submitted
    }

    /// This backend's RenderMetrics (the fields every backend shares are the renderer's).
    pub fn metrics(&self) -> RenderMetrics {
        let s = self.gpu.stats();
        let frames = s.frames.max(1) as f64;
        let draw = s.draw_ns as f64 / frames / 1e6;
        let post = s.readback_ns as f64 / frames / 1e6;
        RenderMetrics {
            backend: "gpu".into(),
            adapter: Some(self.gpu.adapter.clone()),
            setup_time: s.setup_ns as f64 / 1e6,
            draw_time: draw,
            post_process_time: post,
            total_time: draw + post,
            draw_calls: s.draw_calls as f64 / frames,
            triangle_count: s.triangles as f64 / frames,
            texture_memory: s.texture_cache_bytes + s.frame_texture_bytes,
            gpu_memory: s.gpu_bytes,
            batch_efficiency: if s.draw_calls == 0 {
                0.0
            } else {
                s.layers as f64 / s.draw_calls as f64 / f64::from(self.batch_size.max(1))
            },
            cache_hit_rate: percent(s.texture_hits, s.texture_misses),
            geometry_hit_rate: percent(s.geometry_hits, s.geometry_misses),
            shader_hit_rate: percent(s.shader_hits, s.shader_misses),
            texture_evictions: s.texture_evictions,
            max_concurrent: self.gpu.frame_sets() as u32,
            transfer_bytes: s.tile_bytes as f64 / frames,
            ..RenderMetrics::default()
        }
    }
}
