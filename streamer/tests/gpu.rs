//! The GPU renderer on wgpu, headless. CI installs Mesa's software drivers (lavapipe for
//! Vulkan, llvmpipe for GL), so "no adapter" is a failure here, never a skip.

use streamer::config::{FilterMode, OptimizeFor, RenderBackend, StreamConfig, TextureQuality};
use streamer::core::Core;
use streamer::frame::RawPicture;
use streamer::probe::NoProbe;
use streamer::render::arena::{Arena, Full};
use streamer::render::gpu::{Api, adapters, pick};
use streamer::render::gpu_compose::{GpuLayer, GpuRenderer, Settings};
use streamer::render::{Renderer, open};
use streamer::source::Scene;

#[test]
fn an_adapter_is_found_on_vulkan_and_on_gl() {
    for api in [Api::Vulkan, Api::Gl] {
        let (_, picked) = pick(api).unwrap_or_else(|e| panic!("{api:?}: {e}"));
        assert!(!picked.name.is_empty(), "{api:?}: {picked}");
        let listed = adapters(api);
        assert!(
            listed.iter().any(|a| a.name == picked.name),
            "{api:?}: picked {picked}, listed {listed:?}"
        );
        let backend = match api {
            Api::Vulkan => "vulkan",
            _ => "gl",
        };
        assert_eq!(picked.backend, backend, "{api:?}: {picked}");
    }
}

/// A 640×360 stream with three layers of the generated badges (480×270 and 320×180, drawn
/// smaller: every filter mode matters), one static layer so nothing is pre-composed.
fn config(backend: RenderBackend, api: Api) -> StreamConfig {
    let mut cfg = StreamConfig::default();
    cfg.core.viewport.width = 640;
    cfg.core.viewport.height = 360;
    cfg.core.layout.layers = 3;
    cfg.core.composition.thread_pool = 1;
    cfg.core.composition.optimize_for = OptimizeFor::Quality;
    cfg.renderer.backend = backend;
    cfg.renderer.api = api;
    cfg
}

/// The core of `cfg`'s stream and its renderer.
fn stage(cfg: &StreamConfig) -> Result<(Core, Renderer), Box<dyn std::error::Error>> {
    Ok((Core::new(&cfg.core)?, open(cfg)?))
}

/// Frame `id` of `cfg`'s stream: the scene's background with the core's layers over it.
fn frame(cfg: &StreamConfig, (core, renderer): &mut (Core, Renderer), id: u64) -> RawPicture {
    let v = &cfg.core.viewport;
    let mut pic = RawPicture::new(v.width, v.height);
    Scene::new(v.width, v.height).draw(id, pic.planes());
    renderer
        .render(core, id, &mut pic.planes(), &NoProbe)
        .expect("render");
    pic
}

/// The largest difference of the Y plane and of the U/V planes.
fn worst(a: &RawPicture, b: &RawPicture, w: usize, h: usize) -> (u8, u8) {
    let (ay, ac) = a.data.split_at(w * h);
    let (by, bc) = b.data.split_at(w * h);
    let max = |x: &[u8], y: &[u8]| x.iter().zip(y).map(|(p, q)| p.abs_diff(*q)).max().unwrap();
    (max(ay, by), max(ac, bc))
}

/// The same scene through the CPU compositor and the GPU renderer, for each filter mode (and
/// with a lower texture quality, and with MSAA on): every Y, U and V sample within 4/255, on
/// Vulkan and on GL.
#[test]
fn the_gpu_renderer_matches_the_cpu_compositor_for_every_filter_mode() {
    let (w, h) = (640, 360);
    for api in [Api::Vulkan, Api::Gl] {
        let cases = [
            (FilterMode::Nearest, TextureQuality::High, false),
            (FilterMode::Linear, TextureQuality::High, false),
            (FilterMode::Cubic, TextureQuality::High, false),
            (FilterMode::Linear, TextureQuality::Low, false),
            (FilterMode::Cubic, TextureQuality::Medium, false),
            (FilterMode::Linear, TextureQuality::High, true),
            (FilterMode::Cubic, TextureQuality::Medium, true),
        ];
        for (filter, quality, aa) in cases {
            let mut cpu_cfg = config(RenderBackend::Cpu, api);
            cpu_cfg.renderer.quality.filter_mode = filter;
            cpu_cfg.renderer.quality.texture_quality = quality;
            cpu_cfg.renderer.quality.antialiasing = aa;
            let mut gpu_cfg = cpu_cfg.clone();
            gpu_cfg.renderer.backend = RenderBackend::Gpu;
            let mut cpu = stage(&cpu_cfg).expect("cpu core");
            let mut gpu = stage(&gpu_cfg).unwrap_or_else(|e| panic!("{api:?}: {e}"));
            assert_eq!((cpu.1.backend(), gpu.1.backend()), ("cpu", "gpu"));
            for id in [0, 45] {
                let a = frame(&cpu_cfg, &mut cpu, id);
                let b = frame(&gpu_cfg, &mut gpu, id);
                let (wy, wc) = worst(&a, &b, w, h);
                let adapter = gpu.1.metrics().adapter.unwrap();
                eprintln!(
                    "{api:?} {filter} {quality} aa={aa} frame {id} ({adapter}): worst Y {wy}, U/V {wc}"
                );
                assert!(
                    wy <= 4 && wc <= 4,
                    "{api:?} {filter} {quality} aa={aa}: Y {wy}, U/V {wc}"
                );
            }
        }
    }
}

