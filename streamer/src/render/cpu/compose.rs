//! The compositor: alpha-blends the layout's layers over the frame, in YUV 4:2:0.
//!
//! Each (asset, size) is turned once into a *sprite* — the image scaled to the layer's size
//! (at `renderer.quality.textureQuality`, with `filterMode`: the GPU shader's arithmetic, see
//! [`crate::render::filter`]) and converted to BT.601 YUV with
//! its alpha at luma and at chroma resolution — so a frame costs only the blending itself, done
//! in place on the encoder's planes with no colour conversion. The frame is split into
//! `threadPool` horizontal bands blended in parallel; layers go `batchSize` per pass, so a band
//! stays in cache while a whole batch is blended into it. `speed` blends with an 8-bit shift
//! (within 2/255 of exact), `quality` with exact rounding.
//!
//! `cacheStrategy`: the static layers at the bottom of the z-order (a logo over a lower third)
//! are pre-composed once into a single sprite, kept in memory or in a file of the run's temp
//! folder (read back every frame), and rebuilt only when one of them changes.

use crate::config::{CacheStrategy, CompositionConfig, FilterMode, OptimizeFor, TextureQuality};
use crate::core::ComposeStats;
use crate::core::assets::{AssetCache, AssetError, Image};
use crate::core::layout::{Layout, Motion};
use crate::core::viewport::Rect;
use crate::frame::Planes;
use crate::probe::Probe;
use crate::render::filter::{resample, texture_size};
use rayon::prelude::*;
use std::collections::HashMap;

/// A layer image ready to blend: YUV 4:2:0 with alpha at both resolutions.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Sprite {
    pub w: u32,
    pub h: u32,
    pub y: Vec<u8>,
    pub a: Vec<u8>,
    pub u: Vec<u8>,
    pub v: Vec<u8>,
    /// Alpha per chroma sample (the mean of its 2×2 luma alphas).
    pub a2: Vec<u8>,
}

impl Sprite {
    fn bytes(&self) -> u64 {
        (self.y.len() + self.a.len() + self.u.len() + self.v.len() + self.a2.len()) as u64
    }
}

/// BT.601 limited range, as x264 and the synthetic scene use.
fn yuv(r: i32, g: i32, b: i32) -> (u8, u8, u8) {
    let y = ((66 * r + 129 * g + 25 * b + 128) >> 8) + 16;
    let u = ((-38 * r - 74 * g + 112 * b + 128) >> 8) + 128;
    let v = ((112 * r - 94 * g - 18 * b + 128) >> 8) + 128;
    (y as u8, u.clamp(0, 255) as u8, v.clamp(0, 255) as u8)
}

/// Scales `img` to `w × h` RGBA with `filter`, from its texture at `quality` (itself scaled
/// from the image with `filter`), as the GPU renderer samples it.
pub fn scale(img: &Image, w: u32, h: u32, filter: FilterMode, quality: TextureQuality) -> Vec<u8> {
    let (tw, th) = texture_size(img.width, img.height, quality);
    if (tw, th) == (img.width, img.height) {
        return resample(&img.rgba, tw, th, w, h, filter);
    }
    let texture = resample(&img.rgba, img.width, img.height, tw, th, filter);
    resample(&texture, tw, th, w, h, filter)
}

