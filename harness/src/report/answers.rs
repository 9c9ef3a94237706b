//! The report's first section: each of the guide's questions in one line, with the figure
//! that answers it and a link to the table it comes from.
//!
//! Rules that keep the answers honest: a cost per stream comes from a real-time run (what a
//! stream's own threads used per frame at its frame rate), never from a flat-out run scaled;
//! the latency pick is made among the points carrying the suite's heaviest load; a figure
//! inside the runs' spread names no winner (see the tables' effects lines); what has not been
//! measured says so.

use super::anchor;
use crate::results::{PointResult, Results};
use std::fmt::Write as _;

/// The stages a stream's own threads make (not the embedded server's and players').
const STREAM_STAGES: [&str; 5] = ["render", "workers", "encode", "x264 threads", "send"];

/// What one real-time stream's own threads cost, percent of one core: CPU ms per frame ×
/// frames per second (a decoding source's `decode` stage included where it has one).
fn stream_cpu_percent(p: &PointResult) -> Option<f64> {
    let ms: f64 = STREAM_STAGES
        .iter()
        .map(|s| p.stage_cpu_ms.get(*s).copied())
        .sum::<Option<f64>>()?
        + p.stage_cpu_ms.get("decode").copied().unwrap_or(0.0);
    Some(ms * f64::from(p.config.core.viewport.fps) / 10.0)
}

fn find<'a>(loaded: &'a [Results], suite: &str) -> Option<&'a Results> {
    loaded.iter().find(|r| r.suite == suite)
}

/// `[Heading](#anchor)` for a suite's table.
fn link(r: &Results, heading: &str) -> String {
    format!("[{}](#{})", r.suite, anchor(heading))
}

/// `fit`: the answer to how many streams fit, from the density table (the only place a
/// per-core figure may come from).
pub(super) fn section(
    out: &mut String,
    loaded: &[Results],
    headings: &[(String, String)],
    fit: Option<String>,
) {
    let heading = |suite: &str| {
        headings
            .iter()
            .find(|(s, _)| s == suite)
            .map_or(String::new(), |(_, h)| h.clone())
    };
    out.push_str("## Answers\n\n");
    let lines = [
        encoder(loaded, &heading),
        pipeline(loaded, &heading),
        rtmp(loaded, &heading),
        adaptation(loaded, &heading),
        memory(loaded, &heading),
        Some(fit.unwrap_or_else(|| {
            "- **How many streams fit on this machine?** Not measured yet (`cargo xtask perf \
             density`), so this report makes no per-core claim (a cost per stream above comes \
             from one real-time stream)."
                .to_string()
        })),
    ];
    for line in lines.into_iter().flatten() {
        let _ = writeln!(out, "{line}");
    }
    out.push('\n');
}

/// Preset and threads for a real-time 720p30 stream, and what one costs.
fn encoder(loaded: &[Results], heading: &dyn Fn(&str) -> String) -> Option<String> {
    let r = find(loaded, "stream")?;
    let target = 30.0;
    // The slowest preset (the best pictures for the bits) that still encodes at twice real
    // time on its best thread count: headroom for the rest of the stream and for spikes.
    let ok: Vec<&PointResult> = r
        .points
        .iter()
        .filter(|p| p.fps_min >= 2.0 * target)
        .collect();
    let pick = ok.iter().max_by(|a, b| {
        let slow = |p: &PointResult| {
            streamer::config::Preset::ALL
                .iter()
                .position(|x| *x == p.config.encoder.preset)
        };
        slow(a).cmp(&slow(b)).then(
            b.config
                .encoder
                .pipeline
                .threads
                .cmp(&a.config.encoder.pipeline.threads),
        )
    })?;
    let e = &pick.config.encoder;
    let mut line = format!(
        "- **Preset and threads for a real-time 720p30 stream?** `{}` at {} thread(s): the \
         slowest preset whose every run encodes at least twice real time, {:.0} fps flat out \
         (runs {:.0}–{:.0}) ({}).",
        e.preset,
        e.pipeline.threads,
        pick.fps,
        pick.fps_min,
        pick.fps_max,
        link(r, &heading("stream"))
    );
    if let Some(net) = find(loaded, "network")
        && let Some((p, cpu)) = net
            .points
            .iter()
            .filter(|p| p.network.as_ref().is_some_and(|n| n.players == 1))
            .find_map(|p| Some((p, stream_cpu_percent(p)?)))
    {
        let _ = write!(
            line,
            " One real-time {}p{} stream at `{}` costs its own threads {cpu:.0}% of a core \
             ({}).",
            p.config.core.viewport.height,
            p.config.core.viewport.fps,
            p.config.encoder.preset,
            link(net, &heading("network"))
        );
    }
    Some(line)
}

