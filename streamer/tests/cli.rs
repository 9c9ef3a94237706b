//! The `stream-manager` binary as a user runs it.

use std::process::Command;

fn sm(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_stream-manager"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn run_writes_the_requested_frames() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.flv");
    let out = sm(&[
        "run",
        "--output",
        path.to_str().unwrap(),
        "--frames",
        "45",
        "--pacing",
        "max",
        "--set",
        "encoder.preset=veryfast",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("45 frames encoded by libx264"),
        "{stdout}"
    );
    assert!(path.metadata().unwrap().len() > 1000);
}

#[test]
fn bad_values_name_the_field_value_and_range() {
    let out = sm(&[
        "run",
        "--output",
        "null",
        "--set",
        "encoder.pipeline.threads=0",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("encoder.pipeline.threads = 0 (expected 1..=64)"),
        "{err}"
    );
    let out = sm(&["run", "--output", "movie.mp4"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains(".flv"));
}

#[test]
fn config_prints_the_effective_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(&file, "[pipeline]\nmaxQueueSize = 12\n").unwrap();
    let out = sm(&[
        "config",
        "--config",
        file.to_str().unwrap(),
        "--set",
        "rtmp.gop_cache=false",
    ]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("maxQueueSize = 12") && text.contains("gop_cache = false"),
        "{text}"
    );
    assert!(text.contains("preset = \"ultrafast\""), "{text}");
}
