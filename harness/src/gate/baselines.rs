//! The gate's baseline files: `results/baselines/instructions.json` (instruction counts per
//! processor kind and bench, with tolerances) and `results/baselines/ratios.json` (each timed
//! ratio's noise threshold, and its median per processor kind).
//!
//! Instruction counts depend on the processor: glibc picks its string and memory routines
//! (and FFmpeg its SIMD kernels) by processor features. So `instructions.json` keeps one set of
//! counts per processor kind ([`cpu`]), and the gate compares against [`InstructionBaselines::reference`]:
//! this processor's own counts at the normal tolerance, or, where it has none, the nearest
//! processor's counts at the wider `other_processor_tolerance` — never no comparison at all.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Instructions per bench, `function/id` → `Ir`.
pub type Counts = BTreeMap<String, u64>;

/// `results/baselines/instructions.json`:
///
/// ```json
/// { "tolerance": 0.02, "other_processor_tolerance": 0.05, "overrides": {},
///   "processors": { "AMD EPYC (avx2 avx512f erms fsrm)": { "compose_720p/layers_8": 3324236 } } }
/// ```
///
/// The old single-processor format (`counts` and `cpu` at the top) still reads: it becomes
/// that processor's entry, and is written back in the new format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "InstructionsFile")]
pub struct InstructionBaselines {
    /// Allowed rise over this processor's own baseline, as a fraction (0.02 = +2%).
    pub tolerance: f64,
    /// Allowed rise over another processor's baseline (the nearest, used where this processor
    /// has none), as a fraction: the same code counts slightly differently there.
    pub other_processor_tolerance: f64,
    /// Per-bench tolerances that replace the default (against another processor, the wider of
    /// the override and `other_processor_tolerance` applies).
    pub overrides: BTreeMap<String, f64>,
    /// Counts per processor kind ([`cpu`]'s string).
    pub processors: BTreeMap<String, Counts>,
}

impl Default for InstructionBaselines {
    fn default() -> Self {
        InstructionBaselines {
            tolerance: default_tolerance(),
            other_processor_tolerance: default_other_processor_tolerance(),
            overrides: BTreeMap::new(),
            processors: BTreeMap::new(),
        }
    }
}

/// What `instructions.json` may hold: the current format and the old one's fields.
#[derive(Deserialize)]
struct InstructionsFile {
    #[serde(default = "default_tolerance")]
    tolerance: f64,
    #[serde(default = "default_other_processor_tolerance")]
    other_processor_tolerance: f64,
    #[serde(default)]
    overrides: BTreeMap<String, f64>,
    #[serde(default)]
    processors: BTreeMap<String, Counts>,
    /// Old format: the counts of the one processor `cpu`.
    #[serde(default)]
    counts: Option<Counts>,
    /// Old format: the processor `counts` were taken on (empty when unrecorded).
    #[serde(default)]
    cpu: String,
}

impl From<InstructionsFile> for InstructionBaselines {
    fn from(f: InstructionsFile) -> Self {
        let mut processors = f.processors;
        if let Some(counts) = f.counts {
            processors.entry(f.cpu).or_insert(counts);
        }
        InstructionBaselines {
            tolerance: f.tolerance,
            other_processor_tolerance: f.other_processor_tolerance,
            overrides: f.overrides,
            processors,
        }
    }
}

/// The baseline a run's counts are compared against.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reference<'a> {
    /// The processor the counts were taken on.
    pub cpu: &'a str,
    pub counts: &'a Counts,
    /// Taken on this very kind of processor (else: the nearest other one).
    pub own: bool,
    /// Why this one: `this processor`, `same features`, `same vendor` or `nearest available`.
    pub why: &'static str,
}

