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

#[test]
fn ctrl_c_during_run_sends_what_was_encoded_closes_the_stream_and_prints_the_summary() {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_stream-manager"))
        .args(["run", "--frames", "900", "--players", "2"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while stderr.read_line(&mut line).unwrap() > 0 && !line.starts_with("streaming 900 frames") {
        line.clear();
    }
    assert!(line.starts_with("streaming 900 frames"), "{line}");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    // SAFETY: kill has no memory preconditions; the child is still running (30 s of frames).
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{:?} {stdout}", out.status);
    let encoded: u64 = stdout
        .split(" frames encoded")
        .next()
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!((1..900).contains(&encoded), "{stdout}");
    // Every frame encoded reached both players.
    assert!(
        stdout.contains(&format!(
            "players: 2 received {encoded}–{encoded} frames each"
        )),
        "{stdout}"
    );
}
