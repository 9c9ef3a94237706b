//! The CI gate: instruction counts against `results/baselines/instructions.json`, and wall-time
//! ratios measured side by side in one run against `results/baselines/ratios.json`.
//!
//! - **Instructions** (gungraun, exact from run to run): a bench more than its tolerance above
//!   its baseline (default +2%, per-bench overrides) is a regression; more than the tolerance
//!   below is an improvement (update the baseline to keep it). Counts depend on the processor
//!   (glibc picks its memory routines by its features), so the file keeps baselines per
//!   processor kind ([`cpu`]) and `--update` replaces this processor's only. On a processor
//!   with no baseline of its own the counts are still gated: against the nearest processor's
//!   (same feature flags first, then same vendor) at the file's wider
//!   `other_processor_tolerance` (default ±5%), and each verdict names that baseline and
//!   tolerance — never a silent pass.
//! - **Ratios** (timed on CPU clocks, [`ratios`]): both sides of each alternate within every
//!   repetition so the machine's drift falls on both; a figure is the ratio of the sides'
//!   lower quartiles with a 95% bootstrap interval, measured at least `reps` times and more
//!   until the interval is within half the figure's noise threshold. It regresses when it lies
//!   more than the threshold below this processor's baseline and its whole interval lies below
//!   the baseline (every ratio here is higher-is-better). Medians are per processor kind; on a
//!   processor without, the ratios are shown and marked not gated. [`power`] measures how small
//!   a slowdown this catches.
//!
//! [`table`] prints every figure (baseline, now, change, verdict) as Markdown.
//!
//! The parts: [`baselines`] (the files' contents), [`verdict`] (figures against baselines and
//! the table), [`gungraun`] (reading instruction counts), [`ratios`] (measuring the wall-time
//! ratios) and [`check`](mod@check) (the `harness gate` command: all of it in order).

pub mod baselines;
pub mod check;
pub mod clock;
pub mod gungraun;
pub mod power;
pub mod ratios;
pub mod verdict;

pub use baselines::{Counts, InstructionBaselines, RatioBaseline, RatioBaselines, Reference, cpu};
pub use check::{GateOptions, check};
pub use gungraun::parse_gungraun;
pub use ratios::measure_ratios;
pub use verdict::{
    Row, Verdict, compare_instructions, compare_instructions_on, compare_ratios, failed,
    instruction_reference_note, median, ratio_interval, ratio_of_quartiles, table,
};