/// A fully transparent layer over the whole frame: every tile travels to the GPU, through its
/// YUV arithmetic and back, and comes out within one step of the background (in fact exactly).
/// With no layers nothing travels and the frame is left as it is.
#[test]
fn the_yuv_round_trip_on_the_gpu_is_within_one_step() {
    let cfg = config(RenderBackend::Gpu, Api::Vulkan);
    let mut gpu = GpuRenderer::new(&Settings::of(&cfg)).expect("gpu renderer");
    gpu.texture(1, || (4, 4, vec![0; 64])).expect("texture");
    let background = || {
        let mut p = RawPicture::new(640, 360);
        Scene::new(640, 360).draw(3, p.planes());
        p
    };
    let bare = background();
    for layers in [
        &[GpuLayer {
            key: 1,
            rect: [0, 0, 640, 360],
            opacity: 255,
        }][..],
        &[],
    ] {
        let mut out = background();
        gpu.compose(&mut out.planes(), layers).expect("compose");
        let (wy, wc) = worst(&bare, &out, 640, 360);
        assert!(
            wy <= 1 && wc <= 1,
            "{} layers: Y {wy}, U/V {wc}",
            layers.len()
        );
    }
}

/// Frames in flight together come out as frames rendered one by one; the round submits the
/// keyframe (a GOP's first frame, top priority) first.
#[test]
fn a_round_in_flight_matches_frames_one_by_one_and_submits_the_keyframe_first() {
    let mut cfg = config(RenderBackend::Gpu, Api::Vulkan);
    cfg.renderer.performance.max_concurrent = 4;
    cfg.encoder.gop = 4;
    let mut one = stage(&cfg).expect("gpu core");
    let (mut core, mut round) = stage(&cfg).expect("gpu core");
    assert_eq!(round.round_size(), 4);
    let singles: Vec<RawPicture> = (1..=4).map(|id| frame(&cfg, &mut one, id)).collect();
    let v = &cfg.core.viewport;
    let scene = Scene::new(v.width, v.height);
    let mut pics: Vec<RawPicture> = (1..=4u64)
        .map(|id| {
            let mut p = RawPicture::new(v.width, v.height);
            scene.draw(id, p.planes());
            p
        })
        .collect();
    let mut frames: Vec<_> = pics
        .iter_mut()
        .zip(1u64..)
        .map(|(p, id)| (id, p.planes()))
        .collect();
    round
        .render_round(&mut core, &mut frames, &NoProbe)
        .expect("round");
    drop(frames);
    assert_eq!(round.last_round_order(), [4, 1, 2, 3]);
    for (a, b) in singles.iter().zip(&pics) {
        assert!(a.data == b.data, "a frame of the round differs");
    }
    let m = round.metrics();
    assert_eq!((m.frames, m.max_concurrent), (4, 4));
    assert!(m.draw_calls == 1.0 && m.triangle_count == 6.0, "{m:?}");
}

/// `auto` with only a software adapter (lavapipe, llvmpipe: what CI has) runs on the CPU and
/// says why (on a machine without a GPU device node, without loading the driver at all);
/// `gpu` with an API that has no adapter is an error naming what it looked for.
#[test]
fn auto_passes_software_adapters_by_and_says_why() {
    let cfg = config(RenderBackend::Auto, Api::Vulkan);
    let (_, renderer) = stage(&cfg).expect("core");
    let (_, adapter) = pick(Api::Vulkan).expect("adapter");
    let m = renderer.metrics();
    if adapter.device_type == "cpu" {
        assert_eq!(m.backend, "cpu");
        let why = m.fallback.unwrap();
        assert!(why.contains("software"), "{why}");
    } else {
        assert_eq!(m.backend, "gpu");
    }
}

