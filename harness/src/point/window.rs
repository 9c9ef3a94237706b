//! A point's measured window: the stream opened and warmed up ([`open_and_warm`]), every
//! counter read as the window opens ([`Start::take`]), the measured frames run with their
//! samplers ([`stream_window`]), and every counter read again once the stream is finished,
//! into the window's [`Figures`] ([`collect`]).

use super::figures::{
    CoreFigures, Figures, FrameLedger, NetworkFigures, PipelineFigures, PlayerLedger, STAGES,
};
use super::load::Around;
use super::samplers::{StopOnDrop, sample_link, sample_quota};
use super::{PointJob, PointRun, RunError};
use crate::profile::Profiling;
use crate::quota::QuotaFigures;
use crate::shaped::LinkFigures;
use crate::system::{Sampler, threads_cpu_seconds};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use streamer::output::{Output, SinkStats};
use streamer::probe::{NoProbe, Probe};
use streamer::rtmp::LocalRelay;
use streamer::rtmp::player::{PlayerLoad, PlayerReport};
use streamer::stream::{Counters, PipelineStats, StageCpu, Stream, Summary};

/// The embedded server's threads, by name.
const SERVER_THREADS: [&str; 2] = ["rtmp-server", "rtmp-fanout-"];
/// The players' threads.
const PLAYER_THREADS: [&str; 1] = ["rtmp-players"];

/// Runs `job`'s measured window on `probe`, among `around`; `begin` is told the warm-up's
/// frame count as the window opens.
pub(super) fn measure<P: Probe + Sync>(
    job: &PointJob,
    probe: &P,
    around: &Around<'_>,
    begin: impl FnOnce(u64),
) -> Result<PointRun, RunError> {
    let opened = Instant::now();
    let (mut stream, fixed_allocs) = open_and_warm(job, probe, around.relay)?;
    let start = Start::take(&mut stream, job, around.relay, begin)?;
    let (link, quota) = stream_window(job, &mut stream, around, start.at, opened)?;
    collect(
        job,
        stream,
        around.relay,
        start,
        fixed_allocs,
        (link, quota),
    )
}

/// Opens the stream and runs its warm-up, then one frame more to measure what a run costs in
/// allocations whatever its length (its pipeline threads and queue): the window's count is
/// taken less that. Returns the stream and that fixed cost (None where allocations are not
/// counted).
fn open_and_warm<'p, P: Probe + Sync>(
    job: &PointJob,
    probe: &'p P,
    relay: Option<&LocalRelay>,
) -> Result<(Stream<'p, P>, Option<u64>), RunError> {
    let s = &job.settings;
    let output = relay.map_or(Output::Null, |r| Output::Rtmp(r.url.clone()));
    // The real clip where the scenario names it, at this machine's path (results keep the
    // placeholder).
    let mut config = job.config.clone();
    if config.source.path == crate::scenario::CLIP
        && let Some(clip) = crate::scenario::clip_path()
    {
        config.source.path = clip;
    }
    let mut stream = Stream::open(&config, &output, probe)?;
    stream.run(s.warmup_frames, s.pacing)?;
    let counting = crate::allocs::counting();
    let fixed_before = crate::allocs::allocations();
    stream.run(1, s.pacing)?;
    let fixed = crate::allocs::allocations() - fixed_before;
    // The publisher is idle between runs: once the players have every frame sent so far, the
    // publisher's and the players' counters describe the same frames.
    relay.inspect(|r| settle(r));
    Ok((stream, counting.then_some(fixed)))
}

/// Everything read as the window opens, to be taken off what is read as it closes.
struct Start {
    counters: Counters,
    sink: SinkStats,
    net: NetStart,
    /// One more player, joining after the warm-up.
    late: Option<PlayerLoad>,
    core: Option<CoreFigures>,
    pipeline: PipelineStats,
    sampler: Sampler,
    allocs: u64,
    stages: StageCpu,
    /// The process's CPU clock, read beside `stages`.
    process_cpu_ns: u64,
    profiling: Option<Profiling>,
    at: Instant,
}

