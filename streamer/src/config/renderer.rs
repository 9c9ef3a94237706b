//! The guide's `RendererConfig`: where the render stage runs, on which graphics API, its
//! performance, quality and memory settings, their defaults and their range checks.

use super::Checker;
use serde::{Deserialize, Serialize};

/// The guide's `RendererConfig`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RendererConfig {
    /// Where the render stage runs: `gpu` (wgpu; an error when there is no adapter), `cpu`
    /// (the core's compositor), or `auto` (the GPU when a hardware adapter is found, else the
    /// CPU compositor, with a log line saying why).
    pub backend: RenderBackend,
    /// Graphics API for the GPU backend: `vulkan`, `gl` or `auto` (`WGPU_BACKEND` overrides).
    pub api: Api,
    pub performance: RenderPerformance,
    pub quality: RenderQuality,
    pub memory: RenderMemory,
}

impl RendererConfig {
    pub(super) fn check(&self, c: &mut Checker) {
        self.performance.check(c);
        self.memory.check(c);
    }
}

/// Where the render stage runs.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    Serialize,
    Deserialize,
    strum::Display,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum RenderBackend {
    Gpu,
    Cpu,
    #[default]
    Auto,
}

/// Which graphics API to look for adapters on (`render::gpu` maps it to wgpu's backends).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    Serialize,
    Deserialize,
    strum::Display,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum Api {
    Vulkan,
    Gl,
    #[default]
    Auto,
}

/// Renderer concurrency settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct RenderPerformance {
    /// Frames rendered at once.
    pub max_concurrent: u32,
    /// Layers per draw call.
    pub batch_size: u32,
    /// Levels of the render job priority queue.
    pub priority_levels: u32,
}

impl Default for RenderPerformance {
    fn default() -> Self {
        RenderPerformance {
            max_concurrent: 2,
            batch_size: 16,
            priority_levels: 3,
        }
    }
}

impl RenderPerformance {
    fn check(&self, c: &mut Checker) {
        c.range(
            "renderer.performance.maxConcurrent",
            self.max_concurrent.into(),
            1,
            16,
        );
        c.range(
            "renderer.performance.batchSize",
            self.batch_size.into(),
            1,
            1024,
        );
        c.range(
            "renderer.performance.priorityLevels",
            self.priority_levels.into(),
            1,
            16,
        );
    }
}

/// Renderer quality settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct RenderQuality {
    /// MSAA 4x.
    pub antialiasing: bool,
    pub texture_quality: TextureQuality,
    pub filter_mode: FilterMode,
}

impl Default for RenderQuality {
    fn default() -> Self {
        RenderQuality {
            antialiasing: false,
            texture_quality: TextureQuality::High,
            filter_mode: FilterMode::Linear,
        }
    }
}

/// Texture resolution scale.
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
pub enum TextureQuality {
    Low,
    Medium,
    High,
}

/// Texture sampling filter.
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
pub enum FilterMode {
    Nearest,
    Linear,
    Cubic,
}

/// Renderer cache sizes, in MB.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct RenderMemory {
    /// The GPU's layer textures, by asset; least recently used out first.
    pub texture_cache: u32,
    /// The GPU's instance data of each draw call, by content; least recently used out first.
    pub geometry_cache: u32,
    /// The driver's compiled pipelines, kept in files for later runs (Vulkan); least recently
    /// used out first.
    pub shader_cache: u32,
}

impl Default for RenderMemory {
    fn default() -> Self {
        RenderMemory {
            texture_cache: 256,
            geometry_cache: 64,
            shader_cache: 16,
        }
    }
}

impl RenderMemory {
    fn check(&self, c: &mut Checker) {
        c.range(
            "renderer.memory.textureCache",
            self.texture_cache.into(),
            1,
            65_536,
        );
        c.range(
            "renderer.memory.geometryCache",
            self.geometry_cache.into(),
            1,
            65_536,
        );
        c.range(
            "renderer.memory.shaderCache",
            self.shader_cache.into(),
            1,
            65_536,
        );
    }
}
