//! Many streams in one process: each its own source, core, renderer, pipeline, encoder and
//! publisher ([`Stream`]), on threads of its own, each to its own output (one RTMP server's
//! stream keys `s0`, `s1`, …, or any outputs given). One stream's failure — a source that
//! cannot be read, a publish the server refuses, an encoder that fails — ends that stream
//! only; the others run on.

use crate::config::StreamConfig;
use crate::output::Output;
use crate::probe::Probe;
use crate::stream::{Pacing, Stream, StreamError, Summary};

/// The stream key of stream `i` of several (`s0`, `s1`, …).
pub fn key(i: usize) -> String {
    crate::config::stream_key(i)
}

/// `output` for stream `i` of several: an RTMP address with its key replaced by [`key`]`(i)`;
/// None for an output that several streams cannot share (a file, null is fine).
pub fn output_of(output: &Output, i: usize) -> Option<Output> {
    match output {
        Output::Null => Some(Output::Null),
        Output::Flv(_) => None,
        Output::Rtmp(url) => {
            let mut url = url.clone();
            url.key = key(i);
            Some(Output::Rtmp(url))
        }
    }
}

/// One stream of several: its settings and where it goes.
#[derive(Debug, Clone)]
pub struct StreamSpec {
    pub config: StreamConfig,
    pub output: Output,
}

/// What one stream of several did: its summary and the seconds its frames took (opening and
/// the final flush left out), or why it stopped.
pub type Outcome = Result<(Summary, f64), StreamError>;

/// Runs every stream of `specs` at once for `frames` frames each, stream `i` marking its
/// monitoring points on `probes[i]`; `started` is called with each stream once it is open
/// (to watch it while it runs). Returns each stream's outcome, in order.
///
/// # Panics
/// When `probes` is shorter than `specs`.
pub fn run_all<P: Probe + Sync>(
    specs: &[StreamSpec],
    frames: u64,
    pacing: Pacing,
    probes: &[P],
    started: impl Fn(usize, &Stream<'_, P>) + Sync,
) -> Vec<Outcome> {
    assert!(probes.len() >= specs.len(), "a probe for every stream");
    // One stream opens at a time: each finds the threads its renderer and encoder start by
    // the threads that appeared while it opened.
    let opening = std::sync::Mutex::new(());
    std::thread::scope(|s| {
        let handles: Vec<_> = specs
            .iter()
            .zip(probes)
            .enumerate()
            .map(|(i, (spec, probe))| {
                let (started, opening) = (&started, &opening);
                std::thread::Builder::new()
                    .name(format!("stream-{i}"))
                    .spawn_scoped(s, move || {
                        let mut stream = {
                            let _one = opening.lock().unwrap_or_else(|e| e.into_inner());
                            Stream::open(&spec.config, &spec.output, probe)?
                        };
                        started(i, &stream);
                        let t = std::time::Instant::now();
                        stream.run(frames, pacing)?;
                        let secs = t.elapsed().as_secs_f64();
                        Ok((stream.finish()?, secs))
                    })
            })
            .collect();
        handles
            .into_iter()
            .enumerate()
            .map(|(i, h)| match h {
                Ok(h) => h.join().unwrap_or_else(|_| {
                    Err(StreamError::Pipeline(format!("stream {} panicked", key(i))))
                }),
                Err(e) => Err(StreamError::Pipeline(format!(
                    "starting stream {}: {e}",
                    key(i)
                ))),
            })
            .collect()
    })
}
