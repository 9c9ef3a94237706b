//! Setting the GPU renderer up, step by step: the device, the two pipelines (from the shader
//! cache where it can), the buffers the covered tiles travel in, the texture and geometry
//! caches, the layer targets, and the frame sets that let frames be in flight together.

use super::types::{GEOMETRY_START, GpuError, INST_BYTES, Settings, TARGET, TEXTURE_START};
use crate::config::FilterMode;
use crate::render::arena::Arena;
use crate::render::gpu::Adapter;
use crate::render::shaders::{self, ShaderStats};
use crate::render::tiles::{Run, TILE_ENTRY, TILE_H, TILE_W, TILES_HEADER};
use std::sync::{Arc, Mutex, mpsc};

/// One frame in flight's GPU objects. The buffers and textures a frame is composed in are
/// shared: the queue runs frames in order and stages each frame's uploads behind the frames
/// before it, so only what is read back and mapped must be per frame.
pub struct FrameSet {
    pub readback: wgpu::Buffer,
    /// The runs of tiles in flight and their bytes.
    pub runs: Vec<Run>,
    pub bytes: usize,
    pub submission: Option<wgpu::SubmissionIndex>,
    /// The frame's readback in flight.
    pub pending: Option<mpsc::Receiver<Result<(), wgpu::BufferAsyncError>>>,
}

/// Where wgpu's validation and device errors go: the first one is kept.
pub type ErrorSlot = Arc<Mutex<Option<String>>>;

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

/// Samples per pixel of the layer target: 4 with `antialiasing` (where the adapter can
/// multisample and resolve the target format 4×), else 1.
///
/// # Errors
/// Antialiasing is asked for and the adapter cannot do it.
pub fn samples(
    adapter: &wgpu::Adapter,
    info: &Adapter,
    antialiasing: bool,
) -> Result<u32, GpuError> {
    if !antialiasing {
        return Ok(1);
    }
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
    Ok(4)
}

/// The device and its queue, with the pipeline cache feature where the adapter has it, and
/// the slot its uncaptured errors go to (they become the renderer's errors, not a panic).
///
/// # Errors
/// The adapter gives no device.
pub fn device(adapter: &wgpu::Adapter) -> Result<(wgpu::Device, wgpu::Queue, ErrorSlot), GpuError> {
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        label: Some("stream-manager renderer"),
        // For the shader cache, where the adapter has it.
        required_features: adapter.features() & wgpu::Features::PIPELINE_CACHE,
        ..Default::default()
    }))
    .map_err(|e| GpuError::Device(e.to_string()))?;
    // Validation and device errors become this renderer's errors, not a panic.
    let errors: ErrorSlot = Arc::default();
    let sink = Arc::clone(&errors);
    device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
        let mut slot = sink
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        slot.get_or_insert_with(|| e.to_string());
    }));
    Ok((device, queue, errors))
}

/// The layer pipeline (instanced quads, `samples` per pixel) and the YUV compute pipeline,
/// both from the shader cache's compiled code where it has it; `stats` counts which.
pub fn pipelines(
    adapter: &wgpu::Adapter,
    device: &wgpu::Device,
    samples: u32,
    shader_cache: u64,
    stats: &mut ShaderStats,
) -> (wgpu::RenderPipeline, wgpu::ComputePipeline) {
    let module = |src: &str| {
        device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: None,
            source: wgpu::ShaderSource::Wgsl(src.into()),
        })
    };
    let layer_module = module(include_str!("../layer.wgsl"));
    let yuv_module = module(include_str!("../yuv.wgsl"));
    let blended = [Some(wgpu::ColorTargetState {
        format: TARGET,
        blend: Some(wgpu::BlendState::ALPHA_BLENDING),
        write_mask: wgpu::ColorWrites::ALL,
    })];
    // Both pipelines from the shader cache's compiled code where it has it.
    let adapter_info = adapter.get_info();
    let files = shaders::ShaderCache::from_env();
    let key = |name: &str| shaders::key(&adapter_info, device, name);
    let layer = shaders::pipeline(
        device,
        files.as_ref(),
        key(&format!("layer_{samples}x")),
        shader_cache,
        stats,
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
        device,
        files.as_ref(),
        key("yuv_cs_tile"),
        shader_cache,
        stats,
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
    (layer, yuv)
}

