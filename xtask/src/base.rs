//! The timed figures' base: the `harness` built from the commit that last changed
//! `results/baselines/ratios.json`, run beside this tree's by `harness gate`.
//!
//! It is built from that commit's files (`git archive`) in a folder of its own, into the
//! workspace's `target/` so that it reuses every compiled dependency; its own crates get another
//! version (`-base`), so their artifacts sit beside this tree's instead of replacing them.
//! Built once per commit: `target/gate/base/<commit>/harness`.

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn git(root: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(root)
        .output()
        .with_context(|| format!("running git {}", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "git {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The base `harness` and the commit it was built from (short), building it if need be; the
/// head's own `harness` where the code has not changed since that commit.
///
/// # Errors
/// Not a git checkout with the history (a shallow clone), no commit of ratios.json, or the
/// base does not build.
pub fn harness(root: &Path, cargo: impl Fn() -> Command, head: &Path) -> Result<(PathBuf, String)> {
    if git(root, &["rev-parse", "--is-shallow-repository"])? == "true" {
        bail!(
            "the gate's timed figures build the commit that last changed \
             results/baselines/ratios.json, and this clone is shallow: run \
             `git fetch --unshallow` first"
        );
    }
    let sha = git(
        root,
        &[
            "log",
            "-1",
            "--format=%H",
            "--",
            "results/baselines/ratios.json",
        ],
    )?;
    if sha.is_empty() {
        bail!(
            "no commit has results/baselines/ratios.json yet: `cargo xtask gate --update` writes \
             it; commit it, and that commit is the timed figures' base"
        );
    }
    let short = sha[..10.min(sha.len())].to_string();
    // Tracked code as at the base, and nothing untracked: the head is the base.
    let unchanged = Command::new("git")
        .args(["diff", "--quiet", &sha, "--", ".", ":(exclude)results"])
        .current_dir(root)
        .status()?
        .success()
        && git(
            root,
            &["status", "--porcelain", "--", ".", ":(exclude)results"],
        )?
        .is_empty();
    if unchanged {
        return Ok((head.to_path_buf(), format!("{short} (the same code)")));
    }
    let dir = root.join("target/gate/base").join(&sha);
    let exe = dir.join("harness");
    if exe.exists() {
        return Ok((exe, short));
    }
    eprintln!("gate: building the timed figures' base, {short} (once per base commit)");
    let src = dir.join("src");
    let _ = std::fs::remove_dir_all(&src);
    std::fs::create_dir_all(&src)?;
    let mut archive = Command::new("git")
        .args(["archive", &sha])
        .current_dir(root)
        .stdout(Stdio::piped())
        .spawn()
        .context("running git archive")?;
    let untar = Command::new("tar")
        .arg("-x")
        .arg("-C")
        .arg(&src)
        .stdin(archive.stdout.take().context("git archive's stdout")?)
        .status()
        .context("running tar")?;
    if !archive.wait()?.success() || !untar.success() {
        bail!("extracting {short} into {} failed", src.display());
    }
    // Another version for the base's own crates: their artifacts then get other names in
    // target/ than this tree's (the dependencies, the same, are shared).
    let manifest = src.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest)?;
    let Some(at) = text.find("\nversion = \"") else {
        bail!("{}: no workspace version line", manifest.display());
    };
    let end = at + text[at + 1..].find('\n').context("version line")? + 1;
    let line = &text[at + 1..end];
    let versioned = format!(
        "{}{}-base\"{}",
        &text[..at + 1],
        line.trim_end_matches('"'),
        &text[end..]
    );
    std::fs::write(&manifest, versioned)?;
    let target = root.join("target");
    let status = cargo()
        .args(["build", "--release", "--quiet", "-p", "harness"])
        .current_dir(&src)
        .env("CARGO_TARGET_DIR", &target)
        .status()?;
    if !status.success() {
        bail!("building the base {short} failed ({status})");
    }
    let built = target.join("release/harness");
    std::fs::copy(&built, &exe)?;
    // The build put the base's binary where this tree's goes: remove it, and the next build
    // of this tree links its own there again.
    std::fs::remove_file(&built)?;
    let _ = std::fs::remove_dir_all(&src);
    Ok((exe, short))
}
