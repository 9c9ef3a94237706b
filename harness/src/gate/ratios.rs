//! The gate's timed figures: each times one piece of work (a [`Work`]) in the code of the
//! *base* commit and in the code under test (the *head*), alternately within every repetition,
//! on a CPU clock ([`clock`](super::clock)). A figure is base ÷ head: 1 when nothing changed,
//! below 1 when the head is slower. Both sides run the same kind of work in the same way, so
//! whatever the machine does to one (a neighbour on the caches, a slower clock) it does to the
//! other, and the figure holds on any processor without a baseline of its own.
//!
//! The base is the commit that last changed `results/baselines/ratios.json` (`gate --update`
//! rewrites it, so the commit that takes an update is the new base); xtask builds its
//! `harness` and passes it as `--base`. Each side is a `harness gate-side` process ([`serve`])
//! that runs one piece of work per request and answers with its CPU seconds: the two stay
//! loaded and take turns, one working while the other waits on its pipe.
//!
//! Both sides of a repetition run on the same processor, one right after the other, and a
//! figure is the median of the repetitions' base ÷ head ratios
//! ([`paired_ratio`](crate::stats::paired_ratio)): on this project's 2-core
//! virtual machine one side's CPU time moves by ±20% from one repetition to the next (a
//! neighbour on the caches, a slower clock), and the side beside it moves with it.
//!
//! - `compositor`: the CPU compositor drawing 8 layers on a 720p frame, 160 frames, on the
//!   side's thread clock;
//! - `stream`: the whole stream (render, compose, pipeline, the encoder wrapper and libx264 at
//!   ultrafast on one thread), 60 frames to a null output, on the side's process clock;
//! - `stream_recorded`: the same stream with the recorder (every monitoring point's histogram)
//!   as its probe.
//!
//! `gate --power` runs the same `harness` as both sides and slows the head's by a known
//! fraction with calibrated busy work ([`clock::burn`](super::clock::burn)) in its per-frame
//! path: after each composed frame, and on the stream's encoder thread at each frame's encode
//! start.

use super::clock::{burn, process_cpu, thread_cpu};
use crate::hot::Compose;
use crate::stats::{Pair, paired_ratio, ratio_interval};
use anyhow::{Context, Result, bail};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write as _};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::rc::Rc;
use streamer::probe::{NoProbe, Point, Probe};

/// One gated figure: reference ÷ measured, both in CPU seconds (base ÷ head in the gate).
pub trait Figure {
    /// The figure's key in `ratios.json`.
    fn name(&self) -> &str;
    /// What it measures, in a sentence (written into `ratios.json` and the report).
    fn what(&self) -> &str;
    /// CPU seconds of the reference side.
    fn reference(&mut self) -> Result<f64>;
    /// CPU seconds of the measured side, with `units` of [`burn`] added to each of its
    /// [`Figure::calls`].
    fn measured(&mut self, units: u64) -> Result<f64>;
    /// Per-frame calls of the measured side in one measurement (where the burn goes).
    fn calls(&self) -> u64;
    /// Runs both sides on processor `cpu` until told otherwise.
    fn pin(&mut self, _cpu: usize) {}
}

/// One piece of timed work, as a side runs it.
pub trait Work {
    /// The figure's key in `ratios.json`.
    fn name(&self) -> &'static str;
    /// What it measures, in a sentence.
    fn what(&self) -> &'static str;
    /// Per-frame calls in one run (where [`burn`] goes).
    fn calls(&self) -> u64;
    /// CPU seconds of one run, with `units` of [`burn`] added to each call.
    fn run(&mut self, units: u64) -> Result<f64>;
}

/// Every piece of work the gate times.
///
/// # Errors
/// FFmpeg or libx264 cannot be opened.
pub fn works() -> Result<Vec<Box<dyn Work>>> {
    Ok(vec![
        Box::new(Compositor::new()),
        Box::new(StreamWork {
            bench: StreamBench::new()?,
            recorded: false,
        }),
        Box::new(StreamWork {
            bench: StreamBench::new()?,
            recorded: true,
        }),
    ])
}

/// The first line a side prints: the protocol it speaks.
const PROTOCOL: &str = "gate-side 1";

