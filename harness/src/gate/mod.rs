//! The CI gate: instruction counts against `results/baselines/instructions.json`, and timed
//! figures of this tree's code against the base commit's, side by side in one run.
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
//! - **Timed figures** ([`ratios`]): the stream, the stream with the recorder, and the
//!   compositor, each run in this tree's code and in the code of the *base* (the commit that
//!   last changed `results/baselines/ratios.json`, built by xtask), taking turns on one
//!   processor and timed on CPU clocks. A figure is the median of the pairs' base ÷ head
//!   ratios with a 95% bootstrap interval, measured at least `reps` times and more until the
//!   interval is within half the figure's noise threshold; its baseline is 1 on every
//!   processor. It regresses when it lies more than the threshold below 1 and its whole
//!   interval lies below 1. [`power`] measures how small a slowdown this catches.
//!
//! [`table`] prints every figure (baseline, now, change, verdict) as Markdown.
//!
//! The parts: [`baselines`] (the files' contents), [`verdict`] (figures against baselines and
//! the table), [`gungraun`] (reading instruction counts), [`ratios`] (measuring the timed
//! figures) and [`check`](mod@check) (the `harness gate` command: all of it in order).

pub mod baselines;
pub mod check;
pub mod clock;
pub mod gungraun;
pub mod power;
pub mod ratios;
pub mod verdict;

pub use crate::stats::{median, paired_ratio, ratio_interval};
pub use baselines::{Counts, InstructionBaselines, RatioBaseline, RatioBaselines, Reference, cpu};
pub use check::{GateOptions, check};
pub use gungraun::parse_gungraun;
pub use ratios::measure_ratios;
pub use verdict::{
    Row, Verdict, compare_instructions, compare_instructions_on, compare_ratios, failed,
    instruction_reference_note, table,
};
