//! The guide's Troubleshooting, answered from measurements.
//!
//! The guide lists three symptoms, each with a checklist: high memory (frame queue size,
//! buffer pool, leaks), frame drops (encoding times, queue size, CPU usage, network capacity)
//! and high latency (network conditions, buffer health, encoding times, frame timing).
//! [`diagnose`] finds which symptoms a stream shows and answers each in one line with the
//! checklist items that the measurements explain, e.g. `141 frames dropped (queue full 141);
//! conversion p50 75.9 ms > 16.7 ms frame interval with 1 worker: the workers are the
//! bottleneck`.
//!
//! When a symptom counts as shown:
//! - **frame drops**: any frame dropped, for any reason (the pipeline's, the connection's, the
//!   server's for slow players), or, paced at real time, fewer than 98% of the configured
//!   frames per second;
//! - **high latency** (paced at real time only; unpaced runs queue by design): a frame's
//!   time from capture to sent (or to a player, with players) above [`LATENCY_INTERVALS`]
//!   frame intervals at the tail (p99 where measured, else the mean);
//! - **high memory**: peak RSS at least 25% and 16 MiB above a reference (the leanest point
//!   of the same table in the report), or, without a reference, above [`MEMORY_ALONE_MIB`].

use crate::pipeline::Drops;

/// A frame later than this many frame intervals is high latency.
pub const LATENCY_INTERVALS: f64 = 3.0;
/// Peak RSS above this, MiB, is high memory when nothing compares.
pub const MEMORY_ALONE_MIB: f64 = 512.0;
/// CPU at or above this share of every core is saturated.
const SATURATED: f64 = 0.9;

/// Times of a frame's parts, ms (None where not measured).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Times {
    /// Decoding the source's picture (a file or a feed).
    pub decode: Option<f64>,
    /// Scene, layout and composition.
    pub render: Option<f64>,
    /// Waiting in the frame queue.
    pub queue: Option<f64>,
    /// A worker's conversion (format, preprocessing).
    pub process: Option<f64>,
    pub encode: Option<f64>,
    /// Muxing and writing to the output.
    pub send: Option<f64>,
    /// Capture to sent.
    pub total: Option<f64>,
    /// Capture to a player's receipt.
    pub e2e: Option<f64>,
    /// Deviation of a frame's start from its tick.
    pub jitter: Option<f64>,
}

impl Times {
    /// The times of the monitoring-point spans by name (`span` gives one in ms, or None).
    pub fn from_spans(span: impl Fn(&str) -> Option<f64>) -> Self {
        Times {
            decode: span("decode"),
            render: span("render:frame"),
            queue: span("pipeline:queue"),
            process: span("pipeline:process"),
            encode: span("encode"),
            send: span("network:send"),
            total: span("frame:total"),
            e2e: span("e2e"),
            jitter: span("frame:jitter"),
        }
    }
}

/// What a stream did, as far as the checklists need it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    /// Configured frames per second.
    pub fps_target: f64,
    /// Frames per second reached.
    pub fps: f64,
    /// Paced at real time (latency and a shortfall only mean something then).
    pub realtime: bool,
    /// The pipeline's drops by reason.
    pub drops: Drops,
    /// Frames the output could not deliver (connection lost).
    pub sink_dropped: u64,
    /// Frames the embedded server dropped for slow players.
    pub server_dropped: u64,
    /// Players on an embedded server in the same process.
    pub players: u32,
    /// Typical times (`typical_stat` names the statistic: "p50" or "mean").
    pub typical: Times,
    pub typical_stat: &'static str,
    /// Tail times (p99), where measured.
    pub tail: Option<Times>,
    /// The pipeline's settings and a queued frame's size.
    pub workers: u32,
    pub max_queue_size: u32,
    pub frame_bytes: u64,
    /// The guide's bufferHealth (1 − the queue's mean fill), where measured.
    pub buffer_health: Option<f64>,
    /// Process CPU, percent of one core, and the cores there are.
    pub cpu_percent: f64,
    pub cores: u32,
    /// Peak RSS, bytes, and what to compare it with.
    pub rss_bytes: u64,
    pub rss_reference: Option<u64>,
    /// RSS growth over the second half of the window, MiB/s, where sampled.
    pub rss_growth_mib_s: Option<f64>,
    /// Frame buffers allocated per frame (buffer pool misses).
    pub buffer_allocs_per_frame: Option<f64>,
}

/// One of the guide's three symptoms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Symptom {
    HighMemory,
    FrameDrops,
    HighLatency,
}

impl std::fmt::Display for Symptom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Symptom::HighMemory => "high memory",
            Symptom::FrameDrops => "frame drops",
            Symptom::HighLatency => "high latency",
        })
    }
}

/// A symptom and its measured cause, in one line.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub symptom: Symptom,
    pub cause: String,
}