/// `harness gate-side`: announces the protocol and every work (`work NAME CALLS WHAT`, then
/// `ready`), then for each line `run NAME UNITS CPU` on stdin runs that work on processor
/// `CPU` (its threads inherit the pinning) and answers `ok SECONDS` (or `err MESSAGE`), until
/// stdin closes.
///
/// # Errors
/// The works cannot be set up, or stdout is gone.
pub fn serve() -> Result<()> {
    let mut works = works()?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{PROTOCOL}")?;
    for w in &works {
        writeln!(out, "work {} {} {}", w.name(), w.calls(), w.what())?;
    }
    writeln!(out, "ready")?;
    out.flush()?;
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let mut parts = line.split_whitespace();
        let reply = match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some("run"), Some(name), Some(units), Some(cpu)) => {
                match (
                    works.iter_mut().find(|w| w.name() == name),
                    units.parse::<u64>(),
                    cpu.parse::<usize>(),
                ) {
                    (Some(w), Ok(units), Ok(cpu)) => match pin(cpu).and_then(|()| w.run(units)) {
                        Ok(s) => format!("ok {s:e}"),
                        Err(e) => format!("err {e:#}"),
                    },
                    (None, _, _) => format!("err no work named {name}"),
                    _ => format!("err not a request: {line}"),
                }
            }
            _ => format!("err not a request: {line}"),
        };
        writeln!(out, "{reply}")?;
        out.flush()?;
    }
    Ok(())
}

/// Pins the calling thread (and the threads it starts from now on) to processor `cpu`.
fn pin(cpu: usize) -> Result<()> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET writes inside it for
    // cpu < CPU_SETSIZE, checked first.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if cpu >= libc::CPU_SETSIZE as usize {
            bail!("processor {cpu} out of range");
        }
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            bail!(
                "pinning to processor {cpu}: {}",
                std::io::Error::last_os_error()
            );
        }
    }
    Ok(())
}

/// The processors this process may run on.
fn allowed_cpus() -> Vec<usize> {
    // SAFETY: as in `pin`; sched_getaffinity fills the set.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return vec![0];
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect()
    }
}

/// A `harness gate-side` process: the works it offers, and requests to it.
pub struct Side {
    label: String,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    /// The processor its work runs on.
    cpu: usize,
    /// Every work it offers: name → (calls, what).
    pub works: BTreeMap<String, (u64, String)>,
}

impl Side {
    /// Starts `exe gate-side` and reads what it offers.
    ///
    /// # Errors
    /// It cannot start, or does not speak this protocol.
    pub fn spawn(exe: &Path, label: &str) -> Result<Side> {
        let mut child = Command::new(exe)
            .arg("gate-side")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting the {label} side: {} gate-side", exe.display()))?;
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().context("no stdout")?);
        let mut side = Side {
            label: label.into(),
            child,
            stdin,
            stdout,
            cpu: 0,
            works: BTreeMap::new(),
        };
        let first = side.line()?;
        if first != PROTOCOL {
            bail!(
                "the {label} side ({}) answered {first:?}, not {PROTOCOL:?}: built from a commit                  whose gate does not take turns with this one",
                exe.display()
            );
        }
        loop {
            let line = side.line()?;
            if line == "ready" {
                break;
            }
            let mut p = line.splitn(4, ' ');
            match (p.next(), p.next(), p.next(), p.next()) {
                (Some("work"), Some(name), Some(calls), what) => {
                    side.works.insert(
                        name.into(),
                        (calls.parse()?, what.unwrap_or_default().into()),
                    );
                }
                _ => bail!("the {label} side said {line:?}"),
            }
        }
        Ok(side)
    }

    fn line(&mut self) -> Result<String> {
        let mut line = String::new();
        if self.stdout.read_line(&mut line)? == 0 {
            bail!("the {} side exited", self.label);
        }
        Ok(line.trim_end().to_string())
    }

    /// CPU seconds of one run of `name` with `units` of burn per call.
    ///
    /// # Errors
    /// The side failed to run it, or is gone.
    pub fn run(&mut self, name: &str, units: u64) -> Result<f64> {
        let stdin = self.stdin.as_mut().context("side closed")?;
        writeln!(stdin, "run {name} {units} {}", self.cpu)?;
        stdin.flush()?;
        let line = self.line()?;
        match line.split_once(' ') {
            Some(("ok", s)) => Ok(s.parse()?),
            _ => bail!("the {} side, running {name}: {line}", self.label),
        }
    }
}

