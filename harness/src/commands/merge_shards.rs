//! The `harness merge` command: shard files into each suite's results, and the report.

use anyhow::{Context, Result, bail};
use std::path::Path;

/// Joins the shard files of `suites` under `root` (every suite with shards when none is
/// named) into each suite's `latest.json`, then refreshes the report.
///
/// # Errors
/// No shard files, shards that do not merge, or a file that cannot be written.
pub fn merge(root: &Path, mut suites: Vec<String>) -> Result<()> {
    if suites.is_empty() {
        for e in std::fs::read_dir(root)
            .with_context(|| format!("reading {}", root.display()))?
            .flatten()
        {
            let has_shards = std::fs::read_dir(e.path()).is_ok_and(|d| {
                d.flatten()
                    .any(|f| f.file_name().to_string_lossy().starts_with("shard-"))
            });
            if has_shards {
                suites.push(e.file_name().to_string_lossy().into_owned());
            }
        }
        suites.sort();
        if suites.is_empty() {
            bail!(
                "no shard files under {} (run `cargo xtask perf SUITE --shard K/N`)",
                root.display()
            );
        }
    }
    for suite in &suites {
        let merged = crate::results::merge::merge(root, suite)?;
        let latest = merged.write(root)?;
        eprintln!(
            "{suite}: {} points merged into {}",
            merged.points.len(),
            latest.display()
        );
    }
    let report = crate::report::write(root)?;
    eprintln!("report:  {}", report.display());
    Ok(())
}
