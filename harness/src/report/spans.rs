//! Span percentiles per point, under every suite's table.

use crate::record::SpanStats;
use crate::results::Results;
use crate::scenario::GuideTable;
use std::fmt::Write as _;

pub(super) fn point_spans(out: &mut String, r: &Results) {
    type Column = (&'static str, &'static str, fn(&SpanStats) -> Option<f64>);
    let p50: fn(&SpanStats) -> Option<f64> = SpanStats::p50;
    let p99: fn(&SpanStats) -> Option<f64> = SpanStats::p99;
    let max: fn(&SpanStats) -> Option<f64> = SpanStats::max;
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
    let (axes, under) = super::format::axis_header(r);
    out.push_str(&axes);
    for (span, stat, _) in &columns {
        let _ = write!(out, " {span} {stat} |");
    }
    let _ = write!(out, "\n{under}");
    out.push_str(&"------|".repeat(columns.len()));
    out.push('\n');
    for p in &r.points {
        out.push_str(&super::format::axis_row(p));
        for (span, _, f) in &columns {
            let cell = p
                .spans
                .get(*span)
                .map_or("-".to_string(), |s| super::format::ms(f(s), 2));
            let _ = write!(out, " {cell} |");
        }
        out.push('\n');
    }
    out.push('\n');
}
