//! The report's advice, derived from the data: the configurations on the Pareto front of the
//! encoder sweep (highest fps, lowest CPU per live stream, lowest frame latency) with the best
//! for each objective, the RTMP setting with the lowest glass-to-glass latency, and the
//! guide's SystemTimers for the baseline (where a frame's time goes).

use crate::results::{PointResult, Results};
use crate::scenario::GuideTable;
use std::fmt::Write as _;

/// A point's figures for the objectives.
struct Candidate<'a> {
    point: &'a PointResult,
    fps: f64,
    /// CPU % of one core to hold one live stream at its frame rate (CPU ÷ fps × frame rate).
    cpu_per_stream: f64,
    /// frame:total p99, ms.
    latency_ms: f64,
}

fn candidates(r: &Results) -> Vec<Candidate<'_>> {
    r.points
        .iter()
        .filter(|p| p.fps > 0.0)
        .map(|p| Candidate {
            point: p,
            fps: p.fps,
            cpu_per_stream: p.cpu_percent / p.fps * f64::from(p.config.core.viewport.fps),
            latency_ms: p
                .spans
                .get("frame:total")
                .map_or(f64::INFINITY, |s| s.p99_us / 1000.0),
        })
        .collect()
}

/// Whether `a` is at least as good as `b` everywhere and better somewhere.
fn dominates(a: &Candidate<'_>, b: &Candidate<'_>) -> bool {
    let ge = a.fps >= b.fps && a.cpu_per_stream <= b.cpu_per_stream && a.latency_ms <= b.latency_ms;
    let gt = a.fps > b.fps || a.cpu_per_stream < b.cpu_per_stream || a.latency_ms < b.latency_ms;
    ge && gt
}

/// The candidates no other candidate dominates.
fn front<'a, 'b>(all: &'b [Candidate<'a>]) -> Vec<&'b Candidate<'a>> {
    all.iter()
        .filter(|c| !all.iter().any(|o| dominates(o, c)))
        .collect()
}

