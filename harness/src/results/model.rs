//! The results file's types: a suite's [`Results`] and one [`PointResult`] per run point,
//! with the side-by-side [`Comparisons`]. Their field names are the contract other tools read.

use super::shard::Shard;
use crate::point::Figures;
use crate::scenario::{GuideTable, RunSettings};
use crate::system::Machine;
use serde::{Deserialize, Serialize};
use streamer::config::StreamConfig;

/// A whole suite's run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Results {
    /// The version of this file's form, and of the invariants it keeps (see
    /// [`super::check`]); 1 for results written before it was.
    #[serde(default = "schema_1")]
    pub schema: u32,
    pub suite: String,
    /// The guide table the suite fills.
    pub table: GuideTable,
    pub scenario: String,
    pub description: String,
    pub quick: bool,
    pub started: String,
    pub finished: String,
    /// The commit the run was measured on (`git rev-parse --short HEAD`, `+changes` when the
    /// tree had uncommitted changes; `unknown` outside a git checkout or in older results).
    #[serde(default = "unknown_commit")]
    pub commit: String,
    pub machine: Machine,
    pub settings: RunSettings,
    pub points: Vec<PointResult>,
    /// Side-by-side measurements made in the same run (`--compare-cli`, probe overhead).
    #[serde(default)]
    pub comparisons: Comparisons,
    /// The shard these results are, when the sweep was split (`--shard K/N`).
    #[serde(default)]
    pub shard: Option<Shard>,
    /// A shard's file only: every point id of the whole sweep, in order (a shard holds some
    /// repetitions of some points; the merge puts them back in this order).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sweep: Vec<String>,
}

fn schema_1() -> u32 {
    1
}

fn unknown_commit() -> String {
    "unknown".into()
}

/// One sweep axis value of a point.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AxisValue {
    pub path: String,
    pub value: String,
}

/// One run point: its [`Figures`] over its repetitions (read as its own fields; see
/// [`Figures::aggregate`] for how each is joined), and each repetition's headline figures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PointResult {
    pub id: String,
    pub axes: Vec<AxisValue>,
    pub config: StreamConfig,
    pub fps_min: f64,
    pub fps_max: f64,
    #[serde(flatten)]
    pub figures: Figures,
    pub repetitions: Vec<Repetition>,
}

impl std::ops::Deref for PointResult {
    type Target = Figures;

    fn deref(&self) -> &Figures {
        &self.figures
    }
}

impl std::ops::DerefMut for PointResult {
    fn deref_mut(&mut self) -> &mut Figures {
        &mut self.figures
    }
}

/// One repetition's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Repetition {
    pub fps: f64,
    pub cpu_percent: f64,
    pub rss_bytes: u64,
    pub dropped_frames: u64,
    pub bitrate_kbps: f64,
    /// The late joiner's wait for its first frame, ms (runs with players; None before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub join_ms: Option<f64>,
    /// Glass-to-player latency (the `e2e` span's p50), ms (runs with players; None before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
}

/// Measurements taken side by side in one run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Comparisons {
    /// In-process encoder vs the ffmpeg CLI on the same raw frames.
    #[serde(default)]
    pub cli: Vec<CliComparison>,
    /// The baseline path with the recorder vs with the no-op probe.
    pub probe_overhead: Option<ProbeOverhead>,
    /// The same publisher and players against our server, nginx-rtmp and node-media-server.
    #[serde(default)]
    pub peers: Vec<PeerRow>,
    /// The ffmpeg CLI publishing at the same fixed bitrate through the same shaped link
    /// (`[link]` scenarios).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cli_link: Option<crate::cli_link::CliLinkRun>,
    /// The file source decoding a real clip against the ffmpeg CLI decoding it
    /// (`--compare-decode`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decode: Option<DecodeComparison>,
}

/// The file source's decode stage against the ffmpeg CLI decoding the same clip, one thread
/// each, CPU per frame, runs alternating.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecodeComparison {
    /// The clip's file name.
    pub clip: String,
    /// Frames decoded per run on each side.
    pub frames: u64,
    /// Median CPU ms a frame of the source's decode stage (reading and decoding; the copy of
    /// each picture into the stream's frame is the render stage's).
    pub ours_ms: f64,
    /// Median CPU ms a frame of `ffmpeg -benchmark … -f null -` (its user + system time).
    pub cli_ms: f64,
    /// The median of the runs' ours ÷ CLI, and its 95% bootstrap interval.
    pub ratio: f64,
    pub interval: (f64, f64),
    pub command: String,
    /// Each run's [ours, CLI] ms a frame.
    pub pairs: Vec<[f64; 2]>,
}

/// One server at one player count, under the same publisher and player load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerRow {
    pub server: String,
    pub players: u32,
    /// The server process's CPU over the window, percent of one core.
    pub cpu_percent: f64,
    pub cpu_per_player: f64,
    /// Server RSS before any client connected.
    pub rss_idle_bytes: u64,
    pub rss_peak_bytes: u64,
    /// Players that kept real time (media received ÷ wall time ≥ 0.99).
    pub players_realtime: u32,
    pub e2e_p50_ms: Option<f64>,
    pub e2e_p99_ms: Option<f64>,
    /// Publisher send → player receive.
    pub relay_p99_ms: Option<f64>,
    /// A player joining mid-stream: connect → first keyframe.
    pub join_ms: Option<f64>,
    pub publisher_dropped: u64,
    /// Runs this row sums up (servers alternating run by run); figures are their medians,
    /// RSS their peak and players in real time their minimum.
    #[serde(default = "one")]
    pub repetitions: u32,
    /// Server CPU percent of each run, in run order.
    #[serde(default)]
    pub cpu_percent_runs: Vec<f64>,
}

fn one() -> u32 {
    1
}

/// In-process vs ffmpeg CLI encode speed for one preset and thread count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CliComparison {
    pub preset: String,
    pub threads: u32,
    pub frames: u64,
    /// Median fps of the in-process encoder.
    pub in_process_fps: f64,
    /// Median fps of `ffmpeg -f rawvideo … -c:v libx264 … -f null -` (its own `-benchmark`
    /// transcode time, so process start-up is not counted).
    pub cli_fps: f64,
    /// in_process_fps / cli_fps.
    pub ratio: f64,
    /// Median fps of the whole stream at the same settings (render, pipeline, encoder, null
    /// output; no recorder), run in turn with the two encoders; None in older results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_fps: Option<f64>,
    /// Median of each turn's whole-stream fps ÷ in-process encoder fps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_ratio: Option<f64>,
    /// The ffmpeg command line used.
    pub command: String,
    /// Each run's (in-process fps, CLI fps), in run order (empty in older results).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pairs: Vec<[f64; 2]>,
    /// Each turn's (whole stream fps, bare encoder fps).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stream_pairs: Vec<[f64; 2]>,
}

/// Recorder cost on the full path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeOverhead {
    pub point: String,
    pub runs: u32,
    pub recorder_fps: f64,
    pub noop_fps: f64,
    /// Median over the back-to-back pairs of recorder fps ÷ no-op fps.
    pub ratio: f64,
    /// Each pair's (recorder fps, no-op fps), in run order (empty in older results).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pairs: Vec<[f64; 2]>,
}
