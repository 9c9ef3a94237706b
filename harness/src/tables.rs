//! The report's tables for the core, compose, memory and frames suites.

use crate::report::{drop_reasons, mib, spread};
use crate::results::{PointResult, Results};
use std::fmt::Write as _;

fn span_ms(p: &PointResult, span: &str, f: fn(&crate::record::SpanStats) -> f64) -> String {
    p.spans
        .get(span)
        .map_or("-".to_string(), |s| format!("{:.2}", f(s) / 1000.0))
}

pub(crate) fn header(out: &mut String, title: &str, r: &Results, what: &str) {
    let first = r.points.first();
    let _ = writeln!(out, "## {title}\n");
    let _ = writeln!(
        out,
        "From `{}` ({}{}): {}×{} at {} fps, pacing `{}`, {} run(s) of {} per point after {} \
         warm-up frames. {what}\n",
        r.scenario,
        r.started,
        if r.quick { ", --quick" } else { "" },
        first.map_or(0, |p| p.config.core.viewport.width),
        first.map_or(0, |p| p.config.core.viewport.height),
        first.map_or(0, |p| p.config.core.viewport.fps),
        r.settings.pacing,
        r.settings.repetitions,
        r.settings.length,
        r.settings.warmup_frames,
    );
}

fn row(out: &mut String, cells: &[String]) {
    let _ = writeln!(out, "| {} |", cells.join(" | ").replace('\n', " "));
}

fn head(out: &mut String, columns: &[&str]) {
    let _ = writeln!(out, "| {} |", columns.join(" | "));
    let _ = writeln!(out, "|{}", "---|".repeat(columns.len()));
}

/// The `core` suite: viewport, assets and layout against layer count.
pub fn core_table(out: &mut String, r: &Results) {
    header(
        out,
        "Core Components — viewport, assets, layout",
        r,
        "The guide's CoreMetrics per point. Setup is `render:setup` (eager preloading happens \
         there); cold is a load from the source (file decode or drawing), warm a cache hit; lazy \
         loads are the `asset:load` spans (eager: at setup; lazy: on first use); layout update is the `layout:update` span \
         (one per updateInterval); viewport times are means over many calls (resize re-places \
         every layer).",
    );
    head(
        out,
        &[
            "Layers",
            "Preload",
            "Assets",
            "Batch updates",
            "FPS",
            "Setup ms",
            "Asset cold ms / warm µs",
            "Asset loads (p99 ms)",
            "Layout update p50 / p99 µs",
            "Complexity",
            "Hit rate",
            "Cache memory",
            "Viewport update / resize / transform µs",
        ],
    );
    for p in &r.points {
        let c = &p.config.core;
        let Some(k) = &p.core else { continue };
        let m = &k.metrics;
        let loads = p.spans.get("asset:load").map_or("0".to_string(), |s| {
            format!("{} ({:.2})", s.count, s.p99_us / 1000.0)
        });
        let layout = p.spans.get("layout:update").map_or("-".to_string(), |s| {
            format!("{:.1} / {:.1}", s.p50_us, s.p99_us)
        });
        row(
            out,
            &[
                m.layer_count.to_string(),
                format!("{:?}", c.assets.preload_strategy).to_lowercase(),
                match &c.assets.dir {
                    Some(d) if !d.as_os_str().is_empty() => "PNG/JPEG files".to_string(),
                    _ => "generated".to_string(),
                },
                c.layout.batch_updates.to_string(),
                spread(p),
                span_ms(p, "render:setup", |s| s.max_us),
                format!("{:.2} / {:.2}", k.asset_cold_ms, k.asset_warm_us),
                loads,
                layout,
                format!("{:.2}", m.complexity_score),
                format!("{:.1}%", m.cache_hit_rate),
                mib(m.memory_usage),
                format!(
                    "{:.3} / {:.1} / {:.3}",
                    k.viewport_update_us, k.viewport_resize_us, k.viewport_transform_us
                ),
            ],
        );
    }
    out.push('\n');
}

