//! Live metrics in Prometheus' exposition format, with the guide's names: `stream-manager run
//! --metrics 127.0.0.1:PORT` serves `GET /metrics` while the stream runs.
//!
//! [`Metrics`] is a [`Probe`]: it pairs the stream's marks into spans (the same pairing as the
//! harness's recorder, [`SpanPairs`]) and observes every span's duration into a histogram
//! (`stream_manager_span_duration_seconds{span=…}`; the `encode` span also into the guide's
//! `stream_manager_encoding_time_ms`). A scrape reads the stream's [`Live`] counters and turns
//! them into the guide's gauges and counters — fps and bitrate over the time since the previous
//! scrape, dropped frames by reason, queue size, memory — and the guide's StreamMetrics
//! (encoder latency, buffer health, CPU usage).
//!
//! The exposition is Prometheus' text format (0.0.4), made by the `prometheus` crate (lock-free
//! histograms, the format `promtool check metrics` reads); the HTTP side is `tiny_http` on its
//! own thread. Counters carry Prometheus' `_total` suffix: the guide's
//! `stream_manager_dropped_frames` is `stream_manager_dropped_frames_total{reason=…}`.

use crate::pipeline::Drops;
use crate::probe::{Point, Probe, SPANS, SpanPairs};
use crate::stream::LiveSnapshot;
mod http;

pub use http::{Endpoint, ServeError, Streams, render_server, serve, serve_many, serve_server};

use prometheus::{
    Encoder as _, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, Opts, Registry, TextEncoder,
};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Buckets for durations from 0.05 ms to about 3.3 s, doubling, in `unit`s per second (1000:
/// milliseconds, 1: seconds).
fn buckets(per_second: f64) -> Vec<f64> {
    prometheus::exponential_buckets(0.05e-3 * per_second, 2.0, 17).expect("valid buckets")
}

/// The index of the `encode` span in [`SPANS`].
fn encode_span() -> usize {
    SPANS
        .iter()
        .position(|s| s.name == "encode")
        .expect("SPANS has encode")
}

/// What the previous scrape saw, to turn counters into rates.
struct Previous {
    at: Instant,
    packets: u64,
    bytes: u64,
    cpu_ticks: u64,
    encode_ns: u64,
    encodes: u64,
    drops: Drops,
}

/// The metrics of one stream: a probe to hand it, and the exposition a scrape gets.
pub struct Metrics {
    epoch: Instant,
    pairs: SpanPairs,
    registry: Registry,
    encoding: Histogram,
    spans: Vec<Histogram>,
    encode_index: usize,
    encode_ns: AtomicU64,
    encodes: AtomicU64,
    fps: Gauge,
    bitrate: Gauge,
    dropped: IntCounterVec,
    queue: IntGauge,
    memory: IntGauge,
    encoder_latency: Gauge,
    buffer_health: Gauge,
    cpu: Gauge,
    frames: IntCounter,
    /// The publisher's connection (RTMP outputs): see [`crate::adapt::network`].
    network: [Gauge; 8],
    /// Adaptive bitrate: the encoder's target now, and the changes made.
    target: Gauge,
    changes: Gauge,
    workers: Gauge,
    previous: Mutex<Previous>,
}

/// The network quality gauges: name, help.
const NETWORK: [(&str, &str); 8] = [
    (
        "stream_manager_network_rtt_seconds",
        "Smoothed round-trip time of the publisher's connection (TCP_INFO), seconds",
    ),
    (
        "stream_manager_network_rtt_variation_seconds",
        "Mean deviation of that round-trip time (TCP_INFO), seconds",
    ),
    (
        "stream_manager_network_retransmitted_segments",
        "Segments retransmitted on the publisher's current connection (TCP_INFO)",
    ),
    (
        "stream_manager_network_delivery_rate_kbps",
        "The kernel's delivery-rate estimate for the publisher's connection, kbit/s",
    ),
    (
        "stream_manager_network_unsent_bytes",
        "Bytes the publisher wrote that the kernel has not sent yet",
    ),
    (
        "stream_manager_network_queued_media_seconds",
        "Media the publisher has not delivered (from the oldest frame the server has not \
         acknowledged to the newest written, or to now while writes wait for room), seconds: \
         the congestion signal",
    ),
    (
        "stream_manager_network_send_rate_kbps",
        "Bytes the publisher handed to the network over the last second, kbit/s",
    ),
    (
        "stream_manager_network_acked_rate_kbps",
        "Bytes the server acknowledged over the last second, kbit/s: what the link carried",
    ),
];

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Registers `metric` (every name here is unique and valid, so this cannot fail).
fn register<M: prometheus::core::Collector + Clone + 'static>(registry: &Registry, metric: M) -> M {
    registry
        .register(Box::new(metric.clone()))
        .expect("unique, valid metric names");
    metric
}

