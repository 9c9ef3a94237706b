//! What the GPU renderer is set up with, draws, reports and fails with, and its fixed sizes.

use crate::config::FilterMode;
use crate::render::gpu::{Api, NoAdapter};

/// The layers are composed in half floats: no 8-bit rounding between the blends and the
/// conversion to YUV.
pub const TARGET: wgpu::TextureFormat = wgpu::TextureFormat::Rgba16Float;
/// Bytes of one layer's instance data (`Inst` in layer.wgsl).
pub const INST_BYTES: u64 = 32;
/// The texture and geometry caches start this large (or at their limits) and double as needed.
pub const TEXTURE_START: u64 = 4 << 20;
pub const GEOMETRY_START: u64 = 64 << 10;
/// Instance data not drawn for this many frames leaves the geometry cache: a moving layer's
/// batches never come back, and re-uploading a batch costs a few hundred bytes.
pub const GEOMETRY_IDLE_FRAMES: u64 = 120;

/// What the renderer is set up with.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub api: Api,
    pub width: u32,
    pub height: u32,
    pub filter: FilterMode,
    /// MSAA 4×.
    pub antialiasing: bool,
    /// Layers per draw call.
    pub batch_size: u32,
    /// Frames in flight at once.
    pub max_concurrent: u32,
    /// Texture cache limit, bytes.
    pub texture_cache: u64,
    /// Instance data cache limit, bytes.
    pub geometry_cache: u64,
    /// The shader cache folder's limit, bytes.
    pub shader_cache: u64,
}

impl Settings {
    /// The renderer settings of `cfg`.
    pub fn of(cfg: &crate::config::StreamConfig) -> Self {
        let r = &cfg.renderer;
        Settings {
            api: r.api,
            width: cfg.core.viewport.width,
            height: cfg.core.viewport.height,
            filter: r.quality.filter_mode,
            antialiasing: r.quality.antialiasing,
            batch_size: r.performance.batch_size,
            max_concurrent: r.performance.max_concurrent,
            texture_cache: u64::from(r.memory.texture_cache) << 20,
            geometry_cache: u64::from(r.memory.geometry_cache) << 20,
            shader_cache: u64::from(r.memory.shader_cache) << 20,
        }
    }
}

/// A layer to draw: the cached texture `key` (see
/// [`GpuRenderer::texture`](super::GpuRenderer::texture)) stretched over
/// `rect`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GpuLayer {
    pub key: u64,
    /// x, y, width, height in frame pixels.
    pub rect: [i32; 4],
    /// 0–255.
    pub opacity: u8,
}

/// Why the GPU renderer failed.
#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    #[error(transparent)]
    NoAdapter(#[from] NoAdapter),
    #[error("GPU device: {0}")]
    Device(String),
    #[error("GPU readback: {0}")]
    Readback(String),
    #[error("frame size must be a multiple of 8 wide and 2 high for the GPU path, got {0}×{1}")]
    Size(u32, u32),
    #[error("renderer.quality.antialiasing: {0} cannot multisample {TARGET:?} 4×")]
    Msaa(String),
    #[error(
        "renderer.memory.textureCache: {need} bytes of one frame's textures do not fit the \
         {limit}-byte texture cache (raise textureCache, valid range 1..=65536 MB, or lower \
         textureQuality)"
    )]
    TextureCache { need: u64, limit: u64 },
    #[error(
        "renderer.memory.geometryCache: {need} bytes of instance data per frame do not fit \
         {limit} bytes (raise geometryCache, valid range 1..=65536 MB)"
    )]
    GeometryCache { need: u64, limit: u64 },
    #[error("texture {0} is not in the cache")]
    MissingTexture(u64),
    #[error("all {0} frame sets are in flight")]
    Busy(u32),
}

/// The renderer's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GpuStats {
    pub frames: u64,
    pub draw_calls: u64,
    pub triangles: u64,
    pub layers: u64,
    /// Time spent uploading, recording and submitting frames, ns.
    pub draw_ns: u64,
    /// Time spent waiting for frames and reading them back, ns.
    pub readback_ns: u64,
    /// Bytes of covered tiles uploaded (and as many read back), all frames.
    pub tile_bytes: u64,
    pub setup_ns: u64,
    /// Pipelines built from the shader cache's compiled code, and compiled.
    pub shader_hits: u64,
    pub shader_misses: u64,
    pub texture_hits: u64,
    pub texture_misses: u64,
    /// Textures dropped because the texture cache was full.
    pub texture_evictions: u64,
    /// Texture cache size now (bytes allocated on the GPU).
    pub texture_cache_bytes: u64,
    /// Draw calls whose instance data was already on the GPU.
    pub geometry_hits: u64,
    pub geometry_misses: u64,
    /// Bytes of instance data held now.
    pub geometry_bytes: u64,
    /// Textures a frame is drawn in (the layer targets), bytes.
    pub frame_texture_bytes: u64,
    /// Every buffer and texture this renderer allocated, bytes.
    pub gpu_bytes: u64,
}
