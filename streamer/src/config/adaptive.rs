//! `adaptive`: adaptation to a shrinking network and a busy machine (beyond the guide, which
//! lists "Implement adaptive bitrate", "Add network quality adaptation" and "Implement smart
//! worker scaling" under Future Optimizations). Off by default, so results without it stay
//! comparable with earlier ones.

use super::{Checker, RateMode};
use serde::{Deserialize, Serialize};

/// Adaptation settings: each kind has its own switch (`adaptive.bitrate.enabled`,
/// `adaptive.workers.enabled`, `adaptive.quality.enabled`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", from = "AdaptiveFile")]
pub struct AdaptiveConfig {
    /// Adaptive bitrate.
    pub bitrate: AdaptiveBitrate,
    /// Smart worker scaling.
    pub workers: AdaptiveWorkers,
    /// Quality scaling under load.
    pub quality: AdaptiveQuality,
}

/// `adaptive` as written: the same, and the old switch of adaptive bitrate.
#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
struct AdaptiveFile {
    /// `adaptive.enabled`, the old name of `adaptive.bitrate.enabled` (it switched adaptive
    /// bitrate only): still read, as that (older results hold it too).
    enabled: Option<bool>,
    bitrate: AdaptiveBitrate,
    workers: AdaptiveWorkers,
    quality: AdaptiveQuality,
}

impl From<AdaptiveFile> for AdaptiveConfig {
    fn from(f: AdaptiveFile) -> Self {
        let mut bitrate = f.bitrate;
        bitrate.enabled |= f.enabled.unwrap_or(false);
        AdaptiveConfig {
            bitrate,
            workers: f.workers,
            quality: f.quality,
        }
    }
}

/// The old path of `adaptive.bitrate.enabled`.
pub const OLD_BITRATE_SWITCH: &str = "adaptive.enabled";
/// Its new path.
pub const BITRATE_SWITCH: &str = "adaptive.bitrate.enabled";

/// Says once that `adaptive.enabled` is read as `adaptive.bitrate.enabled`.
pub(super) fn deprecated_switch() {
    static SAID: std::sync::Once = std::sync::Once::new();
    SAID.call_once(|| {
        eprintln!(
            "stream-manager: {OLD_BITRATE_SWITCH} is deprecated (it switched adaptive bitrate \
             only): read as {BITRATE_SWITCH}; use that"
        );
    });
}

/// Quality scaling under load: when encoding cannot keep real time, the encoder steps to a
/// faster preset and, below ultrafast, to a smaller picture (reopened at a keyframe, with a new
/// sequence header), and back toward `encoder.preset` at full size when headroom returns (see
/// `streamer::adapt::QualityController`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct AdaptiveQuality {
    pub enabled: bool,
    /// Encoding takes more than this share of the frame interval (a moving average), or
    /// frames are dropped as late: step to a faster preset, percent.
    pub behind_percent: u32,
    /// The slower preset is expected to take under this share of the frame interval (from
    /// what it took before): step back, percent.
    pub headroom_percent: u32,
    /// Behind this long before a step down, and no two switches closer than this, ms.
    pub hold_ms: u32,
    /// Headroom this long before a step back, ms.
    pub clear_ms: u32,
    /// Below ultrafast, the picture is encoded at 75 %, then 50 %, then 25 % of its width and
    /// height, down to this size, percent (100: never scaled).
    pub min_scale_percent: u32,
}

impl Default for AdaptiveQuality {
    fn default() -> Self {
        AdaptiveQuality {
            enabled: false,
            behind_percent: 85,
            headroom_percent: 60,
            hold_ms: 500,
            clear_ms: 5000,
            min_scale_percent: 50,
        }
    }
}

/// Smart worker scaling: between `min` and `pipeline.poolSize` workers take frames, as many as
/// keep the queue short (see `streamer::adapt::worker_scaling`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct AdaptiveWorkers {
    pub enabled: bool,
    /// The fewest workers taking frames (at most `pipeline.poolSize`).
    pub min: u32,
}

impl Default for AdaptiveWorkers {
    fn default() -> Self {
        AdaptiveWorkers {
            enabled: false,
            min: 1,
        }
    }
}

