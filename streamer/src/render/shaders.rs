//! The shader cache (`renderer.memory.shaderCache` MB): the driver's compiled code of each of
//! the GPU renderer's pipelines (wgpu's `PipelineCache` data), kept for the life of the process,
//! least recently used out first. A renderer set up after the first one for the same adapter
//! and settings — the next point of a suite, a restarted stream — builds its pipelines from that
//! code instead of compiling its shaders again.
//!
//! wgpu supports pipeline caches on Vulkan only ([`wgpu::util::pipeline_cache_key`]); elsewhere
//! the pipelines are compiled each time and nothing is cached. How much a driver keeps varies:
//! NVIDIA's and Mesa's hardware drivers keep the machine code, lavapipe keeps only a header.

use lru::LruCache;
use std::sync::{LazyLock, Mutex, PoisonError};

/// The cached code, by pipeline.
pub struct ShaderCache {
    entries: LruCache<String, Vec<u8>>,
    bytes: u64,
}

/// What one renderer's pipelines found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShaderStats {
    /// Pipelines built from cached code.
    pub hits: u64,
    /// Pipelines compiled (and their code cached, where the driver gives it).
    pub misses: u64,
    /// Entries dropped to stay within the bound.
    pub evictions: u64,
}

impl ShaderCache {
    pub fn new() -> Self {
        ShaderCache {
            entries: LruCache::unbounded(),
            bytes: 0,
        }
    }

    /// The code cached for `key`, now the most recently used.
    pub fn get(&mut self, key: &str) -> Option<Vec<u8>> {
        self.entries.get(key).cloned()
    }

    /// Keeps `data` for `key` within `limit` bytes, dropping the least recently used entries
    /// as needed (data larger than the bound is not kept); returns how many were dropped.
    pub fn put(&mut self, key: String, data: Vec<u8>, limit: u64) -> u64 {
        if let Some(old) = self.entries.pop(&key) {
            self.bytes -= old.len() as u64;
        }
        let size = data.len() as u64;
        let mut dropped = 0;
        if size > limit {
            return dropped;
        }
        while self.bytes + size > limit {
            match self.entries.pop_lru() {
                Some((_, old)) => {
                    self.bytes -= old.len() as u64;
                    dropped += 1;
                }
                None => break,
            }
        }
        self.bytes += size;
        self.entries.put(key, data);
        dropped
    }

    /// Bytes held.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl Default for ShaderCache {
    fn default() -> Self {
        Self::new()
    }
}

/// The process's shader cache.
static CACHE: LazyLock<Mutex<ShaderCache>> = LazyLock::new(Mutex::default);

/// Builds a pipeline with `build`, handing it a `wgpu::PipelineCache` seeded with the code kept
/// for `key` (`None`: the adapter has no pipeline cache), and keeps the code the driver has
/// after it within `limit` bytes.
pub fn pipeline<T>(
    device: &wgpu::Device,
    key: Option<String>,
    limit: u64,
    stats: &mut ShaderStats,
    build: impl FnOnce(Option<&wgpu::PipelineCache>) -> T,
) -> T {
    let Some(key) = key else {
        return build(None);
    };
    let lock = || CACHE.lock().unwrap_or_else(PoisonError::into_inner);
    let data = lock().get(&key);
    match data {
        Some(_) => stats.hits += 1,
        None => stats.misses += 1,
    }
    // SAFETY: the data came from `get_data` of a cache on an adapter with the same
    // `pipeline_cache_key` (it is part of `key`), and `fallback` makes wgpu start empty if the
    // driver rejects it anyway.
    let cache = unsafe {
        device.create_pipeline_cache(&wgpu::PipelineCacheDescriptor {
            label: Some("stream-manager shaders"),
            data: data.as_deref(),
            fallback: true,
        })
    };
    let built = build(Some(&cache));
    if let Some(code) = cache.get_data() {
        stats.evictions += lock().put(key, code, limit);
    }
    built
}

/// The cache key of pipeline `name` on `adapter`, or `None` where the adapter (its backend)
/// cannot cache pipelines or the device lacks the feature.
pub fn key(adapter: &wgpu::AdapterInfo, device: &wgpu::Device, name: &str) -> Option<String> {
    if !device.features().contains(wgpu::Features::PIPELINE_CACHE) {
        return None;
    }
    wgpu::util::pipeline_cache_key(adapter).map(|k| format!("{k}/{name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Least recently used out first, within the bound; data larger than the bound is not kept;
    /// replacing an entry counts its bytes once.
    #[test]
    fn the_shader_cache_keeps_the_most_recently_used_within_its_bound() {
        let mut c = ShaderCache::new();
        assert_eq!(c.put("a".into(), vec![1; 40], 100), 0);
        assert_eq!(c.put("b".into(), vec![2; 40], 100), 0);
        assert_eq!(c.get("a"), Some(vec![1; 40]));
        // "b" is now the least recently used.
        assert_eq!(c.put("c".into(), vec![3; 40], 100), 1);
        assert_eq!((c.get("b"), c.bytes()), (None, 80));
        assert_eq!(c.put("a".into(), vec![4; 60], 100), 0);
        assert_eq!((c.get("a"), c.bytes()), (Some(vec![4; 60]), 100));
        assert_eq!(c.put("huge".into(), vec![5; 101], 100), 0);
        assert_eq!((c.get("huge"), c.bytes()), (None, 100));
    }
}