fn name(p: &PointResult) -> String {
    if p.axes.is_empty() {
        return "the base configuration".into();
    }
    p.axes
        .iter()
        .map(|a| format!("`{}={}`", a.path, a.value))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The recommendation section.
pub fn section(out: &mut String, loaded: &[Results]) {
    let encoder = loaded.iter().find(|r| r.table == GuideTable::Encoder);
    let network = loaded.iter().find(|r| r.table == GuideTable::Rtmp);
    if encoder.is_none() && network.is_none() {
        return;
    }
    out.push_str("## Recommendations (derived from the measurements above)\n\n");
    if let Some(r) = encoder {
        let all = candidates(r);
        let best = front(&all);
        if !best.is_empty() {
            let _ = writeln!(
                out,
                "From `{}`: {} of {} configurations are on the Pareto front of fps (higher), \
                 CPU per live stream (lower: CPU ÷ fps × the stream's frame rate, i.e. what \
                 one real-time stream would cost) and frame latency (frame:total p99, lower); \
                 every other one is beaten on all three by one of these.\n",
                r.scenario,
                best.len(),
                all.len()
            );
            out.push_str("| Configuration | FPS | CPU % per live stream | frame:total p99 ms |\n");
            out.push_str("|---|---:|---:|---:|\n");
            for c in &best {
                let _ = writeln!(
                    out,
                    "| {} | {:.1} | {:.1} | {:.2} |",
                    name(c.point),
                    c.fps,
                    c.cpu_per_stream,
                    c.latency_ms
                );
            }
            out.push('\n');
            let pick = |better: fn(&Candidate<'_>, &Candidate<'_>) -> bool| {
                best.iter()
                    .copied()
                    .reduce(|a, b| if better(b, a) { b } else { a })
            };
            if let Some(c) = pick(|a, b| a.fps > b.fps) {
                let _ = writeln!(
                    out,
                    "- **Highest fps**: {} — {:.1} fps ({:.1}% CPU per live stream, frame p99 \
                     {:.2} ms).",
                    name(c.point),
                    c.fps,
                    c.cpu_per_stream,
                    c.latency_ms
                );
            }
            if let Some(c) = pick(|a, b| a.cpu_per_stream < b.cpu_per_stream) {
                let _ = writeln!(
                    out,
                    "- **Lowest CPU per stream**: {} — {:.1}% of one core per live stream \
                     ({:.1} fps flat out), so about {:.0} such streams per core.",
                    name(c.point),
                    c.cpu_per_stream,
                    c.fps,
                    100.0 / c.cpu_per_stream.max(0.01)
                );
            }
            if let Some(c) = pick(|a, b| a.latency_ms < b.latency_ms) {
                let _ = writeln!(
                    out,
                    "- **Lowest frame latency**: {} — frame:total p99 {:.2} ms ({:.1} fps).",
                    name(c.point),
                    c.latency_ms,
                    c.fps
                );
            }
        }
    }
    if let Some(r) = network {
        let e2e = |p: &PointResult| p.spans.get("e2e").map(|s| s.p99_us / 1000.0);
        let best = r
            .points
            .iter()
            .filter(|p| p.dropped_frames == 0)
            .filter_map(|p| Some((p, e2e(p)?)))
            .min_by(|a, b| a.1.total_cmp(&b.1));
        if let Some((p, ms)) = best {
            let _ = writeln!(
                out,
                "- **Lowest glass-to-glass latency** (RTMP, among points with no drops): {} — \
                 e2e p99 {:.1} ms.",
                name(p),
                ms
            );
        }
    }
    out.push('\n');
}

/// The guide's SystemTimers for one point: mean and p99 per timer, and its share of the
/// frame's total.
pub fn system_timers(out: &mut String, p: &PointResult) {
    let span = |n: &str| p.spans.get(n);
    let total = span("frame:total").map_or(0.0, |s| s.mean_us);
    out.push_str("#### SystemTimers (where a frame's time goes, baseline point)\n\n");
    out.push_str("| Timer | Span | Mean ms | p99 ms | Share of frame total |\n");
    out.push_str("|---|---|---:|---:|---:|\n");
    let rows: [(&str, &str); 11] = [
        ("frame.generation", "render:frame"),
        ("frame.preprocessing", "pipeline:process"),
        ("frame.encoding", "encode"),
        ("frame.total", "frame:total"),
        ("core.assetLoad", "asset:load"),
        ("core.layoutUpdate", "layout:update"),
        ("core.renderSetup", "render:setup"),
        ("pipeline.queueTime", "pipeline:queue"),
        ("pipeline.processingTime", "pipeline:process"),
        ("pipeline.encoderLatency", "encode"),
        ("pipeline.networkLatency", "network:send"),
    ];
    for (timer, name) in rows {
        let Some(s) = span(name) else { continue };
        let per_frame = streamer::probe::SPANS
            .iter()
            .any(|sp| sp.name == name && sp.per_frame);
        let share = if total > 0.0 && per_frame {
            format!("{:.0}%", s.mean_us / total * 100.0)
        } else {
            "-".into()
        };
        let _ = writeln!(
            out,
            "| {timer} | `{name}` | {:.3} | {:.3} | {share} |",
            s.mean_us / 1000.0,
            s.p99_us / 1000.0
        );
    }
    out.push_str(
        "\nframe.composition is inside frame.generation (`render:frame` is the scene and the \
         compositor); core.viewportUpdate is timed by the core suite. Shares need not add up to \
         100%: stages overlap on their threads, and the queue wait is part of the total.\n\n",
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Results {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/results-sample.json"
        ))
        .expect("sample results");
        serde_json::from_str(&text).expect("results json")
    }

    #[test]
    fn the_front_holds_no_dominated_point_and_each_objective_has_a_pick() {
        let r = sample();
        let all = candidates(&r);
        let best = front(&all);
        assert!(!best.is_empty() && best.len() <= all.len());
        for c in &best {
            assert!(!all.iter().any(|o| dominates(o, c)));
        }
        // Every point off the front is dominated by one on it or off it.
        for c in &all {
            if !best.iter().any(|b| std::ptr::eq(*b, c)) {
                assert!(all.iter().any(|o| dominates(o, c)));
            }
        }
        let mut out = String::new();
        section(&mut out, std::slice::from_ref(&r));
        assert!(
            out.contains("Pareto front") && out.contains("**Highest fps**"),
            "{out}"
        );
        assert!(out.contains("**Lowest CPU per stream**"), "{out}");
        let mut timers = String::new();
        system_timers(&mut timers, &r.points[0]);
        assert!(timers.contains("frame.encoding"), "{timers}");
    }

    #[test]
    fn plots_are_written_as_svg() {
        let dir = tempfile::tempdir().unwrap();
        let made = crate::report::plots::write(dir.path(), &[sample()]);
        assert!(made.len() >= 2, "{made:?}");
        for (_, file) in made {
            let svg = std::fs::read_to_string(dir.path().join(file)).unwrap();
            assert!(
                svg.starts_with("<svg") && svg.contains("<text"),
                "{svg:.200}"
            );
        }
    }
}