/// The bytes of `buffer`'s first `n` bytes.
fn read_back(device: &wgpu::Device, queue: &wgpu::Queue, buffer: &wgpu::Buffer, n: u64) -> Vec<u8> {
    let staging = device.create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: n,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut enc = device.create_command_encoder(&wgpu::CommandEncoderDescriptor::default());
    enc.copy_buffer_to_buffer(buffer, 0, &staging, 0, n);
    queue.submit([enc.finish()]);
    staging
        .slice(..)
        .map_async(wgpu::MapMode::Read, |r| r.expect("map"));
    device
        .poll(wgpu::PollType::wait_indefinitely())
        .expect("poll");
    staging
        .slice(..)
        .get_mapped_range()
        .expect("mapped")
        .to_vec()
}

/// The texture and geometry caches' arena: the least recently used entries of earlier frames
/// make room, the current frame's never do (a frame that cannot fit says what it needs), freed
/// space is reused, and every live entry keeps its bytes through growing and packing.
#[test]
fn the_cache_arena_evicts_the_least_recently_used_and_keeps_live_entries_intact() {
    let (adapter, _) = pick(Api::Vulkan).expect("a Vulkan adapter");
    let (device, queue) =
        pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor::default()))
            .expect("device");
    let data =
        |k: u32, n: usize| -> Vec<u8> { (0..n).map(|i| (k as usize * 37 + i) as u8).collect() };
    let check = |a: &Arena<u32>, live: &[(u32, usize)]| {
        let bytes = read_back(&device, &queue, a.buffer(), a.capacity());
        for &(k, n) in live {
            let s = a.peek(&k).unwrap_or_else(|| panic!("entry {k} is live"));
            assert_eq!(s.meta, [k, 0]);
            let at = s.offset as usize;
            assert_eq!(&bytes[at..at + n], &data(k, n)[..], "entry {k}");
        }
    };
    let mut a: Arena<u32> = Arena::new(&device, 64, 1024);
    // Frames 0–3 each bring an entry of 256 bytes: the arena grows from 64 bytes to its bound.
    for k in 0..4 {
        a.insert(&device, &queue, k, &data(k, 256), [k, 0], u64::from(k))
            .expect("fits");
    }
    assert_eq!(a.capacity(), 1024);
    check(&a, &[(0, 256), (1, 256), (2, 256), (3, 256)]);

    // Frame 4 uses 0 and 2 again and brings 512 bytes: 1 and 3, the least recently used, go.
    // Their holes are not side by side, so the live entries are packed to make room.
    assert!(a.get(&0, 4).is_some() && a.get(&2, 4).is_some());
    a.insert(&device, &queue, 4, &data(4, 512), [4, 0], 4)
        .expect("fits");
    assert!(a.peek(&1).is_none() && a.peek(&3).is_none());
    check(&a, &[(0, 256), (2, 256), (4, 512)]);
    let s = a.stats();
    assert_eq!((s.evictions, s.compactions), (2, 1), "{s:?}");
    assert_eq!((s.hits, s.misses), (2, 0), "{s:?}");

    // Frame 5 frees 0's 256 bytes and reuses them in place.
    let freed = a.peek(&0).expect("live").offset;
    assert!(a.get(&2, 5).is_some() && a.get(&4, 5).is_some());
    let s5 = a
        .insert(&device, &queue, 5, &data(5, 256), [5, 0], 5)
        .expect("fits");
    assert_eq!(s5.offset, freed, "the hole is reused");
    check(&a, &[(2, 256), (4, 512), (5, 256)]);

    // Frame 5's entries are all it holds: one more byte-word of frame 5 cannot fit.
    let err = a
        .insert(&device, &queue, 6, &data(6, 4), [6, 0], 5)
        .expect_err("frame 5 fills the arena");
    assert_eq!(
        err,
        Full {
            need: 1028,
            limit: 1024
        }
    );
    check(&a, &[(2, 256), (4, 512), (5, 256)]);
    // A later frame may evict them.
    a.insert(&device, &queue, 6, &data(6, 4), [6, 0], 6)
        .expect("fits");
    check(&a, &[(4, 512), (5, 256), (6, 4)]);
    // Entries idle since before frame 6 expire.
    a.expire(6);
    assert!(a.peek(&4).is_none() && a.peek(&5).is_none());
    check(&a, &[(6, 4)]);
    assert_eq!((a.used(), a.stats().expired), (4, 2));
}

