//! The core stage: viewport, assets and layout — the guide's `CoreConfig`. The synthetic scene
//! draws the moving background; the core keeps the layout's layers for each frame and the asset
//! cache their images come from, and the renderer (the `render` module, which reads them)
//! composes those layers over the background: the core knows nothing of how.

pub mod assets;
pub mod layout;
pub mod viewport;

use crate::config::{AssetsConfig, CoreConfig, PreloadStrategy};
use crate::probe::Probe;
use assets::{AssetCache, AssetError, AssetSource, CacheStats};
use layout::{Layout, LayoutStats};
use serde::{Deserialize, Serialize};
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

/// The assets `assets` asks for: the PNG/JPEG files of `core.assets.dir`, or (unset or empty)
/// the generated badges.
///
/// # Errors
/// The folder cannot be read or holds no image.
pub fn asset_sources(assets: &AssetsConfig) -> Result<Vec<AssetSource>, AssetError> {
    match &assets.dir {
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

/// The CPU compositor's counters (the `render::cpu` module keeps them); here because
/// [`CoreMetrics`] reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ComposeStats {
    pub frames: u64,
    /// Blending passes (one per `batchSize` items).
    pub passes: u64,
    /// Items blended (layers, or the static group standing for several).
    pub items: u64,
    /// Layers those items stand for.
    pub layers: u64,
    /// Sprites built (an asset at a new size).
    pub sprites_built: u64,
    /// Static-group (re)builds.
    pub group_builds: u64,
    /// Bytes of the sprites and the static group.
    pub sprite_bytes: u64,
}

impl ComposeStats {
    /// The guide's batchEfficiency: items per pass ÷ batchSize (1 = every pass full).
    pub fn batch_efficiency(&self, batch_size: u32) -> f64 {
        if self.passes == 0 {
            return 0.0;
        }
        self.items as f64 / self.passes as f64 / f64::from(batch_size.max(1))
    }
}

/// The core stage of one stream.
pub struct Core {
    viewport: Viewport,
    assets: AssetCache,
    layout: Layout,
    fps: u32,
    batch_size: u32,
    lazy: bool,
    last_expiry: Instant,
}

/// Why the core could not be set up or run.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error(transparent)]
    Asset(#[from] AssetError),
}

impl Core {
    /// Sets up the core for the `core` settings `c` (assets from `core.assets.dir`, or
    /// generated).
    ///
    /// # Errors
    /// The asset folder is unusable.
    pub fn new(c: &CoreConfig) -> Result<Self, CoreError> {
        let sources = asset_sources(&c.assets)?;
        let viewport = Viewport::new(&c.viewport);
        let layout = Layout::new(&c.layout, &viewport, sources.len());
        Ok(Core {
            assets: AssetCache::new(
                sources,
                c.assets.cache_size,
                Duration::from_secs(c.assets.cache_lifetime.into()),
            ),
            layout,
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

    /// Updates the layout for frame `id`.
    pub fn update<P: Probe>(&mut self, id: u64, probe: &P) {
        let t_ms = id * 1000 / u64::from(self.fps);
        self.layout.update(t_ms, id, &self.viewport, probe);
    }

    /// The frame's layers, bottom first, as the last [`update`](Self::update) left them.
    pub fn layers(&self) -> &[layout::Layer] {
        self.layout.layers()
    }

    /// The frame size.
    pub fn size(&self) -> (u32, u32) {
        (self.viewport.width, self.viewport.height)
    }

    /// The layout and the asset cache its layers' images come from, for the renderer.
    pub fn layout_and_assets(&mut self) -> (&Layout, &mut AssetCache) {
        (&self.layout, &mut self.assets)
    }

    /// The asset cache, for the renderer.
    pub fn assets_mut(&mut self) -> &mut AssetCache {
        &mut self.assets
    }

    /// Caches clean up after themselves: expired assets go once a second (the renderer calls
    /// this after each frame or round).
    pub fn expire(&mut self) {
        if self.last_expiry.elapsed() >= Duration::from_secs(1) {
            self.last_expiry = Instant::now();
            self.assets.expire(self.last_expiry);
        }
    }

    /// Memory pressure: drops the asset cache; returns the bytes released.
    pub fn trim(&mut self) -> u64 {
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

    /// The guide's CoreMetrics now, with the CPU compositor's counters and the layers its
    /// static group pre-composes (defaults where the GPU renders).
    pub fn metrics(&self, composition: ComposeStats, grouped_layers: u32) -> CoreMetrics {
        let a = self.assets.stats();
        let k = composition;
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
            grouped_layers,
        }
    }
}
