//! The CI gate: instruction counts against `results/baselines/instructions.json`, and wall-time
//! ratios measured side by side in one run against `results/baselines/ratios.json`.
//!
//! - **Instructions** (gungraun, exact from run to run): a bench more than its tolerance above
//!   its baseline (default +2%, per-bench overrides) is a regression; more than the tolerance
//!   below is an improvement (update the baseline to keep it).
//! - **Ratios** (wall time, noisy): each is measured `reps` times, both sides of the ratio
//!   alternating in the same process so the machine's drift falls on both; the verdict uses the
//!   median and a 95% bootstrap confidence interval of it, and — criterion's rule — is a
//!   regression only when the whole interval lies beyond the noise threshold below the baseline
//!   (every ratio here is higher-is-better).
//!
//! [`table`] prints every figure (baseline, now, change, verdict) as Markdown.

use crate::hot::Compose;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Instant;

/// `results/baselines/instructions.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InstructionBaselines {
    /// Allowed rise over the baseline, as a fraction (0.02 = +2%).
    #[serde(default = "default_tolerance")]
    pub tolerance: f64,
    /// Per-bench tolerances that replace the default.
    #[serde(default)]
    pub overrides: BTreeMap<String, f64>,
    /// Instructions per bench.
    pub counts: BTreeMap<String, u64>,
    /// The processor the counts were taken on ([`cpu`]): glibc picks its string and memory
    /// routines by processor features, so counts from another kind are shown, not gated.
    #[serde(default)]
    pub cpu: String,
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

/// One ratio's baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RatioBaseline {
    /// The median when the baseline was taken.
    pub median: f64,
    /// How far below the baseline (fraction) the whole confidence interval must lie to fail.
    pub noise: f64,
    /// What the ratio is.
    pub what: String,
}

/// `results/baselines/ratios.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RatioBaselines {
    pub ratios: BTreeMap<String, RatioBaseline>,
}

/// What the gate concluded for one figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    Pass,
    Improved,
    Regressed,
    /// Measured, but with no baseline yet.
    New,
    /// In the baseline, but not measured now.
    Missing,
    /// Measured on another kind of processor than the baseline's: shown, not gated.
    OtherMachine,
}

impl Verdict {
    fn fails(self) -> bool {
        matches!(self, Verdict::Regressed | Verdict::Missing)
    }
}

/// One row of the gate's table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub kind: &'static str,
    pub name: String,
    pub baseline: Option<f64>,
    pub now: Option<f64>,
    /// 95% confidence interval of the median (ratios).
    pub interval: Option<(f64, f64)>,
    /// The threshold that applied, as a fraction.
    pub threshold: f64,
    pub verdict: Verdict,
}

impl Row {
    /// now ÷ baseline − 1.
    pub fn change(&self) -> Option<f64> {
        match (self.baseline, self.now) {
            (Some(b), Some(n)) if b != 0.0 => Some(n / b - 1.0),
            _ => None,
        }
    }
}

/// Instruction counts now against their baselines.
pub fn compare_instructions(base: &InstructionBaselines, now: &BTreeMap<String, u64>) -> Vec<Row> {
    compare_instructions_on(base, now, &cpu())
}

/// [`compare_instructions`] for counts taken on processor `here`.
pub fn compare_instructions_on(
    base: &InstructionBaselines,
    now: &BTreeMap<String, u64>,
    here: &str,
) -> Vec<Row> {
    let other = !base.cpu.is_empty() && base.cpu != here;
    let mut rows = Vec::new();
    for (name, &count) in now {
        let tol = base.overrides.get(name).copied().unwrap_or(base.tolerance);
        let baseline = base.counts.get(name).copied();
        let verdict = match baseline {
            None => Verdict::New,
            Some(_) if other => Verdict::OtherMachine,
            Some(b) if count as f64 > b as f64 * (1.0 + tol) => Verdict::Regressed,
            Some(b) if (count as f64) < b as f64 * (1.0 - tol) => Verdict::Improved,
            Some(_) => Verdict::Pass,
        };
        rows.push(Row {
            kind: "instructions",
            name: name.clone(),
            baseline: baseline.map(|b| b as f64),
            now: Some(count as f64),
            interval: None,
            threshold: tol,
            verdict,
        });
    }
    for (name, &b) in &base.counts {
        if !now.contains_key(name) {
            rows.push(Row {
                kind: "instructions",
                name: name.clone(),
                baseline: Some(b as f64),
                now: None,
                interval: None,
                threshold: base.overrides.get(name).copied().unwrap_or(base.tolerance),
                verdict: Verdict::Missing,
            });
        }
    }
    rows
}

