//! The render stage on the GPU (wgpu, headless): for now, finding and describing the adapter
//! the GPU renderer will run on. Until that renderer lands, the CPU compositor in
//! [`crate::core::compose`] is the render stage.

pub mod gpu;
pub mod gpu_compose;
