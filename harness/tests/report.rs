//! Every report table generated from committed results and compared with a committed report.
//!
//! `fixtures/full/` holds a `latest.json` for each of the eleven suites and the density search, `fixtures/part/` only
//! `stream` and `network` (see `fixtures/README.md` for how they were made). Each case copies
//! its set to a temporary results folder, builds the report through the library exactly as
//! `harness report --results DIR` does ([`harness::report::write`]), and compares `REPORT.md`
//! byte for byte with `fixtures/expected/`.
//!
//! Nothing needs normalising: the only dates and machine facts the report prints (the run's
//! `started`, the `machine` section) come from the results, so the fixtures fix them, and plots
//! are linked by relative path (`plots/<file>`); the test checks the temporary folder's path
//! never appears.
//!
//! After a deliberate change to the report, refresh the expected files with
//!
//! ```text
//! UPDATE_EXPECT=1 cargo test -p harness --test report
//! ```
//!
//! and review the diff of `harness/tests/fixtures/expected/` before committing it.

use std::path::{Path, PathBuf};

/// Each suite and the heading of the table it fills.
const TABLES: [(&str, &str); 12] = [
    ("stream", "## Encoder — Tested Configurations"),
    ("workers", "## Frame Pipeline — Tested Configurations"),
    ("memory", "## Memory"),
    ("core", "## Core Components — viewport, assets, layout"),
    ("compose", "## Composition Engine"),
    ("render", "## Renderer"),
    ("frames-timing", "## Frames — timing"),
    ("frames-drops", "## Frames — drops under overload"),
    ("frames-buffer", "## Frames — buffer"),
    ("frames-quality", "## Frames — quality"),
    ("network", "## RTMP Server — Tested Configurations"),
    ("density", "## Streams per machine"),
];

const NOT_MEASURED: &str = "## Not measured yet";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Copies `from` (a fixture set) into `to`, recursively.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A report built from fixture set `set` (`None`: no results at all) in a temporary folder.
struct Built {
    dir: tempfile::TempDir,
    report: String,
}

fn build(set: Option<&str>) -> Built {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    match set {
        Some(set) => copy_dir(&fixtures().join(set), &results),
        None => std::fs::create_dir_all(&results).unwrap(),
    }
    let path = harness::report::write(&results).unwrap();
    assert_eq!(path, results.join("REPORT.md"));
    let report = std::fs::read_to_string(&path).unwrap();
    let tmp = dir.path().to_string_lossy();
    assert!(
        !report.contains(tmp.as_ref()),
        "the report names the temp folder"
    );
    Built { dir, report }
}

/// The lines that differ between `expected` and `actual`: the common start and end left out
/// (three lines of context kept), at most 40 lines of each side shown.
fn diff(expected: &str, actual: &str) -> String {
    let e: Vec<&str> = expected.lines().collect();
    let a: Vec<&str> = actual.lines().collect();
    let start = e.iter().zip(&a).take_while(|(x, y)| x == y).count();
    let end = e[start..]
        .iter()
        .rev()
        .zip(a[start..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let context = start.saturating_sub(3);
    let mut out = format!(
        "@@ expected line {} ({} lines in all), actual line {} ({} lines in all) @@\n",
        start + 1,
        e.len(),
        start + 1,
        a.len()
    );
    for line in &e[context..start] {
        out.push_str(&format!(" {line}\n"));
    }
    const SHOWN: usize = 40;
    for (sign, side) in [
        ('-', &e[start..e.len() - end]),
        ('+', &a[start..a.len() - end]),
    ] {
        for line in side.iter().take(SHOWN) {
            out.push_str(&format!("{sign}{line}\n"));
        }
        if side.len() > SHOWN {
            out.push_str(&format!("{sign}… {} more lines\n", side.len() - SHOWN));
        }
    }
    if expected.ends_with('\n') != actual.ends_with('\n') {
        out.push_str("(the two differ in the final newline)\n");
    }
    out
}

/// Compares `actual` with `fixtures/expected/<name>`, or rewrites that file under
/// `UPDATE_EXPECT=1`.
fn expect(name: &str, actual: &str) {
    let path = fixtures().join("expected").join(name);
    if std::env::var_os("UPDATE_EXPECT").is_some_and(|v| v == "1") {
        // CI compares; it never rewrites what it is meant to check.
        assert!(
            std::env::var_os("CI").is_none(),
            "UPDATE_EXPECT=1 is refused under CI: the expected reports are checked there"
        );
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        eprintln!("UPDATE_EXPECT=1: wrote {}", path.display());
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run `UPDATE_EXPECT=1 cargo test -p harness --test report` to create it",
            path.display()
        )
    });
    if expected != actual {
        panic!(
            "the report differs from {} (- expected, + actual):\n{}\nIf the change is meant, \
             run `UPDATE_EXPECT=1 cargo test -p harness --test report` and review the diff.",
            path.display(),
            diff(&expected, actual)
        );
    }
}