/// The guide's encoding-time histogram and one histogram per monitoring-point span.
fn span_histograms(r: &Registry) -> (Histogram, Vec<Histogram>) {
    let histogram = |name: &str, help: &str, per_second: f64| {
        HistogramOpts::new(name, help).buckets(buckets(per_second))
    };
    let encoding = register(
        r,
        Histogram::with_opts(histogram(
            "stream_manager_encoding_time_ms",
            "Frame encoding time (encode:start to encode:end), milliseconds (the guide's \
             name; the other durations here are in seconds, as Prometheus prefers)",
            1000.0,
        ))
        .expect("valid histogram"),
    );
    let family = register(
        r,
        HistogramVec::new(
            histogram(
                "stream_manager_span_duration_seconds",
                "Duration of each monitoring-point span (start mark to end mark of a \
                 frame), seconds",
                1.0,
            ),
            &["span"],
        )
        .expect("valid histogram"),
    );
    let spans = SPANS
        .iter()
        .map(|s| family.with_label_values(&[s.name]))
        .collect();
    (encoding, spans)
}

/// Drops by reason, frames sent, the queue's length and the process's memory.
fn counts(r: &Registry) -> (IntCounterVec, IntCounter, IntGauge, IntGauge) {
    let dropped = register(
        r,
        IntCounterVec::new(
            Opts::new(
                "stream_manager_dropped_frames_total",
                "Frames dropped, by reason (behind, queue_full, stale, late, pressure, congestion)",
            ),
            &["reason"],
        )
        .expect("valid counter"),
    );
    let frames = register(
        r,
        IntCounter::new(
            "stream_manager_frames_sent_total",
            "Frames encoded and sent",
        )
        .expect("valid counter"),
    );
    let queue = register(
        r,
        IntGauge::new(
            "stream_manager_queue_size",
            "Frames in the frame queue as the last frame arrived",
        )
        .expect("valid gauge"),
    );
    let memory = register(
        r,
        IntGauge::new(
            "stream_manager_memory_bytes",
            "Resident memory of the process, bytes (StreamMetrics memoryUsage)",
        )
        .expect("valid gauge"),
    );
    (dropped, frames, queue, memory)
}

impl Metrics {
    /// Every metric registered, all zero.
    pub fn new() -> Self {
        Self::in_registry(Registry::new())
    }

    /// [`Metrics::new`] for one stream of several: every series carries `stream="NAME"`.
    pub fn labelled(stream: &str) -> Self {
        let labels = [("stream".to_string(), stream.to_string())].into();
        Self::in_registry(
            Registry::new_custom(None, Some(labels)).expect("a valid label for the registry"),
        )
    }

    fn in_registry(registry: Registry) -> Self {
        let r = &registry;
        let (encoding, spans) = span_histograms(r);
        let gauge =
            |name: &str, help: &str| register(r, Gauge::new(name, help).expect("valid gauge"));
        let fps = gauge(
            "stream_manager_fps",
            "Frames sent per second since the previous scrape",
        );
        let bitrate = gauge(
            "stream_manager_bitrate_kbps",
            "Stream bitrate since the previous scrape, kbit/s",
        );
        let encoder_latency = gauge(
            "stream_manager_encoder_latency_seconds",
            "Mean encoding time since the previous scrape, seconds (StreamMetrics \
             encoderLatency)",
        );
        let buffer_health = gauge(
            "stream_manager_buffer_health",
            "1 - queue fill as the last frame arrived (StreamMetrics bufferHealth; 1 = empty)",
        );
        let cpu = gauge(
            "stream_manager_cpu_usage_percent",
            "Process CPU since the previous scrape, percent of one core (StreamMetrics cpuUsage)",
        );
        let (dropped, frames, queue, memory) = counts(r);
        let network = NETWORK.map(|(name, help)| gauge(name, help));
        let target = gauge(
            "stream_manager_target_bitrate_kbps",
            "The encoder's target bitrate as adaptive bitrate set it, kbit/s (0 when \
             adaptive.bitrate.enabled is off)",
        );
        let changes = gauge(
            "stream_manager_adaptation_changes",
            "Changes adaptation has made (bitrate steps, drop starts and stops, worker counts)",
        );
        let workers = gauge(
            "stream_manager_workers_active",
            "Frame pipeline workers taking frames (poolSize, or fewer with adaptive.workers)",
        );
        Metrics {
            epoch: Instant::now(),
            pairs: SpanPairs::new(),
            registry,
            encoding,
            spans,
            encode_index: encode_span(),
            encode_ns: AtomicU64::new(0),
            encodes: AtomicU64::new(0),
            fps,
            bitrate,
            dropped,
            queue,
            memory,
            encoder_latency,
            buffer_health,
            cpu,
            frames,
            network,
            target,
            changes,
            workers,
            previous: Mutex::new(Previous {
                at: Instant::now(),
                packets: 0,
                bytes: 0,
                cpu_ticks: cpu_ticks(),
                encode_ns: 0,
                encodes: 0,
                drops: Drops::default(),
            }),
        }
    }

