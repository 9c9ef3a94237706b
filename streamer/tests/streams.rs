//! Many streams in one process: each to its own key, and one stream's failure ends that
//! stream only.

mod common;

use std::process::Command;
use streamer::config::{RtmpConfig, SourceKind};
use streamer::output::Output;
use streamer::probe::NoProbe;
use streamer::stream::{Pacing, StreamError};
use streamer::streams::{StreamSpec, key, run_all};

#[test]
fn a_bad_source_or_a_refused_publish_ends_that_stream_only() {
    let rtmp = RtmpConfig {
        publish_keys: vec![key(0), key(1), key(3)],
        ..RtmpConfig::default()
    };
    let server = common::server(&rtmp);
    let specs: Vec<StreamSpec> = (0..4)
        .map(|i| {
            let mut config = common::small();
            if i == 1 {
                config.source.kind = SourceKind::File;
                config.source.path = "/nonexistent/clip.mp4".into();
            }
            StreamSpec {
                config,
                output: Output::Rtmp(common::url(&server, &key(i)).parse().unwrap()),
            }
        })
        .collect();
    let probes = [NoProbe, NoProbe, NoProbe, NoProbe];
    let outcomes = run_all(&specs, 45, Pacing::Max, &probes, |_, _| {});
    for i in [0, 3] {
        let (summary, _) = outcomes[i]
            .as_ref()
            .unwrap_or_else(|e| panic!("{}: {e}", key(i)));
        assert_eq!(summary.counters.packets, 45, "{}", key(i));
        assert_eq!(summary.sink.frames_sent, 45, "{}", key(i));
    }
    // The server measured each stream as it arrived; the refused one never published.
    let ingest = server.stats().ingest.lock().unwrap().clone();
    for i in [0, 3] {
        let got = ingest[&("live".to_string(), key(i))];
        assert_eq!((got.frames, got.publishes), (45, 1), "{}: {got:?}", key(i));
    }
    assert!(!ingest.contains_key(&("live".to_string(), key(2))));
    match &outcomes[1] {
        Err(e @ StreamError::Source(_)) => {
            assert!(e.to_string().contains("/nonexistent/clip.mp4"), "{e}")
        }
        other => panic!("s1: {:?}", other.as_ref().map(|_| ())),
    }
    match &outcomes[2] {
        Err(e @ StreamError::Output(_)) => assert!(e.to_string().contains("s2"), "{e}"),
        other => panic!("s2: {:?}", other.as_ref().map(|_| ())),
    }
}

#[test]
fn run_streams_four_streams_to_four_players_each() {
    let out = Command::new(env!("CARGO_BIN_EXE_stream-manager"))
        .args([
            "run",
            "--streams",
            "4",
            "--players",
            "4",
            "--frames",
            "45",
            "--set",
            "core.viewport.width=640",
            "--set",
            "core.viewport.height=360",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for i in 0..4 {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&format!("s{i}: ")))
            .unwrap_or_else(|| panic!("no line for s{i}: {stdout}"));
        assert!(line.contains("45 frames encoded"), "{line}");
        assert!(line.contains("4 players received 45–45 frames"), "{line}");
    }
    assert!(stdout.contains("4 streams in"), "{stdout}");
}

#[test]
fn a_config_file_gives_each_stream_its_own_settings() {
    let dir = std::env::temp_dir().join(format!("each-stream-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("streams.toml");
    std::fs::write(
        &file,
        "[core.viewport]\nwidth = 320\nheight = 180\n\n[streams.s1]\nencoder.preset = \"veryfast\"\ncore.viewport = { width = 640, height = 360 }\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_stream-manager"))
        .args(["run", "--streams", "2", "--frames", "20", "--pacing", "max"])
        .arg("--config")
        .arg(&file)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("s0: 20 frames of 320x180@30 (ultrafast")
            && stderr.contains("s1: 20 frames of 640x360@30 (veryfast"),
        "{stderr}"
    );
}