/// Each cause a finding can name, by the words its line uses, and how it is named when
/// findings are grouped by cause (one line per symptom and cause over many points).
const CAUSES: [(&str, &str); 19] = [
    (
        "the workers are the bottleneck",
        "the workers are the bottleneck",
    ),
    (
        "the encoder is the bottleneck",
        "the encoder is the bottleneck",
    ),
    (
        "the renderer is the bottleneck",
        "the renderer is the bottleneck",
    ),
    ("the machine is saturated", "the machine is saturated"),
    (
        "connection to the server was lost",
        "the connection to the server was lost",
    ),
    ("players read slower", "players read slower than the stream"),
    ("overflow a queue", "bursts overflow the queue"),
    (
        "longest part is waiting in the queue",
        "the longest part is the queue's wait",
    ),
    (
        "longest part is conversion",
        "the longest part is conversion",
    ),
    ("longest part is encoding", "the longest part is encoding"),
    (
        "longest part is decoding",
        "the longest part is decoding the source",
    ),
    ("longest part is render", "the longest part is the render"),
    ("longest part is sending", "the longest part is sending"),
    ("frames held:", "frames held in the queue and workers"),
    (
        "players served from this process",
        "the players served in the same process",
    ),
    ("buffer pool:", "the buffer pool is off or too small"),
    ("look for a leak", "memory still growing (look for a leak)"),
    ("as the queue filled", "memory growing as the queue filled"),
    (
        "not the frame queue, the buffer pool or growth",
        "the encoder's, workers' or renderer's own buffers",
    ),
];

impl Finding {
    /// The causes this finding names, in the words findings are grouped by.
    pub fn causes(&self) -> Vec<&'static str> {
        CAUSES
            .iter()
            .filter(|(words, _)| self.cause.contains(words))
            .map(|(_, name)| *name)
            .collect()
    }
}

const MIB: f64 = 1024.0 * 1024.0;

/// The symptoms `o` shows, each with its cause.
pub fn diagnose(o: &Observed) -> Vec<Finding> {
    let mut out = Vec::new();
    if let Some(cause) = frame_drops(o) {
        out.push(Finding {
            symptom: Symptom::FrameDrops,
            cause,
        });
    }
    if let Some(cause) = high_latency(o) {
        out.push(Finding {
            symptom: Symptom::HighLatency,
            cause,
        });
    }
    if let Some(cause) = high_memory(o) {
        out.push(Finding {
            symptom: Symptom::HighMemory,
            cause,
        });
    }
    out
}

fn interval_ms(o: &Observed) -> f64 {
    1000.0 / o.fps_target.max(1.0)
}

fn frame_drops(o: &Observed) -> Option<String> {
    let d = &o.drops;
    let dropped = d.total() + o.sink_dropped + o.server_dropped;
    let short = o.realtime && o.fps < 0.98 * o.fps_target;
    if dropped == 0 && !short {
        return None;
    }
    let mut what = Vec::new();
    if dropped > 0 {
        let reasons: Vec<String> = [
            ("queue full", d.queue_full),
            ("behind", d.behind),
            ("stale", d.stale),
            ("late", d.late),
            ("memory pressure", d.pressure),
            ("congestion", d.congestion),
            ("connection", o.sink_dropped),
            ("slow players", o.server_dropped),
        ]
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(why, n)| format!("{why} {n}"))
        .collect();
        what.push(format!("{dropped} frames dropped ({})", reasons.join(", ")));
    }
    if short {
        what.push(format!(
            "{:.1} fps of {:.0} configured",
            o.fps, o.fps_target
        ));
    }
    let interval = interval_ms(o);
    let stat = o.typical_stat;
    let t = &o.typical;
    let mut causes = Vec::new();
    if let Some(p) = t.process {
        let workers = o.workers.max(1);
        if p / f64::from(workers) > interval {
            causes.push(format!(
                "conversion {stat} {p:.1} ms > {interval:.1} ms frame interval with {workers} \
                 worker{}: the workers are the bottleneck (more workers or a cheaper format)",
                if workers == 1 { "" } else { "s" }
            ));
        }
    }
    if let Some(e) = t.encode.filter(|&e| e > interval) {
        causes.push(format!(
            "encode {stat} {e:.1} ms > {interval:.1} ms frame interval: the encoder is the \
             bottleneck (a faster preset or more threads)"
        ));
    }
    if let Some(r) = t.render.filter(|&r| r > interval) {
        causes.push(format!(
            "render {stat} {r:.1} ms > {interval:.1} ms frame interval: the renderer is the \
             bottleneck"
        ));
    }
    let all = f64::from(o.cores.max(1)) * 100.0;
    if o.cpu_percent >= SATURATED * all {
        causes.push(format!(
            "CPU {:.0}% of {all:.0}% ({} cores): the machine is saturated",
            o.cpu_percent, o.cores
        ));
    }
    if o.sink_dropped > 0 {
        causes.push("the connection to the server was lost (network capacity)".to_string());
    }
    if o.server_dropped > 0 {
        causes.push(
            "players read slower than the stream (their network capacity): the server \
             dropped frames for them"
                .to_string(),
        );
    }
    if causes.is_empty() {
        let burst = o
            .tail
            .and_then(|t| t.queue)
            .map_or(String::new(), |q| format!(" (queue wait p99 {q:.1} ms)"));
        causes.push(format!(
            "no stage's {stat} is over the {interval:.1} ms frame interval and CPU is not \
             saturated: bursts{burst} overflow a queue of {}",
            o.max_queue_size
        ));
    }
    Some(format!("{}; {}", what.join(", "), causes.join("; ")))
}

