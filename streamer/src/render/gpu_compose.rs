//! The GPU compositor (wgpu, headless): the background's YUV planes are uploaded and turned into
//! RGBA, each layer is drawn over it as a textured quad with alpha blending (nearest or linear
//! sampling), and a compute pass converts the RGBA frame to YUV 4:2:0 into a storage buffer that
//! is read back straight into the encoder's planes — no colour conversion on the CPU. Reading
//! back from a buffer packed by the shader (four samples per word) sidesteps texture-copy row
//! padding (256 bytes) altogether.

use super::gpu::{self, Api, NoAdapter};
use crate::source::Planes;

/// The frame is composed in half floats: no 8-bit rounding between the background's conversion,
/// the blends and the conversion back to YUV.
const TARGET: wgpu::TextureFormat = wgpu::TextureFormat::Rgba16Float;

/// A layer to draw: a straight-alpha RGBA image and where it goes.
pub struct GpuLayer<'a> {
    /// Identifies the image's content (asset and size): textures are cached by it.
    pub key: u64,
    pub width: u32,
    pub height: u32,
    pub rgba: &'a [u8],
    /// x, y, width, height in frame pixels.
    pub rect: [f32; 4],
    /// 0–255.
    pub opacity: u8,
}

/// The layers of `layout`, bottom first, as GPU layers: `images[i]` is layer i's RGBA at its
/// placed size; textures are keyed by asset and size.
pub fn layout_layers<'a>(
    layout: &crate::core::layout::Layout,
    images: &'a [Vec<u8>],
) -> Vec<GpuLayer<'a>> {
    layout
        .layers()
        .iter()
        .zip(images)
        .map(|(l, rgba)| GpuLayer {
            key: (l.asset as u64) << 32 | u64::from(l.rect.w) << 16 | u64::from(l.rect.h),
            width: l.rect.w,
            height: l.rect.h,
            rgba,
            rect: [
                l.rect.x as f32,
                l.rect.y as f32,
                l.rect.w as f32,
                l.rect.h as f32,
            ],
            opacity: l.opacity,
        })
        .collect()
}

/// Why the GPU compositor failed.
#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    #[error(transparent)]
    NoAdapter(#[from] NoAdapter),
    #[error("GPU device: {0}")]
    Device(String),
    #[error("GPU readback: {0}")]
    Readback(String),
    #[error("frame width must be a multiple of 8 for the GPU path, got {0}")]
    Width(u32),
}

/// The compositor and its GPU objects for one frame size.
pub struct GpuCompositor {
    pub adapter: gpu::Adapter,
    device: wgpu::Device,
    queue: wgpu::Queue,
    width: u32,
    height: u32,
    bg: [wgpu::Texture; 3],
    bg_group: wgpu::BindGroup,
    background: wgpu::RenderPipeline,
    layer: wgpu::RenderPipeline,
    layer_layout: wgpu::BindGroupLayout,
    target: wgpu::Texture,
    luma: wgpu::ComputePipeline,
    chroma: wgpu::ComputePipeline,
    yuv_groups: [wgpu::BindGroup; 2],
    planes: wgpu::Buffer,
    readback: wgpu::Buffer,
    sampler: wgpu::Sampler,
    /// Layer textures by content key, uploaded once.
    textures: std::collections::HashMap<u64, wgpu::TextureView>,
    /// One uniform buffer per layer slot of a frame, reused.
    uniforms: Vec<wgpu::Buffer>,
    /// Texture uploads so far (cache misses).
    pub uploads: u64,
}

