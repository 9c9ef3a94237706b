//! `results/REPORT.md`: the guide's tables filled from every suite's `latest.json`.
//!
//! A table appears only when a suite has filled it; a suite that has not run is listed at the
//! end with the command that runs it, so no measured cell is ever empty or "TBD".

use crate::results::{PointResult, Results};
use crate::scenario::GuideTable;
use std::fmt::Write as _;
use std::path::Path;
use streamer::config::StreamConfig;
use streamer::probe::SPANS;

/// Suites and the command that fills each.
const SUITES: [(&str, &str); 11] = [
    ("stream", "cargo xtask perf stream"),
    ("workers", "cargo xtask perf workers"),
    ("memory", "cargo xtask perf memory"),
    ("core", "cargo xtask perf core"),
    ("compose", "cargo xtask perf compose"),
    ("render", "cargo xtask perf render"),
    ("frames-timing", "cargo xtask perf frames timing"),
    ("frames-drops", "cargo xtask perf frames drops"),
    ("frames-buffer", "cargo xtask perf frames buffer"),
    ("frames-quality", "cargo xtask perf frames quality"),
    ("network", "cargo xtask perf network"),
];

/// Human-readable bytes (MiB with one decimal).
pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

pub(crate) fn spread(p: &PointResult) -> String {
    if p.repetitions.len() > 1 {
        format!("{:.1} ({:.1}–{:.1})", p.fps, p.fps_min, p.fps_max)
    } else {
        format!("{:.1}", p.fps)
    }
}

/// Whether `c` is the guide's baseline on the encoder table's columns.
pub(crate) fn encoder_baseline(c: &StreamConfig) -> bool {
    let d = StreamConfig::default().encoder;
    let e = &c.encoder;
    e.preset == d.preset
        && e.hwaccel.enabled == d.hwaccel.enabled
        && e.pipeline.threads == d.pipeline.threads
        && e.pipeline.zero_copy == d.pipeline.zero_copy
}

fn notes(p: &PointResult, baseline: bool) -> String {
    let mut n = Vec::new();
    if baseline {
        n.push("Baseline".to_string());
    }
    n.push(format!("{:.0} kbit/s", p.bitrate_kbps));
    if let Some(enc) = p.spans.get("encode") {
        n.push(format!("encode p99 {:.2} ms", enc.p99_us / 1000.0));
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

fn encoder_table(out: &mut String, r: &Results) {
    let s = &r.settings;
    let _ = writeln!(out, "## Encoder — Tested Configurations\n");
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
    out.push_str("| Preset    | HW Accel | Threads | Zero Copy | FPS | CPU % | Memory | Notes |\n");
    out.push_str(
        "|-----------|----------|---------|-----------|-----|-------|---------|-------|\n",
    );
    for p in &r.points {
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
            notes(p, encoder_baseline(&p.config)),
        );
    }
    out.push('\n');
    if let Some(base) = r.points.iter().find(|p| encoder_baseline(&p.config)) {
        baseline_section(out, base);
    }
    comparisons(out, r);
}

/// Whether `c` is the guide's baseline on the pipeline table's columns.
fn pipeline_baseline(c: &StreamConfig) -> bool {
    let d = StreamConfig::default().pipeline;
    let p = &c.pipeline;
    (p.max_queue_size, p.pool_size, p.quality, p.format)
        == (d.max_queue_size, d.pool_size, d.quality, d.format)
}

/// Drops by reason, the nonzero ones.
pub(crate) fn drop_reasons(d: &streamer::pipeline::Drops) -> String {
    let parts: Vec<String> = [
        ("behind", d.behind),
        ("queue full", d.queue_full),
        ("stale", d.stale),
        ("late", d.late),
        ("pressure", d.pressure),
    ]
    .iter()
    .filter(|(_, n)| *n > 0)
    .map(|(what, n)| format!("{n} {what}"))
    .collect();
    if parts.is_empty() {
        "0".to_string()
    } else {
        format!("{} ({})", d.total(), parts.join(", "))
    }
}

fn pipeline_table(out: &mut String, r: &Results) {
    let engine = r.points.first().map_or("-".to_string(), |p| {
        format!(
            "{}, {} encoder threads",
            p.config.encoder.preset, p.config.encoder.pipeline.threads
        )
    });
    crate::tables::header(
        out,
        "Frame Pipeline — Tested Configurations",
        r,
        &format!(
            "Encoder: {engine}. FPS is frames encoded per second of wall time (median, \
             min–max); Memory is peak RSS; Drops are all repetitions' drops by reason (behind: \
             the renderer was past the frame's slot; queue full: the queue's drop policy; \
             stale: waited past dropThreshold; late: past maxLatency at the encoder; pressure: \
             shed under memory pressure)."
        ),
    );
    out.push_str("| Queue Size | Pool Size | Quality | Format | FPS | Memory | Drops | Notes |\n");
    out.push_str(
        "|------------|-----------|---------|--------|-----|---------|--------|-------|\n",
    );
    for p in &r.points {
        let c = &p.config.pipeline;
        let mut notes = Vec::new();
        if pipeline_baseline(&p.config) {
            notes.push("Baseline".to_string());
        }
        if let Some(pf) = &p.pipeline {
            if pf.format_bytes_per_frame > 0.0 {
                notes.push(format!(
                    "{:.0} KiB/frame as {}",
                    pf.format_bytes_per_frame / 1024.0,
                    c.format
                ));
            }
            notes.push(format!("bufferHealth {:.2}", pf.buffer_health));
        }
        if let Some(t) = p.spans.get("frame:total") {
            notes.push(format!("frame total p99 {:.1} ms", t.p99_us / 1000.0));
        }
        if let Some(t) = p.spans.get("pipeline:process") {
            notes.push(format!("process p50 {:.2} ms", t.p50_us / 1000.0));
        }
        notes.push(format!("{:.0}% CPU", p.cpu_percent));
        let drops = p
            .pipeline
            .as_ref()
            .map_or(p.dropped_frames.to_string(), |pf| drop_reasons(&pf.drops));
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            c.max_queue_size,
            c.pool_size,
            c.quality,
            c.format,
            spread(p),
            mib(p.rss_bytes),
            drops,
            notes.join("; ").replace('|', "/"),
        );
    }
    out.push('\n');
}

