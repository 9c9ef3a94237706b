//! The GPU renderer on wgpu, headless. CI installs Mesa's software drivers (lavapipe for
//! Vulkan, llvmpipe for GL), so "no adapter" is a failure here, never a skip.

use streamer::config::{FilterMode, OptimizeFor, RenderBackend, StreamConfig, TextureQuality};
use streamer::core::Core;
use streamer::probe::NoProbe;
use streamer::render::gpu::{Api, adapters, pick};
use streamer::render::gpu_compose::{GpuLayer, GpuRenderer, Settings};
use streamer::source::{RawPicture, Scene};

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

/// Frame `id` of `cfg`'s stream: the scene's background with the core's layers over it.
fn frame(cfg: &StreamConfig, core: &mut Core, id: u64) -> RawPicture {
    let v = &cfg.core.viewport;
    let mut pic = RawPicture::new(v.width, v.height);
    Scene::new(v.width, v.height).draw(id, pic.planes());
    core.render(id, &mut pic.planes(), &NoProbe)
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
            let mut cpu = Core::new(&cpu_cfg).expect("cpu core");
            let mut gpu = Core::new(&gpu_cfg).unwrap_or_else(|e| panic!("{api:?}: {e}"));
            assert_eq!((cpu.backend(), gpu.backend()), ("cpu", "gpu"));
            for id in [0, 45] {
                let a = frame(&cpu_cfg, &mut cpu, id);
                let b = frame(&gpu_cfg, &mut gpu, id);
                let (wy, wc) = worst(&a, &b, w, h);
                let adapter = gpu.render_metrics().adapter.unwrap();
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
    let mut one = Core::new(&cfg).expect("gpu core");
    let mut round = Core::new(&cfg).expect("gpu core");
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
    round.render_round(&mut frames, &NoProbe).expect("round");
    drop(frames);
    assert_eq!(round.last_round_order(), [4, 1, 2, 3]);
    for (a, b) in singles.iter().zip(&pics) {
        assert!(a.data == b.data, "a frame of the round differs");
    }
    let m = round.render_metrics();
    assert_eq!((m.frames, m.max_concurrent), (4, 4));
    assert!(m.draw_calls == 1.0 && m.triangle_count == 6.0, "{m:?}");
}

/// `auto` with only a software adapter (lavapipe, llvmpipe: what CI has) runs on the CPU and
/// says why; `gpu` with an API that has no adapter is an error naming what it looked for.
#[test]
fn auto_passes_software_adapters_by_and_says_why() {
    let cfg = config(RenderBackend::Auto, Api::Vulkan);
    let core = Core::new(&cfg).expect("core");
    let (_, adapter) = pick(Api::Vulkan).expect("adapter");
    let m = core.render_metrics();
    if adapter.device_type == "cpu" {
        assert_eq!(m.backend, "cpu");
        assert!(m.fallback.unwrap().contains("software adapter"));
    } else {
        assert_eq!(m.backend, "gpu");
    }
}

/// A texture cache too small for one frame's textures is an error that names the setting; a
/// lower texture quality makes them fit, and every frame after the first hits the cache.
#[test]
fn the_texture_cache_bound_holds_and_a_frame_that_cannot_fit_says_so() {
    let mut cfg = config(RenderBackend::Gpu, Api::Vulkan);
    cfg.renderer.memory.texture_cache = 1;
    let mut core = Core::new(&cfg).expect("gpu core");
    let v = &cfg.core.viewport;
    let mut pic = RawPicture::new(v.width, v.height);
    let err = core
        .render(0, &mut pic.planes(), &NoProbe)
        .expect_err("three badges (1.3 MB) do not fit 1 MB");
    let msg = err.to_string();
    assert!(
        msg.contains("textureCache") && msg.contains("1..=65536"),
        "{msg}"
    );

    cfg.renderer.quality.texture_quality = TextureQuality::Low;
    let mut core = Core::new(&cfg).expect("gpu core");
    for id in 0..10 {
        frame(&cfg, &mut core, id);
    }
    let m = core.render_metrics();
    assert!(m.cache_hit_rate >= 90.0, "{m:?}");
    assert_eq!(m.texture_evictions, 0);
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
