//! `harness gate --power`: the gate measuring itself.
//!
//! For every timed figure it runs the gate's own measurement (`reps` repetitions or more, the
//! median pair ratio's 95% interval against 1 and the noise threshold) `tries` times, with this
//! `harness` as both the base and the head side, the head unchanged and slowed by each of
//! `slowdowns` (calibrated busy work in its per-frame path, [`clock::burn`](super::clock::burn)). Per figure it reports how many tries
//! each slowdown was caught in, the smallest slowdown caught in at least 9 of 10 tries, and the
//! false alarms among the unchanged tries. All levels share each repetition's reference-side
//! measurement and run interleaved with it, as the gate's own pairs do.

use super::baselines::{RatioBaselines, cpu};
use super::clock::seconds_per_unit;
use super::ratios::{Figure, figures, repetition, settled};
use super::verdict::{Verdict, compare_ratios};
use crate::results::write_atomic;
use crate::stats::{Pair, median, paired_ratio};
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// What `harness gate --power` was asked to do.
#[derive(Debug, Clone)]
pub struct PowerOptions {
    /// Folder of ratios.json.
    pub baselines: PathBuf,
    /// Gate measurements per level.
    pub tries: usize,
    /// Least repetitions in each (as `gate --reps`; up to 4× while not settled).
    pub reps: usize,
    /// Injected slowdowns, fractions of the measured side's CPU time.
    pub slowdowns: Vec<f64>,
    /// Where the JSON goes (`results/gate-power.json`; the report shows it).
    pub out: PathBuf,
    /// Also every try's (reference, measured) CPU seconds per level, to this JSON file: a
    /// change of the verdict rule can be judged on them without measuring again.
    pub samples: Option<PathBuf>,
}

/// The gate's measured resolution, as `results/gate-power.json` keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PowerReport {
    /// `git rev-parse --short=10 HEAD` (`+changes` with uncommitted changes).
    pub commit: String,
    /// The processor kind (the gate's baselines are per kind).
    pub processor: String,
    pub cores: usize,
    pub date: String,
    pub tries: usize,
    pub reps: usize,
    pub figures: Vec<FigurePower>,
    /// Set when the verdicts were worked out again from the recorded samples under later
    /// baselines (`gate --power --from-samples`): when, and why it is still this measurement.
    #[serde(default)]
    pub reevaluated: Option<String>,
}

/// One figure's power.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FigurePower {
    pub name: String,
    pub what: String,
    /// The noise threshold that applied.
    pub threshold: f64,
    /// This processor's baseline median (None: the figure is not gated here).
    pub baseline: Option<f64>,
    /// Median of the unchanged tries' medians.
    pub unchanged_median: f64,
    /// Unchanged tries that failed the gate.
    pub false_alarms: usize,
    /// Repetitions each try took (at least the gate's `reps`, more until settled).
    #[serde(default)]
    pub reps: Vec<usize>,
    pub levels: Vec<LevelPower>,
}

/// One injected slowdown of one figure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LevelPower {
    /// Asked for, as a fraction of the measured side's CPU time.
    pub slowdown: f64,
    /// What the injection added in fact: the median over repetitions of the slowed measured
    /// side's time over the unchanged one's, less one.
    pub measured_slowdown: f64,
    /// Tries the gate failed (the slowdown caught).
    pub detected: usize,
}

impl FigurePower {
    /// The smallest slowdown caught in at least 9 of 10 tries, it and every larger one: as
    /// planted, and as measured.
    pub fn smallest_detected(&self, tries: usize) -> Option<f64> {
        self.smallest_caught(tries).map(|l| l.slowdown)
    }

    /// The level of [`smallest_detected`](Self::smallest_detected).
    pub fn smallest_caught(&self, tries: usize) -> Option<&LevelPower> {
        let caught = |l: &LevelPower| l.detected * 10 >= tries * 9;
        let mut smallest = None;
        for l in self.levels.iter().rev() {
            if !caught(l) {
                break;
            }
            smallest = Some(l);
        }
        smallest
    }
}

