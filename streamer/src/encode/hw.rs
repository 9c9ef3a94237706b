//! Hardware encoder probing: nvenc, qsv, vaapi, amf, videotoolbox.
//!
//! A device is usable when FFmpeg has its encoder, the device itself can be opened, and the
//! encoder opens on it for the stream's geometry. Each step that fails says why, in words a
//! user can act on (`Cannot load libcuda.so.1` style reasons come from FFmpeg itself).

use super::Settings;
use crate::config::HwDevice;
use crate::hwdevice::{Device, device_type};
use ffmpeg_next as ff;

/// A hardware device that cannot be used, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("hwaccel device {device} ({encoder}) is unavailable: {reason}")]
pub struct HwUnavailable {
    pub device: HwDevice,
    pub encoder: &'static str,
    pub reason: String,
}

/// FFmpeg's H.264 encoder for each device family.
pub fn encoder_name(device: HwDevice) -> &'static str {
    match device {
        HwDevice::Nvidia => "h264_nvenc",
        HwDevice::Qsv => "h264_qsv",
        HwDevice::Vaapi => "h264_vaapi",
        HwDevice::Amf => "h264_amf",
        HwDevice::Videotoolbox => "h264_videotoolbox",
    }
}

/// Whether `device` can encode this stream; `Ok` holds the encoder's name.
///
/// # Errors
/// [`HwUnavailable`] naming the device, its encoder and the first step that failed.
pub fn probe(device: HwDevice, settings: &Settings<'_>) -> Result<&'static str, HwUnavailable> {
    let encoder = encoder_name(device);
    let fail = |reason: String| HwUnavailable {
        device,
        encoder,
        reason,
    };
    super::init_ffmpeg().map_err(|e| fail(e.to_string()))?;
    let codec = ff::encoder::find_by_name(encoder)
        .ok_or_else(|| fail(format!("this FFmpeg build has no {encoder} encoder")))?;
    if let Some(kind) = device_type(device) {
        // Opened to see that it can be, and released at once.
        Device::open(kind).map_err(|e| fail(e.to_string()))?;
    }
    // The stream hands encoders YUV420P frames in system memory; encoders that only take
    // device surfaces would need an upload stage this build does not have.
    let takes_yuv420p = codec
        .video()
        .ok()
        .and_then(|v| {
            v.formats()
                .map(|mut f| f.any(|p| p == ff::format::Pixel::YUV420P))
        })
        .unwrap_or(false);
    if !takes_yuv420p {
        return Err(fail(format!(
            "{encoder} takes only device surfaces, and stream-manager feeds system-memory YUV420P"
        )));
    }
    super::open_codec(encoder, settings, false).map_err(|e| fail(e.to_string()))?;
    Ok(encoder)
}

/// Every device family and whether it is usable here, for `stream-manager hwaccel`.
pub fn survey(settings: &Settings<'_>) -> Vec<(HwDevice, Result<&'static str, HwUnavailable>)> {
    HwDevice::ALL
        .iter()
        .map(|&d| (d, probe(d, settings)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_names_its_encoder() {
        let names: Vec<_> = HwDevice::ALL.iter().map(|&d| encoder_name(d)).collect();
        assert_eq!(
            names,
            [
                "h264_nvenc",
                "h264_qsv",
                "h264_vaapi",
                "h264_amf",
                "h264_videotoolbox"
            ]
        );
    }
}
