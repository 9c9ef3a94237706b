//! The ffmpeg CLI through the same shaped link: a publisher that does not adapt, side by side
//! with the stream's points in the same run (`[link]` scenarios).
//!
//! `ffmpeg -re` encodes a test pattern with libx264 at the scenario's resolution, frame rate,
//! preset, GOP and fixed bitrate (the same rate-control buffer) and publishes it to our server
//! in a namespace of its own, through the same schedule. Its frames carry no capture time, so
//! the figure is how far behind real time the players fall: at each sample, the wall time
//! since the window began less the media time received since (the latest frame's presentation
//! time, median over players). The stream's points get the same figure
//! ([`crate::shaped::LinkSample::lag_ms`]).

use crate::scenario::{LinkPlan, RunSettings};
use crate::shaped::{SAMPLE_MS, ShapeError, ShapedLink, rate_at};
use serde::{Deserialize, Serialize};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use streamer::config::StreamConfig;
use streamer::probe::NoProbe;
use streamer::rtmp::LocalRelay;

/// The ffmpeg CLI's run through the link.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CliLinkRun {
    /// What published, e.g. `ffmpeg CLI, libx264 ultrafast, fixed 4000 kbit/s`.
    pub publisher: String,
    /// `(ms into the window, link kbit/s, lag behind real time ms)` every sample.
    pub timeline: Vec<(u64, u32, f64)>,
    /// The most the players fell behind real time over the window, ms.
    pub lag_max_ms: f64,
    /// … when the link was lifted again (None: no lift in the window).
    pub lag_at_lift_ms: Option<f64>,
    /// Each player's stall ratio (as for the stream's points).
    pub stall_ratio: Vec<f64>,
    /// Frames each player received over the window.
    pub frames: Vec<u64>,
}

