//! The gate's baseline files: `results/baselines/instructions.json` (instruction counts per
//! bench, with tolerances and the processor they were taken on) and
//! `results/baselines/ratios.json` (each wall-time ratio's median and noise threshold).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `results/baselines/instructions.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InstructionBaselines {
    /// Allowed rise over the baseline, as a fraction (0.02 = +2%).
    #[serde(default = "default_tolerance")]
    pub tolerance: f64,
    /// Per-bench tolerances that replace the default.
    #[serde(default)]
    pub overrides: BTreeMap<String, f64>,
    /// Instructions per bench.
    pub counts: BTreeMap<String, u64>,
    /// The processor the counts were taken on ([`cpu`]): glibc picks its string and memory
    /// routines by processor features, so counts from another kind are shown, not gated.
    #[serde(default)]
    pub cpu: String,
}

/// This machine's processor model and the features that steer glibc's routines, e.g.
/// `AMD EPYC (avx2 avx512f)`.
pub fn cpu() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |name: &str| {
        info.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_once(':'))
            .map_or("", |(_, v)| v.trim())
            .to_string()
    };
    let flags = field("flags");
    let has: Vec<&str> = ["avx2", "avx512f", "erms", "fsrm"]
        .into_iter()
        .filter(|f| flags.split_whitespace().any(|x| x == *f))
        .collect();
    format!("{} ({})", field("model name"), has.join(" "))
}

fn default_tolerance() -> f64 {
    0.02
}

/// One ratio's baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RatioBaseline {
    /// The median when the baseline was taken.
    pub median: f64,
    /// How far below the baseline (fraction) the whole confidence interval must lie to fail.
    pub noise: f64,
    /// What the ratio is.
    pub what: String,
}

/// `results/baselines/ratios.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RatioBaselines {
    pub ratios: BTreeMap<String, RatioBaseline>,
}
