//! Joining the shard files of a suite back into one [`Results`], points in the sweep's order
//! ([`merge`]), and writing one shard's results to its own file ([`write()`]).

use super::files::{ResultsError, write_atomic};
use super::model::{PointResult, Results};
use super::shard::Shard;
use std::path::{Path, PathBuf};

/// Why shards could not be merged.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error(transparent)]
    Results(#[from] ResultsError),
    #[error("{0}: no shard-K-of-N.json files (run `cargo xtask perf {1} --shard K/N` first)")]
    None(String, String),
    #[error("{dir}: shards of different sweeps ({what})")]
    Mismatch { dir: String, what: String },
    #[error("{dir}: shard {missing} of {n} is missing")]
    Missing {
        dir: String,
        missing: usize,
        n: usize,
    },
}

/// Joins the shard files of `suite` under `root` into one [`Results`] (not written).
///
/// # Errors
/// No shards, shards of different sweeps or sizes, or a missing shard.
pub fn merge(root: &Path, suite: &str) -> Result<Results, MergeError> {
    let dir = Results::dir(root, suite);
    let shown = dir.display().to_string();
    let mut shards: Vec<(Shard, Results)> = Vec::new();
    let entries =
        std::fs::read_dir(&dir).map_err(|_| MergeError::None(shown.clone(), suite.to_string()))?;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(spec) = name
            .strip_prefix("shard-")
            .and_then(|r| r.strip_suffix(".json"))
        else {
            continue;
        };
        let Ok(shard) = spec.replacen("-of-", "/", 1).parse::<Shard>() else {
            continue;
        };
        shards.push((shard, Results::load(&e.path())?));
    }
    merge_shards(&shown, suite, shards)
}

/// [`merge`] on shard results already read.
///
/// # Errors
/// As [`merge`].
pub fn merge_shards(
    dir: &str,
    suite: &str,
    mut shards: Vec<(Shard, Results)>,
) -> Result<Results, MergeError> {
    shards.sort_by_key(|(s, _)| s.k);
    let Some((first_shard, first)) = shards.first() else {
        return Err(MergeError::None(dir.to_string(), suite.to_string()));
    };
    let n = first_shard.n;
    let mismatch = |what: String| MergeError::Mismatch {
        dir: dir.to_string(),
        what,
    };
    for (s, r) in &shards {
        if s.n != n {
            return Err(mismatch(format!("1/{n} beside {s}")));
        }
        if r.scenario != first.scenario || r.quick != first.quick {
            return Err(mismatch(format!(
                "{} (quick {}) beside {} (quick {})",
                first.scenario, first.quick, r.scenario, r.quick
            )));
        }
    }
    for k in 1..=n {
        if shards.iter().filter(|(s, _)| s.k == k).count() != 1 {
            return Err(MergeError::Missing {
                dir: dir.to_string(),
                missing: k,
                n,
            });
        }
    }
    // Every shard names the whole sweep's points in order; a point's parts (its repetitions
    // run in different shards) combine into one.
    let sweep = &first.sweep;
    if sweep.is_empty() {
        return Err(mismatch(
            "shard files without the sweep's order (from an older harness: run them again)".into(),
        ));
    }
    if let Some((s, _)) = shards.iter().find(|(_, r)| &r.sweep != sweep) {
        return Err(mismatch(format!("shard {s} of another sweep's points")));
    }
    let mut points = Vec::with_capacity(sweep.len());
    for id in sweep {
        let parts: Vec<PointResult> = shards
            .iter()
            .flat_map(|(_, r)| r.points.iter().filter(|p| &p.id == id).cloned())
            .collect();
        if !parts.is_empty() {
            points.push(PointResult::combine(parts));
        }
    }
    let mut merged = first.clone();
    merged.points = points;
    merged.started = shards
        .iter()
        .map(|(_, r)| r.started.clone())
        .min()
        .unwrap_or_default();
    merged.finished = shards
        .iter()
        .map(|(_, r)| r.finished.clone())
        .max()
        .unwrap_or_default();
    merged.shard = None;
    merged.sweep = Vec::new();
    let machines: std::collections::BTreeSet<String> = shards
        .iter()
        .map(|(_, r)| format!("{} × {}", r.machine.cores, r.machine.cpu_model))
        .collect();
    if machines.len() > 1 {
        merged.description = format!(
            "{} — merged from {n} shards run on different machines ({}); the machine section \
             is shard 1's",
            merged.description,
            machines.into_iter().collect::<Vec<_>>().join("; ")
        );
    }
    Ok(merged)
}

/// Writes a shard's results to its own file; returns the path.
///
/// # Errors
/// The file could not be written.
pub fn write(results: &Results, shard: Shard, root: &Path) -> Result<PathBuf, ResultsError> {
    let path = shard.file(root, &results.suite);
    let json = serde_json::to_vec_pretty(results).map_err(|e| ResultsError {
        path: path.clone(),
        message: e.to_string(),
    })?;
    write_atomic(&path, &json)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_shards_restores_the_sweep_order_and_combines_split_points() {
        // The committed results of the stream suite (as git's index holds them: a `perf` run
        // rewrites the working tree's): their span histograms are serialized.
        let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let bytes = crate::results::committed::read(&repo, "results/stream/latest.json")
            .expect("committed results");
        let text = String::from_utf8(bytes).unwrap();
        let whole: Results = serde_json::from_str(&text).expect("results json");
        assert!(whole.points.len() >= 3);
        let sweep: Vec<String> = whole.points.iter().map(|p| p.id.clone()).collect();
        let n = 2;
        let shards: Vec<(Shard, Results)> = (1..=n)
            .map(|k| {
                let s = Shard { k, n };
                let mut r = whole.clone();
                r.points = s.select(whole.points.clone());
                r.shard = Some(s);
                r.sweep = sweep.clone();
                (s, r)
            })
            .rev()
            .collect();
        let merged = merge_shards("x", "stream", shards.clone()).unwrap();
        let ids = |r: &Results| r.points.iter().map(|p| p.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&merged), ids(&whole));
        assert!(merged.sweep.is_empty() && merged.shard.is_none());
        let missing = merge_shards("x", "stream", shards[..1].to_vec()).unwrap_err();
        assert!(missing.to_string().contains("missing"), "{missing}");
        // The first point's repetitions split over both shards: one point again, its
        // histograms added and its medians over every repetition.
        let mut split = shards.clone();
        let p0 = whole.points[0].clone();
        for (_, r) in &mut split {
            if !r.points.iter().any(|p| p.id == p0.id) {
                r.points.insert(0, p0.clone());
            }
        }
        let merged = merge_shards("x", "stream", split).unwrap();
        assert_eq!(ids(&merged), ids(&whole));
        let m = &merged.points[0];
        assert_eq!(m.repetitions.len(), 2 * p0.repetitions.len());
        assert_eq!(m.dropped_frames, 2 * p0.dropped_frames);
        assert!(!p0.spans.is_empty());
        for (name, s) in &p0.spans {
            let (one, both) = (s.histogram().unwrap(), m.spans[name].histogram().unwrap());
            assert_eq!(both.len(), 2 * one.len(), "{name}: counts added");
            assert_eq!(both.value_at_quantile(0.5), one.value_at_quantile(0.5));
        }
    }
}
