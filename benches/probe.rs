//! What a monitoring-point mark costs: the recorder (timestamp, ring slot, histogram record)
//! against the no-op probe. Goal: ≤ 50 ns a mark, so ≤ 100 ns for a start+end pair.
//!
//! `cargo bench -p benches --bench probe`

use criterion::{Criterion, criterion_group, criterion_main};
use harness::record::Recorder;
use std::hint::black_box;
use streamer::probe::{NoProbe, Point, Probe};

fn marks(c: &mut Criterion) {
    let mut g = c.benchmark_group("mark");
    let recorder = Recorder::new();
    let mut frame = 0u64;
    g.bench_function("recorder/start", |b| {
        b.iter(|| {
            frame += 1;
            recorder.mark(black_box(Point::EncodeStart), black_box(frame));
        })
    });
    g.bench_function("recorder/start+end pair", |b| {
        b.iter(|| {
            frame += 1;
            recorder.mark(black_box(Point::EncodeStart), black_box(frame));
            recorder.mark(black_box(Point::EncodeEnd), black_box(frame));
        })
    });
    g.bench_function("noop/start+end pair", |b| {
        b.iter(|| {
            frame += 1;
            NoProbe.mark(black_box(Point::EncodeStart), black_box(frame));
            NoProbe.mark(black_box(Point::EncodeEnd), black_box(frame));
        })
    });
    g.finish();
}

criterion_group!(benches, marks);
criterion_main!(benches);
