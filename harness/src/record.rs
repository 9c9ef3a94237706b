//! The recorder: a `Probe` that pairs marks into spans and keeps an HDR histogram per span.
//!
//! A start mark stores its instant in a small ring indexed by frame id (one ring per point that
//! starts a span); an end mark looks up the start for the same frame, and records the duration
//! in nanoseconds into the span's histogram. Marks never fail: an end with no matching start
//! (overwritten after [`RING`] frames, or never marked) is counted in [`Recorder::unmatched`].
//!
//! Warm-up: after [`Recorder::begin_measurement`], per-frame spans of frames before the given
//! id are ignored; once-per-run spans (`render:setup`, `asset:load`) are always kept.

use base64::Engine as _;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer as _, V2DeflateSerializer};
use serde::{Deserialize, Serialize};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use streamer::probe::{Point, Probe, SPANS, SpanPairs};

pub use streamer::probe::RING;

/// Highest value the histograms hold, in nanoseconds (larger values saturate): one hour.
const MAX_NS: u64 = 3_600_000_000_000;

/// A new histogram of span durations in nanoseconds, 3 significant figures.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_NS, 3).expect("valid histogram bounds")
}

/// Records every span of a stream into HDR histograms.
pub struct Recorder {
    epoch: Instant,
    pairs: SpanPairs,
    spans: Vec<Mutex<Histogram<u64>>>,
    measure_from: AtomicU64,
    unmatched: AtomicU64,
    /// The stream's frame period in ns (0: no jitter recorded).
    period_ns: AtomicU64,
    jitter: Mutex<Jitter>,
}

/// Output timing: how far each interval between consecutive frames' `network:send:end`
/// strays from the frame period.
struct Jitter {
    hist: Histogram<u64>,
    last: Option<(u64, u64)>,
}

/// The name jitter goes by in results, beside the spans.
pub const JITTER: &str = "frame:jitter";

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder {
    /// An empty recorder measuring from frame 0.
    pub fn new() -> Self {
        Recorder {
            epoch: Instant::now(),
            pairs: SpanPairs::new(),
            spans: SPANS.iter().map(|_| Mutex::new(new_histogram())).collect(),
            measure_from: AtomicU64::new(0),
            unmatched: AtomicU64::new(0),
            period_ns: AtomicU64::new(0),
            jitter: Mutex::new(Jitter {
                hist: new_histogram(),
                last: None,
            }),
        }
    }

    /// Ignore per-frame spans of frames before `frame` (the warm-up) from now on, and forget
    /// what they recorded so far.
    pub fn begin_measurement(&self, frame: u64) {
        self.measure_from.store(frame, Ordering::Relaxed);
        if let Ok(mut j) = self.jitter.lock() {
            j.hist.reset();
            j.last = None;
        }
        for (span, hist) in SPANS.iter().zip(&self.spans) {
            if span.per_frame {
                lock(hist).reset();
            }
        }
    }

    /// Records output jitter against a frame period of `period` from now on.
    pub fn set_period(&self, period: std::time::Duration) {
        self.period_ns
            .store(period.as_nanos() as u64, Ordering::Relaxed);
    }

    /// End marks that found no start for their frame.
    pub fn unmatched(&self) -> u64 {
        self.unmatched.load(Ordering::Relaxed)
    }

    /// A copy of one span's histogram (None for a name that is not a span).
    pub fn span(&self, name: &str) -> Option<Histogram<u64>> {
        SPANS
            .iter()
            .position(|s| s.name == name)
            .map(|i| lock(&self.spans[i]).clone())
    }

    /// A copy of every span's histogram, by span name, leaving out spans never marked.
    pub fn snapshot(&self) -> Vec<(&'static str, Histogram<u64>)> {
        SPANS
            .iter()
            .zip(&self.spans)
            .map(|(s, h)| (s.name, lock(h).clone()))
            .chain(self.jitter.lock().ok().map(|j| (JITTER, j.hist.clone())))
            .filter(|(_, h)| !h.is_empty())
            .collect()
    }

    #[inline]
    fn record_jitter(&self, frame: u64, now_ns: u64) {
        let period = self.period_ns.load(Ordering::Relaxed);
        if period == 0 || frame < self.measure_from.load(Ordering::Relaxed) {
            return;
        }
        let Ok(mut j) = self.jitter.lock() else {
            return;
        };
        if let Some((last_frame, last_ns)) = j.last
            && frame == last_frame + 1
        {
            let interval = now_ns.saturating_sub(last_ns);
            j.hist.saturating_record(interval.abs_diff(period).max(1));
        }
        j.last = Some((frame, now_ns));
    }
}