/// Whether `c` is the guide's baseline on the RTMP table's columns.
fn rtmp_baseline(c: &StreamConfig) -> bool {
    let d = StreamConfig::default().rtmp;
    let r = &c.rtmp;
    (r.chunk_size, r.gop_cache, r.ping, r.ping_timeout)
        == (d.chunk_size, d.gop_cache, d.ping, d.ping_timeout)
}

fn rtmp_table(out: &mut String, r: &Results) {
    let first = r.points.first();
    let _ = writeln!(out, "## RTMP Server — Tested Configurations\n");
    let _ = writeln!(
        out,
        "From `{}` ({}{}): one publisher at {}×{}@{} ({}, pacing `{}`) to the embedded server on \
         loopback, {} run(s) of {} per point after {} warm-up frames. Bandwidth is RTMP bytes \
         sent by the publisher / payload delivered to each player (mean), per second of wall \
         time. Latency is glass to glass (`e2e`: frame capture → a player receives it). Join is \
         a player arriving after the warm-up: connect → first keyframe.\n",
        r.scenario,
        r.started,
        if r.quick { ", --quick" } else { "" },
        first.map_or(0, |p| p.config.core.viewport.width),
        first.map_or(0, |p| p.config.core.viewport.height),
        first.map_or(0, |p| p.config.core.viewport.fps),
        first.map_or("-".to_string(), |p| p.config.encoder.preset.to_string()),
        r.settings.pacing,
        r.settings.repetitions,
        r.settings.length,
        r.settings.warmup_frames,
    );
    out.push_str("| Chunk Size | GOP Cache | Ping | Timeout | Bandwidth | Latency | Notes |\n");
    out.push_str("|------------|-----------|------|---------|-----------|---------|-------|\n");
    for p in &r.points {
        let t = &p.config.rtmp;
        let Some(n) = &p.network else { continue };
        let latency = p
            .spans
            .get("e2e")
            .map_or("no e2e samples".to_string(), |e| {
                format!(
                    "p50 {:.1} / p99 {:.1} ms",
                    e.p50_us / 1000.0,
                    e.p99_us / 1000.0
                )
            });
        let mut notes = Vec::new();
        if rtmp_baseline(&p.config) {
            notes.push("Baseline".to_string());
        }
        notes.push(format!(
            "{} players, {} kept real time",
            n.players, n.players_realtime
        ));
        if let Some(j) = n.late_join_ms {
            notes.push(format!("join {j:.0} ms"));
        }
        notes.push(format!(
            "{} dropped by the server, {} by the publisher",
            n.server_dropped, n.publisher_dropped
        ));
        notes.push(format!("{:.0}% CPU, {}", p.cpu_percent, mib(p.rss_bytes)));
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | sent {:.0} / delivered {:.0} kbit/s | {} | {} |",
            t.chunk_size,
            t.gop_cache,
            t.ping,
            t.ping_timeout,
            n.sent_kbps,
            n.delivered_kbps,
            latency,
            notes.join("; ")
        );
    }
    out.push('\n');
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
        span("encode").map_or("-".into(), |s| format!("{:.2} ms", s.p50_us / 1000.0)),
        span("encode").map_or("-".into(), |s| format!("{:.2} ms", s.p99_us / 1000.0)),
        span("frame:total").map_or("-".into(), |s| format!("{:.2} ms", s.p99_us / 1000.0)),
    );
    let _ = writeln!(out, "#### Span percentiles (baseline point, µs)\n");
    out.push_str("| Span | Count | p50 | p90 | p99 | p99.9 | Max |\n");
    out.push_str("|------|-------|-----|-----|-----|-------|-----|\n");
    for s in SPANS {
        if let Some(st) = p.spans.get(s.name) {
            let _ = writeln!(
                out,
                "| {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
                s.name, st.count, st.p50_us, st.p90_us, st.p99_us, st.p999_us, st.max_us
            );
        }
    }
    out.push('\n');
    crate::recommend::system_timers(out, p);
}

