//! The report's advice, derived from the data: the configurations on the Pareto front of the
//! encoder sweep with the best for each objective, the RTMP setting with the lowest
//! glass-to-glass latency, and the guide's SystemTimers for the baseline (where a frame's time
//! goes).
//!
//! Three rules keep the advice honest:
//! - **Latency only from real-time runs.** Under max pacing frames wait in the queue for the
//!   encoder, so frame latency restates fps; a suite paced at max gets no latency pick.
//! - **Ties, not winners, inside the spread.** A pick names every configuration whose range over
//!   the runs overlaps the best one's (one run per point: within [`ONE_RUN_TIE`]).
//! - **Every pick names its cost**: what it gives up on the other objectives (and bitrate), and
//!   for the RTMP pick the join time a new viewer waits.

use crate::results::{PointResult, Results};
use crate::scenario::GuideTable;
use std::fmt::Write as _;
use streamer::stream::Pacing;

/// With one run per point there is no measured spread: differences under this fraction are
/// reported as ties.
pub const ONE_RUN_TIE: f64 = 0.05;

/// A point's figures for the objectives, each with its range over the runs.
#[derive(Clone, Copy)]
struct Candidate<'a> {
    point: &'a PointResult,
    /// fps (higher is better): median, min, max over runs.
    fps: Range,
    /// CPU % of one core to hold one live stream at its frame rate (CPU ÷ fps × frame rate);
    /// lower is better.
    cpu_per_stream: Range,
    /// frame:total p99, ms (lower is better); one figure over all runs.
    latency_ms: Range,
}

/// A figure and its range over the runs.
#[derive(Clone, Copy)]
struct Range {
    value: f64,
    lo: f64,
    hi: f64,
    /// Whether lo–hi is the measured spread of several runs (else the one-run tie band).
    measured: bool,
}

impl Range {
    /// A figure seen once: its range is the one-run tie band.
    fn once(value: f64) -> Self {
        Range {
            value,
            lo: value * (1.0 - ONE_RUN_TIE),
            hi: value * (1.0 + ONE_RUN_TIE),
            measured: false,
        }
    }

    fn of(value: f64, runs: &[f64]) -> Self {
        if runs.len() < 2 {
            return Range::once(value);
        }
        let lo = runs.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = runs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        Range {
            value,
            lo,
            hi,
            measured: true,
        }
    }

    fn overlaps(self, other: Range) -> bool {
        self.lo <= other.hi && other.lo <= self.hi
    }
}

fn candidates(r: &Results) -> Vec<Candidate<'_>> {
    r.points
        .iter()
        .filter(|p| p.fps > 0.0)
        .map(|p| {
            let rate = f64::from(p.config.core.viewport.fps);
            let per_stream = |cpu: f64, fps: f64| cpu / fps.max(1e-9) * rate;
            let runs: Vec<f64> = p.repetitions.iter().map(|x| x.fps).collect();
            let cpu_runs: Vec<f64> = p
                .repetitions
                .iter()
                .map(|x| per_stream(x.cpu_percent, x.fps))
                .collect();
            Candidate {
                point: p,
                fps: Range::of(p.fps, &runs),
                cpu_per_stream: Range::of(per_stream(p.cpu_percent, p.fps), &cpu_runs),
                latency_ms: Range::once(
                    p.spans
                        .get("frame:total")
                        .and_then(|s| s.p99())
                        .map_or(f64::INFINITY, |us| us / 1000.0),
                ),
            }
        })
        .collect()
}

/// What the encoder sweep is judged on: fps and CPU per stream always, latency only when the
/// suite ran in real time.
#[derive(Clone, Copy)]
struct Objectives {
    latency: bool,
}

impl Objectives {
    /// Whether `a` is at least as good as `b` on every objective and better on one.
    fn dominates(self, a: &Candidate<'_>, b: &Candidate<'_>) -> bool {
        let lat = |x: &Candidate<'_>| {
            if self.latency {
                x.latency_ms.value
            } else {
                0.0
            }
        };
        let ge = a.fps.value >= b.fps.value
            && a.cpu_per_stream.value <= b.cpu_per_stream.value
            && lat(a) <= lat(b);
        let gt = a.fps.value > b.fps.value
            || a.cpu_per_stream.value < b.cpu_per_stream.value
            || lat(a) < lat(b);
        ge && gt
    }

    /// The candidates no other candidate dominates.
    fn front<'a, 'b>(self, all: &'b [Candidate<'a>]) -> Vec<&'b Candidate<'a>> {
        all.iter()
            .filter(|c| !all.iter().any(|o| self.dominates(o, c)))
            .collect()
    }
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

