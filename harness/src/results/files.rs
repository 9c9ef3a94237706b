//! Writing results files whole (a temporary file and a rename), the error every results file
//! operation returns, a suite's folder, and the run's timestamps.

use std::io::Write;
use std::path::{Path, PathBuf};

/// A results-file failure.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ResultsError {
    pub path: PathBuf,
    pub message: String,
}

pub(super) fn fail(path: &Path, e: impl std::fmt::Display) -> ResultsError {
    ResultsError {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Writes `bytes` to `path` through a temporary file in the same folder and a rename.
///
/// # Errors
/// The folder cannot be created or the file written.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ResultsError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| fail(dir, e))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| fail(dir, e))?;
    tmp.write_all(bytes).map_err(|e| fail(path, e))?;
    tmp.as_file().sync_all().map_err(|e| fail(path, e))?;
    tmp.persist(path).map_err(|e| fail(path, e.error))?;
    Ok(())
}

/// The suite's folder under `root`.
pub fn suite_dir(root: &Path, suite: &str) -> PathBuf {
    root.join(suite)
}

/// Now as an RFC 3339 UTC timestamp (seconds).
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_whole_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/latest.json");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let leftovers = std::fs::read_dir(dir.path().join("a")).unwrap().count();
        assert_eq!(leftovers, 1);
    }
}
