//! A point's figures: one type ([`Figures`]) that a run fills, the results store (a run's
//! and an aggregated point's alike), and the report and plots read. A new figure is a field
//! here with its rule for joining repetitions ([`Figures::aggregate`]), where it is measured,
//! and the table that shows it.
//!
//! The stage figures it holds: [`NetworkFigures`] (players on the embedded server),
//! [`PipelineFigures`] (the frame pipeline), [`CoreFigures`] (the core stage), and those of
//! other modules (picture fidelity, render metrics, a shaped link, a CPU quota, a profile).

use crate::fidelity::FidelityFigures;
use crate::profile::ProfileFigures;
use crate::quota::QuotaFigures;
use crate::record::{SpanStats, new_histogram};
use crate::results::median;
use crate::shaped::LinkFigures;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use streamer::adapt::AdaptEvent;
use streamer::core::CoreMetrics;
use streamer::pipeline::Drops;
use streamer::render::RenderMetrics;
use streamer::stream::PipelineStats;

/// Every figure of a point: one run's, or a point's over its repetitions (see
/// [`Figures::aggregate`] for how each is joined). Field names are the results contract.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    /// Frames per second over the measured window: under max pacing, encoded per second of
    /// wall time (the final flush included); in real time, encoded per second of stream time
    /// (the configured rate × encoded ÷ due: only dropped frames lower it).
    pub fps: f64,
    /// Process CPU over the window, percent of one core.
    pub cpu_percent: f64,
    /// Peak RSS during the window, bytes.
    pub rss_bytes: u64,
    pub dropped_frames: u64,
    /// Encoded bitrate over the measured frames, kbit/s.
    pub bitrate_kbps: f64,
    /// The encoder that ran.
    pub encoder: String,
    pub notes: Vec<String>,
    /// End marks with no start (should be 0).
    pub unmatched_marks: u64,
    pub spans: BTreeMap<String, SpanStats>,
    /// `(ms, RSS bytes)` over the window.
    pub rss_timeline: Vec<(u64, u64)>,
    /// With players on the embedded server: what they received.
    #[serde(default)]
    pub network: Option<NetworkFigures>,
    /// The frame pipeline over the measured window.
    #[serde(default)]
    pub pipeline: Option<PipelineFigures>,
    /// The core stage (with layers): the guide's CoreMetrics over the whole run, and timings of
    /// its parts measured before the window.
    #[serde(default)]
    pub core: Option<CoreFigures>,
    /// Picture fidelity, PSNR and SSIM (the frames suite's quality part).
    #[serde(default, rename = "quality")]
    pub fidelity: Option<FidelityFigures>,
    /// The render stage: the guide's RenderMetrics over the whole run, and the backend that ran.
    #[serde(default)]
    pub render: Option<RenderMetrics>,
    /// CPU milliseconds per frame by stage over the window, from the threads' own clocks
    /// ([`STAGES`]; `server` and `players` with the embedded server).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub stage_cpu_ms: BTreeMap<String, f64>,
    /// The whole process's CPU milliseconds per frame over the same window as
    /// `stage_cpu_ms` (read at the same instants), so the stages never add up to more than it
    /// (None in older results, whose stages and process were read over different windows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process_cpu_ms: Option<f64>,
    /// Through a shaped link: the timeline and what it took to recover.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<LinkFigures>,
    /// Under a CPU quota: the schedule and the frame rate over time.
    #[serde(default, rename = "cpu", skip_serializing_if = "Option::is_none")]
    pub quota: Option<QuotaFigures>,
    /// What adaptation changed over the whole run (bitrate, drops, workers), in order; empty
    /// when it is off.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adaptation: Vec<AdaptEvent>,
    /// A profiled run's profile of the measured window (its fps is not in the point's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<ProfileFigures>,
    /// Every frame the window asked for, accounted for: encoded or dropped by reason (None in
    /// older results).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ledger: Option<FrameLedger>,
}

/// A window's frames, accounted for. A run ends with nothing in flight (its threads are joined
/// before the counters are read), so every frame due is encoded or dropped under one reason:
/// `due = encoded + dropped.total()`. Of the encoded, `lost` never reached the server (the
/// output's connection was down).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FrameLedger {
    /// Frames the window asked the source for.
    pub due: u64,
    /// Frames encoded and handed to the output.
    pub encoded: u64,
    /// Frames dropped before they were encoded (or sent), by reason.
    pub dropped: Drops,
    /// Encoded frames the output could not deliver.
    pub lost: u64,
}

