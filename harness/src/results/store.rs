//! A suite's files under the results folder: `latest.json`, its timestamped copy and
//! `latest.csv`, written and read back.

use super::files::{ResultsError, fail, suite_dir, write_atomic};
use super::model::Results;
use std::path::{Path, PathBuf};

impl Results {
    /// The suite's folder under `root`.
    pub fn dir(root: &Path, suite: &str) -> PathBuf {
        suite_dir(root, suite)
    }

    /// Writes `latest.json`, a timestamped copy, and `latest.csv` under `root/<suite>/`.
    /// Returns the path of `latest.json`. The JSON is compact (no indentation; the span
    /// histograms are already compressed): `latest.json` is committed, and `cargo xtask report`
    /// rebuilds the report from it.
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
        let latest = dir.join("latest.json");
        write_atomic(&dir.join(format!("{stamp}.json")), &json)?;
        write_atomic(&latest, &json)?;
        write_atomic(
            &dir.join("latest.csv"),
            &self.csv().map_err(|e| fail(&dir, e))?,
        )?;
        Ok(latest)
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
