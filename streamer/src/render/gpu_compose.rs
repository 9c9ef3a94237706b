//! The GPU renderer (wgpu, headless). Per frame: the layers are drawn as instanced quads —
//! `batchSize` layers per draw call, sampled from the texture cache with `filterMode` — over a
//! transparent half-float target (into a 4× multisampled one resolved at the end of the pass
//! when `antialiasing` is on), which leaves their premultiplied colour and coverage; a compute
//! pass lays that over the background straight in YUV (see yuv.wgsl: the result is the
//! conversion of the blended RGB frame, and uncovered pixels come out exactly as they went in).
//! So only the 64×16 tiles that some layer covers travel: their background is uploaded, composed
//! in place and read back straight into the encoder's planes, YUV 4:2:0 four samples per word,
//! rows of a run of tiles packed together (no 256-byte row padding to undo); the rest of the
//! frame already is the background and never leaves the CPU. No colour conversion on the CPU,
//! and only the layers' pixels are rasterised.
//!
//! `maxConcurrent` frame sets (readback and instance buffers) let that many frames be in flight:
//! [`GpuRenderer::submit`] records and submits a frame and returns at once,
//! [`GpuRenderer::finish`] waits for its readback.
//!
//! Caches, each least recently used first out (see [`super::arena`]): textures live in one
//! storage buffer of `textureCache` MB at most, keyed by asset; each draw call's instance data
//! lives in one of `geometryCache` MB at most, keyed by its bytes, so a batch of layers that has
//! not moved uploads nothing (and a batch not drawn for 120 frames leaves it); the pipelines are built from the driver's compiled code kept in
//! the shader cache's folder (`shaderCache` MB, see [`super::shaders`]).

use super::arena::Arena;
use super::gpu::{self, Api, NoAdapter};
use super::shaders::{self, ShaderStats};
use crate::config::FilterMode;
use crate::source::Planes;
use std::sync::{Arc, Mutex, mpsc};
use std::time::Instant;

/// The layers are composed in half floats: no 8-bit rounding between the blends and the
/// conversion to YUV.
const TARGET: wgpu::TextureFormat = wgpu::TextureFormat::Rgba16Float;
/// Bytes of one layer's instance data (`Inst` in layer.wgsl).
const INST_BYTES: u64 = 32;
/// The texture and geometry caches start this large (or at their limits) and double as needed.
const TEXTURE_START: u64 = 4 << 20;
const GEOMETRY_START: u64 = 64 << 10;
/// Instance data not drawn for this many frames leaves the geometry cache: a moving layer's
/// batches never come back, and re-uploading a batch costs a few hundred bytes.
const GEOMETRY_IDLE_FRAMES: u64 = 120;
/// The tiles that travel, in luma samples (yuv.wgsl's `LUMA_WORDS` and `CHROMA_WORDS` follow).
const TILE_W: u32 = 64;
const TILE_H: u32 = 16;
/// Bytes of one tile's entry (`Tile` in yuv.wgsl), and of the tile list's header.
const TILE_ENTRY: usize = 32;
const TILES_HEADER: usize = 16;

/// What the renderer is set up with.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub api: Api,
    pub width: u32,
    pub height: u32,
    pub filter: FilterMode,
    /// MSAA 4×.
    pub antialiasing: bool,
    /// Layers per draw call.
    pub batch_size: u32,
    /// Frames in flight at once.
    pub max_concurrent: u32,
    /// Texture cache limit, bytes.
    pub texture_cache: u64,
    /// Instance data cache limit, bytes.
    pub geometry_cache: u64,
    /// The shader cache folder's limit, bytes.
    pub shader_cache: u64,
}

impl Settings {
    /// The renderer settings of `cfg`.
    pub fn of(cfg: &crate::config::StreamConfig) -> Self {
        let r = &cfg.renderer;
        Settings {
            api: r.api,
            width: cfg.core.viewport.width,
            height: cfg.core.viewport.height,
            filter: r.quality.filter_mode,
            antialiasing: r.quality.antialiasing,
            batch_size: r.performance.batch_size,
            max_concurrent: r.performance.max_concurrent,
            texture_cache: u64::from(r.memory.texture_cache) << 20,
            geometry_cache: u64::from(r.memory.geometry_cache) << 20,
            shader_cache: u64::from(r.memory.shader_cache) << 20,
        }
    }
}

