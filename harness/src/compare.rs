//! Side-by-side measurements made in one run, so machine noise hits both sides alike:
//! the in-process encoder against the ffmpeg CLI on the same raw frames, the file source's
//! decoding against the CLI's on the same clip, and the full path with the recorder against
//! the same path with the no-op probe.
//!
//! Runs alternate (in-process, CLI, in-process, CLI, …) and each side's median is compared.
//! The in-process encoder takes the clip from frames loaded in memory once (its zero-copy
//! input); the CLI reads the same pictures from a raw file, which the page cache holds.

use crate::point::{PointJob, RunError, run_in_child};
use crate::results::{CliComparison, DecodeComparison, ProbeOverhead, median};
use crate::scenario::{Length, RunSettings};
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Instant;
use streamer::config::{Preset, SourceConfig, SourceKind, StreamConfig};
use streamer::encode::{Encoder, codec_options};
use streamer::frame::RawPicture;
use streamer::probe::NoProbe;
use streamer::source::{Scene, Source};
use streamer::stream::Pacing;

/// Distinct pictures in the looped clip both sides encode.
const CLIP: u64 = 60;

/// Why a comparison could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    #[error("writing the raw clip: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Encode(#[from] streamer::encode::EncodeError),
    #[error("ffmpeg CLI failed: {0}")]
    Cli(String),
    #[error(transparent)]
    Run(#[from] RunError),
}

/// The ffmpeg CLI arguments that encode `frames` frames of the raw clip at `clip` with `cfg`'s
/// encoder settings to nowhere, timing itself with `-benchmark`.
pub fn cli_args(cfg: &StreamConfig, clip: &Path, frames: u64) -> Vec<String> {
    let v = &cfg.core.viewport;
    let mut args: Vec<String> = [
        "-hide_banner",
        "-nostdin",
        "-nostats",
        "-loglevel",
        "info",
        "-benchmark",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "yuv420p",
    ]
    .map(String::from)
    .to_vec();
    args.extend([
        "-s".into(),
        format!("{}x{}", v.width, v.height),
        "-r".into(),
        v.fps.to_string(),
        "-stream_loop".into(),
        "-1".into(),
        "-i".into(),
        clip.display().to_string(),
        "-frames:v".into(),
        frames.to_string(),
        "-c:v".into(),
        "libx264".into(),
    ]);
    for (k, val) in codec_options(&cfg.encoder, false) {
        args.push(format!("-{k}"));
        args.push(val);
    }
    args.extend(["-f", "null", "-"].map(String::from));
    args
}

/// The looped clip's pictures.
fn clip(cfg: &StreamConfig) -> Vec<RawPicture> {
    let v = &cfg.core.viewport;
    let scene = Scene::new(v.width, v.height);
    (0..CLIP)
        .map(|n| {
            let mut p = RawPicture::new(v.width, v.height);
            scene.draw(n, p.planes());
            p
        })
        .collect()
}

fn in_process_fps(
    cfg: &StreamConfig,
    pictures: &[RawPicture],
    frames: u64,
) -> Result<f64, CompareError> {
    let mut enc = Encoder::open(&streamer::encode::Settings::of(cfg), false)?;
    enc.load(pictures);
    let mut out = 0u64;
    let started = Instant::now();
    for n in 0..frames {
        enc.send_loaded(n as usize, n, &NoProbe, |_| out += 1)?;
    }
    enc.finish(&NoProbe, |_| out += 1)?;
    Ok(out as f64 / started.elapsed().as_secs_f64())
}

fn cli_fps(args: &[String], frames: u64) -> Result<f64, CompareError> {
    let out = Command::new("ffmpeg")
        .args(args)
        .output()
        .map_err(|e| CompareError::Cli(format!("cannot run ffmpeg: {e}")))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(CompareError::Cli(stderr.trim().to_string()));
    }
    // "bench: utime=4.123s stime=0.100s rtime=2.345s"
    let rtime = stderr
        .lines()
        .find_map(|l| l.split("rtime=").nth(1))
        .and_then(|t| t.trim().trim_end_matches('s').parse::<f64>().ok())
        .ok_or_else(|| CompareError::Cli(format!("no `bench: … rtime=` line in: {stderr}")))?;
    Ok(frames as f64 / rtime)
}