fn has_line(report: &str, line: &str) -> bool {
    report.lines().any(|l| l == line)
}

/// The first table's data rows after `heading`.
fn table_rows<'a>(report: &'a str, heading: &str) -> Vec<&'a str> {
    report
        .lines()
        .skip_while(|l| *l != heading)
        .skip(1)
        .skip_while(|l| !l.starts_with('|'))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .collect()
}

/// The table under `heading` has rows and no empty or placeholder cell.
fn assert_filled(report: &str, heading: &str) {
    let rows = table_rows(report, heading);
    assert!(!rows.is_empty(), "no rows under {heading}:\n{report}");
    for row in rows {
        for cell in row.trim_matches('|').split('|') {
            let cell = cell.trim();
            assert!(
                !cell.is_empty() && cell != "TBD",
                "empty cell under {heading}: {row}"
            );
        }
    }
}

/// The plots the report links (`![caption](plots/<file>)`): each was written beside it, is not
/// empty and is SVG. Returns their file names.
fn check_plots(b: &Built) -> Vec<String> {
    let files: Vec<String> = b
        .report
        .lines()
        .filter_map(|l| l.strip_prefix("!["))
        .filter_map(|l| l.split_once("](plots/"))
        .map(|(_, rest)| rest.trim_end_matches(')').to_string())
        .collect();
    for file in &files {
        let path = b.dir.path().join("results/plots").join(file);
        let svg =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let svg = svg.trim();
        assert!(!svg.is_empty(), "{file} is empty");
        assert!(
            svg.starts_with("<svg") || svg.starts_with("<?xml"),
            "{file} does not start as SVG: {}",
            &svg[..svg.len().min(80)]
        );
        assert!(svg.ends_with("</svg>"), "{file} does not end with </svg>");
    }
    files
}

/// The distinct stroke colours of the lines (`<polyline>`) an SVG plot draws, less the axes'
/// black: one per series (its line and its legend mark share it), so a series that was not
/// drawn is missing here.
fn series_colours(b: &Built, file: &str) -> usize {
    let svg = std::fs::read_to_string(b.dir.path().join("results/plots").join(file))
        .unwrap_or_else(|e| panic!("{file}: {e}"));
    let mut colours: Vec<&str> = svg
        .split("<polyline")
        .skip(1)
        .filter_map(|el| el.split("stroke=\"").nth(1)?.split('"').next())
        .filter(|c| *c != "#000000")
        .collect();
    colours.sort_unstable();
    colours.dedup();
    colours.len()
}

