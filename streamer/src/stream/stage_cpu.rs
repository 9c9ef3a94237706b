//! Where a stream's CPU goes, stage by stage ([`StageCpu`]), from the threads' own CPU clocks
//! (the guide's Best Practices: "monitor CPU usage per component"): the render thread (scene,
//! layout, compositor) with the renderer's helper threads (the compositor's pool, the GPU
//! driver's: the threads that opening the renderer started), the pipeline's workers, the encoder's thread (format ingest, the
//! encoder wrapper and what libx264 does on it), libx264's own threads (found as the threads
//! that opening the encoder started), and the output (`network:send`: FLV and RTMP packing and
//! the socket writes, on the encoder's thread, taken out of its share).

use crate::clock::{name_threads, thread_cpu_ns, threads_cpu_ns};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// CPU seconds per stage since the stream opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct StageCpu {
    /// A decoding source (a file) on the render thread: decoding and converting its pictures
    /// (0 for the synthetic scene, whose drawing counts as render).
    #[serde(default)]
    pub decode_s: f64,
    /// The render thread: scene, layout, composition (CPU compositor and its helpers, or the
    /// GPU renderer's submission and readback).
    pub render_s: f64,
    /// The pipeline's workers: format conversion (raw, jpeg, png).
    pub workers_s: f64,
    /// The encoder's thread less the output: ingest, the encoder wrapper and libx264's work on
    /// that thread.
    pub encode_s: f64,
    /// libx264's own threads (lookahead, frame and slice threads); 0 off Linux.
    pub x264_threads_s: f64,
    /// The output on the encoder's thread: muxing and writing each packet (`network:send`).
    pub send_s: f64,
}

impl StageCpu {
    /// `self − before`, stage by stage (a window's share).
    pub fn since(&self, before: &StageCpu) -> StageCpu {
        StageCpu {
            decode_s: self.decode_s - before.decode_s,
            render_s: self.render_s - before.render_s,
            workers_s: self.workers_s - before.workers_s,
            encode_s: self.encode_s - before.encode_s,
            x264_threads_s: self.x264_threads_s - before.x264_threads_s,
            send_s: self.send_s - before.send_s,
        }
    }
}

/// The stages' counters the stream's threads add to.
#[derive(Debug, Default)]
pub(super) struct CpuCounters {
    /// The source's decoding, on the render thread (inside `render_ns`'s clock).
    pub(super) decode_ns: AtomicU64,
    pub(super) render_ns: AtomicU64,
    pub(super) workers_ns: AtomicU64,
    /// The encoder's thread while it runs the encode loop, output included.
    pub(super) encode_ns: AtomicU64,
    pub(super) send_ns: AtomicU64,
    /// libx264's threads: those of the encoder open now …
    x264: Mutex<BTreeSet<u32>>,
    /// … and what those of the encoders closed before used (quality scaling reopens the
    /// encoder, and a thread that has exited reads 0).
    x264_closed_ns: AtomicU64,
}

/// Adds the calling thread's CPU time from now until it is dropped to a counter (on every
/// exit path, a panic included).
pub(super) struct ThreadClock<'a> {
    into: &'a AtomicU64,
    start: u64,
}

impl<'a> ThreadClock<'a> {
    pub(super) fn start(into: &'a AtomicU64) -> Self {
        ThreadClock {
            into,
            start: thread_cpu_ns(),
        }
    }
}

impl Drop for ThreadClock<'_> {
    fn drop(&mut self) {
        self.into.fetch_add(
            thread_cpu_ns().saturating_sub(self.start),
            Ordering::Relaxed,
        );
    }
}

impl CpuCounters {
    /// The encoder open from now on started `threads` (named `x264-<n>`): what the previous
    /// encoder's threads used so far is kept, as they are about to exit.
    pub(super) fn x264_opened(&self, threads: BTreeSet<u32>) {
        name_threads(&threads, "x264");
        let mut open = self.x264.lock().unwrap_or_else(|e| e.into_inner());
        self.x264_closed_ns
            .fetch_add(threads_cpu_ns(&open), Ordering::Relaxed);
        *open = threads;
    }

    /// The stages so far; the renderer's helper threads (`render`) and libx264's read now.
    pub(super) fn snapshot(&self, render: &BTreeSet<u32>) -> StageCpu {
        let s = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64 * 1e-9;
        let send = s(&self.send_ns);
        let decode = s(&self.decode_ns);
        let x264 = threads_cpu_ns(&self.x264.lock().unwrap_or_else(|e| e.into_inner()));
        StageCpu {
            decode_s: decode,
            render_s: (s(&self.render_ns) - decode).max(0.0) + threads_cpu_ns(render) as f64 * 1e-9,
            workers_s: s(&self.workers_ns),
            encode_s: (s(&self.encode_ns) - send).max(0.0),
            x264_threads_s: (x264 + self.x264_closed_ns.load(Ordering::Relaxed)) as f64 * 1e-9,
            send_s: send,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::thread_ids;

    #[test]
    fn the_cpu_of_a_closed_encoders_threads_is_kept_when_it_is_reopened() {
        if !cfg!(target_os = "linux") {
            return;
        }
        let cpu = CpuCounters::default();
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        // A thread that works, then waits: an open encoder's thread.
        let worker = std::thread::spawn(move || {
            // SAFETY: gettid has no preconditions.
            tid_tx.send(unsafe { libc::gettid() } as u32).unwrap();
            let mut x = 1u64;
            for i in 0..20_000_000u64 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
            }
            let _ = stop_rx.recv();
        });
        cpu.x264_opened([tid_rx.recv().unwrap()].into());
        let mut open = 0.0;
        for _ in 0..400 {
            open = cpu.snapshot(&BTreeSet::new()).x264_threads_s;
            if open > 0.005 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(open > 0.0, "{open} s");
        // The encoder is reopened without threads of its own; the old one's thread exits.
        cpu.x264_opened(BTreeSet::new());
        stop_tx.send(()).unwrap();
        worker.join().unwrap();
        let after = cpu.snapshot(&BTreeSet::new()).x264_threads_s;
        assert!(after >= open, "{after} s after the reopen, {open} s before");
    }

    #[test]
    fn a_thread_clock_charges_its_threads_work_on_every_exit() {
        let counter = AtomicU64::new(0);
        std::thread::scope(|s| {
            s.spawn(|| {
                let _c = ThreadClock::start(&counter);
                let mut x = 1u64;
                for i in 0..5_000_000u64 {
                    x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
                }
            });
        });
        let ns = counter.load(Ordering::Relaxed);
        assert!(ns > 100_000, "{ns} ns");
        let mine = thread_ids();
        if cfg!(target_os = "linux") {
            assert!(!mine.is_empty());
            assert!(threads_cpu_ns(&mine) > 0);
        }
    }
}
