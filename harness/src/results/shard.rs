//! Spreading a sweep over machines: `--shard K/N` runs every N-th point starting at the K-th
//! (K from 1), and writes `results/<suite>/shard-K-of-N.json` instead of `latest.json`;
//! the `merge` module beside this one joins the N shard files of a suite back into one results
//! file, points in the sweep's order, so a CI matrix or any job scheduler can run one sweep on
//! N machines and report it as one. Side-by-side comparisons (`--compare-cli`, `--peers`) run
//! in shard 1 only.
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

impl FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad =
            |why: &str| format!("--shard {s:?}: {why} (expected K/N with 1 <= K <= N, e.g. 2/4)");
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
    /// Whether the point at `index` (0-based, in sweep order) is this shard's.
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
    fn shards_parse_and_cover_every_point_once() {
        assert_eq!("2/4".parse::<Shard>(), Ok(Shard { k: 2, n: 4 }));
        for bad in ["0/4", "5/4", "1/0", "x/2", "3"] {
            let e = bad.parse::<Shard>().unwrap_err();
            assert!(e.contains(bad) && e.contains("K/N"), "{e}");
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