/// Encodes the same raw frames in process and with the ffmpeg CLI, `runs` times each,
/// alternating, for each preset; with `stream` (the harness binary), the whole stream at the
/// same settings takes its turn too (a child process, no recorder, no overlay layers so its
/// pictures are the clip's scene), so what the stream costs beyond the bare encoder is
/// measured side by side.
///
/// # Errors
/// The clip cannot be written, the encoder cannot open, ffmpeg fails, or a stream run fails.
pub fn versus_cli(
    stream: Option<&Path>,
    base: &StreamConfig,
    presets: &[Preset],
    frames: u64,
    runs: u32,
    mut progress: impl FnMut(&str),
) -> Result<Vec<CliComparison>, CompareError> {
    let pictures = clip(base);
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("clip.yuv");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path)?);
    for p in &pictures {
        file.write_all(&p.data)?;
    }
    file.flush()?;
    drop(file);
    let mut rows = Vec::new();
    for &preset in presets {
        let mut cfg = base.clone();
        cfg.encoder.preset = preset;
        let args = cli_args(&cfg, &path, frames);
        let (mut ours, mut theirs, mut whole, mut turns) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for run in 0..runs {
            progress(&format!("{preset}: run {}/{runs}", run + 1));
            let bare = in_process_fps(&cfg, &pictures, frames)?;
            ours.push(bare);
            theirs.push(cli_fps(&args, frames)?);
            if let Some(exe) = stream {
                // The scene alone, as in the clip: the same pictures, so the difference is
                // what the stream does around the encoder, not harder content.
                let mut config = cfg.clone();
                config.core.layout.layers = 0;
                let job = PointJob {
                    config,
                    settings: RunSettings {
                        pacing: Pacing::Max,
                        warmup_frames: 30,
                        length: Length::Frames(frames),
                        repetitions: 1,
                    },
                    record: false,
                    players: 0,
                    fidelity: false,
                    profile: None,
                    link: None,
                    quota: None,
                };
                let fps = run_in_child(exe, &job)?.fps;
                whole.push(fps);
                turns.push(fps / bare);
            }
        }
        let pairs: Vec<[f64; 2]> = ours.iter().zip(&theirs).map(|(a, b)| [*a, *b]).collect();
        let stream_pairs: Vec<[f64; 2]> =
            whole.iter().zip(&turns).map(|(w, t)| [*w, w / t]).collect();
        let (a, b) = (median(&mut ours), median(&mut theirs));
        let stream_fps = (!whole.is_empty()).then(|| median(&mut whole));
        let stream_ratio = (!turns.is_empty()).then(|| median(&mut turns));
        rows.push(CliComparison {
            preset: preset.to_string(),
            threads: cfg.encoder.pipeline.threads,
            frames,
            in_process_fps: a,
            cli_fps: b,
            ratio: a / b,
            stream_fps,
            stream_ratio,
            command: format!("ffmpeg {}", args.join(" ")),
            pairs,
            stream_pairs,
        });
    }
    Ok(rows)
}

/// Runs the full path for `cfg` with the recorder and with the no-op probe, `runs` times each,
/// alternating, each run in a fresh child process.
///
/// # Errors
/// A child run failed.
pub fn probe_overhead(
    exe: &Path,
    cfg: &StreamConfig,
    point: &str,
    frames: u64,
    runs: u32,
    mut progress: impl FnMut(&str),
) -> Result<ProbeOverhead, CompareError> {
    let settings = RunSettings {
        pacing: Pacing::Max,
        warmup_frames: 30,
        length: Length::Frames(frames),
        repetitions: 1,
    };
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for run in 0..runs {
        progress(&format!("probe overhead: run {}/{runs}", run + 1));
        for (record, into) in [(true, &mut with), (false, &mut without)] {
            let job = PointJob {
                config: cfg.clone(),
                settings,
                record,
                players: 0,
                fidelity: false,
                profile: None,
                link: None,
                quota: None,
            };
            into.push(run_in_child(exe, &job)?.fps);
        }
    }
    // Each pair ran back to back, so its ratio sees the same machine load on both sides: the
    // median of the pairs' ratios is steadier than the ratio of the two medians.
    let pairs: Vec<[f64; 2]> = with.iter().zip(&without).map(|(a, b)| [*a, *b]).collect();
    let mut ratios: Vec<f64> = pairs.iter().map(|[a, b]| a / b).collect();
    Ok(ProbeOverhead {
        point: point.to_string(),
        runs,
        recorder_fps: median(&mut with),
        noop_fps: median(&mut without),
        ratio: median(&mut ratios),
        pairs,
    })
}

