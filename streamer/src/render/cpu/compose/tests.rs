//! The compositor's tests: blending arithmetic, sprites and scaling, and whole frames against
//! a per-pixel reference.

use super::*;
use crate::core::assets::generate;

/// The straightforward reference: one pixel at a time, in floating point, rounded.
fn reference(d: u8, s: u8, a: u8, opacity: u8) -> u8 {
    let a = ((u32::from(a) * u32::from(opacity) + 127) / 255) as f64 / 255.0;
    (f64::from(s) * a + f64::from(d) * (1.0 - a)).round() as u8
}

#[test]
fn quality_blending_is_exact_and_speed_within_two_steps() {
    let lut_full = alpha_table(255);
    for opacity in [255u8, 200, 77] {
        let lut = alpha_table(opacity);
        for a in 0..=255u8 {
            let src: Vec<u8> = (0..=255).collect();
            let alpha = vec![a; 256];
            for d0 in [0u8, 17, 128, 201, 255] {
                let mut q = vec![d0; 256];
                blend_row(&mut q, &src, &alpha, &lut, OptimizeFor::Quality);
                let mut s = vec![d0; 256];
                blend_row(&mut s, &src, &alpha, &lut, OptimizeFor::Speed);
                for i in 0..256 {
                    let r = reference(d0, src[i], a, opacity);
                    assert_eq!(q[i], r, "quality: d {d0} s {i} a {a} opacity {opacity}");
                    assert!(
                        s[i].abs_diff(r) <= 2,
                        "speed: d {d0} s {i} a {a} opacity {opacity}: {} vs {r}",
                        s[i]
                    );
                }
            }
        }
    }
    assert_eq!(lut_full[255], 255);
}

#[test]
fn opaque_and_transparent_pixels_replace_or_keep() {
    let lut = alpha_table(255);
    for mode in [OptimizeFor::Speed, OptimizeFor::Quality] {
        let mut d = vec![10u8, 10];
        blend_row(&mut d, &[200, 200], &[255, 0], &lut, mode);
        assert_eq!(d, vec![200, 10], "{mode:?}");
    }
}

#[test]
fn sprites_convert_to_bt601() {
    let img = Image {
        width: 2,
        height: 2,
        rgba: [255u8, 255, 255, 255].repeat(4),
    };
    let s = sprite(&img, 2, 2, FilterMode::Linear, TextureQuality::High);
    assert_eq!(s.y, vec![235; 4], "white is Y 235 in limited range");
    assert_eq!((s.u[0], s.v[0], s.a2[0]), (128, 128, 255));
    let black = Image {
        width: 2,
        height: 2,
        rgba: [0u8, 0, 0, 128].repeat(4),
    };
    let s = sprite(&black, 4, 4, FilterMode::Nearest, TextureQuality::High);
    assert_eq!((s.y[0], s.a[15]), (16, 128));
}

#[test]
fn bilinear_scaling_is_smooth_and_nearest_keeps_values() {
    let img = generate(0, 40, 20);
    let near = scale(&img, 80, 40, FilterMode::Nearest, TextureQuality::High);
    assert!(near.chunks(4).all(|p| img.rgba.chunks(4).any(|q| q == p)));
    let bil = scale(&img, 80, 40, FilterMode::Linear, TextureQuality::High);
    assert_eq!(bil.len(), 80 * 40 * 4);
    // A lower texture quality samples a smaller texture: a different picture, same size.
    let low = scale(&img, 80, 40, FilterMode::Linear, TextureQuality::Low);
    assert_eq!(low.len(), bil.len());
    assert_ne!(low, bil);
}

mod frame_tests {
    use super::*;
    use crate::config::{LayoutConfig, ViewportConfig};
    use crate::core::assets::{AssetCache, AssetSource};
    use crate::core::layout::Layout;
    use crate::core::viewport::Viewport;
    use crate::probe::NoProbe;
    use std::time::Duration;

    fn frame(w: usize, h: usize) -> Vec<u8> {
        (0..w * h * 3 / 2).map(|i| (i * 7 % 251) as u8).collect()
    }

