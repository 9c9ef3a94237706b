//! Assets: layer images loaded from PNG/JPEG files (through the `image` crate) or generated, kept
//! in a cache bounded by `cacheSize` bytes with LRU eviction and `cacheLifetime` expiry.
//!
//! `preloadStrategy = eager` loads every asset before the first frame; `lazy` loads one the
//! first time a layer needs it, marking `asset:load:start/end` with the frame that waited.
//! Entries unused for `cacheLifetime` seconds are dropped by [`AssetCache::expire`], which the
//! core calls on its own once a second; an evicted or expired asset is loaded again on next use.

use crate::probe::{Point, Probe};
use lru::LruCache;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// An RGBA image, straight (not premultiplied) alpha, rows packed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub width: u32,
    pub height: u32,
    pub rgba: Vec<u8>,
}

impl Image {
    /// Bytes the image holds.
    pub fn bytes(&self) -> u64 {
        self.rgba.len() as u64
    }
}

/// Where an asset comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AssetSource {
    /// A PNG or JPEG file.
    File(PathBuf),
    /// A generated badge: `kind` picks the pattern.
    Generated { kind: u32, width: u32, height: u32 },
}

/// An asset that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum AssetError {
    #[error("asset {path}: {message}")]
    File { path: String, message: String },
    #[error("core.assets.dir = {dir}: {message}")]
    Dir { dir: String, message: String },
    #[error("asset {0} does not exist (there are {1})")]
    Missing(usize, usize),
}

impl AssetSource {
    /// Loads (decodes or draws) the image.
    ///
    /// # Errors
    /// The file cannot be read or decoded.
    pub fn load(&self) -> Result<Image, AssetError> {
        match self {
            AssetSource::File(path) => {
                let img = image::open(path).map_err(|e| AssetError::File {
                    path: path.display().to_string(),
                    message: e.to_string(),
                })?;
                let rgba = img.to_rgba8();
                Ok(Image {
                    width: rgba.width(),
                    height: rgba.height(),
                    rgba: rgba.into_raw(),
                })
            }
            AssetSource::Generated {
                kind,
                width,
                height,
            } => Ok(generate(*kind, *width, *height)),
        }
    }
}

/// The PNG and JPEG files of `dir`, sorted by name.
///
/// # Errors
/// The folder cannot be read or holds no PNG/JPEG file.
pub fn files_in(dir: &Path) -> Result<Vec<AssetSource>, AssetError> {
    let fail = |message: String| AssetError::Dir {
        dir: dir.display().to_string(),
        message,
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| fail(e.to_string()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg"))
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(fail("no .png, .jpg or .jpeg file in it".into()));
    }
    Ok(files.into_iter().map(AssetSource::File).collect())
}

/// A generated badge: a rounded panel with a colour gradient, a soft alpha edge and stripes, so
/// blending and scaling have real edges and gradients to get right.
pub fn generate(kind: u32, width: u32, height: u32) -> Image {
    let (w, h) = (width.max(2) as usize, height.max(2) as usize);
    let palette = [
        ([230, 60, 40], [250, 200, 40]),
        ([30, 90, 220], [40, 220, 230]),
        ([40, 170, 70], [230, 240, 90]),
        ([150, 50, 200], [240, 120, 200]),
    ];
    let (c0, c1) = palette[kind as usize % palette.len()];
    let radius = (w.min(h) / 5).max(1) as f32;
    let mut rgba = vec![0u8; w * h * 4];
    for y in 0..h {
        for x in 0..w {
            let t = x as f32 / (w - 1) as f32;
            let stripe = ((x + y + kind as usize * 7) / 12) % 2 == 0;
            let shade = if stripe { 1.0 } else { 0.85 };
            // Distance outside the rounded rectangle's core, for a soft 2-pixel edge.
            let dx = (radius - x as f32)
                .max(x as f32 - (w as f32 - 1.0 - radius))
                .max(0.0);
            let dy = (radius - y as f32)
                .max(y as f32 - (h as f32 - 1.0 - radius))
                .max(0.0);
            let outside = (dx * dx + dy * dy).sqrt() - radius;
            let edge = (1.0 - (outside + 1.0) / 2.0).clamp(0.0, 1.0);
            let alpha = (edge * if kind % 2 == 0 { 235.0 } else { 190.0 }) as u8;
            let i = (y * w + x) * 4;
            for c in 0..3 {
                let v = c0[c] as f32 * (1.0 - t) + c1[c] as f32 * t;
                rgba[i + c] = (v * shade) as u8;
            }
            rgba[i + 3] = alpha;
        }
    }
    Image {
        width: w as u32,
        height: h as u32,
        rgba,
    }
}

/// Cache counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    /// Loads (a miss loads, as does eager preloading).
    pub loads: u64,
    /// Entries dropped to stay under the byte bound.
    pub evictions: u64,
    /// Entries dropped for being unused longer than the lifetime.
    pub expired: u64,
    /// Bytes cached now.
    pub bytes: u64,
    /// Total time spent loading, µs.
    pub load_us: u64,
}

