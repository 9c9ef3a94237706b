//! The core stage: viewport, assets, layout and compositor — the guide's `CoreConfig`, all of
//! it. The synthetic scene draws the moving background, then the layout's layers are composed
//! over it by the render backend (`renderer.backend`): the CPU compositor ([`compose`]) or the
//! GPU renderer ([`crate::render::gpu_compose`]), which takes the layout's layers with their
//! textures from the same asset cache.

pub mod assets;
pub mod compose;
pub mod layout;
pub mod viewport;

use crate::config::{FilterMode, PreloadStrategy, RenderBackend, StreamConfig, TextureQuality};
use crate::probe::Probe;
use crate::render::RenderMetrics;
use crate::render::filter::{resample, texture_size};
use crate::render::gpu::{self, Api};
use crate::render::gpu_compose::{GpuError, GpuLayer, GpuRenderer, Settings};
use crate::render::queue::RenderQueue;
use crate::source::Planes;
use assets::{AssetCache, AssetError, AssetSource, CacheStats, Image};
use compose::{ComposeError, ComposeStats, Compositor};
use layout::{Layout, LayoutStats};
use serde::{Deserialize, Serialize};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use viewport::Viewport;

/// The generated assets when no folder is configured: four badges in two sizes.
pub fn generated_assets() -> Vec<AssetSource> {
    (0..4)
        .map(|kind| AssetSource::Generated {
            kind,
            width: if kind % 2 == 0 { 480 } else { 320 },
            height: if kind % 2 == 0 { 270 } else { 180 },
        })
        .collect()
}

/// The assets `cfg` asks for: the PNG/JPEG files of `core.assets.dir`, or (unset or empty) the
/// generated badges.
///
/// # Errors
/// The folder cannot be read or holds no image.
pub fn asset_sources(cfg: &StreamConfig) -> Result<Vec<AssetSource>, AssetError> {
    match &cfg.core.assets.dir {
        Some(dir) if !dir.as_os_str().is_empty() => assets::files_in(dir),
        _ => Ok(generated_assets()),
    }
}

/// The guide's `CoreMetrics`, from the core's counters (times are means, ms).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CoreMetrics {
    pub assets: CacheStats,
    /// Cache hit percentage.
    pub cache_hit_rate: f64,
    /// Asset cache plus the compositor's sprites, bytes.
    pub memory_usage: u64,
    /// Mean asset load time, ms.
    pub load_time: f64,
    pub layout: LayoutStats,
    pub layer_count: u32,
    pub complexity_score: f64,
    pub composition: ComposeStats,
    pub batch_efficiency: f64,
    /// Layers the static group pre-composes.
    pub grouped_layers: u32,
}

/// The core stage of one stream.
pub struct Core {
    viewport: Viewport,
    assets: AssetCache,
    layout: Layout,
    compositor: Compositor,
    gpu: Option<Box<GpuPath>>,
    /// Why `auto` runs on the CPU, when it does.
    fallback: Option<String>,
    fps: u32,
    batch_size: u32,
    lazy: bool,
    last_expiry: Instant,
    /// Frames rendered and the wall time they took (layout and composition).
    rendered: u64,
    render_ns: u64,
}

