//! Adaptation: what changes while a stream runs, from what it measures.
//!
//! - [`bitrate`]: the adaptive bitrate controller (`adaptive.bitrate`), from the publisher's
//!   connection;
//! - [`network`]: that connection's quality (`TCP_INFO` and the publisher's own counts), the
//!   signal the bitrate controller reads;
//! - [`quality_scaling`]: the encoder's preset and picture size under CPU load
//!   (`adaptive.quality`);
//! - [`worker_scaling`]: the pipeline's active workers (`adaptive.workers`).
//!
//! Each controller is plain state over samples and their times, so it runs on recorded traces
//! in tests; every change one makes is an [`AdaptEvent`] with its time and the signal behind
//! it. The stream (`crate::stream`) wires them to the stages; they depend only on the config
//! and the clocks.

pub mod bitrate;
pub mod network;
pub mod quality_scaling;
pub mod worker_scaling;

pub use bitrate::BitrateController;
pub use quality_scaling::{QualityController, Rung};

use crate::config::Preset;
use serde::{Deserialize, Serialize};

/// What the controller changed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum AdaptChange {
    /// The encoder's target bitrate, kbit/s.
    Bitrate { from: u32, to: u32 },
    /// Non-keyframes are dropped before they are sent from now on.
    DropStart,
    /// … and no longer.
    DropStop,
    /// Workers taking frames (smart worker scaling).
    Workers { from: u32, to: u32 },
    /// The encoder's preset (quality scaling under load).
    Preset { from: Preset, to: Preset },
    /// The size of the picture encoded (quality scaling under load, below ultrafast).
    Resolution { from: Size, to: Size },
}

impl std::fmt::Display for AdaptChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AdaptChange::Bitrate { from, to } => write!(f, "bitrate {from} → {to} kbit/s"),
            AdaptChange::DropStart => f.write_str("drops non-keyframes"),
            AdaptChange::DropStop => f.write_str("sends every frame again"),
            AdaptChange::Workers { from, to } => write!(f, "workers {from} → {to}"),
            AdaptChange::Preset { from, to } => {
                write!(f, "preset {} → {}", from.as_str(), to.as_str())
            }
            AdaptChange::Resolution { from, to } => write!(f, "resolution {from} → {to}"),
        }
    }
}

/// A change, when it was made (ms since the stream started) and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdaptEvent {
    pub t_ms: u64,
    #[serde(flatten)]
    pub change: AdaptChange,
    /// The signal that caused it, e.g. `queued media 812 ms > 500 ms; throughput 1480 kbit/s`.
    pub signal: String,
}

/// A picture size, pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Size {
    pub width: u32,
    pub height: u32,
}

impl std::fmt::Display for Size {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}", self.width, self.height)
    }
}

impl Size {
    /// `percent` of this size in each dimension, rounded down to even numbers (4:2:0 chroma),
    /// at least 16 × 16.
    pub fn scaled(self, percent: u32) -> Size {
        let dim = |d: u32| ((u64::from(d) * u64::from(percent) / 100) as u32 & !1).max(16);
        Size {
            width: dim(self.width),
            height: dim(self.height),
        }
    }
}