/// The median of `v` (NaN for none).
pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

/// A 95% bootstrap percentile interval of the median of `samples` (deterministic: a fixed
/// seed, 2000 resamples).
pub fn median_interval(samples: &[f64]) -> (f64, f64) {
    if samples.len() < 2 {
        let m = median(samples);
        return (m, m);
    }
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let n = samples.len();
    let mut medians: Vec<f64> = (0..2000)
        .map(|_| {
            let resample: Vec<f64> = (0..n)
                .map(|_| samples[(next() % n as u64) as usize])
                .collect();
            median(&resample)
        })
        .collect();
    medians.sort_by(f64::total_cmp);
    (medians[50], medians[1949])
}

/// Ratio samples now against their baselines (every ratio is higher-is-better).
pub fn compare_ratios(base: &RatioBaselines, now: &BTreeMap<String, Vec<f64>>) -> Vec<Row> {
    let mut rows = Vec::new();
    for (name, samples) in now {
        let m = median(samples);
        let (lo, hi) = median_interval(samples);
        let b = base.ratios.get(name);
        let noise = b.map_or(0.10, |b| b.noise);
        let verdict = match b {
            None => Verdict::New,
            Some(b) if hi < b.median * (1.0 - noise) => Verdict::Regressed,
            Some(b) if lo > b.median * (1.0 + noise) => Verdict::Improved,
            Some(_) => Verdict::Pass,
        };
        rows.push(Row {
            kind: "ratio",
            name: name.clone(),
            baseline: b.map(|b| b.median),
            now: Some(m),
            interval: Some((lo, hi)),
            threshold: noise,
            verdict,
        });
    }
    for (name, b) in &base.ratios {
        if !now.contains_key(name) {
            rows.push(Row {
                kind: "ratio",
                name: name.clone(),
                baseline: Some(b.median),
                now: None,
                interval: None,
                threshold: b.noise,
                verdict: Verdict::Missing,
            });
        }
    }
    rows
}

/// Whether any row fails the gate.
pub fn failed(rows: &[Row]) -> bool {
    rows.iter().any(|r| r.verdict.fails())
}

/// Every row as a Markdown table.
pub fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| Kind | Benchmark | Baseline | Now | 95% CI | Change | Threshold | Verdict |\n\
         |---|---|---:|---:|---|---:|---:|---|\n",
    );
    let num = |v: Option<f64>, kind: &str| match (v, kind) {
        (Some(v), "instructions") => format!("{v:.0}"),
        (Some(v), _) => format!("{v:.4}"),
        (None, _) => "-".into(),
    };
    for r in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            r.kind,
            r.name,
            num(r.baseline, r.kind),
            num(r.now, r.kind),
            r.interval
                .map_or("-".into(), |(lo, hi)| format!("{lo:.4} – {hi:.4}")),
            r.change()
                .map_or("-".into(), |c| format!("{:+.2}%", c * 100.0)),
            if r.kind == "ratio" {
                format!("−{:.0}%", r.threshold * 100.0)
            } else {
                format!("+{:.1}%", r.threshold * 100.0)
            },
            match r.verdict {
                Verdict::Pass => "pass",
                Verdict::Improved => "improved (update the baseline)",
                Verdict::Regressed => "**REGRESSION**",
                Verdict::New => "new (no baseline)",
                Verdict::OtherMachine => "shown, not gated (baseline from another processor)",
                Verdict::Missing => "**missing**",
            }
        );
    }
    out
}

