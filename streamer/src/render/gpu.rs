//! GPU adapters through wgpu, headless (no window, no surface).
//!
//! The backend is Vulkan, GL, or any (`auto`); the `WGPU_BACKEND` environment variable
//! (`vulkan`, `gl`, or a comma list) overrides it, as wgpu's own tools do. With no GPU, Mesa's
//! lavapipe (package `mesa-vulkan-drivers`) provides a software Vulkan adapter, which is what CI
//! renders on.

use serde::{Deserialize, Serialize};

pub use crate::config::Api;

/// The wgpu backends to look for adapters on for `api`; `WGPU_BACKEND` overrides.
#[cfg(feature = "gpu")]
fn backends(api: Api) -> wgpu::Backends {
    let chosen = match api {
        Api::Vulkan => wgpu::Backends::VULKAN,
        Api::Gl => wgpu::Backends::GL,
        Api::Auto => wgpu::Backends::VULKAN | wgpu::Backends::GL,
    };
    wgpu::Backends::from_env().unwrap_or(chosen)
}

/// What the results record of an adapter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Adapter {
    pub name: String,
    /// `vulkan`, `gl`, …
    pub backend: String,
    /// `discrete`, `integrated`, `virtual`, `cpu`, `other`.
    pub device_type: String,
    /// The driver and its version, as the adapter reports them.
    pub driver: String,
}

impl std::fmt::Display for Adapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}, {}", self.name, self.backend, self.device_type)?;
        if !self.driver.is_empty() {
            write!(f, ", {}", self.driver)?;
        }
        f.write_str(")")
    }
}

#[cfg(feature = "gpu")]
impl From<wgpu::AdapterInfo> for Adapter {
    fn from(i: wgpu::AdapterInfo) -> Self {
        let device_type = match i.device_type {
            wgpu::DeviceType::DiscreteGpu => "discrete",
            wgpu::DeviceType::IntegratedGpu => "integrated",
            wgpu::DeviceType::VirtualGpu => "virtual",
            wgpu::DeviceType::Cpu => "cpu",
            wgpu::DeviceType::Other => "other",
        };
        let driver = [i.driver.trim(), i.driver_info.trim()]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        Adapter {
            name: i.name,
            backend: i.backend.to_str().to_string(),
            device_type: device_type.to_string(),
            driver,
        }
    }
}

/// No adapter could be had.
#[derive(Debug, thiserror::Error)]
#[error(
    "no GPU adapter on {looked_for} ({why}); without a GPU, install Mesa's software Vulkan \
     driver (Debian: apt-get install mesa-vulkan-drivers libvulkan1; for GL also libegl1 \
     libgl1-mesa-dri), or set WGPU_BACKEND to another backend"
)]
pub struct NoAdapter {
    pub looked_for: String,
    pub why: String,
}

#[cfg(feature = "gpu")]
fn instance(api: Api) -> (wgpu::Instance, wgpu::Backends) {
    let backends = backends(api);
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = backends;
    (wgpu::Instance::new(desc), backends)
}

/// Every adapter on `api`'s backends.
#[cfg(feature = "gpu")]
pub fn adapters(api: Api) -> Vec<Adapter> {
    let (instance, backends) = instance(api);
    pollster::block_on(instance.enumerate_adapters(backends))
        .into_iter()
        .map(|a| a.get_info().into())
        .collect()
}

/// The adapter the renderer would use: the high-performance one wgpu picks on `api`.
///
/// # Errors
/// There is none on those backends.
#[cfg(feature = "gpu")]
pub fn pick(api: Api) -> Result<(wgpu::Adapter, Adapter), NoAdapter> {
    let (instance, backends) = instance(api);
    let options = wgpu::RequestAdapterOptions {
        power_preference: wgpu::PowerPreference::HighPerformance,
        force_fallback_adapter: false,
        compatible_surface: None,
        ..Default::default()
    };
    match pollster::block_on(instance.request_adapter(&options)) {
        Ok(adapter) => {
            let info = adapter.get_info().into();
            Ok((adapter, info))
        }
        Err(e) => Err(NoAdapter {
            looked_for: format!("{backends:?}"),
            why: e.to_string(),
        }),
    }
}