    /// The exposition now, with `live`'s counters folded in.
    pub fn render(&self, live: &LiveSnapshot) -> String {
        encode(self.gather(live))
    }

    /// Every metric family now, with `live`'s counters folded in.
    fn gather(&self, live: &LiveSnapshot) -> Vec<prometheus::proto::MetricFamily> {
        let mut p = self
            .previous
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        let dt = now.duration_since(p.at).as_secs_f64().max(1e-3);
        let packets = live.packets.saturating_sub(p.packets);
        self.fps.set(packets as f64 / dt);
        self.bitrate
            .set(live.bytes.saturating_sub(p.bytes) as f64 * 8.0 / dt / 1000.0);
        self.frames.inc_by(packets);
        let ticks = cpu_ticks();
        self.cpu
            .set(ticks.saturating_sub(p.cpu_ticks) as f64 / clock_ticks() / dt * 100.0);
        let (ns, n) = (
            self.encode_ns.load(Ordering::Relaxed),
            self.encodes.load(Ordering::Relaxed),
        );
        if n > p.encodes {
            self.encoder_latency
                .set((ns - p.encode_ns) as f64 / (n - p.encodes) as f64 / 1e9);
        }
        let d = &live.drops;
        for (reason, now, before) in [
            ("behind", d.behind, p.drops.behind),
            ("queue_full", d.queue_full, p.drops.queue_full),
            ("stale", d.stale, p.drops.stale),
            ("late", d.late, p.drops.late),
            ("pressure", d.pressure, p.drops.pressure),
            ("congestion", d.congestion, p.drops.congestion),
        ] {
            self.dropped
                .with_label_values(&[reason])
                .inc_by(now.saturating_sub(before));
        }
        self.queue.set(live.queue_depth as i64);
        self.buffer_health.set(if live.queue_capacity == 0 {
            1.0
        } else {
            1.0 - live.queue_depth as f64 / live.queue_capacity as f64
        });
        self.memory.set(live.rss_bytes as i64);
        self.target.set(live.target_kbps as f64);
        self.changes.set(live.adapt_changes as f64);
        self.workers.set(f64::from(live.workers_active));
        if let Some(q) = &live.network {
            let values = [
                q.rtt_ms / 1000.0,
                q.rtt_var_ms / 1000.0,
                q.retransmits as f64,
                q.delivery_rate_kbps,
                q.unsent_bytes as f64,
                q.queued_media_ms / 1000.0,
                q.send_rate_kbps,
                q.acked_rate_kbps,
            ];
            for (g, v) in self.network.iter().zip(values) {
                g.set(v);
            }
        }
        *p = Previous {
            at: now,
            packets: live.packets,
            bytes: live.bytes,
            cpu_ticks: ticks,
            encode_ns: ns,
            encodes: n,
            drops: live.drops,
        };
        self.registry.gather()
    }
}

/// Metric families in Prometheus' text format.
fn encode(families: Vec<prometheus::proto::MetricFamily>) -> String {
    let mut out = Vec::new();
    TextEncoder::new()
        .encode(&families, &mut out)
        .expect("writing to a Vec cannot fail");
    String::from_utf8(out).expect("the text format is UTF-8")
}

/// Several streams' expositions as one: each stream's counters folded into its own metrics
/// (made [`Metrics::labelled`]), the series of a family from every stream under its one HELP
/// and TYPE.
pub fn render_many(streams: &[(&Metrics, LiveSnapshot)]) -> String {
    let mut merged: Vec<prometheus::proto::MetricFamily> = Vec::new();
    for (metrics, live) in streams {
        for family in metrics.gather(live) {
            match merged.iter_mut().find(|f| f.name() == family.name()) {
                Some(f) => f.mut_metric().extend(family.get_metric().iter().cloned()),
                None => merged.push(family),
            }
        }
    }
    encode(merged)
}

