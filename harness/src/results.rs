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

use crate::record::{SpanStats, new_histogram};
use crate::run::{CoreFigures, NetworkFigures, PipelineFigures, PointRun};
use crate::scenario::{GuideTable, RunSettings};
use crate::system::Machine;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use streamer::config::StreamConfig;
use streamer::probe::SPANS;

/// A whole suite's run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Results {
    pub suite: String,
    /// The guide table the suite fills.
    pub table: GuideTable,
    pub scenario: String,
    pub description: String,
    pub quick: bool,
    pub started: String,
    pub finished: String,
    pub machine: Machine,
    pub settings: RunSettings,
    pub points: Vec<PointResult>,
    /// Side-by-side measurements made in the same run (`--compare-cli`, probe overhead).
    #[serde(default)]
    pub comparisons: Comparisons,
    /// The shard these results are, when the sweep was split (`--shard K/N`).
    #[serde(default)]
    pub shard: Option<crate::shard::Shard>,
}

/// One sweep axis value of a point.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AxisValue {
    pub path: String,
    pub value: String,
}

/// One run point, aggregated over its repetitions.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PointResult {
    pub id: String,
    pub axes: Vec<AxisValue>,
    pub config: StreamConfig,
    pub fps: f64,
    pub fps_min: f64,
    pub fps_max: f64,
    pub cpu_percent: f64,
    pub rss_bytes: u64,
    pub dropped_frames: u64,
    pub bitrate_kbps: f64,
    pub encoder: String,
    pub notes: Vec<String>,
    pub unmatched_marks: u64,
    pub spans: BTreeMap<String, SpanStats>,
    pub repetitions: Vec<Repetition>,
    /// `(ms, RSS bytes)` of the first repetition.
    pub rss_timeline: Vec<(u64, u64)>,
    /// With players: medians of the kbit/s and join time, the fewest players that kept real
    /// time, and drop totals over the repetitions.
    #[serde(default)]
    pub network: Option<NetworkFigures>,
    /// The frame pipeline: drops by reason and queue occupancy summed over the repetitions,
    /// rates and per-frame figures their medians.
    #[serde(default)]
    pub pipeline: Option<PipelineFigures>,
    /// The core stage: CoreMetrics of the first repetition, timings the medians.
    #[serde(default)]
    pub core: Option<CoreFigures>,
    /// PSNR/SSIM of the first repetition (encoding is deterministic).
    #[serde(default)]
    pub quality: Option<crate::quality::QualityFigures>,
    /// RenderMetrics of the first repetition.
    #[serde(default)]
    pub render: Option<streamer::render::RenderMetrics>,
}

/// One repetition's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Repetition {
    pub fps: f64,
    pub cpu_percent: f64,
    pub rss_bytes: u64,
    pub dropped_frames: u64,
    pub bitrate_kbps: f64,
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
    /// The ffmpeg command line used.
    pub command: String,
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
}

/// The median of `values` (sorted in place); 0 for none.
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => 0.0,
        _ if n % 2 == 1 => values[n / 2],
        _ => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