/// The `compose` suite: compositor throughput.
pub fn compose_table(out: &mut String, r: &Results) {
    header(
        out,
        "Composition Engine",
        r,
        "Compose fps is the render stage's own rate (1 ÷ the `render:frame` median: background \
         plus every layer blended); FPS is the whole stream's (the encoder runs too, on the same \
         cores). batchEfficiency is items per pass ÷ batchSize; grouped is how many static \
         layers the cache pre-composes into one.",
    );
    head(
        out,
        &[
            "Layers",
            "Threads",
            "Batch",
            "OptimizeFor",
            "Cache",
            "Compose fps",
            "render:frame p50 / p99 ms",
            "batchEfficiency",
            "Grouped",
            "FPS",
            "CPU %",
        ],
    );
    for p in &r.points {
        let k = &p.config.core.composition;
        let m = p.core.as_ref().map(|c| &c.metrics);
        let compose_fps = p.spans.get("render:frame").map_or("-".to_string(), |s| {
            format!("{:.0}", 1e6 / s.p50_us.max(0.001))
        });
        row(
            out,
            &[
                p.config.core.layout.layers.to_string(),
                k.thread_pool.to_string(),
                k.batch_size.to_string(),
                format!("{:?}", k.optimize_for).to_lowercase(),
                format!("{:?}", k.cache_strategy).to_lowercase(),
                compose_fps,
                format!(
                    "{} / {}",
                    span_ms(p, "render:frame", |s| s.p50_us),
                    span_ms(p, "render:frame", |s| s.p99_us)
                ),
                m.map_or("-".to_string(), |m| format!("{:.2}", m.batch_efficiency)),
                m.map_or("-".to_string(), |m| m.grouped_layers.to_string()),
                spread(p),
                format!("{:.0}", p.cpu_percent),
            ],
        );
    }
    out.push('\n');
}

/// A line of block characters for a series (a plot that fits a table cell).
pub fn sparkline(values: &[u64], width: usize) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    if values.is_empty() {
        return String::new();
    }
    let (lo, hi) = (
        *values.iter().min().unwrap_or(&0),
        *values.iter().max().unwrap_or(&0),
    );
    let step = values.len().div_ceil(width.max(1)).max(1);
    values
        .chunks(step)
        .map(|c| {
            let v = c.iter().sum::<u64>() / c.len() as u64;
            let i = if hi == lo {
                0
            } else {
                ((v - lo) * 7 / (hi - lo)) as usize
            };
            BARS[i]
        })
        .collect()
}

/// The `memory` suite: allocations, buffer pool, caches, RSS over time.
pub fn memory_table(out: &mut String, r: &Results) {
    header(
        out,
        "Memory",
        r,
        "Allocations per frame are the process's Rust heap allocations over the window (the \
         counting allocator; a run's fixed start-up taken off), buffer allocations the frame \
         buffers the pool could not supply (FFmpeg allocates those). Cache memory is the asset \
         cache plus the compositor's sprites. RSS over time is sampled every 50 ms over the \
         window, from its lowest (▁) to its highest (█) value.",
    );
    head(
        out,
        &[
            "Buffer pool",
            "Layers",
            "Format",
            "Pressure limit",
            "Allocs / frame",
            "Buffer allocs / frame",
            "Pool hit rate",
            "Cache memory",
            "Peak RSS",
            "RSS over time",
            "Drops",
            "Pressure events",
        ],
    );
    for p in &r.points {
        let c = &p.config;
        let pf = p.pipeline.as_ref();
        let rss: Vec<u64> = p.rss_timeline.iter().map(|(_, b)| *b).collect();
        let lo = rss.iter().min().copied().unwrap_or(0);
        let hi = rss.iter().max().copied().unwrap_or(0);
        row(
            out,
            &[
                if c.pipeline.buffer_pool { "on" } else { "off" }.to_string(),
                c.core.layout.layers.to_string(),
                c.pipeline.format.to_string(),
                match c.pipeline.pressure_rss_mb {
                    0 => "off".to_string(),
                    mb => format!("{mb} MiB"),
                },
                pf.and_then(|p| p.allocs_per_frame)
                    .map_or("-".to_string(), |a| format!("{a:.3}")),
                pf.map_or("-".to_string(), |p| {
                    format!("{:.2}", p.buffer_allocs_per_frame)
                }),
                pf.map_or("-".to_string(), |p| {
                    format!("{:.1}%", p.pool_hit_rate * 100.0)
                }),
                p.core
                    .as_ref()
                    .map_or("-".to_string(), |k| mib(k.metrics.memory_usage)),
                mib(p.rss_bytes),
                format!("{} {} → {}", sparkline(&rss, 24), mib(lo), mib(hi)),
                pf.map_or(p.dropped_frames.to_string(), |p| drop_reasons(&p.drops)),
                pf.map_or("-".to_string(), |p| p.pressure_events.to_string()),
            ],
        );
    }
    out.push('\n');
}

