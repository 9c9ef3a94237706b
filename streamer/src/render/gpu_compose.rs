//! The GPU renderer (wgpu, headless). Per frame: the layers are drawn as instanced quads —
//! `batchSize` layers per draw call, sampled from the texture cache with `filterMode` — over a
//! transparent half-float target (into a 4× multisampled one resolved at the end of the pass
//! when `antialiasing` is on), which leaves their premultiplied colour and coverage; a compute
//! pass lays that over the background's uploaded YUV planes straight in YUV (see yuv.wgsl: the
//! result is the conversion of the blended RGB frame, and uncovered pixels come out exactly as
//! they went in) and writes YUV 4:2:0 into a storage buffer, four samples per word, so there is
//! no 256-byte row padding to undo; it is read back straight into the encoder's planes. No
//! colour conversion on the CPU, and only the layers' pixels are rasterised.
//!
//! `maxConcurrent` frame sets (readback and instance buffers) let that many frames be in flight:
//! [`GpuRenderer::submit`] records and submits a frame and returns at once,
//! [`GpuRenderer::finish`] waits for its readback.
//!
//! Caches: textures live in one storage buffer (`textureCache` MB at most; grown on demand,
//! emptied and refilled when full), keyed by asset; each frame set keeps the instance data it
//! last drew (`geometryCache` MB at most) and uploads nothing when a frame's layers have not
//! moved; the pipelines are built once per renderer.

use super::gpu::{self, Api, NoAdapter};
use crate::config::FilterMode;
use crate::source::Planes;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, mpsc};
use std::time::Instant;

/// The layers are composed in half floats: no 8-bit rounding between the blends and the
/// conversion to YUV.
const TARGET: wgpu::TextureFormat = wgpu::TextureFormat::Rgba16Float;
/// Bytes of one layer's instance data (`Inst` in layer.wgsl).
const INST_BYTES: u64 = 32;
/// The texture cache starts this large (or at its limit) and doubles as needed.
const TEXTURE_START: u64 = 4 << 20;

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
    /// Instance data limit per frame set, bytes.
    pub geometry_cache: u64,
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
    pub setup_ns: u64,
    pub texture_hits: u64,
    pub texture_misses: u64,
    /// Textures dropped because the texture cache was full.
    pub texture_evictions: u64,
    /// Texture cache size now (bytes allocated on the GPU).
    pub texture_cache_bytes: u64,
    /// Frames whose instance data was already on the GPU.
    pub geometry_hits: u64,
    pub geometry_misses: u64,
    /// Textures of the frame sets (background planes, targets), bytes.
    pub frame_texture_bytes: u64,
    /// Every buffer and texture this renderer allocated, bytes.
    pub gpu_bytes: u64,
}

/// Layer textures in one storage buffer.
struct TextureCache {
    buffer: wgpu::Buffer,
    capacity: u64,
    used: u64,
    limit: u64,
    /// Offset (words), width, height by key.
    entries: HashMap<u64, [u32; 3]>,
    /// Bumped whenever `buffer` is replaced (bind groups must be rebuilt).
    generation: u64,
}