impl FrameLedger {
    /// Frames neither encoded nor dropped: 0 when the ledger adds up.
    pub fn unaccounted(&self) -> i64 {
        self.due as i64 - self.encoded as i64 - self.dropped.total() as i64
    }

    /// Two ledgers' frames together (repetitions of a point).
    pub fn add(&self, other: &FrameLedger) -> FrameLedger {
        FrameLedger {
            due: self.due + other.due,
            encoded: self.encoded + other.encoded,
            dropped: add_drops(&self.dropped, &other.dropped),
            lost: self.lost + other.lost,
        }
    }
}

impl Figures {
    /// A point's figures from its repetitions' (at least one): fps, CPU, bitrate and each
    /// stage's CPU their medians; peak RSS the highest; drops and unmatched marks their
    /// totals (every drop counts); span histograms added (exact: the percentiles of every
    /// frame of every run); the network, pipeline and core figures joined figure by figure;
    /// the RSS timeline, link, quota and adaptation timelines the first run's; fidelity,
    /// render metrics and the profile the first run's that has them.
    pub fn aggregate(runs: &[&Figures]) -> Figures {
        let pick =
            |f: fn(&Figures) -> f64| median(&mut runs.iter().map(|r| f(r)).collect::<Vec<_>>());
        let first = runs.first();
        Figures {
            fps: pick(|r| r.fps),
            cpu_percent: pick(|r| r.cpu_percent),
            rss_bytes: runs.iter().map(|r| r.rss_bytes).max().unwrap_or(0),
            dropped_frames: runs.iter().map(|r| r.dropped_frames).sum(),
            bitrate_kbps: pick(|r| r.bitrate_kbps),
            encoder: first.map(|r| r.encoder.clone()).unwrap_or_default(),
            notes: unique(runs.iter().flat_map(|r| &r.notes)),
            unmatched_marks: runs.iter().map(|r| r.unmatched_marks).sum(),
            spans: merged_spans(runs.iter().map(|r| &r.spans)),
            rss_timeline: first.map(|r| r.rss_timeline.clone()).unwrap_or_default(),
            network: aggregate_network(runs),
            pipeline: aggregate_pipeline(runs),
            core: aggregate_core(runs),
            fidelity: runs.iter().find_map(|r| r.fidelity.clone()),
            render: runs.iter().find_map(|r| r.render.clone()),
            stage_cpu_ms: per_frame_cpu(runs),
            process_cpu_ms: pooled(runs, |r| r.process_cpu_ms),
            link: first.and_then(|r| r.link.clone()),
            quota: first.and_then(|r| r.quota.clone()),
            adaptation: first.map(|r| r.adaptation.clone()).unwrap_or_default(),
            profile: runs.iter().find_map(|r| r.profile.clone()),
            ledger: runs
                .iter()
                .filter_map(|r| r.ledger.as_ref())
                .fold(None, |sum: Option<FrameLedger>, l| {
                    Some(sum.map_or_else(|| l.clone(), |s| s.add(l)))
                }),
        }
    }
}

/// The stages of [`Figures::stage_cpu_ms`], in the order of a frame's path.
pub const STAGES: [&str; 8] = [
    "decode",
    "render",
    "workers",
    "encode",
    "x264 threads",
    "send",
    "server",
    "players",
];

/// The core stage's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CoreFigures {
    pub metrics: CoreMetrics,
    /// Mean time of a viewport update (grid and margin), µs.
    pub viewport_update_us: f64,
    /// Mean time of a resize, including re-placing every layer, µs.
    pub viewport_resize_us: f64,
    /// Mean time to place one rectangle, µs.
    pub viewport_transform_us: f64,
    /// Mean cold load (decode or draw) of an asset, ms.
    pub asset_cold_ms: f64,
    /// Mean warm lookup (cache hit) of an asset, µs.
    pub asset_warm_us: f64,
}

/// The frame pipeline's figures over a measured window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PipelineFigures {
    /// Drops by reason.
    pub drops: Drops,
    /// Buffer pool hits ÷ takes, 0–1.
    pub pool_hit_rate: f64,
    /// Frame buffers allocated (pool misses) per frame.
    pub buffer_allocs_per_frame: f64,
    /// Rust heap allocations per frame, whole process (None where not counted).
    pub allocs_per_frame: Option<f64>,
    /// Queue depth seen by each arriving frame: `occupancy[d]` frames found `d` queued.
    pub occupancy: Vec<u64>,
    /// The guide's bufferHealth: 1 − the queue's mean fill.
    pub buffer_health: f64,
    /// Mean size of a frame in the pipeline's format (jpeg/png), bytes; 0 for raw.
    pub format_bytes_per_frame: f64,
    pub pressure_events: u64,
}

