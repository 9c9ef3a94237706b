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

/// Keeps Mesa's Vulkan device-select layer from printing `error: XDG_RUNTIME_DIR is invalid or
/// not set in the environment.` (twice, at every Vulkan instance) on a machine with no desktop
/// session: the layer connects to the display server to find the display's GPU, and without a
/// session there is none to find. Where `XDG_RUNTIME_DIR` is unset and neither
/// `NODEVICE_SELECT` nor `MESA_VK_DEVICE_SELECT` is set, it sets `NODEVICE_SELECT=1`, the
/// layer's own switch; wgpu still picks the adapter itself.
///
/// # Safety
/// Call it at the very start of `main`, before any thread starts (it sets an environment
/// variable).
pub unsafe fn quiet_headless_vulkan() {
    let set = |k: &str| std::env::var_os(k).is_some();
    if !set("XDG_RUNTIME_DIR") && !set("NODEVICE_SELECT") && !set("MESA_VK_DEVICE_SELECT") {
        // SAFETY: the caller promises no other thread runs yet.
        unsafe { std::env::set_var("NODEVICE_SELECT", "1") };
    }
}

/// Why this machine has no GPU to render on, where that is known without loading a driver:
/// on Linux, no device node of a GPU (`/dev/dri/renderD*`, `/dev/nvidia*`), so that any
/// adapter would be a software one. `None` where there is one, or off Linux.
pub fn no_gpu_device() -> Option<String> {
    no_gpu_device_in(std::path::Path::new("/dev"))
}

fn no_gpu_device_in(dev: &std::path::Path) -> Option<String> {
    if !cfg!(target_os = "linux") {
        return None;
    }
    let has = |dir: &std::path::Path, prefix: &str| {
        std::fs::read_dir(dir).is_ok_and(|d| {
            d.flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with(prefix))
        })
    };
    if has(&dev.join("dri"), "renderD") || has(dev, "nvidia") {
        None
    } else {
        Some(format!(
            "no GPU device on this machine ({0}/dri/renderD*, {0}/nvidia*): any adapter would \
             be a software one, slower than the CPU compositor",
            dev.display()
        ))
    }
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
    // Vulkan first: the GL backend's EGL set-up prints "XDG_RUNTIME_DIR is invalid" on a
    // machine without a desktop session, and is needed only where Vulkan has no adapter.
    if api == Api::Auto && wgpu::Backends::from_env().is_none() {
        if let Ok(found) = pick(Api::Vulkan) {
            return Ok(found);
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_os = "linux")]
    fn a_machine_without_gpu_device_nodes_has_no_gpu() {
        let dev = tempfile::tempdir().unwrap();
        let why = no_gpu_device_in(dev.path()).expect("an empty /dev has no GPU");
        assert!(why.contains("software"), "{why}");
        std::fs::create_dir(dev.path().join("dri")).unwrap();
        std::fs::write(dev.path().join("dri/card0"), "").unwrap();
        assert!(
            no_gpu_device_in(dev.path()).is_some(),
            "card0 alone is a display"
        );
        std::fs::write(dev.path().join("dri/renderD128"), "").unwrap();
        assert_eq!(no_gpu_device_in(dev.path()), None);
        let nv = tempfile::tempdir().unwrap();
        std::fs::write(nv.path().join("nvidia0"), "").unwrap();
        assert_eq!(no_gpu_device_in(nv.path()), None);
    }
}