fn point_spans(out: &mut String, r: &Results) {
    type Column = (
        &'static str,
        &'static str,
        fn(&crate::record::SpanStats) -> f64,
    );
    let p50: fn(&crate::record::SpanStats) -> f64 = |s| s.p50_us;
    let p99: fn(&crate::record::SpanStats) -> f64 = |s| s.p99_us;
    let max: fn(&crate::record::SpanStats) -> f64 = |s| s.max_us;
    let columns: Vec<Column> = match r.table {
        GuideTable::Rtmp => vec![
            ("e2e", "p50", p50),
            ("e2e", "p99", p99),
            ("relay", "p50", p50),
            ("relay", "p99", p99),
            ("network:send", "p99", p99),
            ("encode", "p99", p99),
        ],
        _ => vec![
            ("encode", "p50", p50),
            ("encode", "p99", p99),
            ("render:frame", "p50", p50),
            ("frame:total", "p50", p50),
            ("frame:total", "p99", p99),
            ("frame:total", "max", max),
        ],
    };
    let _ = writeln!(out, "### Span percentiles per point (ms)\n");
    out.push_str("| Point |");
    for (span, stat, _) in &columns {
        let _ = write!(out, " {span} {stat} |");
    }
    out.push_str("\n|-------|");
    out.push_str(&"------|".repeat(columns.len()));
    out.push('\n');
    for p in &r.points {
        let _ = write!(out, "| {} |", p.id);
        for (span, _, f) in &columns {
            let cell = p
                .spans
                .get(*span)
                .map_or("-".to_string(), |s| format!("{:.2}", f(s) / 1000.0));
            let _ = write!(out, " {cell} |");
        }
        out.push('\n');
    }
    out.push('\n');
}

fn comparisons(out: &mut String, r: &Results) {
    let c = &r.comparisons;
    if !c.cli.is_empty() {
        let _ = writeln!(
            out,
            "### In-process encoder vs the ffmpeg CLI (same raw frames, same run)\n"
        );
        out.push_str("| Preset | Threads | Frames | In-process fps | ffmpeg CLI fps | Ratio |\n");
        out.push_str("|--------|---------|--------|----------------|----------------|-------|\n");
        for row in &c.cli {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {:.1} | {:.1} | {:.3} |",
                row.preset, row.threads, row.frames, row.in_process_fps, row.cli_fps, row.ratio
            );
        }
        if let Some(row) = c.cli.first() {
            let _ = writeln!(out, "\nCLI command (per preset): `{}`\n", row.command);
        }
    }
    if !c.peers.is_empty() {
        let reps = c.peers.iter().map(|p| p.repetitions).max().unwrap_or(1);
        let _ = writeln!(
            out,
            "### The same load on other RTMP servers (loopback, each server its own process)\n\n\
             {} Server CPU is the process's CPU clock over the measured window (all threads), \
             percent of one core. Relay is publisher send → the frame's last byte in a player's \
             socket (kernel receive time); e2e is frame capture → the same moment. Players run in \
             one process beside the servers, under SCHED_IDLE (only on CPU time the server \
             and publisher leave idle, as if on other machines).\n",
            if reps > 1 {
                format!(
                    "Each server ran {reps} times at each player count, the servers taking \
                     turns; figures are medians (RSS: peak; players in real time: fewest), and \
                     the CPU of every run is listed."
                )
            } else {
                "One run per server and player count.".to_string()
            }
        );
        out.push_str("| Server | Players | Server CPU % | CPU % per player | RSS idle → peak | Players in real time | e2e p50 / p99 | Relay p99 | Join | CPU % of each run |\n");
        out.push_str("|--------|---------|--------------|------------------|-----------------|----------------------|---------------|-----------|------|-------------------|\n");
        let ms = |v: Option<f64>| v.map_or("no samples".to_string(), |v| format!("{v:.1} ms"));
        let ms2 = |v: Option<f64>| v.map_or("no samples".to_string(), |v| format!("{v:.2} ms"));
        for p in &c.peers {
            let _ = writeln!(
                out,
                "| {} | {} | {:.1} | {:.3} | {} → {} | {}/{} | {} / {} | {} | {} | {} |",
                p.server,
                p.players,
                p.cpu_percent,
                p.cpu_per_player,
                mib(p.rss_idle_bytes),
                mib(p.rss_peak_bytes),
                p.players_realtime,
                p.players,
                ms(p.e2e_p50_ms),
                ms(p.e2e_p99_ms),
                ms2(p.relay_p99_ms),
                ms(p.join_ms),
                p.cpu_percent_runs
                    .iter()
                    .map(|c| format!("{c:.2}"))
                    .collect::<Vec<_>>()
                    .join(" "),
            );
        }
        out.push('\n');
    }
    if let Some(o) = &c.probe_overhead {
        let _ = writeln!(out, "### Recorder overhead\n");
        let _ = writeln!(
            out,
            "Full path at `{}`, {} interleaved runs each: recorder {:.1} fps, no-op probe {:.1} fps, \
             median ratio of back-to-back pairs {:.3}.\n",
            o.point, o.runs, o.recorder_fps, o.noop_fps, o.ratio
        );
    }
}

