//! Instruction counts (gungraun, the maintained successor of iai-callgrind, under valgrind's
//! callgrind) of the stream's CPU hot paths — the same as `hotpaths.rs` without x264. Counts
//! repeat exactly from run to run, so `cargo xtask gate` holds them to a tight tolerance
//! against `results/baselines/instructions.json`. Set-ups (the bench attribute's argument) are
//! not counted.
//!
//! `cargo bench -p benches --bench instructions` (needs valgrind and `gungraun-runner` of the
//! same version as the crate; `cargo xtask gate` installs it).

use gungraun::{library_benchmark, library_benchmark_group, main};
use harness::record::Recorder;
use std::hint::black_box;
use streamer::config::DropPolicy;
use streamer::pipeline::queue::FrameQueue;
use streamer::probe::{Point, Probe};

#[library_benchmark]
#[bench::pairs_100(Recorder::new())]
fn mark(recorder: Recorder) -> u64 {
    for f in 0..100 {
        recorder.mark(black_box(Point::EncodeStart), f);
        recorder.mark(black_box(Point::EncodeEnd), f);
    }
    recorder.unmatched()
}

#[library_benchmark]
#[bench::records_100(harness::record::new_histogram())]
fn hdr_record(mut h: hdrhistogram::Histogram<u64>) -> u64 {
    for v in 0..100u64 {
        h.saturating_record(black_box(1_000 + v * 7_919));
    }
    h.len()
}

#[library_benchmark]
#[bench::push_pop_100(FrameQueue::new(30, DropPolicy::Oldest))]
fn queue(q: FrameQueue<u64>) -> u64 {
    let mut sum = 0;
    for i in 0..100 {
        q.push(black_box(i));
        sum += q.pop().map_or(0, |(_, v)| v);
    }
    sum
}

#[library_benchmark]
#[bench::layers_1(benches::Compose::new(1280, 720, 1))]
#[bench::layers_8(benches::Compose::new(1280, 720, 8))]
#[bench::layers_32(benches::Compose::new(1280, 720, 32))]
fn compose_720p(mut c: benches::Compose) -> usize {
    c.frame();
    c.frame_bytes()
}

#[library_benchmark]
#[bench::frame_10kb(benches::h264_like_frame(10_000))]
fn flv_tag(frame: Vec<u8>) -> usize {
    let mut tag = Vec::with_capacity(frame.len() + 16);
    streamer::rtmp::flv::frame_tag(false, 0, black_box(&frame), &mut tag);
    tag.len()
}

#[library_benchmark]
#[bench::chunk_128((benches::Chunker::new(128), benches::h264_like_frame(10_000)))]
#[bench::chunk_4096((benches::Chunker::new(4096), benches::h264_like_frame(10_000)))]
fn rtmp_chunk((mut chunker, tag): (benches::Chunker, Vec<u8>)) -> usize {
    chunker.chunk(black_box(&tag))
}

library_benchmark_group!(
    name = hot_paths;
    benchmarks = mark, hdr_record, queue, compose_720p, flv_tag, rtmp_chunk
);

main!(library_benchmark_groups = hot_paths);