/// A texture cache too small for one frame's textures is an error that names the setting; a
/// lower texture quality makes them fit, and every frame after the first hits the cache.
#[test]
fn the_texture_cache_bound_holds_and_a_frame_that_cannot_fit_says_so() {
    let mut cfg = config(RenderBackend::Gpu, Api::Vulkan);
    cfg.renderer.memory.texture_cache = 1;
    let (mut core, mut renderer) = stage(&cfg).expect("gpu core");
    let v = &cfg.core.viewport;
    let mut pic = RawPicture::new(v.width, v.height);
    let err = renderer
        .render(&mut core, 0, &mut pic.planes(), &NoProbe)
        .expect_err("three badges (1.3 MB) do not fit 1 MB");
    let msg = err.to_string();
    assert!(
        msg.contains("textureCache") && msg.contains("1..=65536"),
        "{msg}"
    );

    cfg.renderer.quality.texture_quality = TextureQuality::Low;
    let mut core = stage(&cfg).expect("gpu core");
    for id in 0..10 {
        frame(&cfg, &mut core, id);
    }
    let m = core.1.metrics();
    assert!(m.cache_hit_rate >= 90.0, "{m:?}");
    assert_eq!(m.texture_evictions, 0);
}

/// The geometry cache: with one layer per draw call, the draw calls of the static and the
/// swapping layer find their instance data on the GPU in every frame after the first; the
/// moving layer's misses whenever the layout has moved it.
#[test]
fn draw_calls_of_layers_that_did_not_move_upload_no_instance_data() {
    let mut cfg = config(RenderBackend::Gpu, Api::Vulkan);
    cfg.renderer.performance.batch_size = 1;
    let mut core = stage(&cfg).expect("gpu core");
    for id in 0..10 {
        frame(&cfg, &mut core, id);
    }
    let m = core.1.metrics();
    assert_eq!(m.draw_calls, 3.0, "{m:?}");
    assert!(
        (60.0..100.0).contains(&m.geometry_hit_rate),
        "at least 18 of 30 draw calls hit, not all; {m:?}"
    );
}

/// A layer that moves every frame brings new instance data every frame; the geometry cache
/// keeps only what the last 120 frames drew, not everything up to its bound.
#[test]
fn instance_data_not_drawn_for_120_frames_leaves_the_geometry_cache() {
    let cfg = config(RenderBackend::Gpu, Api::Vulkan);
    let mut gpu = GpuRenderer::new(&Settings::of(&cfg)).expect("gpu renderer");
    gpu.texture(1, || (4, 4, vec![255; 64])).expect("texture");
    let mut pic = RawPicture::new(640, 360);
    for x in 0..200 {
        let layer = GpuLayer {
            key: 1,
            rect: [x, 8, 16, 16],
            opacity: 255,
        };
        gpu.compose(&mut pic.planes(), &[layer]).expect("compose");
    }
    let s = gpu.stats();
    assert_eq!((s.geometry_hits, s.geometry_misses), (0, 200), "{s:?}");
    assert_eq!(s.geometry_bytes, 121 * 32, "{s:?}");
}

/// The shader cache: a renderer set up after another on the same adapter builds both of its
/// pipelines from the code the first one left in the cache's folder, on Vulkan; GL has no
/// pipeline cache, so its pipelines are compiled each time and none counts either way.
#[test]
fn a_second_renderer_builds_its_pipelines_from_the_shader_cache() {
    let cfg = config(RenderBackend::Gpu, Api::Vulkan);
    let first = GpuRenderer::new(&Settings::of(&cfg)).expect("renderer");
    drop(first);
    let second = GpuRenderer::new(&Settings::of(&cfg))
        .expect("renderer")
        .stats();
    assert_eq!(
        (second.shader_hits, second.shader_misses),
        (2, 0),
        "{second:?}"
    );

    let cfg = config(RenderBackend::Gpu, Api::Gl);
    let gl = GpuRenderer::new(&Settings::of(&cfg))
        .expect("renderer")
        .stats();
    assert_eq!((gl.shader_hits, gl.shader_misses), (0, 0), "{gl:?}");
}

/// `renderer.backend = gpu` where wgpu finds no adapter: a clear error naming what it looked
/// for, and nothing streamed.
#[test]
fn gpu_with_no_adapter_is_an_error_naming_what_was_looked_for() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_stream-manager"))
        .args(["run", "--output", "null", "--frames", "5"])
        .args(["--set", "renderer.backend=gpu"])
        .env("WGPU_BACKEND", "dx12")
        .output()
        .expect("stream-manager runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("no GPU adapter") && stderr.contains("DX12"),
        "{stderr}"
    );
}
