//! Every shipped suite runs end to end at its smallest size (`harness run --smallest`: one
//! point, one short run), through the real binary, and its results keep every invariant
//! (`harness check`); so do the side-by-side comparisons: `--compare-cli`,
//! `--probe-overhead` and `--compare-decode` (the clip, which `cargo xtask test` fetches)
//! with the stream suite, `--peers` (nginx-rtmp and node-media-server,
//! which `cargo xtask test` installs) with the network suite. The adaptation suites shape a
//! link and cap the CPU, which needs root (CI runs as root; elsewhere they fail saying so).

use harness::results::Results;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every scenario file under `scenarios/`, parts of folders included.
fn scenarios() -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![root().join("scenarios")];
    while let Some(dir) = dirs.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "toml")
                && !p.ends_with("scenarios/density.toml")
            {
                // The density plan is not a sweep: its own test runs it.
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// node-media-server's folder for `--peers` (`cargo xtask test` installs it there).
fn nms_dir() -> PathBuf {
    let dir = root().join("target/peers");
    assert!(
        dir.join("node_modules/node-media-server/package.json")
            .exists(),
        "node-media-server is not in {} (cargo xtask test installs it)",
        dir.display()
    );
    dir
}

fn harness(args: &[&std::ffi::OsStr]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn every_suite_and_comparison_runs_at_its_smallest_size_and_adds_up() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let scenarios = scenarios();
    assert!(scenarios.len() >= 14, "{scenarios:?}");
    let mut suites = Vec::new();
    for scenario in &scenarios {
        let s = harness::scenario::Scenario::load(scenario).unwrap();
        let mut args: Vec<std::ffi::OsString> = vec![
            "run".into(),
            scenario.into(),
            "--smallest".into(),
            "--results".into(),
            results.clone().into(),
        ];
        match s.suite.as_str() {
            "stream" => args.extend([
                "--compare-cli".into(),
                "--probe-overhead".into(),
                "--compare-decode".into(),
            ]),
            "network" => args.extend([
                "--peers".into(),
                "--nms-dir".into(),
                nms_dir().into(),
                "--peer-players".into(),
                "2".into(),
            ]),
            _ => {}
        }
        let started = std::time::Instant::now();
        let refs: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
        let (ok, text) = harness(&refs);
        assert!(ok, "{}: {text}", scenario.display());
        eprintln!(
            "{}: {:.1} s",
            scenario.display(),
            started.elapsed().as_secs_f64()
        );
        let r = Results::load(&Results::dir(&results, &s.suite).join("quick.json")).unwrap();
        assert!(r.quick && !r.points.is_empty(), "{}", s.suite);
        assert!(r.points.iter().all(|p| p.ledger.is_some()), "{}", s.suite);
        match s.suite.as_str() {
            "stream" => {
                assert_eq!(r.comparisons.cli.len(), 3);
                assert!(r.comparisons.cli.iter().all(|c| c.pairs.len() == 2));
                let o = r.comparisons.probe_overhead.as_ref().unwrap();
                assert_eq!(o.pairs.len(), 2);
                let d = r.comparisons.decode.as_ref().unwrap();
                assert_eq!(d.pairs.len(), 2);
                assert!(d.ours_ms > 0.0 && d.cli_ms > 0.0, "{d:?}");
            }
            "network" => {
                let servers: std::collections::BTreeSet<&str> = r
                    .comparisons
                    .peers
                    .iter()
                    .map(|p| p.server.as_str())
                    .collect();
                assert!(servers.len() >= 4, "{servers:?}");
            }
            _ => {}
        }
        if s.link.is_some() {
            assert!(r.comparisons.cli_link.is_some(), "{}", s.suite);
            assert!(r.points.iter().all(|p| p.link.is_some()), "{}", s.suite);
        }
        if s.cpu.is_some() {
            assert!(r.points.iter().all(|p| p.quota.is_some()), "{}", s.suite);
        }
        suites.push(s.suite);
    }
    // Their report: every suite shown (from its quick run); none left unmeasured but the
    // density search, which is not a sweep (its own test, `density.rs`, runs it).
    let report = std::fs::read_to_string(results.join("REPORT.md")).unwrap();
    let unmeasured = report
        .split("## Not measured yet")
        .nth(1)
        .unwrap_or_default();
    assert!(
        unmeasured
            .lines()
            .filter(|l| l.starts_with("- `"))
            .all(|l| l.starts_with("- `density`")),
        "{report}"
    );
    // Quick runs are not checked as `latest.json`: copy them there to hold them to the
    // invariants.
    for suite in &suites {
        let d = Results::dir(&results, suite);
        std::fs::copy(d.join("quick.json"), d.join("latest.json")).unwrap();
    }
    let (ok, text) = harness(&["check".as_ref(), "--results".as_ref(), results.as_os_str()]);
    assert!(ok, "{text}");
}
