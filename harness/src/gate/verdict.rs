//! Figures measured now against their baselines: a [`Verdict`] per figure, one [`Row`] each,
//! and every row as a Markdown [`table`].

use super::baselines::{InstructionBaselines, RatioBaselines, cpu};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// What the gate concluded for one figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    Pass,
    Improved,
    Regressed,
    /// Measured, but with no baseline yet.
    New,
    /// In the baseline, but not measured now.
    Missing,
    /// Measured on another kind of processor than the baseline's: shown, not gated.
    OtherMachine,
}

impl Verdict {
    fn fails(self) -> bool {
        matches!(self, Verdict::Regressed | Verdict::Missing)
    }
}

/// One row of the gate's table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub kind: &'static str,
    pub name: String,
    pub baseline: Option<f64>,
    pub now: Option<f64>,
    /// 95% confidence interval of the median (ratios).
    pub interval: Option<(f64, f64)>,
    /// The threshold that applied, as a fraction.
    pub threshold: f64,
    pub verdict: Verdict,
}

impl Row {
    /// now ÷ baseline − 1.
    pub fn change(&self) -> Option<f64> {
        match (self.baseline, self.now) {
            (Some(b), Some(n)) if b != 0.0 => Some(n / b - 1.0),
            _ => None,
        }
    }
}

/// Instruction counts now against their baselines.
pub fn compare_instructions(base: &InstructionBaselines, now: &BTreeMap<String, u64>) -> Vec<Row> {
    compare_instructions_on(base, now, &cpu())
}

/// [`compare_instructions`] for counts taken on processor `here`.
pub fn compare_instructions_on(
    base: &InstructionBaselines,
    now: &BTreeMap<String, u64>,
    here: &str,
) -> Vec<Row> {
    let other = !base.cpu.is_empty() && base.cpu != here;
    let mut rows = Vec::new();
    for (name, &count) in now {
        let tol = base.overrides.get(name).copied().unwrap_or(base.tolerance);
        let baseline = base.counts.get(name).copied();
        let verdict = match baseline {
            None => Verdict::New,
            Some(_) if other => Verdict::OtherMachine,
            Some(b) if count as f64 > b as f64 * (1.0 + tol) => Verdict::Regressed,
            Some(b) if (count as f64) < b as f64 * (1.0 - tol) => Verdict::Improved,
            Some(_) => Verdict::Pass,
        };
        rows.push(Row {
            kind: "instructions",
            name: name.clone(),
            baseline: baseline.map(|b| b as f64),
            now: Some(count as f64),
            interval: None,
            threshold: tol,
            verdict,
        });
    }
    for (name, &b) in &base.counts {
        if !now.contains_key(name) {
            rows.push(Row {
                kind: "instructions",
                name: name.clone(),
                baseline: Some(b as f64),
                now: None,
                interval: None,
                threshold: base.overrides.get(name).copied().unwrap_or(base.tolerance),
                verdict: Verdict::Missing,
            });
        }
    }
    rows
}

/// The median of `v` (NaN for none).
pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

/// A 95% bootstrap percentile interval of the median of `samples` (deterministic: a fixed
/// seed, 2000 resamples).
pub fn median_interval(samples: &[f64]) -> (f64, f64) {
    if samples.len() < 2 {
        let m = median(samples);
        return (m, m);
    }
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let n = samples.len();
    let mut medians: Vec<f64> = (0..2000)
        .map(|_| {
            let resample: Vec<f64> = (0..n)
                .map(|_| samples[(next() % n as u64) as usize])
                .collect();
            median(&resample)
        })
        .collect();
    medians.sort_by(f64::total_cmp);
    (medians[50], medians[1949])
}

/// Ratio samples now against their baselines (every ratio is higher-is-better).
pub fn compare_ratios(base: &RatioBaselines, now: &BTreeMap<String, Vec<f64>>) -> Vec<Row> {
    let mut rows = Vec::new();
    for (name, samples) in now {
        let m = median(samples);
        let (lo, hi) = median_interval(samples);
        let b = base.ratios.get(name);
        let noise = b.map_or(0.10, |b| b.noise);
        let verdict = match b {
            None => Verdict::New,
            Some(b) if hi < b.median * (1.0 - noise) => Verdict::Regressed,
            Some(b) if lo > b.median * (1.0 + noise) => Verdict::Improved,
            Some(_) => Verdict::Pass,
        };
        rows.push(Row {
            kind: "ratio",
            name: name.clone(),
            baseline: b.map(|b| b.median),
            now: Some(m),
            interval: Some((lo, hi)),
            threshold: noise,
            verdict,
        });
    }
    for (name, b) in &base.ratios {
        if !now.contains_key(name) {
            rows.push(Row {
                kind: "ratio",
                name: name.clone(),
                baseline: Some(b.median),
                now: None,
                interval: None,
                threshold: b.noise,
                verdict: Verdict::Missing,
            });
        }
    }
    rows
}

/// Whether any row fails the gate.
pub fn failed(rows: &[Row]) -> bool {
    rows.iter().any(|r| r.verdict.fails())
}

