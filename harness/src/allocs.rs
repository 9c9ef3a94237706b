//! A counting global allocator for the harness binary: allocations per frame are a figure of the
//! `memory` suite. It forwards to the system allocator and adds one relaxed atomic increment per
//! allocation. FFmpeg allocates with its own allocator, which this does not see; frame buffers
//! are counted by the buffer pool instead (its misses).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

/// The harness's own instrument thread (the CPU/RSS sampler), whose allocations are not the
/// stream's: its `pthread_self()`, 0 for none. (A `thread_local!` cannot be used here: the
/// allocator runs before the runtime has set thread-locals up.)
static EXEMPT: AtomicUsize = AtomicUsize::new(0);

fn count() {
    // SAFETY: pthread_self has no preconditions and does not allocate.
    let me = unsafe { libc::pthread_self() } as usize;
    if EXEMPT.load(Ordering::Relaxed) != me {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

/// Stops counting this thread's allocations (for the harness's own instrument thread; one at
/// a time).
pub fn exempt_this_thread() {
    // SAFETY: as above.
    let me = unsafe { libc::pthread_self() } as usize;
    EXEMPT.store(me, Ordering::Relaxed);
}

/// The counting allocator; `harness` installs it with `#[global_allocator]`.
pub struct Counting;

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: forwarded.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: forwarded.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: forwarded.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Heap allocations so far in this process (0 where the counting allocator is not installed).
pub fn allocations() -> u64 {
    ALLOCATIONS.load(Ordering::Relaxed)
}

/// Whether this process counts (the counter moves when something allocates).
pub fn counting() -> bool {
    let before = allocations();
    drop(std::hint::black_box(Box::new(0u64)));
    allocations() != before
}