fn high_latency(o: &Observed) -> Option<String> {
    if !o.realtime {
        return None;
    }
    let (times, stat) = match &o.tail {
        Some(t) => (t, "p99"),
        None => (&o.typical, o.typical_stat),
    };
    let interval = interval_ms(o);
    let limit = LATENCY_INTERVALS * interval;
    let (what, late) = match (times.e2e, times.total) {
        (Some(e), _) if e > limit => ("glass to player", e),
        (_, Some(t)) if t > limit => ("capture to sent", t),
        _ => return None,
    };
    let mut line =
        format!("{what} {stat} {late:.1} ms > {limit:.1} ms ({LATENCY_INTERVALS} frame intervals)");
    // The part that takes longest, from the guide's checklist.
    let parts = [
        ("decoding the source", times.decode),
        ("waiting in the queue", times.queue),
        ("conversion", times.process),
        ("encoding", times.encode),
        ("render", times.render),
        ("sending (network)", times.send),
    ];
    if let Some((part, ms)) = parts
        .iter()
        .filter_map(|(p, v)| v.map(|v| (*p, v)))
        .max_by(|a, b| a.1.total_cmp(&b.1))
    {
        let _ = std::fmt::Write::write_fmt(
            &mut line,
            format_args!("; the longest part is {part} ({stat} {ms:.1} ms)"),
        );
        if part == "waiting in the queue"
            && let Some(h) = o.buffer_health.filter(|&h| h < 0.5)
        {
            let _ = std::fmt::Write::write_fmt(
                &mut line,
                format_args!(", buffer health {h:.2}: frames wait for a busy worker"),
            );
        }
    }
    if let (Some(e), Some(t)) = (times.e2e, times.total)
        && e - t > interval
    {
        let _ = std::fmt::Write::write_fmt(
            &mut line,
            format_args!(
                "; server and network add {:.1} ms (network conditions)",
                e - t
            ),
        );
    }
    if let Some(j) = times.jitter.filter(|&j| j > interval) {
        let _ = std::fmt::Write::write_fmt(
            &mut line,
            format_args!("; frame timing: ticks {j:.1} ms late"),
        );
    }
    Some(line)
}

