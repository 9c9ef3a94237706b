//! Results files: `results/<suite>/latest.json` (+ a timestamped copy) and `latest.csv`.
//!
//! The contract other tools read (keep these names): a `machine` section and one entry per run
//! point with `config` (the full StreamConfig), `fps`, `cpu_percent`, `rss_bytes`,
//! `dropped_frames`, `bitrate_kbps` and `spans` (name → `{count, p50_us, p90_us, p99_us,
//! p999_us, max_us, mean_us, histogram}`).
//!
//! Aggregation over repetitions: `fps`, `cpu_percent` and `bitrate_kbps` are medians (with
//! `fps_min`/`fps_max` as the spread); `rss_bytes` is the highest peak of any repetition;
//! `dropped_frames` is the total over all repetitions (every drop counts); span histograms are
//! added together. Each repetition's own figures are kept under `repetitions`.
//!
//! CSV columns: `suite, point`, one column per sweep axis, the figures above, `encoder, notes`,
//! the RTMP figures (`players, sent_kbps, delivered_kbps, players_realtime, late_join_ms,
//! server_dropped`, empty without players),
//! then `<span>.<stat>` for every recorded span and `config.<dotted.path>` for every config field.
//!
//! Every file is written to a temporary file beside it and renamed into place, so an
//! interrupted run leaves the previous file whole.
//!
//! The parts: [`model`] (the types serialized), [`aggregate`] (repetitions into a point),
//! [`store`] (reading and writing a suite's files), [`to_csv`] (the CSV), [`files`] (atomic
//! writes and the errors), [`committed`] (the files as git's index holds them, for checks that
//! must not see what a `perf` run left in the working tree), and the sharding of a sweep: [`shard`] (which points a shard runs)
//! and [`merge`] (joining shard files).

pub mod aggregate;
pub mod check;
pub mod committed;
pub mod files;
pub mod merge;
pub mod model;
pub mod shard;
pub mod store;
pub mod to_csv;

pub use aggregate::median;
pub use files::{ResultsError, now_rfc3339, write_atomic};
pub use model::{
    AxisValue, CliComparison, Comparisons, DecodeComparison, PeerRow, PointResult, ProbeOverhead,
    Repetition, Results,
};
pub use shard::Shard;