/// Instruction counts from gungraun's JSON output (`--output-format=json`, one summary per
/// line): the `Ir` of each benchmark, named `function/id`.
///
/// # Errors
/// A line that is not a gungraun summary.
pub fn parse_gungraun(text: &str) -> Result<BTreeMap<String, u64>, String> {
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| l.trim_start().starts_with('{')) {
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| format!("gungraun output: {e}: {line}"))?;
        let function = v["function_name"].as_str().unwrap_or("?");
        let id = v["id"].as_str().unwrap_or("");
        let name = if id.is_empty() {
            function.to_string()
        } else {
            format!("{function}/{id}")
        };
        let ir = find_ir(&v).ok_or_else(|| format!("gungraun output: no Ir for {name}"))?;
        out.insert(name, ir);
    }
    Ok(out)
}

/// The first `Ir` count in a summary (the total of the benchmark's callgrind profile).
fn find_ir(v: &serde_json::Value) -> Option<u64> {
    match v {
        serde_json::Value::Object(m) => {
            if let Some(ir) = m.get("Ir") {
                if let Some(n) = first_int(ir) {
                    return Some(n);
                }
            }
            m.values().find_map(find_ir)
        }
        serde_json::Value::Array(a) => a.iter().find_map(find_ir),
        _ => None,
    }
}

/// The "now" side of a metric: the first integer under its `metrics` (gungraun writes
/// `{"metrics": {"Left": {"Int": N}}}` or `{"Both": [{"Int": new}, {"Int": old}]}`).
fn first_int(v: &serde_json::Value) -> Option<u64> {
    match v {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::Object(m) => ["metrics", "Left", "Both", "Int"]
            .iter()
            .find_map(|k| m.get(*k).and_then(first_int)),
        serde_json::Value::Array(a) => a.first().and_then(first_int),
        _ => None,
    }
}

/// Wall-time ratios, each measured `reps` times with both sides alternating in this process.
pub fn measure_ratios(
    reps: usize,
    mut progress: impl FnMut(&str),
) -> anyhow::Result<BTreeMap<String, Vec<f64>>> {
    let mut out: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut path = PathRatios::new()?;
    let mut compose = Compose::new(1280, 720, 8);
    let mut src = vec![7u8; compose.frame_bytes()];
    let mut dst = vec![0u8; compose.frame_bytes()];
    for rep in 0..reps {
        progress(&format!("ratios: repetition {}/{reps}", rep + 1));
        let (path_ratio, probe_ratio) = path.once()?;
        out.entry("path_fps_over_bare_encoder_fps".into())
            .or_default()
            .push(path_ratio);
        out.entry("recorder_fps_over_noop_probe_fps".into())
            .or_default()
            .push(probe_ratio);
        // Compositor bandwidth (frame bytes per second composing 8 layers, the background's
        // copy included) over memcpy bandwidth (frame bytes per second copied).
        let rounds = 200;
        let t = Instant::now();
        for _ in 0..rounds {
            compose.frame();
        }
        let compose_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        for i in 0..rounds {
            src[i % 64] = i as u8;
            dst.copy_from_slice(std::hint::black_box(&src));
        }
        let copy_s = t.elapsed().as_secs_f64();
        std::hint::black_box(&dst);
        out.entry("compositor_bandwidth_over_memcpy_bandwidth".into())
            .or_default()
            .push(copy_s / compose_s);
    }
    Ok(out)
}

/// The full stream (null output, max pacing, 720p ultrafast, one encoder thread) against the
/// bare encoder on the same pictures, and with the recorder against the no-op probe.
struct PathRatios {
    cfg: streamer::config::StreamConfig,
    pictures: Vec<ffmpeg_next::frame::Video>,
}

