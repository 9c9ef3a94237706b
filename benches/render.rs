//! The render stage, CPU compositor vs GPU compositor (wgpu; lavapipe where there is no GPU),
//! side by side in one run: the same synthetic background and 8 layers at 720p (and 1080p),
//! GPU time including upload and readback of the frame.
//!
//! `cargo bench -p benches --bench render`; `WGPU_BACKEND=gl` for the GL backend.

use criterion::{Criterion, criterion_group, criterion_main};
use std::time::Duration;
use streamer::config::{CompositionConfig, LayoutConfig, OptimizeFor, ViewportConfig};
use streamer::core::assets::AssetCache;
use streamer::core::compose::{Compositor, scale};
use streamer::core::generated_assets;
use streamer::core::layout::Layout;
use streamer::core::viewport::Viewport;
use streamer::probe::NoProbe;
use streamer::render::gpu::Api;
use streamer::render::gpu_compose::{GpuCompositor, layout_layers};
use streamer::source::{RawPicture, Scene};

fn compose(c: &mut Criterion) {
    for (w, h, name) in [(1280u32, 720u32, "720p"), (1920, 1080, "1080p")] {
        let vcfg = ViewportConfig {
            width: w,
            height: h,
            ..ViewportConfig::default()
        };
        let viewport = Viewport::new(&vcfg);
        let sources = generated_assets();
        let lcfg = LayoutConfig {
            layers: 8,
            ..LayoutConfig::default()
        };
        let mut layout = Layout::new(&lcfg, &viewport, sources.len());
        layout.update(1500, 0, &viewport, &NoProbe);
        let scene = Scene::new(w, h);
        let mut background = RawPicture::new(w, h);
        scene.draw(3, background.planes());
        let mut frame = RawPicture::new(w, h);

        let ccfg = CompositionConfig {
            thread_pool: 1,
            ..CompositionConfig::default()
        };
        let mut cpu = Compositor::new(&ccfg).expect("compositor");
        let mut assets = AssetCache::new(sources.clone(), 1 << 30, Duration::from_secs(3600));
        c.bench_function(&format!("render/cpu/8 layers/{name}"), |b| {
            b.iter(|| {
                frame.data.copy_from_slice(&background.data);
                cpu.compose(
                    &mut frame.planes(),
                    (w, h),
                    &layout,
                    &mut assets,
                    0,
                    &NoProbe,
                )
                .expect("compose");
            })
        });

        let images: Vec<Vec<u8>> = layout
            .layers()
            .iter()
            .map(|l| {
                let img = sources[l.asset].load().expect("asset");
                scale(&img, l.rect.w, l.rect.h, OptimizeFor::Speed)
            })
            .collect();
        let layers = layout_layers(&layout, &images);
        let mut gpu = GpuCompositor::new(Api::Auto, w, h, false).expect("a GPU adapter");
        let label = format!("render/gpu/8 layers/{name}");
        eprintln!("{label}: {}", gpu.adapter);
        c.bench_function(&label, |b| {
            b.iter(|| {
                frame.data.copy_from_slice(&background.data);
                gpu.compose(&mut frame.planes(), &layers).expect("compose");
            })
        });
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(4)).sample_size(20);
    targets = compose
}
criterion_main!(benches);
