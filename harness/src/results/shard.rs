//! Spreading a sweep over machines: `--shard K/N` runs every N-th run of the sweep starting at
//! the K-th (K from 1; the runs are the points' repetitions in sweep order, so with one
//! repetition per point, every N-th point), and writes `results/<suite>/shard-K-of-N.json`
//! instead of `latest.json`; the `merge` module beside this one joins the N shard files of a
//! suite back into one results file, points in the sweep's order and a point's repetitions from
//! every shard combined (span histograms added, medians over all repetitions), so a CI matrix or
//! any job scheduler can run one sweep on N machines and report it as one. Side-by-side comparisons (`--compare-cli`, `--peers`) run
//! in shard 1 only.
//!
//! Without `--shard`, the shard comes from the environment of the engine that runs the array
//! of jobs ([`Shard::from_env`]): Kubernetes Indexed Jobs, Slurm job arrays, GitLab's
//! `parallel:` jobs, or `STREAM_MANAGER_SHARD=K/N` from any CI matrix.
//!
//! This file holds the [`Shard`] itself (parsing `K/N`, which points it runs, its file);
//! `merge` joins and writes shard files.

use super::files::suite_dir;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// One shard of a sweep: the `k`-th of `n` (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub k: usize,
    pub n: usize,
}

/// A shard that is not one: what was given, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ShardError(pub String);

impl FromStr for Shard {
    type Err = ShardError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| {
            ShardError(format!(
                "--shard {s:?}: {why} (expected K/N with 1 <= K <= N, e.g. 2/4)"
            ))
        };
        let (k, n) = s.split_once('/').ok_or_else(|| bad("no '/'"))?;
        let k: usize = k.trim().parse().map_err(|_| bad("K is not a number"))?;
        let n: usize = n.trim().parse().map_err(|_| bad("N is not a number"))?;
        if n == 0 || k == 0 || k > n {
            return Err(bad(&format!("K = {k} is not in 1..={n}")));
        }
        Ok(Shard { k, n })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.k, self.n)
    }
}

