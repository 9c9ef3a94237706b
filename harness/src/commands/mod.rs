//! What each `harness` subcommand does, with plain arguments: `main.rs` only parses the
//! command line and calls these.
//!
//! - [`run`](run::run): a scenario's sweep ([`options`] its settings, [`comparisons`] the
//!   side-by-side measurements, [`progress`] and [`summary`] what it prints);
//! - [`merge`](merge_shards::merge): shard files into results and the report;
//! - [`check_results`](check::check_results): the results' invariants;
//! - [`density`](density::density): how many streams fit (the density search);
//! - [`plan`](plan::plan): a scenario's points; [`point`](child::point): one point in a child
//!   process.
//!
//! The gate's command is [`crate::gate::check()`]; the report's, [`crate::report::write`].

pub mod check;
pub mod child;
pub mod comparisons;
pub mod density;
pub mod merge_shards;
pub mod options;
pub mod plan;
pub mod progress;
pub mod run;
pub mod summary;

pub use check::check_results;
pub use child::point;
pub use density::density;
pub use merge_shards::merge;
pub use options::RunOptions;
pub use plan::plan;
pub use run::run;