/// The network's counters as the window opens.
struct NetStart {
    players: Vec<PlayerReport>,
    sink: SinkStats,
    wire_bytes: u64,
    /// The server's player frames dropped so far.
    server_dropped: u64,
    server_cpu_s: f64,
    players_cpu_s: f64,
}

impl Start {
    /// Reads every counter, starts the late joiner, times the core's parts (before the window,
    /// so the window's figures are the stream's alone), starts sampling memory and the
    /// profiler, and opens the window.
    fn take<P: Probe>(
        stream: &mut Stream<'_, P>,
        job: &PointJob,
        relay: Option<&LocalRelay>,
        begin: impl FnOnce(u64),
    ) -> Result<Self, RunError> {
        let counters = stream.counters();
        let sink = stream.sink_stats();
        let players = relay.map(LocalRelay::reports).unwrap_or_default();
        let wire_bytes = relay.map_or(0, |r| r.server.stats().bytes_out.load(Ordering::Relaxed));
        let server_cpu_s = threads_cpu_seconds(&SERVER_THREADS);
        let players_cpu_s = threads_cpu_seconds(&PLAYER_THREADS);
        begin(job.settings.warmup_frames + 1);
        // Its join time is what a viewer arriving at a live stream sees (with the GOP cache,
        // at once; without, at the next keyframe).
        let fps = job.config.core.viewport.fps;
        let late = match relay {
            Some(r) => Some(
                PlayerLoad::start(&r.url, 1, fps, Arc::new(NoProbe)).map_err(RunError::Players)?,
            ),
            None => None,
        };
        let core = (job.config.core.layout.layers > 0)
            .then(|| super::core_timings::core_timings(stream, &job.config));
        let pipeline = stream.pipeline_stats();
        let sampler = Sampler::start();
        let allocs = crate::allocs::allocations();
        let stages = stream.stage_cpu();
        let process_cpu_ns = streamer::clock::process_cpu_ns();
        let profiling = match &job.profile {
            Some(_) => Some(Profiling::start().map_err(|e| RunError::Protocol(e.to_string()))?),
            None => None,
        };
        Ok(Start {
            counters,
            sink,
            net: NetStart {
                players,
                sink,
                wire_bytes,
                server_dropped: relay.map_or(0, |r| {
                    r.server.stats().frames_dropped.load(Ordering::Relaxed)
                }),
                server_cpu_s,
                players_cpu_s,
            },
            late,
            core,
            pipeline,
            sampler,
            allocs,
            stages,
            process_cpu_ns,
            profiling,
            at: Instant::now(),
        })
    }
}

/// Runs the window's frames. Under a CPU quota a thread steps it on schedule and samples the
/// frame rate meanwhile; through a shaped link another steps the link and samples the
/// connection and the players. Returns their figures.
fn stream_window<P: Probe + Sync>(
    job: &PointJob,
    stream: &mut Stream<'_, P>,
    around: &Around<'_>,
    started: Instant,
    opened: Instant,
) -> Result<(Option<LinkFigures>, Option<QuotaFigures>), RunError> {
    let s = &job.settings;
    let fps = job.config.core.viewport.fps;
    let quota_live = stream.live();
    let quota_stop = AtomicBool::new(false);
    std::thread::scope(|sc| {
        let _stop = StopOnDrop(&quota_stop);
        let quota_thread = around.quota.map(|(quota, plan)| {
            let (live, stop) = (&quota_live, &quota_stop);
            sc.spawn(move || sample_quota(live, quota, plan, stop, started, fps))
        });
        let link_figures = match (around.link, around.relay) {
            (Some(link), Some(relay)) => {
                Some(linked_window(job, stream, relay, link, started, opened)?)
            }
            _ => {
                stream.run(s.length.frames(fps), s.pacing)?;
                None
            }
        };
        quota_stop.store(true, Ordering::Relaxed);
        let quota_figures = match quota_thread {
            Some(t) => Some(
                t.join()
                    .map_err(|_| RunError::Protocol("the CPU sampler panicked".into()))??,
            ),
            None => None,
        };
        Ok((link_figures, quota_figures))
    })
}