impl Shard {
    /// The shard an array-job engine gives this process, and where it came from, read from
    /// `env` (a lookup such as `|k| std::env::var(k).ok()`), first match first:
    ///
    /// - `STREAM_MANAGER_SHARD=K/N`: set it from any CI matrix (GitHub Actions:
    ///   `STREAM_MANAGER_SHARD: ${{ matrix.shard }}/4`);
    /// - Kubernetes Indexed Job: `JOB_COMPLETION_INDEX` (0-based) with
    ///   `STREAM_MANAGER_SHARDS=N` (the Job's `completions`, which Kubernetes does not expose);
    /// - Slurm job array: `SLURM_ARRAY_TASK_ID` from `SLURM_ARRAY_TASK_MIN` (default 0), of
    ///   `SLURM_ARRAY_TASK_COUNT`;
    /// - GitLab CI `parallel:`: `CI_NODE_INDEX` (1-based) of `CI_NODE_TOTAL`.
    ///
    /// `Ok(None)` where none is set.
    ///
    /// # Errors
    /// A variable is set but its value is not a shard (named, with its value).
    pub fn from_env(
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<(Shard, &'static str)>, ShardError> {
        let num = |k: &str| -> Result<Option<usize>, ShardError> {
            env(k)
                .map(|v| {
                    v.trim()
                        .parse::<usize>()
                        .map_err(|_| ShardError(format!("{k}={v:?} is not a whole number")))
                })
                .transpose()
        };
        let need = |k: &str, for_: &str| -> Result<usize, ShardError> {
            num(k)?.ok_or_else(|| ShardError(format!("{for_} is set but {k} is not")))
        };
        let make = |k: usize, n: usize, from: &'static str| {
            if n == 0 || k == 0 || k > n {
                Err(ShardError(format!(
                    "{from}: shard {k} of {n} is not in 1..={n}"
                )))
            } else {
                Ok(Some((Shard { k, n }, from)))
            }
        };
        if let Some(v) = env("STREAM_MANAGER_SHARD") {
            let s = v
                .parse::<Shard>()
                .map_err(|e| ShardError(format!("STREAM_MANAGER_SHARD: {e}")))?;
            return Ok(Some((s, "STREAM_MANAGER_SHARD")));
        }
        if let Some(i) = num("JOB_COMPLETION_INDEX")? {
            let n = need("STREAM_MANAGER_SHARDS", "JOB_COMPLETION_INDEX")?;
            return make(i + 1, n, "JOB_COMPLETION_INDEX (Kubernetes Indexed Job)");
        }
        if let Some(id) = num("SLURM_ARRAY_TASK_ID")? {
            let min = num("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
            let n = need("SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_ID")?;
            let k = id.checked_sub(min).ok_or_else(|| {
                ShardError(format!(
                    "SLURM_ARRAY_TASK_ID={id} is below SLURM_ARRAY_TASK_MIN={min}"
                ))
            })?;
            return make(k + 1, n, "SLURM_ARRAY_TASK_ID (Slurm job array)");
        }
        if let Some(k) = num("CI_NODE_INDEX")? {
            let n = need("CI_NODE_TOTAL", "CI_NODE_INDEX")?;
            return make(k, n, "CI_NODE_INDEX (GitLab CI parallel)");
        }
        Ok(None)
    }

    /// Whether the run (or point) at `index` (0-based, in sweep order) is this shard's.
    pub fn has(&self, index: usize) -> bool {
        index % self.n == self.k - 1
    }

    /// This shard's items, in order.
    pub fn select<T>(&self, items: Vec<T>) -> Vec<T> {
        items
            .into_iter()
            .enumerate()
            .filter(|(i, _)| self.has(*i))
            .map(|(_, t)| t)
            .collect()
    }

    /// The file a shard's results go to.
    pub fn file(&self, root: &Path, suite: &str) -> PathBuf {
        suite_dir(root, suite).join(format!("shard-{}-of-{}.json", self.k, self.n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_job_engines_give_the_shard_through_the_environment() {
        let from = |vars: &[(&str, &str)]| {
            let vars: Vec<(String, String)> = vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            Shard::from_env(move |k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()))
        };
        let shard = |k, n| Shard { k, n };
        assert_eq!(from(&[]), Ok(None));
        assert_eq!(
            from(&[("STREAM_MANAGER_SHARD", "2/4")]).unwrap().unwrap().0,
            shard(2, 4)
        );
        let k8s = from(&[
            ("JOB_COMPLETION_INDEX", "0"),
            ("STREAM_MANAGER_SHARDS", "3"),
        ]);
        assert_eq!(k8s.unwrap().unwrap().0, shard(1, 3));
        let slurm = from(&[
            ("SLURM_ARRAY_TASK_ID", "7"),
            ("SLURM_ARRAY_TASK_MIN", "5"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
        ]);
        assert_eq!(slurm.unwrap().unwrap().0, shard(3, 4));
        let gitlab = from(&[("CI_NODE_INDEX", "4"), ("CI_NODE_TOTAL", "4")]);
        assert_eq!(gitlab.unwrap().unwrap().0, shard(4, 4));
        // Set but wrong: an error naming the variable and its value, never a silent full run.
        for (vars, names) in [
            (
                vec![("JOB_COMPLETION_INDEX", "2")],
                "STREAM_MANAGER_SHARDS is not",
            ),
            (
                vec![
                    ("JOB_COMPLETION_INDEX", "3"),
                    ("STREAM_MANAGER_SHARDS", "3"),
                ],
                "shard 4 of 3",
            ),
            (
                vec![("SLURM_ARRAY_TASK_ID", "x")],
                "SLURM_ARRAY_TASK_ID=\"x\"",
            ),
            (
                vec![("STREAM_MANAGER_SHARD", "5/4")],
                "STREAM_MANAGER_SHARD",
            ),
        ] {
            let e = from(&vars).unwrap_err();
            assert!(e.0.contains(names), "{e}");
        }
    }

    #[test]
    fn shards_parse_and_cover_every_point_once() {
        assert_eq!("2/4".parse::<Shard>(), Ok(Shard { k: 2, n: 4 }));
        for bad in ["0/4", "5/4", "1/0", "x/2", "3"] {
            let e = bad.parse::<Shard>().unwrap_err();
            assert!(e.0.contains(bad) && e.0.contains("K/N"), "{e}");
        }
        let n = 3;
        let mut seen = vec![0; 10];
        for k in 1..=n {
            for i in (Shard { k, n }).select((0..10).collect()) {
                seen[i] += 1;
            }
        }
        assert!(seen.iter().all(|&c| c == 1), "{seen:?}");
    }
}
