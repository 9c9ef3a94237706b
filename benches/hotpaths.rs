//! Wall time of the stream's CPU hot paths, one criterion group each: an HDR histogram record,
//! a frame queue push + pop, the CPU compositor per layer count (720p), packing an H.264 frame
//! into an FLV video tag, chunking it into RTMP chunks (128 and 4096 bytes), and one 720p frame
//! through x264 at ultrafast. `benches/instructions.rs` counts the instructions of the same
//! paths (x264 aside) for the CI gate.
//!
//! `cargo bench -p benches --bench hotpaths`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ffmpeg_next as ff;
use std::hint::black_box;
use streamer::config::{DropPolicy, StreamConfig};
use streamer::probe::NoProbe;

fn hdr(c: &mut Criterion) {
    let mut h = harness::record::new_histogram();
    let mut v = 1_000u64;
    c.bench_function("hdr/record", |b| {
        b.iter(|| {
            v = v
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            h.saturating_record(black_box(1_000 + (v >> 44)));
        })
    });
}

fn queue(c: &mut Criterion) {
    let q = streamer::pipeline::queue::FrameQueue::new(30, DropPolicy::Oldest);
    c.bench_function("queue/push+pop", |b| {
        b.iter(|| {
            q.push(black_box(7u64));
            black_box(q.pop())
        })
    });
}

fn compose(c: &mut Criterion) {
    let mut g = c.benchmark_group("compose/720p");
    for layers in [1u32, 8, 32] {
        let mut bench = benches::Compose::new(1280, 720, layers);
        g.throughput(Throughput::Elements(1));
        g.bench_function(format!("{layers} layers"), |b| b.iter(|| bench.frame()));
    }
    g.finish();
}

fn flv_and_rtmp(c: &mut Criterion) {
    let frame = benches::h264_like_frame(10_000);
    let mut tag = Vec::with_capacity(frame.len() + 16);
    let mut g = c.benchmark_group("rtmp");
    g.throughput(Throughput::Bytes(frame.len() as u64));
    g.bench_function("flv tag/10 KB", |b| {
        b.iter(|| {
            tag.clear();
            streamer::rtmp::flv::frame_tag(false, 0, black_box(&frame), &mut tag);
        })
    });
    for chunk in [128u32, 4096] {
        let mut s = benches::Chunker::new(chunk);
        g.bench_function(format!("chunk/10 KB at {chunk}"), |b| {
            b.iter(|| black_box(s.chunk(&tag)))
        });
    }
    g.finish();
}

fn x264(c: &mut Criterion) {
    let mut cfg = StreamConfig::default();
    cfg.encoder.pipeline.threads = 1;
    let mut enc = streamer::encode::Encoder::open(&streamer::encode::Settings::of(&cfg), false)
        .expect("x264 opens");
    let (w, h) = (1280, 720);
    let scene = streamer::source::Scene::new(w, h);
    let mut frame = ff::frame::Video::new(ff::format::Pixel::YUV420P, w, h);
    let mut id = 0u64;
    c.bench_function("x264/720p ultrafast frame", |b| {
        b.iter(|| {
            id += 1;
            scene.draw(id, streamer::encode::frame_planes(&mut frame));
            enc.encode_frame(id, &mut frame, true, &NoProbe, |p| {
                black_box(p.data().len());
            })
            .expect("encode");
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2));
    targets = hdr, queue, compose, flv_and_rtmp, x264
}
criterion_main!(benches);
