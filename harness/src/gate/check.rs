//! The `harness gate` command: reads the baselines, measures (or reads) every figure, prints
//! the table, and either rewrites the baselines (`--update`) or fails on a regression.

use super::baselines::{InstructionBaselines, RatioBaseline, RatioBaselines, cpu};
use super::gungraun::parse_gungraun;
use super::ratios::measure_ratios;
use super::verdict::{compare_instructions, compare_ratios, failed, median, table};
use crate::results::write_atomic;
use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What `harness gate` was asked to do.
#[derive(Debug, Clone)]
pub struct GateOptions {
    /// gungraun's `--output-format=json` output (one summary per line), if any.
    pub instructions: Option<PathBuf>,
    /// Folder of instructions.json and ratios.json.
    pub baselines: PathBuf,
    /// Repetitions of each wall-time ratio.
    pub reps: usize,
    /// Skip the wall-time ratios (instruction counts only).
    pub no_ratios: bool,
    /// Rewrite the baselines with what was measured now (keeping tolerances and noise).
    pub update: bool,
    /// Also write the table to this file.
    pub markdown: Option<PathBuf>,
    /// Also write every ratio sample to this JSON file.
    pub samples: Option<PathBuf>,
}

/// Runs the gate: every figure against its baseline, the table printed on stdout.
///
/// # Errors
/// A baseline or input file that cannot be read, a measurement that fails, or (without
/// `update`) a figure that regressed.
pub fn check(args: &GateOptions) -> Result<()> {
    let (mut instr_base, mut ratio_base) = load_baselines(&args.baselines)?;
    let mut rows = Vec::new();
    let counts = match &args.instructions {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let counts = parse_gungraun(&text).map_err(anyhow::Error::msg)?;
            if counts.is_empty() {
                bail!("{}: no gungraun summaries", path.display());
            }
            rows.extend(compare_instructions(&instr_base, &counts));
            Some(counts)
        }
        None => None,
    };
    let ratios = if args.no_ratios {
        None
    } else {
        let r = measure_ratios(args.reps.max(1), |m| eprintln!("gate: {m}"))?;
        rows.extend(compare_ratios(&ratio_base, &r));
        if let Some(path) = &args.samples {
            write_atomic(path, &serde_json::to_vec_pretty(&r)?)?;
        }
        Some(r)
    };
    let table = table(&rows);
    println!("{table}");
    if let Some(path) = &args.markdown {
        write_atomic(path, table.as_bytes())?;
    }
    if args.update {
        if let Some(c) = counts {
            instr_base.counts = c;
            instr_base.cpu = cpu();
            let json = serde_json::to_vec_pretty(&instr_base)?;
            write_atomic(&args.baselines.join("instructions.json"), &json)?;
        }
        if let Some(r) = ratios {
            update_ratios(&mut ratio_base, r);
            let json = serde_json::to_vec_pretty(&ratio_base)?;
            write_atomic(&args.baselines.join("ratios.json"), &json)?;
        }
        eprintln!("gate: baselines updated in {}", args.baselines.display());
        return Ok(());
    }
    if failed(&rows) {
        bail!("gate: a figure regressed (see the table above)");
    }
    eprintln!("gate: every figure holds");
    Ok(())
}

/// The baselines under `dir`; a missing file gives empty baselines (default tolerance).
fn load_baselines(dir: &Path) -> Result<(InstructionBaselines, RatioBaselines)> {
    let read = |name: &str| -> Result<Option<String>> {
        let path = dir.join(name);
        match std::fs::read_to_string(&path) {
            Ok(t) => Ok(Some(t)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    };
    let instr_base: InstructionBaselines = match read("instructions.json")? {
        Some(t) => serde_json::from_str(&t).context("results/baselines/instructions.json")?,
        None => InstructionBaselines {
            tolerance: 0.02,
            ..Default::default()
        },
    };
    let ratio_base: RatioBaselines = match read("ratios.json")? {
        Some(t) => serde_json::from_str(&t).context("results/baselines/ratios.json")?,
        None => RatioBaselines::default(),
    };
    Ok((instr_base, ratio_base))
}

/// Sets each ratio's baseline median to the median measured now (a new ratio gets the
/// default noise and its description).
fn update_ratios(ratio_base: &mut RatioBaselines, r: BTreeMap<String, Vec<f64>>) {
    for (name, samples) in r {
        let what = match name.as_str() {
            "path_fps_over_bare_encoder_fps" => {
                "the whole stream (null output, 720p ultrafast, 1 thread, max pacing) \
                 over the bare encoder on the same pictures"
            }
            "recorder_fps_over_noop_probe_fps" => {
                "the stream with the recorder on over the stream with the no-op probe"
            }
            "compositor_bandwidth_over_memcpy_bandwidth" => {
                "frames per second composed (8 layers at 720p) over frames per second \
                 copied with memcpy"
            }
            _ => "",
        };
        let entry = ratio_base
            .ratios
            .entry(name)
            .or_insert_with(|| RatioBaseline {
                median: 0.0,
                noise: 0.25,
                what: what.to_string(),
            });
        entry.median = median(&samples);
    }
}