fn texture(
    device: &wgpu::Device,
    w: u32,
    h: u32,
    format: wgpu::TextureFormat,
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
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format,
        usage,
        view_formats: &[],
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

impl GpuCompositor {
    /// Sets up the compositor for `width × height` frames on `api`, `linear` or nearest
    /// sampling.
    ///
    /// # Errors
    /// No adapter, no device, or a width the packing cannot take.
    pub fn new(api: Api, width: u32, height: u32, linear: bool) -> Result<Self, GpuError> {
        if width % 8 != 0 || height % 2 != 0 {
            return Err(GpuError::Width(width));
        }
        let (adapter, info) = gpu::pick(api)?;
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("stream-manager compositor"),
            ..Default::default()
        }))
        .map_err(|e| GpuError::Device(e.to_string()))?;
        let sampled = wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST;
        let r8 = wgpu::TextureFormat::R8Unorm;
        let bg = [
            texture(&device, width, height, r8, sampled),
            texture(&device, width / 2, height / 2, r8, sampled),
            texture(&device, width / 2, height / 2, r8, sampled),
        ];
        let target = texture(
            &device,
            width,
            height,
            TARGET,
            wgpu::TextureUsages::RENDER_ATTACHMENT | wgpu::TextureUsages::TEXTURE_BINDING,
        );
        let module = |src: &str| {
            device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: None,
                source: wgpu::ShaderSource::Wgsl(src.into()),
            })
        };
        let bg_module = module(include_str!("background.wgsl"));
        let layer_module = module(include_str!("layer.wgsl"));
        let yuv_module = module(include_str!("yuv.wgsl"));
        let target_state = |blend: Option<wgpu::BlendState>| {
            [Some(wgpu::ColorTargetState {
                format: TARGET,
                blend,
                write_mask: wgpu::ColorWrites::ALL,
            })]
        };
        let opaque = target_state(None);
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
                multisample: wgpu::MultisampleState::default(),
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
        let background = render(&bg_module, "vs_full", "fs_background", &opaque);
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
        let bytes = u64::from(width) * u64::from(height) * 3 / 2;
        let planes = device.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size: bytes,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let readback = device.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let dims = device.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size: 16,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        queue.write_buffer(
            &dims,
            0,
            &[width, height, 0, 0].map(u32::to_le_bytes).concat(),
        );
        let view = |t: &wgpu::Texture| t.create_view(&wgpu::TextureViewDescriptor::default());
        let bg_views = bg.each_ref().map(view);
        let bg_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &background.get_bind_group_layout(0),
            entries: &[0, 1, 2].map(|i| wgpu::BindGroupEntry {
                binding: i,
                resource: wgpu::BindingResource::TextureView(&bg_views[i as usize]),
            }),
        });
        let target_view = view(&target);
        // Auto layouts belong to their pipeline: one group per compute pipeline.
        let yuv_group = |pipeline: &wgpu::ComputePipeline| {
            device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: None,
                layout: &pipeline.get_bind_group_layout(0),
                entries: &[
                    wgpu::BindGroupEntry {
                        binding: 0,
                        resource: wgpu::BindingResource::TextureView(&target_view),
                    },
                    wgpu::BindGroupEntry {
                        binding: 1,
                        resource: planes.as_entire_binding(),
                    },
                    wgpu::BindGroupEntry {
                        binding: 2,
                        resource: dims.as_entire_binding(),
                    },
                ],
            })
        };
        let yuv_groups = [yuv_group(&luma), yuv_group(&chroma)];
        let filter = if linear {
            wgpu::FilterMode::Linear
        } else {
            wgpu::FilterMode::Nearest
        };
        let sampler = device.create_sampler(&wgpu::SamplerDescriptor {
            mag_filter: filter,
            min_filter: filter,
            ..Default::default()
        });
        Ok(GpuCompositor {
            adapter: info,
            device,
            queue,
            width,
            height,
            bg,
            bg_group,
            background,
            layer_layout: layer.get_bind_group_layout(0),
            layer,
            target,
            luma,
            chroma,
            yuv_groups,
            planes,
            readback,
            sampler,
            textures: std::collections::HashMap::new(),
            uniforms: Vec::new(),
            uploads: 0,
        })
    }

    /// Composes `layers` over the background in `planes` and writes the result back into
    /// `planes` (YUV420P, `width × height`).
    ///
    /// # Errors
    /// The readback failed.
    pub fn compose(
        &mut self,
        planes: &mut Planes<'_>,
        layers: &[GpuLayer<'_>],
    ) -> Result<(), GpuError> {
        let (w, h) = (self.width as usize, self.height as usize);
        upload(&self.queue, &self.bg[0], planes.y, planes.y_stride);
        upload(&self.queue, &self.bg[1], planes.u, planes.u_stride);
        upload(&self.queue, &self.bg[2], planes.v, planes.v_stride);
        // Layer textures come from the cache; each layer slot has its own uniform buffer.
        let mut groups = Vec::with_capacity(layers.len());
        for (i, l) in layers.iter().enumerate() {
            if !self.textures.contains_key(&l.key) {
                let tex = texture(
                    &self.device,
                    l.width,
                    l.height,
                    wgpu::TextureFormat::Rgba8Unorm,
                    wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
                );
                upload(&self.queue, &tex, l.rgba, l.width as usize * 4);
                self.uploads += 1;
                self.textures.insert(
                    l.key,
                    tex.create_view(&wgpu::TextureViewDescriptor::default()),
                );
            }
            if self.uniforms.len() <= i {
                self.uniforms
                    .push(self.device.create_buffer(&wgpu::BufferDescriptor {
                        label: None,
                        size: 32,
                        usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                        mapped_at_creation: false,
                    }));
            }
            let values = [
                l.rect[0],
                l.rect[1],
                l.rect[2],
                l.rect[3],
                self.width as f32,
                self.height as f32,
                f32::from(l.opacity) / 255.0,
                0.0,
            ];
            self.queue
                .write_buffer(&self.uniforms[i], 0, &values.map(f32::to_le_bytes).concat());
            groups.push(self.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: None,
                layout: &self.layer_layout,
                entries: &[
                    wgpu::BindGroupEntry {
                        binding: 0,
                        resource: self.uniforms[i].as_entire_binding(),
                    },
                    wgpu::BindGroupEntry {
                        binding: 1,
                        resource: wgpu::BindingResource::TextureView(&self.textures[&l.key]),
                    },
                    wgpu::BindGroupEntry {
                        binding: 2,
                        resource: wgpu::BindingResource::Sampler(&self.sampler),
                    },
                ],
            }));
        }
        let mut enc = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor::default());
        {
            let view = self
                .target
                .create_view(&wgpu::TextureViewDescriptor::default());
            let mut pass = enc.begin_render_pass(&wgpu::RenderPassDescriptor {
                label: None,
                color_attachments: &[Some(wgpu::RenderPassColorAttachment {
                    view: &view,
                    depth_slice: None,
                    resolve_target: None,
                    ops: wgpu::Operations {
                        load: wgpu::LoadOp::Clear(wgpu::Color::BLACK),
                        store: wgpu::StoreOp::Store,
                    },
                })],
                depth_stencil_attachment: None,
                timestamp_writes: None,
                occlusion_query_set: None,
                multiview_mask: None,
            });
            pass.set_pipeline(&self.background);
            pass.set_bind_group(0, &self.bg_group, &[]);
            pass.draw(0..3, 0..1);
            pass.set_pipeline(&self.layer);
            for g in &groups {
                pass.set_bind_group(0, g, &[]);
                pass.draw(0..6, 0..1);
            }
        }
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
            pass.set_pipeline(&self.luma);
            pass.set_bind_group(0, &self.yuv_groups[0], &[]);
            pass.dispatch_workgroups(((w * h / 4) as u32).div_ceil(64), 1, 1);
            pass.set_pipeline(&self.chroma);
            pass.set_bind_group(0, &self.yuv_groups[1], &[]);
            pass.dispatch_workgroups(((w * h / 16) as u32).div_ceil(64), 1, 1);
        }
        let bytes = (w * h * 3 / 2) as u64;
        enc.copy_buffer_to_buffer(&self.planes, 0, &self.readback, 0, bytes);
        self.queue.submit([enc.finish()]);
        let slice = self.readback.slice(..);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.device
            .poll(wgpu::PollType::Wait {
                submission_index: None,
                timeout: None,
            })
            .map_err(|e| GpuError::Readback(e.to_string()))?;
        rx.recv()
            .map_err(|e| GpuError::Readback(e.to_string()))?
            .map_err(|e| GpuError::Readback(e.to_string()))?;
        {
            let data = slice
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
        self.readback.unmap();
        Ok(())
    }
}