/// A layer to draw: the cached texture `key` (see [`GpuRenderer::texture`]) stretched over
/// `rect`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GpuLayer {
    pub key: u64,
    /// x, y, width, height in frame pixels.
    pub rect: [i32; 4],
    /// 0–255.
    pub opacity: u8,
}

/// Why the GPU renderer failed.
#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    #[error(transparent)]
    NoAdapter(#[from] NoAdapter),
    #[error("GPU device: {0}")]
    Device(String),
    #[error("GPU readback: {0}")]
    Readback(String),
    #[error("frame size must be a multiple of 8 wide and 2 high for the GPU path, got {0}×{1}")]
    Size(u32, u32),
    #[error("renderer.quality.antialiasing: {0} cannot multisample {TARGET:?} 4×")]
    Msaa(String),
    #[error(
        "renderer.memory.textureCache: {need} bytes of one frame's textures do not fit the \
         {limit}-byte texture cache (raise textureCache, valid range 1..=65536 MB, or lower \
         textureQuality)"
    )]
    TextureCache { need: u64, limit: u64 },
    #[error(
        "renderer.memory.geometryCache: {need} bytes of instance data per frame do not fit \
         {limit} bytes (raise geometryCache, valid range 1..=65536 MB)"
    )]
    GeometryCache { need: u64, limit: u64 },
    #[error("texture {0} is not in the cache")]
    MissingTexture(u64),
    #[error("all {0} frame sets are in flight")]
    Busy(u32),
}

/// The renderer's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GpuStats {
    pub frames: u64,
    pub draw_calls: u64,
    pub triangles: u64,
    pub layers: u64,
    /// Time spent uploading, recording and submitting frames, ns.
    pub draw_ns: u64,
    /// Time spent waiting for frames and reading them back, ns.
    pub readback_ns: u64,
    /// Bytes of covered tiles uploaded (and as many read back), all frames.
    pub tile_bytes: u64,
    pub setup_ns: u64,
    /// Pipelines built from the shader cache's compiled code, and compiled.
    pub shader_hits: u64,
    pub shader_misses: u64,
    pub texture_hits: u64,
    pub texture_misses: u64,
    /// Textures dropped because the texture cache was full.
    pub texture_evictions: u64,
    /// Texture cache size now (bytes allocated on the GPU).
    pub texture_cache_bytes: u64,
    /// Draw calls whose instance data was already on the GPU.
    pub geometry_hits: u64,
    pub geometry_misses: u64,
    /// Bytes of instance data held now.
    pub geometry_bytes: u64,
    /// Textures a frame is drawn in (the layer targets), bytes.
    pub frame_texture_bytes: u64,
    /// Every buffer and texture this renderer allocated, bytes.
    pub gpu_bytes: u64,
}

/// Covered tiles side by side in one band of rows: what travels to the GPU and back as one
/// block (its Y rows, then its U rows, then its V rows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Run {
    /// Left column, top row, width and height, in luma samples.
    x: usize,
    y: usize,
    w: usize,
    h: usize,
    /// Where its bytes start in the upload and the readback.
    offset: usize,
}

impl Run {
    fn bytes(&self) -> usize {
        self.w * self.h * 3 / 2
    }

    /// Every row of this run, plane by plane, as one copy between the frame and the run's
    /// block: (plane 0–2, offset in that plane for `strides`, offset in the block, bytes).
    fn segments(&self, strides: [usize; 3]) -> impl Iterator<Item = (usize, usize, usize, usize)> {
        let luma = self.w * self.h;
        // Y, then U, then V: (top row, left column, row bytes, rows, block offset).
        let planes = [
            (self.y, self.x, self.w, self.h, self.offset),
            (
                self.y / 2,
                self.x / 2,
                self.w / 2,
                self.h / 2,
                self.offset + luma,
            ),
            (
                self.y / 2,
                self.x / 2,
                self.w / 2,
                self.h / 2,
                self.offset + luma * 5 / 4,
            ),
        ];
        planes
            .into_iter()
            .enumerate()
            .flat_map(move |(p, (top, left, row, rows, at))| {
                (0..rows).map(move |r| (p, (top + r) * strides[p] + left, at + r * row, row))
            })
    }
}

