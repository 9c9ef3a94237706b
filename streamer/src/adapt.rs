//! Adaptive bitrate: the controller that steers the encoder's target from the publisher's
//! connection (`adaptive.bitrate`; see [`crate::config::AdaptiveBitrate`]).
//!
//! The signal is the media written but not yet delivered ([`NetQuality::queued_media_ms`]),
//! as in OBS's dynamic bitrate. Above `triggerMs` (above half of it while the server
//! acknowledges less than the target less `marginPercent`: a link that fell shows in the
//! acknowledgements before its queue reaches the trigger, and every frame sent at the old rate
//! meanwhile crosses slower than real time) the target drops to the measured
//! throughput (what the server acknowledged lately) less `marginPercent`, less the rate that
//! drains the bytes already queued within `drainMs`, at most once per `holdMs` (after an early
//! cut, once the throughput is measured wholly after it), never below `minKbps`, and only ever
//! down. With queued media under a quarter of `triggerMs` for `clearMs`, the target steps up
//! by `stepUpPercent` of the configured bitrate, up to it. Between the two, it holds, so a
//! steady link never makes it move. Above `dropMs` non-keyframes are dropped before they are
//! sent until the queue is back under `triggerMs`.
//!
//! The controller is plain state over samples and their times, so it runs on recorded traces
//! in tests; every change it makes is an [`AdaptEvent`] with its time and the signal behind
//! it.

use crate::config::{AdaptiveBitrate, AdaptiveQuality, Preset};
use crate::rtmp::quality::NetQuality;
use serde::{Deserialize, Serialize};

/// What the controller changed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum AdaptChange {
    /// The encoder's target bitrate, kbit/s.
    Bitrate { from: u32, to: u32 },
    /// Non-keyframes are dropped before they are sent from now on.
    DropStart,
    /// … and no longer.
    DropStop,
    /// Workers taking frames (smart worker scaling).
    Workers { from: u32, to: u32 },
    /// The encoder's preset (quality scaling under load).
    Preset { from: Preset, to: Preset },
    /// The size of the picture encoded (quality scaling under load, below ultrafast).
    Resolution { from: Size, to: Size },
}

impl std::fmt::Display for AdaptChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AdaptChange::Bitrate { from, to } => write!(f, "bitrate {from} → {to} kbit/s"),
            AdaptChange::DropStart => f.write_str("drops non-keyframes"),
            AdaptChange::DropStop => f.write_str("sends every frame again"),
            AdaptChange::Workers { from, to } => write!(f, "workers {from} → {to}"),
            AdaptChange::Preset { from, to } => {
                write!(f, "preset {} → {}", from.as_str(), to.as_str())
            }
            AdaptChange::Resolution { from, to } => write!(f, "resolution {from} → {to}"),
        }
    }
}

/// A change, when it was made (ms since the stream started) and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdaptEvent {
    pub t_ms: u64,
    #[serde(flatten)]
    pub change: AdaptChange,
    /// The signal that caused it, e.g. `queued media 812 ms > 500 ms; throughput 1480 kbit/s`.
    pub signal: String,
}

/// The adaptive bitrate controller.
#[derive(Debug, Clone)]
pub struct BitrateController {
    cfg: AdaptiveBitrate,
    configured_kbps: u32,
    target_kbps: u32,
    last_cut_ms: Option<u64>,
    clear_since_ms: Option<u64>,
    dropping: bool,
    /// The throughput measured at the last cut, until the link has carried more (see
    /// [`BitrateController::update`]).
    ceiling_kbps: Option<u32>,
    /// Steps up since the last cut or probe (each one half as large again as the last).
    streak: u32,
    /// The bytes queued at the last cut (while fewer are, the queue is draining).
    unacked_at_cut: Option<u64>,
    /// The last cut came at half the trigger, on a throughput measured partly before the
    /// link changed: the next may follow once the measure is all after it.
    early_cut: bool,
}

/// At the knee, the link must be clear this many times `clearMs` before a probe above the
/// ceiling.
const PROBE_WAIT: u64 = 3;

impl BitrateController {
    /// A controller for a stream configured at `configured_kbps`.
    pub fn new(cfg: &AdaptiveBitrate, configured_kbps: u32) -> Self {
        BitrateController {
            cfg: cfg.clone(),
            configured_kbps,
            target_kbps: configured_kbps,
            last_cut_ms: None,
            clear_since_ms: None,
            dropping: false,
            ceiling_kbps: None,
            streak: 0,
            unacked_at_cut: None,
            early_cut: false,
        }
    }

    /// The target bitrate now, kbit/s.
    pub fn target_kbps(&self) -> u32 {
        self.target_kbps
    }

    /// Whether non-keyframes are to be dropped before they are sent.
    pub fn dropping(&self) -> bool {
        self.dropping
    }

    /// The highest target reached by plain steps while a ceiling stands: the ceiling less
    /// half the margin.
    fn knee(&self, ceiling: u32) -> u32 {
        (f64::from(ceiling) * (1.0 - f64::from(self.cfg.margin_percent) / 200.0)) as u32
    }