/// Queue and pool with no drops.
fn pipeline(loaded: &[Results], heading: &dyn Fn(&str) -> String) -> Option<String> {
    let r = find(loaded, "workers")?;
    let fps = r.points.first()?.config.core.viewport.fps;
    let mut parts = Vec::new();
    for format in ["raw", "jpeg", "png"] {
        let of: Vec<&PointResult> = r
            .points
            .iter()
            .filter(|p| p.config.pipeline.format.to_string() == format)
            .collect();
        if of.is_empty() {
            continue;
        }
        let clean = of.iter().filter(|p| p.dropped_frames == 0).min_by_key(|p| {
            (
                p.config.pipeline.pool_size,
                p.config.pipeline.max_queue_size,
            )
        });
        parts.push(match clean {
            Some(p) => format!(
                "{format}: {} worker(s), queue {}",
                p.config.pipeline.pool_size, p.config.pipeline.max_queue_size
            ),
            None => {
                let least = of.iter().min_by_key(|p| p.dropped_frames)?;
                format!(
                    "{format}: none here (fewest drops: {} at {} workers, queue {})",
                    least.dropped_frames,
                    least.config.pipeline.pool_size,
                    least.config.pipeline.max_queue_size
                )
            }
        });
    }
    Some(format!(
        "- **Queue and worker pool with no drops at {fps} fps?** The fewest workers, then the \
         smallest queue, that dropped no frame in any run: {} ({}).",
        parts.join("; "),
        link(r, &heading("workers"))
    ))
}

/// Chunk size and GOP cache for join time and latency, under the heaviest load.
fn rtmp(loaded: &[Results], heading: &dyn Fn(&str) -> String) -> Option<String> {
    let r = find(loaded, "network")?;
    let players = |p: &PointResult| p.network.as_ref().map_or(0, |n| n.players);
    let most = r.points.iter().map(players).max()?;
    let e2e = |p: &PointResult| p.spans.get("e2e").and_then(|s| s.p99());
    let loaded_points: Vec<(&PointResult, f64)> = r
        .points
        .iter()
        .filter(|p| players(p) == most && p.dropped_frames == 0)
        .filter_map(|p| Some((p, e2e(p)? / 1000.0)))
        .collect();
    let (best, ms) = loaded_points
        .iter()
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .copied()?;
    // One merged figure a point: a tie within 5% or half a millisecond.
    let band = (ms * 0.05).max(0.5);
    let tied = loaded_points
        .iter()
        .filter(|(p, v)| !std::ptr::eq(*p, best) && *v - ms <= band)
        .count();
    let join = |gop: bool| {
        let mut v: Vec<f64> = r
            .points
            .iter()
            .filter(|p| p.config.rtmp.gop_cache == gop)
            .filter_map(|p| p.network.as_ref()?.late_join_ms)
            .collect();
        (!v.is_empty()).then(|| crate::results::median(&mut v))
    };
    let t = &best.config.rtmp;
    let mut line = format!(
        "- **Chunk size and GOP cache for latency and join time?** With {most} players, the \
         lowest glass-to-player p99 is {ms:.1} ms at chunk size {} with the GOP cache {}{} \
         ({}).",
        t.chunk_size,
        if t.gop_cache { "on" } else { "off" },
        if tied > 0 {
            format!(", tied within 5% with {tied} other setting(s)")
        } else {
            String::new()
        },
        link(r, &heading("network"))
    );
    if let (Some(on), Some(off)) = (join(true), join(false)) {
        let _ = write!(
            line,
            " A viewer joining mid-stream waits {on:.0} ms for a picture with the GOP cache, \
             {off:.0} ms without (medians over every point)."
        );
    }
    Some(line)
}

