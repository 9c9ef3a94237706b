//! The benchmark harness: scenario → sweep → run → record → results → report.
//!
//! A [`scenario::Scenario`] file expands into run points ([`sweep`]); each point runs in a fresh
//! child process ([`run`]) with the [`record::Recorder`] as its probe while [`system`] samples
//! CPU and memory; [`results`] aggregates repetitions and writes JSON/CSV; [`report`] fills the
//! guide's tables in `results/REPORT.md`; [`compare`] measures side by side in one run.
//! [`commands`] is what each `harness` subcommand does (the binary only parses arguments);
//! [`gate`] is the CI gate, over the [`hot`] paths.

pub mod allocs;
pub mod cli_link;
pub mod commands;
pub mod compare;
pub mod density;
pub mod fidelity;
pub mod gate;
pub mod hot;
pub mod peers;
pub mod point;
pub mod profile;
pub mod quota;
pub mod record;
pub mod report;
pub mod results;
pub mod scenario;
pub mod served;
pub mod shaped;
pub mod soak;
pub mod stats;
pub mod sweep;
pub mod system;