impl Drop for Side {
    fn drop(&mut self) {
        // Closing stdin ends its loop; it exits at once.
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

/// One work, the base side's over the head side's.
struct Paired {
    name: String,
    what: String,
    calls: u64,
    base: Rc<RefCell<Side>>,
    head: Rc<RefCell<Side>>,
}

impl Figure for Paired {
    fn name(&self) -> &str {
        &self.name
    }

    fn what(&self) -> &str {
        &self.what
    }

    fn reference(&mut self) -> Result<f64> {
        self.base.borrow_mut().run(&self.name, 0)
    }

    fn measured(&mut self, units: u64) -> Result<f64> {
        self.head.borrow_mut().run(&self.name, units)
    }

    fn calls(&self) -> u64 {
        self.calls
    }

    fn pin(&mut self, cpu: usize) {
        self.base.borrow_mut().cpu = cpu;
        self.head.borrow_mut().cpu = cpu;
    }
}

/// The timed figures, base ÷ head.
pub struct Figures {
    /// One per work both sides offer.
    pub figures: Vec<Box<dyn Figure>>,
    /// Works the head offers and the base does not (new figures, not gated until the next
    /// update), with what each measures.
    pub head_only: Vec<(String, String)>,
}

/// Starts the two sides, `base` and `head` (`harness` executables), and pairs their works.
///
/// # Errors
/// A side cannot start or does not speak the protocol.
pub fn figures(base: &Path, head: &Path) -> Result<Figures> {
    let base = Rc::new(RefCell::new(Side::spawn(base, "base")?));
    let head = Rc::new(RefCell::new(Side::spawn(head, "head")?));
    let mut figures: Vec<Box<dyn Figure>> = Vec::new();
    let mut head_only = Vec::new();
    let offered = head.borrow().works.clone();
    for (name, (calls, what)) in offered {
        if base.borrow().works.contains_key(&name) {
            figures.push(Box::new(Paired {
                name,
                what,
                calls,
                base: base.clone(),
                head: head.clone(),
            }));
        } else {
            head_only.push((name, what));
        }
    }
    Ok(Figures { figures, head_only })
}

/// One repetition of `fig`: the reference side once and the measured side once per entry of
/// `levels` (burn units per call), in an order that rotates with `rep` so that no side always
/// runs first, all on one processor (the next in turn: a virtual machine's processors are not
/// equally loaded, and both sides of a pair must meet the same one). Returns a (reference,
/// measured) pair per level, the reference shared.
///
/// # Errors
/// A side failed to run.
pub fn repetition(fig: &mut dyn Figure, rep: usize, levels: &[u64]) -> Result<Vec<Pair>> {
    let cpus = allowed_cpus();
    // Each processor for as many repetitions as there are orders, so that every order meets
    // every processor.
    let n = levels.len() + 1;
    fig.pin(cpus[rep / n % cpus.len()]);
    let mut times = vec![0.0; n];
    for k in 0..n {
        let i = (k + rep) % n;
        times[i] = if i == 0 {
            fig.reference()?
        } else {
            fig.measured(levels[i - 1])?
        };
    }
    Ok(times[1..].iter().map(|&m| [times[0], m]).collect())
}

/// Whether a figure's repetitions pin it down: the 95% interval's half-width is at most half
/// the figure's noise threshold (`noise`), so a slowdown of twice the threshold puts the whole
/// interval beyond it.
pub fn settled(pairs: &[Pair], noise: f64) -> bool {
    let (lo, hi) = ratio_interval(pairs);
    (hi - lo) / 2.0 <= noise / 2.0 * paired_ratio(pairs)
}

/// Every figure measured at least `reps` and at most `4 × reps` times, the figures taking turns
/// within each repetition: a figure stops once [`settled`] at its threshold from `noise`, so a
/// quiet machine pays for `reps` and a noisy one for more, not for a wider interval.
///
/// # Errors
/// A figure failed to run.
pub fn measure_ratios(
    figs: &mut [Box<dyn Figure>],
    reps: usize,
    noise: impl Fn(&str) -> f64,
    mut progress: impl FnMut(&str),
) -> Result<BTreeMap<String, Vec<Pair>>> {
    let mut out: BTreeMap<String, Vec<Pair>> = BTreeMap::new();
    for rep in 0..reps * 4 {
        let pending: Vec<&mut Box<dyn Figure>> = figs
            .iter_mut()
            .filter(|f| {
                let done = out.get(f.name()).map_or(&[][..], |v| &v[..]);
                rep < reps || !settled(done, noise(f.name()))
            })
            .collect();
        if pending.is_empty() {
            break;
        }
        progress(&format!(
            "timed figures: repetition {} ({} not yet within half their threshold)",
            rep + 1,
            pending.len()
        ));
        for fig in pending {
            let r = repetition(fig.as_mut(), rep, &[0])?;
            out.entry(fig.name().into()).or_default().push(r[0]);
        }
    }
    Ok(out)
}

/// Frames composed per measurement.
const COMPOSE_ROUNDS: u64 = 160;

struct Compositor {
    compose: Compose,
}

impl Compositor {
    fn new() -> Self {
        Compositor {
            compose: Compose::new(1280, 720, 8),
        }
    }
}

impl Work for Compositor {
    fn name(&self) -> &'static str {
        "compositor"
    }

    fn what(&self) -> &'static str {
        "the CPU compositor drawing 8 layers on a 720p frame, 160 frames, on the side's thread \
         CPU clock"
    }

