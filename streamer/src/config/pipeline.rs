//! The guide's `PipelineConfig`: the frame queue and workers between render and encode, its
//! drop policy and memory-pressure watch, their defaults and their range checks.

use super::Checker;
use serde::{Deserialize, Serialize};

/// The guide's `PipelineConfig`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct PipelineConfig {
    /// Most frames waiting in the queue.
    pub max_queue_size: u32,
    /// Worker threads converting frames.
    pub pool_size: u32,
    /// JPEG quality, 1–100 (`pipeline.quality`, the guide's key).
    #[serde(rename = "quality")]
    pub jpeg_quality: u32,
    pub format: FrameFormat,
    /// What a full queue does with a new frame (not in the guide, which leaves it unsaid).
    pub drop_policy: DropPolicy,
    /// Frames come from a pool of reused buffers (`false`: a fresh buffer per frame).
    pub buffer_pool: bool,
    /// Memory pressure: above this resident size (MiB) the pipeline sheds frames and trims
    /// caches; 0 turns the watch off.
    pub pressure_rss_mb: u32,
    /// Memory pressure relative to the stream itself: above its resident size when it opened
    /// plus this many MiB, the same (0: off; `pressureRssMb`, where set, wins). A limit that
    /// acts on any machine, whatever the process holds before the stream grows.
    pub pressure_growth_mb: u32,
    /// Memory pressure: queue fill (percent of `maxQueueSize`) above which new frames are shed.
    pub pressure_queue_percent: u32,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            max_queue_size: 30,
            pool_size: 4,
            jpeg_quality: 85,
            format: FrameFormat::Raw,
            drop_policy: DropPolicy::Oldest,
            buffer_pool: true,
            pressure_rss_mb: 0,
            pressure_growth_mb: 0,
            pressure_queue_percent: 100,
        }
    }
}

impl PipelineConfig {
    pub(super) fn check(&self, c: &mut Checker) {
        c.range("pipeline.maxQueueSize", self.max_queue_size.into(), 1, 1000);
        c.range("pipeline.poolSize", self.pool_size.into(), 1, 64);
        c.range("pipeline.quality", self.jpeg_quality.into(), 1, 100);
        c.range(
            "pipeline.pressureRssMb",
            self.pressure_rss_mb.into(),
            0,
            1 << 20,
        );
        c.range(
            "pipeline.pressureGrowthMb",
            self.pressure_growth_mb.into(),
            0,
            1 << 20,
        );
        c.range(
            "pipeline.pressureQueuePercent",
            self.pressure_queue_percent.into(),
            1,
            100,
        );
    }
}

/// What a full frame queue does when another frame arrives. Every drop is counted.
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
pub enum DropPolicy {
    /// Drop the oldest queued frame to make room (live streams: keep latency low).
    Oldest,
    /// Drop the arriving frame (keep what is queued).
    Newest,
    /// Make the producer wait for room (nothing dropped by the queue; lateness may drop later).
    Block,
}

/// What the pipeline's workers turn frames into.
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
pub enum FrameFormat {
    Raw,
    Jpeg,
    Png,
}
