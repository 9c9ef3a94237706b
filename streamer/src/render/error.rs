//! Why rendering could not be set up or run, whichever backend.

use crate::core::assets::AssetError;
use crate::render::cpu::ComposeError;
#[cfg(feature = "gpu")]
use crate::render::gpu_compose::GpuError;

/// What a build without the `gpu` feature says when asked for the GPU.
pub const NO_GPU: &str =
    "this build has no GPU renderer: the streamer crate was built without its `gpu` feature";

/// Why the renderer could not be set up or run.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error(transparent)]
    Asset(#[from] AssetError),
    #[error(transparent)]
    Compose(#[from] ComposeError),
    #[cfg(feature = "gpu")]
    #[error("renderer.backend = gpu: {0}")]
    Gpu(#[from] GpuError),
    /// `renderer.backend = gpu` in a build without the `gpu` feature.
    #[error("renderer.backend = gpu: {NO_GPU}")]
    NoGpu,
}