/// The best of the front by `key` (higher is better when `higher`), and every other measured
/// candidate whose range overlaps the best one's: a tie.
fn pick<'a, 'b>(
    front: &'b [Candidate<'a>],
    all: &'b [Candidate<'a>],
    key: fn(&Candidate<'_>) -> Range,
    higher: bool,
) -> Option<(&'b Candidate<'a>, Vec<&'b Candidate<'a>>)> {
    let better = |a: f64, b: f64| if higher { a > b } else { a < b };
    let best = front.iter().reduce(|a, b| {
        if better(key(b).value, key(a).value) {
            b
        } else {
            a
        }
    })?;
    let tied = all
        .iter()
        .filter(|c| !std::ptr::eq(c.point, best.point) && key(c).overlaps(key(best)))
        .collect();
    Some((best, tied))
}

/// "X" or "a tie between X, Y and Z (their ranges over the runs overlap)".
fn winner(best: &Candidate<'_>, tied: &[&Candidate<'_>]) -> String {
    if tied.is_empty() {
        return name(best.point);
    }
    let mut names: Vec<String> = tied.iter().map(|c| name(c.point)).collect();
    names.insert(0, name(best.point));
    let last = names.pop().unwrap_or_default();
    format!(
        "a tie between {} and {} (their ranges over the runs overlap; the first is ahead by \
         less than the run-to-run spread)",
        names.join(", "),
        last
    )
}

fn shown(r: Range, decimals: usize) -> String {
    if r.measured {
        format!(
            "{:.*} ({:.*}–{:.*})",
            decimals, r.value, decimals, r.lo, decimals, r.hi
        )
    } else {
        format!("{:.*}", decimals, r.value)
    }
}

/// The encoder sweep's Pareto front and picks.
fn encoder_section(out: &mut String, r: &Results) {
    let objectives = Objectives {
        latency: r.settings.pacing == Pacing::Realtime,
    };
    let all = candidates(r);
    let best: Vec<Candidate<'_>> = objectives.front(&all).into_iter().copied().collect();
    if best.is_empty() {
        return;
    }
    let judged = if objectives.latency {
        "fps (higher), CPU per live stream (lower: CPU ÷ fps × the stream's frame rate, i.e. \
         what one real-time stream would cost) and frame latency (frame:total p99, lower)"
    } else {
        "fps (higher) and CPU per live stream (lower: CPU ÷ fps × the stream's frame rate, \
         i.e. what one real-time stream would cost)"
    };
    let _ = writeln!(
        out,
        "From `{}`: {} of {} configurations are on the Pareto front of {judged}; every other \
         one is beaten on all of them by one of these. Ranges are min–max over the runs; \
         configurations whose ranges overlap are reported as ties.\n",
        r.scenario,
        best.len(),
        all.len()
    );
    out.push_str("| Configuration | FPS | CPU % per live stream | Bitrate kbit/s |\n");
    out.push_str("|---|---:|---:|---:|\n");
    for c in &best {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.0} |",
            name(c.point),
            shown(c.fps, 1),
            shown(c.cpu_per_stream, 1),
            c.point.bitrate_kbps
        );
    }
    out.push('\n');
    if let Some((c, tied)) = pick(&best, &all, |c| c.fps, true) {
        let _ = writeln!(
            out,
            "- **Highest fps**: {} — {} fps. It costs {} % of one core per live stream and \
             {:.0} kbit/s.",
            winner(c, &tied),
            shown(c.fps, 1),
            shown(c.cpu_per_stream, 1),
            c.point.bitrate_kbps
        );
    }
    if let Some((c, tied)) = pick(&best, &all, |c| c.cpu_per_stream, false) {
        let _ = writeln!(
            out,
            "- **Lowest CPU per stream**: {} — {} % of one core per live stream, so about \
             {:.0} such streams per core. It costs fps ({} flat out) and takes {:.0} kbit/s.",
            winner(c, &tied),
            shown(c.cpu_per_stream, 1),
            100.0 / c.cpu_per_stream.value.max(0.01),
            shown(c.fps, 1),
            c.point.bitrate_kbps
        );
    }
    if objectives.latency {
        if let Some((c, tied)) = pick(&best, &all, |c| c.latency_ms, false) {
            let _ = writeln!(
                out,
                "- **Lowest frame latency**: {} — frame:total p99 {:.2} ms. It costs {} % of \
                 one core per live stream.",
                winner(c, &tied),
                c.latency_ms.value,
                shown(c.cpu_per_stream, 1)
            );
        }
    } else {
        let queue_share = best
            .iter()
            .filter_map(|c| {
                let total = c.point.spans.get("frame:total")?.mean_us;
                let queue = c.point.spans.get("pipeline:queue")?.mean_us;
                (total > 0.0).then(|| queue / total * 100.0)
            })
            .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))));
        let _ = writeln!(
            out,
            "- **Frame latency**: no pick from this suite. It runs at max pacing, where frames \
             wait in the queue for the encoder{}, so latency only restates fps; latency is \
             judged on real-time runs (the RTMP suite).",
            queue_share.map_or(String::new(), |q| format!(
                " (queue wait is up to {q:.0}% of frame:total here)"
            ))
        );
    }
}

