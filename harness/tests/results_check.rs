//! `cargo xtask results check`: results whose figures add up pass; each planted violation is
//! caught and named with its suite, point and figures, by the library and by the binary.

use harness::point::figures::FrameLedger;
use harness::results::Results;
use harness::results::check::{SCHEMA, check};
use std::path::Path;
use std::process::Command;
use streamer::pipeline::Drops;

/// The fixture stream suite as version-2 results whose figures add up.
fn good() -> Results {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/full/stream/latest.json");
    let mut r = Results::load(&path).unwrap();
    r.schema = SCHEMA;
    r.quick = false;
    for p in &mut r.points {
        while p.repetitions.len() < 3 {
            let again = p.repetitions[0].clone();
            p.repetitions.push(again);
        }
        p.figures.dropped_frames = p.repetitions.iter().map(|r| r.dropped_frames).sum();
        let drops = Drops {
            queue_full: p.dropped_frames,
            ..Drops::default()
        };
        p.figures.ledger = Some(FrameLedger {
            due: 900 + p.dropped_frames,
            encoded: 900,
            dropped: drops,
            lost: 0,
        });
        p.figures.stage_cpu_ms = [("encode".to_string(), 4.0), ("render".to_string(), 1.0)].into();
        p.figures.process_cpu_ms = Some(5.05);
    }
    r
}

fn rules(r: &Results) -> Vec<(String, &'static str)> {
    check(r)
        .into_iter()
        .map(|v| (v.point.clone(), v.rule))
        .collect()
}

/// A point's network figures: 2 players, 90 frames sent, `delivered` received between them.
fn two_players_sent_90_got(delivered: u64) -> harness::point::NetworkFigures {
    serde_json::from_value(serde_json::json!({
        "players": 2, "sent_kbps": 1.0, "delivered_kbps": 1.0, "players_realtime": 2,
        "late_join_ms": null, "late_first_frame_key": null, "publisher_dropped": 0,
        "reconnects": 0, "server_dropped": 0,
        "ledger": { "players": 2, "sent": 90, "delivered": delivered, "dropped": 0 }
    }))
    .unwrap()
}

#[test]
fn results_that_add_up_pass_and_each_planted_violation_is_named() {
    let r = good();
    assert_eq!(rules(&r), Vec::new(), "{:#?}", check(&r));
    let id = r.points[1].id.clone();
    let plant = |f: &dyn Fn(&mut harness::results::PointResult)| {
        let mut bad = good();
        f(&mut bad.points[1]);
        let found = check(&bad);
        assert!(
            found.iter().all(|v| v.point == id && v.suite == "stream"),
            "{found:#?}"
        );
        found
            .iter()
            .map(|v| format!("{}: {}", v.rule, v.figures))
            .collect::<Vec<_>>()
    };
    // A frame neither encoded nor dropped.
    let found = plant(&|p| p.figures.ledger.as_mut().unwrap().encoded -= 1);
    assert!(
        found[0].contains("frames due = encoded + dropped"),
        "{found:?}"
    );
    assert!(found[0].contains("1 unaccounted"), "{found:?}");
    // The stages over the process's CPU.
    let found = plant(&|p| p.figures.process_cpu_ms = Some(4.8));
    assert!(
        found[0].contains("stages' CPU ≤ their process's"),
        "{found:?}"
    );
    assert!(found[0].contains("5.000 ms > 4.800 ms"), "{found:?}");
    // Percentiles out of order.
    let found = plant(&|p| {
        let s = p.figures.spans.values_mut().next().unwrap();
        s.p999_us = s.max_us * 2.0;
    });
    assert!(found[0].contains("percentiles in order"), "{found:?}");
    // A median outside its runs.
    let found = plant(&|p| p.figures.fps = p.fps_max + 1.0);
    assert!(found[0].contains("fps between"), "{found:?}");
    // Drops that are not the runs' and the ledger's.
    let found = plant(&|p| p.figures.dropped_frames += 5);
    assert!(
        found
            .iter()
            .any(|f| f.contains("drops are the runs' drops"))
            && found.iter().any(|f| f.contains("dropped by reason + lost")),
        "{found:?}"
    );
    // A player's frame that neither arrived nor was dropped.
    let found = plant(&|p| p.figures.network = Some(two_players_sent_90_got(179)));
    assert!(
        found[0].contains("per player: sent = delivered + dropped")
            && found[0].contains("1 unaccounted"),
        "{found:?}"
    );
    // Frames in flight when the window opened arrive in it: more received than sent is not a
    // loss.
    let found = plant(&|p| p.figures.network = Some(two_players_sent_90_got(182)));
    assert!(found.is_empty(), "{found:?}");
    // A full run with one run a point.
    let found = plant(&|p| p.repetitions.truncate(1));
    assert!(
        found.iter().any(|f| f.contains("at least 3 runs")),
        "{found:?}"
    );
    // Version 1 results are not held to version 2's invariants.
    let mut old = good();
    old.schema = 1;
    old.points[1].figures.ledger = None;
    old.points[1].figures.process_cpu_ms = None;
    assert_eq!(rules(&old), Vec::new());
}

#[test]
fn the_command_fails_naming_the_point_and_a_committed_report_with_quick_runs() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = good();
    r.write(dir.path()).unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_harness"))
            .arg("check")
            .arg("--results")
            .arg(dir.path())
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    r.points[2].figures.ledger.as_mut().unwrap().due += 3;
    r.write(dir.path()).unwrap();
    let out = run(&[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(
        text.contains(&format!("stream, point {}", r.points[2].id))
            && text.contains("3 unaccounted"),
        "{text}"
    );
    // A report that shows quick runs may stand in a working tree, not in a commit.
    let (_, _, found) = harness::commands::check::check_dir(dir.path(), false).unwrap();
    assert_eq!(found.len(), 1);
    std::fs::write(
        dir.path().join("REPORT.md"),
        format!("# x\n\n{} (`stream`): …\n", harness::report::QUICK_SETS),
    )
    .unwrap();
    let (_, _, found) = harness::commands::check::check_dir(dir.path(), true).unwrap();
    assert!(
        found.iter().any(|v| v.rule.contains("full runs only")),
        "{found:?}"
    );
}
