//! The core stage: viewport, assets, layout and compositor — the guide's `CoreConfig`, all of
//! it. Until the GPU renderer lands, the compositor is the render stage: the synthetic scene
//! draws the moving background, then the layout's layers are blended over it.

pub mod assets;
pub mod compose;
pub mod layout;
pub mod viewport;

use crate::config::{PreloadStrategy, StreamConfig};
use crate::probe::Probe;
use crate::source::Planes;
use assets::{AssetCache, AssetError, AssetSource, CacheStats};
use compose::{ComposeError, ComposeStats, Compositor};
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
    #[error(transparent)]
    Compose(#[from] ComposeError),
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
        Ok(Core {
            assets: AssetCache::new(
                sources,
                c.assets.cache_size,
                Duration::from_secs(c.assets.cache_lifetime.into()),
            ),
            layout,
            compositor: Compositor::new(&c.composition)?,
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

    /// Updates the layout for frame `id` and blends the layers over `planes`.
    ///
    /// # Errors
    /// A lazily loaded asset failed, or the disk cache failed.
    pub fn render<P: Probe>(
        &mut self,
        id: u64,
        planes: &mut Planes<'_>,
        probe: &P,
    ) -> Result<(), CoreError> {
        if self.layout.layers().is_empty() {
            return Ok(());
        }
        let t_ms = id * 1000 / u64::from(self.fps);
        self.layout.update(t_ms, id, &self.viewport, probe);
        self.compositor.compose(
            planes,
            (self.viewport.width, self.viewport.height),
            &self.layout,
            &mut self.assets,
            id,
            probe,
        )?;
        // Caches clean up after themselves: expired assets go once a second.
        if self.last_expiry.elapsed() >= Duration::from_secs(1) {
            self.last_expiry = Instant::now();
            self.assets.expire(self.last_expiry);
        }
        Ok(())
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