/// The sprite of `img` at `w × h` (both even).
pub fn sprite(img: &Image, w: u32, h: u32, filter: FilterMode, quality: TextureQuality) -> Sprite {
    let rgba = scale(img, w, h, filter, quality);
    let (w, h) = (w as usize, h as usize);
    let mut s = Sprite {
        w: w as u32,
        h: h as u32,
        y: vec![0; w * h],
        a: vec![0; w * h],
        u: vec![0; w * h / 4],
        v: vec![0; w * h / 4],
        a2: vec![0; w * h / 4],
    };
    for i in 0..w * h {
        let p = &rgba[i * 4..i * 4 + 4];
        s.y[i] = yuv(p[0].into(), p[1].into(), p[2].into()).0;
        s.a[i] = p[3];
    }
    for cy in 0..h / 2 {
        for cx in 0..w / 2 {
            // The colour is the alpha-weighted mean of the four pixels: blending it with their
            // mean alpha gives the mean of the four blended pixels, as the GPU computes chroma.
            let (mut r, mut g, mut b, mut a) = (0i32, 0i32, 0i32, 0i32);
            let (mut rw, mut gw, mut bw) = (0i32, 0i32, 0i32);
            for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                let i = ((cy * 2 + dy) * w + cx * 2 + dx) * 4;
                let [pr, pg, pb, pa] = [0, 1, 2, 3].map(|c| i32::from(rgba[i + c]));
                (r, g, b, a) = (r + pr, g + pg, b + pb, a + pa);
                (rw, gw, bw) = (rw + pr * pa, gw + pg * pa, bw + pb * pa);
            }
            let (_, u, v) = if a > 0 {
                yuv((rw + a / 2) / a, (gw + a / 2) / a, (bw + a / 2) / a)
            } else {
                yuv((r + 2) / 4, (g + 2) / 4, (b + 2) / 4)
            };
            let a = a as u32;
            let j = cy * (w / 2) + cx;
            s.u[j] = u;
            s.v[j] = v;
            s.a2[j] = ((a + 2) / 4) as u8;
        }
    }
    s
}

/// A band's index and its Y, U and V rows, as rayon's zipped chunks hand them out.
type Band<'a> = (usize, ((&'a mut [u8], &'a mut [u8]), &'a mut [u8]));

/// One blended item this frame.
#[derive(Debug, Clone, Copy)]
struct Placed {
    /// `None`: the pre-composed static group.
    key: Option<(usize, u32, u32)>,
    rect: Rect,
    opacity: u8,
}

/// The pre-composed static layers.
struct Group {
    /// What it was built from: (asset, rect, opacity) of each static layer.
    from: Vec<(usize, Rect, u8)>,
    rect: Rect,
    sprite: Sprite,
    layers: usize,
    /// Disk strategy: the file holding the sprite's planes, in the run's temp folder.
    file: Option<std::fs::File>,
}

/// The compositor.
pub struct Compositor {
    threads: usize,
    batch: usize,
    mode: OptimizeFor,
    filter: FilterMode,
    quality: TextureQuality,
    strategy: CacheStrategy,
    pool: Option<rayon::ThreadPool>,
    sprites: HashMap<(usize, u32, u32), Sprite>,
    placed: Vec<Placed>,
    group: Option<Group>,
    group_scratch: Vec<(usize, Rect, u8)>,
    /// The disk strategy's folder, removed with the compositor.
    dir: Option<tempfile::TempDir>,
    stats: ComposeStats,
}

/// Why compositing failed.
#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    #[error(transparent)]
    Asset(#[from] AssetError),
    #[error("composition thread pool: {0}")]
    Pool(String),
    #[error("composition disk cache: {0}")]
    Disk(std::io::Error),
}

impl Compositor {
    /// A compositor for `cfg`.
    ///
    /// # Errors
    /// The thread pool or the disk cache's folder could not be created.
    pub fn new(cfg: &CompositionConfig) -> Result<Self, ComposeError> {
        let threads = cfg.thread_pool.max(1) as usize;
        let pool = if threads > 1 {
            Some(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .thread_name(|i| format!("compose-{i}"))
                    .build()
                    .map_err(|e| ComposeError::Pool(e.to_string()))?,
            )
        } else {
            None
        };
        let dir = match cfg.cache_strategy {
            CacheStrategy::Disk => Some(
                tempfile::Builder::new()
                    .prefix("stream-manager-compose-")
                    .tempdir()
                    .map_err(ComposeError::Disk)?,
            ),
            CacheStrategy::Memory => None,
        };
        Ok(Compositor {
            threads,
            batch: cfg.batch_size.max(1) as usize,
            mode: cfg.optimize_for,
            filter: match cfg.optimize_for {
                OptimizeFor::Speed => FilterMode::Nearest,
                OptimizeFor::Quality => FilterMode::Linear,
            },
            quality: TextureQuality::High,
            strategy: cfg.cache_strategy,
            pool,
            sprites: HashMap::new(),
            placed: Vec::new(),
            group: None,
            group_scratch: Vec::new(),
            dir,
            stats: ComposeStats::default(),
        })
    }

