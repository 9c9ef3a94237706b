//! The `harness check` command (`cargo xtask results check`): every invariant over every
//! suite's `latest.json` under a results folder, or over what git's index holds
//! (`--committed`), the committed report included.

use crate::results::Results;
use crate::results::check::{Violation, check, check_report};
use anyhow::{Context, Result, bail};
use std::path::Path;

/// Checks the results under `root` (with `committed`, `root` as git's index holds it, in the
/// repository at `repo`); prints what it checked and every violation.
///
/// # Errors
/// A violation (each named with its suite, point and figures), or results that cannot be read.
pub fn check_results(root: &Path, committed: Option<&Path>) -> Result<()> {
    let exported;
    let root = match committed {
        Some(repo) => {
            exported = tempfile::tempdir()?;
            let prefix = root
                .to_str()
                .context("a results folder named in UTF-8")?
                .trim_end_matches('/');
            crate::results::committed::export(repo, prefix, exported.path())?;
            exported.path()
        }
        None => root,
    };
    let (files, points, violations) = check_dir(root, committed.is_some())?;
    let what = if committed.is_some() {
        "committed"
    } else {
        "in the working tree"
    };
    if violations.is_empty() {
        println!(
            "results check: {files} results files ({what}), {points} points: every invariant holds"
        );
        return Ok(());
    }
    for v in &violations {
        println!("results check: {v}");
    }
    bail!(
        "{} broken invariant(s) in {files} results files ({what})",
        violations.len()
    )
}

/// `(files, points, violations)` of every suite's `latest.json` under `root`, and of its report
/// when it is the one to be `committed` (a working tree's may show `--quick` runs).
///
/// # Errors
/// A results file that cannot be read.
pub fn check_dir(root: &Path, committed: bool) -> Result<(usize, usize, Vec<Violation>)> {
    let mut dirs: Vec<_> = std::fs::read_dir(root)
        .with_context(|| format!("reading {}", root.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("latest.json").is_file())
        .collect();
    dirs.sort();
    let (mut files, mut points, mut violations) = (0, 0, Vec::new());
    for dir in dirs {
        let path = dir.join("latest.json");
        // The soak's results are not a suite's (they have their own checks, in the soak).
        if dir.file_name().is_some_and(|n| n == "soak") {
            continue;
        }
        // The density search's results have a form and invariants of their own.
        if dir.file_name().is_some_and(|n| n == "density") {
            let r: crate::density::DensityResults = serde_json::from_slice(
                &std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?,
            )
            .with_context(|| format!("reading {}", path.display()))?;
            files += 1;
            violations.extend(crate::density::check(&r));
            continue;
        }
        let r = Results::load(&path)?;
        files += 1;
        points += r.points.len();
        violations.extend(check(&r));
    }
    if let Ok(report) = std::fs::read_to_string(root.join("REPORT.md"))
        && committed
    {
        violations.extend(check_report(&report));
    }
    Ok((files, points, violations))
}
