//! The viewport: the output frame's geometry, the grid layout positions snap to, and the safe
//! area content is kept inside.

use crate::config::{Margin, ViewportConfig};

/// A rectangle in frame pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rect {
    pub x: i32,
    pub y: i32,
    pub w: u32,
    pub h: u32,
}

impl Rect {
    /// Pixels covered.
    pub fn area(&self) -> u64 {
        u64::from(self.w) * u64::from(self.h)
    }
}

/// The output geometry, grid and safe area.
#[derive(Debug, Clone, PartialEq)]
pub struct Viewport {
    pub width: u32,
    pub height: u32,
    pub grid: u32,
    pub margin: Margin,
}

impl Viewport {
    /// The configured viewport.
    pub fn new(cfg: &ViewportConfig) -> Self {
        Viewport {
            width: cfg.width,
            height: cfg.height,
            grid: cfg.grid_size.max(1),
            margin: cfg.safe_area_margin,
        }
    }

    /// Changes the output size (the layout re-places its layers after this).
    pub fn resize(&mut self, width: u32, height: u32) {
        self.width = width;
        self.height = height;
        self.margin.x = self.margin.x.min((width / 2).saturating_sub(1));
        self.margin.y = self.margin.y.min((height / 2).saturating_sub(1));
    }

    /// Changes grid and margin (the guide's "viewport update").
    pub fn update(&mut self, grid: u32, margin: Margin) {
        self.grid = grid.max(1);
        self.margin = margin;
        self.resize(self.width, self.height);
    }

    /// The area content must stay inside.
    pub fn safe_area(&self) -> Rect {
        Rect {
            x: self.margin.x as i32,
            y: self.margin.y as i32,
            w: self.width - 2 * self.margin.x,
            h: self.height - 2 * self.margin.y,
        }
    }

    /// Places `r`: size and position snapped to the grid, the size no larger than the safe
    /// area, the position inside it, everything even (the frame is 4:2:0).
    pub fn transform(&self, r: Rect) -> Rect {
        let safe = self.safe_area();
        let g = self.grid as i32;
        let snap = |v: i32| ((v + g / 2).div_euclid(g)) * g;
        let even_down = |v: u32| v & !1;
        let w = even_down((snap(r.w as i32).max(2) as u32).min(safe.w)).max(2);
        let h = even_down((snap(r.h as i32).max(2) as u32).min(safe.h)).max(2);
        let max_x = safe.x + (safe.w - w) as i32;
        let max_y = safe.y + (safe.h - h) as i32;
        let x = snap(r.x).clamp(safe.x, max_x) & !1;
        let y = snap(r.y).clamp(safe.y, max_y) & !1;
        Rect { x, y, w, h }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vp() -> Viewport {
        Viewport {
            width: 1280,
            height: 720,
            grid: 8,
            margin: Margin { x: 64, y: 36 },
        }
    }

    #[test]
    fn placed_rects_snap_to_the_grid_and_stay_in_the_safe_area() {
        let v = vp();
        let r = v.transform(Rect {
            x: -50,
            y: 701,
            w: 203,
            h: 97,
        });
        let safe = v.safe_area();
        assert!(r.x >= safe.x && r.y >= safe.y, "{r:?}");
        assert!(r.x + r.w as i32 <= safe.x + safe.w as i32, "{r:?}");
        assert!(r.y + r.h as i32 <= safe.y + safe.h as i32, "{r:?}");
        assert_eq!(r.w % 8, 0);
        let inside = v.transform(Rect {
            x: 203,
            y: 299,
            w: 100,
            h: 60,
        });
        assert_eq!((inside.x % 8, inside.y % 8), (0, 0), "{inside:?}");
        assert!(r.w <= safe.w && r.h <= safe.h);
    }

    #[test]
    fn resize_keeps_the_margin_possible() {
        let mut v = vp();
        v.resize(64, 36);
        assert!(v.safe_area().w > 0 && v.safe_area().h > 0);
    }
}
