//! Monitoring points and the `Probe` every stage is handed.
//!
//! The guide names fifteen `MONITORING_POINTS` (`asset:load:start` … `network:send:end`). Two more
//! close the loop the guide's `frame.total` and glass-to-glass latency need: `frame:capture` (the
//! instant a frame's picture exists) and `player:receive` (a player of the server got it). Spans
//! are pairs of points, in [`SPANS`].
//!
//! # The model
//!
//! A stage calls [`Probe::mark`] with a point and the frame's id at the instant the point is
//! reached. The probe decides what to do with it: [`NoProbe`] does nothing and, because stages
//! are generic over `P: Probe`, compiles to nothing; a recorder (the harness's) pairs a span's
//! start and end marks *for the same frame id* and records the duration. Marks for points that
//! happen once per run (`render:setup`, `asset:load`) use the frame id the stage is at, usually
//! 0. A probe must never fail or block the stream: `mark` returns nothing.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// One monitoring point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Point {
    AssetLoadStart,
    AssetLoadEnd,
    LayoutUpdateStart,
    LayoutUpdateEnd,
    RenderSetupStart,
    RenderSetupEnd,
    RenderFrameStart,
    RenderFrameEnd,
    PipelineQueueStart,
    PipelineProcessStart,
    PipelineProcessEnd,
    EncodeStart,
    EncodeEnd,
    NetworkSendStart,
    NetworkSendEnd,
    /// The frame's picture exists: the origin of `frame:total` and `e2e`.
    FrameCapture,
    /// A player of the server received the frame (its last byte reached the player's socket).
    PlayerReceive,
    /// A decoding source (a file) starts on the frame's picture: decoding up to it and
    /// converting it to the viewport's size.
    DecodeStart,
    DecodeEnd,
}

impl Point {
    /// All 19 points, in declaration order (`ALL[p as usize] == p`).
    pub const ALL: [Point; 19] = [
        Point::AssetLoadStart,
        Point::AssetLoadEnd,
        Point::LayoutUpdateStart,
        Point::LayoutUpdateEnd,
        Point::RenderSetupStart,
        Point::RenderSetupEnd,
        Point::RenderFrameStart,
        Point::RenderFrameEnd,
        Point::PipelineQueueStart,
        Point::PipelineProcessStart,
        Point::PipelineProcessEnd,
        Point::EncodeStart,
        Point::EncodeEnd,
        Point::NetworkSendStart,
        Point::NetworkSendEnd,
        Point::FrameCapture,
        Point::PlayerReceive,
        Point::DecodeStart,
        Point::DecodeEnd,
    ];

    /// The guide's string for the point (`"asset:load:start"`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Point::AssetLoadStart => "asset:load:start",
            Point::AssetLoadEnd => "asset:load:end",
            Point::LayoutUpdateStart => "layout:update:start",
            Point::LayoutUpdateEnd => "layout:update:end",
            Point::RenderSetupStart => "render:setup:start",
            Point::RenderSetupEnd => "render:setup:end",
            Point::RenderFrameStart => "render:frame:start",
            Point::RenderFrameEnd => "render:frame:end",
            Point::PipelineQueueStart => "pipeline:queue:start",
            Point::PipelineProcessStart => "pipeline:process:start",
            Point::PipelineProcessEnd => "pipeline:process:end",
            Point::EncodeStart => "encode:start",
            Point::EncodeEnd => "encode:end",
            Point::NetworkSendStart => "network:send:start",
            Point::NetworkSendEnd => "network:send:end",
            Point::FrameCapture => "frame:capture",
            Point::PlayerReceive => "player:receive",
            Point::DecodeStart => "decode:start",
            Point::DecodeEnd => "decode:end",
        }
    }

    /// The guide's constant name for the point (`"ASSET_LOAD_START"`).
    pub const fn constant(self) -> &'static str {
        match self {
            Point::AssetLoadStart => "ASSET_LOAD_START",
            Point::AssetLoadEnd => "ASSET_LOAD_END",
            Point::LayoutUpdateStart => "LAYOUT_UPDATE_START",
            Point::LayoutUpdateEnd => "LAYOUT_UPDATE_END",
            Point::RenderSetupStart => "RENDER_SETUP_START",
            Point::RenderSetupEnd => "RENDER_SETUP_END",
            Point::RenderFrameStart => "RENDER_FRAME_START",
            Point::RenderFrameEnd => "RENDER_FRAME_END",
            Point::PipelineQueueStart => "PIPELINE_QUEUE_START",
            Point::PipelineProcessStart => "PIPELINE_PROCESS_START",
            Point::PipelineProcessEnd => "PIPELINE_PROCESS_END",
            Point::EncodeStart => "ENCODE_START",
            Point::EncodeEnd => "ENCODE_END",
            Point::NetworkSendStart => "NETWORK_SEND_START",
            Point::NetworkSendEnd => "NETWORK_SEND_END",
            Point::FrameCapture => "FRAME_CAPTURE",
            Point::PlayerReceive => "PLAYER_RECEIVE",
            Point::DecodeStart => "DECODE_START",
            Point::DecodeEnd => "DECODE_END",
        }
    }
}