    /// Scales layers with `filter` from textures at `quality` (by default: nearest for
    /// `optimizeFor = speed`, bilinear for `quality`, at full resolution).
    pub fn with_sampling(mut self, filter: FilterMode, quality: TextureQuality) -> Self {
        self.filter = filter;
        self.quality = quality;
        self
    }

    /// The counters so far.
    pub fn stats(&self) -> ComposeStats {
        self.stats
    }

    /// Drops every cached sprite and the static group (memory pressure).
    pub fn trim(&mut self) {
        self.sprites.clear();
        self.group = None;
        self.stats.sprite_bytes = 0;
    }

    /// Blends `layout`'s layers onto `planes` (`width × height`) for `frame`.
    ///
    /// # Errors
    /// A lazily loaded asset could not be loaded, or the disk cache failed.
    pub fn compose<P: Probe>(
        &mut self,
        planes: &mut Planes<'_>,
        (width, height): (u32, u32),
        layout: &Layout,
        assets: &mut AssetCache,
        frame: u64,
        probe: &P,
    ) -> Result<(), ComposeError> {
        let layers = layout.layers();
        // Sprites for every layer at its size (asset lookups count cache hits).
        for l in layers {
            let key = (l.asset, l.rect.w, l.rect.h);
            let image = assets.get(l.asset, frame, probe)?;
            if !self.sprites.contains_key(&key) {
                let s = sprite(&image, l.rect.w, l.rect.h, self.filter, self.quality);
                self.stats.sprite_bytes += s.bytes();
                self.stats.sprites_built += 1;
                self.sprites.insert(key, s);
            }
        }
        // The static layers at the bottom, pre-composed.
        self.group_scratch.clear();
        self.group_scratch.extend(
            layers
                .iter()
                .take_while(|l| l.motion == Motion::Static)
                .map(|l| (l.asset, l.rect, l.opacity)),
        );
        let grouped = if self.group_scratch.len() >= 2 {
            self.ensure_group()?;
            self.group_scratch.len()
        } else {
            self.group = None;
            0
        };
        self.placed.clear();
        if let Some(g) = &self.group {
            self.placed.push(Placed {
                key: None,
                rect: g.rect,
                opacity: 255,
            });
        }
        self.placed.extend(layers[grouped..].iter().map(|l| Placed {
            key: Some((l.asset, l.rect.w, l.rect.h)),
            rect: l.rect,
            opacity: l.opacity,
        }));
        if let Some(g) = &mut self.group
            && let Some(f) = &g.file
        {
            read_sprite(f, &mut g.sprite).map_err(ComposeError::Disk)?;
        }
        let (w, h) = (width as usize, height as usize);
        let band = (h.div_ceil(self.threads) + 1) & !1;
        let sprites = &self.sprites;
        let group = self.group.as_ref().map(|g| &g.sprite);
        let mode = self.mode;
        for batch in self.placed.chunks(self.batch) {
            let (ys, us, vs) = (planes.y_stride, planes.u_stride, planes.v_stride);
            let y = &mut planes.y[..ys * h];
            let u = &mut planes.u[..us * h / 2];
            let v = &mut planes.v[..vs * h / 2];
            let job = |(i, ((y, u), v)): Band<'_>| {
                let mut band_planes = Planes {
                    y,
                    y_stride: ys,
                    u,
                    u_stride: us,
                    v,
                    v_stride: vs,
                };
                blend_band(&mut band_planes, i * band, w, batch, sprites, group, mode);
            };
            match &self.pool {
                Some(pool) => pool.install(|| {
                    y.par_chunks_mut(band * ys)
                        .zip(u.par_chunks_mut(band / 2 * us))
                        .zip(v.par_chunks_mut(band / 2 * vs))
                        .enumerate()
                        .for_each(job)
                }),
                None => job((0, ((y, u), v))),
            }
            self.stats.passes += 1;
        }
        self.stats.frames += 1;
        self.stats.items += self.placed.len() as u64;
        self.stats.layers += layers.len() as u64;
        Ok(())
    }

    /// Builds the static group if its layers changed since it was built.
    fn ensure_group(&mut self) -> Result<(), ComposeError> {
        if self
            .group
            .as_ref()
            .is_some_and(|g| g.from == self.group_scratch)
        {
            return Ok(());
        }
        let from = self.group_scratch.clone();
        let x0 = from.iter().map(|(_, r, _)| r.x).min().unwrap_or(0);
        let y0 = from.iter().map(|(_, r, _)| r.y).min().unwrap_or(0);
        let x1 = from
            .iter()
            .map(|(_, r, _)| r.x + r.w as i32)
            .max()
            .unwrap_or(0);
        let y1 = from
            .iter()
            .map(|(_, r, _)| r.y + r.h as i32)
            .max()
            .unwrap_or(0);
        let rect = Rect {
            x: x0,
            y: y0,
            w: (x1 - x0) as u32,
            h: (y1 - y0) as u32,
        };
        let layers: Vec<(&Sprite, Rect, u8)> = from
            .iter()
            .map(|(asset, r, o)| (&self.sprites[&(*asset, r.w, r.h)], *r, *o))
            .collect();
        let sprite = precompose(rect, &layers);
        self.stats.group_builds += 1;
        self.stats.sprite_bytes += sprite.bytes();
        let file = match (&self.dir, self.strategy) {
            (Some(dir), CacheStrategy::Disk) => Some(
                write_sprite(&dir.path().join("static-group.yuva"), &sprite)
                    .map_err(ComposeError::Disk)?,
            ),
            _ => None,
        };
        self.group = Some(Group {
            layers: from.len(),
            from,
            rect,
            sprite,
            file,
        });
        Ok(())
    }

    /// Layers the static group stands for (0 when there is none).
    pub fn grouped_layers(&self) -> usize {
        self.group.as_ref().map_or(0, |g| g.layers)
    }
}

