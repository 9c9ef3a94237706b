//! Zero allocations per frame in steady state, counted by a counting global allocator. The
//! counter is process-wide, so this file holds this one test alone: cargo runs each test file
//! as its own process, and no other test can allocate while it counts.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use streamer::config::{Preset, StreamConfig};
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

/// One test for both pools: the counter is process-wide, so the two runs must not overlap (and
/// no other test may run in this process).
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
