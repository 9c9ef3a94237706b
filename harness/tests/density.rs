//! The density search end to end through the real binaries, at its smallest: one cell (the
//! clip at 720p, ultrafast), trials of up to two streams with a 3 s window, every side — our
//! process, our process with no overlays, ffmpeg CLI processes — publishing to a real
//! `stream-manager serve`; its results keep their invariants and fill the report's table.

use harness::density::{self, Side};
use std::path::PathBuf;
use std::process::Command;

/// The test clip (`cargo xtask test` fetches it and hands its path over).
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

const PLAN: &str = r#"
description = "the smallest density search"
max_streams = 2
bitrate_kbps = { "720p" = 2500 }
[base]
"encoder.rateControl.mode" = "bitrate"
"encoder.gop" = 50
"source.threads" = 1
[full]
warmup_s = 1
window_s = 3
[[full.grid]]
presets = ["ultrafast"]
threads = [1]
sizes = ["720p"]
sources = ["clip"]
[quick]
warmup_s = 1
window_s = 3
[[quick.grid]]
presets = ["ultrafast"]
threads = [1]
sizes = ["720p"]
sources = ["clip"]
"#;

#[test]
fn the_density_search_measures_ours_and_the_cli_and_fills_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.toml");
    std::fs::write(&plan, PLAN).unwrap();
    let results = dir.path().join("results");
    let out = Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(["density", "--quick", "--plan"])
        .arg(&plan)
        .arg("--clip")
        .arg(clip())
        .arg("--results")
        .arg(&results)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{said}");
    let r = density::load(&results, false).expect("density/quick.json");
    assert!(r.quick);
    assert_eq!(r.cells.len(), 1);
    let c = &r.cells[0];
    assert_eq!(c.fps, 25, "the clip's own rate");
    for side in [Side::Ours, Side::Bare, Side::Cli] {
        let s = c.side(side).unwrap_or_else(|| panic!("{side:?}: {said}"));
        assert!(s.n >= 1, "{side:?} held no stream on two cores: {said}");
        let t = s.at_n().unwrap();
        assert!(t.cpu_percent > 0.0 && t.pss_bytes > 0, "{t:?}");
        assert!(t.frames_min.unwrap_or(0) >= 60, "{t:?}");
    }
    assert!(c.extrapolation.as_ref().is_some_and(|e| e.streams > 0.0));
    assert!(density::check(&r).is_empty(), "{:?}", density::check(&r));
    let report = std::fs::read_to_string(results.join("REPORT.md")).unwrap();
    assert!(report.contains("## Streams per machine"), "{report}");
    assert!(
        report.contains("| ultrafast | 1 | 720p | clip |"),
        "{report}"
    );
    assert!(
        report.contains("How many streams fit on this machine?** Measured"),
        "{report}"
    );
}
