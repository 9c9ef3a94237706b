//! A file as the stream's source: the real clip (`cargo xtask clip` fetches it; `cargo xtask
//! test` hands its path over in `STREAM_MANAGER_CLIP`) decoded, scaled, looped and encoded,
//! checked against the ffmpeg CLI's own decode of the same file.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;
use streamer::config::{Preset, RtmpConfig, SourceKind, StreamConfig};
use streamer::output::Output;
use streamer::probe::NoProbe;
use streamer::stream::{Pacing, Stream, StreamError};

/// The clip's path. Its absence fails the test (never a skip): `cargo xtask test` fetches it.
fn clip() -> PathBuf {
    let path = std::env::var_os("STREAM_MANAGER_CLIP")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| {
                PathBuf::from(h).join(".cache/stream-manager-bench/clips/bigbuckbunny-720p25.mp4")
            })
        })
        .expect("STREAM_MANAGER_CLIP or HOME is set");
    assert!(
        path.is_file(),
        "the test clip {} is missing: run `cargo xtask clip` (cargo xtask test fetches it)",
        path.display()
    );
    path
}

fn from_file(width: u32, height: u32, layers: u32) -> StreamConfig {
    let mut cfg = StreamConfig::default();
    cfg.source.kind = SourceKind::File;
    cfg.source.path = clip().display().to_string();
    cfg.core.viewport.width = width;
    cfg.core.viewport.height = height;
    cfg.core.layout.layers = layers;
    cfg.encoder.preset = Preset::Ultrafast;
    cfg
}

/// PSNR (dB, all planes) of `encoded` against the clip's first frames, by the ffmpeg CLI.
fn psnr_against_clip(encoded: &std::path::Path, width: u32, height: u32) -> f64 {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostats", "-i"])
        .arg(encoded)
        .arg("-i")
        .arg(clip())
        .args([
            "-filter_complex",
            &format!("[1:v]scale={width}:{height}:flags=bilinear[ref];[0:v][ref]psnr=shortest=1"),
            "-f",
            "null",
            "-",
        ])
        .output()
        .expect("ffmpeg runs (cargo xtask test installs it)");
    let err = String::from_utf8_lossy(&out.stderr);
    let average = err
        .split("average:")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|v| v.parse().ok());
    average.unwrap_or_else(|| panic!("no PSNR in ffmpeg's output: {err}"))
}

#[test]
fn a_files_pictures_are_what_the_stream_encodes_at_the_files_own_rate() {
    let dir = tempfile::tempdir().unwrap();
    let flv = dir.path().join("out.flv");
    let cfg = from_file(1280, 720, 0);
    let mut stream = Stream::open(&cfg, &Output::Flv(flv.clone()), &NoProbe).unwrap();
    assert_eq!(stream.config().core.viewport.fps, 25, "the clip's own rate");
    stream.run(100, Pacing::Max).unwrap();
    let summary = stream.finish().unwrap();
    assert_eq!(summary.counters.captured, 100);
    assert_eq!(summary.counters.dropped, 0);
    assert!(
        summary
            .notes
            .iter()
            .any(|n| n.contains("at its own 25 fps")),
        "{:?}",
        summary.notes
    );
    let psnr = psnr_against_clip(&flv, 1280, 720);
    assert!(
        psnr > 25.0,
        "PSNR {psnr} dB against the clip: not its pictures"
    );
}

#[test]
fn a_file_is_scaled_to_the_viewport_and_played_again_when_it_ends() {
    let dir = tempfile::tempdir().unwrap();
    let flv = dir.path().join("out.flv");
    // 300 frames of a 132-frame clip: twice through and part of a third.
    let cfg = from_file(640, 360, 0);
    let mut stream = Stream::open(&cfg, &Output::Flv(flv.clone()), &NoProbe).unwrap();
    stream.run(300, Pacing::Max).unwrap();
    let stats = stream.source_stats();
    assert_eq!(stats.decoded, 300);
    assert_eq!(stats.loops, 2);
    let summary = stream.finish().unwrap();
    assert_eq!(summary.counters.captured, 300);
    assert!(
        summary
            .notes
            .iter()
            .any(|n| n.contains("scaled to the viewport")),
        "{:?}",
        summary.notes
    );
    // The first pass is the clip's, scaled.
    let psnr = psnr_against_clip(&flv, 640, 360);
    assert!(psnr > 25.0, "PSNR {psnr} dB against the scaled clip");
}

#[test]
fn the_layers_are_drawn_over_the_files_picture() {
    let dir = tempfile::tempdir().unwrap();
    let (bare, layered) = (dir.path().join("bare.flv"), dir.path().join("layered.flv"));
    for (path, layers) in [(&bare, 0), (&layered, 8)] {
        let cfg = from_file(1280, 720, layers);
        let mut stream = Stream::open(&cfg, &Output::Flv(path.clone()), &NoProbe).unwrap();
        stream.run(25, Pacing::Max).unwrap();
        stream.finish().unwrap();
    }
    let (a, b) = (
        psnr_against_clip(&bare, 1280, 720),
        psnr_against_clip(&layered, 1280, 720),
    );
    assert!(
        b < a - 3.0,
        "with 8 layers {b} dB, without {a} dB: the layers are not over the picture"
    );
}

