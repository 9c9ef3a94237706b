//! The encoder table (the `stream` suite; and the `content` suite's, with a Source column: the
//! real clip beside the synthetic scene), with the baseline point's figures, its span
//! percentiles and SystemTimers.

use super::baseline::encoder_baseline;
use super::comparisons::comparisons;
use super::format::{measured_on, mib, spread};
use super::timers::system_timers;
use crate::results::{PointResult, Results};
use std::fmt::Write as _;
use streamer::probe::SPANS;

fn notes(p: &PointResult, baseline: bool) -> String {
    let mut n = Vec::new();
    if baseline {
        n.push("Baseline".to_string());
    }
    n.push(format!("{:.0} kbit/s", p.bitrate_kbps));
    if let Some(enc) = p.spans.get("encode") {
        n.push(format!("encode p99 {} ms", super::format::ms(enc.p99(), 2)));
    }
    if p.dropped_frames > 0 {
        n.push(format!("{} dropped", p.dropped_frames));
    }
    if p.encoder != "libx264" {
        n.push(format!("encoder {}", p.encoder));
    }
    n.extend(p.notes.iter().cloned());
    n.join("; ").replace('|', "/")
}

pub(super) fn encoder_table(out: &mut String, r: &Results) {
    let s = &r.settings;
    // The `content` suite sweeps the source: the real clip beside the synthetic scene.
    let sources = r
        .points
        .iter()
        .any(|p| p.axes.iter().any(|a| a.path == "source.kind"));
    let _ = writeln!(
        out,
        "## Encoder — {}\n",
        if sources {
            "real content"
        } else {
            "Tested Configurations"
        }
    );
    measured_on(out, r);
    let _ = writeln!(
        out,
        "From `{}` ({}{}), {} frames of {}×{}@{} per run after {} warm-up frames, pacing `{}`, \
         {} run(s) per point. FPS is the median (min–max over runs); CPU % is of one core \
         (the machine has {}); Memory is peak RSS of the process.\n",
        r.scenario,
        r.started,
        if r.quick { ", --quick" } else { "" },
        r.points
            .first()
            .map_or(0, |p| s.length.frames(p.config.core.viewport.fps)),
        r.points.first().map_or(0, |p| p.config.core.viewport.width),
        r.points
            .first()
            .map_or(0, |p| p.config.core.viewport.height),
        r.points.first().map_or(0, |p| p.config.core.viewport.fps),
        s.warmup_frames,
        s.pacing,
        s.repetitions,
        r.machine.cores,
    );
    if sources {
        out.push_str(
            "Source: `synthetic` is the built-in scene; `file` the real clip (`cargo xtask clip`) \
             decoded by the file source at its own frame rate, its decoding counted in CPU % \
             and Memory. Both run as fast as they go, so FPS is throughput: what the content \
             costs the encoder at the same settings.\n\n| Source ",
        );
    }
    out.push_str("| Preset    | HW Accel | Threads | Zero Copy | FPS | CPU % | Memory | Notes |\n");
    if sources {
        out.push_str("|---");
    }
    out.push_str(
        "|-----------|----------|---------|-----------|-----|-------|---------|-------|\n",
    );
    for p in &r.points {
        if sources {
            let source = match p.config.source.kind {
                streamer::config::SourceKind::File
                    if p.config.source.path == crate::scenario::CLIP =>
                {
                    "the clip".to_string()
                }
                streamer::config::SourceKind::File => std::path::Path::new(&p.config.source.path)
                    .file_name()
                    .map_or_else(|| "file".to_string(), |n| n.to_string_lossy().into_owned()),
                kind => format!("{kind:?}").to_lowercase(),
            };
            let _ = write!(out, "| {source} ");
        }
        let e = &p.config.encoder;
        let hw = match (e.hwaccel.enabled, e.hwaccel.device) {
            (true, Some(d)) => d.to_string(),
            (enabled, _) => enabled.to_string(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {:.0} | {} | {} |",
            e.preset,
            hw,
            e.pipeline.threads,
            e.pipeline.zero_copy,
            spread(p),
            p.cpu_percent,
            mib(p.rss_bytes),
            notes(
                p,
                encoder_baseline(&p.config)
                    && p.config.source.kind == streamer::config::SourceKind::Synthetic
            ),
        );
    }
    out.push('\n');
    if let Some(base) = r.points.iter().find(|p| encoder_baseline(&p.config)) {
        baseline_section(out, base);
    }
    comparisons(out, r);
}

fn baseline_section(out: &mut String, p: &PointResult) {
    let _ = writeln!(out, "### Baseline Performance (Default Configuration)\n");
    let span = |name: &str| p.spans.get(name);
    let _ = writeln!(
        out,
        "Results: {:.1} fps, {:.0}% CPU, {} peak RSS, {:.0} kbit/s, {} dropped frames; \
         encoderLatency p50 {} / p99 {}; frame total p99 {}.\n",
        p.fps,
        p.cpu_percent,
        mib(p.rss_bytes),
        p.bitrate_kbps,
        p.dropped_frames,
        span("encode").map_or("-".into(), |s| format!(
            "{} ms",
            super::format::ms(s.p50(), 2)
        )),
        span("encode").map_or("-".into(), |s| format!(
            "{} ms",
            super::format::ms(s.p99(), 2)
        )),
        span("frame:total").map_or("-".into(), |s| format!(
            "{} ms",
            super::format::ms(s.p99(), 2)
        )),
    );
    let _ = writeln!(out, "#### Span percentiles (baseline point, ms)\n");
    out.push_str("| Span | Count | p50 | p90 | p99 | p99.9 | Max |\n");
    out.push_str("|------|-------|-----|-----|-----|-------|-----|\n");
    for s in SPANS {
        if let Some(st) = p.spans.get(s.name) {
            let ms = |v: Option<f64>| super::format::ms(v, 3);
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} |",
                s.name,
                st.count,
                ms(st.p50()),
                ms(st.p90()),
                ms(st.p99()),
                ms(st.p999()),
                ms(st.max())
            );
        }
    }
    out.push('\n');
    system_timers(out, p);
}
