//! Adaptation under a shaped link: per point, how long the stream took to recover when the
//! link was cut and when it came back, how often players stalled, the latency, the drops by
//! reason and the changes adaptation made (the events are listed with their signals).

use super::format::drop_reasons;
use crate::results::Results;
use crate::shaped::QUEUED_OK_MS;
use std::fmt::Write as _;
use streamer::adapt::AdaptChange;

pub(super) fn section(out: &mut String, r: &Results) {
    let points: Vec<_> = r
        .points
        .iter()
        .filter_map(|p| p.link.as_ref().map(|l| (p, l)))
        .collect();
    let Some((_, first)) = points.first() else {
        return;
    };
    let schedule = steps(&first.schedule, "kbit/s");
    let _ = writeln!(out, "## Adaptation under a shaped link (`{}`)\n", r.suite);
    super::format::measured_on(out, r);
    let _ = writeln!(
        out,
        "The publisher → server direction through a link the kernel shapes in a network \
         namespace (`htb` + `u32` on the server's port; players receive unshaped): {schedule}. \
         Recovery is from the cut to the media queued unsent back under {QUEUED_OK_MS} ms (0: \
         it never queued that much; — : not within the window); regain is from the link coming \
         back to the server acknowledging at least 90% of the configured bitrate. A player \
         stalls while it goes more than two frame intervals without a frame; the stall ratio \
         is the worst player's time stalled over the window's. Latency is capture to a \
         player's receipt (e2e) of the frames received while the link was cut; the whole \
         window's is beside it. Behind real time is the wall time since the window began less \
         the media time the players received since (median player), less the least of it \
         before the cut (the stream's own latency then) and never under 0, at its worst and \
         when the link came back: the one latency figure the ffmpeg CLI's frames (which carry no \
         capture time) give too, publishing at the configured bitrate through the same link \
         in the same run.\n"
    );
    let (axes, under) = super::format::axis_header(r);
    let _ = writeln!(
        out,
        "{axes} Recovery after the cut | Regain after the lift | Stall ratio | e2e p50 / p99 \
         while cut | e2e p50 / p99, whole window | Behind real time: worst / at the lift | \
         Drops | Bitrate changes |\n{under}---:|---:|---:|---:|---:|---:|-------|---:|",
    );
    let ms = |v: Option<f64>| v.map_or("—".to_string(), |v| format!("{:.1} s", v / 1000.0));
    for (p, l) in &points {
        let stall = l.stall_ratio.iter().copied().fold(0.0, f64::max);
        let e2e = p.spans.get("e2e").map_or("—".to_string(), |s| {
            format!(
                "{} / {} ms",
                super::format::ms(s.p50(), 0),
                super::format::ms(s.p99(), 0)
            )
        });
        let capped = l.capped_e2e_ms.map_or("—".to_string(), |(p50, p99)| {
            format!("{p50:.0} / {p99:.0} ms")
        });
        let drops = p
            .pipeline
            .as_ref()
            .map_or("—".to_string(), |x| drop_reasons(&x.drops));
        let changes = p
            .adaptation
            .iter()
            .filter(|e| matches!(e.change, AdaptChange::Bitrate { .. }))
            .count();
        let _ = writeln!(
            out,
            "{} {} | {} | {:.1}% | {capped} | {e2e} | {} | {drops} | {changes} |",
            super::format::axis_row(p),
            ms(l.cap_recovery_ms),
            ms(l.lift_regain_ms),
            stall * 100.0,
            behind(&lag_of(l))
        );
    }
    if let Some(c) = &r.comparisons.cli_link {
        let stall = c.stall_ratio.iter().copied().fold(0.0, f64::max);
        let lags: Vec<(u64, f64)> = c.timeline.iter().map(|s| (s.0, s.2)).collect();
        let _ = writeln!(
            out,
            "| {} | — | — | {:.1}% | — | — | {} | — | — |",
            c.publisher,
            stall * 100.0,
            behind(&fell_behind(&lags, &first.schedule))
        );
    }
    out.push('\n');
    let costs: Vec<String> = points
        .iter()
        .filter_map(|(p, l)| {
            let ms = l.sampling_cpu_ms?;
            let process_ms = p.cpu_percent / 100.0 * l.window_ms;
            (process_ms > 0.0).then(|| {
                format!(
                    "{}: {ms:.1} ms, {:.3}% of the process's",
                    p.id,
                    ms / process_ms * 100.0
                )
            })
        })
        .collect();
    if !costs.is_empty() {
        let _ = writeln!(
            out,
            "Sampling the publisher's connection (every frame: `TCP_INFO` and the queue's \
             bookkeeping) cost, in CPU over the window: {}.\n",
            costs.join("; ")
        );
    }
    for (p, l) in points.iter().filter(|(p, _)| !p.adaptation.is_empty()) {
        let _ = writeln!(
            out,
            "Changes, {} (seconds into the window; before 0: the warm-up):\n",
            p.id
        );
        for e in &p.adaptation {
            let what = e.change;
            let _ = writeln!(
                out,
                "- {:.1} s: {what} ({})",
                (e.t_ms as f64 - l.window_start_ms as f64) / 1000.0,
                e.signal
            );
        }
        out.push('\n');
    }
}

