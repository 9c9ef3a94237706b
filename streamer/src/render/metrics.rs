//! The guide's `RenderMetrics`, which each backend fills in with its own figures.

use super::gpu;
use serde::{Deserialize, Serialize};

/// The guide's `RenderMetrics` (times are means per frame, ms).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RenderMetrics {
    /// The backend that ran: `gpu` or `cpu`.
    pub backend: String,
    /// The adapter, on the GPU backend.
    pub adapter: Option<gpu::Adapter>,
    /// Why `auto` fell back to the CPU, when it did.
    pub fallback: Option<String>,
    pub frames: u64,
    /// Setting the renderer up (device, pipelines, buffers), ms.
    pub setup_time: f64,
    /// Uploading, recording and submitting a frame (GPU), or blending it (CPU), ms.
    pub draw_time: f64,
    /// Waiting for the GPU and reading the frame back (GPU; 0 on the CPU), ms.
    pub post_process_time: f64,
    /// draw + post-process, ms.
    pub total_time: f64,
    /// Draw calls per frame (one per batch of layers; CPU: blending passes).
    pub draw_calls: f64,
    /// Triangles per frame.
    pub triangle_count: f64,
    /// Bytes of textures held: the texture cache and the frame's textures (GPU), or the
    /// sprites (CPU).
    pub texture_memory: u64,
    /// Bytes of GPU buffers and textures this renderer allocated (0 on the CPU).
    pub gpu_memory: u64,
    /// Frames per second of the render stage alone (1000 ÷ frameTime).
    pub fps: f64,
    /// Mean render time per frame as the stream saw it (render:frame), ms.
    pub frame_time: f64,
    /// Layers per draw call ÷ batchSize (1 = every draw call full).
    pub batch_efficiency: f64,
    /// Texture cache hits (GPU) or sprite cache hits (CPU), percent.
    pub cache_hit_rate: f64,
    /// Draw calls whose instance data was already on the GPU (the geometry cache), percent.
    pub geometry_hit_rate: f64,
    /// The renderer's pipelines built from the shader cache's compiled code, percent (0 where
    /// the backend has no pipeline cache, and on the CPU).
    #[serde(default)]
    pub shader_hit_rate: f64,
    /// Textures evicted because the texture cache was full.
    pub texture_evictions: u64,
    /// Frames in flight at most.
    pub max_concurrent: u32,
    /// Bytes per frame of the frame's YUV that go to the GPU and back (GPU: the tiles a layer
    /// covers; 0 on the CPU).
    #[serde(default)]
    pub transfer_bytes: f64,
}

/// `hits` of `hits + misses`, percent.
pub(crate) fn percent(hits: u64, misses: u64) -> f64 {
    crate::hit_rate(hits, misses) * 100.0
}
