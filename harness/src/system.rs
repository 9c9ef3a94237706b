//! The machine a run is on, and the process's CPU and memory while it runs: RSS sampled with
//! `sysinfo`, CPU time from the kernel's per-process clock (nanosecond resolution, where
//! `/proc` ticks are 10 ms — too coarse for short runs).

use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, RefreshKind, System};

/// What results say about the machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    pub cpu_model: String,
    /// Logical cores.
    pub cores: usize,
    pub memory_bytes: u64,
    pub os: String,
    pub kernel: String,
    pub ffmpeg_version: String,
    pub x264_version: String,
    /// The wgpu adapter the GPU renderer picks here: name (backend, device type, driver);
    /// None when wgpu finds none.
    pub wgpu_adapter: Option<String>,
}

/// The commit of the checkout the harness runs in: `git rev-parse --short=10 HEAD`, with
/// `+changes` when tracked files differ from it; `unknown` without git or outside a checkout.
pub fn commit() -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    match git(&["rev-parse", "--short=10", "HEAD"]) {
        Some(hash) if !hash.is_empty() => {
            let changed = git(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty());
            if changed {
                format!("{hash}+changes")
            } else {
                hash
            }
        }
        _ => "unknown".into(),
    }
}

/// Seconds of CPU the threads of this process whose names start with one of `prefixes` have
/// run, from the scheduler's per-thread nanosecond counter (`/proc/self/task/*/schedstat`):
/// how a stage that shares the process with others (the embedded RTMP server and its players)
/// is charged its own CPU.
pub fn threads_cpu_seconds(prefixes: &[&str]) -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    let mut ns = 0u64;
    for task in tasks.flatten() {
        let path = task.path();
        let Ok(comm) = std::fs::read_to_string(path.join("comm")) else {
            continue;
        };
        if !prefixes.iter().any(|p| comm.trim_end().starts_with(p)) {
            continue;
        }
        ns += std::fs::read_to_string(path.join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0);
    }
    ns as f64 * 1e-9
}

impl Machine {
    /// `CPU model (N cores)`: how a table names the machine it was measured on.
    pub fn short(&self) -> String {
        format!("{} ({} cores)", self.cpu_model, self.cores)
    }

    /// Reads the machine's description.
    pub fn detect() -> Self {
        let sys = System::new_with_specifics(
            RefreshKind::nothing()
                .with_cpu(sysinfo::CpuRefreshKind::nothing())
                .with_memory(sysinfo::MemoryRefreshKind::nothing().with_ram()),
        )
        .ok();
        let (ffmpeg_version, x264_version) = streamer::encode::versions();
        Machine {
            cpu_model: sys
                .as_ref()
                .and_then(|s| s.cpus().first().map(|c| c.brand().trim().to_string()))
                .unwrap_or_else(|| "unknown".into()),
            cores: std::thread::available_parallelism().map_or(1, usize::from),
            memory_bytes: sys.as_ref().map_or(0, System::total_memory),
            os: System::long_os_version().unwrap_or_else(|_| "unknown".into()),
            kernel: System::kernel_version().unwrap_or_else(|_| "unknown".into()),
            ffmpeg_version,
            x264_version,
            wgpu_adapter: streamer::render::gpu::pick(streamer::render::gpu::Api::Auto)
                .ok()
                .map(|(_, a)| a.to_string()),
        }
    }
}

/// CPU and memory of this process over a measured window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    /// CPU time over wall time, in percent of one core (200 = two cores busy).
    pub cpu_percent: f64,
    /// Highest resident set size seen, in bytes.
    pub rss_peak_bytes: u64,
    /// `(milliseconds since the window opened, RSS bytes)` samples.
    pub rss_timeline: Vec<(u64, u64)>,
}

/// Samples this process's RSS on a thread while a window is open.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Vec<(u64, u64)>>>,
    /// The RSS samples once [`end_memory_window`](Self::end_memory_window) closed them.
    samples: Option<Vec<(u64, u64)>>,
    started: Instant,
    cpu_at_start: Duration,
}

/// How often RSS is sampled.
const EVERY: Duration = Duration::from_millis(50);

fn own_rss(sys: &mut System) -> Option<u64> {
    let pid: Pid = sysinfo::get_current_pid().ok()?;
    sys.refresh_processes_specifics(
        ProcessesToUpdate::Some(&[pid]),
        false,
        ProcessRefreshKind::nothing().with_memory(),
    );
    sys.process(pid).map(|p| p.memory())
}