    /// One sample of the connection at `t_ms`; returns the changes it makes, in order.
    ///
    /// The signal is the media queued beyond one round trip (`queued_media_ms` less the
    /// connection's minimum round-trip time: what is in flight on a long path is not a
    /// queue). Stepping up: below the knee (the throughput measured at the last cut, less half
    /// the margin), a step every `clearMs`; at the knee, a probe above the throughput after
    /// `clearMs` × [`PROBE_WAIT`]; once the link has stayed clear above it for `clearMs`, the
    /// ceiling is gone and each step is half as large again as the one before, so a link that
    /// came back is regained in a few seconds while a capped one is probed rarely.
    pub fn update(&mut self, t_ms: u64, q: &NetQuality) -> Vec<AdaptEvent> {
        let knee = self.ceiling_kbps.map(|c| self.knee(c));
        let c = &self.cfg;
        let queued = (q.queued_media_ms - q.min_rtt_ms).max(0.0);
        let trigger = f64::from(c.trigger_ms);
        let mut events = Vec::new();
        let mut event = |change, signal: String| {
            events.push(AdaptEvent {
                t_ms,
                change,
                signal,
            })
        };
        if !self.dropping && queued > f64::from(c.drop_ms) {
            self.dropping = true;
            event(
                AdaptChange::DropStart,
                format!("queued media {queued:.0} ms > {} ms", c.drop_ms),
            );
        } else if self.dropping && queued < trigger {
            self.dropping = false;
            event(
                AdaptChange::DropStop,
                format!("queued media {queued:.0} ms < {} ms", c.trigger_ms),
            );
        }
        // Half the trigger is enough while the link carries clearly less than the target (what
        // the server acknowledged lately under the target less the margin): a cut link shows in
        // the acknowledgements at once, well before its queue reaches the trigger, and every
        // frame sent at the old rate meanwhile crosses slower than real time.
        let margin = 1.0 - f64::from(c.margin_percent) / 100.0;
        let early = queued > trigger / 2.0
            && q.recent_acked_kbps > 0.0
            && q.recent_acked_kbps < f64::from(self.target_kbps) * margin;
        if queued > trigger || early {
            self.clear_since_ms = None;
            // Within holdMs of a cut (of an early cut, once the throughput measured is all
            // after it), or while what was queued at the cut drains, no more.
            let hold = if self.early_cut {
                u64::from(c.hold_ms).min(crate::rtmp::quality::RECENT.as_millis() as u64)
            } else {
                u64::from(c.hold_ms)
            };
            let held = self
                .last_cut_ms
                .is_some_and(|at| t_ms.saturating_sub(at) < hold)
                || self
                    .unacked_at_cut
                    .is_some_and(|before| q.unacked_bytes < before);
            let throughput = throughput_kbps(q);
            if !held && throughput > 0.0 {
                // Room to drain what is queued within drainMs, on top of the margin.
                let drain = if c.drain_ms > 0 {
                    q.unacked_bytes as f64 * 8.0 / f64::from(c.drain_ms)
                } else {
                    0.0
                };
                let to = ((throughput * margin - drain).max(0.0) as u32)
                    .max(c.min_kbps)
                    .min(self.configured_kbps);
                if to < self.target_kbps {
                    event(
                        AdaptChange::Bitrate {
                            from: self.target_kbps,
                            to,
                        },
                        format!(
                            "queued media {queued:.0} ms > {}; throughput {throughput:.0} \
                             kbit/s; {:.0} kB queued",
                            if queued > trigger {
                                format!("{} ms", c.trigger_ms)
                            } else {
                                format!(
                                    "{:.0} ms with the link under {}% of the target",
                                    trigger / 2.0,
                                    100 - c.margin_percent
                                )
                            },
                            q.unacked_bytes as f64 / 1000.0
                        ),
                    );
                    self.target_kbps = to;
                    self.last_cut_ms = Some(t_ms);
                    self.ceiling_kbps = Some(throughput as u32);
                    self.unacked_at_cut = Some(q.unacked_bytes);
                    self.early_cut = queued <= trigger;
                    self.streak = 0;
                }
            }
        } else if queued < trigger / 4.0 {
            let since = *self.clear_since_ms.get_or_insert(t_ms);
            let clear_for = t_ms.saturating_sub(since);
            let clear = u64::from(c.clear_ms);
            let base = (u64::from(self.configured_kbps) * u64::from(c.step_up_percent) / 100).max(1)
                as u32;
            let target = self.target_kbps;
            let step = match (self.ceiling_kbps, knee) {
                _ if target >= self.configured_kbps || clear_for < clear => None,
                // Above the ceiling and clear: the link carries more than it did.
                (Some(ceiling), _) if target > ceiling => {
                    self.ceiling_kbps = None;
                    self.streak = 1;
                    Some((target + base, "clear above the last cut's throughput"))
                }
                // At the knee: probe above the ceiling, after waiting longer.
                (Some(ceiling), Some(knee)) if target >= knee => (clear_for >= clear * PROBE_WAIT)
                    .then(|| {
                        let over = (f64::from(ceiling)
                            * (1.0 + f64::from(c.margin_percent) / 100.0))
                            as u32;
                        (
                            over.max(target + base),
                            "probing above the last cut's throughput",
                        )
                    }),
                (Some(_), Some(knee)) => Some(((target + base).min(knee), "clear")),
                _ => {
                    let grown = f64::from(base) * 1.5f64.powi(self.streak.min(16) as i32);
                    self.streak += 1;
                    Some((target + grown as u32, "clear"))
                }
            };
            if let Some((to, why)) = step {
                let to = to.min(self.configured_kbps);
                event(
                    AdaptChange::Bitrate { from: target, to },
                    format!(
                        "queued media under {:.0} ms for {clear_for} ms ({why})",
                        trigger / 4.0
                    ),
                );
                self.target_kbps = to;
                self.clear_since_ms = Some(t_ms);
                self.unacked_at_cut = None;
            }
        } else {
            self.clear_since_ms = None;
        }
        events
    }
}

