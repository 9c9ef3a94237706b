//! A CPU quota on this process that changes on schedule: a cgroup of its own, `cpu.max` on
//! cgroup v2, `cpu.cfs_quota_us` over `cpu.cfs_period_us` on v1 (this machine's
//! `/sys/fs/cgroup/cpu`). The process moves in whole (every thread), and back out to the
//! cgroup it came from when the cap is dropped; the cgroup is removed then, and cgroups left
//! by runs that were killed are removed by the next.

use std::path::{Path, PathBuf};

/// Why the cap could not be set.
#[derive(Debug, thiserror::Error)]
pub enum CpuCapError {
    #[error(
        "a CPU quota needs root (a cgroup of its own): run as root, e.g. `sudo cargo xtask perf …`"
    )]
    NotRoot,
    #[error(
        "no CPU controller: neither cgroup v2 (/sys/fs/cgroup/cgroup.controllers with cpu) nor v1 (/sys/fs/cgroup/cpu)"
    )]
    NoController,
    #[error("cgroup {path}: {why}")]
    Cgroup { path: String, why: String },
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Version {
    V1,
    V2,
}

/// The quota period, µs.
const PERIOD_US: u64 = 100_000;

/// This process in a cgroup with a CPU quota; dropping it moves the process back and removes
/// the cgroup.
#[derive(Debug)]
pub struct CpuQuota {
    dir: PathBuf,
    /// Where the process was (its `cgroup.procs`).
    home: PathBuf,
    version: Version,
}

fn v1_root() -> &'static Path {
    Path::new("/sys/fs/cgroup/cpu")
}

fn v2_root() -> &'static Path {
    Path::new("/sys/fs/cgroup")
}

fn write(path: &Path, value: &str) -> Result<(), CpuCapError> {
    std::fs::write(path, value).map_err(|e| CpuCapError::Cgroup {
        path: path.display().to_string(),
        why: format!("writing {value:?}: {e}"),
    })
}

impl CpuQuota {
    /// Moves this process into a new cgroup `sm-<pid>-<tag>` at `cores`.
    ///
    /// # Errors
    /// Not root, no CPU controller, or the cgroup could not be made or joined.
    pub fn create(tag: &str, cores: f64) -> Result<Self, CpuCapError> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err(CpuCapError::NotRoot);
        }
        let v2 = std::fs::read_to_string(v2_root().join("cgroup.controllers"))
            .is_ok_and(|c| c.split_whitespace().any(|k| k == "cpu"));
        let (version, root) = if v2 {
            (Version::V2, v2_root())
        } else if v1_root().join("cpu.cfs_quota_us").exists() {
            (Version::V1, v1_root())
        } else {
            return Err(CpuCapError::NoController);
        };
        remove_orphans(root);
        let dir = root.join(format!("sm-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| CpuCapError::Cgroup {
            path: dir.display().to_string(),
            why: e.to_string(),
        })?;
        let cap = CpuQuota {
            home: root.join("cgroup.procs"),
            dir,
            version,
        };
        if version == Version::V1 {
            write(&cap.dir.join("cpu.cfs_period_us"), &PERIOD_US.to_string())?;
        }
        cap.set_cores(cores)?;
        write(
            &cap.dir.join("cgroup.procs"),
            &std::process::id().to_string(),
        )?;
        Ok(cap)
    }

    /// Sets the quota to `cores` (1.0: one core's time per period).
    ///
    /// # Errors
    /// The kernel refused the value.
    pub fn set_cores(&self, cores: f64) -> Result<(), CpuCapError> {
        let quota = ((cores * PERIOD_US as f64).round() as u64).max(1000);
        match self.version {
            Version::V1 => write(&self.dir.join("cpu.cfs_quota_us"), &quota.to_string()),
            Version::V2 => write(&self.dir.join("cpu.max"), &format!("{quota} {PERIOD_US}")),
        }
    }

    /// The cgroup's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Removes `sm-<pid>-…` cgroups whose process no longer runs (a run killed before its
/// `Drop`); a cgroup with nothing in it can be removed with `rmdir`.
fn remove_orphans(root: &Path) {
    for name in crate::shaped::orphans(root) {
        let _ = std::fs::remove_dir(root.join(name));
    }
}

