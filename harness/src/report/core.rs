//! The report's tables for the `core` suite (viewport, assets, layout) and the `compose` suite
//! (the composition engine).

use super::format::{head, header, mib, row, span_ms, spread};
use crate::record::SpanStats;
use crate::results::Results;

/// The `core` suite: viewport, assets and layout against layer count.
pub(super) fn core_table(out: &mut String, r: &Results) {
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
            "Asset cold / warm ms",
            "Asset loads (p99 ms)",
            "Layout update p50 / p99 ms",
            "Complexity",
            "Hit rate",
            "Cache memory",
            "Viewport update / resize / transform ms",
        ],
    );
    for p in &r.points {
        let c = &p.config.core;
        let Some(k) = &p.core else { continue };
        let m = &k.metrics;
        let loads = p.spans.get("asset:load").map_or("0".to_string(), |s| {
            format!("{} ({})", s.count, super::format::ms(s.p99(), 2))
        });
        let layout = p.spans.get("layout:update").map_or("-".to_string(), |s| {
            format!(
                "{} / {}",
                super::format::ms(s.p50(), 4),
                super::format::ms(s.p99(), 4)
            )
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
                span_ms(p, "render:setup", SpanStats::max),
                format!("{:.2} / {:.4}", k.asset_cold_ms, k.asset_warm_us / 1000.0),
                loads,
                layout,
                format!("{:.2}", m.complexity_score),
                format!("{:.1}%", m.cache_hit_rate),
                mib(m.memory_usage),
                format!(
                    "{:.5} / {:.3} / {:.5}",
                    k.viewport_update_us / 1000.0,
                    k.viewport_resize_us / 1000.0,
                    k.viewport_transform_us / 1000.0
                ),
            ],
        );
    }
    out.push('\n');
}

/// The `compose` suite: compositor throughput.
pub(super) fn compose_table(out: &mut String, r: &Results) {
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
        let compose_fps = p
            .spans
            .get("render:frame")
            .and_then(SpanStats::p50)
            .map_or("-".to_string(), |us| format!("{:.0}", 1e6 / us.max(0.001)));
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
                    span_ms(p, "render:frame", SpanStats::p50),
                    span_ms(p, "render:frame", SpanStats::p99)
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
