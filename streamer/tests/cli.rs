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

#[test]
fn run_diagnoses_its_own_drops_and_stays_quiet_when_healthy() {
    // PNG at 1080p on one worker takes far longer than a 60 fps frame interval anywhere.
    let out = sm(&[
        "run",
        "--output",
        "null",
        "--frames",
        "60",
        "--set",
        "core.viewport.width=1920",
        "--set",
        "core.viewport.height=1080",
        "--set",
        "core.viewport.fps=60",
        "--set",
        "pipeline.format=png",
        "--set",
        "pipeline.poolSize=1",
        "--set",
        "pipeline.maxQueueSize=5",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let drops = stdout
        .lines()
        .find(|l| l.starts_with("diagnosis: frame drops: "))
        .unwrap_or_else(|| panic!("no drop diagnosis: {stdout}"));
    assert!(
        drops.contains("queue full") && drops.contains("the workers are the bottleneck"),
        "{drops}"
    );

    let out = sm(&[
        "run",
        "--output",
        "null",
        "--frames",
        "30",
        "--set",
        "core.viewport.width=320",
        "--set",
        "core.viewport.height=180",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && !stdout.contains("diagnosis:"),
        "{stdout}"
    );
}