impl Metrics {
    /// The mean of a span (one of [`SPANS`]) so far, ms; None before its first observation.
    pub fn span_mean_ms(&self, name: &str) -> Option<f64> {
        let i = SPANS.iter().position(|s| s.name == name)?;
        let h = &self.spans[i];
        let n = h.get_sample_count();
        (n > 0).then(|| h.get_sample_sum() * 1000.0 / n as f64)
    }
}

impl Probe for Metrics {
    #[inline]
    fn mark(&self, point: Point, frame: u64) {
        let now_ns = self.epoch.elapsed().as_nanos() as u64;
        self.pairs.mark(
            point,
            frame,
            now_ns,
            |_| true,
            |i, d| {
                if let Some(ns) = d {
                    self.spans[i].observe(ns as f64 / 1e9);
                    if i == self.encode_index {
                        self.encoding.observe(ns as f64 / 1e6);
                        self.encode_ns.fetch_add(ns, Ordering::Relaxed);
                        self.encodes.fetch_add(1, Ordering::Relaxed);
                    }
                }
            },
        );
    }
}

/// User + system CPU time of this process, in clock ticks.
fn cpu_ticks() -> u64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0;
    };
    // Fields after the command name (which may hold spaces) start at state, field 3.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
    field(14).unwrap_or(0) + field(15).unwrap_or(0)
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_streams_share_one_family_each_series_labelled_with_its_stream() {
        let (a, b) = (Metrics::labelled("s0"), Metrics::labelled("s1"));
        a.mark(Point::EncodeStart, 1);
        a.mark(Point::EncodeEnd, 1);
        let text = render_many(&[(&a, LiveSnapshot::default()), (&b, LiveSnapshot::default())]);
        let help = text
            .lines()
            .filter(|l| l.starts_with("# HELP stream_manager_fps "))
            .count();
        assert_eq!(help, 1, "{text}");
        for stream in ["s0", "s1"] {
            assert!(
                text.contains(&format!("stream_manager_fps{{stream=\"{stream}\"}}")),
                "{text}"
            );
        }
        assert!(
            text.contains(
                "stream_manager_span_duration_seconds_count{span=\"encode\",stream=\"s0\"} 1"
            ),
            "{text}"
        );
    }

    fn sample(text: &str, name: &str) -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing"))
    }

    #[test]
    fn marks_pair_into_the_span_and_encoding_histograms() {
        let m = Metrics::new();
        for f in 0..5 {
            m.mark(Point::EncodeStart, f);
            m.mark(Point::EncodeEnd, f);
        }
        m.mark(Point::RenderFrameEnd, 9); // no start: nothing recorded
        let live = LiveSnapshot {
            packets: 5,
            bytes: 5000,
            queue_depth: 3,
            queue_capacity: 30,
            network: Some(crate::adapt::network::NetQuality {
                rtt_ms: 2.5,
                queued_media_ms: 250.0,
                ..Default::default()
            }),
            ..LiveSnapshot::default()
        };
        let text = m.render(&live);
        assert_eq!(sample(&text, "stream_manager_network_rtt_seconds"), 0.0025);
        assert_eq!(
            sample(&text, "stream_manager_network_queued_media_seconds"),
            0.25
        );
        assert_eq!(sample(&text, "stream_manager_encoding_time_ms_count"), 5.0);
        assert_eq!(
            sample(
                &text,
                "stream_manager_span_duration_seconds_count{span=\"encode\"}"
            ),
            5.0
        );
        assert_eq!(
            sample(
                &text,
                "stream_manager_span_duration_seconds_count{span=\"render:frame\"}"
            ),
            0.0
        );
        assert_eq!(sample(&text, "stream_manager_frames_sent_total"), 5.0);
        assert_eq!(sample(&text, "stream_manager_queue_size"), 3.0);
        assert!((sample(&text, "stream_manager_buffer_health") - 0.9).abs() < 1e-9);
        // Counters only grow: a second scrape with the same counters adds nothing.
        let again = m.render(&live);
        assert_eq!(sample(&again, "stream_manager_frames_sent_total"), 5.0);
    }

    #[test]
    fn the_grafana_dashboard_uses_only_metrics_that_exist() {
        let text = Metrics::new().render(&LiveSnapshot::default());
        let dash = include_str!("../../../dashboards/stream-manager.json");
        let names: std::collections::BTreeSet<String> = dash
            .match_indices("stream_manager_")
            .map(|(i, _)| {
                dash[i..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect()
            })
            .collect();
        assert!(names.len() >= 8, "{names:?}");
        for n in names {
            assert!(
                text.contains(&n),
                "the dashboard uses {n}, which is not exported"
            );
        }
    }
}
