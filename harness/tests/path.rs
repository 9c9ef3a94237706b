//! The harness end to end: the real stream with the recorder, a scenario run through the
//! binary, and the report it fills.

use harness::point::{PointJob, run_here};
use harness::results::Results;
use harness::scenario::{Length, RunSettings, Scenario};
use std::path::Path;
use std::process::Command;
use streamer::config::StreamConfig;
use streamer::stream::Pacing;

#[test]
fn the_recorder_sees_every_span_of_the_path_once_per_frame() {
    let mut config = StreamConfig::default();
    config.core.viewport.width = 640;
    config.core.viewport.height = 360;
    let settings = RunSettings {
        pacing: Pacing::Max,
        warmup_frames: 5,
        length: Length::Frames(20),
        repetitions: 1,
    };
    let run = run_here(&PointJob {
        config,
        settings,
        record: true,
        players: 0,
        fidelity: false,
        profile: None,
        link: None,
        quota: None,
    })
    .unwrap();
    assert_eq!(run.frames, 20);
    assert_eq!(run.unmatched_marks, 0);
    let count = |name: &str| run.spans.get(name).map_or(0, |s| s.count);
    assert_eq!(count("render:setup"), 1);
    for span in ["render:frame", "encode", "network:send", "frame:total"] {
        assert_eq!(count(span), 20, "{span}");
        let s = &run.spans[span];
        assert!(
            s.p50_us > 0.0 && s.p50_us <= s.p99_us && s.p99_us <= s.max_us,
            "{span}: {s:?}"
        );
    }
    // The figures were recorded (how large they are is for `cargo xtask perf`).
    assert!(run.rss_bytes > 0 && run.bitrate_kbps > 0.0 && run.wall_s > 0.0);
    // Every frame due is accounted for.
    let ledger = run.ledger.as_ref().expect("the frame ledger");
    assert_eq!((ledger.due, ledger.encoded), (20, 20));
    assert_eq!(ledger.unaccounted(), 0, "{ledger:?}");
}

/// Under overload (a real-time 720p60 stream through one PNG worker and a 2-frame queue),
/// frames are dropped, and every one is in the ledger under its reason.
#[test]
fn a_dropping_run_accounts_for_every_frame_due() {
    let mut config = StreamConfig::default();
    config.pipeline.format = streamer::config::FrameFormat::Png;
    (config.pipeline.pool_size, config.pipeline.max_queue_size) = (1, 2);
    let run = run_here(&PointJob {
        config,
        settings: RunSettings {
            pacing: Pacing::Realtime,
            warmup_frames: 5,
            length: Length::Frames(60),
            repetitions: 1,
        },
        record: false,
        players: 0,
        fidelity: false,
        profile: None,
        link: None,
        quota: None,
    })
    .unwrap();
    let ledger = run.ledger.as_ref().expect("the frame ledger");
    assert_eq!(ledger.due, 60);
    assert!(ledger.dropped.total() > 0, "{ledger:?}");
    assert_eq!(ledger.unaccounted(), 0, "{ledger:?}");
    assert_eq!(ledger.dropped.total(), run.dropped_frames);
}

#[test]
fn the_shipped_scenarios_parse_and_expand() {
    let s = Scenario::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/stream.toml"))
        .unwrap();
    assert_eq!(s.plan(false).points.len(), 6 * 2 * 2);
    let quick = s.plan(true);
    assert_eq!(quick.points.len(), 3 * 2);
    assert!(
        quick
            .points
            .iter()
            .any(|p| p.config == StreamConfig::default()),
        "quick keeps the baseline"
    );
}

const SCENARIO: &str = r#"suite = "stream"
table = "encoder"
pacing = "max"
warmup_frames = 3
frames = 12
repetitions = 2

[base]
core.viewport.width = 320
core.viewport.height = 180

[[sweep]]
path = "encoder.preset"
values = ["ultrafast", "veryfast"]

[[sweep]]
path = "encoder.pipeline.threads"
values = [2]
"#;