impl Drop for CpuQuota {
    fn drop(&mut self) {
        let _ = std::fs::write(&self.home, std::process::id().to_string());
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// Sampling interval of a run under a quota, ms.
pub const SAMPLE_MS: u64 = 500;

/// One sample of a stream under a quota (every [`SAMPLE_MS`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct QuotaSample {
    /// Since the measured window began.
    pub t_ms: u64,
    /// The quota then, cores.
    pub cores: f64,
    /// Frames sent since the last sample, per second.
    pub fps: f64,
    /// Frames dropped for falling behind since the window began.
    pub behind: u64,
}

/// What a stream under a quota did.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct QuotaFigures {
    pub schedule: Vec<(f64, f64)>,
    pub timeline: Vec<QuotaSample>,
    /// While the quota was at its lowest (from the first step down to the next step up, or
    /// the window's end): frames sent per second ÷ the configured rate.
    pub capped_fps_ratio: Option<f64>,
    /// … and the frames dropped for falling behind, ÷ the frames the stream should have made.
    pub capped_behind_ratio: Option<f64>,
}

impl QuotaFigures {
    /// The figures of a timeline at `fps` frames per second configured.
    pub fn of(schedule: Vec<(f64, f64)>, timeline: Vec<QuotaSample>, fps: u32) -> Self {
        let (mut capped_fps_ratio, mut capped_behind_ratio) = (None, None);
        if let Some((t_cap, lift)) = crate::shaped::cap_and_lift(&schedule) {
            let end = lift.unwrap_or(f64::INFINITY) * 1000.0;
            let inside: Vec<&QuotaSample> = timeline
                .iter()
                .filter(|s| s.t_ms as f64 > t_cap * 1000.0 && (s.t_ms as f64) <= end)
                .collect();
            if let (Some(first), Some(last)) = (inside.first(), inside.last()) {
                // Each sample's frames over the time it actually covered (a sampler's sleep
                // runs late now and then: the nominal interval would count them twice).
                let mut prev_ms = timeline
                    .iter()
                    .take_while(|s| s.t_ms < first.t_ms)
                    .last()
                    .map_or(first.t_ms.saturating_sub(SAMPLE_MS), |s| s.t_ms);
                let window_start_ms = prev_ms;
                let mut frames = 0.0;
                for s in &inside {
                    frames += s.fps * s.t_ms.saturating_sub(prev_ms) as f64 / 1000.0;
                    prev_ms = s.t_ms;
                }
                let seconds = last.t_ms.saturating_sub(window_start_ms) as f64 / 1000.0;
                let expected = seconds * f64::from(fps.max(1));
                capped_fps_ratio = Some(frames / expected);
                let before = timeline
                    .iter()
                    .take_while(|s| s.t_ms < first.t_ms)
                    .last()
                    .map_or(0, |s| s.behind);
                capped_behind_ratio = Some(last.behind.saturating_sub(before) as f64 / expected);
            }
        }
        QuotaFigures {
            schedule,
            timeline,
            capped_fps_ratio,
            capped_behind_ratio,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_capped_window_is_from_the_step_down_to_the_step_up() {
        let schedule = vec![(0.0, 2.0), (1.0, 0.5), (2.0, 2.0)];
        let s = |t_ms, fps, behind| QuotaSample {
            t_ms,
            cores: crate::shaped::rate_at(&schedule, t_ms as f64 / 1000.0),
            fps,
            behind,
        };
        let timeline = vec![
            s(500, 30.0, 0),
            s(1000, 30.0, 0),
            s(1500, 24.0, 3),
            s(2000, 27.0, 6),
            s(2500, 30.0, 6),
        ];
        let f = QuotaFigures::of(schedule, timeline, 30);
        assert_eq!(f.timeline[2].cores, 0.5);
        assert!((f.capped_fps_ratio.unwrap() - 0.85).abs() < 1e-9);
        assert!((f.capped_behind_ratio.unwrap() - 0.2).abs() < 1e-9);
    }

    #[test]
    fn the_process_moves_in_and_back_out_and_the_cgroup_goes() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            // The harness's root suites cover it where root is not had (CI runs as root).
            assert!(matches!(
                CpuQuota::create("test", 1.0),
                Err(CpuCapError::NotRoot)
            ));
            return;
        }
        let cap = CpuQuota::create("test", 0.5).unwrap();
        let dir = cap.dir().to_path_buf();
        let me = std::process::id().to_string();
        let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap();
        assert!(procs.lines().any(|l| l == me), "{procs}");
        cap.set_cores(1.5).unwrap();
        drop(cap);
        assert!(!dir.exists());
    }
}