/// What the link carries now, kbit/s: what the server acknowledged lately (over the last
/// [`crate::rtmp::quality::RECENT`], else the last second) where known, else the smaller of the
/// publisher's send rate and the kernel's delivery-rate estimate. Called while media queues,
/// so the acknowledgements run at the link's rate.
fn throughput_kbps(q: &NetQuality) -> f64 {
    if q.recent_acked_kbps > 0.0 {
        return q.recent_acked_kbps;
    }
    if q.acked_rate_kbps > 0.0 {
        return q.acked_rate_kbps;
    }
    [q.send_rate_kbps, q.delivery_rate_kbps]
        .into_iter()
        .filter(|&r| r > 0.0)
        .reduce(f64::min)
        .unwrap_or(0.0)
}

/// A picture size, pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Size {
    pub width: u32,
    pub height: u32,
}

impl std::fmt::Display for Size {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}", self.width, self.height)
    }
}

impl Size {
    /// `percent` of this size in each dimension, rounded down to even numbers (4:2:0 chroma),
    /// at least 16 × 16.
    pub fn scaled(self, percent: u32) -> Size {
        let dim = |d: u32| ((u64::from(d) * u64::from(percent) / 100) as u32 & !1).max(16);
        Size {
            width: dim(self.width),
            height: dim(self.height),
        }
    }
}

/// One step of quality scaling's ladder: a preset at a picture size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rung {
    pub preset: Preset,
    pub size: Size,
}

/// Quality scaling under load: steers the encoder's preset, and below ultrafast the size of
/// the picture it encodes, from how long encoding takes against the frame interval
/// (`adaptive.quality`).
///
/// The steps form a ladder: the configured preset at full size, each faster preset down to
/// ultrafast, then ultrafast at 75 %, 50 % and 25 % of the width and height, down to
/// `minScalePercent`. The load is a moving average of the encode time per frame over the frame
/// interval; the stream's first second and a new encoder's first frames are not counted (they
/// are slow). Above `behindPercent` for `holdMs` (at once above 1.5 times it), or with frames
/// dropped for falling behind, it steps one down the ladder, at most once per `holdMs`.
///
/// Stepping back up is predicted to cost the load now times what the step above costs over
/// what this one costs. That ratio is measured at every switch between the two, from the
/// frames just before and just after it (so both under the same conditions, whatever the
/// machine was doing), and until then taken as 1.4 for a preset and the ratio of pixels for a
/// size. The step up happens when the prediction stays under `headroomPercent` for `clearMs`
/// (so a step down, which lowers the load, does not by itself bring the step back).
#[derive(Debug, Clone)]
pub struct QualityController {
    cfg: AdaptiveQuality,
    /// Fastest first; the configured step is the last.
    ladder: Vec<Rung>,
    at: usize,
    /// Moving average of encode time ÷ frame interval.
    load: Option<f64>,
    over_since: Option<u64>,
    clear_since: Option<u64>,
    last_switch: Option<u64>,
    /// Per step `i` of the ladder: what step `i + 1` costs over what step `i` costs, assumed.
    prior: Vec<f64>,
    /// … and as last measured, with when (ms).
    measured: Vec<Option<(f64, u64)>>,
    /// This visit of the current step: frames since the switch, the first measured frames'
    /// mean once there are enough, and the latest frames' encode loads.
    visit: Visit,
    /// The step left last and its latest frames' mean load, until this visit's first
    /// frames are measured.
    came_from: Option<(usize, f64)>,
    /// The last step up (from which step, when), until it has held for twice `clearMs`.
    last_up: Option<(usize, u64)>,
    /// Per step: steps up from it that were undone soon after, in a row.
    failed_up: Vec<u32>,
}

#[derive(Debug, Clone, Default)]
struct Visit {
    frames: u32,
    first: Vec<f64>,
    latest: std::collections::VecDeque<f64>,
}

impl Visit {
    fn mean(v: impl ExactSizeIterator<Item = f64>) -> Option<f64> {
        let n = v.len();
        (n >= MEASURE / 2).then(|| v.sum::<f64>() / n as f64)
    }

    fn latest_mean(&self) -> Option<f64> {
        Self::mean(self.latest.iter().copied())
    }
}