impl PointResult {
    /// Aggregates a point's repetitions (at least one).
    pub fn aggregate(
        id: String,
        axes: Vec<AxisValue>,
        config: StreamConfig,
        runs: &[PointRun],
    ) -> Self {
        let pick = |f: fn(&PointRun) -> f64| median(&mut runs.iter().map(f).collect::<Vec<_>>());
        let fps: Vec<f64> = runs.iter().map(|r| r.fps).collect();
        let mut spans = BTreeMap::new();
        let names = SPANS.iter().map(|s| s.name).chain([crate::record::JITTER]);
        for name in names {
            let mut merged = new_histogram();
            let mut any = false;
            for run in runs {
                if let Some(h) = run.spans.get(name).and_then(|s| s.histogram().ok()) {
                    merged.add(&h).expect("histograms share bounds");
                    any = true;
                }
            }
            if any {
                spans.insert(name.to_string(), SpanStats::from_histogram(&merged));
            }
        }
        let mut notes: Vec<String> = Vec::new();
        for n in runs.iter().flat_map(|r| &r.notes) {
            if !notes.contains(n) {
                notes.push(n.clone());
            }
        }
        PointResult {
            id,
            axes,
            config,
            fps: pick(|r| r.fps),
            fps_min: fps.iter().copied().fold(f64::INFINITY, f64::min),
            fps_max: fps.iter().copied().fold(0.0, f64::max),
            cpu_percent: pick(|r| r.cpu_percent),
            rss_bytes: runs.iter().map(|r| r.rss_bytes).max().unwrap_or(0),
            dropped_frames: runs.iter().map(|r| r.dropped_frames).sum(),
            bitrate_kbps: pick(|r| r.bitrate_kbps),
            encoder: runs.first().map(|r| r.encoder.clone()).unwrap_or_default(),
            notes,
            unmatched_marks: runs.iter().map(|r| r.unmatched_marks).sum(),
            spans,
            repetitions: runs
                .iter()
                .map(|r| Repetition {
                    fps: r.fps,
                    cpu_percent: r.cpu_percent,
                    rss_bytes: r.rss_bytes,
                    dropped_frames: r.dropped_frames,
                    bitrate_kbps: r.bitrate_kbps,
                })
                .collect(),
            rss_timeline: runs
                .first()
                .map(|r| r.rss_timeline.clone())
                .unwrap_or_default(),
            network: aggregate_network(runs),
            pipeline: aggregate_pipeline(runs),
            core: aggregate_core(runs),
            quality: runs.iter().find_map(|r| r.quality.clone()),
            render: runs.iter().find_map(|r| r.render.clone()),
        }
    }
}

fn aggregate_core(runs: &[PointRun]) -> Option<CoreFigures> {
    let all: Vec<&CoreFigures> = runs.iter().filter_map(|r| r.core.as_ref()).collect();
    let first = all.first()?;
    let med =
        |f: fn(&CoreFigures) -> f64| median(&mut all.iter().map(|c| f(c)).collect::<Vec<_>>());
    Some(CoreFigures {
        metrics: first.metrics.clone(),
        viewport_update_us: med(|c| c.viewport_update_us),
        viewport_resize_us: med(|c| c.viewport_resize_us),
        viewport_transform_us: med(|c| c.viewport_transform_us),
        asset_cold_ms: med(|c| c.asset_cold_ms),
        asset_warm_us: med(|c| c.asset_warm_us),
    })
}

fn aggregate_pipeline(runs: &[PointRun]) -> Option<PipelineFigures> {
    let all: Vec<&PipelineFigures> = runs.iter().filter_map(|r| r.pipeline.as_ref()).collect();
    let first = all.first()?;
    let med =
        |f: fn(&PipelineFigures) -> f64| median(&mut all.iter().map(|p| f(p)).collect::<Vec<_>>());
    let mut drops = streamer::pipeline::Drops::default();
    let mut occupancy = vec![0; first.occupancy.len()];
    for p in &all {
        let d = &p.drops;
        drops.behind += d.behind;
        drops.queue_full += d.queue_full;
        drops.stale += d.stale;
        drops.late += d.late;
        drops.pressure += d.pressure;
        for (o, v) in occupancy.iter_mut().zip(&p.occupancy) {
            *o += v;
        }
    }
    let mut allocs: Vec<f64> = all.iter().filter_map(|p| p.allocs_per_frame).collect();
    Some(PipelineFigures {
        drops,
        pool_hit_rate: med(|p| p.pool_hit_rate),
        buffer_allocs_per_frame: med(|p| p.buffer_allocs_per_frame),
        allocs_per_frame: (!allocs.is_empty()).then(|| median(&mut allocs)),
        occupancy,
        buffer_health: med(|p| p.buffer_health),
        format_bytes_per_frame: med(|p| p.format_bytes_per_frame),
        pressure_events: all.iter().map(|p| p.pressure_events).sum(),
    })
}

