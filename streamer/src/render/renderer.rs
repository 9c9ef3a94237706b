//! The renderer a stream renders with: the CPU compositor or the GPU renderer, chosen once by
//! [`open`] from `renderer.backend` (`auto` looks for a hardware adapter). Frames go one by
//! one on the CPU and in rounds of `maxConcurrent` in flight on the GPU; either way the
//! renderer times them and reports the backend's [`RenderMetrics`].

use super::cpu::CpuRenderer;
use super::error::RenderError;
#[cfg(feature = "gpu")]
use super::gpu_backend::GpuBackend;
use super::metrics::RenderMetrics;
use crate::config::{RenderBackend, StreamConfig};
use crate::core::{ComposeStats, Core};
use crate::frame::Planes;
use crate::probe::Probe;
use std::time::Instant;

/// The backend that renders.
enum Backend {
    Cpu(Box<CpuRenderer>),
    #[cfg(feature = "gpu")]
    Gpu(Box<GpuBackend>),
}

/// A stream's renderer: composes the core's layers over each frame's background.
pub struct Renderer {
    backend: Backend,
    /// Why `auto` runs on the CPU, when it does.
    fallback: Option<String>,
    /// Frames rendered and the wall time they took (layout and composition).
    rendered: u64,
    render_ns: u64,
}

/// Why `renderer.backend = auto` renders on the CPU.
#[derive(Debug, thiserror::Error)]
pub enum CpuFallback {
    /// No GPU device node: no hardware adapter (no driver loaded to find out).
    #[cfg(feature = "gpu")]
    #[error("{0}")]
    NoDevice(String),
    /// Only a software adapter (lavapipe, llvmpipe), slower than the CPU compositor.
    #[cfg(feature = "gpu")]
    #[error("only a software adapter, {0}, which is slower than the CPU compositor")]
    Software(String),
    /// The GPU renderer could not be set up.
    #[cfg(feature = "gpu")]
    #[error("{0}")]
    Gpu(String),
    /// A build without the `gpu` feature.
    #[cfg(not(feature = "gpu"))]
    #[error("{}", super::error::NO_GPU)]
    NotBuilt,
}

/// Why `auto` should not use the GPU on `cfg`'s API, if it should not: there is no hardware
/// adapter. A software one (lavapipe, llvmpipe) renders slower than the CPU compositor, so
/// `auto` passes it by. On Linux a machine with no GPU device node has no hardware adapter,
/// and `auto` decides so without loading a driver: a software driver, once loaded, stays
/// mapped (about 50 MiB of llvmpipe) for the rest of the process.
#[cfg(feature = "gpu")]
fn auto_gpu(cfg: &StreamConfig) -> Result<(), CpuFallback> {
    if let Some(why) = super::gpu::no_gpu_device() {
        return Err(CpuFallback::NoDevice(why));
    }
    match super::gpu::pick(cfg.renderer.api) {
        Ok((_, info)) if info.device_type == "cpu" => Err(CpuFallback::Software(info.to_string())),
        Ok(_) => Ok(()),
        Err(e) => Err(CpuFallback::Gpu(e.to_string())),
    }
}

/// `auto`: the GPU where it has a hardware adapter and sets up, else the CPU and why.
#[cfg(feature = "gpu")]
fn auto(cfg: &StreamConfig) -> Result<Backend, CpuFallback> {
    auto_gpu(cfg)?;
    GpuBackend::new(cfg)
        .map(|g| Backend::Gpu(Box::new(g)))
        .map_err(|e| CpuFallback::Gpu(e.to_string()))
}

/// `auto` in a build without the GPU renderer: the CPU, and why.
#[cfg(not(feature = "gpu"))]
fn auto(_: &StreamConfig) -> Result<Backend, CpuFallback> {
    Err(CpuFallback::NotBuilt)
}

/// `gpu`: the GPU renderer.
#[cfg(feature = "gpu")]
fn gpu(cfg: &StreamConfig) -> Result<Backend, RenderError> {
    Ok(Backend::Gpu(Box::new(GpuBackend::new(cfg)?)))
}

/// `gpu` in a build without the GPU renderer: an error naming the feature.
#[cfg(not(feature = "gpu"))]
fn gpu(_: &StreamConfig) -> Result<Backend, RenderError> {
    Err(RenderError::NoGpu)
}

/// The renderer `cfg` asks for (`renderer.backend`); `auto` decides here, once, and says on
/// stderr why it runs on the CPU when it does.
///
/// # Errors
/// `gpu` and the GPU renderer cannot be set up (or the build has none), or the compositor
/// cannot start.
pub fn open(cfg: &StreamConfig) -> Result<Renderer, RenderError> {
    let cpu = || Ok::<_, RenderError>(Backend::Cpu(Box::new(CpuRenderer::new(cfg)?)));
    let (backend, fallback) = match cfg.renderer.backend {
        RenderBackend::Cpu => (cpu()?, None),
        RenderBackend::Gpu => (gpu(cfg)?, None),
        RenderBackend::Auto => match auto(cfg) {
            Ok(g) => (g, None),
            Err(why) => {
                // Said once a process, however many streams it runs.
                static SAID: std::sync::Once = std::sync::Once::new();
                SAID.call_once(|| {
                    eprintln!(
                        "stream-manager: renderer.backend = auto: using the CPU compositor ({why})"
                    );
                });
                (cpu()?, Some(why.to_string()))
            }
        },
    };
    Ok(Renderer {
        backend,
        fallback,
        rendered: 0,
        render_ns: 0,
    })
}