/// Why the arm could not run.
#[derive(Debug, thiserror::Error)]
pub enum CliLinkError {
    #[error(transparent)]
    Shape(#[from] ShapeError),
    #[error("relay: {0}")]
    Relay(String),
    #[error("ffmpeg: {0}")]
    Ffmpeg(String),
}

/// Kills the child on every exit path.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Lag behind real time now, ms: wall time since `(t0, id0)` less the media time received
/// since, from the players' latest frame ids (median).
pub fn lag_ms(ids: &[Option<u64>], t_s: f64, t0_s: f64, id0: f64, fps: u32) -> Option<f64> {
    let id = median_id(ids)?;
    Some(((t_s - t0_s) - (id - id0) / f64::from(fps.max(1))) * 1000.0)
}

/// The median of the players' latest frame ids (None before any frame).
pub fn median_id(ids: &[Option<u64>]) -> Option<f64> {
    let mut v: Vec<u64> = ids.iter().flatten().copied().collect();
    v.sort_unstable();
    v.get(v.len() / 2).map(|&i| i as f64)
}

/// Runs the ffmpeg CLI through `plan`'s link with `players` players, warm-up and window as
/// `settings` says, on a thread of its own (the namespace is entered by that thread only).
///
/// # Errors
/// The namespace, the relay or ffmpeg failed.
pub fn run(
    base: &StreamConfig,
    plan: &LinkPlan,
    players: u32,
    settings: &RunSettings,
) -> Result<CliLinkRun, CliLinkError> {
    let (base, plan, settings) = (base.clone(), plan.clone(), *settings);
    std::thread::spawn(move || run_here(&base, &plan, players, &settings))
        .join()
        .map_err(|_| CliLinkError::Ffmpeg("the CLI arm panicked".into()))?
}

/// The ffmpeg CLI publishing `testsrc2` at the stream's size, rate, preset, GOP and fixed
/// bitrate (its VBV as configured) for `seconds` to `url`.
fn ffmpeg_args(base: &StreamConfig, fps: u32, seconds: f64, url: &str) -> Vec<String> {
    let v = &base.core.viewport;
    let rc = &base.encoder.rate_control;
    let kbps = rc.bitrate_kbps;
    [
        "-hide_banner",
        "-loglevel",
        "error",
        "-re",
        "-f",
        "lavfi",
        "-i",
        &format!("testsrc2=size={}x{}:rate={fps}", v.width, v.height),
        "-t",
        &format!("{seconds:.1}"),
        "-c:v",
        "libx264",
        "-preset",
        base.encoder.preset.as_str(),
        "-tune",
        "zerolatency",
        "-pix_fmt",
        "yuv420p",
        "-g",
        &base.encoder.gop.to_string(),
        "-b:v",
        &format!("{kbps}k"),
        "-maxrate",
        &format!("{kbps}k"),
        "-bufsize",
        &format!("{}k", rc.vbv_buffer_kbits),
        "-f",
        "flv",
        url,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Waits (at most 15 s) until a frame has reached the players.
fn first_frames(relay: &LocalRelay, child: &mut Reaped) -> Result<(), CliLinkError> {
    let deadline = Instant::now() + Duration::from_secs(15);
    while relay.reports().iter().all(|r| r.frames == 0) {
        if Instant::now() > deadline {
            return Err(CliLinkError::Ffmpeg(
                "no frame reached the players within 15 s".into(),
            ));
        }
        if let Ok(Some(status)) = child.0.try_wait() {
            return Err(CliLinkError::Ffmpeg(format!(
                "exited with {status} before publishing"
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

fn run_here(
    base: &StreamConfig,
    plan: &LinkPlan,
    players: u32,
    settings: &RunSettings,
) -> Result<CliLinkRun, CliLinkError> {
    let v = &base.core.viewport;
    let fps = v.fps.max(1);
    let link = ShapedLink::create("cli")?;
    link.enter()?;
    let relay = LocalRelay::start(&base.rtmp, players.max(1) as usize, fps, Arc::new(NoProbe))
        .map_err(|e| CliLinkError::Relay(e.to_string()))?;
    link.shape_port(relay.url.port, plan.schedule[0].1)?;
    let rc = &base.encoder.rate_control;
    let kbps = rc.bitrate_kbps;
    let preset = base.encoder.preset.as_str();
    let warmup_s = settings.warmup_frames as f64 / f64::from(fps);
    let window_s = settings.length.frames(fps) as f64 / f64::from(fps);
    let args = ffmpeg_args(base, fps, warmup_s + window_s + 2.0, &relay.url.to_string());
    let child = Command::new("ffmpeg")
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| CliLinkError::Ffmpeg(format!("cannot run ffmpeg: {e}")))?;
    let mut child = Reaped(child);
    // The warm-up: until the players have frames, then the configured warm-up time.
    first_frames(&relay, &mut child)?;
    std::thread::sleep(Duration::from_secs_f64(warmup_s));
    let before = relay.reports();
    let started = Instant::now();
    let id0 = median_id(&before.iter().map(|r| r.last_frame_id).collect::<Vec<_>>()).unwrap_or(0.0);
    let lift = crate::shaped::cap_and_lift(&plan.schedule).and_then(|(_, l)| l);
    let mut timeline = Vec::new();
    let mut next_step = 1;
    let mut tick = 1;
    let mut lag_at_lift = None;
    loop {
        let due = started + Duration::from_millis(tick * SAMPLE_MS);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        tick += 1;
        let t = started.elapsed().as_secs_f64();
        if t > window_s {
            break;
        }
        while next_step < plan.schedule.len() && plan.schedule[next_step].0 <= t {
            link.set_rate(plan.schedule[next_step].1)?;
            next_step += 1;
        }
        let ids: Vec<Option<u64>> = relay.reports().iter().map(|r| r.last_frame_id).collect();
        let Some(lag) = lag_ms(&ids, t, 0.0, id0, fps) else {
            continue;
        };
        if lift.is_some_and(|l| t >= l) && lag_at_lift.is_none() {
            lag_at_lift = Some(lag);
        }
        timeline.push(((t * 1000.0) as u64, rate_at(&plan.schedule, t), lag));
    }
    let window_ms = started.elapsed().as_secs_f64() * 1000.0;
    let after = relay.reports();
    drop(child);
    relay.stop();
    Ok(CliLinkRun {
        publisher: format!("ffmpeg CLI, libx264 {preset}, fixed {kbps} kbit/s"),
        lag_max_ms: timeline.iter().map(|s| s.2).fold(0.0, f64::max),
        lag_at_lift_ms: lag_at_lift,
        timeline,
        stall_ratio: after
            .iter()
            .zip(&before)
            .map(|(a, b)| a.stalled.saturating_sub(b.stalled).as_secs_f64() * 1000.0 / window_ms)
            .collect(),
        frames: after
            .iter()
            .zip(&before)
            .map(|(a, b)| a.frames - b.frames)
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_is_wall_time_less_media_time_received() {
        // 2 s after the start, the median player is 45 frames (1.5 s at 30 fps) further on.
        let ids = [Some(145), Some(150), None, Some(160)];
        assert_eq!(median_id(&ids), Some(150.0));
        let lag = lag_ms(&ids, 2.0, 0.0, 105.0, 30).unwrap();
        assert!((lag - 500.0).abs() < 1e-9, "{lag}");
        assert_eq!(lag_ms(&[None], 1.0, 0.0, 0.0, 30), None);
    }
}
