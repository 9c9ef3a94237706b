//! The encoder path against the real ffmpeg CLI: what we write, ffprobe reads and ffmpeg decodes.

use std::path::Path;
use std::process::Command;
use streamer::config::{HwDevice, Preset, StreamConfig};
use streamer::encode::{Encoder, Settings, hw};
use streamer::output::Output;
use streamer::probe::NoProbe;
use streamer::stream::{Pacing, Stream};

const FRAMES: u64 = 60;
const GOP: u32 = 20;

fn tool(name: &str, args: &[&str]) -> String {
    let out = Command::new(name).args(args).output().unwrap_or_else(|e| {
        panic!("{name} is required for these tests (cargo xtask test installs it): {e}")
    });
    assert!(
        out.status.success(),
        "{name} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

fn config(preset: Preset) -> StreamConfig {
    let mut cfg = StreamConfig::default();
    cfg.encoder.preset = preset;
    cfg.encoder.gop = GOP;
    // Lookahead and B-frames on, so flushing and closed GOPs are really exercised.
    cfg.encoder.zerolatency = false;
    cfg
}

fn encode_flv(cfg: &StreamConfig, path: &Path) {
    let mut stream = Stream::open(cfg, &Output::Flv(path.to_path_buf()), &NoProbe).unwrap();
    stream.run(FRAMES, Pacing::Max).unwrap();
    let summary = stream.finish().unwrap();
    assert_eq!(summary.counters.packets, FRAMES);
    assert_eq!(
        summary.pool_copies, 0,
        "zero copy must not copy pooled frames"
    );
}

#[test]
fn every_preset_writes_flv_that_ffprobe_reads_and_ffmpeg_decodes() {
    let dir = tempfile::tempdir().unwrap();
    for preset in Preset::ALL {
        let path = dir.path().join(format!("{preset}.flv"));
        encode_flv(&config(preset), &path);
        let file = path.to_str().unwrap();
        let stream = tool(
            "ffprobe",
            &[
                "-v",
                "error",
                "-select_streams",
                "v:0",
                "-count_frames",
                "-show_entries",
                "stream=codec_name,width,height,avg_frame_rate,nb_read_frames",
                "-of",
                "default=noprint_wrappers=1",
                file,
            ],
        );
        for want in [
            "codec_name=h264",
            "width=1280",
            "height=720",
            "avg_frame_rate=30/1",
            &format!("nb_read_frames={FRAMES}"),
        ] {
            assert!(
                stream.lines().any(|l| l == want),
                "{preset}: no {want} in\n{stream}"
            );
        }
        let decode = Command::new("ffmpeg")
            .args(["-v", "error", "-nostdin", "-i", file, "-f", "null", "-"])
            .output()
            .unwrap();
        assert!(decode.status.success(), "{preset}: ffmpeg failed to decode");
        assert!(
            decode.stderr.is_empty(),
            "{preset}: decode errors: {}",
            String::from_utf8_lossy(&decode.stderr)
        );
        // Keyframes exactly every GOP frames, found by presentation time (which the muxer
        // shifts by the B-frame delay, so count from the earliest).
        let packets = tool(
            "ffprobe",
            &[
                "-v",
                "error",
                "-select_streams",
                "v:0",
                "-show_entries",
                "packet=pts,flags",
                "-of",
                "csv=p=0",
                file,
            ],
        );
        let rows: Vec<(f64, bool)> = packets
            .lines()
            .map(|l| {
                let (pts, flags) = l.split_once(',').unwrap();
                (pts.parse().unwrap(), flags.starts_with('K'))
            })
            .collect();
        let first = rows.iter().map(|r| r.0).fold(f64::INFINITY, f64::min);
        let mut keys: Vec<u64> = rows
            .iter()
            .filter(|r| r.1)
            .map(|r| ((r.0 - first) * 30.0 / 1000.0).round() as u64)
            .collect();
        keys.sort_unstable();
        let expected: Vec<u64> = (0..FRAMES).step_by(GOP as usize).collect();
        assert_eq!(keys, expected, "{preset}: keyframes");
    }
}

/// NAL unit types in an Annex B packet (start-code delimited, as libx264 emits them).
fn nal_types(data: &[u8]) -> Vec<u8> {
    let mut types = Vec::new();
    let mut i = 0;
    while i + 3 < data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            types.push(data[i + 3] & 0x1f);
            i += 3;
        } else {
            i += 1;
        }
    }
    types
}

#[test]
fn every_gop_is_closed_each_keyframe_is_an_idr() {
    // medium has B-frames and lookahead: an open GOP would show as keyframes without IDR slices.
    let cfg = config(Preset::Medium);
    let mut enc = Encoder::open(&Settings::of(&cfg), true).unwrap();
    let mut seen = Vec::new();
    let scene = streamer::source::Scene::new(1280, 720);
    let mut record = |p: streamer::encode::Packet<'_>| {
        seen.push((p.frame, p.is_key(), nal_types(p.data())));
    };
    for n in 0..FRAMES {
        scene.draw(n, enc.pooled_planes());
        enc.send_pooled(n, &NoProbe, &mut record).unwrap();
    }
    enc.finish(&NoProbe, &mut record).unwrap();
    assert_eq!(seen.len() as u64, FRAMES);
    for (frame, key, nals) in &seen {
        assert_eq!(*key, frame % u64::from(GOP) == 0, "frame {frame} key flag");
        assert_eq!(
            nals.contains(&5),
            *key,
            "frame {frame}: IDR slices {nals:?}"
        );
    }
}