impl CacheStats {
    /// Hits ÷ lookups, 0–1.
    pub fn hit_rate(&self) -> f64 {
        crate::hit_rate(self.hits, self.misses)
    }
}

struct Entry {
    image: Arc<Image>,
    last_used: Instant,
}

/// The asset cache: LRU, bounded in bytes, entries expire after a lifetime unused.
pub struct AssetCache {
    sources: Vec<AssetSource>,
    entries: LruCache<usize, Entry>,
    capacity: u64,
    lifetime: Duration,
    stats: CacheStats,
}

impl AssetCache {
    /// A cache of `capacity` bytes whose entries live `lifetime` unused, over `sources`.
    pub fn new(sources: Vec<AssetSource>, capacity: u64, lifetime: Duration) -> Self {
        AssetCache {
            sources,
            entries: LruCache::unbounded(),
            capacity,
            lifetime,
            stats: CacheStats::default(),
        }
    }

    /// How many assets there are.
    pub fn len(&self) -> usize {
        self.sources.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    /// Asset `id`, from the cache or loaded now (marking `asset:load` for `frame`).
    ///
    /// # Errors
    /// The asset could not be loaded.
    pub fn get<P: Probe>(
        &mut self,
        id: usize,
        frame: u64,
        probe: &P,
    ) -> Result<Arc<Image>, AssetError> {
        let now = Instant::now();
        if let Some(e) = self.entries.get_mut(&id) {
            e.last_used = now;
            self.stats.hits += 1;
            return Ok(Arc::clone(&e.image));
        }
        self.stats.misses += 1;
        self.load(id, frame, probe)
    }

    /// Loads every asset (eager preloading), as far as the byte bound allows.
    ///
    /// # Errors
    /// An asset could not be loaded.
    pub fn preload<P: Probe>(&mut self, probe: &P) -> Result<(), AssetError> {
        for id in 0..self.sources.len() {
            if !self.entries.contains(&id) {
                self.load(id, 0, probe)?;
            }
        }
        Ok(())
    }

    fn load<P: Probe>(
        &mut self,
        id: usize,
        frame: u64,
        probe: &P,
    ) -> Result<Arc<Image>, AssetError> {
        let started = Instant::now();
        probe.mark(Point::AssetLoadStart, frame);
        let source = self
            .sources
            .get(id)
            .ok_or(AssetError::Missing(id, self.sources.len()))?;
        let image = Arc::new(source.load()?);
        probe.mark(Point::AssetLoadEnd, frame);
        self.stats.load_us += started.elapsed().as_micros() as u64;
        self.stats.loads += 1;
        self.stats.bytes += image.bytes();
        if let Some(old) = self.entries.put(
            id,
            Entry {
                image: Arc::clone(&image),
                last_used: Instant::now(),
            },
        ) {
            self.stats.bytes -= old.image.bytes();
        }
        // Stay under the bound, never evicting what was just loaded.
        while self.stats.bytes > self.capacity && self.entries.len() > 1 {
            if let Some((_, e)) = self.entries.pop_lru() {
                self.stats.bytes -= e.image.bytes();
                self.stats.evictions += 1;
            }
        }
        Ok(image)
    }

    /// Drops entries unused for longer than the lifetime; returns how many.
    pub fn expire(&mut self, now: Instant) -> usize {
        let mut n = 0;
        while let Some((_, e)) = self.entries.peek_lru() {
            if now.duration_since(e.last_used) <= self.lifetime {
                break;
            }
            if let Some((_, e)) = self.entries.pop_lru() {
                self.stats.bytes -= e.image.bytes();
                self.stats.expired += 1;
                n += 1;
            }
        }
        n
    }

    /// Drops every entry (memory pressure); returns the bytes released.
    pub fn trim(&mut self) -> u64 {
        let bytes = self.stats.bytes;
        self.entries.clear();
        self.stats.bytes = 0;
        bytes
    }

    /// The counters so far.
    pub fn stats(&self) -> CacheStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::NoProbe;
    use std::sync::Mutex;

    fn badges(n: u32) -> Vec<AssetSource> {
        (0..n)
            .map(|kind| AssetSource::Generated {
                kind,
                width: 100,
                height: 50,
            })
            .collect()
    }

    #[test]
    fn the_cache_stays_under_its_byte_bound_and_evicts_the_least_recently_used() {
        let one = 100 * 50 * 4;
        let mut c = AssetCache::new(badges(4), 2 * one, Duration::from_secs(60));
        c.get(0, 0, &NoProbe).unwrap();
        c.get(1, 0, &NoProbe).unwrap();
        c.get(0, 0, &NoProbe).unwrap(); // 0 is now the most recent
        c.get(2, 0, &NoProbe).unwrap(); // evicts 1
        let s = c.stats();
        assert!(s.bytes <= 2 * one, "{s:?}");
        assert_eq!(s.evictions, 1);
        c.get(0, 0, &NoProbe).unwrap();
        assert_eq!(c.stats().hits, 2, "0 must have survived");
        c.get(1, 0, &NoProbe).unwrap();
        assert_eq!(c.stats().misses, 4, "1 was evicted and loads again");
    }

    #[test]
    fn unused_entries_expire_after_the_lifetime() {
        // Deterministic whatever the machine's load: sleeps only ever last longer, and the
        // expiry instant is computed from instants taken around the lookups.
        let lifetime = Duration::from_secs(1);
        let mut c = AssetCache::new(badges(2), 1 << 20, lifetime);
        c.get(0, 0, &NoProbe).unwrap();
        let after_first = Instant::now();
        std::thread::sleep(Duration::from_millis(50));
        c.get(1, 0, &NoProbe).unwrap();
        let at = after_first + lifetime + Duration::from_millis(1);
        assert_eq!(c.expire(at), 1, "only 0 is past its lifetime");
        assert_eq!(c.stats().expired, 1);
        assert_eq!(c.stats().bytes, 100 * 50 * 4);
    }

    struct Marks(Mutex<Vec<(Point, u64)>>);
    impl Probe for Marks {
        fn mark(&self, point: Point, frame: u64) {
            self.0.lock().unwrap().push((point, frame));
        }
    }

    #[test]
    fn a_lazy_load_marks_the_asset_points_with_its_frame() {
        let marks = Marks(Mutex::new(Vec::new()));
        let mut c = AssetCache::new(badges(1), 1 << 20, Duration::from_secs(60));
        c.get(0, 42, &marks).unwrap();
        c.get(0, 43, &marks).unwrap();
        assert_eq!(
            *marks.0.lock().unwrap(),
            vec![(Point::AssetLoadStart, 42), (Point::AssetLoadEnd, 42)]
        );
    }

    #[test]
    fn png_and_jpeg_files_load() {
        let dir = tempfile::tempdir().unwrap();
        let img = generate(1, 64, 32);
        let buf = image::RgbaImage::from_raw(64, 32, img.rgba.clone()).unwrap();
        buf.save(dir.path().join("a.png")).unwrap();
        image::DynamicImage::ImageRgba8(buf)
            .to_rgb8()
            .save(dir.path().join("b.jpg"))
            .unwrap();
        let files = files_in(dir.path()).unwrap();
        assert_eq!(files.len(), 2);
        let png = files[0].load().unwrap();
        assert_eq!(png, img, "PNG is lossless");
        let jpg = files[1].load().unwrap();
        assert_eq!((jpg.width, jpg.height), (64, 32));
        assert!(files_in(&dir.path().join("nothing")).is_err());
    }
}