impl Probe for Recorder {
    #[inline]
    fn mark(&self, point: Point, frame: u64) {
        self.mark_ns(point, frame, self.epoch.elapsed().as_nanos() as u64);
    }

    fn mark_at(&self, point: Point, frame: u64, at: Instant) {
        self.mark_ns(
            point,
            frame,
            at.saturating_duration_since(self.epoch).as_nanos() as u64,
        );
    }
}

impl Recorder {
    #[inline]
    fn mark_ns(&self, point: Point, frame: u64, now_ns: u64) {
        let from = self.measure_from.load(Ordering::Relaxed);
        self.pairs.mark(
            point,
            frame,
            now_ns,
            |span| !(span.per_frame && frame < from),
            |i, d| match d {
                Some(ns) => lock(&self.spans[i]).saturating_record(ns.max(1)),
                None => {
                    self.unmatched.fetch_add(1, Ordering::Relaxed);
                }
            },
        );
        if point == Point::NetworkSendEnd {
            self.record_jitter(frame, now_ns);
        }
    }
}

/// A poisoned histogram lock only means a thread panicked mid-record; the data is still usable.
fn lock(m: &Mutex<Histogram<u64>>) -> std::sync::MutexGuard<'_, Histogram<u64>> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One span's figures in results, in microseconds, with its serialized histogram.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpanStats {
    pub count: u64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
    pub mean_us: f64,
    /// The histogram (nanoseconds), HdrHistogram V2 + deflate, base64.
    pub histogram: String,
}

impl SpanStats {
    /// Summarises a histogram of nanoseconds.
    pub fn from_histogram(h: &Histogram<u64>) -> Self {
        let us = |ns: u64| ns as f64 / 1000.0;
        let mut bytes = Vec::new();
        V2DeflateSerializer::new()
            .serialize(h, &mut bytes)
            .expect("serializing into memory cannot fail");
        SpanStats {
            count: h.len(),
            p50_us: us(h.value_at_quantile(0.50)),
            p90_us: us(h.value_at_quantile(0.90)),
            p99_us: us(h.value_at_quantile(0.99)),
            p999_us: us(h.value_at_quantile(0.999)),
            max_us: us(h.max()),
            mean_us: h.mean() / 1000.0,
            histogram: base64::engine::general_purpose::STANDARD.encode(bytes),
        }
    }

    /// The `q` quantile (0.5, 0.9, 0.99, 0.999), µs, where the span has at least 5 samples
    /// beyond it (count ≥ 5 ÷ (1 − q): p99 from 500 samples, p99.9 from 5,000); None with
    /// fewer, where it would be one of the last few samples, not a percentile.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let value = match q {
            0.5 => self.p50_us,
            0.9 => self.p90_us,
            0.99 => self.p99_us,
            0.999 => self.p999_us,
            _ => return None,
        };
        (self.count as f64 >= quantile_floor(q)).then_some(value)
    }

    /// p50, µs (None under 10 samples).
    pub fn p50(&self) -> Option<f64> {
        self.quantile(0.5)
    }

    /// p90, µs (None under 50 samples).
    pub fn p90(&self) -> Option<f64> {
        self.quantile(0.9)
    }

    /// p99, µs (None under 500 samples).
    pub fn p99(&self) -> Option<f64> {
        self.quantile(0.99)
    }

    /// p99.9, µs (None under 5,000 samples).
    pub fn p999(&self) -> Option<f64> {
        self.quantile(0.999)
    }

    /// The largest sample, µs (None for none).
    pub fn max(&self) -> Option<f64> {
        (self.count > 0).then_some(self.max_us)
    }

    /// The histogram back from its serialized form.
    ///
    /// # Errors
    /// The text is not a serialized histogram.
    pub fn histogram(&self) -> Result<Histogram<u64>, HistogramError> {
        let bytes = base64::engine::general_purpose::STANDARD.decode(&self.histogram)?;
        Deserializer::new()
            .deserialize(&mut bytes.as_slice())
            .map_err(|e| HistogramError::Decode(format!("{e:?}")))
    }
}

