//! The layout engine: the scene's layers (position, size, z-order, opacity, content), their
//! changes over time, recomputed every `updateInterval` of stream time.
//!
//! Layers come in three kinds, by index: static (a logo or a lower third that never moves),
//! moving (a picture-in-picture travelling on a path) and swapping (a ticker whose image changes
//! every second). With `batchUpdates` an update applies all pending changes, then re-sorts and
//! re-places the layers once; without, each change is applied on its own, followed by its own
//! re-sort and re-placement, as an engine that reacts to every change would. Each update marks
//! `layout:update:start/end`.

use super::viewport::{Rect, Viewport};
use crate::config::LayoutConfig;
use crate::probe::{Point, Probe};

/// How a layer changes over time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Motion {
    Static,
    Moving,
    Swapping,
}

/// One layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// The asset it shows.
    pub asset: usize,
    /// Where it wants to be (before snapping).
    pub wanted: Rect,
    /// Where it is placed (snapped into the safe area).
    pub rect: Rect,
    pub z: i32,
    /// 0–255.
    pub opacity: u8,
    pub motion: Motion,
}

#[derive(Debug, Clone, Copy)]
enum Change {
    Move(usize, Rect),
    Swap(usize, usize),
}

/// Layout counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LayoutStats {
    /// Updates run.
    pub updates: u64,
    /// Changes applied.
    pub changes: u64,
    /// Placements computed (one per layer per re-placement).
    pub placements: u64,
    /// The last update's complexity score.
    pub complexity: f64,
}

/// The layers and their schedule.
pub struct Layout {
    layers: Vec<Layer>,
    pending: Vec<Change>,
    interval_ms: u64,
    batch: bool,
    last_update: Option<u64>,
    assets: usize,
    /// Bumped whenever a static layer changes (the compositor's static cache keys on it).
    static_version: u64,
    stats: LayoutStats,
}

impl Layout {
    /// `cfg.layers` layers over `assets` assets, placed in `viewport`.
    pub fn new(cfg: &LayoutConfig, viewport: &Viewport, assets: usize) -> Self {
        let n = cfg.layers.min(cfg.max_layers) as usize;
        let (w, h) = (viewport.width as i32, viewport.height as i32);
        let layers = (0..n)
            .map(|i| {
                let motion = match i % 3 {
                    0 => Motion::Static,
                    1 => Motion::Moving,
                    _ => Motion::Swapping,
                };
                // Sizes from a quarter to an eighth of the frame width; 16:9-ish or banner.
                let lw = w / (4 + (i as i32 % 5));
                let lh = if i % 4 == 3 { lw / 4 } else { lw * 9 / 16 };
                let corner = i as i32 % 4;
                let wanted = Rect {
                    x: if corner % 2 == 0 { 0 } else { w - lw },
                    y: if corner < 2 { 0 } else { h - lh },
                    w: lw as u32,
                    h: lh as u32,
                };
                // Static layers sit at the bottom, stacked in the lower-left corner (a lower
                // third with a logo over it): the compositor can pre-compose them as a group.
                let (wanted, z) = if motion == Motion::Static {
                    let k = i as i32 / 3;
                    let r = Rect {
                        x: k * 24,
                        y: h - lh - k * 16,
                        w: (lw - k * 24).max(16) as u32,
                        h: (lh - k * 16).max(16) as u32,
                    };
                    (r, i as i32 - 1000)
                } else {
                    (wanted, i as i32)
                };
                Layer {
                    asset: i % assets.max(1),
                    wanted,
                    rect: viewport.transform(wanted),
                    z,
                    opacity: if i % 2 == 0 { 255 } else { 200 },
                    motion,
                }
            })
            .collect();
        Layout {
            layers,
            pending: Vec::with_capacity(n),
            interval_ms: u64::from(cfg.update_interval.max(1)),
            batch: cfg.batch_updates,
            last_update: None,
            assets: assets.max(1),
            static_version: 0,
            stats: LayoutStats::default(),
        }
    }

    /// The layers, bottom first.
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    /// Changes whenever a static layer changes.
    pub fn static_version(&self) -> u64 {
        self.static_version
    }