#[test]
fn every_table_from_the_full_fixtures_matches_the_expected_report() {
    let b = build(Some("full"));
    expect("REPORT.md", &b.report);
    for (suite, heading) in TABLES {
        assert!(has_line(&b.report, heading), "{suite}: no `{heading}`");
        assert_filled(&b.report, heading);
    }
    assert!(!b.report.contains(NOT_MEASURED), "every suite has results");
    // It answers first, and each suite has its detail page with every point.
    assert!(
        b.report.find("## Answers") < b.report.find("## Encoder — Tested Configurations"),
        "the answers come first"
    );
    for (suite, _) in TABLES {
        let page =
            std::fs::read_to_string(b.dir.path().join("results").join(suite).join("REPORT.md"))
                .unwrap_or_else(|e| panic!("{suite}'s detail page: {e}"));
        assert!(
            page.contains(&format!("# `{suite}`: every point")),
            "{page}"
        );
    }
    // Headings are unique.
    let headings: Vec<&str> = b.report.lines().filter(|l| l.starts_with("## ")).collect();
    let mut unique = headings.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), headings.len(), "{headings:?}");
    let mut plots = check_plots(&b);
    plots.sort();
    assert_eq!(
        plots,
        [
            "bitrate-vs-link-adapt-cliff.svg",
            "bitrate-vs-link.svg",
            "fps-preset-threads.svg",
            "latency-percentiles.svg",
            "rss-over-time.svg",
            "server-cpu-per-player.svg",
            "server-rss.svg",
        ]
    );
    // Every series is drawn, each in its own colour: the presets, the spans of the real-time
    // suite's first point, the memory suite's points, the servers.
    let network: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("full/network/latest.json")).unwrap(),
    )
    .unwrap();
    let spans = network["points"][0]["spans"].as_object().unwrap().len();
    let servers: std::collections::BTreeSet<&str> = network["comparisons"]["peers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["server"].as_str())
        .collect();
    assert_eq!(series_colours(&b, "latency-percentiles.svg"), spans);
    assert_eq!(
        series_colours(&b, "server-cpu-per-player.svg"),
        servers.len()
    );
    assert_eq!(series_colours(&b, "server-rss.svg"), servers.len());
}

#[test]
fn suites_missing_from_the_partial_fixtures_are_listed_as_not_measured() {
    let present = ["stream", "network"];
    let b = build(Some("part"));
    expect("REPORT-part.md", &b.report);
    let (tables, missing) = b
        .report
        .split_once(&format!("\n{NOT_MEASURED}\n"))
        .unwrap_or_else(|| panic!("no `{NOT_MEASURED}` section:\n{}", b.report));
    for (suite, heading) in TABLES {
        let listed = missing
            .lines()
            .any(|l| l.starts_with(&format!("- `{suite}`: run `cargo xtask perf ")));
        if present.contains(&suite) {
            assert!(has_line(tables, heading), "{suite}: no `{heading}`");
            assert_filled(tables, heading);
            assert!(!listed, "{suite} has results but is listed as not measured");
        } else {
            assert!(!has_line(&b.report, heading), "{suite}: `{heading}` shown");
            assert!(listed, "{suite} is not listed as not measured:\n{missing}");
        }
    }
    let plots = check_plots(&b);
    assert!(!plots.is_empty(), "the encoder suite's plots");
}

#[test]
fn with_no_results_every_suite_is_listed_as_not_measured() {
    let b = build(None);
    for (suite, heading) in TABLES {
        assert!(!has_line(&b.report, heading), "{suite}: `{heading}` shown");
        assert!(
            b.report.contains(&format!("- `{suite}`: run `")),
            "{suite} not listed:\n{}",
            b.report
        );
    }
    assert!(has_line(&b.report, NOT_MEASURED));
    assert!(check_plots(&b).is_empty());
    assert!(!b.report.contains("## Plots"));
}