/// The RTMP suite's lowest glass-to-glass latency, with its ties and its join-time cost.
fn rtmp_section(out: &mut String, r: &Results) {
    if r.settings.pacing != Pacing::Realtime {
        return;
    }
    let e2e = |p: &PointResult| {
        p.spans
            .get("e2e")
            .and_then(|s| s.p99())
            .map(|us| us / 1000.0)
    };
    let clean: Vec<(&PointResult, f64)> = r
        .points
        .iter()
        .filter(|p| p.dropped_frames == 0)
        .filter_map(|p| Some((p, e2e(p)?)))
        .collect();
    let Some(&(best, ms)) = clean.iter().min_by(|a, b| a.1.total_cmp(&b.1)) else {
        return;
    };
    // One figure per point (the runs' histograms merged): a tie within 5% or half a
    // millisecond, whichever is wider.
    let band = (ms * ONE_RUN_TIE).max(0.5);
    let tied: Vec<String> = clean
        .iter()
        .filter(|(p, v)| !std::ptr::eq(*p, best) && *v - ms <= band)
        .map(|(p, v)| format!("{} ({v:.1} ms)", name(p)))
        .collect();
    let join = |p: &PointResult| p.network.as_ref().and_then(|n| n.late_join_ms);
    let fastest_join = clean
        .iter()
        .filter_map(|(p, _)| join(p))
        .fold(f64::INFINITY, f64::min);
    let cost = match join(best) {
        Some(j) if fastest_join.is_finite() && j > 2.0 * fastest_join.max(1.0) => format!(
            " It costs join time: a viewer who joins waits {j:.0} ms for the first picture \
             (the fastest join among these points: {fastest_join:.0} ms)."
        ),
        Some(j) => format!(" A viewer who joins waits {j:.0} ms for the first picture."),
        None => String::new(),
    };
    let lead = if tied.is_empty() {
        name(best)
    } else {
        format!(
            "no clear winner: {} and, within {band:.1} ms, {}",
            name(best),
            tied.join(", ")
        )
    };
    let _ = writeln!(
        out,
        "- **Lowest glass-to-glass latency** (RTMP, real-time runs with no drops): {lead} — e2e \
         p99 {ms:.1} ms.{cost}"
    );
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
        encoder_section(out, r);
    }
    if let Some(r) = network {
        rtmp_section(out, r);
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
            "| {timer} | `{name}` | {:.3} | {} | {share} |",
            s.mean_us / 1000.0,
            super::format::ms(s.p99(), 3)
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
        let objectives = Objectives { latency: true };
        let best = objectives.front(&all);
        assert!(!best.is_empty() && best.len() <= all.len());
        for c in &best {
            assert!(!all.iter().any(|o| objectives.dominates(o, c)));
        }
        // Every point off the front is dominated by one on it or off it.
        for c in &all {
            if !best.iter().any(|b| std::ptr::eq(*b, c)) {
                assert!(all.iter().any(|o| objectives.dominates(o, c)));
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
        let made = crate::report::plots::write(dir.path(), &[sample()], None);
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
