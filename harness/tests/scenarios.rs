//! Every scenario file the project ships parses and plans, full and `--quick`: a typo in a
//! suite file is found here, not half way through a long run.

use harness::scenario::Scenario;
use std::path::{Path, PathBuf};

/// Every `.toml` under `scenarios/` (the suites and the parts of suites that have parts).
fn scenario_files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let mut files = Vec::new();
    let mut dirs = vec![root];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("scenarios/ is readable") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "toml")
                && !path.ends_with("scenarios/density.toml")
            {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

#[test]
fn every_scenario_file_parses_and_plans() {
    let files = scenario_files();
    // The eleven suite files of the guide's tables (stream, workers, memory, network, core,
    // compose, render and the four parts of frames), the three parts of adapt, and content.
    assert_eq!(files.len(), 15, "{files:?}");
    for file in &files {
        let s = Scenario::load(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for quick in [false, true] {
            let plan = s.plan(quick);
            assert!(
                !plan.points.is_empty(),
                "{} (quick: {quick}) plans no point",
                file.display()
            );
            for p in &plan.points {
                p.config.validate().unwrap_or_else(|e| {
                    panic!(
                        "{} (quick: {quick}): a point is invalid: {e}",
                        file.display()
                    )
                });
            }
        }
        // The quick form is a subset of the full sweep, never larger.
        assert!(
            s.plan(true).points.len() <= s.plan(false).points.len(),
            "{}",
            file.display()
        );
    }
}

#[test]
fn the_density_plan_parses_and_its_quick_grid_is_the_720p_clip() {
    use harness::density::plan::{Plan, Size, Source};
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/density.toml");
    let plan = Plan::parse(&std::fs::read_to_string(path).unwrap()).unwrap();
    let full = Plan::cells(&plan.full);
    assert_eq!(full.len(), 20, "{full:?}");
    let quick = Plan::cells(&plan.quick);
    assert!(
        quick
            .iter()
            .all(|c| c.size == Size::P720 && c.source == Source::Clip),
        "{quick:?}"
    );
    let bad = "description = \"x\"\nmax_streams = 0\nbitrate_kbps = {}\n[full]\nwarmup_s = 1\nwindow_s = 1\ngrid = []\n[quick]\nwarmup_s = 1\nwindow_s = 1\ngrid = []\n";
    let e = Plan::parse(bad).unwrap_err();
    assert!(e.to_string().contains("max_streams = 0"), "{e}");
}
