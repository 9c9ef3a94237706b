//! What `harness run` was asked to do, as plain fields (main.rs fills them from the command
//! line).

use crate::peers::PeerKind;
use crate::results::Shard;
use std::path::PathBuf;

/// What `harness run` was asked to do.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Scenario file (`scenarios/<suite>.toml`).
    pub scenario: PathBuf,
    /// The scenario's short form (its `[quick]` section).
    pub quick: bool,
    /// The smallest run that takes the suite end to end (see `Scenario::smallest_plan`);
    /// written as a quick run.
    pub smallest: bool,
    /// Results folder; results go to `<results>/<suite>/`.
    pub results: PathBuf,
    /// Also compare the in-process encoder with the ffmpeg CLI.
    pub compare_cli: bool,
    /// Also measure the recorder's cost.
    pub probe_overhead: bool,
    /// Also decode the real clip (`STREAM_MANAGER_CLIP`) with the file source and with the
    /// ffmpeg CLI.
    pub compare_decode: bool,
    /// Also run the same load against the other RTMP servers.
    pub peers: bool,
    /// Player counts for `peers` (empty: the default counts).
    pub peer_players: Vec<u32>,
    /// Seconds measured per server and player count for `peers`.
    pub peer_seconds: f64,
    /// Runs of each server at each player count for `peers` (None: the default).
    pub peer_reps: Option<u32>,
    /// Servers for `peers` (empty: all).
    pub peer_servers: Vec<PeerKind>,
    /// A folder whose node_modules holds node-media-server 2.7.
    pub nms_dir: PathBuf,
    /// Print the results JSON on stdout when done.
    pub json: bool,
    /// Run only this shard of the sweep.
    pub shard: Option<Shard>,
    /// Also make one profiled run per point and write its flame graph beside the report.
    pub profile: bool,
}