    fn calls(&self) -> u64 {
        COMPOSE_ROUNDS
    }

    fn run(&mut self, units: u64) -> Result<f64> {
        let start = thread_cpu();
        for _ in 0..COMPOSE_ROUNDS {
            self.compose.frame();
            burn(units);
        }
        Ok(thread_cpu() - start)
    }
}

/// Frames per stream measurement.
const STREAM_FRAMES: u64 = 60;

/// The stream's configuration: 720p ultrafast, one x264 thread, CPU renderer.
struct StreamBench {
    cfg: streamer::config::StreamConfig,
}

impl StreamBench {
    fn new() -> Result<Self> {
        streamer::encode::init_ffmpeg()?;
        let mut cfg = streamer::config::StreamConfig::default();
        cfg.encoder.pipeline.threads = 1;
        cfg.renderer.backend = streamer::config::RenderBackend::Cpu;
        Ok(StreamBench { cfg })
    }

    /// Process CPU seconds of a whole stream of [`STREAM_FRAMES`] with `probe`.
    fn stream<P: Probe>(&self, probe: &P) -> Result<f64> {
        let start = process_cpu();
        let mut s =
            streamer::stream::Stream::open(&self.cfg, &streamer::output::Output::Null, probe)?;
        s.run(STREAM_FRAMES, streamer::stream::Pacing::Max)?;
        s.finish()?;
        Ok(process_cpu() - start)
    }
}

/// A probe that burns `units` on the encoder's thread as each frame's encode starts, then
/// passes the mark on: the injected regression of the stream figures.
struct Slowed<'a, P> {
    inner: &'a P,
    units: u64,
}

impl<P: Probe> Probe for Slowed<'_, P> {
    fn mark(&self, point: Point, frame: u64) {
        if point == Point::EncodeStart {
            burn(self.units);
        }
        self.inner.mark(point, frame);
    }

    fn mark_at(&self, point: Point, frame: u64, at: std::time::Instant) {
        if point == Point::EncodeStart {
            burn(self.units);
        }
        self.inner.mark_at(point, frame, at);
    }
}

/// The whole stream, with the no-op probe or with the recorder.
struct StreamWork {
    bench: StreamBench,
    recorded: bool,
}

impl StreamWork {
    fn with<P: Probe>(&self, probe: &P, units: u64) -> Result<f64> {
        if units == 0 {
            self.bench.stream(probe)
        } else {
            self.bench.stream(&Slowed {
                inner: probe,
                units,
            })
        }
    }
}

impl Work for StreamWork {
    fn name(&self) -> &'static str {
        if self.recorded {
            "stream_recorded"
        } else {
            "stream"
        }
    }

    fn what(&self) -> &'static str {
        if self.recorded {
            "the same stream with the recorder as its probe (a histogram at every monitoring \
             point), process CPU time for 60 frames"
        } else {
            "the whole stream (render, compose, pipeline, encoder wrapper, libx264 at \
             ultrafast on one thread) to a null output, process CPU time for 60 frames of 720p"
        }
    }

    fn calls(&self) -> u64 {
        STREAM_FRAMES
    }

    fn run(&mut self, units: u64) -> Result<f64> {
        if self.recorded {
            self.with(&crate::record::Recorder::new(), units)
        } else {
            self.with(&NoProbe, units)
        }
    }
}