/// Runs the power measurement and writes `opts.out`; returns the report.
///
/// # Errors
/// The baselines cannot be read, a figure fails to run, or the file cannot be written.
pub fn power(opts: &PowerOptions, mut progress: impl FnMut(&str)) -> Result<PowerReport> {
    let (_, base) = super::check::load_baselines(&opts.baselines)?;
    let here = cpu();
    let unit = seconds_per_unit();
    // This harness on both sides: the base unchanged, the head slowed.
    let exe = std::env::current_exe()?;
    let mut figs = figures(&exe, &exe)?.figures;
    let mut out = Vec::new();
    let mut tries_raw = BTreeMap::new();
    let total = figs.len() * opts.tries;
    for (f, fig) in figs.iter_mut().enumerate() {
        let levels = calibrate(fig.as_mut(), unit, &opts.slowdowns)?;
        let mut all = vec![Vec::new(); opts.slowdowns.len() + 1];
        let mut verdicts = vec![Vec::new(); opts.slowdowns.len() + 1];
        let mut medians = Vec::new();
        let mut reps_used = Vec::new();
        let mut raw: Vec<Vec<Vec<Pair>>> = Vec::new();
        for t in 0..opts.tries {
            progress(&format!(
                "power: {} try {}/{} ({} of {total})",
                fig.name(),
                t + 1,
                opts.tries,
                f * opts.tries + t + 1
            ));
            // As the gate does: at least `reps`, more (up to 4×) until every level is settled.
            let noise = base.noise(fig.name());
            let mut samples = vec![Vec::new(); levels.len()];
            for rep in 0..opts.reps * 4 {
                if rep >= opts.reps && samples.iter().all(|s| settled(s, noise)) {
                    break;
                }
                for (s, r) in samples
                    .iter_mut()
                    .zip(repetition(fig.as_mut(), rep, &levels)?)
                {
                    s.push(r);
                }
            }
            reps_used.push(samples[0].len());
            raw.push(samples.clone());
            medians.push(paired_ratio(&samples[0]));
            for (i, s) in samples.into_iter().enumerate() {
                let now = BTreeMap::from([(fig.name().to_string(), s.clone())]);
                verdicts[i].push(compare_ratios(&base, &now, AGAINST)[0].verdict);
                all[i].extend(s);
            }
        }
        tries_raw.insert(fig.name().to_string(), raw);
        let fails = |v: &[Verdict]| v.iter().filter(|v| **v == Verdict::Regressed).count();
        out.push(FigurePower {
            name: fig.name().into(),
            what: fig.what().into(),
            threshold: base.noise(fig.name()),
            baseline: Some(1.0),
            unchanged_median: median(&medians),
            reps: reps_used,
            false_alarms: fails(&verdicts[0]),
            levels: opts
                .slowdowns
                .iter()
                .enumerate()
                .map(|(i, &slowdown)| LevelPower {
                    slowdown,
                    // The slowed measured side's median time over the unchanged one's.
                    measured_slowdown: side_median(&all[i + 1]) / side_median(&all[0]) - 1.0,
                    detected: fails(&verdicts[i + 1]),
                })
                .collect(),
        });
    }
    let report = PowerReport {
        commit: crate::system::commit(),
        processor: here,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        date: crate::results::now_rfc3339(),
        tries: opts.tries,
        reps: opts.reps,
        figures: out,
        reevaluated: None,
    };
    write_atomic(&opts.out, &serde_json::to_vec_pretty(&report)?)?;
    if let Some(path) = &opts.samples {
        write_atomic(path, &serde_json::to_vec(&tries_raw)?)?;
    }
    Ok(report)
}

/// What the power runs' head is timed beside: the same build.
const AGAINST: &str = "the same build";

/// The median of the measured side's times.
fn side_median(pairs: &[Pair]) -> f64 {
    median(&pairs.iter().map(|p| p[1]).collect::<Vec<_>>())
}

/// Every try's (reference, measured) CPU seconds per level, per figure, as `--samples` keeps
/// them.
pub type RawSamples = BTreeMap<String, Vec<Vec<Vec<Pair>>>>;

/// `report`'s verdicts worked out again from its recorded samples under `base` (new thresholds
/// or medians), without measuring: false alarms, catches and the unchanged median per figure.
pub fn reevaluate(report: &PowerReport, raw: &RawSamples, base: &RatioBaselines) -> PowerReport {
    let mut out = report.clone();
    for f in &mut out.figures {
        let Some(tries) = raw.get(&f.name) else {
            continue;
        };
        let verdict = |pairs: &Vec<Pair>| {
            let now = BTreeMap::from([(f.name.clone(), pairs.clone())]);
            compare_ratios(base, &now, AGAINST)[0].verdict
        };
        let fails = |level: usize| {
            tries
                .iter()
                .filter(|t| {
                    t.get(level)
                        .is_some_and(|p| verdict(p) == Verdict::Regressed)
                })
                .count()
        };
        f.threshold = base.noise(&f.name);
        f.unchanged_median = median(
            &tries
                .iter()
                .filter_map(|t| t.first().map(|p| paired_ratio(p)))
                .collect::<Vec<_>>(),
        );
        f.false_alarms = fails(0);
        for (i, l) in f.levels.iter_mut().enumerate() {
            l.detected = fails(i + 1);
        }
    }
    out.reevaluated = Some(format!(
        "verdicts worked out again on {} from this measurement's recorded CPU times, under the \
         thresholds and medians of results/baselines/ratios.json then",
        crate::results::now_rfc3339()
    ));
    out
}

/// Burn units per call that slow `fig`'s measured side by each of `slowdowns`, from the median
/// of three unchanged measurements; the unchanged level (0) first.
fn calibrate(fig: &mut dyn Figure, unit: f64, slowdowns: &[f64]) -> Result<Vec<u64>> {
    let times = (0..3)
        .map(|_| fig.measured(0))
        .collect::<Result<Vec<_>>>()?;
    let per_call = median(&times) / fig.calls() as f64;
    Ok(std::iter::once(0)
        .chain(
            slowdowns
                .iter()
                .map(|p| (p * per_call / unit).round() as u64),
        )
        .collect())
}