#[test]
fn a_scenario_run_writes_results_and_fills_the_encoder_table() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("stream.toml");
    std::fs::write(&scenario, SCENARIO).unwrap();
    let results = dir.path().join("results");
    let out = Command::new(env!("CARGO_BIN_EXE_harness"))
        .arg("run")
        .arg(&scenario)
        .arg("--results")
        .arg(&results)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let r = Results::load(&results.join("stream/latest.json")).unwrap();
    assert_eq!(r.points.len(), 2);
    for p in &r.points {
        assert_eq!(p.repetitions.len(), 2);
        assert!(p.cpu_percent > 0.0 && p.rss_bytes > 0 && p.bitrate_kbps > 0.0);
        assert_eq!(p.spans["encode"].count, 24, "two runs of 12 frames");
        assert!(p.spans["encode"].histogram().is_ok());
    }
    assert!(!r.machine.ffmpeg_version.is_empty());
    let csv = std::fs::read_to_string(results.join("stream/latest.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3);
    assert!(csv.lines().next().unwrap().contains("encode.p99_us"));

    let report = std::fs::read_to_string(results.join("REPORT.md")).unwrap();
    let rows: Vec<&str> = report
        .lines()
        .skip_while(|l| !l.starts_with("| Preset"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .collect();
    assert_eq!(rows.len(), 2, "{report}");
    assert!(rows.iter().any(|r| r.contains("Baseline")), "{report}");
    for row in rows {
        for cell in row.trim_matches('|').split('|') {
            let cell = cell.trim();
            assert!(
                !cell.is_empty() && cell != "TBD" && cell != "-",
                "empty cell in {row}"
            );
        }
    }
    assert!(!report.contains("TBD"));
    let details = std::fs::read_to_string(results.join("stream/REPORT.md")).unwrap();
    assert!(
        details.contains("| encode |"),
        "span percentile table: {details}"
    );
}

#[test]
fn a_bad_scenario_is_refused_with_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("bad.toml");
    std::fs::write(
        &scenario,
        SCENARIO.replace("values = [2]", "values = [2, 99]"),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_harness"))
        .arg("run")
        .arg(&scenario)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml:18: encoder.pipeline.threads"),
        "{err}"
    );
    assert!(err.contains("1..=64"), "{err}");
}

#[test]
fn a_point_with_players_measures_delivery_latency_and_join() {
    let mut config = StreamConfig::default();
    config.core.viewport.width = 640;
    config.core.viewport.height = 360;
    config.encoder.gop = 15;
    let settings = RunSettings {
        pacing: Pacing::Realtime,
        warmup_frames: 10,
        length: Length::Frames(45),
        repetitions: 1,
    };
    let run = run_here(&PointJob {
        config,
        settings,
        record: true,
        players: 3,
        fidelity: false,
        profile: None,
        link: None,
        quota: None,
    })
    .unwrap();
    let net = run.network.clone().expect("network figures with players");
    assert_eq!(net.players, 3);
    let q = net.quality.expect("the publisher's connection was sampled");
    assert!(q.rtt_ms > 0.0 && q.send_rate_kbps > 0.0, "{q:?}");
    assert!(net.sent_kbps > 0.0 && net.delivered_kbps > 0.0, "{net:?}");
    assert_eq!(net.publisher_dropped + net.server_dropped, 0, "{net:?}");
    assert_eq!(net.late_first_frame_key, Some(true), "{net:?}");
    assert!(net.late_join_ms.is_some(), "{net:?}");
    // Every measured frame reached every player (the late joiner marks nothing).
    assert_eq!(run.spans["e2e"].count, 45 * 3);
    assert_eq!(run.spans["relay"].count, 45 * 3);
    assert_eq!(run.unmatched_marks, 0);
    // And the players' ledger says so: 3 × 45 sent, all delivered.
    let l = net.ledger.as_ref().expect("the players' ledger");
    assert_eq!((l.players, l.sent, l.delivered, l.dropped), (3, 45, 135, 0));
}

#[test]
fn the_network_scenario_sweeps_the_guides_rtmp_axes() {
    let s =
        Scenario::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/network.toml"))
            .unwrap();
    let full = s.plan(false);
    // Chunk size × GOP cache × players, and the short ping only at 100 players.
    assert_eq!(full.points.len(), 3 * 2 * 3 + 3 * 2);
    assert!(
        full.points
            .iter()
            .all(|p| p.config.rtmp.ping == 30 || p.players == 100)
    );
    assert!(
        full.points.iter().any(|p| p.players == 100
            && p.config.rtmp.ping == 5
            && p.config.rtmp.ping_timeout == 10)
    );
    assert!(full.points.iter().all(|p| p.config.validate().is_ok()));
}

#[test]
fn a_profiled_sweep_writes_flame_graphs_beside_the_report_and_a_plain_one_removes_them() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("stream.toml");
    std::fs::write(
        &scenario,
        r#"suite = "stream"
table = "encoder"
pacing = "max"
warmup_frames = 3
frames = 90
repetitions = 1

[base]
core.viewport.width = 640
core.viewport.height = 360
encoder.preset = "medium"
"#,
    )
    .unwrap();
    let results = dir.path().join("results");
    let run = |profile: bool| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_harness"));
        c.arg("run").arg(&scenario).arg("--results").arg(&results);
        if profile {
            c.arg("--profile");
        }
        let out = c.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Results::load(&results.join("stream/latest.json")).unwrap()
    };
    let r = run(true);
    let p = r.points[0].profile.as_ref().expect("a profile");
    assert_eq!(p.svg, "stream/profile/01.svg");
    assert!(p.samples > 0 && p.fps > 0.0, "{p:?}");
    assert!(!p.hot.is_empty() && !p.threads.is_empty(), "{p:?}");
    assert_eq!(
        r.points[0].repetitions.len(),
        1,
        "the profiled run is extra"
    );
    let svg = std::fs::read_to_string(results.join(&p.svg)).unwrap();
    assert!(svg.contains("<svg"), "{svg}");
    assert!(!results.join("stream/profile.partial").exists());
    let report = std::fs::read_to_string(results.join("stream/REPORT.md")).unwrap();
    assert!(report.contains("(../stream/profile/01.svg)"), "{report}");

    let r = run(false);
    assert!(r.points[0].profile.is_none());
    assert!(
        !results.join("stream/profile").exists(),
        "stale flame graphs"
    );
}