impl fmt::Display for Point {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A span: the time from one point to another for the same frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// The span's name in results (`"encode"`).
    pub name: &'static str,
    pub start: Point,
    pub end: Point,
    /// Marked for every frame (true) or once per run or per asset (false). A recorder leaves
    /// warm-up frames out of per-frame spans only.
    pub per_frame: bool,
}

/// Every span the results report, in report order (the design's table).
pub const SPANS: [Span; 12] = [
    span("decode", Point::DecodeStart, Point::DecodeEnd, true),
    span(
        "asset:load",
        Point::AssetLoadStart,
        Point::AssetLoadEnd,
        false,
    ),
    span(
        "layout:update",
        Point::LayoutUpdateStart,
        Point::LayoutUpdateEnd,
        true,
    ),
    span(
        "render:setup",
        Point::RenderSetupStart,
        Point::RenderSetupEnd,
        false,
    ),
    span(
        "render:frame",
        Point::RenderFrameStart,
        Point::RenderFrameEnd,
        true,
    ),
    span(
        "pipeline:queue",
        Point::PipelineQueueStart,
        Point::PipelineProcessStart,
        true,
    ),
    span(
        "pipeline:process",
        Point::PipelineProcessStart,
        Point::PipelineProcessEnd,
        true,
    ),
    span("encode", Point::EncodeStart, Point::EncodeEnd, true),
    span(
        "network:send",
        Point::NetworkSendStart,
        Point::NetworkSendEnd,
        true,
    ),
    span(
        "frame:total",
        Point::FrameCapture,
        Point::NetworkSendEnd,
        true,
    ),
    span("e2e", Point::FrameCapture, Point::PlayerReceive, true),
    // What the RTMP server adds: the publisher starts sending → a player has the frame.
    span("relay", Point::NetworkSendStart, Point::PlayerReceive, true),
];

const fn span(name: &'static str, start: Point, end: Point, per_frame: bool) -> Span {
    Span {
        name,
        start,
        end,
        per_frame,
    }
}

/// Receives the marks of every stage. See the module docs for the model.
///
/// Implementations must be cheap (a mark is on every frame's path, several times) and must not
/// fail or block: a probe observes the stream, it never steers it.
pub trait Probe: Sync {
    /// `point` was reached for frame `frame`, now.
    fn mark(&self, point: Point, frame: u64);

    /// `point` was reached for frame `frame` at `at`, a moment already past (a time the kernel
    /// stamped). Probes that keep no times treat it as [`Probe::mark`].
    fn mark_at(&self, point: Point, frame: u64, at: std::time::Instant) {
        let _ = at;
        self.mark(point, frame);
    }
}

/// The probe that records nothing; with it every mark compiles away.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProbe;

impl Probe for NoProbe {
    #[inline(always)]
    fn mark(&self, _point: Point, _frame: u64) {}
}

impl<P: Probe + ?Sized> Probe for &P {
    #[inline(always)]
    fn mark(&self, point: Point, frame: u64) {
        (**self).mark(point, frame);
    }

    #[inline(always)]
    fn mark_at(&self, point: Point, frame: u64, at: std::time::Instant) {
        (**self).mark_at(point, frame, at);
    }
}

/// Frames a start mark is remembered for by [`SpanPairs`].
pub const RING: usize = 1024;

