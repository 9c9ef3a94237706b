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
//! Caches, each least recently used first out (see [`crate::render::arena`]): textures live in one
//! storage buffer of `textureCache` MB at most, keyed by asset; each draw call's instance data
//! lives in one of `geometryCache` MB at most, keyed by its bytes, so a batch of layers that has
//! not moved uploads nothing (and a batch not drawn for 120 frames leaves it); the pipelines are
//! built from the driver's compiled code kept in the shader cache's folder (`shaderCache` MB, see [`crate::render::shaders`]).

mod setup;
mod types;

pub use types::{GpuError, GpuLayer, GpuStats, Settings};

use crate::frame::Planes;
use crate::render::arena::Arena;
use crate::render::gpu;
use crate::render::shaders::ShaderStats;
use crate::render::tiles::{TILE_ENTRY, TILES_HEADER, hash128, plan};
use setup::{ErrorSlot, FrameSet};
use std::sync::mpsc;
use std::time::Instant;
use types::{GEOMETRY_IDLE_FRAMES, INST_BYTES};

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
    errors: ErrorSlot,
    stats: GpuStats,
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
        if s.width % 8 != 0 || s.height % 2 != 0 {
            return Err(GpuError::Size(s.width, s.height));
        }
        let (adapter, info) = gpu::pick(s.api)?;
        let samples = setup::samples(&adapter, &info, s.antialiasing)?;
        let (device, queue, errors) = setup::device(&adapter)?;
        let mut shader_stats = ShaderStats::default();
        let (layer, yuv) = setup::pipelines(
            &adapter,
            &device,
            samples,
            s.shader_cache,
            &mut shader_stats,
        );
        let buffers = setup::buffers(&device, &queue, s);
        let (textures, geometry) = setup::caches(&device, s);
        let targets = setup::targets(&device, s);
        let yuv_group = setup::yuv_group(&device, &yuv, &targets.target, &buffers);
        let sets = setup::frame_sets(&device, buffers.frame_bytes, s.max_concurrent);
        let n = sets.len() as u64;
        let stats = GpuStats {
            setup_ns: started.elapsed().as_nanos() as u64,
            shader_hits: shader_stats.hits,
            shader_misses: shader_stats.misses,
            frame_texture_bytes: targets.bytes,
            // The caches' buffers are added in `stats`.
            gpu_bytes: buffers.frame_bytes * (1 + n) + buffers.tiles_bytes + 32 + targets.bytes,
            ..GpuStats::default()
        };
        Ok(GpuRenderer {
            adapter: info,
            settings: s.clone(),
            msaa: targets.msaa,
            target: targets.target,
            yuv_group,
            device,
            queue,
            layer,
            yuv,
            data: buffers.data,
            tiles: buffers.tiles,
            frame: buffers.frame,
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
        self.instances(layers)?;
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
        self.upload(set_index, planes, bytes)?;
        self.draw_calls(epoch)?;
        self.refresh_layer_group();
        let n = layers.len() as u32;
        let commands = self.record(set_index, n, bytes.get());
        let set = &mut self.sets[set_index];
        set.submission = Some(self.queue.submit([commands]));
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

    /// The frame's instance data into `scratch`, one entry a layer.
    ///
    /// # Errors
    /// A layer's texture is not in the cache, or the data cannot fit the geometry cache.
    fn instances(&mut self, layers: &[GpuLayer]) -> Result<(), GpuError> {
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
        Ok(())
    }

    /// Stages the background of the covered tiles planned on frame set `set` (`bytes` of them)
    /// and their entries.
    ///
    /// # Errors
    /// The queue cannot stage them.
    fn upload(
        &mut self,
        set: usize,
        planes: &Planes<'_>,
        bytes: wgpu::BufferSize,
    ) -> Result<(), GpuError> {
        {
            let mut up = self
                .queue
                .write_buffer_with(&self.data, 0, bytes)
                .ok_or_else(|| GpuError::Device("cannot stage the background's tiles".into()))?;
            let src = [&*planes.y, &*planes.u, &*planes.v];
            let strides = [planes.y_stride, planes.u_stride, planes.v_stride];
            for (p, frame, block, n) in self.sets[set].runs.iter().flat_map(|r| r.segments(strides))
            {
                up.slice(block..block + n)
                    .copy_from_slice(&src[p][frame..frame + n]);
            }
        }
        self.queue.write_buffer(&self.tiles, 0, &self.entries);
        Ok(())
    }

    /// Each draw call's instance data from the geometry cache, uploaded on a miss, into
    /// `batches`; the slots are looked up once all are in (an insert may move the others).
    ///
    /// # Errors
    /// The frame's instance data does not fit the geometry cache.
    fn draw_calls(&mut self, epoch: u64) -> Result<(), GpuError> {
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
        Ok(())
    }

    /// Makes the layers' bind group again if a cache's buffer changed since it was made.
    fn refresh_layer_group(&mut self) {
        let generations = (self.textures.generation(), self.geometry.generation());
        if self
            .layer_group
            .as_ref()
            .is_some_and(|(g, _)| *g == generations)
        {
            return;
        }
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

    /// Records the frame: the `n` layers drawn, the compute pass over the covered tiles, and
    /// the copy of their `bytes` into frame set `set`'s readback.
    fn record(&mut self, set: usize, n: u32, bytes: u64) -> wgpu::CommandBuffer {
        let mut enc = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor::default());
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
        enc.copy_buffer_to_buffer(&self.data, 0, &self.sets[set].readback, 0, bytes);
        enc.finish()
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
