//! Sampling CPU profiles of a point's measured window (`harness run --profile`).
//!
//! pprof-rs samples every thread of the point's child process on the process CPU clock
//! (`SIGPROF`, [`FREQUENCY`] per CPU second) and unwinds each sample; chosen over calling
//! `perf` because it needs no kernel permission (`perf_event_paranoid`) and no tool outside
//! the binary, and it writes the flame graph itself (inferno). The flame graph goes beside the
//! report; the functions that used the most CPU themselves (self time) and the threads'
//! shares go into the results, so the report can say where the CPU went without opening it.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

/// Samples per second of CPU time.
pub const FREQUENCY: i32 = 499;
/// Functions and threads kept in the results.
const KEEP: usize = 8;

/// A function or thread and its share of the profile's samples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Share {
    pub name: String,
    /// Percent of all samples.
    pub percent: f64,
}

/// What a profiled run of a point found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfileFigures {
    /// The flame graph, relative to the results folder (`<suite>/profile/<n>.svg`).
    pub svg: String,
    /// Samples taken in the measured window.
    pub samples: u64,
    /// The profiled run's frames per second (the parent fills it in; that run is extra and
    /// not in the point's figures).
    #[serde(default)]
    pub fps: f64,
    /// Functions by self time (the sampled frame itself), largest first.
    pub hot: Vec<Share>,
    /// Threads by samples, largest first.
    pub threads: Vec<Share>,
}

/// Why a profile could not be taken or written.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("profiler: {0}")]
    Profiler(#[from] pprof::Error),
    #[error("writing {path}: {why}")]
    Write { path: String, why: String },
}