const PATH_FRAMES: u64 = 150;

impl PathRatios {
    fn new() -> anyhow::Result<Self> {
        let mut cfg = streamer::config::StreamConfig::default();
        cfg.encoder.pipeline.threads = 1;
        cfg.renderer.backend = streamer::config::RenderBackend::Cpu;
        let v = &cfg.core.viewport;
        let scene = streamer::source::Scene::new(v.width, v.height);
        let pictures = (0..30)
            .map(|i| {
                let mut f = ffmpeg_next::frame::Video::new(
                    ffmpeg_next::format::Pixel::YUV420P,
                    v.width,
                    v.height,
                );
                scene.draw(i, streamer::encode::frame_planes(&mut f));
                f
            })
            .collect();
        Ok(PathRatios { cfg, pictures })
    }

    fn stream<P: streamer::probe::Probe + Sync>(&self, probe: &P) -> anyhow::Result<f64> {
        let mut s =
            streamer::stream::Stream::open(&self.cfg, &streamer::output::Output::Null, probe)?;
        let t = Instant::now();
        s.run(PATH_FRAMES, streamer::stream::Pacing::Max)?;
        s.finish()?;
        Ok(PATH_FRAMES as f64 / t.elapsed().as_secs_f64())
    }

    fn bare(&mut self) -> anyhow::Result<f64> {
        let mut enc = streamer::encode::Encoder::open(&self.cfg, false)?;
        let t = Instant::now();
        for id in 0..PATH_FRAMES {
            let n = self.pictures.len();
            enc.encode_frame(
                id,
                &mut self.pictures[id as usize % n],
                true,
                &streamer::probe::NoProbe,
                |p| {
                    std::hint::black_box(p.data().len());
                },
            )?;
        }
        enc.finish(&streamer::probe::NoProbe, |p| {
            std::hint::black_box(p.data().len());
        })?;
        Ok(PATH_FRAMES as f64 / t.elapsed().as_secs_f64())
    }