fn aggregate_network(runs: &[PointRun]) -> Option<NetworkFigures> {
    let nets: Vec<&NetworkFigures> = runs.iter().filter_map(|r| r.network.as_ref()).collect();
    let first = nets.first()?;
    let med =
        |f: fn(&NetworkFigures) -> f64| median(&mut nets.iter().map(|n| f(n)).collect::<Vec<_>>());
    let mut joins: Vec<f64> = nets.iter().filter_map(|n| n.late_join_ms).collect();
    Some(NetworkFigures {
        players: first.players,
        sent_kbps: med(|n| n.sent_kbps),
        delivered_kbps: med(|n| n.delivered_kbps),
        players_realtime: nets.iter().map(|n| n.players_realtime).min().unwrap_or(0),
        late_join_ms: (!joins.is_empty()).then(|| median(&mut joins)),
        late_first_frame_key: nets
            .iter()
            .map(|n| n.late_first_frame_key)
            .try_fold(true, |all, k| k.map(|k| all && k)),
        publisher_dropped: nets.iter().map(|n| n.publisher_dropped).sum(),
        reconnects: nets.iter().map(|n| n.reconnects).sum(),
        server_dropped: nets.iter().map(|n| n.server_dropped).sum(),
    })
}

/// A results-file failure.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ResultsError {
    pub path: PathBuf,
    pub message: String,
}