/// The window's frames through a shaped link, sampled on the link's schedule.
fn linked_window<P: Probe + Sync>(
    job: &PointJob,
    stream: &mut Stream<'_, P>,
    relay: &LocalRelay,
    link: (
        &crate::shaped::ShapedLink,
        &crate::scenario::LinkPlan,
        &crate::record::Recorder,
    ),
    started: Instant,
    opened: Instant,
) -> Result<LinkFigures, RunError> {
    let (s, plan) = (&job.settings, link.1);
    let fps = job.config.core.viewport.fps;
    let live = stream.live();
    let stop = AtomicBool::new(false);
    let stalled_before: Vec<Duration> = relay.reports().iter().map(|p| p.stalled).collect();
    let sampling_cpu = |l: &streamer::stream::Live| l.snapshot().network.map(|q| q.sampling_cpu_ms);
    let sampling_before = sampling_cpu(&live);
    let (ran, sampled) = std::thread::scope(|sc| {
        let sampler = sc.spawn(|| sample_link(&live, relay, link, &stop, started, fps));
        let ran = stream.run(s.length.frames(fps), s.pacing);
        stop.store(true, Ordering::Relaxed);
        (ran, sampler.join())
    });
    ran?;
    let window_ms = started.elapsed().as_secs_f64() * 1000.0;
    let stalled: Vec<f64> = relay
        .reports()
        .iter()
        .zip(&stalled_before)
        .map(|(p, before)| p.stalled.saturating_sub(*before).as_secs_f64() * 1000.0)
        .collect();
    let (timeline, capped) =
        sampled.map_err(|_| RunError::Protocol("the link sampler panicked".into()))??;
    let mut f = LinkFigures::of(
        plan.schedule.clone(),
        timeline,
        job.config.encoder.rate_control.bitrate_kbps,
        &stalled,
        window_ms,
    );
    f.capped_e2e_ms = capped;
    f.sampling_cpu_ms = sampling_cpu(&live)
        .zip(sampling_before)
        .map(|(after, before)| after - before);
    f.window_start_ms = started.duration_since(opened).as_millis() as u64;
    Ok(f)
}

