//! The report's tables for the frames suites: timing (jitter), drops under overload, buffer
//! occupancy, and quality (PSNR/SSIM).

use super::format::{drop_reasons, head, header, row, span_ms, spread};
use crate::record::SpanStats;
use crate::results::Results;

/// The frames suite's `timing` part: output jitter.
pub(super) fn timing_table(out: &mut String, r: &Results) {
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
                        "{} / {} / {:.2}",
                        super::format::ms(s.p50(), 2),
                        super::format::ms(s.p99(), 2),
                        s.max_us / 1000.0
                    )
                }),
                format!(
                    "{} / {}",
                    span_ms(p, "frame:total", SpanStats::p50),
                    span_ms(p, "frame:total", SpanStats::p99)
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
pub(super) fn drops_table(out: &mut String, r: &Results) {
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
            "Frames due = encoded + dropped",
            "bufferHealth",
            "frame:total p99 ms",
        ],
    );
    for p in &r.points {
        let c = &p.config;
        let pf = p.pipeline.as_ref();
        let ledger = p.ledger.as_ref().map_or("—".to_string(), |l| {
            format!("{} = {} + {}", l.due, l.encoded, l.dropped.total())
        });
        row(
            out,
            &[
                c.pipeline.drop_policy.to_string(),
                c.pipeline.max_queue_size.to_string(),
                c.encoder.preset.to_string(),
                spread(p),
                pf.map_or(p.dropped_frames.to_string(), |pf| drop_reasons(&pf.drops)),
                ledger,
                pf.map_or("-".to_string(), |pf| format!("{:.2}", pf.buffer_health)),
                span_ms(p, "frame:total", SpanStats::p99),
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
pub(super) fn buffer_table(out: &mut String, r: &Results) {
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
                span_ms(p, "pipeline:queue", SpanStats::p99),
                pf.map_or(p.dropped_frames.to_string(), |pf| drop_reasons(&pf.drops)),
            ],
        );
    }
    out.push('\n');
}

/// The frames suite's `quality` part: PSNR and SSIM per preset, ours and the CLI's.
pub(super) fn quality_table(out: &mut String, r: &Results) {
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
        let Some(q) = &p.fidelity else { continue };
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
                c.pipeline.jpeg_quality.to_string(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn occupancy_quantiles() {
        let occ = [5, 3, 0, 2];
        assert_eq!(depth_at(&occ, 0.5), 0);
        assert_eq!(depth_at(&occ, 0.9), 3);
    }
}
