//! Aggregating a point's repetitions into one [`PointResult`]: medians, peaks, totals and
//! merged span histograms.

use super::model::{AxisValue, PointResult, Repetition};
use crate::record::{SpanStats, new_histogram};
use crate::run::{CoreFigures, NetworkFigures, PipelineFigures, PointRun};
use std::collections::BTreeMap;
use streamer::config::StreamConfig;

/// Every span's histograms of `maps` added together (exact: the percentiles of every frame of
/// every map), each span once.
fn merged_spans<'a>(
    maps: impl Iterator<Item = &'a BTreeMap<String, SpanStats>> + Clone,
) -> BTreeMap<String, SpanStats> {
    let names: std::collections::BTreeSet<&String> = maps.clone().flat_map(|m| m.keys()).collect();
    names
        .into_iter()
        .filter_map(|name| {
            let mut merged = new_histogram();
            let mut any = false;
            for h in maps
                .clone()
                .filter_map(|m| m.get(name).and_then(|s| s.histogram().ok()))
            {
                merged.add(&h).expect("histograms share bounds");
                any = true;
            }
            any.then(|| (name.clone(), SpanStats::from_histogram(&merged)))
        })
        .collect()
}

/// `notes` in order, each once.
fn unique<'a>(notes: impl Iterator<Item = &'a String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for n in notes {
        if !out.contains(n) {
            out.push(n.clone());
        }
    }
    out
}

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

    /// Aggregates a point's repetitions (at least one).
    pub fn aggregate(
        id: String,
        axes: Vec<AxisValue>,
        config: StreamConfig,
        runs: &[PointRun],
    ) -> Self {
        let pick = |f: fn(&PointRun) -> f64| median(&mut runs.iter().map(f).collect::<Vec<_>>());
        let fps: Vec<f64> = runs.iter().map(|r| r.fps).collect();
        let spans = merged_spans(runs.iter().map(|r| &r.spans));
        let notes = unique(runs.iter().flat_map(|r| &r.notes));
        PointResult {
            id,
            axes,
            config,
            fps: pick(|r| r.fps),
            fps_min: fps.iter().copied().fold(f64::INFINITY, f64::min),
            fps_max: fps.iter().copied().fold(0.0, f64::max),
            cpu_percent: pick(|r| r.cpu_percent),
            rss_bytes: runs.iter().map(|r| r.rss_bytes).max().unwrap_or(0),
            dropped_frames: runs.iter().map(|r| r.dropped_frames).sum(),
            bitrate_kbps: pick(|r| r.bitrate_kbps),
            encoder: runs.first().map(|r| r.encoder.clone()).unwrap_or_default(),
            notes,
            unmatched_marks: runs.iter().map(|r| r.unmatched_marks).sum(),
            spans,
            repetitions: runs
                .iter()
                .map(|r| Repetition {
                    fps: r.fps,
                    cpu_percent: r.cpu_percent,
                    rss_bytes: r.rss_bytes,
                    dropped_frames: r.dropped_frames,
                    bitrate_kbps: r.bitrate_kbps,
                })
                .collect(),
            rss_timeline: runs
                .first()
                .map(|r| r.rss_timeline.clone())
                .unwrap_or_default(),
            network: aggregate_network(runs),
            pipeline: aggregate_pipeline(runs),
            core: aggregate_core(runs),
            quality: runs.iter().find_map(|r| r.quality.clone()),
            render: runs.iter().find_map(|r| r.render.clone()),
            stage_cpu_ms: runs
                .iter()
                .flat_map(|r| r.stage_cpu_ms.keys())
                .map(|stage| {
                    let mut v: Vec<f64> = runs
                        .iter()
                        .filter_map(|r| r.stage_cpu_ms.get(stage).copied())
                        .collect();
                    (stage.clone(), median(&mut v))
                })
                .collect(),
            link: runs.first().and_then(|r| r.link.clone()),
            cpu: runs.first().and_then(|r| r.cpu.clone()),
            adaptation: runs
                .first()
                .map(|r| r.adaptation.clone())
                .unwrap_or_default(),
            profile: runs.iter().find_map(|r| r.profile.clone()),
        }
    }
}

fn aggregate_core(runs: &[PointRun]) -> Option<CoreFigures> {
    let all: Vec<&CoreFigures> = runs.iter().filter_map(|r| r.core.as_ref()).collect();
    let first = all.first()?;
    let med =
        |f: fn(&CoreFigures) -> f64| median(&mut all.iter().map(|c| f(c)).collect::<Vec<_>>());
    Some(CoreFigures {
        metrics: first.metrics.clone(),
        viewport_update_us: med(|c| c.viewport_update_us),
        viewport_resize_us: med(|c| c.viewport_resize_us),
        viewport_transform_us: med(|c| c.viewport_transform_us),
        asset_cold_ms: med(|c| c.asset_cold_ms),
        asset_warm_us: med(|c| c.asset_warm_us),
    })
}

