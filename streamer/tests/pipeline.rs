//! The frame pipeline end to end: zero allocations per frame in steady state (counted by a
//! counting global allocator), and every frame accounted for under overload, per drop policy.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use streamer::config::{DropPolicy, FrameFormat, Preset, StreamConfig};
use streamer::output::Output;
use streamer::probe::NoProbe;
use streamer::stream::{Pacing, Stream};

/// Counts heap allocations (and reallocations) while switched on.
struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: forwarded.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: forwarded.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn small() -> StreamConfig {
    let mut cfg = StreamConfig::default();
    cfg.core.viewport.width = 320;
    cfg.core.viewport.height = 180;
    cfg.encoder.preset = Preset::Ultrafast;
    cfg.encoder.pipeline.threads = 1;
    cfg
}

/// Allocations made while `frames` frames go through `stream`.
fn allocations_over(stream: &mut Stream<'_, NoProbe>, frames: u64) -> u64 {
    ALLOCATIONS.store(0, Ordering::SeqCst);
    COUNTING.store(true, Ordering::SeqCst);
    stream.run(frames, Pacing::Max).unwrap();
    COUNTING.store(false, Ordering::SeqCst);
    ALLOCATIONS.load(Ordering::SeqCst)
}

/// One test for both pools: the counter is process-wide, so the two runs must not overlap.
#[test]
fn the_frame_path_allocates_nothing_per_frame_with_the_buffer_pool() {
    let cfg = small();
    let mut stream = Stream::open(&cfg, &Output::Null, &NoProbe).unwrap();
    stream.run(60, Pacing::Max).unwrap();
    // A run starts its threads and queue (a fixed cost); frames must add nothing on top.
    let short = allocations_over(&mut stream, 40);
    let long = allocations_over(&mut stream, 240);
    assert!(
        long <= short + 2,
        "{short} allocations over 40 frames, {long} over 240: the frame path allocates"
    );
    let summary = stream.finish().unwrap();
    assert_eq!(summary.counters.dropped, 0);
    // Slots are made on first need, never more than the queue, workers and reorder window hold.
    let pool = summary.pipeline.pool;
    assert!(pool.misses <= 30 + 3 * 4 + 2, "{pool:?}");
    assert_eq!(pool.hits + pool.misses, 340, "{pool:?}");

    // Without the pool every frame gets a fresh picture. FFmpeg allocates frame buffers with
    // its own allocator, which this counter does not see: the pool's miss count does.
    let mut cfg = small();
    cfg.pipeline.buffer_pool = false;
    let mut stream = Stream::open(&cfg, &Output::Null, &NoProbe).unwrap();
    stream.run(100, Pacing::Max).unwrap();
    let summary = stream.finish().unwrap();
    assert_eq!(
        summary.pipeline.pool.misses, 100,
        "{:?}",
        summary.pipeline.pool
    );
    assert_eq!(summary.pipeline.pool.hits, 0);
}

/// A realtime stream whose encoder cannot keep up (medium preset, 720p, one thread, one
/// worker): every frame the renderer made is either sent or dropped under a named reason.
fn overload(policy: DropPolicy, format: FrameFormat) -> (u64, streamer::pipeline::Drops, u64) {
    let mut cfg = StreamConfig::default();
    cfg.encoder.preset = Preset::Medium;
    cfg.encoder.pipeline.threads = 1;
    cfg.core.viewport.fps = 120;
    cfg.pipeline.pool_size = 1;
    cfg.pipeline.max_queue_size = 4;
    cfg.pipeline.drop_policy = policy;
    cfg.pipeline.format = format;
    cfg.encoder.zerolatency = true;
    let mut stream = Stream::open(&cfg, &Output::Null, &NoProbe).unwrap();
    let slots = 240;
    stream.run(slots, Pacing::Realtime).unwrap();
    let summary = stream.finish().unwrap();
    let drops = summary.pipeline.drops;
    assert_eq!(
        summary.counters.packets + drops.total(),
        slots,
        "{policy:?}: {} sent + {drops:?} must be every slot",
        summary.counters.packets
    );
    (summary.counters.packets, drops, slots)
}

#[test]
fn each_drop_policy_drops_what_it_says_and_counts_every_frame() {
    let (_, oldest, _) = overload(DropPolicy::Oldest, FrameFormat::Raw);
    assert!(
        oldest.queue_full > 0,
        "drop-oldest under overload: {oldest:?}"
    );
    let (_, newest, _) = overload(DropPolicy::Newest, FrameFormat::Raw);
    assert!(
        newest.queue_full > 0,
        "drop-newest under overload: {newest:?}"
    );
    // Blocking never drops in the queue; the renderer falls behind instead, and that is counted.
    let (_, block, _) = overload(DropPolicy::Block, FrameFormat::Raw);
    assert_eq!(block.queue_full, 0, "{block:?}");
    assert!(block.behind + block.stale + block.late > 0, "{block:?}");
}

#[test]
fn jpeg_and_png_frames_reach_the_encoder() {
    for format in [FrameFormat::Jpeg, FrameFormat::Png] {
        let mut cfg = small();
        cfg.pipeline.format = format;
        let mut stream = Stream::open(&cfg, &Output::Null, &NoProbe).unwrap();
        stream.run(30, Pacing::Max).unwrap();
        let s = stream.finish().unwrap();
        assert_eq!(s.counters.packets, 30, "{format:?}");
        assert!(
            s.pipeline.format_bytes > 30 * 1000,
            "{format:?}: {:?}",
            s.pipeline
        );
    }
}