impl InstructionBaselines {
    /// The counts to compare a run on processor `here` against: `here`'s own entry; else the
    /// nearest other processor's — same feature flags first (they steer glibc's routines),
    /// then same vendor; ties go to the entry with more of the benches measured `now`, then
    /// by name. `None` only when no processor has a baseline.
    pub fn reference<'a>(&'a self, here: &str, now: &Counts) -> Option<Reference<'a>> {
        if let Some((cpu, counts)) = self.processors.get_key_value(here) {
            return Some(Reference {
                cpu,
                counts,
                own: true,
                why: "this processor",
            });
        }
        let (model, features) = split_cpu(here);
        let here_vendor = vendor(model);
        self.processors
            .iter()
            .map(|(cpu, counts)| {
                let (m, f) = split_cpu(cpu);
                let same_features = !features.is_empty() && f == features;
                let same_vendor = !here_vendor.is_empty() && vendor(m) == here_vendor;
                let shared = counts.keys().filter(|k| now.contains_key(*k)).count();
                ((same_features, same_vendor, shared), cpu, counts)
            })
            // Highest score wins; among equals, the first name (max_by keeps the last).
            .rev()
            .max_by_key(|(score, _, _)| *score)
            .map(|((same_features, same_vendor, _), cpu, counts)| Reference {
                cpu,
                counts,
                own: false,
                why: match (same_features, same_vendor) {
                    (true, _) => "same features",
                    (false, true) => "same vendor",
                    (false, false) => "nearest available",
                },
            })
    }

    /// The tolerance for bench `name` against `reference`.
    pub fn tolerance_for(&self, name: &str, reference: &Reference<'_>) -> f64 {
        let own = self.overrides.get(name).copied().unwrap_or(self.tolerance);
        if reference.own {
            own
        } else {
            own.max(self.other_processor_tolerance)
        }
    }
}

/// `Model name (feature flags)` → (model name, feature flags).
fn split_cpu(cpu: &str) -> (&str, &str) {
    match cpu.rsplit_once(" (") {
        Some((model, rest)) => (model.trim(), rest.trim_end_matches(')').trim()),
        None => (cpu.trim(), ""),
    }
}

/// The processor's maker, from its model name (`AMD`, `Intel`, else the name's first word).
fn vendor(model: &str) -> String {
    let lower = model.to_ascii_lowercase();
    if lower.contains("amd") {
        "AMD".into()
    } else if lower.contains("intel") {
        "Intel".into()
    } else {
        model.split_whitespace().next().unwrap_or("").to_string()
    }
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

fn default_other_processor_tolerance() -> f64 {
    0.05
}

/// One timed figure's threshold and description.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RatioBaseline {
    /// How far below 1 (fraction) base ÷ head must lie, with its whole confidence interval
    /// below 1, to fail.
    pub noise: f64,
    /// What the figure times.
    pub what: String,
}

/// `results/baselines/ratios.json`:
///
/// ```json
/// { "ratios": { "stream": { "noise": 0.05, "what": "…" } },
///   "updated": { "date": "…", "processor": "…", "figures": { "stream": 1.003 } } }
/// ```
///
/// The timed figures compare the code under test with the code of the commit that last
/// changed this file (the *base*, built and run side by side), so the file holds no medians:
/// every figure's baseline is 1 (as fast as the base), on every processor. `--update` records
/// when and where it was run and what it measured, so that the commit taking an update always
/// changes the file and becomes the base. Files of older formats (medians per processor, or
/// one wall-time `median` per ratio) read with their medians ignored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RatioBaselines {
    pub ratios: BTreeMap<String, RatioBaseline>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated: Option<Updated>,
}

/// The last `gate --update` of the timed figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Updated {
    /// RFC 3339.
    pub date: String,
    /// The processor kind ([`cpu`]).
    pub processor: String,
    /// Base ÷ head measured then, per figure (for the record; not compared).
    pub figures: BTreeMap<String, f64>,
}

impl RatioBaselines {
    /// The noise threshold of figure `name` (10% for one not in the file).
    pub fn noise(&self, name: &str) -> f64 {
        self.ratios.get(name).map_or(0.10, |r| r.noise)
    }
}