/// A profile being taken (one per process: pprof's profiler is global).
pub struct Profiling(pprof::ProfilerGuard<'static>);

impl Profiling {
    /// Starts sampling every thread of this process.
    ///
    /// # Errors
    /// The profiler could not start (another one runs, or the timer could not be set).
    pub fn start() -> Result<Self, ProfileError> {
        let guard = pprof::ProfilerGuardBuilder::default()
            .frequency(FREQUENCY)
            // Unwinding inside these can deadlock or crash (pprof-rs's advice).
            .blocklist(&["libc", "libgcc", "pthread", "vdso"])
            .build()?;
        Ok(Profiling(guard))
    }

    /// Stops sampling, writes the flame graph to `svg` (atomically) and returns the figures
    /// (`svg_name` is what the results call the file).
    ///
    /// # Errors
    /// The samples could not be symbolized or the file could not be written.
    pub fn finish(self, svg: &Path, svg_name: &str) -> Result<ProfileFigures, ProfileError> {
        let report = self.0.report().build_unresolved()?;
        drop(self.0);
        let write_err = |why: String| ProfileError::Write {
            path: svg.display().to_string(),
            why,
        };
        let libraries = Libraries::read();
        let mut names: HashMap<usize, Vec<String>> = HashMap::new();
        let mut stacks = Vec::new();
        for (frames, &count) in &report.data {
            // Leaf first; what the profiler's signal handler called is its own.
            let mut stack: Vec<String> = Vec::new();
            let mut iter = frames.frames.iter();
            while let Some(frame) = iter.next() {
                let ip = frame.ip() as usize;
                let symbols = names
                    .entry(ip)
                    .or_insert_with(|| resolve(frame, ip, &libraries));
                if symbols.iter().any(|s| s == "perf_signal_handler") {
                    stack.clear();
                    // The signal trampoline.
                    iter.next();
                    continue;
                }
                stack.extend(symbols.iter().cloned());
            }
            if stack.is_empty() {
                stack.push("[unknown]".to_string());
            }
            let thread = String::from_utf8_lossy(&frames.thread_name[..frames.thread_name_length])
                .into_owned();
            stacks.push((stack, thread, count.max(0) as u64));
        }
        let lines: Vec<String> = stacks
            .iter()
            .map(|(stack, thread, n)| {
                let mut line = thread.clone();
                for name in stack.iter().rev() {
                    line.push(';');
                    line.push_str(&name.replace(';', ":"));
                }
                format!("{line} {n}")
            })
            .collect();
        let mut out = Vec::new();
        let mut options = pprof::flamegraph::Options::default();
        options.title = format!("CPU of {svg_name}");
        if lines.is_empty() {
            out.extend_from_slice(
                b"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"600\" height=\"40\">\
                  <text x=\"10\" y=\"25\">No samples: the window used too little CPU.</text></svg>\n",
            );
        } else {
            pprof::flamegraph::from_lines(&mut options, lines.iter().map(String::as_str), &mut out)
                .map_err(|e| write_err(e.to_string()))?;
        }
        if let Some(dir) = svg.parent() {
            std::fs::create_dir_all(dir).map_err(|e| write_err(e.to_string()))?;
        }
        crate::results::write_atomic(svg, &out).map_err(|e| write_err(e.to_string()))?;
        Ok(figures(
            stacks
                .into_iter()
                .map(|(stack, thread, n)| (stack[0].clone(), thread, n)),
            svg_name,
        ))
    }
}

/// A frame's function names, innermost (inlined) first, without Rust's hash; where the
/// library has no symbol for it, the library's name in brackets (`[libx264.so.164]`).
fn resolve(frame: &backtrace::Frame, ip: usize, libraries: &Libraries) -> Vec<String> {
    let mut out = Vec::new();
    backtrace::resolve_frame(frame, |s| {
        if let Some(name) = s.name() {
            out.push(function_name(&format!("{name:#}")));
        }
    });
    if out.is_empty() {
        out.push(format!("[{}]", libraries.of(ip).unwrap_or("unknown")));
    }
    out
}

/// This process's mapped files (`/proc/self/maps`): which library an address is in.
struct Libraries(Vec<(usize, usize, String)>);

impl Libraries {
    fn read() -> Self {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
        Libraries(
            maps.lines()
                .filter_map(|l| {
                    let mut parts = l.split_whitespace();
                    let (start, end) = parts.next()?.split_once('-')?;
                    let path = parts.nth(4)?;
                    let name = path.rsplit('/').next()?.to_string();
                    Some((
                        usize::from_str_radix(start, 16).ok()?,
                        usize::from_str_radix(end, 16).ok()?,
                        name,
                    ))
                })
                .collect(),
        )
    }

    fn of(&self, addr: usize) -> Option<&str> {
        self.0
            .iter()
            .find(|(start, end, _)| (*start..*end).contains(&addr))
            .map(|(_, _, name)| name.as_str())
    }
}

/// The figures from `(leaf function, thread, samples)` triples.
fn figures(stacks: impl Iterator<Item = (String, String, u64)>, svg: &str) -> ProfileFigures {
    let mut hot: HashMap<String, u64> = HashMap::new();
    let mut threads: HashMap<String, u64> = HashMap::new();
    let mut samples = 0;
    for (leaf, thread, n) in stacks {
        *hot.entry(leaf).or_default() += n;
        *threads.entry(thread_kind(&thread)).or_default() += n;
        samples += n;
    }
    let top = |m: HashMap<String, u64>| {
        let mut v: Vec<(String, u64)> = m.into_iter().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        v.into_iter()
            .take(KEEP)
            .map(|(name, n)| Share {
                name,
                percent: n as f64 * 100.0 / samples.max(1) as f64,
            })
            .collect()
    };
    ProfileFigures {
        svg: svg.to_string(),
        samples,
        fps: 0.0,
        hot: top(hot),
        threads: top(threads),
    }
}

/// A demangled name without Rust's hash suffix (`::h0123456789abcdef`).
fn function_name(name: &str) -> String {
    match name.rsplit_once("::h") {
        Some((base, hash)) if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => {
            base.to_string()
        }
        _ => name.to_string(),
    }
}

/// Threads of one kind under one name: numbered ones (`worker-3`, `rtmp-fanout-12`) together.
fn thread_kind(name: &str) -> String {
    let trimmed = name.trim_end_matches(|c: char| c.is_ascii_digit());
    match trimmed.strip_suffix(['-', '_', ' ']) {
        Some(base) if trimmed.len() < name.len() => format!("{base}-*"),
        _ => name.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_lose_the_hash_and_numbered_threads_group() {
        assert_eq!(
            function_name("streamer::encode::Encoder::send::h0123456789abcdef"),
            "streamer::encode::Encoder::send"
        );
        assert_eq!(
            function_name("x264_8_pixel_satd_8x4_avx2"),
            "x264_8_pixel_satd_8x4_avx2"
        );
        assert_eq!(thread_kind("worker-3"), "worker-*");
        assert_eq!(thread_kind("stream-render"), "stream-render");
        assert_eq!(thread_kind("x264"), "x264");
    }

    #[test]
    fn shares_are_of_all_samples_largest_first() {
        let f = figures(
            [
                ("a".to_string(), "enc".to_string(), 30),
                ("b".to_string(), "worker-1".to_string(), 10),
                ("a".to_string(), "worker-2".to_string(), 10),
            ]
            .into_iter(),
            "x.svg",
        );
        assert_eq!(f.samples, 50);
        assert_eq!(f.hot[0].name, "a");
        assert!((f.hot[0].percent - 80.0).abs() < 1e-9);
        assert_eq!(f.threads[0].name, "enc");
        assert!((f.threads[1].percent - 40.0).abs() < 1e-9);
        assert_eq!(f.threads[1].name, "worker-*");
    }
}