/// Closes the window (memory first: `finish` tears the stream down), finishes the stream and
/// reads every counter again: the window's figures.
fn collect<P: Probe>(
    job: &PointJob,
    stream: Stream<'_, P>,
    relay: Option<&LocalRelay>,
    mut start: Start,
    fixed_allocs: Option<u64>,
    (link, quota): (Option<LinkFigures>, Option<QuotaFigures>),
) -> Result<PointRun, RunError> {
    let fps = job.config.core.viewport.fps;
    // Every CPU figure over one window: the stages, the server's and players' threads and the
    // whole process, read at the same instants.
    let stages = stream.stage_cpu().since(&start.stages);
    let process_s = (streamer::clock::process_cpu_ns() - start.process_cpu_ns) as f64 * 1e-9;
    let server_players_s = relay.map(|_| {
        (
            threads_cpu_seconds(&SERVER_THREADS) - start.net.server_cpu_s,
            threads_cpu_seconds(&PLAYER_THREADS) - start.net.players_cpu_s,
        )
    });
    start.sampler.end_memory_window();
    let allocs = fixed_allocs
        .map(|fixed| (crate::allocs::allocations() - start.allocs).saturating_sub(fixed));
    let summary = stream.finish()?;
    let wall_s = start.at.elapsed().as_secs_f64();
    // Symbolizing and writing the flame graph come after the window.
    let profile = match (start.profiling.take(), &job.profile) {
        (Some(p), Some(target)) => Some(
            p.finish(&target.svg, &target.name)
                .map_err(|e| RunError::Protocol(e.to_string()))?,
        ),
        _ => None,
    };
    let usage = start.sampler.stop();
    let core = start.core.take().map(|c| CoreFigures {
        metrics: summary.core.clone(),
        ..c
    });
    let network = match (relay, server_players_s) {
        (Some(r), Some(cpu)) => Some(network_after(
            r,
            &start.net,
            start.late.take(),
            &summary,
            (wall_s, fps),
            cpu,
        )),
        _ => None,
    };
    let (before, after) = (start.counters, summary.counters);
    let frames = after.packets - before.packets;
    let pipeline = PipelineFigures::between(&start.pipeline, &summary.pipeline, frames, allocs);
    let ledger = FrameLedger {
        due: job.settings.length.frames(fps),
        encoded: frames,
        dropped: pipeline.drops,
        lost: summary.sink.dropped - start.sink.dropped,
    };
    let media_s = frames as f64 / f64::from(fps);
    let mut notes = summary.notes;
    if summary.pool_copies > 0 {
        notes.push(format!(
            "{} pooled frames had to be copied",
            summary.pool_copies
        ));
    }
    let figures = Figures {
        fps: delivered_fps(job, frames, wall_s),
        cpu_percent: usage.cpu_percent,
        rss_bytes: usage.rss_peak_bytes,
        dropped_frames: after.dropped - before.dropped + summary.sink.dropped - start.sink.dropped,
        bitrate_kbps: if media_s > 0.0 {
            (after.bytes - before.bytes) as f64 * 8.0 / media_s / 1000.0
        } else {
            0.0
        },
        encoder: summary.encoder,
        notes,
        rss_timeline: usage.rss_timeline,
        network,
        pipeline: Some(pipeline),
        core,
        render: Some(summary.render),
        stage_cpu_ms: stage_cpu_ms(&stages, server_players_s, frames),
        process_cpu_ms: Some(process_s * 1000.0 / frames.max(1) as f64),
        adaptation: summary.adaptation,
        link,
        quota,
        profile,
        ledger: Some(ledger),
        ..Figures::default()
    };
    Ok(PointRun {
        figures,
        frames,
        wall_s,
    })
}

/// The window's frame rate: under max pacing, frames encoded per second of wall time (the
/// throughput, the final flush included); in real time, frames encoded per second of the
/// stream's own time (the configured rate × encoded ÷ due), so a frame encoded late still
/// counts and only a dropped one lowers it (lateness shows in the latency spans).
fn delivered_fps(job: &PointJob, frames: u64, wall_s: f64) -> f64 {
    let fps = job.config.core.viewport.fps;
    match job.settings.pacing {
        streamer::stream::Pacing::Max => frames as f64 / wall_s,
        streamer::stream::Pacing::Realtime => {
            let due = job.settings.length.frames(fps).max(1);
            f64::from(fps) * frames as f64 / due as f64
        }
    }
}