fn aggregate_pipeline(runs: &[PointRun]) -> Option<PipelineFigures> {
    let all: Vec<&PipelineFigures> = runs.iter().filter_map(|r| r.pipeline.as_ref()).collect();
    let first = all.first()?;
    let med =
        |f: fn(&PipelineFigures) -> f64| median(&mut all.iter().map(|p| f(p)).collect::<Vec<_>>());
    let mut drops = streamer::pipeline::Drops::default();
    let mut occupancy = vec![0; first.occupancy.len()];
    for p in &all {
        let d = &p.drops;
        drops.behind += d.behind;
        drops.queue_full += d.queue_full;
        drops.stale += d.stale;
        drops.late += d.late;
        drops.pressure += d.pressure;
        drops.congestion += d.congestion;
        for (o, v) in occupancy.iter_mut().zip(&p.occupancy) {
            *o += v;
        }
    }
    let mut allocs: Vec<f64> = all.iter().filter_map(|p| p.allocs_per_frame).collect();
    Some(PipelineFigures {
        drops,
        pool_hit_rate: med(|p| p.pool_hit_rate),
        buffer_allocs_per_frame: med(|p| p.buffer_allocs_per_frame),
        allocs_per_frame: (!allocs.is_empty()).then(|| median(&mut allocs)),
        occupancy,
        buffer_health: med(|p| p.buffer_health),
        format_bytes_per_frame: med(|p| p.format_bytes_per_frame),
        pressure_events: all.iter().map(|p| p.pressure_events).sum(),
    })
}

fn aggregate_network(runs: &[PointRun]) -> Option<NetworkFigures> {
    let nets: Vec<&NetworkFigures> = runs.iter().filter_map(|r| r.network.as_ref()).collect();
    let first = nets.first()?;
    let med =
        |f: fn(&NetworkFigures) -> f64| median(&mut nets.iter().map(|n| f(n)).collect::<Vec<_>>());
    let mut joins: Vec<f64> = nets.iter().filter_map(|n| n.late_join_ms).collect();
    Some(NetworkFigures {
        players: first.players,
        sent_kbps: med(|n| n.sent_kbps),
        delivered_kbps: med(|n| n.delivered_kbps),
        wire_kbps_per_player: med(|n| n.wire_kbps_per_player),
        players_realtime: nets.iter().map(|n| n.players_realtime).min().unwrap_or(0),
        late_join_ms: (!joins.is_empty()).then(|| median(&mut joins)),
        late_first_frame_key: nets
            .iter()
            .map(|n| n.late_first_frame_key)
            .try_fold(true, |all, k| k.map(|k| all && k)),
        publisher_dropped: nets.iter().map(|n| n.publisher_dropped).sum(),
        reconnects: nets.iter().map(|n| n.reconnects).sum(),
        server_dropped: nets.iter().map(|n| n.server_dropped).sum(),
        server_cpu_percent: median_of(&nets, |n| n.server_cpu_percent),
        players_cpu_percent: median_of(&nets, |n| n.players_cpu_percent),
        quality: network_quality(&nets),
    })
}

/// The repetitions' connection samples: medians, with the peak of queued media and the most
/// retransmissions over all of them.
fn network_quality(nets: &[&NetworkFigures]) -> Option<streamer::adapt::network::NetQuality> {
    use streamer::adapt::network::NetQuality;
    let all: Vec<&NetQuality> = nets.iter().filter_map(|n| n.quality.as_ref()).collect();
    all.first()?;
    let med = |f: fn(&NetQuality) -> f64| median(&mut all.iter().map(|q| f(q)).collect::<Vec<_>>());
    Some(NetQuality {
        rtt_ms: med(|q| q.rtt_ms),
        rtt_var_ms: med(|q| q.rtt_var_ms),
        min_rtt_ms: med(|q| q.min_rtt_ms),
        retransmits: all.iter().map(|q| q.retransmits).max().unwrap_or(0),
        delivery_rate_kbps: med(|q| q.delivery_rate_kbps),
        unsent_bytes: all.iter().map(|q| q.unsent_bytes).max().unwrap_or(0),
        queued_media_ms: med(|q| q.queued_media_ms),
        queued_media_peak_ms: all
            .iter()
            .map(|q| q.queued_media_peak_ms)
            .fold(0.0, f64::max),
        send_rate_kbps: med(|q| q.send_rate_kbps),
        acked_rate_kbps: med(|q| q.acked_rate_kbps),
        unacked_bytes: all.iter().map(|q| q.unacked_bytes).max().unwrap_or(0),
        recent_acked_kbps: med(|q| q.recent_acked_kbps),
        sampling_cpu_ms: med(|q| q.sampling_cpu_ms),
    })
}

/// The median of a figure that older results may lack (None when every run lacks it).
fn median_of(nets: &[&NetworkFigures], f: fn(&NetworkFigures) -> Option<f64>) -> Option<f64> {
    let mut v: Vec<f64> = nets.iter().filter_map(|n| f(n)).collect();
    (!v.is_empty()).then(|| median(&mut v))
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