    /// Recomputes the layout at stream time `t_ms` if `updateInterval` has passed since the
    /// last update; marks `layout:update` for `frame`. Returns whether anything changed.
    pub fn update<P: Probe>(
        &mut self,
        t_ms: u64,
        frame: u64,
        viewport: &Viewport,
        probe: &P,
    ) -> bool {
        if self
            .last_update
            .is_some_and(|last| t_ms < last + self.interval_ms)
        {
            return false;
        }
        self.last_update = Some(t_ms);
        probe.mark(Point::LayoutUpdateStart, frame);
        let safe = viewport.safe_area();
        for (i, l) in self.layers.iter().enumerate() {
            match l.motion {
                Motion::Static => {}
                Motion::Moving => {
                    let t = t_ms as f32 / 1000.0;
                    let fx = 0.3 + 0.07 * i as f32;
                    let span_x = safe.w.saturating_sub(l.wanted.w) as f32;
                    let span_y = safe.h.saturating_sub(l.wanted.h) as f32;
                    let x = safe.x as f32 + span_x * 0.5 * (1.0 + (t * fx).sin());
                    let y = safe.y as f32 + span_y * 0.5 * (1.0 + (t * fx * 1.3 + 1.0).cos());
                    let to = Rect {
                        x: x as i32,
                        y: y as i32,
                        ..l.wanted
                    };
                    if to != l.wanted {
                        self.pending.push(Change::Move(i, to));
                    }
                }
                Motion::Swapping => {
                    let asset = (i + (t_ms / 1000) as usize) % self.assets;
                    if asset != l.asset {
                        self.pending.push(Change::Swap(i, asset));
                    }
                }
            }
        }
        let changes = self.pending.len();
        if self.batch {
            for c in self.pending.drain(..) {
                apply(&mut self.layers, c);
            }
            self.stats.placements += place(&mut self.layers, viewport);
        } else {
            for c in self.pending.drain(..) {
                apply(&mut self.layers, c);
                self.stats.placements += place(&mut self.layers, viewport);
            }
        }
        self.stats.updates += 1;
        self.stats.changes += changes as u64;
        let covered: u64 = self.layers.iter().map(|l| l.rect.area()).sum();
        let frame_area = u64::from(viewport.width) * u64::from(viewport.height);
        self.stats.complexity = self.layers.len() as f64 * covered as f64
            / frame_area.max(1) as f64
            * (1 + changes) as f64;
        probe.mark(Point::LayoutUpdateEnd, frame);
        changes > 0
    }

    /// Re-places every layer (after a viewport resize or update); counts as a full change.
    pub fn replace_all(&mut self, viewport: &Viewport) {
        self.stats.placements += place(&mut self.layers, viewport);
        self.static_version += 1;
    }

    /// The counters so far.
    pub fn stats(&self) -> LayoutStats {
        self.stats
    }
}

fn apply(layers: &mut [Layer], c: Change) {
    match c {
        Change::Move(i, to) => layers[i].wanted = to,
        Change::Swap(i, asset) => layers[i].asset = asset,
    }
}

/// Sorts by z (stable order for equal z, no allocation) and places every layer.
fn place(layers: &mut [Layer], viewport: &Viewport) -> u64 {
    layers.sort_unstable_by_key(|l| l.z);
    for l in layers.iter_mut() {
        l.rect = viewport.transform(l.wanted);
    }
    layers.len() as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ViewportConfig;
    use crate::probe::NoProbe;

    fn setup(batch: bool) -> (Layout, Viewport) {
        let v = Viewport::new(&ViewportConfig::default());
        let cfg = LayoutConfig {
            layers: 6,
            batch_updates: batch,
            ..LayoutConfig::default()
        };
        (Layout::new(&cfg, &v, 4), v)
    }

    #[test]
    fn updates_follow_the_interval_and_move_layers() {
        let (mut l, v) = setup(true);
        assert!(!l.update(0, 0, &v, &NoProbe) || l.stats().updates == 1);
        let moving = |l: &Layout| {
            l.layers()
                .iter()
                .find(|l| l.motion == Motion::Moving)
                .unwrap()
                .rect
        };
        let still = |l: &Layout| l.layers()[0].rect;
        let (before, fixed) = (moving(&l), still(&l));
        assert!(
            !l.update(10, 1, &v, &NoProbe),
            "within the interval: no update"
        );
        l.update(2000, 60, &v, &NoProbe);
        assert_ne!(moving(&l), before, "a moving layer moved");
        assert_eq!(still(&l), fixed, "a static layer stayed");
        assert_eq!(
            l.layers()[0].motion,
            Motion::Static,
            "static layers at the bottom"
        );
        assert!(l.stats().complexity > 0.0);
    }

    #[test]
    fn unbatched_updates_place_once_per_change() {
        let (mut batched, v) = setup(true);
        let (mut single, _) = setup(false);
        for t in [0, 1000, 2000] {
            batched.update(t, 0, &v, &NoProbe);
            single.update(t, 0, &v, &NoProbe);
        }
        assert_eq!(batched.layers(), single.layers(), "same result either way");
        assert!(single.stats().placements > batched.stats().placements);
    }
}