fn high_memory(o: &Observed) -> Option<String> {
    let rss = o.rss_bytes as f64 / MIB;
    let over = match o.rss_reference {
        Some(r) => {
            let r = r as f64 / MIB;
            (rss >= 1.25 * r && rss - r >= 16.0).then(|| {
                (
                    rss - r,
                    format!(
                        "peak RSS {rss:.0} MiB, {:.0} MiB above the leanest point",
                        rss - r
                    ),
                )
            })
        }
        None => (rss > MEMORY_ALONE_MIB).then(|| (rss, format!("peak RSS {rss:.0} MiB"))),
    };
    let (excess, what) = over?;
    let mut causes = Vec::new();
    let frame = o.frame_bytes as f64 / MIB;
    // Frames held on average: the queue's mean fill (all of it where not measured) and one
    // in each worker.
    let queued = o.buffer_health.map_or(f64::from(o.max_queue_size), |h| {
        (1.0 - h) * f64::from(o.max_queue_size)
    });
    let held = (queued + f64::from(o.workers)) * frame;
    let queue = held >= 0.5 * excess;
    if queue {
        causes.push(format!(
            "frames held: {queued:.0} of {} queued on average + {} in the workers × \
             {frame:.1} MiB = {held:.0} MiB (a smaller queue)",
            o.max_queue_size, o.workers
        ));
    }
    if o.players > 0 {
        causes.push(format!(
            "{} players served from this process (the server's queues and the players' \
             buffers)",
            o.players
        ));
    }
    if let Some(a) = o.buffer_allocs_per_frame.filter(|&a| a > 0.1) {
        causes.push(format!(
            "buffer pool: {a:.2} frame buffers allocated per frame (the pool is off or too \
             small)"
        ));
    }
    if let Some(g) = o.rss_growth_mib_s.filter(|&g| g > 1.0) {
        causes.push(format!(
            "RSS still grew {g:.1} MiB/s through the window's second half ({})",
            if queue {
                "as the queue filled"
            } else {
                "look for a leak"
            }
        ));
    }
    if causes.is_empty() {
        causes.push(
            "not the frame queue, the buffer pool or growth: the encoder's own buffers (its \
             preset's lookahead), the workers' conversion buffers or the renderer"
                .to_string(),
        );
    }
    Some(format!("{what}; {}", causes.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observed() -> Observed {
        Observed {
            fps_target: 60.0,
            fps: 60.0,
            realtime: true,
            typical_stat: "p50",
            workers: 1,
            max_queue_size: 8,
            frame_bytes: 1280 * 720 * 3 / 2,
            cpu_percent: 50.0,
            cores: 2,
            rss_bytes: 100 << 20,
            ..Observed::default()
        }
    }

    #[test]
    fn findings_name_their_causes_for_grouping() {
        let mut o = observed();
        o.drops.queue_full = 141;
        o.typical.process = Some(75.9);
        o.typical.encode = Some(40.0);
        let f = diagnose(&o);
        assert_eq!(
            f[0].causes(),
            [
                "the workers are the bottleneck",
                "the encoder is the bottleneck"
            ]
        );
    }

    #[test]
    fn a_healthy_stream_shows_nothing() {
        assert!(diagnose(&observed()).is_empty());
    }

    #[test]
    fn drops_name_the_slow_worker() {
        let mut o = observed();
        o.drops.queue_full = 141;
        o.typical.process = Some(75.9);
        o.typical.encode = Some(4.0);
        let f = diagnose(&o);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].symptom, Symptom::FrameDrops);
        assert_eq!(
            f[0].cause,
            "141 frames dropped (queue full 141); conversion p50 75.9 ms > 16.7 ms frame \
             interval with 1 worker: the workers are the bottleneck (more workers or a cheaper \
             format)"
        );
        // Five workers keep up with the same conversion: the drops are bursts.
        o.workers = 5;
        assert!(
            diagnose(&o)[0].cause.contains("bursts"),
            "{:?}",
            diagnose(&o)
        );
    }

    #[test]
    fn a_shortfall_without_drops_is_a_symptom_and_cpu_explains_it() {
        let mut o = observed();
        o.fps = 41.0;
        o.cpu_percent = 196.0;
        o.typical.encode = Some(30.0);
        let c = &diagnose(&o)[0].cause;
        assert!(
            c.starts_with("41.0 fps of 60 configured; encode p50 30.0 ms"),
            "{c}"
        );
        assert!(c.contains("CPU 196% of 200% (2 cores)"), "{c}");
        // Unpaced, a rate is not a shortfall.
        o.realtime = false;
        assert!(diagnose(&o).is_empty());
    }

    #[test]
    fn latency_names_its_longest_part() {
        let mut o = observed();
        o.buffer_health = Some(0.3);
        o.tail = Some(Times {
            total: Some(80.0),
            queue: Some(60.0),
            encode: Some(10.0),
            ..Times::default()
        });
        let f = diagnose(&o);
        assert_eq!(f[0].symptom, Symptom::HighLatency);
        assert!(
            f[0].cause
                .starts_with("capture to sent p99 80.0 ms > 50.0 ms")
                && f[0]
                    .cause
                    .contains("waiting in the queue (p99 60.0 ms), buffer health 0.30"),
            "{}",
            f[0].cause
        );
        // A file or feed whose decoding takes longest says so.
        o.tail = Some(Times {
            total: Some(80.0),
            decode: Some(45.0),
            encode: Some(10.0),
            ..Times::default()
        });
        let f = diagnose(&o);
        assert!(
            f[0].cause
                .contains("the longest part is decoding the source (p99 45.0 ms)"),
            "{}",
            f[0].cause
        );
        assert!(
            f[0].causes()
                .contains(&"the longest part is decoding the source"),
            "{:?}",
            f[0].causes()
        );
    }

    #[test]
    fn memory_is_high_against_the_leanest_point_and_the_queue_explains_it() {
        let mut o = observed();
        o.max_queue_size = 64;
        o.rss_bytes = 200 << 20;
        o.rss_reference = Some(120 << 20);
        let c = &diagnose(&o)[0].cause;
        assert!(
            c.starts_with("peak RSS 200 MiB, 80 MiB above the leanest point"),
            "{c}"
        );
        assert!(
            c.contains("frames held: 64 of 64 queued on average + 1 in the workers × 1.3 MiB"),
            "{c}"
        );
        o.rss_bytes = 130 << 20;
        assert!(diagnose(&o).is_empty(), "within 25% of the reference");
    }
}