fn fail(path: &Path, e: impl std::fmt::Display) -> ResultsError {
    ResultsError {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Writes `bytes` to `path` through a temporary file in the same folder and a rename.
///
/// # Errors
/// The folder cannot be created or the file written.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ResultsError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| fail(dir, e))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| fail(dir, e))?;
    tmp.write_all(bytes).map_err(|e| fail(path, e))?;
    tmp.as_file().sync_all().map_err(|e| fail(path, e))?;
    tmp.persist(path).map_err(|e| fail(path, e.error))?;
    Ok(())
}

impl Results {
    /// The suite's folder under `root`.
    pub fn dir(root: &Path, suite: &str) -> PathBuf {
        root.join(suite)
    }

    /// Writes `latest.json`, a timestamped copy, and `latest.csv` under `root/<suite>/`.
    /// Returns the path of `latest.json`.
    ///
    /// # Errors
    /// A file could not be written.
    pub fn write(&self, root: &Path) -> Result<PathBuf, ResultsError> {
        let dir = Self::dir(root, &self.suite);
        let json = serde_json::to_vec_pretty(self).map_err(|e| fail(&dir, e))?;
        let stamp: String = self
            .started
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect();
        let latest = dir.join("latest.json");
        write_atomic(&dir.join(format!("{stamp}.json")), &json)?;
        write_atomic(&latest, &json)?;
        write_atomic(
            &dir.join("latest.csv"),
            &self.csv().map_err(|e| fail(&dir, e))?,
        )?;
        Ok(latest)
    }

    /// Reads a results file.
    ///
    /// # Errors
    /// The file cannot be read or is not a results file.
    pub fn load(path: &Path) -> Result<Self, ResultsError> {
        let bytes = std::fs::read(path).map_err(|e| fail(path, e))?;
        serde_json::from_slice(&bytes).map_err(|e| fail(path, e))
    }

    /// The results as flat CSV.
    ///
    /// # Errors
    /// Only if CSV encoding fails.
    pub fn csv(&self) -> Result<Vec<u8>, csv::Error> {
        let axes: Vec<String> = self
            .points
            .first()
            .map(|p| p.axes.iter().map(|a| a.path.clone()).collect())
            .unwrap_or_default();
        let spans: Vec<&str> = SPANS
            .iter()
            .map(|s| s.name)
            .filter(|n| self.points.iter().any(|p| p.spans.contains_key(*n)))
            .collect();
        const STATS: [&str; 7] = [
            "count", "p50_us", "p90_us", "p99_us", "p999_us", "max_us", "mean_us",
        ];
        let config_cols: Vec<String> = self
            .points
            .first()
            .map(|p| {
                flatten(&p.config.to_table())
                    .into_iter()
                    .map(|(k, _)| k)
                    .collect()
            })
            .unwrap_or_default();
        let mut w = csv::Writer::from_writer(Vec::new());
        let mut header: Vec<String> = vec!["suite".into(), "point".into()];
        header.extend(axes.iter().cloned());
        header.extend(
            [
                "fps",
                "fps_min",
                "fps_max",
                "cpu_percent",
                "rss_bytes",
                "dropped_frames",
                "bitrate_kbps",
                "encoder",
                "notes",
                "players",
                "sent_kbps",
                "delivered_kbps",
                "players_realtime",
                "late_join_ms",
                "server_dropped",
            ]
            .map(String::from),
        );
        for s in &spans {
            header.extend(STATS.iter().map(|st| format!("{s}.{st}")));
        }
        header.extend(config_cols.iter().map(|c| format!("config.{c}")));
        w.write_record(&header)?;
        for p in &self.points {
            let mut row: Vec<String> = vec![self.suite.clone(), p.id.clone()];
            row.extend(axes.iter().map(|a| {
                p.axes
                    .iter()
                    .find(|x| &x.path == a)
                    .map(|x| x.value.clone())
                    .unwrap_or_default()
            }));
            row.extend([
                format!("{:.2}", p.fps),
                format!("{:.2}", p.fps_min),
                format!("{:.2}", p.fps_max),
                format!("{:.1}", p.cpu_percent),
                p.rss_bytes.to_string(),
                p.dropped_frames.to_string(),
                format!("{:.1}", p.bitrate_kbps),
                p.encoder.clone(),
                p.notes.join("; "),
            ]);
            match &p.network {
                Some(n) => row.extend([
                    n.players.to_string(),
                    format!("{:.1}", n.sent_kbps),
                    format!("{:.1}", n.delivered_kbps),
                    n.players_realtime.to_string(),
                    n.late_join_ms.map_or(String::new(), |j| format!("{j:.1}")),
                    n.server_dropped.to_string(),
                ]),
                None => row.extend(std::iter::repeat_n(String::new(), 6)),
            }
            for s in &spans {
                match p.spans.get(*s) {
                    Some(st) => row.extend(
                        [
                            st.count as f64,
                            st.p50_us,
                            st.p90_us,
                            st.p99_us,
                            st.p999_us,
                            st.max_us,
                            st.mean_us,
                        ]
                        .iter()
                        .map(|v| format!("{v}")),
                    ),
                    None => row.extend(STATS.iter().map(|_| String::new())),
                }
            }
            let flat: BTreeMap<String, String> =
                flatten(&p.config.to_table()).into_iter().collect();
            row.extend(
                config_cols
                    .iter()
                    .map(|c| flat.get(c).cloned().unwrap_or_default()),
            );
            w.write_record(&row)?;
        }
        w.into_inner().map_err(|e| csv::Error::from(e.into_error()))
    }
}

/// Every leaf of a TOML table as `(dotted.path, value)`.
fn flatten(table: &toml::Table) -> Vec<(String, String)> {
    fn walk(prefix: &str, t: &toml::Table, out: &mut Vec<(String, String)>) {
        for (k, v) in t {
            let path = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            match v {
                toml::Value::Table(inner) => walk(&path, inner, out),
                other => out.push((path, crate::sweep::show(other))),
            }
        }
    }
    let mut out = Vec::new();
    walk("", table, &mut out);
    out
}

/// Now as an RFC 3339 UTC timestamp (seconds).
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flatten_names_every_leaf() {
        let flat = flatten(&StreamConfig::default().to_table());
        let keys: Vec<&str> = flat.iter().map(|(k, _)| k.as_str()).collect();
        assert!(keys.contains(&"encoder.preset"));
        assert!(keys.contains(&"encoder.pipeline.zeroCopy"));
        assert!(keys.contains(&"rtmp.chunk_size"));
    }

    #[test]
    fn atomic_write_replaces_whole_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/latest.json");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let leftovers = std::fs::read_dir(dir.path().join("a")).unwrap().count();
        assert_eq!(leftovers, 1);
    }

    #[test]
    fn medians() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
