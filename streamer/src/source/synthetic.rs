//! A deterministic synthetic scene, drawn straight into YUV420P planes.
//!
//! Frame `n` is a pure function of `n` and the geometry, so two runs (or the in-process encoder
//! and the ffmpeg CLI fed from a raw file) see identical pictures. The content moves so the
//! encoder has real work: a textured background scrolls diagonally, coloured boxes travel on
//! Lissajous paths, and a strip of blocks spells the frame number in binary (handy when looking
//! at a recording). Drawing is row copies and fills — no per-pixel colour conversion — because an
//! RGBA→YUV pass would cost more than the ultrafast encode it feeds.

use crate::frame::Planes;

/// Margin of texture beyond the frame so a scrolled row is one contiguous copy.
const SCROLL: usize = 256;

/// The synthetic scene for one frame geometry.
pub struct Scene {
    width: usize,
    height: usize,
    /// Luma texture, `(width + SCROLL) × (height + SCROLL)`.
    luma: Vec<u8>,
    /// Chroma textures at half resolution, `(width/2 + SCROLL/2) × (height/2 + SCROLL/2)`.
    cb: Vec<u8>,
    cr: Vec<u8>,
}

/// A moving box: Lissajous frequencies, size, and its YUV colour.
struct Mover {
    fx: f32,
    fy: f32,
    phase: f32,
    w: usize,
    h: usize,
    yuv: [u8; 3],
}

const MOVERS: [Mover; 4] = [
    Mover {
        fx: 0.021,
        fy: 0.034,
        phase: 0.0,
        w: 160,
        h: 120,
        yuv: [81, 90, 240],
    },
    Mover {
        fx: 0.027,
        fy: 0.019,
        phase: 1.3,
        w: 120,
        h: 160,
        yuv: [145, 54, 34],
    },
    Mover {
        fx: 0.015,
        fy: 0.041,
        phase: 2.6,
        w: 200,
        h: 90,
        yuv: [41, 240, 110],
    },
    Mover {
        fx: 0.038,
        fy: 0.023,
        phase: 4.1,
        w: 96,
        h: 96,
        yuv: [210, 16, 146],
    },
];

impl Scene {
    /// Builds the scene's textures for `width × height` (both even).
    pub fn new(width: u32, height: u32) -> Self {
        let (width, height) = (width as usize, height as usize);
        let (tw, th) = (width + SCROLL, height + SCROLL);
        let mut rng = 0x9E37_79B9_7F4A_7C15u64;
        let mut noise = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            (rng >> 56) as u8
        };
        let mut luma = vec![0u8; tw * th];
        for y in 0..th {
            for x in 0..tw {
                // Diagonal bands plus a checker and mild noise: structure the encoder can
                // predict, detail it has to spend bits on.
                let band = ((x + 2 * y) / 24 % 8) as u8 * 14;
                let check = if ((x / 40) + (y / 40)) % 2 == 0 {
                    20
                } else {
                    0
                };
                luma[y * tw + x] = 40 + band + check + noise() / 16;
            }
        }
        let (cw, ch) = (tw / 2, th / 2);
        let mut cb = vec![0u8; cw * ch];
        let mut cr = vec![0u8; cw * ch];
        for y in 0..ch {
            for x in 0..cw {
                cb[y * cw + x] = 96 + ((x * 64) / cw) as u8;
                cr[y * cw + x] = 96 + ((y * 64) / ch) as u8;
            }
        }
        Scene {
            width,
            height,
            luma,
            cb,
            cr,
        }
    }

    /// Picture width in pixels.
    pub fn width(&self) -> u32 {
        self.width as u32
    }

    /// Picture height in pixels.
    pub fn height(&self) -> u32 {
        self.height as u32
    }

    /// Draws frame `n` into `p`.
    ///
    /// # Panics
    /// When a plane is smaller than its stride × rows says.
    pub fn draw(&self, n: u64, mut p: Planes<'_>) {
        let (w, h) = (self.width, self.height);
        let tw = w + SCROLL;
        let off = (n as usize * 2) % SCROLL;
        for y in 0..h {
            let src = (y + off) * tw + off;
            p.y[y * p.y_stride..y * p.y_stride + w].copy_from_slice(&self.luma[src..src + w]);
        }
        let (cw, chh) = (w / 2, h / 2);
        let ctw = tw / 2;
        let coff = off / 2;
        for y in 0..chh {
            let src = (y + coff) * ctw + coff;
            p.u[y * p.u_stride..y * p.u_stride + cw].copy_from_slice(&self.cb[src..src + cw]);
            p.v[y * p.v_stride..y * p.v_stride + cw].copy_from_slice(&self.cr[src..src + cw]);
        }
        let t = n as f32;
        for m in &MOVERS {
            let (bw, bh) = (m.w.min(w), m.h.min(h));
            let cx = (0.5 + 0.5 * (t * m.fx + m.phase).sin()) * (w - bw) as f32;
            let cy = (0.5 + 0.5 * (t * m.fy + m.phase * 0.7).cos()) * (h - bh) as f32;
            fill(&mut p, cx as usize & !1, cy as usize & !1, bw, bh, m.yuv);
        }
        // Frame number, 24 bits, as 16×16 blocks along the top edge.
        for bit in 0..24usize {
            let x = bit * 16;
            if x + 16 > w || h < 16 {
                break;
            }
            let on = (n >> (23 - bit)) & 1 == 1;
            fill(
                &mut p,
                x,
                0,
                16,
                16,
                if on { [235, 128, 128] } else { [16, 128, 128] },
            );
        }
    }
}

/// Fills a rectangle (even x, y, w, h) with one YUV colour.
fn fill(p: &mut Planes<'_>, x: usize, y: usize, w: usize, h: usize, yuv: [u8; 3]) {
    for row in y..y + h {
        p.y[row * p.y_stride + x..row * p.y_stride + x + w].fill(yuv[0]);
    }
    for row in y / 2..(y + h) / 2 {
        let (a, b) = (x / 2, (x + w) / 2);
        p.u[row * p.u_stride + a..row * p.u_stride + b].fill(yuv[1]);
        p.v[row * p.v_stride + a..row * p.v_stride + b].fill(yuv[2]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::RawPicture;

    #[test]
    fn frames_are_deterministic_and_move() {
        let scene = Scene::new(640, 360);
        let mut a = RawPicture::new(640, 360);
        let mut b = RawPicture::new(640, 360);
        scene.draw(7, a.planes());
        Scene::new(640, 360).draw(7, b.planes());
        assert_eq!(a.data, b.data);
        scene.draw(8, b.planes());
        let changed = a.data.iter().zip(&b.data).filter(|(x, y)| x != y).count();
        assert!(changed > a.data.len() / 4, "only {changed} bytes changed");
    }
}