/// The moving average's weight of each new frame.
const LOAD_ALPHA: f64 = 0.1;
/// The stream's first frames are not counted: the encoder is warming up, ms.
const WARMUP_MS: u64 = 1000;
/// Nor are a reopened encoder's first frames.
const SKIP_FRAMES: u32 = 3;
/// Frames measured on each side of a switch for the cost ratio of the two steps.
const MEASURE: usize = 10;
/// A measured cost ratio is half way back to the assumed one after this long, ms.
const RATIO_HALF_LIFE_MS: u64 = 10_000;
/// A step up undone soon after doubles the wait before the next, up to 2^this times.
const MAX_BACKOFF: u32 = 3;
/// The cost of one preset over the next faster one, until measured.
const PRESET_RATIO: f64 = 1.4;
/// Below ultrafast, the picture's sizes, percent of the configured.
const SCALES: [u32; 3] = [75, 50, 25];

impl QualityController {
    /// A controller for a stream configured with `preset` at `size`.
    pub fn new(cfg: &AdaptiveQuality, preset: Preset, size: Size) -> Self {
        let mut ladder: Vec<Rung> = SCALES
            .iter()
            .rev()
            .filter(|&&s| s >= cfg.min_scale_percent)
            .map(|&s| Rung {
                preset: Preset::ALL[0],
                size: size.scaled(s),
            })
            .collect();
        let top = Preset::ALL.iter().position(|&p| p == preset).unwrap_or(0);
        ladder.extend(
            Preset::ALL[..=top]
                .iter()
                .map(|&preset| Rung { preset, size }),
        );
        let prior: Vec<f64> = ladder
            .windows(2)
            .map(|w| {
                let pixels = |r: &Rung| f64::from(r.size.width) * f64::from(r.size.height);
                if w[0].size == w[1].size {
                    PRESET_RATIO
                } else {
                    pixels(&w[1]) / pixels(&w[0])
                }
            })
            .collect();
        let n = ladder.len();
        QualityController {
            cfg: cfg.clone(),
            at: n - 1,
            ladder,
            load: None,
            over_since: None,
            clear_since: None,
            last_switch: None,
            measured: vec![None; prior.len()],
            prior,
            visit: Visit::default(),
            came_from: None,
            last_up: None,
            failed_up: vec![0; n],
        }
    }

    /// The step now: its preset and picture size.
    pub fn rung(&self) -> Rung {
        self.ladder[self.at]
    }

    /// The preset now.
    pub fn preset(&self) -> Preset {
        self.rung().preset
    }

    /// The load now: encode time over the frame interval, moving average.
    pub fn load(&self) -> f64 {
        self.load.unwrap_or(0.0)
    }

    /// One frame encoded in `encode_ms` of a `interval_ms` frame interval at `t_ms` (since the
    /// stream started), with `late` frames dropped as late since the last call; returns the
    /// changes made (a step changes the preset, the size, or both).
    pub fn update(
        &mut self,
        t_ms: u64,
        encode_ms: f64,
        interval_ms: f64,
        late: u64,
    ) -> Vec<AdaptEvent> {
        self.visit.frames += 1;
        let sample = encode_ms / interval_ms.max(1e-3);
        let counted = t_ms >= WARMUP_MS && self.visit.frames > SKIP_FRAMES;
        if counted {
            self.measure(t_ms, sample);
            self.load = Some(match self.load {
                Some(l) => l + LOAD_ALPHA * (sample - l),
                None => sample,
            });
        }
        let Some(load) = self.load.filter(|_| counted || late > 0) else {
            return Vec::new();
        };
        let c = &self.cfg;
        let held = self
            .last_switch
            .is_some_and(|at| t_ms.saturating_sub(at) < u64::from(c.hold_ms));
        if let Some((from, at)) = self.last_up
            && t_ms.saturating_sub(at) >= 2 * u64::from(c.clear_ms)
        {
            // The step up held.
            self.failed_up[from] = 0;
            self.last_up = None;
        }
        let i = self.at;
        let behind = load > f64::from(c.behind_percent) / 100.0;
        if behind || late > 0 {
            self.clear_since = None;
            // Behind for holdMs, or at once with frames lost or the load past half as much
            // again as the line (no point watching a stream fall further behind).
            let since = *self.over_since.get_or_insert(t_ms);
            let far = load > 1.5 * f64::from(c.behind_percent) / 100.0;
            let long = late > 0 || far || t_ms.saturating_sub(since) >= u64::from(c.hold_ms);
            if !held && long && i > 0 {
                let signal = if late > 0 {
                    format!(
                        "{late} frames dropped as late; encode load {:.0}%",
                        load * 100.0
                    )
                } else if far {
                    format!(
                        "encode load {:.0}% > 1.5 × {}%",
                        load * 100.0,
                        c.behind_percent
                    )
                } else {
                    format!(
                        "encode load {:.0}% > {}% for {} ms",
                        load * 100.0,
                        c.behind_percent,
                        c.hold_ms
                    )
                };
                return self.switch(t_ms, i - 1, signal);
            }
            return Vec::new();
        }
        self.over_since = None;
        if i + 1 == self.ladder.len() || held {
            self.clear_since = None;
            return Vec::new();
        }
        let predicted = load * self.ratio(i, t_ms);
        if predicted >= f64::from(c.headroom_percent) / 100.0 {
            self.clear_since = None;
            return Vec::new();
        }
        let since = *self.clear_since.get_or_insert(t_ms);
        let clear_ms = u64::from(c.clear_ms) << self.failed_up[i].min(MAX_BACKOFF);
        if t_ms.saturating_sub(since) < clear_ms {
            return Vec::new();
        }
        let up = self.ladder[i + 1];
        let signal = format!(
            "{} at {} predicted at {:.0}% < {}% for {clear_ms} ms (encode load {:.0}%)",
            up.preset.as_str(),
            up.size,
            predicted * 100.0,
            c.headroom_percent,
            load * 100.0
        );
        let changes = self.switch(t_ms, i + 1, signal);
        self.last_up = Some((i, t_ms));
        changes
    }

