//! The guide's `CoreConfig`: viewport, assets, layout and composition, their defaults and
//! their range checks.

use super::Checker;
use serde::{Deserialize, Serialize};

/// The guide's `CoreConfig`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CoreConfig {
    pub viewport: ViewportConfig,
    pub assets: AssetsConfig,
    pub layout: LayoutConfig,
    pub composition: CompositionConfig,
}

impl CoreConfig {
    pub(super) fn check(&self, c: &mut Checker) {
        self.viewport.check(c);
        self.assets.check(c);
        self.layout.check(c);
        self.composition.check(c);
    }
}

/// Output picture geometry and rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct ViewportConfig {
    /// Width in pixels (even: the stream is 4:2:0).
    pub width: u32,
    /// Height in pixels (even).
    pub height: u32,
    /// Layout positions snap to this grid, in pixels.
    pub grid_size: u32,
    /// Content is kept this far inside the frame's edges, in pixels.
    pub safe_area_margin: Margin,
    /// Frames per second of the stream (not in the guide; the stream's clock).
    pub fps: u32,
}

impl Default for ViewportConfig {
    fn default() -> Self {
        ViewportConfig {
            width: 1280,
            height: 720,
            grid_size: 8,
            safe_area_margin: Margin { x: 64, y: 36 },
            fps: 30,
        }
    }
}

impl ViewportConfig {
    fn check(&self, c: &mut Checker) {
        let v = self;
        for (field, value, max) in [
            ("core.viewport.width", v.width, 7680),
            ("core.viewport.height", v.height, 4320),
        ] {
            if !(16..=max).contains(&value) || value % 2 != 0 {
                c.fail(field, value, format!("an even number in 16..={max}"));
            }
        }
        c.range("core.viewport.fps", v.fps.into(), 1, 240);
        c.range(
            "core.viewport.gridSize",
            v.grid_size.into(),
            1,
            v.width.min(v.height).max(1).into(),
        );
        c.range(
            "core.viewport.safeAreaMargin.x",
            v.safe_area_margin.x.into(),
            0,
            (v.width / 2).saturating_sub(1).into(),
        );
        c.range(
            "core.viewport.safeAreaMargin.y",
            v.safe_area_margin.y.into(),
            0,
            (v.height / 2).saturating_sub(1).into(),
        );
    }
}

/// A margin in pixels on each axis.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Margin {
    pub x: u32,
    pub y: u32,
}

/// Asset cache settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct AssetsConfig {
    /// Cache bound in bytes.
    pub cache_size: u64,
    /// Load every asset before the first frame (`eager`) or on first use (`lazy`).
    pub preload_strategy: PreloadStrategy,
    /// Seconds an unused entry stays cached.
    pub cache_lifetime: u32,
    /// A folder of PNG/JPEG files to use as layer images (not in the guide); unset: generated
    /// images.
    pub dir: Option<std::path::PathBuf>,
}

impl Default for AssetsConfig {
    fn default() -> Self {
        AssetsConfig {
            cache_size: 256 * 1024 * 1024,
            preload_strategy: PreloadStrategy::Eager,
            cache_lifetime: 300,
            dir: None,
        }
    }
}

impl AssetsConfig {
    fn check(&self, c: &mut Checker) {
        c.range("core.assets.cacheSize", self.cache_size, 1, 1 << 40);
        c.range(
            "core.assets.cacheLifetime",
            self.cache_lifetime.into(),
            1,
            86_400,
        );
    }
}

/// When assets are loaded.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    strum::Display,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum PreloadStrategy {
    Eager,
    Lazy,
}

/// Layout engine settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct LayoutConfig {
    /// Most layers a scene may hold.
    pub max_layers: u32,
    /// Milliseconds between layout recomputations.
    pub update_interval: u32,
    /// Apply pending changes once per frame instead of one by one.
    pub batch_updates: bool,
    /// Overlay layers in the synthetic scene, on top of its moving background (not in the
    /// guide, which leaves the scene to the application): at most `maxLayers`.
    pub layers: u32,
}

impl Default for LayoutConfig {
    fn default() -> Self {
        LayoutConfig {
            max_layers: 32,
            update_interval: 33,
            batch_updates: true,
            layers: 4,
        }
    }
}

impl LayoutConfig {
    fn check(&self, c: &mut Checker) {
        c.range("core.layout.maxLayers", self.max_layers.into(), 1, 256);
        c.range(
            "core.layout.layers",
            self.layers.into(),
            0,
            self.max_layers.into(),
        );
        c.range(
            "core.layout.updateInterval",
            self.update_interval.into(),
            1,
            60_000,
        );
    }
}

/// Compositor settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct CompositionConfig {
    /// Worker threads blending bands of the frame.
    pub thread_pool: u32,
    /// Layers blended per pass.
    pub batch_size: u32,
    /// Where pre-composed static layer groups are kept.
    pub cache_strategy: CacheStrategy,
    /// Integer blending and nearest scaling (`speed`) or exact rounding and bilinear (`quality`).
    pub optimize_for: OptimizeFor,
}

impl Default for CompositionConfig {
    fn default() -> Self {
        CompositionConfig {
            thread_pool: 2,
            batch_size: 8,
            cache_strategy: CacheStrategy::Memory,
            optimize_for: OptimizeFor::Speed,
        }
    }
}

impl CompositionConfig {
    fn check(&self, c: &mut Checker) {
        c.range(
            "core.composition.threadPool",
            self.thread_pool.into(),
            1,
            64,
        );
        c.range("core.composition.batchSize", self.batch_size.into(), 1, 256);
    }
}

/// Where the compositor caches pre-composed layers.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    strum::Display,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum CacheStrategy {
    Memory,
    Disk,
}

/// What the compositor trades for what.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    strum::Display,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum OptimizeFor {
    Speed,
    Quality,
}