/// Composes straight-alpha sprites "over" each other into one sprite covering `rect`.
fn precompose(rect: Rect, layers: &[(&Sprite, Rect, u8)]) -> Sprite {
    let (w, h) = (rect.w as usize, rect.h as usize);
    let mut s = Sprite {
        w: rect.w,
        h: rect.h,
        y: vec![0; w * h],
        a: vec![0; w * h],
        u: vec![128; w * h / 4],
        v: vec![128; w * h / 4],
        a2: vec![0; w * h / 4],
    };
    let over = |c_d: &mut u8, a_d: &mut u8, c_s: u8, a_s: f32| {
        let ad = f32::from(*a_d) / 255.0;
        let out = a_s + ad * (1.0 - a_s);
        if out > 0.0 {
            let c = (f32::from(c_s) * a_s + f32::from(*c_d) * ad * (1.0 - a_s)) / out;
            *c_d = c.round() as u8;
        }
        *a_d = (out * 255.0).round() as u8;
    };
    for (sp, r, opacity) in layers {
        let (ox, oy) = ((r.x - rect.x) as usize, (r.y - rect.y) as usize);
        let op = f32::from(*opacity) / 255.0;
        for row in 0..sp.h as usize {
            for col in 0..sp.w as usize {
                let i = row * sp.w as usize + col;
                let j = (row + oy) * w + col + ox;
                let a = f32::from(sp.a[i]) / 255.0 * op;
                over(&mut s.y[j], &mut s.a[j], sp.y[i], a);
            }
        }
        let (cw, cox, coy) = (sp.w as usize / 2, ox / 2, oy / 2);
        for row in 0..sp.h as usize / 2 {
            for col in 0..cw {
                let i = row * cw + col;
                let j = (row + coy) * (w / 2) + col + cox;
                let a = f32::from(sp.a2[i]) / 255.0 * op;
                let mut a_u = s.a2[j];
                over(&mut s.u[j], &mut a_u, sp.u[i], a);
                let mut a_v = s.a2[j];
                over(&mut s.v[j], &mut a_v, sp.v[i], a);
                s.a2[j] = a_u;
            }
        }
    }
    s
}