/// The GPU backend's state.
struct GpuPath {
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

/// What `auto` found on each API (probed once per process).
static AUTO: Mutex<Vec<(Api, Result<(), String>)>> = Mutex::new(Vec::new());

/// Whether `auto` should use the GPU on `api`: a hardware adapter is there. A software one
/// (lavapipe, llvmpipe) renders slower than the CPU compositor, so `auto` passes it by.
fn auto_gpu(api: Api) -> Result<(), String> {
    let mut seen = AUTO
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((_, r)) = seen.iter().find(|(a, _)| *a == api) {
        return r.clone();
    }
    let r = match gpu::pick(api) {
        Ok((_, info)) if info.device_type == "cpu" => Err(format!(
            "only a software adapter, {info}, which is slower than the CPU compositor"
        )),
        Ok(_) => Ok(()),
        Err(e) => Err(e.to_string()),
    };
    if let Err(why) = &r {
        eprintln!("stream-manager: renderer.backend = auto: using the CPU compositor ({why})");
    }
    seen.push((api, r.clone()));
    r
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

/// Why the core could not be set up or run.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error(transparent)]
    Asset(#[from] AssetError),
    #[error(transparent)]
    Compose(#[from] ComposeError),
    #[error("renderer.backend = gpu: {0}")]
    Gpu(#[from] GpuError),
}

/// A layout layer as the GPU draws it: its asset's texture over its rectangle.
fn gpu_layer(l: &layout::Layer) -> GpuLayer {
    GpuLayer {
        key: l.asset as u64,
        rect: [l.rect.x, l.rect.y, l.rect.w as i32, l.rect.h as i32],
        opacity: l.opacity,
    }
}

impl GpuPath {
    /// Makes sure the textures of `assets` are in the GPU's cache, loading the assets through
    /// the asset cache.
    fn textures<P: Probe>(
        &mut self,
        cache: &mut AssetCache,
        assets: impl Iterator<Item = usize>,
        frame: u64,
        probe: &P,
    ) -> Result<(), CoreError> {
        for asset in assets {
            let image = cache.get(asset, frame, probe)?;
            let (filter, quality) = (self.filter, self.quality);
            self.gpu
                .texture(asset as u64, || texture_of(&image, filter, quality))?;
        }
        Ok(())
    }
}

impl Core {
    /// Sets up the core for `cfg` (assets from `core.assets.dir`, or generated).
    ///
    /// # Errors
    /// The asset folder is unusable or the compositor cannot start.
    pub fn new(cfg: &StreamConfig) -> Result<Self, CoreError> {
        let c = &cfg.core;
        let sources = asset_sources(cfg)?;
        let viewport = Viewport::new(&c.viewport);
        let layout = Layout::new(&c.layout, &viewport, sources.len());
        let r = &cfg.renderer;
        let gpu_path = || -> Result<Box<GpuPath>, GpuError> {
            Ok(Box::new(GpuPath {
                gpu: GpuRenderer::new(&Settings::of(cfg))?,
                filter: r.quality.filter_mode,
                quality: r.quality.texture_quality,
                batch_size: r.performance.batch_size,
                gop: cfg.encoder.gop.max(1).into(),
                queue: RenderQueue::new(r.performance.priority_levels),
                layers: Vec::new(),
                submitted: Vec::new(),
            }))
        };
        let (gpu, fallback) = match r.backend {
            RenderBackend::Cpu => (None, None),
            RenderBackend::Gpu => (Some(gpu_path()?), None),
            RenderBackend::Auto => match auto_gpu(r.api).map_err(|e| e.to_string()) {
                Ok(()) => match gpu_path() {
                    Ok(g) => (Some(g), None),
                    Err(e) => {
                        eprintln!(
                            "stream-manager: renderer.backend = auto: using the CPU compositor \
                             ({e})"
                        );
                        (None, Some(e.to_string()))
                    }
                },
                Err(why) => (None, Some(why)),
            },
        };
        Ok(Core {
            gpu,
            fallback,
            rendered: 0,
            render_ns: 0,
            assets: AssetCache::new(
                sources,
                c.assets.cache_size,
                Duration::from_secs(c.assets.cache_lifetime.into()),
            ),
            layout,
            compositor: Compositor::new(&c.composition)?
                .with_sampling(r.quality.filter_mode, r.quality.texture_quality),
            viewport,
            fps: c.viewport.fps.max(1),
            batch_size: c.composition.batch_size,
            lazy: c.assets.preload_strategy == PreloadStrategy::Lazy,
            last_expiry: Instant::now(),
        })
    }

    /// Eager preloading (lazy: nothing to do).
    ///
    /// # Errors
    /// An asset could not be loaded.
    pub fn setup<P: Probe>(&mut self, probe: &P) -> Result<(), CoreError> {
        if !self.lazy {
            self.assets.preload(probe)?;
        }
        Ok(())
    }

    /// Updates the layout for frame `id` and composes the layers over `planes`.
    ///
    /// # Errors
    /// A lazily loaded asset failed, the disk cache failed, or the GPU failed.
    pub fn render<P: Probe>(
        &mut self,
        id: u64,
        planes: &mut Planes<'_>,
        probe: &P,
    ) -> Result<(), CoreError> {
        if self.layout.layers().is_empty() && self.gpu.is_none() {
            return Ok(());
        }
        let started = Instant::now();
        let t_ms = id * 1000 / u64::from(self.fps);
        self.layout.update(t_ms, id, &self.viewport, probe);
        match &mut self.gpu {
            None => self.compositor.compose(
                planes,
                (self.viewport.width, self.viewport.height),
                &self.layout,
                &mut self.assets,
                id,
                probe,
            )?,
            Some(g) => {
                let mut layers = std::mem::take(&mut g.layers);
                layers.clear();
                layers.extend(self.layout.layers().iter().map(gpu_layer));
                let assets = self.layout.layers().iter().map(|l| l.asset);
                g.textures(&mut self.assets, assets, id, probe)?;
                let composed = g.gpu.compose(planes, &layers);
                g.layers = layers;
                composed?;
            }
        }
        self.rendered += 1;
        self.render_ns += started.elapsed().as_nanos() as u64;
        self.expire();
        Ok(())
    }

    /// Frames the render stage takes at once: `maxConcurrent` on the GPU (frames in flight),
    /// 1 on the CPU.
    pub fn round_size(&self) -> usize {
        self.gpu.as_ref().map_or(1, |g| g.gpu.frame_sets())
    }

    /// Renders a round of frames (at most [`round_size`](Self::round_size)), each `(id,
    /// planes)` holding its background: the layout is updated frame by frame in id order, the
    /// frames are submitted to the GPU by priority (`priorityLevels`; a GOP's first frame, the
    /// keyframe, at the top level) and all are in flight together, then read back.
    ///
    /// # Errors
    /// As [`render`](Self::render).
    pub fn render_round<P: Probe>(
        &mut self,
        frames: &mut [(u64, Planes<'_>)],
        probe: &P,
    ) -> Result<(), CoreError> {
        let Some(g) = &mut self.gpu else {
            for (id, planes) in frames.iter_mut() {
                self.render(*id, planes, probe)?;
            }
            return Ok(());
        };
        let started = Instant::now();
        let top = g.queue.top();
        for (index, (id, _)) in frames.iter().enumerate() {
            let t_ms = id * 1000 / u64::from(self.fps);
            self.layout.update(t_ms, *id, &self.viewport, probe);
            let layers = self.layout.layers();
            let level = if id % g.gop == 0 { top } else { 0 };
            g.queue.push(
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
        g.submitted.clear();
        let mut failed = None;
        while let Some(job) = g.queue.pop() {
            if failed.is_some() {
                continue;
            }
            let submitted = g
                .textures(&mut self.assets, job.assets.iter().copied(), job.id, probe)
                .and_then(|()| Ok(g.gpu.submit(&frames[job.index].1, &job.layers)?));
            match submitted {
                Ok(set) => {
                    sets[job.index] = set;
                    g.submitted.push(job.id);
                }
                Err(e) => failed = Some(e),
            }
        }
        // Whatever was submitted is read back, so the frame sets are free again.
        for ((_, planes), set) in frames.iter_mut().zip(&sets) {
            if *set != usize::MAX {
                let finished = g.gpu.finish(*set, planes);
                if failed.is_none() {
                    failed = finished.err().map(CoreError::from);
                }
            }
        }
        if let Some(e) = failed {
            return Err(e);
        }
        self.rendered += frames.len() as u64;
        self.render_ns += started.elapsed().as_nanos() as u64;
        self.expire();
        Ok(())
    }

    /// Frame ids of the last GPU round, in the order they were submitted.
    pub fn last_round_order(&self) -> &[u64] {
        self.gpu.as_ref().map_or(&[], |g| &g.submitted)
    }

    /// Caches clean up after themselves: expired assets go once a second.
    fn expire(&mut self) {
        if self.last_expiry.elapsed() >= Duration::from_secs(1) {
            self.last_expiry = Instant::now();
            self.assets.expire(self.last_expiry);
        }
    }

    /// The backend that runs: `gpu` or `cpu`.
    pub fn backend(&self) -> &'static str {
        if self.gpu.is_some() { "gpu" } else { "cpu" }
    }

    /// The guide's RenderMetrics now.
    pub fn render_metrics(&self) -> RenderMetrics {
        let n = self.rendered.max(1) as f64;
        let frame_time = self.render_ns as f64 / n / 1e6;
        let fps = if frame_time > 0.0 {
            1000.0 / frame_time
        } else {
            0.0
        };
        let percent = |hits: u64, misses: u64| crate::hit_rate(hits, misses) * 100.0;
        match &self.gpu {
            None => {
                let k = self.compositor.stats();
                let frames = k.frames.max(1) as f64;
                RenderMetrics {
                    backend: "cpu".into(),
                    fallback: self.fallback.clone(),
                    frames: self.rendered,
                    draw_time: frame_time,
                    total_time: frame_time,
                    draw_calls: k.passes as f64 / frames,
                    texture_memory: k.sprite_bytes,
                    fps,
                    frame_time,
                    batch_efficiency: k.batch_efficiency(self.batch_size),
                    cache_hit_rate: percent(
                        k.layers.saturating_sub(k.sprites_built),
                        k.sprites_built,
                    ),
                    max_concurrent: 1,
                    ..RenderMetrics::default()
                }
            }
            Some(g) => {
                let s = g.gpu.stats();
                let frames = s.frames.max(1) as f64;
                let draw = s.draw_ns as f64 / frames / 1e6;
                let post = s.readback_ns as f64 / frames / 1e6;
                RenderMetrics {
                    backend: "gpu".into(),
                    adapter: Some(g.gpu.adapter.clone()),
                    fallback: None,
                    frames: self.rendered,
                    setup_time: s.setup_ns as f64 / 1e6,
                    draw_time: draw,
                    post_process_time: post,
                    total_time: draw + post,
                    draw_calls: s.draw_calls as f64 / frames,
                    triangle_count: s.triangles as f64 / frames,
                    texture_memory: s.texture_cache_bytes + s.frame_texture_bytes,
                    gpu_memory: s.gpu_bytes,
                    fps,
                    frame_time,
                    batch_efficiency: if s.draw_calls == 0 {
                        0.0
                    } else {
                        s.layers as f64 / s.draw_calls as f64 / f64::from(g.batch_size.max(1))
                    },
                    cache_hit_rate: percent(s.texture_hits, s.texture_misses),
                    geometry_hit_rate: percent(s.geometry_hits, s.geometry_misses),
                    shader_hit_rate: percent(s.shader_hits, s.shader_misses),
                    texture_evictions: s.texture_evictions,
                    max_concurrent: g.gpu.frame_sets() as u32,
                    transfer_bytes: s.tile_bytes as f64 / frames,
                }
            }
        }
    }

    /// Memory pressure: drops the asset cache and the compositor's sprites; returns the asset
    /// bytes released.
    pub fn trim(&mut self) -> u64 {
        self.compositor.trim();
        self.assets.trim()
    }

    /// The viewport, to time its operations.
    pub fn viewport_mut(&mut self) -> &mut Viewport {
        &mut self.viewport
    }

    /// The layout and viewport, to time a re-placement.
    pub fn replace_all(&mut self) {
        self.layout.replace_all(&self.viewport);
    }

    /// The guide's CoreMetrics now.
    pub fn metrics(&self) -> CoreMetrics {
        let a = self.assets.stats();
        let k = self.compositor.stats();
        let l = self.layout.stats();
        CoreMetrics {
            assets: a,
            cache_hit_rate: a.hit_rate() * 100.0,
            memory_usage: a.bytes + k.sprite_bytes,
            load_time: if a.loads == 0 {
                0.0
            } else {
                a.load_us as f64 / a.loads as f64 / 1000.0
            },
            layout: l,
            layer_count: self.layout.layers().len() as u32,
            complexity_score: l.complexity,
            composition: k,
            batch_efficiency: k.batch_efficiency(self.batch_size),
            grouped_layers: self.compositor.grouped_layers() as u32,
        }
    }
}