/// Builds the report from every `results/<suite>/latest.json` under `root`, drawing its plots
/// into `root/plots/`.
pub fn build(root: &Path) -> String {
    let mut loaded = Vec::new();
    let mut missing = Vec::new();
    for (suite, command) in SUITES {
        match Results::load(&Results::dir(root, suite).join("latest.json")) {
            Ok(r) => loaded.push(r),
            Err(_) => missing.push((suite, command)),
        }
    }
    let mut out = String::from("# Stream Manager — measured results\n\n");
    out.push_str(
        "Generated by `cargo xtask report` from `results/*/latest.json`; every `cargo xtask perf` \
         run regenerates it. Tables follow the optimization guide's \"Tested Configurations\".\n\n",
    );
    if let Some(m) = loaded.first().map(|r| &r.machine) {
        let _ = writeln!(
            out,
            "Machine: {} ({} cores, {}), {} {}; FFmpeg {}, x264 {}; GPU adapter: {}.\n",
            m.cpu_model,
            m.cores,
            mib(m.memory_bytes),
            m.os,
            m.kernel,
            m.ffmpeg_version,
            m.x264_version,
            m.wgpu_adapter.as_deref().unwrap_or("none found"),
        );
    }
    for r in &loaded {
        match r.table {
            GuideTable::Encoder => encoder_table(&mut out, r),
            GuideTable::Rtmp => rtmp_table(&mut out, r),
            GuideTable::Pipeline => pipeline_table(&mut out, r),
            GuideTable::Core => crate::tables::core_table(&mut out, r),
            GuideTable::Compose => crate::tables::compose_table(&mut out, r),
            GuideTable::Memory => crate::tables::memory_table(&mut out, r),
            GuideTable::Timing => crate::tables::timing_table(&mut out, r),
            GuideTable::Drops => crate::tables::drops_table(&mut out, r),
            GuideTable::Buffer => crate::tables::buffer_table(&mut out, r),
            GuideTable::Quality => crate::tables::quality_table(&mut out, r),
            GuideTable::Render => crate::tables::render_table(&mut out, r),
            GuideTable::None => {}
        }
        if !r.points.is_empty() {
            point_spans(&mut out, r);
        }
    }
    crate::recommend::section(&mut out, &loaded);
    let plots = crate::plots::write(&root.join("plots"), &loaded);
    if !plots.is_empty() {
        out.push_str("## Plots\n\n");
        for (caption, file) in plots {
            let _ = writeln!(out, "### {caption}\n\n![{caption}](plots/{file})\n");
        }
    }
    if !missing.is_empty() {
        out.push_str("## Not measured yet\n\n");
        for (suite, command) in missing {
            let _ = writeln!(out, "- `{suite}`: run `{command}`");
        }
        out.push('\n');
    }
    out
}

/// Writes `root/REPORT.md` (atomically) and returns its path.
///
/// # Errors
/// The file could not be written.
pub fn write(root: &Path) -> Result<std::path::PathBuf, crate::results::ResultsError> {
    let path = root.join("REPORT.md");
    crate::results::write_atomic(&path, build(root).as_bytes())?;
    Ok(path)
}