/// CPU time this process has used, all threads.
fn process_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec; CLOCK_PROCESS_CPUTIME_ID always exists on Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

impl Sampler {
    /// Opens a window: notes CPU time so far and starts sampling RSS.
    pub fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let started = Instant::now();
        let sys = System::new_with_specifics(RefreshKind::nothing()).ok();
        let cpu_at_start = process_cpu_time();
        // The window starts once the sampler thread runs (its start-up allocations are its own).
        let ready = Arc::new(std::sync::Barrier::new(2));
        let ready_in_thread = Arc::clone(&ready);
        let thread = std::thread::Builder::new()
            .name("rss-sampler".into())
            .spawn(move || {
                crate::allocs::exempt_this_thread();
                ready_in_thread.wait();
                let mut samples = Vec::new();
                let Some(mut sys) = sys else { return samples };
                loop {
                    if let Some(rss) = own_rss(&mut sys) {
                        samples.push((started.elapsed().as_millis() as u64, rss));
                    }
                    if flag.load(Ordering::Relaxed) {
                        return samples;
                    }
                    std::thread::sleep(EVERY);
                }
            })
            .ok();
        if thread.is_some() {
            ready.wait();
        }
        Sampler {
            stop,
            thread,
            samples: None,
            started,
            cpu_at_start,
        }
    }

    /// Stops sampling RSS (the CPU window stays open until [`stop`](Self::stop)): called when
    /// the frames have gone through, so the timeline and peak cover streaming and not the
    /// teardown that follows (which frees the pool, the encoder and the output).
    pub fn end_memory_window(&mut self) {
        if self.samples.is_some() {
            return;
        }
        self.stop.store(true, Ordering::Relaxed);
        self.samples = Some(
            self.thread
                .take()
                .and_then(|t| t.join().ok())
                .unwrap_or_default(),
        );
    }

    /// Closes the window and reports.
    pub fn stop(mut self) -> Usage {
        let wall = self.started.elapsed();
        let cpu = process_cpu_time().saturating_sub(self.cpu_at_start);
        self.end_memory_window();
        let samples = self.samples.take().unwrap_or_default();
        let cpu_percent = 100.0 * cpu.as_secs_f64() / wall.as_secs_f64().max(1e-9);
        Usage {
            cpu_percent,
            rss_peak_bytes: samples.iter().map(|&(_, r)| r).max().unwrap_or(0),
            rss_timeline: samples,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_named_threads_cpu_is_counted_and_no_other() {
        let spin = std::thread::Builder::new()
            .name("cpu-probe-test".into())
            .spawn(|| {
                let start = std::time::Instant::now();
                let mut x = 1u64;
                while start.elapsed() < Duration::from_millis(50) {
                    x = std::hint::black_box(x.wrapping_mul(3));
                }
                threads_cpu_seconds(&["cpu-probe-test"])
            })
            .unwrap();
        let counted = spin.join().unwrap();
        assert!(counted >= 0.02, "{counted}");
        assert_eq!(threads_cpu_seconds(&["no-such-thread"]), 0.0);
    }

    /// Memory held only after the memory window closed (as a stream's teardown would free or
    /// touch it) is not in the timeline nor the peak; the CPU window still runs to `stop`.
    #[test]
    fn memory_after_the_window_closes_is_not_counted() {
        let mut sampler = Sampler::start();
        std::thread::sleep(EVERY * 2);
        sampler.end_memory_window();
        let closed_at = sampler.started.elapsed().as_millis() as u64;
        // 256 MiB touched after the window: far above this test process's own size.
        let big = vec![1u8; 256 << 20];
        std::thread::sleep(EVERY * 3);
        let usage = sampler.stop();
        assert!(std::hint::black_box(&big).len() == 256 << 20);
        assert!(!usage.rss_timeline.is_empty());
        assert!(
            usage.rss_timeline.iter().all(|&(ms, _)| ms <= closed_at),
            "{:?} after {closed_at} ms",
            usage.rss_timeline
        );
        assert!(
            usage.rss_peak_bytes < 256 << 20,
            "peak {} includes memory touched after the window",
            usage.rss_peak_bytes
        );
    }
}