/// Every row as a Markdown table.
pub fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| Kind | Benchmark | Baseline | Now | 95% CI | Change | Threshold | Verdict |\n\
         |---|---|---:|---:|---|---:|---:|---|\n",
    );
    let num = |v: Option<f64>, kind: &str| match (v, kind) {
        (Some(v), "instructions") => format!("{v:.0}"),
        (Some(v), _) => format!("{v:.4}"),
        (None, _) => "-".into(),
    };
    for r in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            r.kind,
            r.name,
            num(r.baseline, r.kind),
            num(r.now, r.kind),
            r.interval
                .map_or("-".into(), |(lo, hi)| format!("{lo:.4} – {hi:.4}")),
            r.change()
                .map_or("-".into(), |c| format!("{:+.2}%", c * 100.0)),
            if r.kind == "ratio" {
                format!("−{:.0}%", r.threshold * 100.0)
            } else {
                format!("+{:.1}%", r.threshold * 100.0)
            },
            match r.verdict {
                Verdict::Pass => "pass",
                Verdict::Improved => "improved (update the baseline)",
                Verdict::Regressed => "**REGRESSION**",
                Verdict::New => "new (no baseline)",
                Verdict::OtherMachine => "shown, not gated (baseline from another processor)",
                Verdict::Missing => "**missing**",
            }
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::baselines::RatioBaseline;

    fn counts(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn instruction_counts_regress_improve_or_pass_by_tolerance() {
        let base = InstructionBaselines {
            tolerance: 0.02,
            overrides: [("noisy".to_string(), 0.10)].into(),
            counts: counts(&[
                ("a", 1000),
                ("b", 1000),
                ("c", 1000),
                ("noisy", 1000),
                ("gone", 5),
            ]),
            cpu: String::new(),
        };
        let now = counts(&[
            ("a", 1021),
            ("b", 1019),
            ("c", 970),
            ("noisy", 1080),
            ("fresh", 1),
        ]);
        let rows = compare_instructions_on(&base, &now, "");
        let verdict = |n: &str| rows.iter().find(|r| r.name == n).unwrap().verdict;
        assert_eq!(verdict("a"), Verdict::Regressed);
        assert_eq!(verdict("b"), Verdict::Pass);
        assert_eq!(verdict("c"), Verdict::Improved);
        assert_eq!(verdict("noisy"), Verdict::Pass, "the override applies");
        assert_eq!(verdict("fresh"), Verdict::New);
        assert_eq!(verdict("gone"), Verdict::Missing);
        assert!(failed(&rows));
        let t = table(&rows);
        assert!(t.contains("**REGRESSION**") && t.contains("+2.10%"), "{t}");
        // Counts from another processor kind are shown, never failed on.
        let elsewhere = InstructionBaselines {
            cpu: "Other CPU (avx2)".into(),
            ..base
        };
        let rows = compare_instructions_on(&elsewhere, &now, "AMD EPYC (avx2 avx512f)");
        assert!(rows.iter().any(|r| r.verdict == Verdict::OtherMachine));
        assert!(rows.iter().all(|r| r.verdict != Verdict::Regressed));
    }

    /// Recorded data: ratio samples of real `cargo xtask gate` runs on this project's 2-core
    /// machine (2026-11-27): the unchanged tree, and a run with a deliberately slowed
    /// compositor (a needless pass over the luma plane, not committed).
    #[test]
    fn ratios_fail_only_when_the_whole_interval_is_beyond_the_noise() {
        // compositor bandwidth ÷ memcpy bandwidth, unchanged tree (run 1 of 5).
        const COMPOSE: [f64; 9] = [
            0.228, 0.207, 0.158, 0.208, 0.182, 0.177, 0.135, 0.169, 0.213,
        ];
        // The same with the slowed compositor.
        const SLOWED: [f64; 9] = [
            0.0358, 0.0326, 0.0365, 0.0327, 0.0327, 0.0355, 0.0341, 0.0325, 0.0324,
        ];
        // recorder fps ÷ no-op probe fps, unchanged tree (run 3 of 5): one sample at 1.47 and
        // one at 0.78 — the shared machine's noise.
        const NOISY: [f64; 9] = [1.0, 1.035, 1.046, 1.05, 1.471, 0.865, 0.925, 0.779, 0.977];
        let base = |median: f64| RatioBaselines {
            ratios: [(
                "r".to_string(),
                RatioBaseline {
                    median,
                    noise: 0.15,
                    what: "test".into(),
                },
            )]
            .into(),
        };
        let check = |baseline: f64, samples: &[f64]| {
            compare_ratios(
                &base(baseline),
                &[("r".to_string(), samples.to_vec())].into(),
            )[0]
            .verdict
        };
        // The baselines when these were recorded: compositor 0.2141, recorder 1.0012.
        assert_eq!(check(0.2141, &COMPOSE), Verdict::Pass);
        assert_eq!(check(0.2141, &SLOWED), Verdict::Regressed);
        assert_eq!(
            check(1.0012, &NOISY),
            Verdict::Pass,
            "noise alone never fails"
        );
        // Back from the slowed baseline: an improvement, not a failure.
        assert_eq!(check(0.0327, &COMPOSE), Verdict::Improved);
        // Criterion's rule: a 5% drop leaves the interval reaching the threshold (pass); a 20%
        // drop of the same samples puts all of it beyond (fail).
        let scaled = |f: f64| COMPOSE.iter().map(|r| r * f).collect::<Vec<_>>();
        assert_eq!(check(0.2141, &scaled(0.95)), Verdict::Pass);
        assert_eq!(check(0.2141, &scaled(0.80)), Verdict::Regressed);
    }

    #[test]
    fn bootstrap_interval_brackets_the_median() {
        let s = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0];
        let (lo, hi) = median_interval(&s);
        assert!(
            lo <= 4.0 && 4.0 <= hi && lo >= 1.0 && hi <= 7.0,
            "{lo} {hi}"
        );
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