impl Renderer {
    /// Updates `core`'s layout for frame `id` and composes its layers over `planes`.
    ///
    /// # Errors
    /// A lazily loaded asset failed, the disk cache failed, or the GPU failed.
    pub fn render<P: Probe>(
        &mut self,
        core: &mut Core,
        id: u64,
        planes: &mut Planes<'_>,
        probe: &P,
    ) -> Result<(), RenderError> {
        if core.layers().is_empty() && matches!(self.backend, Backend::Cpu(_)) {
            return Ok(());
        }
        let started = Instant::now();
        core.update(id, probe);
        match &mut self.backend {
            Backend::Cpu(c) => c.render(core, id, planes, probe)?,
            #[cfg(feature = "gpu")]
            Backend::Gpu(g) => g.render(core, id, planes, probe)?,
        }
        self.rendered += 1;
        self.render_ns += started.elapsed().as_nanos() as u64;
        core.expire();
        Ok(())
    }

    /// Frames the render stage takes at once: `maxConcurrent` on the GPU (frames in flight),
    /// 1 on the CPU.
    pub fn round_size(&self) -> usize {
        match &self.backend {
            Backend::Cpu(_) => 1,
            #[cfg(feature = "gpu")]
            Backend::Gpu(g) => g.round_size(),
        }
    }

    /// Renders a round of frames (at most [`round_size`](Self::round_size)), each `(id,
    /// planes)` holding its background: the layout is updated frame by frame in id order, the
    /// frames are submitted to the GPU by priority (`priorityLevels`; a GOP's first frame, the
    /// keyframe, at the top level) and all are in flight together, then read back. On the CPU,
    /// frame by frame.
    ///
    /// # Errors
    /// As [`render`](Self::render).
    pub fn render_round<P: Probe>(
        &mut self,
        core: &mut Core,
        frames: &mut [(u64, Planes<'_>)],
        probe: &P,
    ) -> Result<(), RenderError> {
        match &mut self.backend {
            Backend::Cpu(_) => {
                for (id, planes) in frames.iter_mut() {
                    self.render(core, *id, planes, probe)?;
                }
                Ok(())
            }
            #[cfg(feature = "gpu")]
            Backend::Gpu(g) => {
                let started = Instant::now();
                g.render_round(core, frames, probe)?;
                self.rendered += frames.len() as u64;
                self.render_ns += started.elapsed().as_nanos() as u64;
                core.expire();
                Ok(())
            }
        }
    }

    /// Frame ids of the last GPU round, in the order they were submitted.
    pub fn last_round_order(&self) -> &[u64] {
        match &self.backend {
            Backend::Cpu(_) => &[],
            #[cfg(feature = "gpu")]
            Backend::Gpu(g) => g.last_round_order(),
        }
    }

    /// The backend that runs: `gpu` or `cpu`.
    pub fn backend(&self) -> &'static str {
        match &self.backend {
            Backend::Cpu(_) => "cpu",
            #[cfg(feature = "gpu")]
            Backend::Gpu(_) => "gpu",
        }
    }

    /// The guide's RenderMetrics now: the backend's figures, with the frames, fps and frame
    /// time as the renderer timed them.
    pub fn metrics(&self) -> RenderMetrics {
        let n = self.rendered.max(1) as f64;
        let frame_time = self.render_ns as f64 / n / 1e6;
        let fps = if frame_time > 0.0 {
            1000.0 / frame_time
        } else {
            0.0
        };
        let m = match &self.backend {
            Backend::Cpu(c) => c.metrics(),
            #[cfg(feature = "gpu")]
            Backend::Gpu(g) => g.metrics(),
        };
        RenderMetrics {
            fallback: self.fallback.clone(),
            frames: self.rendered,
            fps,
            frame_time,
            ..m
        }
    }

    /// The CPU compositor's counters and the layers its static group pre-composes, for the
    /// core's figures (defaults on the GPU).
    pub fn composition(&self) -> (ComposeStats, u32) {
        match &self.backend {
            Backend::Cpu(c) => c.composition(),
            #[cfg(feature = "gpu")]
            Backend::Gpu(_) => (ComposeStats::default(), 0),
        }
    }

    /// Memory pressure: drops the compositor's sprites (the GPU's caches keep their bounds).
    pub fn trim(&mut self) {
        match &mut self.backend {
            Backend::Cpu(c) => c.trim(),
            #[cfg(feature = "gpu")]
            Backend::Gpu(_) => {}
        }
    }
}