/// Adaptive bitrate: when media queues up unsent, the target drops to the measured
/// throughput less a margin; when the link is clear it steps back up toward
/// `encoder.rateControl.bitrateKbps`; past a second threshold non-keyframes are dropped before
/// they are sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct AdaptiveBitrate {
    /// Steer the encoder's bitrate from the publisher's connection (needs
    /// `encoder.rateControl.mode = "bitrate"`; `adaptive.enabled` before).
    pub enabled: bool,
    /// Media queued undelivered (written, not yet acknowledged by the server), beyond the
    /// connection's least round trip, above which the bitrate drops, ms; half of it is enough
    /// while the server acknowledges less than the target less `marginPercent`.
    pub trigger_ms: u32,
    /// Media queued unsent above which non-keyframes are dropped before they are sent, ms
    /// (above `triggerMs`).
    pub drop_ms: u32,
    /// The new target is the measured throughput less this share, percent; steps up stop at
    /// that throughput less half this share until a probe above it stays clear.
    pub margin_percent: u32,
    /// The target never goes below this, kbit/s.
    pub min_kbps: u32,
    /// After a cut, no further cut for this long (the queue needs time to drain), ms.
    pub hold_ms: u32,
    /// The link counts as clear with queued media under a quarter of `triggerMs`; clear this
    /// long before each step up, ms.
    pub clear_ms: u32,
    /// The first step up adds this share of the configured bitrate, percent; once the link
    /// carries more than at the last cut, each step is half as large again as the one before.
    pub step_up_percent: u32,
    /// A cut also leaves room to drain the bytes already queued within this long, ms (so the
    /// delay they add does not linger at a target just under the link's rate; 0: no room).
    pub drain_ms: u32,
}

impl Default for AdaptiveBitrate {
    fn default() -> Self {
        AdaptiveBitrate {
            enabled: false,
            trigger_ms: 200,
            drop_ms: 2000,
            margin_percent: 15,
            min_kbps: 300,
            hold_ms: 1000,
            clear_ms: 1000,
            step_up_percent: 10,
            drain_ms: 1500,
        }
    }
}

impl AdaptiveConfig {
    pub(super) fn check(&self, c: &mut Checker, mode: RateMode, bitrate_kbps: u32, pool: u32) {
        let b = &self.bitrate;
        c.range(
            "adaptive.bitrate.triggerMs",
            b.trigger_ms.into(),
            50,
            10_000,
        );
        c.range(
            "adaptive.bitrate.dropMs",
            b.drop_ms.into(),
            u64::from(b.trigger_ms) + 1,
            60_000,
        );
        c.range(
            "adaptive.bitrate.marginPercent",
            b.margin_percent.into(),
            0,
            90,
        );
        // Below the configured bitrate only matters when it steers it.
        let most = if b.enabled { bitrate_kbps } else { 200_000 };
        c.range(
            "adaptive.bitrate.minKbps",
            b.min_kbps.into(),
            16,
            most.into(),
        );
        c.range("adaptive.bitrate.holdMs", b.hold_ms.into(), 0, 60_000);
        c.range("adaptive.bitrate.clearMs", b.clear_ms.into(), 100, 600_000);
        c.range(
            "adaptive.bitrate.stepUpPercent",
            b.step_up_percent.into(),
            1,
            100,
        );
        c.range("adaptive.bitrate.drainMs", b.drain_ms.into(), 0, 60_000);
        let q = &self.quality;
        c.range(
            "adaptive.quality.behindPercent",
            q.behind_percent.into(),
            10,
            1000,
        );
        c.range(
            "adaptive.quality.headroomPercent",
            q.headroom_percent.into(),
            1,
            u64::from(q.behind_percent.max(2)) - 1,
        );
        c.range("adaptive.quality.holdMs", q.hold_ms.into(), 0, 60_000);
        c.range("adaptive.quality.clearMs", q.clear_ms.into(), 100, 600_000);
        c.range(
            "adaptive.quality.minScalePercent",
            q.min_scale_percent.into(),
            25,
            100,
        );
        let w = &self.workers;
        let most = if w.enabled { pool.max(1) } else { 64 };
        c.range("adaptive.workers.min", w.min.into(), 1, most.into());
        if b.enabled && mode != RateMode::Bitrate {
            c.fail(
                BITRATE_SWITCH,
                true,
                "false unless encoder.rateControl.mode = \"bitrate\" (adaptive bitrate steers \
                 the encoder's target bitrate)",
            );
        }
    }
}