/// The frames suite's `timing` part: output jitter.
pub fn timing_table(out: &mut String, r: &Results) {
    header(
        out,
        "Frames — timing",
        r,
        "Jitter is how far each interval between consecutive frames leaving the encoder \
         (`network:send:end`) strays from the frame period, as an HDR histogram (`frame:jitter`).",
    );
    head(
        out,
        &[
            "Preset",
            "Target fps",
            "Threads",
            "FPS",
            "Jitter p50 / p99 / max ms",
            "frame:total p50 / p99 ms",
            "Drops",
        ],
    );
    for p in &r.points {
        let e = &p.config.encoder;
        row(
            out,
            &[
                e.preset.to_string(),
                p.config.core.viewport.fps.to_string(),
                e.pipeline.threads.to_string(),
                spread(p),
                p.spans.get(crate::record::JITTER).map_or("-".into(), |s| {
                    format!(
                        "{:.2} / {:.2} / {:.2}",
                        s.p50_us / 1000.0,
                        s.p99_us / 1000.0,
                        s.max_us / 1000.0
                    )
                }),
                format!(
                    "{} / {}",
                    span_ms(p, "frame:total", |s| s.p50_us),
                    span_ms(p, "frame:total", |s| s.p99_us)
                ),
                p.pipeline
                    .as_ref()
                    .map_or(p.dropped_frames.to_string(), |pf| drop_reasons(&pf.drops)),
            ],
        );
    }
    out.push('\n');
}

/// The frames suite's `drops` part: overload, per policy.
pub fn drops_table(out: &mut String, r: &Results) {
    header(
        out,
        "Frames — drops under overload",
        r,
        "The encoder is slower than real time here, so frames must be shed: every frame slot is \
         either encoded or dropped under one reason (behind, queue full, stale, late, pressure).",
    );
    head(
        out,
        &[
            "Policy",
            "Queue",
            "Preset",
            "FPS",
            "Drops",
            "bufferHealth",
            "frame:total p99 ms",
        ],
    );
    for p in &r.points {
        let c = &p.config;
        let pf = p.pipeline.as_ref();
        row(
            out,
            &[
                c.pipeline.drop_policy.to_string(),
                c.pipeline.max_queue_size.to_string(),
                c.encoder.preset.to_string(),
                spread(p),
                pf.map_or(p.dropped_frames.to_string(), |pf| drop_reasons(&pf.drops)),
                pf.map_or("-".to_string(), |pf| format!("{:.2}", pf.buffer_health)),
                span_ms(p, "frame:total", |s| s.p99_us),
            ],
        );
    }
    out.push('\n');
}