impl PipelineFigures {
    /// The window between two snapshots of a stream's pipeline.
    pub fn between(
        before: &PipelineStats,
        after: &PipelineStats,
        frames: u64,
        allocs: Option<u64>,
    ) -> Self {
        let n = frames.max(1) as f64;
        let takes = (after.pool.hits + after.pool.misses) - (before.pool.hits + before.pool.misses);
        let occupancy: Vec<u64> = after
            .occupancy
            .iter()
            .zip(&before.occupancy)
            .map(|(a, b)| a - b)
            .collect();
        let window = PipelineStats {
            occupancy: occupancy.clone(),
            ..PipelineStats::default()
        };
        PipelineFigures {
            drops: after.drops.since(&before.drops),
            pool_hit_rate: if takes == 0 {
                0.0
            } else {
                (after.pool.hits - before.pool.hits) as f64 / takes as f64
            },
            buffer_allocs_per_frame: (after.pool.misses - before.pool.misses) as f64 / n,
            allocs_per_frame: allocs.map(|a| a as f64 / n),
            buffer_health: window.buffer_health(),
            occupancy,
            format_bytes_per_frame: (after.format_bytes - before.format_bytes) as f64 / n,
            pressure_events: after.pressure_events - before.pressure_events,
        }
    }
}

/// The RTMP side of a run with players.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkFigures {
    pub players: u32,
    /// Publisher → server, RTMP bytes on the wire, kbit/s of wall time.
    pub sent_kbps: f64,
    /// Server → each player, payload kbit/s of wall time, mean over players.
    pub delivered_kbps: f64,
    /// Server → each player, RTMP bytes on the wire (chunk headers included), kbit/s of wall
    /// time: the server's bytes written over the window ÷ its players (the late joiner too).
    /// 0 in results from before it was measured.
    #[serde(default)]
    pub wire_kbps_per_player: f64,
    /// Players that kept real time: media received ÷ wall time ≥ 0.99.
    pub players_realtime: u32,
    /// A player joining after the warm-up: connect → first keyframe, ms.
    pub late_join_ms: Option<f64>,
    /// Whether that player's first frame was a keyframe.
    pub late_first_frame_key: Option<bool>,
    /// Frames the publisher could not send (connection lost).
    pub publisher_dropped: u64,
    pub reconnects: u64,
    /// Frames the server dropped for slow players (queue full), all players.
    pub server_dropped: u64,
    /// The embedded server's own threads (`rtmp-server*`, `rtmp-fanout-*`) over the window,
    /// percent of one core; None in results from before it was measured.
    #[serde(default)]
    pub server_cpu_percent: Option<f64>,
    /// The load it served: the players' threads (`rtmp-players`), percent of one core.
    #[serde(default)]
    pub players_cpu_percent: Option<f64>,
    /// The publisher's connection at the end of the window (round-trip time, retransmits,
    /// delivery rate, media queued unsent and its peak, send rate); None in older results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<streamer::adapt::network::NetQuality>,
    /// Every frame the publisher sent over the window, to every player, accounted for
    /// (None in older results).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ledger: Option<PlayerLedger>,
}

/// The players' frames over a window, accounted for: each player that played through it was
/// sent every frame the publisher sent, and either received it or the server dropped it for
/// being slow; a run's players have received every frame sent before its counters are read.
/// Frames sent just before the window and still on their way when it opened (a shaped link
/// holds some) arrive in it, so `delivered + dropped = players × sent + in flight at the
/// start`: a frame lost shows as fewer, never more. The player who joins during the window is
/// left out, but the server's drops are its whole count, so drops for that player would show.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PlayerLedger {
    /// Players that played through the window.
    pub players: u64,
    /// Frames the publisher sent.
    pub sent: u64,
    /// Frames those players received, together.
    pub delivered: u64,
    /// Frames the server dropped for slow players.
    pub dropped: u64,
}

impl PlayerLedger {
    /// Frames sent to players and neither received nor dropped: at most 0 when it adds up
    /// (below 0 by the frames in flight when the window opened).
    pub fn unaccounted(&self) -> i64 {
        (self.players * self.sent) as i64 - self.delivered as i64 - self.dropped as i64
    }
}

