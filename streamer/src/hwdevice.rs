//! Hardware devices through libavutil: the device type each `encoder.hwaccel.device` family
//! opens, and an open device. The encoder's probe (`encode::hw`) and the file source's
//! hardware decoder (`encoder.hwaccel.decode`) both use it.

use crate::config::HwDevice;
use ffmpeg_next as ff;
use std::fmt;

/// The libavutil hardware device type to open for a family, where there is one.
pub fn device_type(device: HwDevice) -> Option<ff::ffi::AVHWDeviceType> {
    use ff::ffi::AVHWDeviceType::*;
    match device {
        HwDevice::Nvidia => Some(AV_HWDEVICE_TYPE_CUDA),
        HwDevice::Qsv => Some(AV_HWDEVICE_TYPE_QSV),
        HwDevice::Vaapi => Some(AV_HWDEVICE_TYPE_VAAPI),
        HwDevice::Videotoolbox => Some(AV_HWDEVICE_TYPE_VIDEOTOOLBOX),
        // AMF opens its own runtime inside the encoder.
        HwDevice::Amf => None,
    }
}

/// A libavutil device type, shown by its name (`cuda`, `vaapi`, …).
pub struct DeviceKind(pub ff::ffi::AVHWDeviceType);

impl fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // SAFETY: av_hwdevice_get_type_name returns a static string or null.
        let name = unsafe { ff::ffi::av_hwdevice_get_type_name(self.0) };
        if name.is_null() {
            f.write_str("hardware")
        } else {
            // SAFETY: non-null static C string.
            let s = unsafe { std::ffi::CStr::from_ptr(name) };
            f.write_str(&s.to_string_lossy())
        }
    }
}

/// A device that could not be opened: its type and libavutil's reason.
#[derive(Debug, thiserror::Error)]
#[error("no {kind} device could be opened ({reason})")]
pub struct NoDevice {
    pub kind: String,
    pub reason: String,
}

/// An open device: a reference to libavutil's device context, released when dropped.
pub struct Device {
    ctx: *mut ff::ffi::AVBufferRef,
    pub kind: ff::ffi::AVHWDeviceType,
}

// SAFETY: a device context is reference-counted by libavutil and may be used from any thread;
// this handle only takes new references to it and releases its own.
unsafe impl Send for Device {}

impl Device {
    /// Opens the default device of `kind`.
    ///
    /// # Errors
    /// [`NoDevice`] with libavutil's reason (no such hardware, no driver).
    pub fn open(kind: ff::ffi::AVHWDeviceType) -> Result<Device, NoDevice> {
        let mut ctx: *mut ff::ffi::AVBufferRef = std::ptr::null_mut();
        // SAFETY: av_hwdevice_ctx_create writes a new reference to `ctx` on success and leaves
        // it null on failure.
        let rc = unsafe {
            ff::ffi::av_hwdevice_ctx_create(
                &raw mut ctx,
                kind,
                std::ptr::null(),
                std::ptr::null_mut(),
                0,
            )
        };
        if rc < 0 || ctx.is_null() {
            return Err(NoDevice {
                kind: DeviceKind(kind).to_string(),
                reason: ff::Error::from(rc).to_string(),
            });
        }
        Ok(Device { ctx, kind })
    }

    /// A new reference to the device context, for a codec context to own
    /// (`AVCodecContext.hw_device_ctx`).
    pub fn new_ref(&self) -> *mut ff::ffi::AVBufferRef {
        // SAFETY: `ctx` is a valid reference while `self` lives.
        unsafe { ff::ffi::av_buffer_ref(self.ctx) }
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        // SAFETY: `ctx` is this handle's own reference.
        unsafe { ff::ffi::av_buffer_unref(&raw mut self.ctx) };
    }
}