#[test]
fn unavailable_hardware_fails_clearly_or_falls_back() {
    let mut cfg = StreamConfig::default();
    cfg.encoder.hwaccel.enabled = true;
    let mut checked = 0;
    for (device, probe) in hw::survey(&Settings::of(&cfg)) {
        if probe.is_ok() {
            continue; // this machine has the device: nothing unavailable to test for it
        }
        cfg.encoder.hwaccel.device = Some(device);
        cfg.encoder.hwaccel.fallback = false;
        let err = Encoder::open(&Settings::of(&cfg), false)
            .err()
            .expect("unavailable device must fail");
        let msg = err.to_string();
        assert!(
            msg.contains(device.as_str()) && msg.contains(hw::encoder_name(device)),
            "{msg}"
        );
        assert!(msg.contains("unavailable: "), "{msg}");
        cfg.encoder.hwaccel.fallback = true;
        let enc = Encoder::open(&Settings::of(&cfg), false).unwrap();
        assert_eq!(enc.name(), "libx264");
        assert!(
            enc.notes()
                .iter()
                .any(|n| n.contains(device.as_str()) && n.contains("fell back"))
        );
        checked += 1;
    }
    // Apple's and AMD's encoders are never in a Linux FFmpeg build: at least these are checked.
    assert!(checked >= 2, "only {checked} unavailable devices");
    assert!(
        hw::survey(&Settings::of(&cfg))
            .iter()
            .any(|(d, r)| *d == HwDevice::Videotoolbox && r.is_err())
    );
}

/// Zero copy hands the encoder the pooled frame itself, the other path a copy: the decoded
/// pictures must be the same, frame by frame (ffmpeg's per-frame CRC of each decoded picture).
#[test]
fn copy_and_zero_copy_encode_identical_streams() {
    let dir = tempfile::tempdir().unwrap();
    let mut decoded = Vec::new();
    for zero_copy in [true, false] {
        let mut cfg = config(Preset::Ultrafast);
        cfg.encoder.pipeline.zero_copy = zero_copy;
        cfg.encoder.pipeline.threads = 1;
        let path = dir.path().join(format!("zero-copy-{zero_copy}.flv"));
        encode_flv(&cfg, &path);
        let crcs = tool(
            "ffmpeg",
            &[
                "-v",
                "error",
                "-i",
                path.to_str().unwrap(),
                "-map",
                "0:v",
                "-f",
                "framecrc",
                "-",
            ],
        );
        // `stream, dts, pts, duration, size, crc` per frame: the picture's CRC is the last.
        let frames: Vec<String> = crcs
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| l.rsplit(',').next().unwrap_or_default().trim().to_string())
            .collect();
        assert_eq!(frames.len() as u64, FRAMES, "{crcs}");
        decoded.push(frames);
    }
    assert_eq!(
        decoded[0], decoded[1],
        "same pictures, same settings: the same decoded frames"
    );
}

#[test]
fn bitrate_mode_holds_the_target_and_cpu_flags_reach_x264() {
    let mut cfg = config(Preset::Veryfast);
    cfg.encoder.rate_control.mode = streamer::config::RateMode::Bitrate;
    cfg.encoder.rate_control.bitrate_kbps = 800;
    cfg.encoder.rate_control.vbv_buffer_kbits = 800;
    cfg.encoder.pipeline.cpu_flags = Some(vec!["SSE2".into()]);
    let mut stream = Stream::open(&cfg, &Output::Null, &NoProbe).unwrap();
    stream.run(90, Pacing::Max).unwrap();
    let summary = stream.finish().unwrap();
    let kbps = summary.bitrate_kbps;
    // CRF 23 gives several Mbit/s on this scene; VBV at 800 kbit/s must hold it near 800.
    assert!(
        (400.0..=1200.0).contains(&kbps),
        "bitrate {kbps:.0} kbit/s for a target of 800"
    );
    // libx264 says which CPU features it uses: with cpuFlags = ["SSE2"], SSE2 and nothing
    // newer, where on its own it would use what the processor has (more than SSE2 on any
    // x86-64 of this century).
    let caps = |notes: &[String]| {
        notes
            .iter()
            .find_map(|n| n.strip_prefix("libx264 uses cpu capabilities: "))
            .map(String::from)
            .unwrap_or_else(|| panic!("no cpu capabilities in the notes: {notes:?}"))
    };
    let flagged = caps(&summary.notes);
    assert!(flagged.contains("SSE2"), "{flagged}");
    assert!(
        !["SSE3", "SSSE3", "SSE4", "AVX"]
            .iter()
            .any(|newer| flagged.split_whitespace().any(|f| f.starts_with(newer))),
        "{flagged}"
    );
}
