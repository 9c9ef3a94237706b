//! wgpu finds an adapter headlessly on Vulkan and on GL. CI installs Mesa's software drivers
//! (lavapipe, llvmpipe), so "no adapter" is a failure here, never a skip.

use streamer::render::gpu::{Api, adapters, pick};

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

use std::time::Duration;
use streamer::config::{CompositionConfig, LayoutConfig, OptimizeFor, ViewportConfig};
use streamer::core::assets::{AssetCache, AssetSource};
use streamer::core::compose::{Compositor, scale};
use streamer::core::layout::Layout;
use streamer::core::viewport::Viewport;
use streamer::probe::NoProbe;
use streamer::render::gpu_compose::{GpuCompositor, layout_layers};
use streamer::source::{Planes, RawPicture, Scene};

fn planes(p: &mut RawPicture) -> Planes<'_> {
    p.planes()
}

/// The same scene (synthetic background, three layers) through the CPU compositor and the GPU
/// one: every Y, U and V sample within 4 steps of 255.
#[test]
fn the_gpu_compositor_matches_the_cpu_compositor() {
    let (w, h) = (320u32, 184u32);
    let vcfg = ViewportConfig {
        width: w,
        height: h,
        grid_size: 2,
        ..ViewportConfig::default()
    };
    let viewport = Viewport::new(&vcfg);
    let sources: Vec<AssetSource> = (0..3)
        .map(|kind| AssetSource::Generated {
            kind,
            width: 96,
            height: 54,
        })
        .collect();
    let mut assets = AssetCache::new(sources.clone(), 1 << 30, Duration::from_secs(60));
    let lcfg = LayoutConfig {
        layers: 3,
        ..LayoutConfig::default()
    };
    let mut layout = Layout::new(&lcfg, &viewport, 3);
    layout.update(1500, 0, &viewport, &NoProbe);
    let scene = Scene::new(w, h);
    let mut cpu = RawPicture::new(w, h);
    scene.draw(7, planes(&mut cpu));
    let mut gpu_pic = RawPicture::new(w, h);
    scene.draw(7, planes(&mut gpu_pic));
    let ccfg = CompositionConfig {
        thread_pool: 1,
        optimize_for: OptimizeFor::Quality,
        ..CompositionConfig::default()
    };
    // One static layer: two would be pre-composed into a group, which rounds differently.
    let mut c = Compositor::new(&ccfg).unwrap();
    c.compose(
        &mut planes(&mut cpu),
        (w, h),
        &layout,
        &mut assets,
        0,
        &NoProbe,
    )
    .unwrap();
    let images: Vec<_> = layout
        .layers()
        .iter()
        .map(|l| {
            let img = sources[l.asset].load().unwrap();
            scale(&img, l.rect.w, l.rect.h, OptimizeFor::Quality)
        })
        .collect();
    let layers = layout_layers(&layout, &images);
    for api in [
        streamer::render::gpu::Api::Vulkan,
        streamer::render::gpu::Api::Gl,
    ] {
        let mut g = GpuCompositor::new(api, w, h, false).unwrap();
        // The background alone: YUV → RGB → YUV on the GPU.
        let mut bare = RawPicture::new(w, h);
        bare.data.copy_from_slice(&gpu_pic.data);
        g.compose(&mut planes(&mut bare), &[]).unwrap();
        let diff = bare
            .data
            .iter()
            .zip(&gpu_pic.data)
            .map(|(x, y)| x.abs_diff(*y))
            .max();
        eprintln!("{api:?}: background round trip worst {diff:?}");
        let mut out = RawPicture::new(w, h);
        out.data.copy_from_slice(&gpu_pic.data);
        g.compose(&mut planes(&mut out), &layers).unwrap();
        let (luma, chroma) = out.data.split_at(w as usize * h as usize);
        let (cl, cc) = cpu.data.split_at(w as usize * h as usize);
        let worst = |a: &[u8], b: &[u8]| a.iter().zip(b).map(|(x, y)| x.abs_diff(*y)).max();
        let (wy, wc) = (worst(luma, cl), worst(chroma, cc));
        eprintln!("{api:?} ({}): worst Y {wy:?}, worst U/V {wc:?}", g.adapter);
        assert!(wy <= Some(4), "{api:?}: Y differs by {wy:?}");
        assert!(wc <= Some(4), "{api:?}: U/V differ by {wc:?}");
    }
}
