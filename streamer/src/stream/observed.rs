//! What a finished stream did, as the guide's Troubleshooting checklists need it
//! ([`observed`]): the stream's own figures and what was measured around it.

use super::Summary;
use crate::config::StreamConfig;
use crate::diagnose::{Observed, Times};

/// What was measured around a stream, for its diagnosis.
#[derive(Debug, Clone, Copy)]
pub struct RunFacts {
    /// What the frames took (opening and the final flush left out), s.
    pub secs: f64,
    pub realtime: bool,
    /// Players on the embedded server (0: another output).
    pub players: u32,
    /// The process's CPU over the run, percent of one core.
    pub cpu_percent: f64,
    /// Frames the embedded server dropped for slow players.
    pub server_dropped: u64,
}

/// Peak RSS of this process so far, bytes.
pub fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kib| kib * 1024)
}

/// What the run did, as the guide's Troubleshooting checklists need it: span means from
/// `mean_ms` (no tail percentiles).
pub fn observed(
    cfg: &StreamConfig,
    summary: &Summary,
    run: &RunFacts,
    mean_ms: impl Fn(&str) -> Option<f64>,
) -> Observed {
    let v = &cfg.core.viewport;
    let frames = summary.counters.packets;
    Observed {
        fps_target: f64::from(v.fps),
        fps: frames as f64 / run.secs,
        realtime: run.realtime,
        drops: summary.pipeline.drops,
        sink_dropped: summary.sink.dropped,
        server_dropped: run.server_dropped,
        players: run.players,
        // The metrics probe has no e2e (its players are not probed) and no jitter span.
        typical: Times::from_spans(mean_ms),
        typical_stat: "mean",
        tail: None,
        workers: cfg.pipeline.pool_size,
        max_queue_size: cfg.pipeline.max_queue_size,
        frame_bytes: u64::from(v.width) * u64::from(v.height) * 3 / 2,
        buffer_health: Some(summary.pipeline.buffer_health()),
        cpu_percent: run.cpu_percent,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
        rss_bytes: peak_rss_bytes(),
        rss_reference: None,
        rss_growth_mib_s: None,
        buffer_allocs_per_frame: Some(summary.pipeline.pool.misses as f64 / frames.max(1) as f64),
    }
}