    /// (path ÷ bare, recorder ÷ no-op), one measurement each.
    fn once(&mut self) -> anyhow::Result<(f64, f64)> {
        let noop = self.stream(&streamer::probe::NoProbe)?;
        let bare = self.bare()?;
        let recorder = crate::record::Recorder::new();
        let recorded = self.stream(&recorder)?;
        Ok((noop / bare, recorded / noop))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn instruction_counts_regress_improve_or_pass_by_tolerance() {
        let base = InstructionBaselines {
            tolerance: 0.02,
            overrides: [("noisy".to_string(), 0.10)].into(),
            counts: counts(&[
                ("a", 1000),
                ("b", 1000),
                ("c", 1000),
                ("noisy", 1000),
                ("gone", 5),
            ]),
            cpu: String::new(),
        };
        let now = counts(&[
            ("a", 1021),
            ("b", 1019),
            ("c", 970),
            ("noisy", 1080),
            ("fresh", 1),
        ]);
        let rows = compare_instructions_on(&base, &now, "");
        let verdict = |n: &str| rows.iter().find(|r| r.name == n).unwrap().verdict;
        assert_eq!(verdict("a"), Verdict::Regressed);
        assert_eq!(verdict("b"), Verdict::Pass);
        assert_eq!(verdict("c"), Verdict::Improved);
        assert_eq!(verdict("noisy"), Verdict::Pass, "the override applies");
        assert_eq!(verdict("fresh"), Verdict::New);
        assert_eq!(verdict("gone"), Verdict::Missing);
        assert!(failed(&rows));
        let t = table(&rows);
        assert!(t.contains("**REGRESSION**") && t.contains("+2.10%"), "{t}");
        // Counts from another processor kind are shown, never failed on.
        let elsewhere = InstructionBaselines {
            cpu: "Other CPU (avx2)".into(),
            ..base
        };
        let rows = compare_instructions_on(&elsewhere, &now, "AMD EPYC (avx2 avx512f)");
        assert!(rows.iter().any(|r| r.verdict == Verdict::OtherMachine));
        assert!(rows.iter().all(|r| r.verdict != Verdict::Regressed));
    }

    /// Recorded data: ratio samples of real `cargo xtask gate` runs on this project's 2-core
    /// machine (2026-11-27): the unchanged tree, and a run with a deliberately slowed
    /// compositor (a needless pass over the luma plane, not committed).
    #[test]
    fn ratios_fail_only_when_the_whole_interval_is_beyond_the_noise() {
        // compositor bandwidth ÷ memcpy bandwidth, unchanged tree (run 1 of 5).
        const COMPOSE: [f64; 9] = [
            0.228, 0.207, 0.158, 0.208, 0.182, 0.177, 0.135, 0.169, 0.213,
        ];
        // The same with the slowed compositor.
        const SLOWED: [f64; 9] = [
            0.0358, 0.0326, 0.0365, 0.0327, 0.0327, 0.0355, 0.0341, 0.0325, 0.0324,
        ];
        // recorder fps ÷ no-op probe fps, unchanged tree (run 3 of 5): one sample at 1.47 and
        // one at 0.78 — the shared machine's noise.
        const NOISY: [f64; 9] = [1.0, 1.035, 1.046, 1.05, 1.471, 0.865, 0.925, 0.779, 0.977];
        let base = |median: f64| RatioBaselines {
            ratios: [(
                "r".to_string(),
                RatioBaseline {
                    median,
                    noise: 0.15,
                    what: "test".into(),
                },
            )]
            .into(),
        };
        let check = |baseline: f64, samples: &[f64]| {
            compare_ratios(
                &base(baseline),
                &[("r".to_string(), samples.to_vec())].into(),
            )[0]
            .verdict
        };
        // The baselines when these were recorded: compositor 0.2141, recorder 1.0012.
        assert_eq!(check(0.2141, &COMPOSE), Verdict::Pass);
        assert_eq!(check(0.2141, &SLOWED), Verdict::Regressed);
        assert_eq!(
            check(1.0012, &NOISY),
            Verdict::Pass,
            "noise alone never fails"
        );
        // Back from the slowed baseline: an improvement, not a failure.
        assert_eq!(check(0.0327, &COMPOSE), Verdict::Improved);
        // Criterion's rule: a 5% drop leaves the interval reaching the threshold (pass); a 20%
        // drop of the same samples puts all of it beyond (fail).
        let scaled = |f: f64| COMPOSE.iter().map(|r| r * f).collect::<Vec<_>>();
        assert_eq!(check(0.2141, &scaled(0.95)), Verdict::Pass);
        assert_eq!(check(0.2141, &scaled(0.80)), Verdict::Regressed);
    }

    #[test]
    fn bootstrap_interval_brackets_the_median() {
        let s = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0];
        let (lo, hi) = median_interval(&s);
        assert!(
            lo <= 4.0 && 4.0 <= hi && lo >= 1.0 && hi <= 7.0,
            "{lo} {hi}"
        );
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
    }

    #[test]
    fn gungraun_json_lines_give_instruction_counts() {
        let line = r#"{"function_name":"compose_720p","id":"layers_8","profiles":[{"summaries":{"total":{"summary":{"Callgrind":{"Ir":{"metrics":{"Both":[{"Int":1234},{"Int":1200}]},"diffs":null}}}}}}]}"#;
        let other = r#"{"function_name":"mark","id":"pairs_100","profiles":[{"summaries":{"total":{"summary":{"Callgrind":{"Ir":{"metrics":{"Left":{"Int":99}}}}}}}}]}"#;
        let got = parse_gungraun(&format!("noise\n{line}\n{other}\n")).unwrap();
        assert_eq!(got["compose_720p/layers_8"], 1234);
        assert_eq!(got["mark/pairs_100"], 99);
    }
}