    /// What step `i + 1` costs over what step `i` costs, as measured or assumed so far.
    /// at `t_ms`: a measurement fades back toward the assumed ratio with a half-life of
    /// `RATIO_HALF_LIFE_MS`, since what was measured under a passing squeeze (a CPU quota's
    /// steep climb) is not what the steps cost once it is gone.
    pub fn ratio(&self, i: usize, t_ms: u64) -> f64 {
        let prior = self.prior[i];
        match self.measured[i] {
            Some((m, at)) => {
                let age = t_ms.saturating_sub(at) as f64 / RATIO_HALF_LIFE_MS as f64;
                prior + (m - prior) * 0.5f64.powf(age)
            }
            None => prior,
        }
    }

    /// Counts one frame's encode load on this visit; once this visit's first frames are
    /// measured, the ratio between this step and the one just left is updated.
    fn measure(&mut self, t_ms: u64, sample: f64) {
        let v = &mut self.visit;
        if v.first.len() < MEASURE {
            v.first.push(sample);
            if v.first.len() == MEASURE
                && let Some((from, before)) = self.came_from.take()
                && let Some(here) = Visit::mean(v.first.iter().copied())
                && before > 0.0
                && here > 0.0
            {
                let at = self.at;
                if from == at + 1 {
                    self.measured[at] = Some((before / here, t_ms));
                } else if at == from + 1 {
                    self.measured[from] = Some((here / before, t_ms));
                }
            }
        }
        if v.latest.len() == MEASURE {
            v.latest.pop_front();
        }
        v.latest.push_back(sample);
    }