/// The least samples a span needs for its `q` quantile to be printed: 5 beyond it.
pub fn quantile_floor(q: f64) -> f64 {
    (5.0 / (1.0 - q)).round()
}

/// A span's serialized histogram that cannot be read back.
#[derive(Debug, thiserror::Error)]
pub enum HistogramError {
    #[error("{0}")]
    Base64(#[from] base64::DecodeError),
    #[error("{0}")]
    Decode(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(rec: &Recorder, name: &str) -> u64 {
        rec.snapshot()
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(0, |(_, h)| h.len())
    }

    #[test]
    fn marks_pair_into_spans_with_correct_counts() {
        let rec = Recorder::new();
        rec.mark(Point::RenderSetupStart, 0);
        rec.mark(Point::RenderSetupEnd, 0);
        for f in 0..50 {
            rec.mark(Point::FrameCapture, f);
            rec.mark(Point::EncodeStart, f);
            rec.mark(Point::EncodeEnd, f);
            rec.mark(Point::NetworkSendStart, f);
            rec.mark(Point::NetworkSendEnd, f);
        }
        assert_eq!(count(&rec, "render:setup"), 1);
        assert_eq!(count(&rec, "encode"), 50);
        assert_eq!(count(&rec, "network:send"), 50);
        assert_eq!(count(&rec, "frame:total"), 50);
        assert_eq!(count(&rec, "e2e"), 0);
        assert_eq!(rec.unmatched(), 0);
    }

    #[test]
    fn out_of_order_ends_pair_by_frame_and_orphans_are_counted() {
        let rec = Recorder::new();
        // Lookahead: three frames in before the first comes out.
        for f in 0..3 {
            rec.mark(Point::EncodeStart, f);
        }
        for f in 0..3 {
            rec.mark(Point::EncodeEnd, f);
        }
        rec.mark(Point::EncodeEnd, 99);
        assert_eq!(count(&rec, "encode"), 3);
        assert_eq!(rec.unmatched(), 1);
    }

    #[test]
    fn warm_up_leaves_per_frame_spans_only() {
        let rec = Recorder::new();
        rec.mark(Point::RenderSetupStart, 0);
        rec.mark(Point::RenderSetupEnd, 0);
        for f in 0..10 {
            rec.mark(Point::EncodeStart, f);
            rec.mark(Point::EncodeEnd, f);
        }
        rec.begin_measurement(10);
        for f in 5..20 {
            rec.mark(Point::EncodeStart, f);
            rec.mark(Point::EncodeEnd, f);
        }
        assert_eq!(count(&rec, "encode"), 10);
        assert_eq!(count(&rec, "render:setup"), 1);
    }

    #[test]
    fn stats_round_trip_the_histogram() {
        let mut h = new_histogram();
        for v in 1..=1000u64 {
            h.record(v * 1000).unwrap();
        }
        let s = SpanStats::from_histogram(&h);
        assert_eq!(s.count, 1000);
        assert!((s.p50_us - 500.0).abs() < 1.0, "{}", s.p50_us);
        assert!((s.max_us - 1000.0).abs() < 1.0, "{}", s.max_us);
        assert_eq!(s.histogram().unwrap(), h);
    }
}