    /// Composes `layers` layers over a patterned 320×180 frame with `cfg`; also returns the
    /// per-pixel reference made from the same sprites.
    fn compose_and_reference(
        cfg: &CompositionConfig,
        layers: u32,
        t_ms: u64,
    ) -> (Vec<u8>, Vec<u8>, usize) {
        let (w, h) = (320usize, 180usize);
        let vcfg = ViewportConfig {
            width: w as u32,
            height: h as u32,
            grid_size: 2,
            ..ViewportConfig::default()
        };
        let viewport = Viewport::new(&vcfg);
        let sources: Vec<AssetSource> = (0..3)
            .map(|kind| AssetSource::Generated {
                kind,
                width: 90 + kind * 10,
                height: 50,
            })
            .collect();
        let mut assets = AssetCache::new(sources, 1 << 30, Duration::from_secs(60));
        let lcfg = LayoutConfig {
            layers,
            ..LayoutConfig::default()
        };
        let mut layout = Layout::new(&lcfg, &viewport, 3);
        layout.update(t_ms, 0, &viewport, &NoProbe);
        let mut c = Compositor::new(cfg).unwrap();
        let mut data = frame(w, h);
        let (y, uv) = data.split_at_mut(w * h);
        let (u, v) = uv.split_at_mut(w * h / 4);
        let mut planes = Planes {
            y,
            y_stride: w,
            u,
            u_stride: w / 2,
            v,
            v_stride: w / 2,
        };
        c.compose(
            &mut planes,
            (w as u32, h as u32),
            &layout,
            &mut assets,
            0,
            &NoProbe,
        )
        .unwrap();
        // The reference: every layer in z order, every pixel on its own, in floating point.
        let mut reference = frame(w, h);
        for l in layout.layers() {
            let s = &c.sprites[&(l.asset, l.rect.w, l.rect.h)];
            let (rx, ry) = (l.rect.x as usize, l.rect.y as usize);
            let ea = |a: u8| f64::from((u32::from(a) * u32::from(l.opacity) + 127) / 255) / 255.0;
            let mix =
                |d: u8, s: u8, a: f64| (f64::from(s) * a + f64::from(d) * (1.0 - a)).round() as u8;
            for row in 0..s.h as usize {
                for col in 0..s.w as usize {
                    let i = row * s.w as usize + col;
                    let j = (ry + row) * w + rx + col;
                    reference[j] = mix(reference[j], s.y[i], ea(s.a[i]));
                }
            }
            for row in 0..s.h as usize / 2 {
                for col in 0..s.w as usize / 2 {
                    let i = row * s.w as usize / 2 + col;
                    let j = (ry / 2 + row) * (w / 2) + rx / 2 + col;
                    let a = ea(s.a2[i]);
                    reference[w * h + j] = mix(reference[w * h + j], s.u[i], a);
                    reference[w * h * 5 / 4 + j] = mix(reference[w * h * 5 / 4 + j], s.v[i], a);
                }
            }
        }
        (data, reference, c.grouped_layers())
    }

    fn worst(a: &[u8], b: &[u8]) -> u8 {
        a.iter()
            .zip(b)
            .map(|(x, y)| x.abs_diff(*y))
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn a_composed_frame_matches_the_per_pixel_reference() {
        for threads in [1, 3] {
            for batch in [1, 8] {
                let quality = CompositionConfig {
                    thread_pool: threads,
                    batch_size: batch,
                    optimize_for: OptimizeFor::Quality,
                    ..CompositionConfig::default()
                };
                // Two layers: one static, one moving; no static group to pre-compose.
                let (got, want, grouped) = compose_and_reference(&quality, 2, 1500);
                assert_eq!(grouped, 0);
                assert_eq!(
                    worst(&got, &want),
                    0,
                    "quality, {threads} threads, batch {batch}"
                );
                let speed = CompositionConfig {
                    optimize_for: OptimizeFor::Speed,
                    ..quality
                };
                let (got, want, _) = compose_and_reference(&speed, 2, 1500);
                assert!(
                    worst(&got, &want) <= 2,
                    "speed, {threads} threads, batch {batch}"
                );
            }
        }
    }

    #[test]
    fn the_static_group_cache_matches_layer_by_layer_blending() {
        for strategy in [CacheStrategy::Memory, CacheStrategy::Disk] {
            let cfg = CompositionConfig {
                thread_pool: 2,
                cache_strategy: strategy,
                optimize_for: OptimizeFor::Quality,
                ..CompositionConfig::default()
            };
            // Seven layers: three static ones at the bottom, pre-composed as one.
            let (got, want, grouped) = compose_and_reference(&cfg, 7, 2500);
            assert_eq!(grouped, 3, "{strategy:?}");
            assert!(
                worst(&got, &want) <= 3,
                "{strategy:?}: {}",
                worst(&got, &want)
            );
        }
    }
}