/// What the players, the server and the publisher's connection did over the window, with the
/// server's and players' CPU seconds over it.
fn network_after(
    relay: &LocalRelay,
    start: &NetStart,
    late: Option<PlayerLoad>,
    summary: &Summary,
    (wall_s, fps): (f64, u32),
    (server_s, players_s): (f64, f64),
) -> NetworkFigures {
    // Frames still on their way reach the players before the counters are read (the same
    // frames as the publisher's); this adds no wall time.
    settle(relay);
    let after = relay.reports();
    let wire = relay.server.stats().bytes_out.load(Ordering::Relaxed) - start.wire_bytes;
    let late = late.map(PlayerLoad::stop).unwrap_or_default();
    let mut n = network_figures(
        &start.players,
        &after,
        late.first(),
        start.sink,
        summary.sink,
        wall_s,
        fps,
    );
    let receivers = (after.len() + late.len()).max(1) as f64;
    n.wire_kbps_per_player = wire as f64 * 8.0 / wall_s / 1000.0 / receivers;
    let percent = |s: f64| Some(s / wall_s * 100.0);
    n.ledger = Some(PlayerLedger {
        players: after.len() as u64,
        sent: summary.sink.frames_sent - start.sink.frames_sent,
        delivered: after
            .iter()
            .zip(&start.players)
            .map(|(a, b)| a.frames - b.frames)
            .sum(),
        dropped: relay.server.stats().frames_dropped.load(Ordering::Relaxed) - start.server_dropped,
    });
    n.quality = summary.network;
    n.server_cpu_percent = percent(server_s);
    n.players_cpu_percent = percent(players_s);
    n
}

/// CPU milliseconds per frame by stage ([`STAGES`]), the server's and players' with players.
fn stage_cpu_ms(
    stages: &StageCpu,
    server_players_s: Option<(f64, f64)>,
    frames: u64,
) -> BTreeMap<String, f64> {
    let per_frame = |seconds: f64| seconds * 1000.0 / frames.max(1) as f64;
    let mut out: BTreeMap<String, f64> = STAGES
        .iter()
        .zip([
            stages.decode_s,
            stages.render_s,
            stages.workers_s,
            stages.encode_s,
            stages.x264_threads_s,
            stages.send_s,
        ])
        .map(|(name, s)| (name.to_string(), per_frame(s)))
        // Only a decoding source has a decode stage.
        .filter(|(name, ms)| name != "decode" || *ms > 0.0)
        .collect();
    if let Some((server, players)) = server_players_s {
        out.insert("server".into(), per_frame(server));
        out.insert("players".into(), per_frame(players));
    }
    out
}

/// What the players saw over the measured window.
fn network_figures(
    before: &[PlayerReport],
    after: &[PlayerReport],
    late: Option<&PlayerReport>,
    sink_before: SinkStats,
    sink_after: SinkStats,
    wall_s: f64,
    fps: u32,
) -> NetworkFigures {
    let players = after.len().max(1) as f64;
    let delivered: u64 = after
        .iter()
        .zip(before)
        .map(|(a, b)| a.bytes - b.bytes)
        .sum();
    let realtime = after
        .iter()
        .zip(before)
        .filter(|(a, b)| (a.frames - b.frames) as f64 / f64::from(fps) / wall_s >= 0.99)
        .count() as u32;
    NetworkFigures {
        players: after.len() as u32,
        sent_kbps: (sink_after.bytes_sent - sink_before.bytes_sent) as f64 * 8.0 / wall_s / 1000.0,
        delivered_kbps: delivered as f64 * 8.0 / wall_s / 1000.0 / players,
        wire_kbps_per_player: 0.0,
        players_realtime: realtime,
        late_join_ms: late.and_then(|r| r.join).map(|d| d.as_secs_f64() * 1000.0),
        late_first_frame_key: late.and_then(|r| r.first_frame_key),
        publisher_dropped: sink_after.dropped - sink_before.dropped,
        reconnects: sink_after.reconnects - sink_before.reconnects,
        server_dropped: 0,
        server_cpu_percent: None,
        players_cpu_percent: None,
        quality: None,
        ledger: None,
    }
}

/// Waits (at most 2 s) until the relay's players have stopped receiving: every frame the
/// publisher has sent has reached them, so counters read now cover the same frames.
fn settle(relay: &LocalRelay) {
    let deadline = Instant::now() + Duration::from_secs(2);
    let seen = |r: &LocalRelay| -> Vec<(u64, u64)> {
        r.reports().iter().map(|p| (p.frames, p.bytes)).collect()
    };
    let mut last = seen(relay);
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(30));
        let now = seen(relay);
        if now == last {
            return;
        }
        last = now;
    }
}