/// Queue depth at quantile `q` from an occupancy histogram.
fn depth_at(occupancy: &[u64], q: f64) -> usize {
    let n: u64 = occupancy.iter().sum();
    let want = (n as f64 * q).ceil() as u64;
    let mut seen = 0;
    for (d, c) in occupancy.iter().enumerate() {
        seen += c;
        if seen >= want.max(1) {
            return d;
        }
    }
    0
}

/// The frames suite's `buffer` part: queue occupancy and bufferHealth.
pub fn buffer_table(out: &mut String, r: &Results) {
    header(
        out,
        "Frames — buffer",
        r,
        "Occupancy is the queue depth each arriving frame found (a histogram over the window); \
         bufferHealth is the guide's StreamMetrics field: 1 − the queue's mean fill (1: the \
         encoder keeps up; 0: always full).",
    );
    head(
        out,
        &[
            "Queue",
            "Preset",
            "FPS",
            "Occupancy p50 / p90 / max",
            "bufferHealth",
            "pipeline:queue p99 ms",
            "Drops",
        ],
    );
    for p in &r.points {
        let c = &p.config;
        let pf = p.pipeline.as_ref();
        let occ = pf.map_or("-".to_string(), |pf| {
            let max = pf.occupancy.iter().rposition(|c| *c > 0).unwrap_or(0);
            format!(
                "{} / {} / {}",
                depth_at(&pf.occupancy, 0.5),
                depth_at(&pf.occupancy, 0.9),
                max
            )
        });
        row(
            out,
            &[
                c.pipeline.max_queue_size.to_string(),
                c.encoder.preset.to_string(),
                spread(p),
                occ,
                pf.map_or("-".to_string(), |pf| format!("{:.2}", pf.buffer_health)),
                span_ms(p, "pipeline:queue", |s| s.p99_us),
                pf.map_or(p.dropped_frames.to_string(), |pf| drop_reasons(&pf.drops)),
            ],
        );
    }
    out.push('\n');
}

/// The frames suite's `quality` part: PSNR and SSIM per preset, ours and the CLI's.
pub fn quality_table(out: &mut String, r: &Results) {
    header(
        out,
        "Frames — quality",
        r,
        "PSNR and SSIM of the encoded stream against its source frames, in process (libavfilter's \
         `psnr` and `ssim` through ffmpeg-next) and with the ffmpeg CLI's filters on the same \
         files; both pair frames with `settb=1/30,setpts=N`. Agreement must be within 0.1 dB \
         and 0.001.",
    );
    head(
        out,
        &[
            "Preset",
            "Format",
            "Quality",
            "Frames",
            "Bitrate kbit/s",
            "PSNR dB (CLI)",
            "SSIM (CLI)",
            "Agree",
        ],
    );
    for p in &r.points {
        let Some(q) = &p.quality else { continue };
        let c = &p.config;
        let agree = match (q.cli_psnr_db, q.cli_ssim) {
            (Some(cp), Some(cs)) => {
                if (cp - q.psnr_db).abs() <= 0.1 && (cs - q.ssim).abs() <= 0.001 {
                    "yes".to_string()
                } else {
                    format!("no (Δ {:.3} dB, {:.4})", q.psnr_db - cp, q.ssim - cs)
                }
            }
            _ => "CLI did not run".to_string(),
        };
        row(
            out,
            &[
                c.encoder.preset.to_string(),
                c.pipeline.format.to_string(),
                c.pipeline.quality.to_string(),
                q.frames.to_string(),
                format!("{:.0}", q.bitrate_kbps),
                format!(
                    "{:.3} ({})",
                    q.psnr_db,
                    q.cli_psnr_db.map_or("-".into(), |v| format!("{v:.3}"))
                ),
                format!(
                    "{:.5} ({})",
                    q.ssim,
                    q.cli_ssim.map_or("-".into(), |v| format!("{v:.5}"))
                ),
                agree,
            ],
        );
    }
    out.push('\n');
}