/// Every span's histograms of `maps` added together (exact: the percentiles of every frame of
/// every map), each span once.
pub(crate) fn merged_spans<'a>(
    maps: impl Iterator<Item = &'a BTreeMap<String, SpanStats>> + Clone,
) -> BTreeMap<String, SpanStats> {
    let names: std::collections::BTreeSet<&String> = maps.clone().flat_map(|m| m.keys()).collect();
    names
        .into_iter()
        .filter_map(|name| {
            let mut merged = new_histogram();
            let mut any = false;
            for h in maps
                .clone()
                .filter_map(|m| m.get(name).and_then(|s| s.histogram().ok()))
            {
                merged.add(&h).expect("histograms share bounds");
                any = true;
            }
            any.then(|| (name.clone(), SpanStats::from_histogram(&merged)))
        })
        .collect()
}

/// `notes` in order, each once.
pub(crate) fn unique<'a>(notes: impl Iterator<Item = &'a String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for n in notes {
        if !out.contains(n) {
            out.push(n.clone());
        }
    }
    out
}

/// Each stage's CPU per frame over the runs: pooled over every frame of every run where the
/// runs carry a frame ledger (so the stages, pooled alike, never exceed the process), else
/// the runs' median (older results).
fn per_frame_cpu(runs: &[&Figures]) -> BTreeMap<String, f64> {
    let stages: std::collections::BTreeSet<&String> =
        runs.iter().flat_map(|r| r.stage_cpu_ms.keys()).collect();
    stages
        .into_iter()
        .map(|stage| {
            let of = |r: &Figures| r.stage_cpu_ms.get(stage).copied();
            let value = pooled(runs, of).unwrap_or_else(|| {
                median(&mut runs.iter().filter_map(|r| of(r)).collect::<Vec<_>>())
            });
            (stage.clone(), value)
        })
        .collect()
}

/// A per-frame figure pooled over the runs, weighted by each run's encoded frames: None unless
/// every run has both the figure and a ledger.
fn pooled(runs: &[&Figures], of: impl Fn(&Figures) -> Option<f64>) -> Option<f64> {
    let mut sum = 0.0;
    let mut frames = 0u64;
    for r in runs {
        let n = r.ledger.as_ref()?.encoded;
        sum += of(r)? * n as f64;
        frames += n;
    }
    (frames > 0).then(|| sum / frames as f64)
}

/// Two counts of drops together, reason by reason.
fn add_drops(a: &Drops, b: &Drops) -> Drops {
    Drops {
        behind: a.behind + b.behind,
        queue_full: a.queue_full + b.queue_full,
        stale: a.stale + b.stale,
        late: a.late + b.late,
        pressure: a.pressure + b.pressure,
        congestion: a.congestion + b.congestion,
    }
}

fn aggregate_core(runs: &[&Figures]) -> Option<CoreFigures> {
    let all: Vec<&CoreFigures> = runs.iter().filter_map(|r| r.core.as_ref()).collect();
    let first = all.first()?;
    let med =
        |f: fn(&CoreFigures) -> f64| median(&mut all.iter().map(|c| f(c)).collect::<Vec<_>>());
    Some(CoreFigures {
        metrics: first.metrics.clone(),
        viewport_update_us: med(|c| c.viewport_update_us),
        viewport_resize_us: med(|c| c.viewport_resize_us),
        viewport_transform_us: med(|c| c.viewport_transform_us),
        asset_cold_ms: med(|c| c.asset_cold_ms),
        asset_warm_us: med(|c| c.asset_warm_us),
    })
}

fn aggregate_pipeline(runs: &[&Figures]) -> Option<PipelineFigures> {
    let all: Vec<&PipelineFigures> = runs.iter().filter_map(|r| r.pipeline.as_ref()).collect();
    let first = all.first()?;
    let med =
        |f: fn(&PipelineFigures) -> f64| median(&mut all.iter().map(|p| f(p)).collect::<Vec<_>>());
    let mut drops = Drops::default();
    let mut occupancy = vec![0; first.occupancy.len()];
    for p in &all {
        drops = add_drops(&drops, &p.drops);
        for (o, v) in occupancy.iter_mut().zip(&p.occupancy) {
            *o += v;
        }
    }
    let mut allocs: Vec<f64> = all.iter().filter_map(|p| p.allocs_per_frame).collect();
    Some(PipelineFigures {
        drops,
        pool_hit_rate: med(|p| p.pool_hit_rate),
        buffer_allocs_per_frame: med(|p| p.buffer_allocs_per_frame),
        allocs_per_frame: (!allocs.is_empty()).then(|| median(&mut allocs)),
        occupancy,
        buffer_health: med(|p| p.buffer_health),
        format_bytes_per_frame: med(|p| p.format_bytes_per_frame),
        pressure_events: all.iter().map(|p| p.pressure_events).sum(),
    })
}

