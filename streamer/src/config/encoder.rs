//! The guide's `EncoderConfig` (plus GOP, rate control and tune): x264 presets, hardware
//! encoding, the encoder's pipeline settings and x264's CPU flag names, their defaults and
//! their range checks.

use super::Checker;
use serde::{Deserialize, Serialize};
use std::fmt;
use strum::{EnumCount, VariantArray};

/// The guide's `EncoderConfig`, plus GOP, rate control and tune.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct EncoderConfig {
    /// x264 preset: faster presets cost less CPU and give a worse picture per bit.
    pub preset: Preset,
    pub hwaccel: HwAccelConfig,
    pub pipeline: EncoderPipeline,
    /// Keyframe interval in frames; every GOP is closed and exactly this long.
    pub gop: u32,
    /// `tune=zerolatency`: no lookahead, no B-frames, sliced threads; one frame in, one out.
    pub zerolatency: bool,
    pub rate_control: RateControl,
}

impl Default for EncoderConfig {
    fn default() -> Self {
        EncoderConfig {
            preset: Preset::Ultrafast,
            hwaccel: HwAccelConfig::default(),
            pipeline: EncoderPipeline::default(),
            gop: 60,
            zerolatency: true,
            rate_control: RateControl::default(),
        }
    }
}

impl EncoderConfig {
    pub(super) fn check(&self, c: &mut Checker) {
        c.range("encoder.gop", self.gop.into(), 1, 1000);
        self.pipeline.check(c);
        self.hwaccel.check(c);
        self.rate_control.check(c);
    }
}

/// x264 presets the guide tests, fastest first.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    strum::Display,
    strum::IntoStaticStr,
    strum::VariantArray,
    strum::EnumCount,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum Preset {
    Ultrafast,
    Superfast,
    Veryfast,
    Faster,
    Fast,
    Medium,
}

impl Preset {
    /// Every preset, fastest first.
    pub const ALL: [Preset; Preset::COUNT] = *Preset::VARIANTS.first_chunk().unwrap();

    /// The name x264 and FFmpeg use.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// Hardware encoding.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HwAccelConfig {
    pub enabled: bool,
    /// Which hardware encoder to use; required when `enabled`.
    pub device: Option<HwDevice>,
    /// Hardware decoding of inputs. The synthetic source has nothing to decode; the setting is
    /// validated and recorded.
    pub decode: Option<bool>,
    /// Hardware scaling. The path does not scale; the setting is validated and recorded.
    pub scaling: Option<bool>,
    /// When the device is unavailable, encode with libx264 and say so in the run's notes
    /// instead of failing.
    pub fallback: bool,
}

impl HwAccelConfig {
    fn check(&self, c: &mut Checker) {
        if self.enabled && self.device.is_none() {
            c.fail(
                "encoder.hwaccel.device",
                "(unset)",
                "one of nvidia, qsv, vaapi, amf, videotoolbox when hwaccel.enabled = true",
            );
        }
    }
}

/// Hardware encoder families FFmpeg can drive.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::VariantArray,
    strum::EnumCount,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum HwDevice {
    Nvidia,
    Qsv,
    Vaapi,
    Amf,
    Videotoolbox,
}

impl HwDevice {
    /// Every device family.
    pub const ALL: [HwDevice; HwDevice::COUNT] = *HwDevice::VARIANTS.first_chunk().unwrap();

    /// The name used in configuration.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// Not strum's `Display`: that one honours a width (`{device:<13}` in `stream-manager hwaccel`)
/// and this one, as before, writes the bare name.
impl fmt::Display for HwDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The encoder's pipeline settings (`EncoderConfig.pipeline`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct EncoderPipeline {
    /// Most milliseconds a frame may take from capture to send.
    pub max_latency: u32,
    /// A frame this many milliseconds late is dropped rather than encoded.
    pub drop_threshold: u32,
    /// Encode straight from pooled frame buffers (true) or copy each picture into a fresh frame.
    pub zero_copy: bool,
    /// Encoder threads.
    pub threads: u32,
    /// x264 CPU features to use (x264's `asm` names, e.g. `SSE2`, `AVX2`); unset = detect.
    pub cpu_flags: Option<Vec<String>>,
}

impl Default for EncoderPipeline {
    fn default() -> Self {
        EncoderPipeline {
            max_latency: 1000,
            drop_threshold: 500,
            zero_copy: true,
            threads: 2,
            cpu_flags: None,
        }
    }
}

impl EncoderPipeline {
    fn check(&self, c: &mut Checker) {
        c.range("encoder.pipeline.threads", self.threads.into(), 1, 64);
        c.range(
            "encoder.pipeline.maxLatency",
            self.max_latency.into(),
            1,
            60_000,
        );
        c.range(
            "encoder.pipeline.dropThreshold",
            self.drop_threshold.into(),
            1,
            self.max_latency.max(1).into(),
        );
        if let Some(flags) = &self.cpu_flags {
            for flag in flags {
                if !X264_CPU_FLAGS.contains(&flag.as_str()) {
                    c.fail(
                        "encoder.pipeline.cpuFlags",
                        format!("{flag:?}"),
                        format!("x264 CPU flag names: {}", X264_CPU_FLAGS.join(", ")),
                    );
                }
            }
        }
    }
}

/// How the encoder spends bits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct RateControl {
    pub mode: RateMode,
    /// Constant rate factor for `crf` mode (0 = lossless … 51 = worst).
    pub crf: u32,
    /// Target bitrate for `bitrate` mode, kbit/s; also the VBV max rate.
    pub bitrate_kbps: u32,
    /// VBV buffer for `bitrate` mode, kbit.
    pub vbv_buffer_kbits: u32,
}

impl Default for RateControl {
    fn default() -> Self {
        RateControl {
            mode: RateMode::Crf,
            crf: 23,
            bitrate_kbps: 2500,
            vbv_buffer_kbits: 2500,
        }
    }
}

impl RateControl {
    fn check(&self, c: &mut Checker) {
        c.range("encoder.rateControl.crf", self.crf.into(), 0, 51);
        c.range(
            "encoder.rateControl.bitrateKbps",
            self.bitrate_kbps.into(),
            16,
            200_000,
        );
        c.range(
            "encoder.rateControl.vbvBufferKbits",
            self.vbv_buffer_kbits.into(),
            16,
            400_000,
        );
    }
}

/// Rate-control modes.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    strum::Display,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum RateMode {
    Crf,
    Bitrate,
}

/// x264's names for CPU features (its `asm` parameter), as `cpuFlags` accepts them.
pub const X264_CPU_FLAGS: &[&str] = &[
    "MMX2",
    "MMXEXT",
    "SSE",
    "SSE2",
    "SSE2Slow",
    "SSE2Fast",
    "LZCNT",
    "SSE3",
    "SSSE3",
    "SSE4.1",
    "SSE4",
    "SSE4.2",
    "AVX",
    "XOP",
    "FMA4",
    "FMA3",
    "BMI1",
    "BMI2",
    "AVX2",
    "AVX512",
    "SlowShuffle",
    "SlowAtom",
    "SlowPshufb",
    "SlowPalignr",
    "SlowCTZ",
    "Cache32",
    "Cache64",
];
