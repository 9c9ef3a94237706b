//! Every clock the project reads, in one leaf module below every stage: a thread's and a
//! process's CPU clocks, the scheduler's per-thread counters (`/proc/self/task/*/schedstat`),
//! and the thread list they are read for. Stages, the harness and the gate take their CPU
//! figures from here; nothing here depends on anything else in the crate.
//!
//! Off Linux the `/proc` readers find no threads and read 0.

use std::collections::BTreeSet;

fn clock_ns(id: libc::clockid_t) -> Option<u64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    let rc = unsafe { libc::clock_gettime(id, &mut ts) };
    (rc == 0).then(|| ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}

/// Nanoseconds of CPU the calling thread has used (0 if the clock cannot be read).
pub fn thread_cpu_ns() -> u64 {
    clock_ns(libc::CLOCK_THREAD_CPUTIME_ID).unwrap_or(0)
}

/// Nanoseconds of CPU this whole process (every thread, user and system, exited threads
/// included) has used (0 if the clock cannot be read).
pub fn process_cpu_ns() -> u64 {
    clock_ns(libc::CLOCK_PROCESS_CPUTIME_ID).unwrap_or(0)
}

/// CPU time of another process (all its threads, exited ones included), in nanoseconds, read
/// from its CPU-time clock; `None` when it cannot be read (no such process). The scheduler
/// keeps it exactly; the tick-sampled utime/stime in /proc/PID/stat (10 ms ticks) are too
/// coarse for a server that runs in ~1 ms bursts 30 times a second.
pub fn process_cpu_ns_of(pid: u32) -> Option<u64> {
    let mut clock: libc::clockid_t = 0;
    // SAFETY: a plain FFI call with a valid out-pointer.
    if unsafe { libc::clock_getcpuclockid(pid as libc::pid_t, &raw mut clock) } != 0 {
        return None;
    }
    clock_ns(clock)
}

/// The ids of this process's threads (empty off Linux).
pub fn thread_ids() -> BTreeSet<u32> {
    std::fs::read_dir("/proc/self/task")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Runs `open` and returns what it returned with the threads it started (a library's: the
/// renderer's helpers, libx264's).
pub fn started_by<T>(open: impl FnOnce() -> T) -> (T, BTreeSet<u32>) {
    let before = thread_ids();
    let opened = open();
    (opened, &thread_ids() - &before)
}

/// Names the threads `ids` `<prefix>-<n>`, as `top -H`, profilers and debuggers show them
/// (threads a library starts inherit their creator's name otherwise). Best effort.
pub fn name_threads(ids: &BTreeSet<u32>, prefix: &str) {
    for (n, id) in ids.iter().enumerate() {
        let _ = std::fs::write(
            format!("/proc/self/task/{id}/comm"),
            format!("{prefix}-{n}"),
        );
    }
}

/// CPU nanoseconds thread `id` of this process has used, from the scheduler's per-thread
/// counter; `None` once it has exited.
fn task_cpu_ns(id: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/self/task/{id}/schedstat"))
        .ok()?
        .split_whitespace()
        .next()?
        .parse::<u64>()
        .ok()
}

/// CPU nanoseconds the threads `ids` have used, from the scheduler's per-thread counter (a
/// thread that has exited counts 0).
pub fn threads_cpu_ns(ids: &BTreeSet<u32>) -> u64 {
    ids.iter()
        .filter_map(|id| task_cpu_ns(&id.to_string()))
        .sum()
}

/// CPU nanoseconds the threads of this process whose names start with one of `prefixes` have
/// used, from the same counter: how a stage that shares the process with others (the
/// embedded RTMP server and its players) is charged its own CPU.
pub fn named_threads_cpu_ns(prefixes: &[&str]) -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|task| {
            let comm = std::fs::read_to_string(task.path().join("comm")).ok()?;
            if !prefixes.iter().any(|p| comm.trim_end().starts_with(p)) {
                return None;
            }
            task_cpu_ns(task.file_name().to_str()?)
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spin(n: u64) {
        let mut x = 1u64;
        for i in 0..n {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
    }

    #[test]
    fn cpu_clocks_move_with_work_and_the_process_covers_its_threads() {
        // The process's clock read outside the thread's at both ends, so it covers it.
        let p0 = process_cpu_ns();
        let t0 = thread_cpu_ns();
        spin(5_000_000);
        let thread = thread_cpu_ns() - t0;
        let process = process_cpu_ns() - p0;
        assert!(thread > 100_000, "{thread} ns");
        assert!(process >= thread, "{process} < {thread}");
        let own = process_cpu_ns_of(std::process::id()).unwrap();
        assert!(own >= process);
    }

    #[test]
    fn threads_are_found_named_and_charged_by_the_scheduler() {
        if !cfg!(target_os = "linux") {
            return;
        }
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let (worker, started) = started_by(|| {
            std::thread::spawn(move || {
                spin(20_000_000);
                let _ = stop_rx.recv();
            })
        });
        assert_eq!(started.len(), 1, "{started:?}");
        name_threads(&started, "clock-test");
        let mut named = 0;
        for _ in 0..400 {
            named = named_threads_cpu_ns(&["clock-test"]);
            if named > 1_000_000 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(named > 0 && threads_cpu_ns(&started) >= named);
        assert_eq!(named_threads_cpu_ns(&["no-such-thread"]), 0);
        stop_tx.send(()).unwrap();
        worker.join().unwrap();
        assert_eq!(threads_cpu_ns(&started), 0, "an exited thread reads 0");
    }
}