#[test]
fn a_missing_or_undecodable_file_is_named_in_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "not a video").unwrap();
    let missing = dir.path().join("absent.mp4");
    for (path, says) in [(&missing, "no such file"), (&text, "cannot read it")] {
        let mut cfg = from_file(640, 360, 0);
        cfg.source.path = path.display().to_string();
        let err = match Stream::open(&cfg, &Output::Null, &NoProbe) {
            Err(e @ StreamError::Source(_)) => e.to_string(),
            Err(e) => panic!("{path:?}: another error: {e}"),
            Ok(_) => panic!("{path:?} opened"),
        };
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains(says), "{err}");
    }
    let mut cfg = from_file(640, 360, 0);
    cfg.source.path.clear();
    let err = cfg.validate().unwrap_err().to_string();
    assert!(err.contains("source.path = (unset)"), "{err}");
}

/// `ffprobe`'s `codec_type` and packet count for each stream of `path`.
fn streams_of(path: &std::path::Path) -> Vec<(String, usize)> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_packets",
            "-show_entries",
            "stream=codec_type,nb_read_packets",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .expect("ffprobe runs (cargo xtask test installs it)");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (kind, n) = l.trim().split_once(',')?;
            Some((kind.to_string(), n.parse().ok()?))
        })
        .collect()
}

#[test]
fn a_file_goes_out_with_its_sound_to_the_server_and_to_a_file() {
    // To an FLV file: a video and an audio stream.
    let dir = tempfile::tempdir().unwrap();
    let flv = dir.path().join("out.flv");
    let cfg = from_file(1280, 720, 4);
    let mut stream = Stream::open(&cfg, &Output::Flv(flv.clone()), &NoProbe).unwrap();
    stream.run(75, Pacing::Max).unwrap();
    let summary = stream.finish().unwrap();
    assert!(
        summary
            .notes
            .iter()
            .any(|n| n.contains("AAC 48000 Hz, 6 channels")),
        "{:?}",
        summary.notes
    );
    let streams = streams_of(&flv);
    let audio = streams.iter().find(|(k, _)| k == "audio").map(|s| s.1);
    // 3 s of 48 kHz AAC (1024 samples a packet): about 140 packets.
    assert!(audio.is_some_and(|n| n > 100), "{streams:?}");

    // Through the embedded server, recorded by the ffmpeg CLI as a player.
    let server = common::server(&RtmpConfig::default());
    let url = common::url(&server, "clip");
    let publisher = {
        let url = url.clone();
        std::thread::spawn(move || common::publish(&cfg, &url, 100, Pacing::Realtime))
    };
    common::wait_for("the publisher", Duration::from_secs(10), || {
        server
            .stats()
            .connections_open
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0
    });
    let recording = dir.path().join("recording.flv");
    let recorder = common::Proc::spawn(
        Command::new("ffmpeg")
            .args(["-v", "error", "-nostdin", "-i", &url, "-c", "copy"])
            .arg(&recording),
    );
    publisher.join().unwrap();
    let (_, err) = recorder.finish(Duration::from_secs(20));
    let streams = streams_of(&recording);
    let count = |kind: &str| streams.iter().find(|(k, _)| k == kind).map_or(0, |s| s.1);
    assert!(count("video") > 25, "{streams:?} {err}");
    assert!(count("audio") > 25, "{streams:?} {err}");
}

#[test]
fn hardware_decoding_asked_for_says_where_it_decodes_and_the_stream_runs_either_way() {
    use streamer::config::HwDevice;
    // Each family: decoded on it where its device opens here, or in software with the reason
    // (this machine has no GPU: every device fails to open, or has no decoding device).
    for device in [HwDevice::Vaapi, HwDevice::Nvidia, HwDevice::Amf] {
        let mut cfg = from_file(640, 360, 1);
        cfg.encoder.hwaccel.decode = Some(true);
        cfg.encoder.hwaccel.scaling = Some(true);
        cfg.encoder.hwaccel.device = Some(device);
        let mut stream = Stream::open(&cfg, &Output::Null, &NoProbe).unwrap();
        stream.run(30, Pacing::Max).unwrap();
        let summary = stream.finish().unwrap();
        assert_eq!(summary.counters.captured, 30);
        let decode = summary
            .notes
            .iter()
            .find(|n| n.starts_with("encoder.hwaccel.decode"))
            .unwrap_or_else(|| panic!("{device}: {:?}", summary.notes));
        assert!(
            decode.contains(&format!("decoding on {device}"))
                || decode.contains("decoding in software (libavcodec)"),
            "{decode}"
        );
        if device == HwDevice::Amf {
            assert!(decode.contains("amf has no decoding device"), "{decode}");
        }
        assert!(
            summary
                .notes
                .iter()
                .any(|n| n.starts_with("encoder.hwaccel.scaling = true: scaled in software")),
            "{:?}",
            summary.notes
        );
    }
    // Not named: said so.
    let mut cfg = from_file(640, 360, 0);
    cfg.encoder.hwaccel.decode = Some(true);
    let mut stream = Stream::open(&cfg, &Output::Null, &NoProbe).unwrap();
    stream.run(5, Pacing::Max).unwrap();
    let notes = stream.finish().unwrap().notes;
    assert!(
        notes
            .iter()
            .any(|n| n.contains("no device named (encoder.hwaccel.device)")),
        "{notes:?}"
    );
}
