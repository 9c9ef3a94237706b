//! Benchmarks live in the bench targets; their shared set-ups are in [`harness::hot`] (the
//! gate measures with them too).

pub use harness::hot::*;