struct Slot {
    frame: AtomicU64,
    at_ns: AtomicU64,
}

/// Start instants of one point, by frame id modulo [`RING`].
struct Ring(Box<[Slot]>);

impl Ring {
    fn new() -> Self {
        Ring(
            (0..RING)
                .map(|_| Slot {
                    frame: AtomicU64::new(u64::MAX),
                    at_ns: AtomicU64::new(0),
                })
                .collect(),
        )
    }
}

/// Pairs marks into the spans of [`SPANS`], lock-free: a start mark stores its instant in a
/// small ring indexed by frame id (one ring per point that starts a span); an end mark looks up
/// the start for the same frame. An end whose start is gone (overwritten after [`RING`] frames,
/// or never marked) is reported as unmatched. Probes build on it: the harness's recorder (HDR
/// histograms) and the Prometheus exporter.
pub struct SpanPairs {
    rings: Vec<Option<Ring>>,
    /// Span indices each point ends.
    ends: [Vec<usize>; Point::ALL.len()],
}

impl Default for SpanPairs {
    fn default() -> Self {
        Self::new()
    }
}

impl SpanPairs {
    /// Rings for every point that starts a span.
    pub fn new() -> Self {
        let mut starts = [false; Point::ALL.len()];
        let mut ends: [Vec<usize>; Point::ALL.len()] = Default::default();
        for (i, s) in SPANS.iter().enumerate() {
            starts[s.start as usize] = true;
            ends[s.end as usize].push(i);
        }
        SpanPairs {
            rings: starts.iter().map(|&s| s.then(Ring::new)).collect(),
            ends,
        }
    }

    /// `point` was reached for `frame` at `now_ns` (on the caller's clock). For each span it
    /// ends that `wanted` accepts, calls `ended(span index, Some(duration ns))`, or
    /// `ended(index, None)` when the start is unknown.
    #[inline]
    pub fn mark(
        &self,
        point: Point,
        frame: u64,
        now_ns: u64,
        wanted: impl Fn(&Span) -> bool,
        mut ended: impl FnMut(usize, Option<u64>),
    ) {
        if let Some(ring) = &self.rings[point as usize] {
            let slot = &ring.0[frame as usize % RING];
            slot.at_ns.store(now_ns, Ordering::Relaxed);
            slot.frame.store(frame, Ordering::Release);
        }
        for &i in &self.ends[point as usize] {
            let span = &SPANS[i];
            if !wanted(span) {
                continue;
            }
            let ring = self.rings[span.start as usize]
                .as_ref()
                .expect("span starts have rings");
            let slot = &ring.0[frame as usize % RING];
            if slot.frame.load(Ordering::Acquire) != frame {
                ended(i, None);
                continue;
            }
            let start = slot.at_ns.load(Ordering::Relaxed);
            ended(i, Some(now_ns.saturating_sub(start)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_are_the_guides_strings_in_order() {
        let guide = [
            ("ASSET_LOAD_START", "asset:load:start"),
            ("ASSET_LOAD_END", "asset:load:end"),
            ("LAYOUT_UPDATE_START", "layout:update:start"),
            ("LAYOUT_UPDATE_END", "layout:update:end"),
            ("RENDER_SETUP_START", "render:setup:start"),
            ("RENDER_SETUP_END", "render:setup:end"),
            ("RENDER_FRAME_START", "render:frame:start"),
            ("RENDER_FRAME_END", "render:frame:end"),
            ("PIPELINE_QUEUE_START", "pipeline:queue:start"),
            ("PIPELINE_PROCESS_START", "pipeline:process:start"),
            ("PIPELINE_PROCESS_END", "pipeline:process:end"),
            ("ENCODE_START", "encode:start"),
            ("ENCODE_END", "encode:end"),
            ("NETWORK_SEND_START", "network:send:start"),
            ("NETWORK_SEND_END", "network:send:end"),
        ];
        for (i, (constant, s)) in guide.iter().enumerate() {
            assert_eq!(Point::ALL[i].constant(), *constant);
            assert_eq!(Point::ALL[i].as_str(), *s);
        }
        for (i, p) in Point::ALL.iter().enumerate() {
            assert_eq!(*p as usize, i);
        }
    }
}
