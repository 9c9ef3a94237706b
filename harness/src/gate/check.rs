//! The `harness gate` command: reads the baselines, measures (or reads) every figure, prints
//! the table, and either rewrites the baselines (`--update`) or fails on a regression.

use super::baselines::{InstructionBaselines, RatioBaseline, RatioBaselines, Updated, cpu};
use super::gungraun::parse_gungraun;
use super::ratios::{figures, measure_ratios};
use super::verdict::{
    Row, Verdict, compare_instructions_on, compare_ratios, failed, instruction_reference_note,
    table,
};
use crate::results::write_atomic;
use crate::stats::{Pair, paired_ratio};
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
    /// The base commit's `harness` (the timed figures' reference side) and its commit.
    pub base: Option<(PathBuf, String)>,
    /// Repetitions of each timed figure.
    pub reps: usize,
    /// Skip the wall-time ratios (instruction counts only).
    pub no_ratios: bool,
    /// Rewrite the baselines with what was measured now (keeping tolerances and noise; the
    /// instruction counts of this processor kind only, other processors' entries kept).
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
            let counts = parse_gungraun(&text)?;
            if counts.is_empty() {
                bail!("{}: no gungraun summaries", path.display());
            }
            let here = cpu();
            eprintln!(
                "gate: {}",
                instruction_reference_note(&instr_base, &counts, &here)
            );
            rows.extend(compare_instructions_on(&instr_base, &counts, &here));
            Some(counts)
        }
        None => None,
    };
    let ratios = if args.no_ratios {
        None
    } else {
        let Some((base_exe, base_commit)) = &args.base else {
            bail!(
                "gate: the timed figures run the base commit's code beside this one: run them \
                 through `cargo xtask gate` (which builds it), pass --base, or skip them with \
                 --no-ratios"
            );
        };
        let head = std::env::current_exe()?;
        let mut figs = figures(base_exe, &head)?;
        let against = format!("base {base_commit}");
        eprintln!(
            "gate: timed figures: this tree's code against the {against} (the commit that last \
             changed ratios.json), taking turns"
        );
        // A baseline is measured three times as long as a check: the record leans on it.
        let reps = args.reps.max(1) * if args.update { 3 } else { 1 };
        let r = measure_ratios(
            &mut figs.figures,
            reps,
            |n| ratio_base.noise(n),
            |m| eprintln!("gate: {m}"),
        )?;
        rows.extend(compare_ratios(&ratio_base, &r, &against));
        for (name, _) in &figs.head_only {
            rows.push(Row {
                kind: "ratio",
                name: name.clone(),
                baseline: None,
                now: None,
                interval: None,
                threshold: ratio_base.noise(name),
                verdict: Verdict::New,
                against: Some(format!("{against}, which does not have it")),
            });
        }
        if let Some(path) = &args.samples {
            write_atomic(path, &serde_json::to_vec_pretty(&r)?)?;
        }
        let whats: Vec<(String, String)> = figs
            .figures
            .iter()
            .map(|f| (f.name().to_string(), f.what().to_string()))
            .chain(figs.head_only.iter().cloned())
            .collect();
        Some((r, whats))
    };
    let table = table(&rows);
    println!("{table}");
    if let Some(path) = &args.markdown {
        write_atomic(path, table.as_bytes())?;
    }
    if args.update {
        if let Some(c) = counts {
            // This processor's entry only: the other processors' counts stay as they were.
            instr_base.processors.insert(cpu(), c);
            let json = serde_json::to_vec_pretty(&instr_base)?;
            write_atomic(&args.baselines.join("instructions.json"), &json)?;
        }
        if let Some((r, whats)) = ratios {
            update_ratios(&mut ratio_base, &r, &whats);
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

/// The baselines under `dir`; a missing file gives empty baselines (default tolerances).
///
/// # Errors
/// A file exists but cannot be read or parsed.
pub fn load_baselines(dir: &Path) -> Result<(InstructionBaselines, RatioBaselines)> {
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
        None => InstructionBaselines::default(),
    };
    let ratio_base: RatioBaselines = match read("ratios.json")? {
        Some(t) => serde_json::from_str(&t).context("results/baselines/ratios.json")?,
        None => RatioBaselines::default(),
    };
    Ok((instr_base, ratio_base))
}

/// Records this update (date, processor, each figure measured now) and brings the figures in
/// line with the code's (`whats`: name and description of every figure the head offers): a new
/// one gets the default noise threshold, a gone one goes, thresholds are kept.
fn update_ratios(
    ratio_base: &mut RatioBaselines,
    r: &BTreeMap<String, Vec<Pair>>,
    whats: &[(String, String)],
) {
    for (name, what) in whats {
        let entry = ratio_base
            .ratios
            .entry(name.clone())
            .or_insert_with(|| RatioBaseline {
                noise: 0.05,
                what: String::new(),
            });
        entry.what.clone_from(what);
    }
    ratio_base
        .ratios
        .retain(|name, _| whats.iter().any(|(n, _)| n == name));
    ratio_base.updated = Some(Updated {
        date: crate::results::now_rfc3339(),
        processor: cpu(),
        figures: r
            .iter()
            .map(|(name, pairs)| (name.clone(), paired_ratio(pairs)))
            .collect(),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn update_replaces_this_processors_counts_and_keeps_the_others() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        // The old single-processor format, from a processor this machine is not.
        let other = "Test Processor 1 (none)";
        std::fs::write(
            dir.join("instructions.json"),
            format!(
                r#"{{"tolerance": 0.03, "counts": {{"a": 1000, "gone": 5}}, "cpu": "{other}"}}"#
            ),
        )
        .unwrap();
        let line = r#"{"function_name":"a","id":"","profiles":[{"summaries":{"total":{"summary":{"Callgrind":{"Ir":{"metrics":{"Left":{"Int":1234}}}}}}}}]}"#;
        let input = dir.join("instr.jsonl");
        std::fs::write(&input, format!("{line}\n")).unwrap();
        let options = GateOptions {
            instructions: Some(input),
            baselines: dir.clone(),
            base: None,
            reps: 1,
            no_ratios: true,
            update: true,
            markdown: None,
            samples: None,
        };
        check(&options).unwrap();
        let text = std::fs::read_to_string(dir.join("instructions.json")).unwrap();
        let base: InstructionBaselines = serde_json::from_str(&text).unwrap();
        assert_eq!(base.tolerance, 0.03, "tolerances kept");
        assert_eq!(
            base.processors[other],
            [("a".to_string(), 1000), ("gone".to_string(), 5)].into(),
            "the other processor's entry is kept as it was"
        );
        assert_eq!(base.processors[&cpu()], [("a".to_string(), 1234)].into());
        // A second update replaces this processor's entry only.
        std::fs::write(dir.join("instr.jsonl"), line.replace("1234", "1300") + "\n").unwrap();
        check(&options).unwrap();
        let again: InstructionBaselines =
            serde_json::from_str(&std::fs::read_to_string(dir.join("instructions.json")).unwrap())
                .unwrap();
        assert_eq!(again.processors.len(), 2);
        assert_eq!(again.processors[other], base.processors[other]);
        assert_eq!(again.processors[&cpu()]["a"], 1300);
        // Without --update, now against this processor's own entry: it holds.
        check(&GateOptions {
            update: false,
            ..options
        })
        .unwrap();
    }
}
