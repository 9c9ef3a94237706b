//! Smart worker scaling (`adaptive.workers`; the guide's Future Optimizations lists "Implement
//! smart worker scaling"): the pool's `poolSize` workers all start, but only the first
//! `active` take frames; the others wait parked. [`WorkerScaler`] sets `active` between
//! `adaptive.workers.min` and `poolSize` from what the renderer sees as it queues each frame:
//!
//! - one more worker when the workers' mean conversion time needs more of them to keep up
//!   with the frame interval, or when the queue has been at least half full for
//!   [`GROW_AFTER_MS`];
//! - one fewer when the queue has stayed under a tenth full for [`SHRINK_AFTER_MS`] and fewer
//!   workers would still keep up;
//! - at most one change per [`COOLDOWN_MS`], so it settles instead of oscillating.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// Queue at least half full this long: grow.
pub const GROW_AFTER_MS: u64 = 250;
/// Queue under a tenth full this long: shrink.
pub const SHRINK_AFTER_MS: u64 = 3000;
/// Between two changes.
pub const COOLDOWN_MS: u64 = 500;

/// Which workers take frames, shared by the workers and the renderer.
#[derive(Debug)]
pub struct WorkerGate {
    active: AtomicU32,
    closed: AtomicBool,
    /// The workers' mean conversion time (exponentially weighted, 1/8), ns.
    process_ns: AtomicU64,
    lock: Mutex<()>,
    wake: Condvar,
}

impl WorkerGate {
    /// A gate letting the first `active` workers through.
    pub fn new(active: u32) -> Self {
        WorkerGate {
            active: AtomicU32::new(active),
            closed: AtomicBool::new(false),
            process_ns: AtomicU64::new(0),
            lock: Mutex::new(()),
            wake: Condvar::new(),
        }
    }

    /// Workers taking frames now.
    pub fn active(&self) -> u32 {
        self.active.load(Ordering::Relaxed)
    }

    /// Lets the first `n` workers through (wakes the parked ones it lets in).
    pub fn set_active(&self, n: u32) {
        self.active.store(n, Ordering::Relaxed);
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        self.wake.notify_all();
    }

    /// Wakes the parked workers to look again (their `closed` check, at the end of a run).
    pub fn nudge(&self) {
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        self.wake.notify_all();
    }

