//! A suite's files under the results folder: `latest.json`, its timestamped copy and
//! `latest.csv` for a full run; `quick.json` and `quick.csv` beside them for a `--quick` run,
//! which never replaces a full one; written and read back.

use super::files::{ResultsError, fail, suite_dir, write_atomic};
use super::model::Results;
use std::path::{Path, PathBuf};

/// A full run's files: `latest.json`, `latest.csv`.
pub const LATEST: &str = "latest";
/// A `--quick` run's files: `quick.json`, `quick.csv`.
pub const QUICK: &str = "quick";

impl Results {
    /// The suite's folder under `root`.
    pub fn dir(root: &Path, suite: &str) -> PathBuf {
        suite_dir(root, suite)
    }

    /// Writes `latest.json`, a timestamped copy, and `latest.csv` under `root/<suite>/` — or,
    /// for a `--quick` run, `quick.json` and `quick.csv` (the full run's files are left as
    /// they are: a quick run never replaces a full one). Returns the path of the JSON file.
    /// The JSON is compact (no indentation; the span histograms are already compressed):
    /// `latest.json` is committed, and `cargo xtask report` rebuilds the report from it;
    /// `quick.json` stays local.
    ///
    /// # Errors
    /// A file could not be written.
    pub fn write(&self, root: &Path) -> Result<PathBuf, ResultsError> {
        let dir = Self::dir(root, &self.suite);
        let json = serde_json::to_vec(self).map_err(|e| fail(&dir, e))?;
        let stamp: String = self
            .started
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect();
        let name = if self.quick { QUICK } else { LATEST };
        let latest = dir.join(format!("{name}.json"));
        write_atomic(&dir.join(format!("{stamp}.json")), &json)?;
        write_atomic(&latest, &json)?;
        write_atomic(
            &dir.join(format!("{name}.csv")),
            &self.csv().map_err(|e| fail(&dir, e))?,
        )?;
        Ok(latest)
    }

    /// The suite's results the report shows: the newer of its full run (`latest.json`) and
    /// its quick run (`quick.json`), so a run just made shows (a quick one marked as such);
    /// `None` when the suite has neither. With `full_only`, only `latest.json` (what is
    /// committed).
    pub fn load_suite(root: &Path, suite: &str, full_only: bool) -> Option<Self> {
        let dir = Self::dir(root, suite);
        let full = Self::load(&dir.join(format!("{LATEST}.json"))).ok();
        if full_only {
            return full;
        }
        let quick = Self::load(&dir.join(format!("{QUICK}.json"))).ok();
        match (full, quick) {
            (Some(f), Some(q)) => Some(if q.started > f.started { q } else { f }),
            (f, q) => f.or(q),
        }
    }

    /// Reads a results file.
    ///
    /// # Errors
    /// The file cannot be read or is not a results file.
    pub fn load(path: &Path) -> Result<Self, ResultsError> {
        let bytes = std::fs::read(path).map_err(|e| fail(path, e))?;
        serde_json::from_slice(&bytes).map_err(|e| fail(path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Results {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/results-sample.json"
        ))
        .expect("sample results");
        serde_json::from_str(&text).expect("results json")
    }

    #[test]
    fn a_quick_run_goes_beside_the_full_one_and_shows_while_newer() {
        let dir = tempfile::tempdir().unwrap();
        let mut full = sample();
        full.quick = false;
        full.started = "2026-12-01T10:00:00Z".into();
        let path = full.write(dir.path()).unwrap();
        assert!(path.ends_with("stream/latest.json"));
        let mut quick = full.clone();
        quick.quick = true;
        quick.started = "2026-12-02T10:00:00Z".into();
        let path = quick.write(dir.path()).unwrap();
        assert!(path.ends_with("stream/quick.json"));
        let stream = Results::dir(dir.path(), "stream");
        assert!(!Results::load(&stream.join("latest.json")).unwrap().quick);
        assert!(stream.join("quick.csv").is_file() && stream.join("latest.csv").is_file());
        // The newer shows; full_only never takes the quick run.
        assert!(
            Results::load_suite(dir.path(), "stream", false)
                .unwrap()
                .quick
        );
        assert!(
            !Results::load_suite(dir.path(), "stream", true)
                .unwrap()
                .quick
        );
        // A full run after it shows again.
        full.started = "2026-12-03T10:00:00Z".into();
        full.write(dir.path()).unwrap();
        assert!(
            !Results::load_suite(dir.path(), "stream", false)
                .unwrap()
                .quick
        );
        assert!(Results::load_suite(dir.path(), "workers", false).is_none());
    }
}