/// The render stage: backend × antialiasing × filter × layers × resolution.
pub fn render_table(out: &mut String, r: &Results) {
    header(
        out,
        "Renderer",
        r,
        "Render fps is the render stage's own rate over the run (the guide's RenderMetrics: \
         1000 ÷ frameTime, the mean wall time of composing a frame — layout, texture upload, \
         draw and, on the GPU, readback into the encoder's planes). render:frame p50 / p99 also \
         holds the scene's background and, with frames in flight, the wait for the round. \
         Draw calls and triangles are per frame (CPU: blending passes); texture memory is the \
         texture cache plus the frame's textures (GPU) or the scaled sprites (CPU). To GPU and \
         back: the bytes of each frame's YUV uploaded and read back (only the 64×16 tiles that \
         a layer covers travel). Cache hits (GPU): texture lookups, draw calls whose instance \
         data was on the GPU, and pipelines built from the shader cache's compiled code (0% \
         where the backend has no pipeline cache); CPU: sprite lookups. FPS is the whole stream's, \
         encoder included.",
    );
    head(
        out,
        &[
            "Backend",
            "Adapter",
            "AA",
            "Filter",
            "Layers",
            "Resolution",
            "Render fps",
            "frameTime ms",
            "render:frame p50 / p99 ms",
            "Draw calls",
            "Triangles",
            "Texture memory",
            "To GPU and back",
            "Cache hits: textures / geometry / shaders",
            "FPS",
        ],
    );
    for p in &r.points {
        let c = &p.config;
        let q = &c.renderer.quality;
        let m = p.render.as_ref();
        let cell =
            |f: &dyn Fn(&streamer::render::RenderMetrics) -> String| m.map_or("-".to_string(), f);
        row(
            out,
            &[
                cell(&|m| m.backend.clone()),
                cell(&|m| {
                    m.adapter.as_ref().map_or_else(
                        || "-".to_string(),
                        |a| format!("{} ({})", a.name, a.backend),
                    )
                }),
                if q.antialiasing { "4×" } else { "off" }.to_string(),
                q.filter_mode.to_string(),
                c.core.layout.layers.to_string(),
                format!("{}×{}", c.core.viewport.width, c.core.viewport.height),
                cell(&|m| format!("{:.0}", m.fps)),
                cell(&|m| format!("{:.2}", m.frame_time)),
                format!(
                    "{} / {}",
                    span_ms(p, "render:frame", |s| s.p50_us),
                    span_ms(p, "render:frame", |s| s.p99_us)
                ),
                cell(&|m| format!("{:.1}", m.draw_calls)),
                cell(&|m| format!("{:.0}", m.triangle_count)),
                cell(&|m| mib(m.texture_memory)),
                cell(&|m| {
                    if m.backend == "gpu" {
                        format!("{:.0} KiB", m.transfer_bytes / 1024.0)
                    } else {
                        "-".to_string()
                    }
                }),
                cell(&|m| {
                    if m.backend == "gpu" {
                        format!(
                            "{:.0}% / {:.0}% / {:.0}%",
                            m.cache_hit_rate, m.geometry_hit_rate, m.shader_hit_rate
                        )
                    } else {
                        format!("{:.0}%", m.cache_hit_rate)
                    }
                }),
                spread(p),
            ],
        );
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparklines_span_low_to_high() {
        assert_eq!(sparkline(&[1, 1, 1], 10), "▁▁▁");
        assert_eq!(sparkline(&[0, 7, 14], 10), "▁▄█");
        assert_eq!(
            sparkline(&(0..100).collect::<Vec<_>>(), 10).chars().count(),
            10
        );
    }

    #[test]
    fn occupancy_quantiles() {
        let occ = [5, 3, 0, 2];
        assert_eq!(depth_at(&occ, 0.5), 0);
        assert_eq!(depth_at(&occ, 0.9), 3);
    }
}