/// The repository's root.
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The repository's own `results/` as git's index holds it (never the working tree, which
/// `cargo xtask perf …` rewrites: the README's first command): what is committed there (each
/// suite's `latest.json` and the gate's `gate-power.json`) regenerates the committed
/// `REPORT.md` and plots byte for byte, so `cargo xtask report` on a clean checkout leaves
/// `git diff --exit-code results/` clean and the committed report is never stale. After a
/// change to the report's code, run `cargo xtask report` and commit what it rewrites.
#[test]
fn the_committed_report_regenerates_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let committed = dir.path().join("committed");
    harness::results::committed::export(&repo(), "results", &committed).unwrap();
    let results = dir.path().join("results");
    std::fs::create_dir_all(&results).unwrap();
    for entry in std::fs::read_dir(&committed).unwrap() {
        let entry = entry.unwrap();
        let latest = entry.path().join("latest.json");
        if latest.is_file() {
            let to = results.join(entry.file_name());
            std::fs::create_dir_all(&to).unwrap();
            std::fs::copy(&latest, to.join("latest.json")).unwrap();
        }
    }
    if committed.join("gate-power.json").is_file() {
        std::fs::copy(
            committed.join("gate-power.json"),
            results.join("gate-power.json"),
        )
        .unwrap();
    }
    harness::report::write(&results).unwrap();
    let read =
        |p: &Path| std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let (expected, actual) = (
        read(&committed.join("REPORT.md")),
        read(&results.join("REPORT.md")),
    );
    assert!(
        expected == actual,
        "results/REPORT.md is not what the committed results make (- committed, + regenerated):\n\
         {}\nRun `cargo xtask report` and commit results/.",
        diff(&expected, &actual)
    );
    // Each suite's detail page too, and no other.
    let pages = |d: &Path| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .flatten()
            .filter(|e| e.path().join("REPORT.md").is_file())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        pages(&committed),
        pages(&results),
        "results/<suite>/REPORT.md: other detail pages than the report writes: run `cargo \
         xtask report --full` and commit results/"
    );
    for suite in pages(&results) {
        let (expected, actual) = (
            read(&committed.join(&suite).join("REPORT.md")),
            read(&results.join(&suite).join("REPORT.md")),
        );
        assert!(
            expected == actual,
            "results/{suite}/REPORT.md is not what the committed results make (- committed, \
             + regenerated):\n{}\nRun `cargo xtask report --full` and commit results/.",
            diff(&expected, &actual)
        );
    }
    let names = |d: &Path| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(d)
            .map(|r| {
                r.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    let plots = names(&results.join("plots"));
    assert_eq!(
        names(&committed.join("plots")),
        plots,
        "results/plots/ holds other plots than the report draws: run `cargo xtask report` \
         and commit results/ (removing stale plots)"
    );
    for plot in plots {
        assert!(
            read(&committed.join("plots").join(&plot)) == read(&results.join("plots").join(&plot)),
            "results/plots/{plot} is not what the committed results draw: run `cargo xtask \
             report` and commit results/"
        );
    }
}

/// The README shows no hand-copied figures: every table row in its example (the fenced block
/// under "What you get") is a line of the committed report (as git's index holds it), and it
/// names the date of the run it quotes.
#[test]
fn the_readme_quotes_the_committed_report() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let report = String::from_utf8(
        harness::results::committed::read(&repo(), "results/REPORT.md")
            .expect("the committed report (git's index)"),
    )
    .unwrap();
    let section = readme
        .split("## What you get")
        .nth(1)
        .expect("README: a `## What you get` section");
    let block = section.split("```").nth(1).expect("a fenced example");
    let rows: Vec<&str> = block.lines().filter(|l| l.starts_with('|')).collect();
    assert!(!rows.is_empty(), "the example quotes no table rows");
    for row in rows {
        assert!(
            has_line(&report, row),
            "README quotes a row results/REPORT.md does not have:\n{row}"
        );
    }
    // The Encoder table's run: `From `scenarios/stream.toml` (<started>, …` or `(<started>)`.
    let started = report
        .lines()
        .find_map(|l| l.strip_prefix("From `scenarios/stream.toml` ("))
        .and_then(|l| l.split([',', ')']).next())
        .expect("the report's Encoder table names its run");
    assert!(
        section.split("```").next().unwrap().contains(started),
        "README's example does not name the run it quotes ({started})"
    );
}