/// One frame in flight's GPU objects. The textures a frame is drawn in are shared: the queue
/// runs frames in order and stages each frame's uploads behind the frames before it, so only
/// what is read back and mapped must be per frame.
struct FrameSet {
    readback: wgpu::Buffer,
    insts: wgpu::Buffer,
    insts_capacity: u64,
    /// The bind group for the layers and the texture cache generation it was made for.
    layer_group: Option<(u64, wgpu::BindGroup)>,
    /// The instance data last uploaded (the geometry cache).
    geometry: Vec<u8>,
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
    luma: wgpu::ComputePipeline,
    chroma: wgpu::ComputePipeline,
    bg: [wgpu::Texture; 3],
    msaa: Option<wgpu::TextureView>,
    target: wgpu::TextureView,
    yuv_groups: [wgpu::BindGroup; 2],
    planes: wgpu::Buffer,
    frame: wgpu::Buffer,
    textures: TextureCache,
    sets: Vec<FrameSet>,
    /// Scratch for a frame's instance data.
    scratch: Vec<u8>,
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

fn upload(queue: &wgpu::Queue, tex: &wgpu::Texture, data: &[u8], stride: usize) {
    let size = tex.size();
    queue.write_texture(
        wgpu::TexelCopyTextureInfo {
            texture: tex,
            mip_level: 0,
            origin: wgpu::Origin3d::ZERO,
            aspect: wgpu::TextureAspect::All,
        },
        data,
        wgpu::TexelCopyBufferLayout {
            offset: 0,
            bytes_per_row: Some(stride as u32),
            rows_per_image: Some(size.height),
        },
        wgpu::Extent3d {
            width: size.width,
            height: size.height,
            depth_or_array_layers: 1,
        },
    );
}

fn view(t: &wgpu::Texture) -> wgpu::TextureView {
    t.create_view(&wgpu::TextureViewDescriptor::default())
}

fn wait(device: &wgpu::Device) -> Result<(), GpuError> {
    device
        .poll(wgpu::PollType::Wait {
            submission_index: None,
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
        let render = |m: &wgpu::ShaderModule,
                      vs: &str,
                      fs: &str,
                      targets: &[Option<wgpu::ColorTargetState>]| {
            device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
                label: None,
                layout: None,
                vertex: wgpu::VertexState {
                    module: m,
                    entry_point: Some(vs),
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
                    module: m,
                    entry_point: Some(fs),
                    compilation_options: Default::default(),
                    targets,
                }),
                multiview_mask: None,
                cache: None,
            })
        };
        let layer = render(&layer_module, "vs_layer", "fs_layer", &blended);
        let compute = |entry: &str| {
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: None,
                layout: None,
                module: &yuv_module,
                entry_point: Some(entry),
                compilation_options: Default::default(),
                cache: None,
            })
        };
        let luma = compute("cs_luma");
        let chroma = compute("cs_chroma");
        let frame_bytes = u64::from(width) * u64::from(height) * 3 / 2;
        let planes = buffer(
            &device,
            frame_bytes,
            wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        );
        let uniform = wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST;
        let dims = buffer(&device, 16, uniform);
        queue.write_buffer(
            &dims,
            0,
            &[width, height, 0, 0].map(u32::to_le_bytes).concat(),
        );
        let frame = buffer(&device, 32, uniform);
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
        let capacity = TEXTURE_START.min(limit);
        let textures = TextureCache {
            buffer: buffer(
                &device,
                capacity,
                wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_DST
                    | wgpu::BufferUsages::COPY_SRC,
            ),
            capacity,
            used: 0,
            limit,
            entries: HashMap::new(),
            generation: 0,
        };
        let sampled = wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST;
        let r8 = wgpu::TextureFormat::R8Unorm;
        let half = (width / 2, height / 2);
        let bg = [
            texture(&device, (width, height), r8, 1, sampled),
            texture(&device, half, r8, 1, sampled),
            texture(&device, half, r8, 1, sampled),
        ];
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
        let frame_texture_bytes = pixels * 3 / 2 + pixels * 8 * (1 + 4 * u64::from(s.antialiasing));
        let bg_views = bg.each_ref().map(view);
        let target = view(&target);
        // Auto layouts hold only what each entry point uses: luma reads the Y plane, chroma U
        // and V.
        let yuv_group = |pipeline: &wgpu::ComputePipeline, bindings: &[u32]| {
            let entries: Vec<wgpu::BindGroupEntry<'_>> = bindings
                .iter()
                .map(|&binding| wgpu::BindGroupEntry {
                    binding,
                    resource: match binding {
                        0 => wgpu::BindingResource::TextureView(&target),
                        1 => planes.as_entire_binding(),
                        2 => dims.as_entire_binding(),
                        b => wgpu::BindingResource::TextureView(&bg_views[b as usize - 3]),
                    },
                })
                .collect();
            device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: None,
                layout: &pipeline.get_bind_group_layout(0),
                entries: &entries,
            })
        };
        let yuv_groups = [
            yuv_group(&luma, &[0, 1, 2, 3]),
            yuv_group(&chroma, &[0, 1, 2, 4, 5]),
        ];
        let sets = (0..s.max_concurrent.max(1))
            .map(|_| FrameSet {
                readback: buffer(
                    &device,
                    frame_bytes,
                    wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                ),
                insts: buffer(
                    &device,
                    INST_BYTES,
                    wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
                ),
                insts_capacity: INST_BYTES,
                layer_group: None,
                geometry: Vec::new(),
                pending: None,
            })
            .collect::<Vec<_>>();
        let n = sets.len() as u64;
        let stats = GpuStats {
            setup_ns: started.elapsed().as_nanos() as u64,
            texture_cache_bytes: capacity,
            frame_texture_bytes,
            gpu_bytes: frame_bytes * (1 + n) + 48 + capacity + frame_texture_bytes + INST_BYTES * n,
            ..GpuStats::default()
        };
        Ok(GpuRenderer {
            adapter: info,
            settings: s.clone(),
            bg,
            msaa,
            target,
            yuv_groups,
            device,
            queue,
            layer,
            luma,
            chroma,
            planes,
            frame,
            textures,
            sets,
            scratch: Vec::new(),
            errors,
            stats,
        })
    }

    /// The counters so far.
    pub fn stats(&self) -> GpuStats {
        self.stats
    }

    /// The texture cache's limit, bytes.
    pub fn texture_cache_limit(&self) -> u64 {
        self.textures.limit
    }

    /// Frame sets (frames that can be in flight at once).
    pub fn frame_sets(&self) -> usize {
        self.sets.len()
    }

    /// Makes sure texture `key` is in the cache, uploading `make()`'s straight-alpha RGBA
    /// (width, height, pixels) on a miss. Returns true when the cache was full and emptied
    /// first: textures looked up before for the same frame must be looked up again.
    ///
    /// # Errors
    /// The texture alone is larger than the cache.
    pub fn texture(
        &mut self,
        key: u64,
        make: impl FnOnce() -> (u32, u32, Vec<u8>),
    ) -> Result<bool, GpuError> {
        if self.textures.entries.contains_key(&key) {
            self.stats.texture_hits += 1;
            return Ok(false);
        }
        self.stats.texture_misses += 1;
        let (w, h, rgba) = make();
        let size = rgba.len() as u64;
        let t = &mut self.textures;
        if size > t.limit {
            return Err(GpuError::TextureCache {
                need: size,
                limit: t.limit,
            });
        }
        let mut emptied = false;
        if t.used + size > t.limit {
            self.stats.texture_evictions += t.entries.len() as u64;
            t.entries.clear();
            t.used = 0;
            emptied = true;
        }
        if t.used + size > t.capacity {
            let capacity = (t.capacity * 2).max(t.used + size).min(t.limit);
            let grown = buffer(
                &self.device,
                capacity,
                wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_DST
                    | wgpu::BufferUsages::COPY_SRC,
            );
            if t.used > 0 {
                let mut enc = self
                    .device
                    .create_command_encoder(&wgpu::CommandEncoderDescriptor::default());
                enc.copy_buffer_to_buffer(&t.buffer, 0, &grown, 0, t.used);
                self.queue.submit([enc.finish()]);
            }
            self.stats.gpu_bytes += capacity - t.capacity;
            self.stats.texture_cache_bytes = capacity;
            t.buffer = grown;
            t.capacity = capacity;
            t.generation += 1;
        }
        self.queue.write_buffer(&t.buffer, t.used, &rgba);
        t.entries.insert(key, [(t.used / 4) as u32, w, h]);
        t.used += size;
        Ok(emptied)
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
        self.scratch.clear();
        for l in layers {
            let [offset, w, h] = *self
                .textures
                .entries
                .get(&l.key)
                .ok_or(GpuError::MissingTexture(l.key))?;
            for v in l.rect {
                self.scratch.extend_from_slice(&v.to_le_bytes());
            }
            for v in [offset, w, h, u32::from(l.opacity)] {
                self.scratch.extend_from_slice(&v.to_le_bytes());
            }
        }
        let need = self.scratch.len() as u64;
        if need > self.settings.geometry_cache {
            return Err(GpuError::GeometryCache {
                need,
                limit: self.settings.geometry_cache,
            });
        }
        let set = &mut self.sets[set_index];
        upload(&self.queue, &self.bg[0], planes.y, planes.y_stride);
        upload(&self.queue, &self.bg[1], planes.u, planes.u_stride);
        upload(&self.queue, &self.bg[2], planes.v, planes.v_stride);
        if need > set.insts_capacity {
            let capacity = need
                .next_power_of_two()
                .min(self.settings.geometry_cache.max(need));
            set.insts = buffer(
                &self.device,
                capacity,
                wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
            );
            self.stats.gpu_bytes += capacity - set.insts_capacity;
            set.insts_capacity = capacity;
            set.layer_group = None;
            set.geometry.clear();
        }
        if !layers.is_empty() {
            if set.geometry == self.scratch {
                self.stats.geometry_hits += 1;
            } else {
                self.stats.geometry_misses += 1;
                self.queue.write_buffer(&set.insts, 0, &self.scratch);
                set.geometry.clone_from(&self.scratch);
            }
        }
        let generation = self.textures.generation;
        if set
            .layer_group
            .as_ref()
            .is_none_or(|(g, _)| *g != generation)
        {
            let group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: None,
                layout: &self.layer.get_bind_group_layout(0),
                entries: &[
                    wgpu::BindGroupEntry {
                        binding: 0,
                        resource: set.insts.as_entire_binding(),
                    },
                    wgpu::BindGroupEntry {
                        binding: 1,
                        resource: self.textures.buffer.as_entire_binding(),
                    },
                    wgpu::BindGroupEntry {
                        binding: 2,
                        resource: self.frame.as_entire_binding(),
                    },
                ],
            });
            set.layer_group = Some((generation, group));
        }
        let mut enc = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor::default());
        let batch = self.settings.batch_size.max(1);
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
                pass.set_bind_group(0, set.layer_group.as_ref().map(|(_, g)| g), &[]);
                let mut first = 0;
                while first < n {
                    let end = (first + batch).min(n);
                    pass.draw(0..6, first..end);
                    self.stats.draw_calls += 1;
                    first = end;
                }
            }
        }
        let (w, h) = (self.settings.width, self.settings.height);
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
            pass.set_pipeline(&self.luma);
            pass.set_bind_group(0, &self.yuv_groups[0], &[]);
            pass.dispatch_workgroups((w * h / 4).div_ceil(64), 1, 1);
            pass.set_pipeline(&self.chroma);
            pass.set_bind_group(0, &self.yuv_groups[1], &[]);
            pass.dispatch_workgroups((w * h / 16).div_ceil(64), 1, 1);
        }
        let bytes = u64::from(w) * u64::from(h) * 3 / 2;
        enc.copy_buffer_to_buffer(&self.planes, 0, &set.readback, 0, bytes);
        self.queue.submit([enc.finish()]);
        let (tx, rx) = mpsc::channel();
        set.readback
            .slice(..)
            .map_async(wgpu::MapMode::Read, move |r| {
                let _ = tx.send(r);
            });
        set.pending = Some(rx);
        self.check()?;
        self.stats.frames += 1;
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
                Err(mpsc::TryRecvError::Empty) => wait(&self.device)?,
                Err(e) => return Err(GpuError::Readback(e.to_string())),
            }
        };
        mapped.map_err(|e| GpuError::Readback(e.to_string()))?;
        let (w, h) = (self.settings.width as usize, self.settings.height as usize);
        {
            let data = s
                .readback
                .slice(..)
                .get_mapped_range()
                .map_err(|e| GpuError::Readback(e.to_string()))?;
            let (y, uv) = data.split_at(w * h);
            let (u, v) = uv.split_at(w * h / 4);
            for (src, dst, stride, row) in [
                (y, &mut *planes.y, planes.y_stride, w),
                (u, &mut *planes.u, planes.u_stride, w / 2),
                (v, &mut *planes.v, planes.v_stride, w / 2),
            ] {
                for (s, d) in src.chunks(row).zip(dst.chunks_mut(stride)) {
                    d[..row].copy_from_slice(s);
                }
            }
        }
        s.readback.unmap();
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