/// The report as Markdown: one row per figure.
pub fn power_table(r: &PowerReport) -> String {
    // One row per figure and slowdown, labelled by the slowdown measured (what the planted
    // work added in fact), the one planted beside it.
    let mut out = String::from(
        "| Figure | Threshold | Slowdown measured (planted) | Caught | False alarms unchanged | \
         Smallest caught ≥ 9/10, measured |\n|---|---:|---|---:|---:|---|\n",
    );
    for f in &r.figures {
        let smallest = match (f.baseline, f.smallest_caught(r.tries)) {
            (None, _) => "not gated on this processor".to_string(),
            (_, Some(l)) => format!("+{:.1}%", l.measured_slowdown * 100.0),
            (_, None) => format!(
                "none up to +{:.1}%",
                f.levels.last().map_or(0.0, |l| l.measured_slowdown) * 100.0
            ),
        };
        for (i, l) in f.levels.iter().enumerate() {
            let (alarms, small) = if i == 0 {
                (format!("{}/{}", f.false_alarms, r.tries), smallest.as_str())
            } else {
                (String::new(), "")
            };
            let _ = writeln!(
                out,
                "| `{}` | −{:.0}% | +{:.1}% (+{:.0}%) | {}/{} | {alarms} | {small} |",
                f.name,
                f.threshold * 100.0,
                l.measured_slowdown * 100.0,
                l.slowdown * 100.0,
                l.detected,
                r.tries
            );
        }
    }
    out
}

/// Reads `results/gate-power.json` under `root`, if there is one.
pub fn load(root: &Path) -> Option<PowerReport> {
    let text = std::fs::read_to_string(root.join("gate-power.json")).ok()?;
    serde_json::from_str(&text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reevaluation_applies_new_thresholds_to_the_recorded_times() {
        use crate::gate::baselines::RatioBaseline;
        let cpu = "Test CPU (avx2)";
        let base = |noise: f64| RatioBaselines {
            ratios: [(
                "r".to_string(),
                RatioBaseline {
                    noise,
                    what: String::new(),
                },
            )]
            .into(),
            updated: None,
        };
        // One try: unchanged 6% low (drift), slowed by 10% and by 20%.
        let level = |f: f64| {
            (0..12)
                .map(|i| [1.0 + i as f64 * 1e-4, f])
                .collect::<Vec<Pair>>()
        };
        let raw: RawSamples = [(
            "r".to_string(),
            vec![vec![
                level(1.0 / 0.94),
                level(1.10 / 0.94),
                level(1.20 / 0.94),
            ]],
        )]
        .into();
        let report = PowerReport {
            commit: "c".into(),
            processor: cpu.into(),
            cores: 2,
            date: "d".into(),
            tries: 1,
            reps: 12,
            figures: vec![FigurePower {
                name: "r".into(),
                what: String::new(),
                threshold: 0.05,
                baseline: Some(1.0),
                unchanged_median: 0.0,
                false_alarms: 0,
                reps: vec![12],
                levels: [0.10, 0.20]
                    .map(|slowdown| LevelPower {
                        slowdown,
                        measured_slowdown: slowdown,
                        detected: 0,
                    })
                    .to_vec(),
            }],
            reevaluated: None,
        };
        let at5 = reevaluate(&report, &raw, &base(0.05));
        assert_eq!(at5.figures[0].false_alarms, 1, "the drift fails at 5%");
        let at10 = reevaluate(&report, &raw, &base(0.10));
        let f = &at10.figures[0];
        assert_eq!((f.threshold, f.false_alarms), (0.10, 0));
        assert_eq!(
            f.levels.iter().map(|l| l.detected).collect::<Vec<_>>(),
            [1, 1]
        );
        assert!((f.unchanged_median - 0.94).abs() < 1e-3);
        assert!(at10.reevaluated.is_some());
    }

    #[test]
    fn smallest_detected_needs_every_larger_slowdown_caught_too() {
        let level = |slowdown, detected| LevelPower {
            slowdown,
            measured_slowdown: slowdown,
            detected,
        };
        let mut f = FigurePower {
            name: "r".into(),
            what: String::new(),
            threshold: 0.05,
            baseline: Some(1.0),
            unchanged_median: 1.0,
            false_alarms: 0,
            reps: vec![],
            levels: vec![level(0.05, 9), level(0.10, 8), level(0.20, 10)],
        };
        assert_eq!(f.smallest_detected(10), Some(0.20));
        f.levels[1].detected = 10;
        assert_eq!(f.smallest_detected(10), Some(0.05));
        f.levels[2].detected = 3;
        assert_eq!(f.smallest_detected(10), None);
    }
}