/// The file source decoding `frames` frames of `clip` (at its own size: no scaling) against
/// `ffmpeg -threads 1 -stream_loop -1 -i clip -frames:v N -an -f null -`, one decoding thread
/// each, `runs` times each, alternating; CPU per frame (ours: the thread's CPU clock around
/// the source's decode stage; the CLI's: its `-benchmark` user + system time).
///
/// # Errors
/// The clip cannot be opened or decoded, or ffmpeg fails.
pub fn decode_versus_cli(
    clip: &Path,
    frames: u64,
    runs: u32,
    mut progress: impl FnMut(&str),
) -> Result<DecodeComparison, CompareError> {
    let cfg = SourceConfig {
        kind: SourceKind::File,
        path: clip.display().to_string(),
        threads: 1,
        ..SourceConfig::default()
    };
    let probe = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries"])
        .args(["stream=width,height", "-of", "csv=p=0"])
        .arg(clip)
        .output()
        .map_err(|e| CompareError::Cli(format!("ffprobe: {e}")))?;
    let size = String::from_utf8_lossy(&probe.stdout);
    let (w, h) = size
        .trim()
        .split_once(',')
        .and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)))
        .ok_or_else(|| CompareError::Cli(format!("ffprobe gave no size: {size:?}")))?;
    let args: Vec<String> = [
        "-hide_banner",
        "-nostdin",
        "-benchmark",
        "-threads",
        "1",
        "-stream_loop",
        "-1",
        "-i",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([clip.display().to_string()])
    .chain(
        ["-frames:v", &frames.to_string(), "-an", "-f", "null", "-"]
            .iter()
            .map(|s| s.to_string()),
    )
    .collect();
    let mut pairs = Vec::new();
    for run in 0..runs {
        progress(&format!("decoding the clip: run {}/{runs}", run + 1));
        let software = streamer::config::HwAccelConfig::default();
        let mut source = Source::open(&cfg, &software, (w, h), 25, |_| {
            unreachable!("a file source")
        })
        .map_err(|e| CompareError::Cli(e.to_string()))?;
        let start = streamer::clock::thread_cpu_ns();
        for id in 0..frames {
            source
                .decode(id)
                .map_err(|e| CompareError::Cli(e.to_string()))?;
        }
        let ours = (streamer::clock::thread_cpu_ns() - start) as f64 / 1e6 / frames as f64;
        let out = Command::new("ffmpeg")
            .args(&args)
            .output()
            .map_err(|e| CompareError::Cli(e.to_string()))?;
        let err = String::from_utf8_lossy(&out.stderr);
        let seconds = |key: &str| {
            err.split(key)
                .nth(1)
                .and_then(|r| r.split('s').next())
                .and_then(|v| v.parse::<f64>().ok())
        };
        let (Some(user), Some(system)) = (seconds("utime="), seconds("stime=")) else {
            return Err(CompareError::Cli(format!("no -benchmark times: {err}")));
        };
        pairs.push([ours, (user + system) * 1000.0 / frames as f64]);
    }
    let side = |i: usize| median(&mut pairs.iter().map(|p| p[i]).collect::<Vec<_>>());
    Ok(DecodeComparison {
        clip: clip
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
        frames,
        ours_ms: side(0),
        cli_ms: side(1),
        ratio: crate::stats::paired_ratio(&pairs),
        interval: crate::stats::ratio_interval(&pairs),
        command: format!("ffmpeg {}", args.join(" ")),
        pairs,
    })
}
