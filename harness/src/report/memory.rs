//! The report's table for the `memory` suite: allocations, buffer pool, caches, RSS over time.

use super::format::{drop_reasons, head, header, mib, row};
use crate::results::Results;

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
pub(super) fn memory_table(out: &mut String, r: &Results) {
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
                match (c.pipeline.pressure_rss_mb, c.pipeline.pressure_growth_mb) {
                    (0, 0) => "off".to_string(),
                    (0, growth) => format!("+{growth} MiB over open"),
                    (mb, _) => format!("{mb} MiB"),
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
}
