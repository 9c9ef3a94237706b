//! Texture sampling on the CPU with exactly the arithmetic of the GPU's layer shader
//! (`layer.wgsl`): nearest, bilinear and bicubic (Catmull-Rom) with clamped edges and pixel
//! centres aligned, so the CPU compositor and the GPU renderer scale a layer alike and their
//! outputs can be compared. `textureQuality` scales a texture's resolution before it is sampled.

use crate::config::{FilterMode, TextureQuality};

/// A texture's size at `quality`: full, half or quarter resolution (at least 1×1).
pub fn texture_size(width: u32, height: u32, quality: TextureQuality) -> (u32, u32) {
    let shift = match quality {
        TextureQuality::High => 0,
        TextureQuality::Medium => 1,
        TextureQuality::Low => 2,
    };
    ((width >> shift).max(1), (height >> shift).max(1))
}

/// Catmull-Rom weights of the four taps around a sample at fraction `t`.
pub fn cubic_weights(t: f32) -> [f32; 4] {
    let (t2, t3) = (t * t, t * t * t);
    [
        (-t3 + 2.0 * t2 - t) * 0.5,
        (3.0 * t3 - 5.0 * t2 + 2.0) * 0.5,
        (-3.0 * t3 + 4.0 * t2 + t) * 0.5,
        (t3 - t2) * 0.5,
    ]
}

/// Where destination pixel `x` of `dst` samples a source of `src` pixels (centres aligned).
fn source_position(x: usize, src: usize, dst: usize) -> f32 {
    (x as f32 + 0.5) * src as f32 / dst as f32 - 0.5
}

/// Scales straight-alpha RGBA `src` (`sw × sh`) to `w × h` with `filter`.
pub fn resample(src: &[u8], sw: u32, sh: u32, w: u32, h: u32, filter: FilterMode) -> Vec<u8> {
    let (sw, sh, w, h) = (sw as usize, sh as usize, w as usize, h as usize);
    if (sw, sh) == (w, h) {
        return src[..w * h * 4].to_vec();
    }
    let texel = |x: isize, y: isize, c: usize| -> f32 {
        let x = x.clamp(0, sw as isize - 1) as usize;
        let y = y.clamp(0, sh as isize - 1) as usize;
        f32::from(src[(y * sw + x) * 4 + c]) / 255.0
    };
    let mut out = vec![0u8; w * h * 4];
    for y in 0..h {
        for x in 0..w {
            let o = (y * w + x) * 4;
            match filter {
                FilterMode::Nearest => {
                    // Integer arithmetic, as the shader does: no float ties.
                    let sx = ((2 * x + 1) * sw / (2 * w)).min(sw - 1);
                    let sy = ((2 * y + 1) * sh / (2 * h)).min(sh - 1);
                    let i = (sy * sw + sx) * 4;
                    out[o..o + 4].copy_from_slice(&src[i..i + 4]);
                }
                FilterMode::Linear => {
                    let (fx, fy) = (source_position(x, sw, w), source_position(y, sh, h));
                    let (x0, y0) = (fx.floor(), fy.floor());
                    let (tx, ty) = (fx - x0, fy - y0);
                    let (x0, y0) = (x0 as isize, y0 as isize);
                    for c in 0..4 {
                        let top = texel(x0, y0, c) * (1.0 - tx) + texel(x0 + 1, y0, c) * tx;
                        let bottom =
                            texel(x0, y0 + 1, c) * (1.0 - tx) + texel(x0 + 1, y0 + 1, c) * tx;
                        let v = top * (1.0 - ty) + bottom * ty;
                        out[o + c] = (v * 255.0).round() as u8;
                    }
                }
                FilterMode::Cubic => {
                    let (fx, fy) = (source_position(x, sw, w), source_position(y, sh, h));
                    let (x0, y0) = (fx.floor(), fy.floor());
                    let (wx, wy) = (cubic_weights(fx - x0), cubic_weights(fy - y0));
                    let (x0, y0) = (x0 as isize, y0 as isize);
                    for c in 0..4 {
                        let mut v = 0.0;
                        for (j, wy) in wy.iter().enumerate() {
                            let mut row = 0.0;
                            for (i, wx) in wx.iter().enumerate() {
                                row += wx * texel(x0 - 1 + i as isize, y0 - 1 + j as isize, c);
                            }
                            v += wy * row;
                        }
                        out[o + c] = (v.clamp(0.0, 1.0) * 255.0).round() as u8;
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(w: u32, h: u32) -> Vec<u8> {
        (0..w * h)
            .flat_map(|i| {
                let (x, y) = (i % w, i / w);
                [
                    (x * 255 / (w - 1)) as u8,
                    (y * 255 / (h - 1)) as u8,
                    77,
                    255,
                ]
            })
            .collect()
    }

    #[test]
    fn same_size_is_identity_for_every_filter() {
        let src = ramp(7, 5);
        for f in [FilterMode::Nearest, FilterMode::Linear, FilterMode::Cubic] {
            assert_eq!(resample(&src, 7, 5, 7, 5, f), src, "{f:?}");
        }
    }

    #[test]
    fn cubic_weights_sum_to_one_and_interpolate() {
        for t in [0.0f32, 0.25, 0.5, 0.9] {
            let s: f32 = cubic_weights(t).iter().sum();
            assert!((s - 1.0).abs() < 1e-6, "{t}: {s}");
        }
        assert_eq!(cubic_weights(0.0), [0.0, 1.0, 0.0, 0.0]);
    }

    #[test]
    fn filters_agree_on_a_smooth_ramp_and_differ_on_an_edge() {
        let src = ramp(16, 16);
        let n = resample(&src, 16, 16, 40, 40, FilterMode::Nearest);
        let l = resample(&src, 16, 16, 40, 40, FilterMode::Linear);
        let c = resample(&src, 16, 16, 40, 40, FilterMode::Cubic);
        // On a linear ramp, bilinear and bicubic agree closely inside the image.
        let i = (20 * 40 + 20) * 4;
        assert!(l[i].abs_diff(c[i]) <= 1, "{} vs {}", l[i], c[i]);
        // Nearest repeats source values only.
        assert!(n.chunks(4).all(|p| src.chunks(4).any(|s| s == p)));
        // A hard edge: bicubic's overshoot is clamped into range, and it differs from bilinear
        // next to the edge.
        let mut edge = vec![0u8; 8 * 4 * 4];
        for p in edge.chunks_mut(4).skip(4 * 4) {
            p.copy_from_slice(&[255, 255, 255, 255]);
        }
        let l = resample(&edge, 4, 8, 4, 20, FilterMode::Linear);
        let c = resample(&edge, 4, 8, 4, 20, FilterMode::Cubic);
        assert_ne!(l, c);
    }

    #[test]
    fn texture_quality_halves_and_quarters() {
        assert_eq!(texture_size(480, 270, TextureQuality::High), (480, 270));
        assert_eq!(texture_size(480, 270, TextureQuality::Medium), (240, 135));
        assert_eq!(texture_size(480, 270, TextureQuality::Low), (120, 67));
        assert_eq!(texture_size(2, 2, TextureQuality::Low), (1, 1));
    }
}