/// The runs of covered tiles for layers over `rects` in a `width`×`height` frame, into `runs`,
/// and their tiles' entries for yuv.wgsl into `entries` (after its header); returns the bytes
/// that travel each way. `covered` is scratch.
fn plan(
    width: u32,
    height: u32,
    rects: impl Iterator<Item = [i32; 4]>,
    covered: &mut Vec<bool>,
    runs: &mut Vec<Run>,
    entries: &mut Vec<u8>,
) -> usize {
    let (w, h) = (width as i64, height as i64);
    let cols = width.div_ceil(TILE_W) as usize;
    let bands = height.div_ceil(TILE_H) as usize;
    covered.clear();
    covered.resize(cols * bands, false);
    for [x, y, rw, rh] in rects {
        let (x0, y0) = (i64::from(x).max(0), i64::from(y).max(0));
        let (x1, y1) = (
            (i64::from(x) + i64::from(rw)).min(w),
            (i64::from(y) + i64::from(rh)).min(h),
        );
        if x0 >= x1 || y0 >= y1 {
            continue;
        }
        let tw = i64::from(TILE_W);
        let th = i64::from(TILE_H);
        for band in (y0 / th)..=((y1 - 1) / th) {
            for col in (x0 / tw)..=((x1 - 1) / tw) {
                covered[band as usize * cols + col as usize] = true;
            }
        }
    }
    runs.clear();
    entries.clear();
    entries.resize(TILES_HEADER, 0);
    let (tw, th) = (TILE_W as usize, TILE_H as usize);
    let mut offset = 0;
    for band in 0..bands {
        let row = &covered[band * cols..(band + 1) * cols];
        let mut col = 0;
        while col < cols {
            if !row[col] {
                col += 1;
                continue;
            }
            let first = col;
            while col < cols && row[col] {
                col += 1;
            }
            let x = first * tw;
            let y = band * th;
            let run = Run {
                x,
                y,
                w: (col * tw).min(width as usize) - x,
                h: th.min(height as usize - y),
                offset,
            };
            for t in first..col {
                let tile_x = t * tw;
                let fields = [
                    tile_x,
                    y,
                    offset / 4,
                    run.w,
                    tile_x - x,
                    tw.min(width as usize - tile_x),
                    run.h,
                    0,
                ];
                for f in fields {
                    entries.extend_from_slice(&(f as u32).to_le_bytes());
                }
            }
            offset += run.bytes();
            runs.push(run);
        }
    }
    let tiles = ((entries.len() - TILES_HEADER) / TILE_ENTRY) as u32;
    entries[..4].copy_from_slice(&tiles.to_le_bytes());
    offset
}

/// A 128-bit hash of `bytes`: two SipHashes, keyed apart.
fn hash128(bytes: &[u8]) -> u128 {
    use std::hash::{Hash, Hasher};
    let half = |seed: u8| {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        seed.hash(&mut h);
        bytes.hash(&mut h);
        h.finish()
    };
    (u128::from(half(0)) << 64) | u128::from(half(1))
}

/// One frame in flight's GPU objects. The buffers and textures a frame is composed in are
/// shared: the queue runs frames in order and stages each frame's uploads behind the frames
/// before it, so only what is read back and mapped must be per frame.
struct FrameSet {
    readback: wgpu::Buffer,
    /// The runs of tiles in flight and their bytes.
    runs: Vec<Run>,
    bytes: usize,
    submission: Option<wgpu::SubmissionIndex>,
    /// The frame's readback in flight.
    pending: Option<mpsc::Receiver<Result<(), wgpu::BufferAsyncError>>>,
}

/// The renderer and its GPU objects for one frame size.
pub struct GpuRenderer {
    pub adapter: gpu::Adapter,
    settings: Settings,
    device: wgpu::Device,
    queue: wgpu::Queue,
    layer: wgpu::RenderPipeline,
    yuv: wgpu::ComputePipeline,
    msaa: Option<wgpu::TextureView>,
    target: wgpu::TextureView,
    yuv_group: wgpu::BindGroup,
    /// The covered tiles' background, composed in place (yuv.wgsl's `data`).
    data: wgpu::Buffer,
    /// The covered tiles' entries (yuv.wgsl's `tiles`).
    tiles: wgpu::Buffer,
    frame: wgpu::Buffer,
    /// Layer textures (straight-alpha RGBA) by key; a slot's `meta` is width and height.
    textures: Arena<u64>,
    /// Each draw call's instance data, by a 128-bit hash of its bytes.
    geometry: Arena<u128>,
    /// The layers' bind group and the (texture, geometry) cache generations it was made for.
    layer_group: Option<((u64, u64), wgpu::BindGroup)>,
    sets: Vec<FrameSet>,
    /// Scratch for a frame's instance data, its batches' keys, its tile entries and which tiles
    /// it covers.
    scratch: Vec<u8>,
    batches: Vec<(u128, u32)>,
    entries: Vec<u8>,
    covered: Vec<bool>,
    /// The first error wgpu reported outside a call's result.
    errors: Arc<Mutex<Option<String>>>,
    stats: GpuStats,
}

