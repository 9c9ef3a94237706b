//! What runs beside a measured window under a schedule: the link's rate or the CPU quota
//! stepped on time, and a sample of the stream every period.

use super::RunError;
use crate::quota::{CpuQuota, QuotaFigures};
use crate::record::Recorder;
use crate::scenario::{CpuPlan, LinkPlan};
use crate::shaped::{LinkSample, ShapedLink};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use streamer::rtmp::LocalRelay;
use streamer::rtmp::player::PlayerReport;

/// Every [`crate::shaped::SAMPLE_MS`] while the window runs: changes the link's rate on
/// schedule and records a [`LinkSample`]. Returns the timeline and the players' glass-to-glass
/// p50/p99 (ms) over the frames received while the link was cut.
pub(super) fn sample_link(
    live: &streamer::stream::Live,
    relay: &LocalRelay,
    (shaped, plan, recorder): (&ShapedLink, &LinkPlan, &Recorder),
    stop: &AtomicBool,
    started: Instant,
    fps: u32,
) -> Result<(Vec<LinkSample>, Option<P50P99>), RunError> {
    let mut timeline = Vec::new();
    let ids = |players: &[PlayerReport]| -> Vec<Option<u64>> {
        players.iter().map(|p| p.last_frame_id).collect()
    };
    let players = relay.reports();
    let id0 = crate::cli_link::median_id(&ids(&players)).unwrap_or(0.0);
    let mut last_frames: Vec<u64> = players.iter().map(|p| p.frames).collect();
    let mut last_bytes = live.snapshot().bytes;
    let mut last_t = 0.0;
    let (t_cap, t_lift) = match crate::shaped::cap_and_lift(&plan.schedule) {
        Some((cap, lift)) => (cap, lift.unwrap_or(f64::INFINITY)),
        None => (f64::INFINITY, f64::INFINITY),
    };
    // The e2e histogram when the cut began, and the frames received since, at the lift.
    let mut at_cap = None;
    let mut capped = None;
    let e2e = || recorder.span("e2e");
    let every = Duration::from_millis(crate::shaped::SAMPLE_MS);
    let step = |rate| shaped.set_rate(rate).map_err(RunError::from);
    on_schedule(&plan.schedule, every, stop, started, step, |t| {
        if t >= t_cap && at_cap.is_none() {
            at_cap = e2e();
        }
        if t >= t_lift && capped.is_none() {
            capped = at_cap.as_ref().and_then(|before| since(e2e(), before));
        }
        let snap = live.snapshot();
        let players = relay.reports();
        let now_frames: Vec<u64> = players.iter().map(|p| p.frames).collect();
        let players_stalled = now_frames
            .iter()
            .zip(&last_frames)
            .filter(|(now, before)| now == before)
            .count() as u32;
        last_frames = now_frames;
        let q = snap.network.unwrap_or_default();
        timeline.push(LinkSample {
            t_ms: (t * 1000.0) as u64,
            link_kbps: crate::shaped::rate_at(&plan.schedule, t),
            target_kbps: snap.target_kbps,
            sent_kbps: (snap.bytes - last_bytes) as f64 * 8.0 / (t - last_t).max(1e-3) / 1000.0,
            acked_kbps: q.acked_rate_kbps,
            queued_ms: q.queued_media_ms,
            players_stalled,
            lag_ms: crate::cli_link::lag_ms(&ids(&players), t, 0.0, id0, fps),
        });
        last_bytes = snap.bytes;
        last_t = t;
        Ok(())
    })?;
    // A cut that lasts to the window's end: the frames received since it began.
    if capped.is_none() {
        capped = at_cap.as_ref().and_then(|before| since(e2e(), before));
    }
    Ok((timeline, capped))
}

/// Every `every` from `started` until `stop` is set: first each step of `schedule` (`(s,
/// value)`, the first already applied) that is due, then `sample` with the seconds since
/// `started`. The loop a link's rate and a CPU quota share.
fn on_schedule<V: Copy>(
    schedule: &[(f64, V)],
    every: Duration,
    stop: &AtomicBool,
    started: Instant,
    mut step: impl FnMut(V) -> Result<(), RunError>,
    mut sample: impl FnMut(f64) -> Result<(), RunError>,
) -> Result<(), RunError> {
    let mut next_step = 1;
    let mut tick = 1;
    while !stop.load(Ordering::Relaxed) {
        let due = started + every * tick;
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        tick += 1;
        let t = started.elapsed().as_secs_f64();
        while next_step < schedule.len() && schedule[next_step].0 <= t {
            step(schedule[next_step].1)?;
            next_step += 1;
        }
        sample(t)?;
    }
    Ok(())
}

/// Sets its flag when dropped (a sampler's stop, on every way out of a window).
pub(super) struct StopOnDrop<'a>(pub(super) &'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Every [`crate::quota::SAMPLE_MS`] while the window runs: steps the quota on schedule and
/// records the frames sent since the last sample.
pub(super) fn sample_quota(
    live: &streamer::stream::Live,
    quota: &CpuQuota,
    plan: &CpuPlan,
    stop: &AtomicBool,
    started: Instant,
    fps: u32,
) -> Result<QuotaFigures, RunError> {
    let mut timeline = Vec::new();
    let first = live.snapshot();
    let mut last = (0.0, first.packets);
    let every = Duration::from_millis(crate::quota::SAMPLE_MS);
    let step = |cores| {
        quota
            .set_cores(cores)
            .map_err(|e| RunError::Protocol(e.to_string()))
    };
    on_schedule(&plan.schedule, every, stop, started, step, |t| {
        let snap = live.snapshot();
        timeline.push(crate::quota::QuotaSample {
            t_ms: (t * 1000.0) as u64,
            cores: crate::shaped::rate_at(&plan.schedule, t),
            fps: (snap.packets - last.1) as f64 / (t - last.0).max(1e-3),
            behind: snap.drops.falling_behind() - first.drops.falling_behind(),
        });
        last = (t, snap.packets);
        Ok(())
    })?;
    Ok(QuotaFigures::of(plan.schedule.clone(), timeline, fps))
}

/// p50 and p99, ms.
pub(super) type P50P99 = (f64, f64);

/// p50 and p99 (ms) of what a histogram of nanoseconds recorded since `before` (None when
/// nothing was).
fn since(
    now: Option<hdrhistogram::Histogram<u64>>,
    before: &hdrhistogram::Histogram<u64>,
) -> Option<P50P99> {
    let mut h = now?;
    h.subtract(before).ok()?;
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1e6;
    (!h.is_empty()).then(|| (ms(0.5), ms(0.99)))
}
