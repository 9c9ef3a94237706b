//! The machine a run is on, and the process's CPU and memory while it runs (via `sysinfo`).

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
    /// The wgpu adapter used for rendering, when the GPU renderer ran.
    pub wgpu_adapter: Option<String>,
}

impl Machine {
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
            wgpu_adapter: None,
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
    started: Instant,
    cpu_ms_at_start: u64,
}

/// How often RSS is sampled.
const EVERY: Duration = Duration::from_millis(50);

fn own(sys: &mut System) -> Option<(u64, u64)> {
    let pid: Pid = sysinfo::get_current_pid().ok()?;
    sys.refresh_processes_specifics(
        ProcessesToUpdate::Some(&[pid]),
        false,
        ProcessRefreshKind::nothing().with_cpu().with_memory(),
    );
    sys.process(pid).map(|p| (p.accumulated_cpu_time(), p.memory()))
}

impl Sampler {
    /// Opens a window: notes CPU time so far and starts sampling RSS.
    pub fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let started = Instant::now();
        let mut sys = System::new_with_specifics(RefreshKind::nothing()).ok();
        let cpu_ms_at_start = sys.as_mut().and_then(own).map_or(0, |(cpu, _)| cpu);
        let thread = std::thread::Builder::new()
            .name("rss-sampler".into())
            .spawn(move || {
                let mut samples = Vec::new();
                let Some(mut sys) = sys else { return samples };
                loop {
                    if let Some((_, rss)) = own(&mut sys) {
                        samples.push((started.elapsed().as_millis() as u64, rss));
                    }
                    if flag.load(Ordering::Relaxed) {
                        return samples;
                    }
                    std::thread::sleep(EVERY);
                }
            })
            .ok();
        Sampler { stop, thread, started, cpu_ms_at_start }
    }

    /// Closes the window and reports.
    pub fn stop(mut self) -> Usage {
        let wall = self.started.elapsed();
        self.stop.store(true, Ordering::Relaxed);
        let samples = self.thread.take().and_then(|t| t.join().ok()).unwrap_or_default();
        let mut sys = System::new_with_specifics(RefreshKind::nothing()).ok();
        let cpu_ms = sys.as_mut().and_then(own).map_or(0, |(cpu, _)| cpu);
        let cpu_percent = (cpu_ms.saturating_sub(self.cpu_ms_at_start)) as f64
            / wall.as_secs_f64().max(1e-9)
            / 10.0;
        Usage {
            cpu_percent,
            rss_peak_bytes: samples.iter().map(|&(_, r)| r).max().unwrap_or(0),
            rss_timeline: samples,
        }
    }
}
