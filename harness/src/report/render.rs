//! The report's table for the `render` suite: backend × antialiasing × filter × layers ×
//! resolution.

use super::format::{head, header, mib, row, span_ms, spread};
use crate::record::SpanStats;
use crate::results::Results;

/// The render stage: backend × antialiasing × filter × layers × resolution.
pub(super) fn render_table(out: &mut String, r: &Results) {
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
         encoder included. AA is \"—\" on the CPU compositor, which has no multisampling (the \
         suite does not run its antialiasing points).",
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
                // The CPU compositor has no multisampling: the setting has no effect there.
                if m.is_some_and(|m| m.backend == "cpu") {
                    "—"
                } else if q.antialiasing {
                    "4×"
                } else {
                    "off"
                }
                .to_string(),
                q.filter_mode.to_string(),
                c.core.layout.layers.to_string(),
                format!("{}×{}", c.core.viewport.width, c.core.viewport.height),
                cell(&|m| format!("{:.0}", m.fps)),
                cell(&|m| format!("{:.2}", m.frame_time)),
                format!(
                    "{} / {}",
                    span_ms(p, "render:frame", SpanStats::p50),
                    span_ms(p, "render:frame", SpanStats::p99)
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
