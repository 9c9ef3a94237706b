//! Instruction counts (gungraun, the maintained successor of iai-callgrind, under valgrind's
//! callgrind) of the stream's CPU hot paths — the same as `hotpaths.rs` without x264, plus the
//! server's fan-out of a frame to 100 players, the encoder wrapper's work around x264 and the
//! workers' raw/jpeg conversions. Counts repeat exactly from run to run, so `cargo xtask gate`
//! holds them to a tight tolerance against this processor's entry in
//! `results/baselines/instructions.json` (another processor's, the nearest, at a wider one
//! where this one has none). Set-ups (the bench attribute's argument) are not counted.
//!
//! `cargo bench -p benches --bench instructions` (needs valgrind and `gungraun-runner` of the
//! same version as the crate; `cargo xtask gate` installs it).

use gungraun::{library_benchmark, library_benchmark_group, main};
use harness::record::Recorder;
use std::hint::black_box;
use streamer::config::{DropPolicy, FrameFormat};
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

// The server: one 10 KB frame handed to 100 players' queues and chunked once for them all,
// at the default chunk size (60000: one chunk) and at 4096.
#[library_benchmark]
#[bench::players_100(benches::FanOutFrame::new(100, 10_000, 60_000))]
#[bench::players_100_chunk_4096(benches::FanOutFrame::new(100, 10_000, 4096))]
fn server_fanout(mut f: benches::FanOutFrame) -> usize {
    f.frame()
}

// The encoder wrapper's per-frame work outside libx264 at 720p: zero copy and the copying
// path (`zeroCopy = false`).
#[library_benchmark]
#[bench::zero_copy_720p(benches::EncoderWrapper::new(1280, 720, false))]
#[bench::copy_720p(benches::EncoderWrapper::new(1280, 720, true))]
fn encoder_wrapper(mut w: benches::EncoderWrapper) -> usize {
    w.frame()
}

// A pipeline worker's conversion of one 320×180 frame (jpeg through FFmpeg's mjpeg encoder).
#[library_benchmark]
#[bench::raw_320x180(benches::FormatStage::new(FrameFormat::Raw, 320, 180))]
#[bench::jpeg_320x180(benches::FormatStage::new(FrameFormat::Jpeg, 320, 180))]
fn worker_convert(mut s: benches::FormatStage) -> usize {
    s.convert()
}

// The encoder's input stage reading a jpeg frame back (FFmpeg's mjpeg decoder).
#[library_benchmark]
#[bench::jpeg_320x180(benches::FormatStage::new(FrameFormat::Jpeg, 320, 180))]
fn format_ingest(mut s: benches::FormatStage) -> usize {
    s.ingest()
}

library_benchmark_group!(
    name = hot_paths;
    benchmarks = mark, hdr_record, queue, compose_720p, flv_tag, rtmp_chunk, server_fanout,
        encoder_wrapper, worker_convert, format_ingest
);

main!(library_benchmark_groups = hot_paths);
