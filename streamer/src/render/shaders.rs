//! The shader cache (`renderer.memory.shaderCache` MB): the driver's compiled code of each of
//! the GPU renderer's pipelines (wgpu's `PipelineCache` data), one file per pipeline in
//! `$STREAM_MANAGER_CACHE_DIR/shaders` (default `$XDG_CACHE_HOME/stream-manager/shaders`, or
//! `~/.cache/stream-manager/shaders`). A renderer set up after another — the next point of a
//! suite (each runs in its own process), the next `stream-manager run` — builds its pipelines
//! from that code instead of compiling its shaders again. Using a file marks it recently used;
//! the least recently used files go first when the folder outgrows the bound. Files are written
//! whole (to a temporary name, then renamed), so an interrupted run leaves none half-written.
//!
//! wgpu supports pipeline caches on Vulkan only ([`wgpu::util::pipeline_cache_key`]); elsewhere
//! the pipelines are compiled each time and nothing is cached. How much a driver keeps varies:
//! NVIDIA's and Mesa's hardware drivers keep the machine code, lavapipe only a header.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// What one renderer's pipelines found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShaderStats {
    /// Pipelines built from cached code.
    pub hits: u64,
    /// Pipelines compiled (and their code cached, where the driver gives it).
    pub misses: u64,
    /// Files removed to keep the folder within the bound.
    pub evictions: u64,
}

/// The cache folder.
#[derive(Debug, Clone)]
pub struct ShaderCache {
    dir: PathBuf,
}

impl ShaderCache {
    /// The cache in `dir` (made when first written to).
    pub fn at(dir: impl Into<PathBuf>) -> Self {
        ShaderCache { dir: dir.into() }
    }

    /// The cache where the environment says (see the module's documentation); `None` without
    /// a home folder.
    pub fn from_env() -> Option<Self> {
        let var = |name| std::env::var_os(name).filter(|v| !v.is_empty());
        let root = var("STREAM_MANAGER_CACHE_DIR")
            .map(PathBuf::from)
            .or_else(|| var("XDG_CACHE_HOME").map(|d| Path::new(&d).join("stream-manager")))
            .or_else(|| var("HOME").map(|d| Path::new(&d).join(".cache/stream-manager")))?;
        Some(Self::at(root.join("shaders")))
    }

    fn file(&self, key: &str) -> PathBuf {
        let name: String = key
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        self.dir.join(format!("{name}.bin"))
    }

    /// The code kept for `key`, marked as just used.
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        let path = self.file(key);
        let data = fs::read(&path).ok()?;
        if let Ok(f) = fs::File::options().append(true).open(&path) {
            let _ = f.set_modified(SystemTime::now());
        }
        Some(data)
    }

    /// Keeps `data` for `key`, then removes the least recently used files until the folder
    /// holds at most `limit` bytes; returns how many it removed. Data larger than the bound is
    /// not kept.
    ///
    /// # Errors
    /// The folder or the file could not be written.
    pub fn put(&self, key: &str, data: &[u8], limit: u64) -> std::io::Result<u64> {
        if data.len() as u64 > limit {
            return Ok(0);
        }
        fs::create_dir_all(&self.dir)?;
        let path = self.file(key);
        let partial = path.with_extension(format!("{}.partial", std::process::id()));
        fs::write(&partial, data)?;
        fs::rename(&partial, &path)?;
        let mut files: Vec<(SystemTime, u64, PathBuf)> = fs::read_dir(&self.dir)?
            .filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == "bin"))
            .filter_map(|e| {
                let m = e.metadata().ok()?;
                Some((m.modified().ok()?, m.len(), e.path()))
            })
            .collect();
        let mut total: u64 = files.iter().map(|f| f.1).sum();
        files.sort();
        let mut removed = 0;
        for (_, size, file) in files {
            if total <= limit {
                break;
            }
            if file != path && fs::remove_file(&file).is_ok() {
                total -= size;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// Builds a pipeline with `build`, handing it a `wgpu::PipelineCache` seeded with the code kept
/// for `key` in `cache` (`None`: the adapter has no pipeline cache, or there is no folder), and
/// keeps the code the driver has after it within `limit` bytes.
pub fn pipeline<T>(
    device: &wgpu::Device,
    cache: Option<&ShaderCache>,
    key: Option<String>,
    limit: u64,
    stats: &mut ShaderStats,
    build: impl FnOnce(Option<&wgpu::PipelineCache>) -> T,
) -> T {
    let (Some(files), Some(key)) = (cache, key) else {
        return build(None);
    };
    let data = files.get(&key);
    match data {
        Some(_) => stats.hits += 1,
        None => stats.misses += 1,
    }
    // SAFETY: the data came from `get_data` of a cache on an adapter with the same
    // `pipeline_cache_key` (it is part of `key`), and `fallback` makes wgpu start empty if it
    // does not validate.
    let pipelines = unsafe {
        device.create_pipeline_cache(&wgpu::PipelineCacheDescriptor {
            label: Some("stream-manager shaders"),
            data: data.as_deref(),
            fallback: true,
        })
    };
    let built = build(Some(&pipelines));
    if let Some(code) = pipelines.get_data()
        && data.as_deref() != Some(&code[..])
    {
        match files.put(&key, &code, limit) {
            Ok(n) => stats.evictions += n,
            // The cache only saves time: a renderer still works without it.
            Err(e) => eprintln!(
                "stream-manager: shader cache {}: {e} (pipelines are compiled each time)",
                files.dir.display()
            ),
        }
    }
    built
}

/// The cache key of pipeline `name` on `adapter`, or `None` where the adapter (its backend)
/// cannot cache pipelines or the device lacks the feature.
pub fn key(adapter: &wgpu::AdapterInfo, device: &wgpu::Device, name: &str) -> Option<String> {
    if !device.features().contains(wgpu::Features::PIPELINE_CACHE) {
        return None;
    }
    wgpu::util::pipeline_cache_key(adapter).map(|k| format!("{k}_{name}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Least recently used out first, within the bound; data larger than the bound is not kept;
    /// replacing an entry counts its bytes once; nothing half-written is left.
    #[test]
    fn the_shader_cache_keeps_the_most_recently_used_within_its_bound() {
        let dir = tempfile::tempdir().expect("temp dir");
        let c = ShaderCache::at(dir.path().join("shaders"));
        let tick = || std::thread::sleep(Duration::from_millis(20));
        assert_eq!(c.put("a/1", &[1; 40], 100).expect("put"), 0);
        tick();
        assert_eq!(c.put("b/1", &[2; 40], 100).expect("put"), 0);
        tick();
        assert_eq!(c.get("a/1"), Some(vec![1; 40]));
        tick();
        // "b/1" is now the least recently used.
        assert_eq!(c.put("c/1", &[3; 40], 100).expect("put"), 1);
        assert_eq!(c.get("b/1"), None);
        tick();
        assert_eq!(c.put("a/1", &[4; 61], 100).expect("put"), 1);
        assert_eq!((c.get("a/1"), c.get("c/1")), (Some(vec![4; 61]), None));
        assert_eq!(c.put("huge", &[5; 101], 100).expect("put"), 0);
        assert_eq!(c.get("huge"), None);
        let names: Vec<_> = fs::read_dir(dir.path().join("shaders"))
            .expect("dir")
            .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
            .collect();
        assert_eq!(names, ["a-1.bin"]);
    }
}