fn aggregate_network(runs: &[&Figures]) -> Option<NetworkFigures> {
    let nets: Vec<&NetworkFigures> = runs.iter().filter_map(|r| r.network.as_ref()).collect();
    let first = nets.first()?;
    let med =
        |f: fn(&NetworkFigures) -> f64| median(&mut nets.iter().map(|n| f(n)).collect::<Vec<_>>());
    let mut joins: Vec<f64> = nets.iter().filter_map(|n| n.late_join_ms).collect();
    Some(NetworkFigures {
        players: first.players,
        sent_kbps: med(|n| n.sent_kbps),
        delivered_kbps: med(|n| n.delivered_kbps),
        wire_kbps_per_player: med(|n| n.wire_kbps_per_player),
        players_realtime: nets.iter().map(|n| n.players_realtime).min().unwrap_or(0),
        late_join_ms: (!joins.is_empty()).then(|| median(&mut joins)),
        late_first_frame_key: nets
            .iter()
            .map(|n| n.late_first_frame_key)
            .try_fold(true, |all, k| k.map(|k| all && k)),
        publisher_dropped: nets.iter().map(|n| n.publisher_dropped).sum(),
        reconnects: nets.iter().map(|n| n.reconnects).sum(),
        server_dropped: nets.iter().map(|n| n.server_dropped).sum(),
        server_cpu_percent: median_of(&nets, |n| n.server_cpu_percent),
        players_cpu_percent: median_of(&nets, |n| n.players_cpu_percent),
        quality: network_quality(&nets),
        ledger: nets
            .iter()
            .map(|n| n.ledger.clone())
            .collect::<Option<Vec<_>>>()
            .map(|all| PlayerLedger {
                players: all.first().map_or(0, |l| l.players),
                sent: all.iter().map(|l| l.sent).sum(),
                delivered: all.iter().map(|l| l.delivered).sum(),
                dropped: all.iter().map(|l| l.dropped).sum(),
            }),
    })
}

/// The repetitions' connection samples: medians, with the peak of queued media and the most
/// retransmissions over all of them.
fn network_quality(nets: &[&NetworkFigures]) -> Option<streamer::adapt::network::NetQuality> {
    use streamer::adapt::network::NetQuality;
    let all: Vec<&NetQuality> = nets.iter().filter_map(|n| n.quality.as_ref()).collect();
    all.first()?;
    let med = |f: fn(&NetQuality) -> f64| median(&mut all.iter().map(|q| f(q)).collect::<Vec<_>>());
    Some(NetQuality {
        rtt_ms: med(|q| q.rtt_ms),
        rtt_var_ms: med(|q| q.rtt_var_ms),
        min_rtt_ms: med(|q| q.min_rtt_ms),
        retransmits: all.iter().map(|q| q.retransmits).max().unwrap_or(0),
        delivery_rate_kbps: med(|q| q.delivery_rate_kbps),
        unsent_bytes: all.iter().map(|q| q.unsent_bytes).max().unwrap_or(0),
        queued_media_ms: med(|q| q.queued_media_ms),
        queued_media_peak_ms: all
            .iter()
            .map(|q| q.queued_media_peak_ms)
            .fold(0.0, f64::max),
        send_rate_kbps: med(|q| q.send_rate_kbps),
        acked_rate_kbps: med(|q| q.acked_rate_kbps),
        unacked_bytes: all.iter().map(|q| q.unacked_bytes).max().unwrap_or(0),
        recent_acked_kbps: med(|q| q.recent_acked_kbps),
        sampling_cpu_ms: med(|q| q.sampling_cpu_ms),
    })
}

/// The median of a figure that older results may lack (None when every run lacks it).
fn median_of(nets: &[&NetworkFigures], f: fn(&NetworkFigures) -> Option<f64>) -> Option<f64> {
    let mut v: Vec<f64> = nets.iter().filter_map(|n| f(n)).collect();
    (!v.is_empty()).then(|| median(&mut v))
}