#[test]
fn a_sweep_run_as_a_three_way_indexed_job_merges_into_the_same_points_in_sweep_order() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("stream.toml");
    std::fs::write(
        &scenario,
        SCENARIO.replace(
            r#"["ultrafast", "veryfast"]"#,
            r#"["ultrafast", "superfast", "veryfast"]"#,
        ),
    )
    .unwrap();
    let results = dir.path().join("results");
    let harness = |args: &[&str], index: Option<usize>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_harness"));
        c.args(args).arg("--results").arg(&results);
        if let Some(i) = index {
            // What a Kubernetes Indexed Job's pod sees (the manifest sets the count).
            c.env("JOB_COMPLETION_INDEX", i.to_string())
                .env("STREAM_MANAGER_SHARDS", "3");
        }
        let out = c.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let s = scenario.to_str().unwrap();
    for i in 0..3 {
        harness(&["run", s], Some(i));
        assert!(
            results
                .join(format!("stream/shard-{}-of-3.json", i + 1))
                .exists()
        );
    }
    harness(&["merge", "stream"], None);
    let merged = Results::load(&results.join("stream/latest.json")).unwrap();
    let plan = Scenario::load(&scenario).unwrap().plan(false);
    let ids: Vec<String> = plan.points.iter().map(|p| p.id()).collect();
    let got: Vec<String> = merged.points.iter().map(|p| p.id.clone()).collect();
    assert_eq!(got, ids, "the sweep's points, in its order");
    for p in &merged.points {
        assert_eq!(p.repetitions.len(), 2, "{}", p.id);
        // Histograms merged, not percentiles: every frame of both repetitions.
        assert_eq!(p.spans["encode"].count, 24, "{}", p.id);
    }
}
