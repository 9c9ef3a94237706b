//! Committed results: files as git's index holds them, never as the working tree has them.
//!
//! `cargo xtask perf …` rewrites `results/` in the working tree (the README's first command
//! does), so whatever checks the committed results (the tests, `results check --committed`)
//! reads them from the index: the tree a user has after any `perf` run checks the same as a
//! fresh clone.

use super::files::{ResultsError, fail, write_atomic};
use std::path::{Path, PathBuf};
use std::process::Command;

fn git(repo: &Path, args: &[&str]) -> Result<Vec<u8>, ResultsError> {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .output()
        .map_err(|e| fail(repo, format!("running git {}: {e}", args.join(" "))))?;
    if !out.status.success() {
        return Err(fail(
            repo,
            format!(
                "git {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        ));
    }
    Ok(out.stdout)
}

/// The bytes of `rel` (a path relative to the repository's root) as git's index holds it.
///
/// # Errors
/// `repo` is not a git checkout, or the index has no such file.
pub fn read(repo: &Path, rel: &str) -> Result<Vec<u8>, ResultsError> {
    git(repo, &["show", &format!(":{rel}")])
}

/// Every file under `prefix` (relative to the repository's root) that the index holds, as
/// paths relative to the root, sorted.
///
/// # Errors
/// `repo` is not a git checkout.
pub fn list(repo: &Path, prefix: &str) -> Result<Vec<String>, ResultsError> {
    let out = git(repo, &["ls-files", "-z", "--", prefix])?;
    let mut files: Vec<String> = out
        .split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect();
    files.sort();
    Ok(files)
}

/// Writes every file under `prefix` that the index holds into `to`, keeping the paths below
/// `prefix` (`results/stream/latest.json` with prefix `results` lands at
/// `to/stream/latest.json`). Returns the files written.
///
/// # Errors
/// `repo` is not a git checkout, or a file could not be written.
pub fn export(repo: &Path, prefix: &str, to: &Path) -> Result<Vec<PathBuf>, ResultsError> {
    let prefix = prefix.trim_end_matches('/');
    let mut written = Vec::new();
    for rel in list(repo, prefix)? {
        let below = rel
            .strip_prefix(prefix)
            .map_or(rel.as_str(), |r| r.trim_start_matches('/'));
        let path = to.join(below);
        write_atomic(&path, &read(repo, &rel)?)?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let run = |args: &[&str]| {
            let ok = Command::new("git")
                .arg("-C")
                .arg(dir.path())
                .args(args)
                .output()
                .unwrap()
                .status
                .success();
            assert!(ok, "git {args:?}");
        };
        run(&["init", "-q"]);
        std::fs::create_dir_all(dir.path().join("results/a")).unwrap();
        std::fs::write(dir.path().join("results/a/latest.json"), "committed").unwrap();
        run(&["add", "results"]);
        dir
    }

    #[test]
    fn reads_the_index_not_the_working_tree() {
        let dir = repo();
        std::fs::write(dir.path().join("results/a/latest.json"), "rewritten").unwrap();
        std::fs::write(dir.path().join("results/a/new.json"), "untracked").unwrap();
        assert_eq!(
            read(dir.path(), "results/a/latest.json").unwrap(),
            b"committed"
        );
        assert_eq!(
            list(dir.path(), "results").unwrap(),
            ["results/a/latest.json"]
        );
        let out = tempfile::tempdir().unwrap();
        let files = export(dir.path(), "results/", out.path()).unwrap();
        assert_eq!(files, [out.path().join("a/latest.json")]);
        assert_eq!(std::fs::read(&files[0]).unwrap(), b"committed");
        let missing = read(dir.path(), "results/b.json").unwrap_err();
        assert!(missing.to_string().contains("git show"), "{missing}");
    }
}