    fn switch(&mut self, t_ms: u64, to: usize, signal: String) -> Vec<AdaptEvent> {
        // A step down soon after a step up from here: the prediction was wrong (a CPU quota
        // makes the cost past it climb steeply); wait twice as long before the next try.
        if let Some((from, at)) = self.last_up.take() {
            let soon = t_ms.saturating_sub(at) < 2 * u64::from(self.cfg.clear_ms);
            if to == from && soon {
                self.failed_up[from] += 1;
            }
        }
        let (from, to_rung) = (self.ladder[self.at], self.ladder[to]);
        self.came_from = self.visit.latest_mean().map(|m| (self.at, m));
        self.visit = Visit::default();
        self.at = to;
        self.last_switch = Some(t_ms);
        self.over_since = None;
        self.clear_since = None;
        let mut changes = Vec::new();
        if from.preset != to_rung.preset {
            changes.push(AdaptChange::Preset {
                from: from.preset,
                to: to_rung.preset,
            });
        }
        if from.size != to_rung.size {
            changes.push(AdaptChange::Resolution {
                from: from.size,
                to: to_rung.size,
            });
        }
        changes
            .into_iter()
            .map(|change| AdaptEvent {
                t_ms,
                change,
                signal: signal.clone(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(queued_ms: f64, send_kbps: f64) -> NetQuality {
        NetQuality {
            queued_media_ms: queued_ms,
            send_rate_kbps: send_kbps,
            delivery_rate_kbps: 0.0,
            ..NetQuality::default()
        }
    }

    /// Runs a trace of `(t_ms, queued_ms, send_kbps)` and returns every event.
    fn run(c: &mut BitrateController, trace: &[(u64, f64, f64)]) -> Vec<AdaptEvent> {
        trace
            .iter()
            .flat_map(|&(t, q, s)| c.update(t, &sample(q, s)))
            .collect()
    }

    /// A controller with a 500 ms trigger, 2 s to clear and no drain room (the traces below
    /// are written for those).
    fn controller() -> BitrateController {
        let cfg = AdaptiveBitrate {
            trigger_ms: 500,
            clear_ms: 2000,
            drain_ms: 0,
            ..AdaptiveBitrate::default()
        };
        BitrateController::new(&cfg, 6000)
    }

    #[test]
    fn a_cut_leaves_room_to_drain_what_is_queued() {
        let cfg = AdaptiveBitrate {
            drain_ms: 2000,
            ..AdaptiveBitrate::default()
        };
        let mut c = BitrateController::new(&cfg, 4000);
        // 1500 kbit/s lately (the last second still says 3000): 1275 less 250 kB over 2 s.
        let q = NetQuality {
            queued_media_ms: 400.0,
            acked_rate_kbps: 3000.0,
            recent_acked_kbps: 1500.0,
            unacked_bytes: 62_500,
            ..NetQuality::default()
        };
        let e = c.update(0, &q);
        assert_eq!(
            e[0].change,
            AdaptChange::Bitrate {
                from: 4000,
                to: 1025
            }
        );
        assert!(e[0].signal.contains("62 kB queued"), "{e:?}");
    }

    #[test]
    fn a_link_carrying_clearly_less_than_the_target_cuts_at_half_the_trigger() {
        let mut c = controller();
        let q = |queued_media_ms, recent_acked_kbps| NetQuality {
            queued_media_ms,
            recent_acked_kbps,
            ..NetQuality::default()
        };
        // Half the trigger, but the link carries about the target: a keyframe's queue.
        assert!(c.update(0, &q(300.0, 5800.0)).is_empty());
        // Under half the trigger: nothing, whatever the link carries.
        assert!(c.update(33, &q(200.0, 2000.0)).is_empty());
        // Over half, with the link under the target less the margin: cut.
        let e = c.update(66, &q(300.0, 2000.0));
        assert_eq!(
            e[0].change,
            AdaptChange::Bitrate {
                from: 6000,
                to: 1700
            }
        );
        assert!(
            e[0].signal
                .contains("300 ms > 250 ms with the link under 85% of the target"),
            "{e:?}"
        );
        // Its throughput was measured partly before the link fell: the next cut needs no
        // holdMs, only a measure that is all after it.
        assert!(c.update(166, &q(400.0, 1500.0)).is_empty());
        let e = c.update(400, &q(550.0, 1500.0));
        assert_eq!(
            e[0].change,
            AdaptChange::Bitrate {
                from: 1700,
                to: 1275
            }
        );
        // That one was not early: holdMs again.
        assert!(c.update(800, &q(600.0, 1000.0)).is_empty());
    }

    #[test]
    fn a_steady_link_never_moves_it() {
        let mut c = controller();
        // 60 s of a clear link, then of a link that queues a little (under the trigger).
        let clear: Vec<_> = (0..1800).map(|i| (i * 33, 20.0, 6000.0)).collect();
        let busy: Vec<_> = (1800..3600).map(|i| (i * 33, 300.0, 6000.0)).collect();
        assert!(run(&mut c, &clear).is_empty());
        assert!(run(&mut c, &busy).is_empty());
        assert_eq!(c.target_kbps(), 6000);
    }

    #[test]
    fn a_cap_lowers_it_to_the_throughput_less_the_margin_then_holds() {
        let mut c = controller();
        // The link falls to 1500 kbit/s: media queues up.
        let e = run(&mut c, &[(1000, 100.0, 6000.0), (1033, 700.0, 1500.0)]);
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(
            e[0].change,
            AdaptChange::Bitrate {
                from: 6000,
                to: 1275
            }
        );
        assert_eq!(e[0].t_ms, 1033);
        assert!(
            e[0].signal.contains("queued media 700 ms > 500 ms"),
            "{e:?}"
        );
        // Still queued within holdMs: no second cut; after it, a cut only if lower.
        assert!(run(&mut c, &[(1500, 650.0, 1000.0)]).is_empty());
        let e = run(&mut c, &[(2100, 600.0, 1000.0)]);
        assert_eq!(
            e[0].change,
            AdaptChange::Bitrate {
                from: 1275,
                to: 850
            }
        );
        // It never goes under minKbps.
        let e = run(&mut c, &[(3200, 600.0, 100.0)]);
        assert_eq!(e[0].change, AdaptChange::Bitrate { from: 850, to: 300 });
        assert!(run(&mut c, &[(4300, 600.0, 100.0)]).is_empty());
    }

    #[test]
    fn a_clear_link_raises_it_to_the_knee_probes_then_regains_the_configured_bitrate() {
        let mut c = controller();
        // A cut at 1000 kbit/s of throughput: 850, the ceiling 1000, the knee 925.
        run(&mut c, &[(0, 900.0, 1000.0)]);
        assert_eq!(c.target_kbps(), 850);
        // Clear from 1 s on.
        let trace: Vec<_> = (30..1000).map(|i| (i * 33, 10.0, 2000.0)).collect();
        let e = run(&mut c, &trace);
        let steps: Vec<(u64, u32)> = e
            .iter()
            .map(|e| match e.change {
                AdaptChange::Bitrate { to, .. } => (e.t_ms, to),
                _ => (e.t_ms, 0),
            })
            .collect();
        // To the knee after clearMs (the trace is clear from 990 ms); a probe above the
        // ceiling (1000 + 15%) after 3 × clearMs; the ceiling gone once that stays clear for
        // clearMs; then each step half as large again (600, 900, 1350, ...). The trace's
        // samples are 33 ms apart, so each wait ends on the first sample past it.
        assert_eq!(
            steps,
            [
                (3003, 925),
                (9009, 1525),
                (11022, 2125),
                (13035, 3025),
                (15048, 4375),
                (17061, 6000)
            ]
        );
        // A queue between a quarter of the trigger and the trigger resets the clear timer.
        let mut c = controller();
        run(&mut c, &[(0, 900.0, 1000.0)]);
        let e = run(
            &mut c,
            &[
                (1000, 10.0, 0.0),
                (2500, 200.0, 0.0),
                (3500, 10.0, 0.0),
                (5000, 10.0, 0.0),
            ],
        );
        assert!(e.is_empty(), "{e:?}");
    }

    #[test]
    fn no_second_cut_while_what_was_queued_drains() {
        let mut c = controller();
        let q = |unacked_bytes, acked_rate_kbps| NetQuality {
            queued_media_ms: 800.0,
            acked_rate_kbps,
            unacked_bytes,
            ..NetQuality::default()
        };
        assert_eq!(c.update(0, &q(100_000, 1500.0)).len(), 1);
        // Past holdMs the old media still spans the queue, but fewer bytes are queued.
        assert!(c.update(1500, &q(60_000, 1000.0)).is_empty());
        // The queue grows again: cut.
        assert_eq!(c.update(1600, &q(120_000, 1000.0)).len(), 1);
    }

    #[test]
    fn the_round_trip_is_not_a_queue() {
        let mut c = controller();
        // 180 ms of a long path's round trip plus 400 ms queued: under the 500 ms trigger.
        let q = NetQuality {
            queued_media_ms: 580.0,
            min_rtt_ms: 180.0,
            acked_rate_kbps: 3000.0,
            ..NetQuality::default()
        };
        assert!(c.update(0, &q).is_empty());
        let q = NetQuality {
            queued_media_ms: 700.0,
            ..q
        };
        assert_eq!(c.update(33, &q).len(), 1);
    }

    #[test]
    fn past_the_drop_threshold_it_drops_until_the_queue_is_under_the_trigger() {
        let mut c = controller();
        let e = run(&mut c, &[(0, 2500.0, 500.0)]);
        assert_eq!(e[0].change, AdaptChange::DropStart);
        assert!(c.dropping());
        assert!(
            run(&mut c, &[(100, 900.0, 500.0)])
                .iter()
                .all(|e| e.change != AdaptChange::DropStop)
        );
        let e = run(&mut c, &[(200, 400.0, 500.0)]);
        assert_eq!(e[0].change, AdaptChange::DropStop);
        assert!(!c.dropping());
    }

    #[test]
    fn the_kernels_delivery_rate_bounds_the_throughput() {
        let q = NetQuality {
            send_rate_kbps: 4000.0,
            delivery_rate_kbps: 1000.0,
            ..NetQuality::default()
        };
        assert_eq!(throughput_kbps(&q), 1000.0);
        assert_eq!(throughput_kbps(&NetQuality::default()), 0.0);
        // What the server acknowledged is what the link carried.
        let q = NetQuality {
            acked_rate_kbps: 780.0,
            ..q
        };
        assert_eq!(throughput_kbps(&q), 780.0);
    }

    fn quality() -> QualityController {
        let cfg = AdaptiveQuality {
            enabled: true,
            ..AdaptiveQuality::default()
        };
        QualityController::new(&cfg, Preset::Medium, HD)
    }

    const HD: Size = Size {
        width: 1280,
        height: 720,
    };

    /// Feeds `(from_ms, to_ms, encode_ms)` frames at 30 fps; returns the changes.
    fn frames(c: &mut QualityController, spans: &[(u64, u64, f64)]) -> Vec<AdaptEvent> {
        let mut out = Vec::new();
        for &(from, to, ms) in spans {
            let mut t = from;
            while t < to {
                out.extend(c.update(t, ms, 33.3, 0));
                t += 33;
            }
        }
        out
    }

    fn presets(e: &[AdaptEvent]) -> Vec<(Preset, Preset)> {
        e.iter()
            .filter_map(|e| match e.change {
                AdaptChange::Preset { from, to } => Some((from, to)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn keeping_up_never_moves_the_preset() {
        let mut c = quality();
        // 60 s at 70% of the interval: under the 85% line.
        assert!(frames(&mut c, &[(0, 60_000, 23.0)]).is_empty());
        assert_eq!(c.preset(), Preset::Medium);
    }

    #[test]
    fn falling_behind_steps_faster_one_at_a_time_until_it_keeps_up() {
        let mut c = quality();
        // Medium takes 60 ms a frame; each faster preset a third less.
        let mut t = 0;
        let mut ms = 60.0;
        let mut changes = Vec::new();
        while t < 30_000 {
            for e in c.update(t, ms, 33.3, 0) {
                if matches!(e.change, AdaptChange::Preset { .. }) {
                    ms *= 2.0 / 3.0;
                }
                changes.push(e);
            }
            t += 33;
        }
        let p = presets(&changes);
        assert_eq!(
            p,
            [
                (Preset::Medium, Preset::Fast),
                (Preset::Fast, Preset::Faster),
                (Preset::Faster, Preset::Veryfast)
            ],
            "{changes:?}"
        );
        // At once after the first second (medium's 180% is past 1.5 × 85%), then after holdMs
        // each.
        let at: Vec<u64> = changes.iter().map(|e| e.t_ms).collect();
        assert_eq!(at, [1023, 1551, 2211]);
        // 17.8 ms of 33.3 (53%), and medium would take 60 ms: it stays.
        assert_eq!(c.preset(), Preset::Veryfast);
    }

    #[test]
    fn late_frames_step_at_once_and_headroom_steps_back() {
        let mut c = quality();
        frames(&mut c, &[(0, 2000, 20.0)]);
        let e = c.update(2000, 20.0, 33.3, 3);
        let [e] = e.as_slice() else {
            panic!("one step on late frames: {e:?}")
        };
        assert_eq!(
            e.change,
            AdaptChange::Preset {
                from: Preset::Medium,
                to: Preset::Fast
            }
        );
        assert!(e.signal.contains("3 frames dropped as late"), "{e:?}");
        // On fast: 16 ms a frame (48%), medium took 20 ms just before: a ratio of 1.25, so
        // medium is predicted at 60% — not under 60%; then the machine frees up: 8 ms (24%)
        // predicts 30%: back after clearMs.
        let e = frames(&mut c, &[(2033, 10_000, 16.0)]);
        assert!(e.is_empty(), "{e:?}");
        let e = frames(&mut c, &[(10_000, 25_000, 8.0)]);
        assert_eq!(presets(&e), [(Preset::Fast, Preset::Medium)], "{e:?}");
    }

    #[test]
    fn below_ultrafast_it_scales_the_picture_down_and_back_up_when_the_machine_frees() {
        let mut c = quality();
        // Encode time: 12 ms for medium at 720p (36%), each faster preset a third less,
        // proportional to the pixels; a machine 24 times as busy until 20 s.
        let cost = |r: Rung, busy: bool| {
            let faster = 5 - Preset::ALL.iter().position(|&p| p == r.preset).unwrap() as i32;
            let area = f64::from(r.size.width * r.size.height) / f64::from(1280 * 720);
            12.0 * (2.0f64 / 3.0).powi(faster) * area * if busy { 24.0 } else { 1.0 }
        };
        let mut changes = Vec::new();
        let mut t = 0;
        while t < 90_000 {
            let ms = cost(c.rung(), t < 20_000);
            changes.extend(c.update(t, ms, 33.3, 0));
            t += 33;
        }
        let said: Vec<String> = changes.iter().map(|e| e.change.to_string()).collect();
        assert_eq!(
            said,
            [
                "preset medium → fast",
                "preset fast → faster",
                "preset faster → veryfast",
                "preset veryfast → superfast",
                "preset superfast → ultrafast",
                "resolution 1280x720 → 960x540",
                "resolution 960x540 → 1280x720",
                "preset ultrafast → superfast",
                "preset superfast → veryfast",
                "preset veryfast → faster",
                "preset faster → fast",
                "preset fast → medium",
            ]
        );
        assert_eq!(
            c.rung(),
            Rung {
                preset: Preset::Medium,
                size: HD
            }
        );
        // The ratios were measured at the switches: medium over fast, full size over 75 %.
        let measured = |i: usize| c.measured[i].map(|(r, _)| r).unwrap_or(0.0);
        assert!((measured(6) - 1.5).abs() < 1e-9, "{}", measured(6));
        assert!((measured(1) - 1.0 / 0.5625).abs() < 1e-9, "{}", measured(1));
    }

    #[test]
    fn the_ladder_stops_at_min_scale_percent_and_sizes_stay_even() {
        let cfg = AdaptiveQuality {
            enabled: true,
            min_scale_percent: 25,
            ..AdaptiveQuality::default()
        };
        let odd = Size {
            width: 854,
            height: 480,
        };
        let c = QualityController::new(&cfg, Preset::Veryfast, odd);
        let sizes: Vec<String> = c.ladder.iter().map(|r| r.size.to_string()).collect();
        assert_eq!(
            sizes,
            [
                "212x120", "426x240", "640x360", "854x480", "854x480", "854x480"
            ]
        );
        let cfg = AdaptiveQuality {
            min_scale_percent: 100,
            ..cfg
        };
        assert_eq!(
            QualityController::new(&cfg, Preset::Veryfast, odd)
                .ladder
                .len(),
            3
        );
    }

    #[test]
    fn a_step_up_that_is_undone_waits_twice_as_long_before_the_next_try() {
        let mut c = quality();
        // Under a CPU quota: fast takes 10 ms (30%); medium takes 12 ms for its first 20
        // frames, then, past the quota, 40 ms (120%).
        let mut on_medium = 0;
        let mut ups = Vec::new();
        let mut t = 0;
        while t < 300_000 {
            let ms = match c.preset() {
                Preset::Medium if on_medium < 20 => 12.0,
                Preset::Medium => 40.0,
                _ => 10.0,
            };
            on_medium = if c.preset() == Preset::Medium {
                on_medium + 1
            } else {
                0
            };
            for e in c.update(t, ms, 33.3, 0) {
                if let AdaptChange::Preset {
                    to: Preset::Medium, ..
                } = e.change
                {
                    ups.push(t);
                }
            }
            t += 33;
        }
        // Each step down measures medium at 4 times fast, which fades under the 2 times that
        // fits in 22 s (two half-lives, toward the assumed 1.4); then the try waits 5 s of
        // headroom the first time, and 10, 20, 40, 40 s after each undone try.
        assert_eq!(ups.first(), Some(&28_215));
        let waits: Vec<u64> = ups.windows(2).map(|w| (w[1] - w[0]) / 1000).collect();
        assert_eq!(waits, [33, 43, 63, 63, 63], "{ups:?}");
    }
}
