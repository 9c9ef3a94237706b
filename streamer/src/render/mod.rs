//! The render stage: the synthetic scene's background with the core's layers composed over it,
//! on the GPU through wgpu (`gpu_compose`, with the `gpu` feature) or on the CPU ([`cpu`]),
//! chosen once by [`open`] from `renderer.backend`. [`RenderMetrics`] are the guide's figures
//! for either. The renderer reads the core's layout and asset cache ([`crate::core`]); the
//! stream holds both.

pub mod cpu;
mod error;
pub mod filter;
pub mod gpu;
mod metrics;
pub mod queue;
mod renderer;

#[cfg(feature = "gpu")]
pub mod arena;
#[cfg(feature = "gpu")]
pub mod gpu_backend;
#[cfg(feature = "gpu")]
pub mod gpu_compose;
#[cfg(feature = "gpu")]
pub mod shaders;
#[cfg(feature = "gpu")]
pub mod tiles;

pub use error::{NO_GPU, RenderError};
pub use metrics::RenderMetrics;
pub use renderer::{Renderer, open};
