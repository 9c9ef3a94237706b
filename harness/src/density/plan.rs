//! `scenarios/density.toml`: the cells the density search measures, how long each trial's
//! warm-up and window are, and the settings every stream shares.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use streamer::config::Preset;

/// A picture size of the grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Size {
    #[serde(rename = "720p")]
    P720,
    #[serde(rename = "1080p")]
    P1080,
}

impl Size {
    pub fn dims(self) -> (u32, u32) {
        match self {
            Size::P720 => (1280, 720),
            Size::P1080 => (1920, 1080),
        }
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Size::P720 => "720p",
            Size::P1080 => "1080p",
        })
    }
}

/// Where a cell's pictures come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The built-in moving scene, at 30 fps.
    Synthetic,
    /// The real clip (`cargo xtask clip`), at its own 25 fps, scaled to the size.
    Clip,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Source::Synthetic => "synthetic",
            Source::Clip => "clip",
        })
    }
}

/// One cell of the grid: what every stream of a trial runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cell {
    pub preset: Preset,
    /// x264's threads per stream (`encoder.pipeline.threads`).
    pub threads: u32,
    pub size: Size,
    pub source: Source,
}

impl fmt::Display for Cell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} thread(s) {} {}",
            self.preset, self.threads, self.size, self.source
        )
    }
}

/// A block of the grid: every combination of its lists.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grid {
    pub presets: Vec<Preset>,
    pub threads: Vec<u32>,
    pub sizes: Vec<Size>,
    pub sources: Vec<Source>,
}

/// How long a trial warms up and measures, and which cells it covers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timing {
    pub warmup_s: u32,
    pub window_s: u32,
    pub grid: Vec<Grid>,
}

/// The whole plan.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    pub description: String,
    /// The most streams a trial runs.
    pub max_streams: u32,
    /// Settings every stream shares, as dotted config paths (`encoder.rateControl.mode`).
    #[serde(default)]
    pub base: BTreeMap<String, toml::Value>,
    /// The bitrate for each size, kbit/s (the VBV buffer is as large).
    pub bitrate_kbps: BTreeMap<String, u32>,
    pub full: Timing,
    pub quick: Timing,
}

/// A plan that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PlanError(pub String);

impl Plan {
    /// Reads and checks a plan.
    ///
    /// # Errors
    /// The text does not parse, a value is out of range, or a setting is not a config field.
    pub fn parse(text: &str) -> Result<Plan, PlanError> {
        let plan: Plan = toml::from_str(text).map_err(|e| PlanError(e.to_string()))?;
        if !(1..=256).contains(&plan.max_streams) {
            return Err(PlanError(format!(
                "max_streams = {}: valid 1..=256",
                plan.max_streams
            )));
        }
        for (name, t) in [("full", &plan.full), ("quick", &plan.quick)] {
            if !(1..=600).contains(&t.window_s) || t.warmup_s > 600 {
                return Err(PlanError(format!(
                    "[{name}] window_s = {}, warmup_s = {}: valid 1..=600 and 0..=600",
                    t.window_s, t.warmup_s
                )));
            }
            for g in &t.grid {
                if let Some(t) = g.threads.iter().find(|t| !(1..=16).contains(*t)) {
                    return Err(PlanError(format!("[{name}] threads = {t}: valid 1..=16")));
                }
                for s in &g.sizes {
                    if !plan.bitrate_kbps.contains_key(&s.to_string()) {
                        return Err(PlanError(format!("bitrate_kbps has no {s}")));
                    }
                }
            }
        }
        let probe = Cell {
            preset: Preset::Ultrafast,
            threads: 1,
            size: Size::P720,
            source: Source::Synthetic,
        };
        let mut cfg = streamer::config::StreamConfig::default();
        for o in plan.overrides(probe, "") {
            cfg.apply_override(&o)
                .map_err(|e| PlanError(format!("[base] {o}: {e}")))?;
        }
        cfg.validate()
            .map_err(|e| PlanError(format!("[base]: {e}")))?;
        Ok(plan)
    }

    /// The cells of `timing`'s grid, in order.
    pub fn cells(timing: &Timing) -> Vec<Cell> {
        let mut cells = Vec::new();
        for g in &timing.grid {
            for &size in &g.sizes {
                for &source in &g.sources {
                    for &preset in &g.presets {
                        for &threads in &g.threads {
                            cells.push(Cell {
                                preset,
                                threads,
                                size,
                                source,
                            });
                        }
                    }
                }
            }
        }
        cells
    }

    /// Every `--set` of `cell` (reading the clip at `clip`).
    pub fn overrides(&self, cell: Cell, clip: &str) -> Vec<String> {
        let mut o: Vec<String> = self.base.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let (w, h) = cell.size.dims();
        let kbps = self
            .bitrate_kbps
            .get(&cell.size.to_string())
            .copied()
            .unwrap_or(2500);
        o.extend([
            format!("encoder.preset={}", cell.preset.as_str()),
            format!("encoder.pipeline.threads={}", cell.threads),
            format!("core.viewport.width={w}"),
            format!("core.viewport.height={h}"),
            format!("encoder.rateControl.bitrateKbps={kbps}"),
            format!("encoder.rateControl.vbvBufferKbits={kbps}"),
        ]);
        if cell.source == Source::Clip {
            o.push("source.kind=file".into());
            o.push(format!("source.path={clip:?}"));
        }
        o
    }
}