/// The buffers the covered tiles travel in, and the frame's uniforms.
pub struct Buffers {
    /// The covered tiles' background, composed in place (yuv.wgsl's `data`).
    pub data: wgpu::Buffer,
    /// The covered tiles' entries (yuv.wgsl's `tiles`).
    pub tiles: wgpu::Buffer,
    /// Frame size and filter (layer.wgsl's uniforms).
    pub frame: wgpu::Buffer,
    /// Bytes of a whole YUV 4:2:0 frame (the most that travels) and of the tile list.
    pub frame_bytes: u64,
    pub tiles_bytes: u64,
}

/// The tile buffers for `s`'s frame size, and its uniforms written.
pub fn buffers(device: &wgpu::Device, queue: &wgpu::Queue, s: &Settings) -> Buffers {
    let (width, height) = (s.width, s.height);
    let frame_bytes = u64::from(width) * u64::from(height) * 3 / 2;
    let data = buffer(
        device,
        frame_bytes,
        wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC,
    );
    let tile_count = u64::from(width.div_ceil(TILE_W)) * u64::from(height.div_ceil(TILE_H));
    let tiles_bytes = (TILES_HEADER + TILE_ENTRY * tile_count as usize) as u64;
    let tiles = buffer(
        device,
        tiles_bytes,
        wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
    );
    let frame = buffer(
        device,
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
    Buffers {
        data,
        tiles,
        frame,
        frame_bytes,
        tiles_bytes,
    }
}

/// The texture cache and the geometry cache, within `s`'s limits and the device's.
pub fn caches(device: &wgpu::Device, s: &Settings) -> (Arena<u64>, Arena<u128>) {
    let limit = s
        .texture_cache
        .min(device.limits().max_storage_buffer_binding_size);
    let textures = Arena::new(device, TEXTURE_START, limit);
    let limit = s
        .geometry_cache
        .min(device.limits().max_storage_buffer_binding_size)
        / INST_BYTES
        * INST_BYTES;
    let geometry = Arena::new(device, GEOMETRY_START, limit);
    (textures, geometry)
}

/// The textures the layers are drawn in.
pub struct Targets {
    /// The half-float target the compute pass reads.
    pub target: wgpu::TextureView,
    /// The 4× multisampled one resolved into `target` (antialiasing).
    pub msaa: Option<wgpu::TextureView>,
    /// Bytes of both.
    pub bytes: u64,
}

/// The layer targets for `s`'s frame size.
pub fn targets(device: &wgpu::Device, s: &Settings) -> Targets {
    let (width, height) = (s.width, s.height);
    let target = texture(
        device,
        (width, height),
        TARGET,
        1,
        wgpu::TextureUsages::RENDER_ATTACHMENT | wgpu::TextureUsages::TEXTURE_BINDING,
    );
    let msaa = s.antialiasing.then(|| {
        view(&texture(
            device,
            (width, height),
            TARGET,
            4,
            wgpu::TextureUsages::RENDER_ATTACHMENT,
        ))
    });
    let pixels = u64::from(width) * u64::from(height);
    Targets {
        target: view(&target),
        msaa,
        bytes: pixels * 8 * (1 + 4 * u64::from(s.antialiasing)),
    }
}

/// The compute pass's bind group: the layer target, the tiles' data and their entries.
pub fn yuv_group(
    device: &wgpu::Device,
    yuv: &wgpu::ComputePipeline,
    target: &wgpu::TextureView,
    b: &Buffers,
) -> wgpu::BindGroup {
    device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: None,
        layout: &yuv.get_bind_group_layout(0),
        entries: &[
            wgpu::BindGroupEntry {
                binding: 0,
                resource: wgpu::BindingResource::TextureView(target),
            },
            wgpu::BindGroupEntry {
                binding: 1,
                resource: b.data.as_entire_binding(),
            },
            wgpu::BindGroupEntry {
                binding: 2,
                resource: b.tiles.as_entire_binding(),
            },
        ],
    })
}

/// `max_concurrent` frame sets (at least one), each with a readback of `frame_bytes`.
pub fn frame_sets(device: &wgpu::Device, frame_bytes: u64, max_concurrent: u32) -> Vec<FrameSet> {
    (0..max_concurrent.max(1))
        .map(|_| FrameSet {
            readback: buffer(
                device,
                frame_bytes,
                wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            ),
            runs: Vec::new(),
            bytes: 0,
            submission: None,
            pending: None,
        })
        .collect()
}