    /// Lets every parked worker go for good (the pipeline is closing).
    pub fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        self.wake.notify_all();
    }

    /// Parks worker `index` while it is not among the active ones; returns when it may take
    /// frames or the pipeline closes (`closed` is also polled, every 50 ms).
    pub fn wait_turn(&self, index: u32, closed: impl Fn() -> bool) {
        let mut g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        while index >= self.active() && !self.closed.load(Ordering::Relaxed) && !closed() {
            g = self
                .wake
                .wait_timeout(g, Duration::from_millis(50))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// A worker converted a frame in `took`.
    pub fn record_process(&self, took: Duration) {
        let ns = took.as_nanos() as u64;
        let old = self.process_ns.load(Ordering::Relaxed);
        let new = if old == 0 { ns } else { old - old / 8 + ns / 8 };
        self.process_ns.store(new, Ordering::Relaxed);
    }

    /// The workers' mean conversion time, ms (0 before the first frame).
    pub fn process_ms(&self) -> f64 {
        self.process_ns.load(Ordering::Relaxed) as f64 / 1e6
    }
}

/// Decides how many workers take frames.
#[derive(Debug, Clone)]
pub struct WorkerScaler {
    min: u32,
    max: u32,
    active: u32,
    full_since: Option<u64>,
    empty_since: Option<u64>,
    last_change: Option<u64>,
}

impl WorkerScaler {
    /// Between `min` and `max` workers, starting at `min`.
    pub fn new(min: u32, max: u32) -> Self {
        let min = min.clamp(1, max.max(1));
        WorkerScaler {
            min,
            max: max.max(min),
            active: min,
            full_since: None,
            empty_since: None,
            last_change: None,
        }
    }

    /// Workers active now.
    pub fn active(&self) -> u32 {
        self.active
    }

    /// A frame was queued at `t_ms` with the queue `fill` full (0–1); the workers convert a
    /// frame in `process_ms` on average; frames come every `interval_ms`. Returns the change
    /// (from, to, the signal) when it makes one.
    pub fn update(
        &mut self,
        t_ms: u64,
        fill: f64,
        process_ms: f64,
        interval_ms: f64,
    ) -> Option<(u32, u32, String)> {
        if fill >= 0.5 {
            self.full_since.get_or_insert(t_ms);
        } else {
            self.full_since = None;
        }
        if fill < 0.1 {
            self.empty_since.get_or_insert(t_ms);
        } else {
            self.empty_since = None;
        }
        if self
            .last_change
            .is_some_and(|at| t_ms.saturating_sub(at) < COOLDOWN_MS)
        {
            return None;
        }
        let needed = if process_ms > 0.0 && interval_ms > 0.0 {
            (process_ms / interval_ms).ceil() as u32
        } else {
            0
        };
        let full = self
            .full_since
            .is_some_and(|at| t_ms.saturating_sub(at) >= GROW_AFTER_MS);
        let empty = self
            .empty_since
            .is_some_and(|at| t_ms.saturating_sub(at) >= SHRINK_AFTER_MS);
        let from = self.active;
        let (to, signal) = if from < self.max && needed > from {
            (
                from + 1,
                format!(
                    "conversion {process_ms:.1} ms needs {needed} workers at a {interval_ms:.1} ms \
                     frame interval"
                ),
            )
        } else if from < self.max && full {
            (
                from + 1,
                format!("queue {:.0}% full for {GROW_AFTER_MS} ms", fill * 100.0),
            )
        } else if from > self.min && empty && needed < from {
            (
                from - 1,
                format!(
                    "queue under 10% full for {SHRINK_AFTER_MS} ms; conversion {process_ms:.1} \
                     ms needs {needed}"
                ),
            )
        } else {
            return None;
        };
        self.active = to;
        self.last_change = Some(t_ms);
        self.full_since = None;
        self.empty_since = None;
        Some((from, to, signal))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frames every 16.7 ms for `secs` with a fixed fill and conversion time; the changes.
    fn run(
        s: &mut WorkerScaler,
        from_ms: u64,
        secs: u64,
        fill: f64,
        process_ms: f64,
    ) -> Vec<(u32, u32)> {
        (0..secs * 60)
            .filter_map(|i| s.update(from_ms + i * 50 / 3, fill, process_ms, 16.7))
            .map(|(a, b, _)| (a, b))
            .collect()
    }

    #[test]
    fn slow_conversion_grows_it_to_what_keeps_up_then_it_holds() {
        let mut s = WorkerScaler::new(1, 8);
        // 40 ms per frame at 60 fps needs 3 workers.
        let changes = run(&mut s, 0, 5, 0.3, 40.0);
        assert_eq!(changes, [(1, 2), (2, 3)]);
        assert!(run(&mut s, 5000, 30, 0.3, 40.0).is_empty(), "steady");
        assert_eq!(s.active(), 3);
    }

    #[test]
    fn a_full_queue_grows_it_and_a_long_idle_shrinks_it_to_the_minimum() {
        let mut s = WorkerScaler::new(2, 4);
        let grown = run(&mut s, 0, 2, 0.8, 5.0);
        assert_eq!(grown, [(2, 3), (3, 4)]);
        // Idle: one step down per SHRINK_AFTER_MS, never under the minimum.
        let shrunk = run(&mut s, 2000, 20, 0.0, 5.0);
        assert_eq!(shrunk, [(4, 3), (3, 2)]);
        assert_eq!(s.active(), 2);
    }

    #[test]
    fn it_does_not_shrink_below_what_keeps_up() {
        let mut s = WorkerScaler::new(1, 4);
        run(&mut s, 0, 3, 0.3, 40.0);
        assert_eq!(s.active(), 3);
        // An empty queue, but conversion still needs 3.
        assert!(run(&mut s, 3000, 20, 0.0, 40.0).is_empty());
    }

    #[test]
    fn parked_workers_wait_until_let_in_or_closed() {
        let gate = std::sync::Arc::new(WorkerGate::new(1));
        let g = std::sync::Arc::clone(&gate);
        let parked = std::thread::spawn(move || {
            g.wait_turn(1, || false);
            g.active()
        });
        std::thread::sleep(Duration::from_millis(30));
        assert!(
            !parked.is_finished(),
            "worker 1 is parked while 1 is active"
        );
        gate.set_active(2);
        assert_eq!(parked.join().unwrap(), 2);
        let g = std::sync::Arc::clone(&gate);
        let parked = std::thread::spawn(move || g.wait_turn(5, || false));
        gate.close();
        parked.join().unwrap();
    }
}
