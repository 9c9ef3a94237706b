//! CPU clocks for the gate's timed figures, and the calibrated busy work `gate --power` injects
//! into a figure's measured side.
//!
//! Wall time on a shared 2-core machine moves with whatever else runs there: a thread that
//! waits for the processor is charged for the wait. A CPU clock charges only what the thread
//! (or the process) ran, so the gate's figures time their sides on one: the calling thread's
//! clock for single-threaded work, the process's for the whole stream.

use std::hint::black_box;

/// Seconds of CPU the calling thread has used.
pub fn thread_cpu() -> f64 {
    streamer::clock::thread_cpu_ns() as f64 * 1e-9
}

/// Seconds of CPU the whole process (every thread, user and system) has used.
pub fn process_cpu() -> f64 {
    streamer::clock::process_cpu_ns() as f64 * 1e-9
}

/// `units` rounds of a xorshift: plain integer work that no compiler removes and that costs the
/// same on every call, the stand-in for a regression in `gate --power`.
#[inline(never)]
pub fn burn(units: u64) {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for _ in 0..units {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x = black_box(x);
    }
    black_box(x);
}

/// CPU seconds one [`burn`] unit takes on this thread (the median of five timings).
pub fn seconds_per_unit() -> f64 {
    const UNITS: u64 = 2_000_000;
    burn(UNITS / 10);
    let mut t: Vec<f64> = (0..5)
        .map(|_| {
            let start = thread_cpu();
            burn(UNITS);
            (thread_cpu() - start) / UNITS as f64
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[2]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burn_takes_cpu_time_in_proportion() {
        let unit = seconds_per_unit();
        assert!(unit > 0.0 && unit < 1e-6, "{unit}");
        let start = thread_cpu();
        burn(1_000_000);
        let took = thread_cpu() - start;
        assert!(took > 0.0 && process_cpu() >= took);
    }
}