/// How far behind real time a point's players fell: its worst and at the lift.
fn lag_of(l: &crate::shaped::LinkFigures) -> (Option<f64>, Option<f64>) {
    let lags: Vec<(u64, f64)> = l
        .timeline
        .iter()
        .filter_map(|s| s.lag_ms.map(|v| (s.t_ms, v)))
        .collect();
    fell_behind(&lags, &l.schedule)
}

/// How far behind real time players fell, from `(ms, lag ms)` samples (wall time since the
/// window began less the media received since): each less the least lag before the link was
/// cut (the stream's own latency then), and never under 0 (a player does not get ahead of
/// where it started; under it is that baseline's jitter). The worst, and at the lift.
fn fell_behind(lags: &[(u64, f64)], schedule: &[(f64, u32)]) -> (Option<f64>, Option<f64>) {
    let (cap, lift) = match crate::shaped::cap_and_lift(schedule) {
        Some((cap, lift)) => (Some(cap), lift),
        None => (None, None),
    };
    let base = lags
        .iter()
        .filter(|s| cap.is_none_or(|c| (s.0 as f64) < c * 1000.0))
        .map(|s| s.1)
        .reduce(f64::min)
        .unwrap_or(0.0);
    let fell: Vec<(u64, f64)> = lags
        .iter()
        .map(|&(t, v)| (t, (v - base).max(0.0)))
        .collect();
    (max_lag(&fell), lag_at(&fell, lift))
}

fn max_lag(lags: &[(u64, f64)]) -> Option<f64> {
    lags.iter().map(|s| s.1).reduce(f64::max)
}

/// The lag at the first sample at or after `lift_s`.
fn lag_at(lags: &[(u64, f64)], lift_s: Option<f64>) -> Option<f64> {
    let lift_ms = lift_s? * 1000.0;
    lags.iter().find(|s| s.0 as f64 >= lift_ms).map(|s| s.1)
}

/// A schedule in words: `8000 kbit/s at 0 s, then 1500 kbit/s at 5 s, …`.
fn steps<T: std::fmt::Display>(schedule: &[(f64, T)], unit: &str) -> String {
    schedule
        .iter()
        .map(|(t, v)| format!("{v} {unit} at {t} s"))
        .collect::<Vec<_>>()
        .join(", then ")
}

fn behind((worst, lift): &(Option<f64>, Option<f64>)) -> String {
    let s = |v: &Option<f64>| v.map_or("—".to_string(), |v| format!("{:.1} s", v / 1000.0));
    format!("{} / {}", s(worst), s(lift))
}

/// Quality scaling under a CPU quota: per point, the frame rate delivered and the frames
/// dropped for falling behind while the quota was lowest, and the preset changes.
pub(super) fn cpu_section(out: &mut String, r: &Results) {
    let points: Vec<_> = r
        .points
        .iter()
        .filter_map(|p| p.quota.as_ref().map(|c| (p, c)))
        .collect();
    let Some((_, first)) = points.first() else {
        return;
    };
    let schedule = steps(&first.schedule, "cores");
    let _ = writeln!(
        out,
        "## Quality scaling under a CPU quota (`{}`)\n",
        r.suite
    );
    super::format::measured_on(out, r);
    let _ = writeln!(
        out,
        "The stream's process (with the embedded server and players beside it) in a cgroup \
         whose CPU quota follows: {schedule}. Delivered is the frames sent per second while \
         the quota was lowest ÷ the configured rate; behind is the frames dropped for falling \
         behind then (behind, queue full, stale, late) ÷ the frames due.\n"
    );
    let (axes, under) = super::format::axis_header(r);
    let _ = writeln!(
        out,
        "{axes} Preset | Delivered while capped | Dropped as behind while capped | FPS, whole \
         window | Preset and size changes |\n{under}------|---:|---:|---:|---:|",
    );
    let pct = |v: Option<f64>| v.map_or("—".to_string(), |v| format!("{:.1}%", v * 100.0));
    for (p, c) in &points {
        let changes = p
            .adaptation
            .iter()
            .filter(|e| {
                matches!(
                    e.change,
                    AdaptChange::Preset { .. } | AdaptChange::Resolution { .. }
                )
            })
            .count();
        let _ = writeln!(
            out,
            "{} {} | {} | {} | {:.1} | {changes} |",
            super::format::axis_row(p),
            p.config.encoder.preset.as_str(),
            pct(c.capped_fps_ratio),
            pct(c.capped_behind_ratio),
            p.fps
        );
    }
    out.push('\n');
    for (p, _) in points.iter().filter(|(p, _)| !p.adaptation.is_empty()) {
        let _ = writeln!(
            out,
            "Changes, {} (seconds since the stream opened):\n",
            p.id
        );
        for e in &p.adaptation {
            let _ = writeln!(
                out,
                "- {:.1} s: {} ({})",
                e.t_ms as f64 / 1000.0,
                e.change,
                e.signal
            );
        }
        out.push('\n');
    }
}