fn write_sprite(path: &std::path::Path, s: &Sprite) -> std::io::Result<std::fs::File> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(path)?;
    for plane in [&s.y, &s.a, &s.u, &s.v, &s.a2] {
        f.write_all(plane)?;
    }
    f.flush()?;
    Ok(f)
}

/// Reads the sprite's planes back from its file, in place (no allocation).
fn read_sprite(f: &std::fs::File, s: &mut Sprite) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let mut at = 0u64;
    for plane in [&mut s.y, &mut s.a, &mut s.u, &mut s.v, &mut s.a2] {
        f.read_exact_at(plane, at)?;
        at += plane.len() as u64;
    }
    Ok(())
}

/// Alpha × opacity, rounded, for every alpha value.
fn alpha_table(opacity: u8) -> [u8; 256] {
    std::array::from_fn(|a| ((a as u32 * u32::from(opacity) + 127) / 255) as u8)
}

/// Blends one row: `dst = src·a + dst·(1 − a)`.
#[inline]
fn blend_row(dst: &mut [u8], src: &[u8], alpha: &[u8], lut: &[u8; 256], mode: OptimizeFor) {
    match mode {
        OptimizeFor::Quality => {
            for ((d, s), a) in dst.iter_mut().zip(src).zip(alpha) {
                let a = u32::from(lut[*a as usize]);
                *d = ((u32::from(*s) * a + u32::from(*d) * (255 - a) + 127) / 255) as u8;
            }
        }
        OptimizeFor::Speed => {
            for ((d, s), a) in dst.iter_mut().zip(src).zip(alpha) {
                let a = u32::from(lut[*a as usize]);
                let a = a + (a >> 7);
                *d = ((u32::from(*s) * a + u32::from(*d) * (256 - a)) >> 8) as u8;
            }
        }
    }
}

/// Blends `items` into the band whose first luma row is `y0` (`planes` hold just the band).
fn blend_band(
    planes: &mut Planes<'_>,
    y0: usize,
    width: usize,
    items: &[Placed],
    sprites: &HashMap<(usize, u32, u32), Sprite>,
    group: Option<&Sprite>,
    mode: OptimizeFor,
) {
    let rows = planes.y.len() / planes.y_stride;
    for p in items {
        let s = match p.key {
            Some(k) => match sprites.get(&k) {
                Some(s) => s,
                None => continue,
            },
            None => match group {
                Some(g) => g,
                None => continue,
            },
        };
        let lut = alpha_table(p.opacity);
        let (rx, ry) = (p.rect.x.max(0) as usize, p.rect.y.max(0) as usize);
        let sw = (s.w as usize).min(width.saturating_sub(rx));
        // Luma rows of the sprite inside this band.
        let from = ry.max(y0);
        let to = (ry + s.h as usize).min(y0 + rows);
        for row in from..to {
            let src = (row - ry) * s.w as usize;
            let dst = (row - y0) * planes.y_stride + rx;
            blend_row(
                &mut planes.y[dst..dst + sw],
                &s.y[src..src + sw],
                &s.a[src..src + sw],
                &lut,
                mode,
            );
        }
        // Chroma rows.
        let (cw, cx, cy0) = (s.w as usize / 2, rx / 2, y0 / 2);
        let csw = sw / 2;
        let crows = planes.u.len() / planes.u_stride;
        let from = (ry / 2).max(cy0);
        let to = ((ry + s.h as usize) / 2).min(cy0 + crows);
        for row in from..to {
            let src = (row - ry / 2) * cw;
            let du = (row - cy0) * planes.u_stride + cx;
            let dv = (row - cy0) * planes.v_stride + cx;
            let a = &s.a2[src..src + csw];
            blend_row(
                &mut planes.u[du..du + csw],
                &s.u[src..src + csw],
                a,
                &lut,
                mode,
            );
            blend_row(
                &mut planes.v[dv..dv + csw],
                &s.v[src..src + csw],
                a,
                &lut,
                mode,
            );
        }
    }
}

#[cfg(test)]
mod tests;