/// What adaptation buys under a cut link and a CPU cap.
fn adaptation(loaded: &[Results], heading: &dyn Fn(&str) -> String) -> Option<String> {
    let mut parts = Vec::new();
    if let Some(r) = find(loaded, "adapt") {
        let stall = |on: bool| {
            r.points
                .iter()
                .find(|p| p.config.adaptive.bitrate.enabled == on)
                .and_then(|p| {
                    let l = p.link.as_ref()?;
                    Some(l.stall_ratio.iter().copied().fold(0.0, f64::max) * 100.0)
                })
        };
        if let (Some(off), Some(on)) = (stall(false), stall(true)) {
            parts.push(format!(
                "through a link cut to a fraction of the stream's bitrate, players stall \
                 {on:.1}% of the time with adaptive bitrate against {off:.1}% without ({})",
                link(r, &heading("adapt"))
            ));
        }
    }
    if let Some(r) = find(loaded, "adapt-cpu") {
        let delivered = |on: bool| {
            r.points
                .iter()
                .find(|p| p.config.adaptive.quality.enabled == on)
                .and_then(|p| p.quota.as_ref()?.capped_fps_ratio)
                .map(|x| x * 100.0)
        };
        if let (Some(off), Some(on)) = (delivered(false), delivered(true)) {
            parts.push(format!(
                "under a CPU cap, quality scaling delivers {on:.0}% of the frames due against \
                 {off:.0}% without ({})",
                link(r, &heading("adapt-cpu"))
            ));
        }
    }
    (!parts.is_empty()).then(|| format!("- **What does adaptation buy?** {}.", parts.join("; ")))
}

/// What costs memory.
fn memory(loaded: &[Results], heading: &dyn Fn(&str) -> String) -> Option<String> {
    let r = find(loaded, "memory")?;
    let Some(effects) = super::effects::effects(r) else {
        return Some(format!(
            "- **What costs memory?** Not judged: the memory suite ran once a point, so no \
             difference between its rows can be told from the runs' spread ({}).",
            link(r, &heading("memory"))
        ));
    };
    let mut parts = Vec::new();
    for e in effects.iter().filter(|e| e.moved.contains(&"memory")) {
        let mut by: Vec<(String, f64)> = Vec::new();
        for p in &r.points {
            let Some(v) = p.axes.iter().find(|a| a.path == e.path) else {
                continue;
            };
            match by.iter_mut().find(|(k, _)| *k == v.value) {
                Some((_, m)) => *m = m.max(p.rss_bytes as f64),
                None => by.push((v.value.clone(), p.rss_bytes as f64)),
            }
        }
        let (lo, hi) = (
            by.iter().min_by(|a, b| a.1.total_cmp(&b.1))?,
            by.iter().max_by(|a, b| a.1.total_cmp(&b.1))?,
        );
        parts.push(format!(
            "`{}` {} → {}: peak RSS up to {:.0} MiB more",
            e.path,
            lo.0,
            hi.0,
            (hi.1 - lo.1) / 1048576.0
        ));
    }
    Some(format!(
        "- **What costs memory?** {} ({}).",
        if parts.is_empty() {
            "no setting of the memory suite moved peak RSS beyond its runs' spread".to_string()
        } else {
            parts.join("; ")
        },
        link(r, &heading("memory"))
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::point::STAGES;

    #[test]
    fn a_streams_cost_is_its_own_stages_at_its_frame_rate() {
        let mut p: PointResult = serde_json::from_value(serde_json::json!({
            "id": "x", "axes": [], "config": streamer::config::StreamConfig::default(),
            "fps_min": 0.0, "fps_max": 0.0, "fps": 0.0, "cpu_percent": 0.0, "rss_bytes": 0,
            "dropped_frames": 0, "bitrate_kbps": 0.0, "encoder": "", "notes": [],
            "unmatched_marks": 0, "spans": {}, "rss_timeline": [], "repetitions": []
        }))
        .unwrap();
        assert_eq!(stream_cpu_percent(&p), None);
        for (i, s) in STAGES.iter().enumerate() {
            p.figures.stage_cpu_ms.insert(s.to_string(), i as f64 + 1.0);
        }
        // decode 1 + render 2 + workers 3 + encode 4 + x264 5 + send 6 = 21 ms a frame, at
        // 30 fps: 630 ms a second, 63% of a core; the server's and players' are not the
        // stream's.
        assert_eq!(stream_cpu_percent(&p), Some(63.0));
    }
}