fn texture(
    device: &wgpu::Device,
    (w, h): (u32, u32),
    format: wgpu::TextureFormat,
    samples: u32,
    usage: wgpu::TextureUsages,
) -> wgpu::Texture {
    device.create_texture(&wgpu::TextureDescriptor {
        label: None,
        size: wgpu::Extent3d {
            width: w,
            height: h,
            depth_or_array_layers: 1,
        },
        mip_level_count: 1,
        sample_count: samples,
        dimension: wgpu::TextureDimension::D2,
        format,
        usage,
        view_formats: &[],
    })
}

fn buffer(device: &wgpu::Device, size: u64, usage: wgpu::BufferUsages) -> wgpu::Buffer {
    device.create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size,
        usage,
        mapped_at_creation: false,
    })
}

fn view(t: &wgpu::Texture) -> wgpu::TextureView {
    t.create_view(&wgpu::TextureViewDescriptor::default())
}

fn wait(device: &wgpu::Device, submission: Option<wgpu::SubmissionIndex>) -> Result<(), GpuError> {
    device
        .poll(wgpu::PollType::Wait {
            submission_index: submission,
            timeout: None,
        })
        .map(|_| ())
        .map_err(|e| GpuError::Readback(e.to_string()))
}

impl GpuRenderer {
    /// Sets up the renderer for `s`.
    ///
    /// # Errors
    /// No adapter, no device, a frame size the packing cannot take, or no 4× multisampling
    /// where antialiasing is asked for.
    pub fn new(s: &Settings) -> Result<Self, GpuError> {
        let started = Instant::now();
        let (width, height) = (s.width, s.height);
        if width % 8 != 0 || height % 2 != 0 {
            return Err(GpuError::Size(width, height));
        }
        let (adapter, info) = gpu::pick(s.api)?;
        let samples = if s.antialiasing { 4 } else { 1 };
        if s.antialiasing {
            let f = adapter.get_texture_format_features(TARGET);
            if !f
                .flags
                .contains(wgpu::TextureFormatFeatureFlags::MULTISAMPLE_X4)
                || !f
                    .flags
                    .contains(wgpu::TextureFormatFeatureFlags::MULTISAMPLE_RESOLVE)
            {
                return Err(GpuError::Msaa(info.to_string()));
            }
        }
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("stream-manager renderer"),
            // For the shader cache, where the adapter has it.
            required_features: adapter.features() & wgpu::Features::PIPELINE_CACHE,
            ..Default::default()
        }))
        .map_err(|e| GpuError::Device(e.to_string()))?;
        // Validation and device errors become this renderer's errors, not a panic.
        let errors: Arc<Mutex<Option<String>>> = Arc::default();
        let sink = Arc::clone(&errors);
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            let mut slot = sink
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            slot.get_or_insert_with(|| e.to_string());
        }));
        let module = |src: &str| {
            device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: None,
                source: wgpu::ShaderSource::Wgsl(src.into()),
            })
        };
        let layer_module = module(include_str!("layer.wgsl"));
        let yuv_module = module(include_str!("yuv.wgsl"));
        let target_state = |blend: Option<wgpu::BlendState>| {
            [Some(wgpu::ColorTargetState {
                format: TARGET,
                blend,
                write_mask: wgpu::ColorWrites::ALL,
            })]
        };
        let blended = target_state(Some(wgpu::BlendState::ALPHA_BLENDING));
        // Both pipelines from the shader cache's compiled code where it has it.
        let adapter_info = adapter.get_info();
        let mut shader_stats = ShaderStats::default();
        let files = shaders::ShaderCache::from_env();
        let key = |name: &str| shaders::key(&adapter_info, &device, name);
        let layer = shaders::pipeline(
            &device,
            files.as_ref(),
            key(&format!("layer_{samples}x")),
            s.shader_cache,
            &mut shader_stats,
            |cache| {
                device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
                    label: None,
                    layout: None,
                    vertex: wgpu::VertexState {
                        module: &layer_module,
                        entry_point: Some("vs_layer"),
                        compilation_options: Default::default(),
                        buffers: &[],
                    },
                    primitive: wgpu::PrimitiveState::default(),
                    depth_stencil: None,
                    multisample: wgpu::MultisampleState {
                        count: samples,
                        ..Default::default()
                    },
                    fragment: Some(wgpu::FragmentState {
                        module: &layer_module,
                        entry_point: Some("fs_layer"),
                        compilation_options: Default::default(),
                        targets: &blended,
                    }),
                    multiview_mask: None,
                    cache,
                })
            },
        );
        let yuv = shaders::pipeline(
            &device,
            files.as_ref(),
            key("yuv_cs_tile"),
            s.shader_cache,
            &mut shader_stats,
            |cache| {
                device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: None,
                    layout: None,
                    module: &yuv_module,
                    entry_point: Some("cs_tile"),
                    compilation_options: Default::default(),
                    cache,
                })
            },
        );
        let frame_bytes = u64::from(width) * u64::from(height) * 3 / 2;
        let data = buffer(
            &device,
            frame_bytes,
            wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_DST
                | wgpu::BufferUsages::COPY_SRC,
        );
        let tile_count = u64::from(width.div_ceil(TILE_W)) * u64::from(height.div_ceil(TILE_H));
        let tiles_bytes = (TILES_HEADER + TILE_ENTRY * tile_count as usize) as u64;
        let tiles = buffer(
            &device,
            tiles_bytes,
            wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
        );
        let frame = buffer(
            &device,
            32,
            wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        );
        let filter = match s.filter {
            FilterMode::Nearest => 0u32,
            FilterMode::Linear => 1,
            FilterMode::Cubic => 2,
        };
        let mut values = Vec::with_capacity(32);
        for f in [width as f32, height as f32, 0.0, 0.0] {
            values.extend_from_slice(&f.to_le_bytes());
        }
        for u in [filter, 0, 0, 0] {
            values.extend_from_slice(&u.to_le_bytes());
        }
        queue.write_buffer(&frame, 0, &values);
        let limit = s
            .texture_cache
            .min(device.limits().max_storage_buffer_binding_size);
        let textures = Arena::new(&device, TEXTURE_START, limit);
        let limit = s
            .geometry_cache
            .min(device.limits().max_storage_buffer_binding_size)
            / INST_BYTES
            * INST_BYTES;
        let geometry = Arena::new(&device, GEOMETRY_START, limit);
        let target = texture(
            &device,
            (width, height),
            TARGET,
            1,
            wgpu::TextureUsages::RENDER_ATTACHMENT | wgpu::TextureUsages::TEXTURE_BINDING,
        );
        let msaa = s.antialiasing.then(|| {
            view(&texture(
                &device,
                (width, height),
                TARGET,
                4,
                wgpu::TextureUsages::RENDER_ATTACHMENT,
            ))
        });
        let pixels = u64::from(width) * u64::from(height);
        let frame_texture_bytes = pixels * 8 * (1 + 4 * u64::from(s.antialiasing));
        let target = view(&target);
        let yuv_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &yuv.get_bind_group_layout(0),
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: wgpu::BindingResource::TextureView(&target),
                },
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: data.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 2,
                    resource: tiles.as_entire_binding(),
                },
            ],
        });
        let sets = (0..s.max_concurrent.max(1))
            .map(|_| FrameSet {
                readback: buffer(
                    &device,
                    frame_bytes,
                    wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                ),
                runs: Vec::new(),
                bytes: 0,
                submission: None,
                pending: None,
            })
            .collect::<Vec<_>>();
        let n = sets.len() as u64;
        let stats = GpuStats {
            setup_ns: started.elapsed().as_nanos() as u64,
            shader_hits: shader_stats.hits,
            shader_misses: shader_stats.misses,
            frame_texture_bytes,
            // The caches' buffers are added in `stats`.
            gpu_bytes: frame_bytes * (1 + n) + tiles_bytes + 32 + frame_texture_bytes,
            ..GpuStats::default()
        };
        Ok(GpuRenderer {
            adapter: info,
            settings: s.clone(),
            msaa,
            target,
            yuv_group,
            device,
            queue,
            layer,
            yuv,
            data,
            tiles,
            frame,
            textures,
            geometry,
            layer_group: None,
            sets,
            scratch: Vec::new(),
            batches: Vec::new(),
            entries: Vec::new(),
            covered: Vec::new(),
            errors,
            stats,
        })
    }

    /// The counters so far.
    pub fn stats(&self) -> GpuStats {
        let (t, g) = (self.textures.stats(), self.geometry.stats());
        GpuStats {
            texture_hits: t.hits,
            texture_misses: t.misses,
            texture_evictions: t.evictions,
            texture_cache_bytes: self.textures.capacity(),
            geometry_hits: g.hits,
            geometry_misses: g.misses,
            geometry_bytes: self.geometry.used(),
            gpu_bytes: self.stats.gpu_bytes + self.textures.capacity() + self.geometry.capacity(),
            ..self.stats
        }
    }

    /// Frame sets (frames that can be in flight at once).
    pub fn frame_sets(&self) -> usize {
        self.sets.len()
    }

    /// Makes sure texture `key` is in the cache for the next frame, uploading `make()`'s
    /// straight-alpha RGBA (width, height, pixels) on a miss; the least recently used textures
    /// of earlier frames make room.
    ///
    /// # Errors
    /// The next frame's textures with this one do not fit the cache.
    pub fn texture(
        &mut self,
        key: u64,
        make: impl FnOnce() -> (u32, u32, Vec<u8>),
    ) -> Result<(), GpuError> {
        let epoch = self.stats.frames;
        if self.textures.get(&key, epoch).is_some() {
            return Ok(());
        }
        let (w, h, rgba) = make();
        self.textures
            .insert(&self.device, &self.queue, key, &rgba, [w, h], epoch)
            .map_err(|f| GpuError::TextureCache {
                need: f.need,
                limit: f.limit,
            })?;
        Ok(())
    }

    /// Uploads `planes` (the background) and submits the frame with `layers` drawn over it;
    /// returns the frame set to [`finish`](Self::finish) it with. Every layer's texture must be
    /// in the cache.
    ///
    /// # Errors
    /// Every frame set is in flight, a texture is missing, or the instance data does not fit.
    pub fn submit(&mut self, planes: &Planes<'_>, layers: &[GpuLayer]) -> Result<usize, GpuError> {
        let started = Instant::now();
        let set_index = self
            .sets
            .iter()
            .position(|s| s.pending.is_none())
            .ok_or(GpuError::Busy(self.sets.len() as u32))?;
        let epoch = self.stats.frames;
        self.scratch.clear();
        for l in layers {
            let slot = self
                .textures
                .peek(&l.key)
                .ok_or(GpuError::MissingTexture(l.key))?;
            let [w, h] = slot.meta;
            for v in l.rect {
                self.scratch.extend_from_slice(&v.to_le_bytes());
            }
            for v in [(slot.offset / 4) as u32, w, h, u32::from(l.opacity)] {
                self.scratch.extend_from_slice(&v.to_le_bytes());
            }
        }
        let need = self.scratch.len() as u64;
        if need > self.geometry.limit() {
            return Err(GpuError::GeometryCache {
                need,
                limit: self.geometry.limit(),
            });
        }
        let set = &mut self.sets[set_index];
        let (w, h) = (self.settings.width, self.settings.height);
        set.bytes = plan(
            w,
            h,
            layers.iter().map(|l| l.rect),
            &mut self.covered,
            &mut set.runs,
            &mut self.entries,
        );
        self.stats.frames += 1;
        self.stats.tile_bytes += set.bytes as u64;
        if set.bytes == 0 {
            // Nothing covers the frame: it already is the background.
            let (tx, rx) = mpsc::channel();
            let _ = tx.send(Ok(()));
            set.pending = Some(rx);
            set.submission = None;
            self.stats.draw_ns += started.elapsed().as_nanos() as u64;
            return Ok(set_index);
        }
        let bytes = wgpu::BufferSize::new(set.bytes as u64).expect("covered tiles");
        {
            let mut up = self
                .queue
                .write_buffer_with(&self.data, 0, bytes)
                .ok_or_else(|| GpuError::Device("cannot stage the background's tiles".into()))?;
            let src = [&*planes.y, &*planes.u, &*planes.v];
            let strides = [planes.y_stride, planes.u_stride, planes.v_stride];
            for (p, frame, block, n) in set.runs.iter().flat_map(|r| r.segments(strides)) {
                up.slice(block..block + n)
                    .copy_from_slice(&src[p][frame..frame + n]);
            }
        }
        self.queue.write_buffer(&self.tiles, 0, &self.entries);
        // Each draw call's instance data from the geometry cache, uploaded on a miss; the
        // slots are looked up once all are in (an insert may move the others).
        let batch = self.settings.batch_size.max(1) as usize;
        self.geometry
            .expire(epoch.saturating_sub(GEOMETRY_IDLE_FRAMES));
        self.batches.clear();
        for chunk in self.scratch.chunks(batch * INST_BYTES as usize) {
            let key = hash128(chunk);
            if self.geometry.get(&key, epoch).is_none() {
                self.geometry
                    .insert(&self.device, &self.queue, key, chunk, [0; 2], epoch)
                    .map_err(|f| GpuError::GeometryCache {
                        need: f.need,
                        limit: f.limit,
                    })?;
            }
            self.batches
                .push((key, (chunk.len() as u64 / INST_BYTES) as u32));
        }
        let generations = (self.textures.generation(), self.geometry.generation());
        if self
            .layer_group
            .as_ref()
            .is_none_or(|(g, _)| *g != generations)
        {
            let group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: None,
                layout: &self.layer.get_bind_group_layout(0),
                entries: &[
                    wgpu::BindGroupEntry {
                        binding: 0,
                        resource: self.geometry.buffer().as_entire_binding(),
                    },
                    wgpu::BindGroupEntry {
                        binding: 1,
                        resource: self.textures.buffer().as_entire_binding(),
                    },
                    wgpu::BindGroupEntry {
                        binding: 2,
                        resource: self.frame.as_entire_binding(),
                    },
                ],
            });
            self.layer_group = Some((generations, group));
        }
        let mut enc = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor::default());
        let n = layers.len() as u32;
        {
            let (view, resolve) = match &self.msaa {
                Some(m) => (m, Some(&self.target)),
                None => (&self.target, None),
            };
            let mut pass = enc.begin_render_pass(&wgpu::RenderPassDescriptor {
                label: None,
                color_attachments: &[Some(wgpu::RenderPassColorAttachment {
                    view,
                    depth_slice: None,
                    resolve_target: resolve,
                    ops: wgpu::Operations {
                        load: wgpu::LoadOp::Clear(wgpu::Color::TRANSPARENT),
                        store: wgpu::StoreOp::Store,
                    },
                })],
                depth_stencil_attachment: None,
                timestamp_writes: None,
                occlusion_query_set: None,
                multiview_mask: None,
            });
            if n > 0 {
                pass.set_pipeline(&self.layer);
                pass.set_bind_group(0, self.layer_group.as_ref().map(|(_, g)| g), &[]);
                for &(key, count) in &self.batches {
                    let slot = self.geometry.peek(&key).expect("this frame's batch");
                    let first = (slot.offset / INST_BYTES) as u32;
                    pass.draw(0..6, first..first + count);
                    self.stats.draw_calls += 1;
                }
            }
        }
        {
            // One workgroup per covered tile, at most 65,535 a row of the dispatch.
            let tiles = ((self.entries.len() - TILES_HEADER) / TILE_ENTRY) as u32;
            let per_row = tiles.min(65_535);
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
            pass.set_pipeline(&self.yuv);
            pass.set_bind_group(0, &self.yuv_group, &[]);
            pass.dispatch_workgroups(per_row, tiles.div_ceil(per_row), 1);
        }
        enc.copy_buffer_to_buffer(&self.data, 0, &set.readback, 0, bytes.get());
        set.submission = Some(self.queue.submit([enc.finish()]));
        let (tx, rx) = mpsc::channel();
        set.readback
            .slice(..bytes.get())
            .map_async(wgpu::MapMode::Read, move |r| {
                let _ = tx.send(r);
            });
        set.pending = Some(rx);
        self.check()?;
        self.stats.triangles += 2 * u64::from(n);
        self.stats.layers += u64::from(n);
        self.stats.draw_ns += started.elapsed().as_nanos() as u64;
        Ok(set_index)
    }

    /// The error wgpu reported since the last check, if any.
    fn check(&self) -> Result<(), GpuError> {
        let mut e = self
            .errors
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match e.take() {
            Some(msg) => Err(GpuError::Device(msg)),
            None => Ok(()),
        }
    }

    /// Waits for the frame submitted on `set` and writes it into `planes`.
    ///
    /// # Errors
    /// Nothing was submitted on `set`, or the readback failed.
    pub fn finish(&mut self, set: usize, planes: &mut Planes<'_>) -> Result<(), GpuError> {
        let started = Instant::now();
        let s = &mut self.sets[set];
        let rx = s
            .pending
            .take()
            .ok_or_else(|| GpuError::Readback(format!("nothing in flight on frame set {set}")))?;
        // The callback fires during a poll; wait until this frame's has.
        let mapped = loop {
            match rx.try_recv() {
                Ok(r) => break r,
                Err(mpsc::TryRecvError::Empty) => wait(&self.device, s.submission.clone())?,
                Err(e) => return Err(GpuError::Readback(e.to_string())),
            }
        };
        mapped.map_err(|e| GpuError::Readback(e.to_string()))?;
        if s.bytes > 0 {
            {
                let data = s
                    .readback
                    .slice(..s.bytes as u64)
                    .get_mapped_range()
                    .map_err(|e| GpuError::Readback(e.to_string()))?;
                let strides = [planes.y_stride, planes.u_stride, planes.v_stride];
                let dst = [&mut *planes.y, &mut *planes.u, &mut *planes.v];
                for (p, frame, block, n) in s.runs.iter().flat_map(|r| r.segments(strides)) {
                    dst[p][frame..frame + n].copy_from_slice(&data[block..block + n]);
                }
            }
            s.readback.unmap();
        }
        self.stats.readback_ns += started.elapsed().as_nanos() as u64;
        self.check()
    }

    /// Submits one frame and waits for it.
    ///
    /// # Errors
    /// As [`submit`](Self::submit) and [`finish`](Self::finish).
    pub fn compose(
        &mut self,
        planes: &mut Planes<'_>,
        layers: &[GpuLayer],
    ) -> Result<(), GpuError> {
        let set = self.submit(planes, layers)?;
        self.finish(set, planes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every pixel a layer covers is in exactly one run, runs lie inside the frame, their blocks
    /// follow one another, and each tile entry points into its run.
    #[test]
    fn the_covered_tiles_hold_every_layer_pixel_once() {
        let (w, h) = (200u32, 90u32);
        let rects = [
            [-10, -5, 30, 20],
            [150, 70, 100, 100],
            [64, 16, 1, 1],
            [300, 0, 5, 5],
        ];
        let (mut covered, mut runs, mut entries) = (Vec::new(), Vec::new(), Vec::new());
        let bytes = plan(
            w,
            h,
            rects.into_iter(),
            &mut covered,
            &mut runs,
            &mut entries,
        );
        let mut hits = vec![0u8; (w * h) as usize];
        let mut offset = 0;
        for r in &runs {
            assert_eq!(r.offset, offset, "{r:?}");
            assert!(r.x + r.w <= w as usize && r.y + r.h <= h as usize, "{r:?}");
            assert!(r.w % 8 == 0 && r.h % 2 == 0, "{r:?}");
            offset += r.bytes();
            for y in r.y..r.y + r.h {
                for x in r.x..r.x + r.w {
                    hits[y * w as usize + x] += 1;
                }
            }
        }
        assert_eq!(bytes, offset);
        for [x, y, rw, rh] in rects {
            for py in y.max(0)..(y + rh).min(h as i32) {
                for px in x.max(0)..(x + rw).min(w as i32) {
                    assert_eq!(hits[(py * w as i32 + px) as usize], 1, "({px}, {py})");
                }
            }
        }
        assert!(hits.iter().all(|&n| n <= 1));
        // Tiles (0,0) from the first layer, (64,16) from the third, and four from the second
        // in two runs: the last column 8 wide, the last band 10 high; words into the blocks.
        assert_eq!(bytes, 1536 + 1536 + 72 * 16 * 3 / 2 + 72 * 10 * 3 / 2);
        let word = |i: usize| u32::from_le_bytes(entries[i * 4..i * 4 + 4].try_into().unwrap());
        assert_eq!(word(0), 6);
        let tiles: Vec<[u32; 8]> = (0..6)
            .map(|t| std::array::from_fn(|f| word(4 + t * 8 + f)))
            .collect();
        assert_eq!(
            tiles,
            [
                [0, 0, 0, 64, 0, 64, 16, 0],
                [64, 16, 384, 64, 0, 64, 16, 0],
                [128, 64, 768, 72, 0, 64, 16, 0],
                [192, 64, 768, 72, 64, 8, 16, 0],
                [128, 80, 1200, 72, 0, 64, 10, 0],
                [192, 80, 1200, 72, 64, 8, 10, 0],
            ]
        );
        // Nothing on the frame: nothing travels.
        let none = plan(
            w,
            h,
            [[500, 500, 10, 10]].into_iter(),
            &mut covered,
            &mut runs,
            &mut entries,
        );
        assert_eq!((none, runs.len()), (0, 0));
    }
}
