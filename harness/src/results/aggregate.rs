//! Aggregating a point's repetitions into one [`PointResult`] (each figure's rule is
//! [`Figures::aggregate`]'s), and joining a point's parts from shards.

use super::model::{AxisValue, PointResult, Repetition};
use crate::point::figures::{merged_spans, unique};
use crate::point::{Figures, PointRun};
use streamer::config::StreamConfig;

/// The median of `values` (sorted in place); 0 for none.
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => 0.0,
        _ if n % 2 == 1 => values[n / 2],
        _ => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

impl PointResult {
    /// One point from parts of its repetitions aggregated apart (shards of a sweep, at least
    /// one part): the repetitions joined, fps, CPU and bitrate their medians, fps extremes,
    /// peak RSS and drops over all of them, span histograms added (exact: the percentiles are
    /// those of every frame of every part). The stage figures (network, pipeline, core,
    /// quality, render) and the RSS timeline are the first part's.
    pub fn combine(mut parts: Vec<PointResult>) -> PointResult {
        if parts.len() == 1 {
            return parts.pop().expect("one part");
        }
        let mut out = parts[0].clone();
        let reps: Vec<Repetition> = parts.iter().flat_map(|p| p.repetitions.clone()).collect();
        let med = |f: fn(&Repetition) -> f64| median(&mut reps.iter().map(f).collect::<Vec<_>>());
        out.fps = med(|r| r.fps);
        out.cpu_percent = med(|r| r.cpu_percent);
        out.bitrate_kbps = med(|r| r.bitrate_kbps);
        out.fps_min = parts
            .iter()
            .map(|p| p.fps_min)
            .fold(f64::INFINITY, f64::min);
        out.fps_max = parts.iter().map(|p| p.fps_max).fold(0.0, f64::max);
        out.rss_bytes = parts.iter().map(|p| p.rss_bytes).max().unwrap_or(0);
        out.dropped_frames = parts.iter().map(|p| p.dropped_frames).sum();
        out.unmatched_marks = parts.iter().map(|p| p.unmatched_marks).sum();
        out.notes = unique(parts.iter().flat_map(|p| &p.notes));
        out.spans = merged_spans(parts.iter().map(|p| &p.spans));
        out.profile = parts.iter().find_map(|p| p.profile.clone());
        out.repetitions = reps;
        out
    }

    /// Aggregates a point's repetitions (at least one): see [`Figures::aggregate`].
    pub fn aggregate(
        id: String,
        axes: Vec<AxisValue>,
        config: StreamConfig,
        runs: &[PointRun],
    ) -> Self {
        let fps: Vec<f64> = runs.iter().map(|r| r.fps).collect();
        PointResult {
            id,
            axes,
            config,
            fps_min: fps.iter().copied().fold(f64::INFINITY, f64::min),
            fps_max: fps.iter().copied().fold(0.0, f64::max),
            figures: Figures::aggregate(&runs.iter().map(|r| &r.figures).collect::<Vec<_>>()),
            repetitions: runs
                .iter()
                .map(|r| Repetition {
                    fps: r.fps,
                    cpu_percent: r.cpu_percent,
                    rss_bytes: r.rss_bytes,
                    dropped_frames: r.dropped_frames,
                    bitrate_kbps: r.bitrate_kbps,
                    join_ms: r.network.as_ref().and_then(|n| n.late_join_ms),
                    latency_ms: r
                        .spans
                        .get("e2e")
                        .and_then(|s| s.p50())
                        .map(|us| us / 1000.0),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
