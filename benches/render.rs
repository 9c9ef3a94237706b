//! The render stage, CPU compositor vs GPU renderer (wgpu; lavapipe where there is no GPU),
//! side by side in one run: the same synthetic background and 8 layers at 720p and 1080p; on
//! the GPU one frame at a time and 4 in flight (`maxConcurrent`). Each iteration restores the
//! background into the frame and renders over it, so the GPU's time includes the upload and
//! readback of the tiles the layers cover. After each benchmark a line gives the renderer's own
//! RenderMetrics (fps = 1000 ÷ frameTime, without the background restore) and the bytes that
//! went to the GPU and back per frame.
//!
//! Then, for the same bytes, the GPU's floor: writing them to the GPU, one copy there and
//! reading them back, with no shader at all — what any GPU frame costs at least on this adapter
//! before a single pixel is composed; and the same with one trivial compute pass over those
//! bytes in between (each word incremented in place, one invocation a word): the least any
//! shader that touches every covered pixel once adds to it.
//!
//! `cargo bench -p benches --bench render`; `WGPU_BACKEND=gl` for the GL backend.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use streamer::config::{RenderBackend, StreamConfig};
use streamer::core::Core;
use streamer::frame::RawPicture;
use streamer::probe::NoProbe;
use streamer::render::{
    self,
    gpu::{Api, pick},
};
use streamer::source::Scene;

fn config(w: u32, h: u32, backend: RenderBackend, in_flight: u32) -> StreamConfig {
    let mut cfg = StreamConfig::default();
    cfg.core.viewport.width = w;
    cfg.core.viewport.height = h;
    cfg.core.layout.layers = 8;
    cfg.core.composition.thread_pool = 1;
    cfg.renderer.backend = backend;
    cfg.renderer.performance.max_concurrent = in_flight;
    cfg
}

fn render(c: &mut Criterion) {
    let mut group = c.benchmark_group("render");
    group.throughput(Throughput::Elements(1));
    for (w, h, name) in [(1280u32, 720u32, "720p"), (1920, 1080, "1080p")] {
        let scene = Scene::new(w, h);
        let mut background = RawPicture::new(w, h);
        scene.draw(3, background.planes());
        for (backend, in_flight) in [
            (RenderBackend::Cpu, 1),
            (RenderBackend::Gpu, 1),
            (RenderBackend::Gpu, 4),
        ] {
            let cfg = config(w, h, backend, in_flight);
            let mut core = Core::new(&cfg.core).expect("the core");
            let mut renderer = render::open(&cfg).expect("a GPU adapter");
            if let Some(a) = renderer.metrics().adapter {
                eprintln!("render/{backend}: {a}");
            }
            let mut frames: Vec<RawPicture> =
                (0..in_flight).map(|_| RawPicture::new(w, h)).collect();
            let mut id = 0u64;
            let label = format!("{backend}/{in_flight} in flight/8 layers/{name}");
            group.throughput(Throughput::Elements(u64::from(in_flight)));
            group.bench_function(&label, |b| {
                b.iter(|| {
                    for f in &mut frames {
                        f.data.copy_from_slice(&background.data);
                    }
                    let mut round: Vec<_> = frames
                        .iter_mut()
                        .map(|f| {
                            id += 1;
                            (id, f.planes())
                        })
                        .collect();
                    renderer
                        .render_round(&mut core, &mut round, &NoProbe)
                        .expect("render");
                })
            });
            let m = renderer.metrics();
            if m.frames == 0 {
                continue;
            }
            if backend == RenderBackend::Gpu && in_flight == 1 {
                round_trip(&mut group, name, m.transfer_bytes as u64);
            }
            eprintln!(
                "{label}: RenderMetrics fps {:.0} (drawTime {:.3} ms, postProcessTime {:.3} ms), \
                 {:.0} KiB to the GPU and back a frame",
                m.fps,
                m.draw_time,
                m.post_process_time,
                m.transfer_bytes / 1024.0
            );
        }
    }
    group.finish();
}

/// Writes `bytes` to the GPU, copies them once there and reads them back, each iteration; then
/// the same with a trivial compute pass over the bytes before the copy.
fn round_trip(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    bytes: u64,
) {
    let bytes = bytes.div_ceil(4) * 4;
    let (adapter, _) = pick(Api::Auto).expect("a GPU adapter");
    let (device, queue) =
        pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor::default()))
            .expect("a device");
    let buffer = |usage| {
        device.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size: bytes,
            usage,
            mapped_at_creation: false,
        })
    };
    let on_gpu = buffer(
        wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::STORAGE,
    );
    let readback = buffer(wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::MAP_READ);
    let host = vec![7u8; bytes as usize];
    let mut back = vec![0u8; bytes as usize];
    let words = (bytes / 4) as u32;
    let shader = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some("trivial pass"),
        source: wgpu::ShaderSource::Wgsl(
            "@group(0) @binding(0) var<storage, read_write> data: array<u32>;
             @compute @workgroup_size(64)
             fn main(@builtin(global_invocation_id) id: vec3<u32>) {
                 if (id.x < arrayLength(&data)) { data[id.x] = data[id.x] + 1u; }
             }"
            .into(),
        ),
    });
    let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some("trivial pass"),
        layout: None,
        module: &shader,
        entry_point: Some("main"),
        compilation_options: Default::default(),
        cache: None,
    });
    let bind = device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: None,
        layout: &pipeline.get_bind_group_layout(0),
        entries: &[wgpu::BindGroupEntry {
            binding: 0,
            resource: on_gpu.as_entire_binding(),
        }],
    });
    group.throughput(Throughput::Elements(1));
    for pass in [false, true] {
        let label = if pass {
            "gpu round trip + one trivial pass"
        } else {
            "gpu round trip only"
        };
        group.bench_function(format!("{label}/{} KiB/{name}", bytes / 1024), |b| {
            b.iter(|| {
                queue.write_buffer(&on_gpu, 0, &host);
                let mut enc = device.create_command_encoder(&Default::default());
                if pass {
                    let mut cp = enc.begin_compute_pass(&Default::default());
                    cp.set_pipeline(&pipeline);
                    cp.set_bind_group(0, &bind, &[]);
                    cp.dispatch_workgroups(words.div_ceil(64), 1, 1);
                }
                enc.copy_buffer_to_buffer(&on_gpu, 0, &readback, 0, bytes);
                queue.submit([enc.finish()]);
                readback
                    .slice(..)
                    .map_async(wgpu::MapMode::Read, |r| r.expect("map"));
                device
                    .poll(wgpu::PollType::wait_indefinitely())
                    .expect("poll");
                back.copy_from_slice(&readback.slice(..).get_mapped_range().expect("mapped"));
                readback.unmap();
            })
        });
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2));
    targets = render
}
criterion_main!(benches);
