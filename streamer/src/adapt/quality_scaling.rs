//! Quality scaling under CPU load (`adaptive.quality`; see [`QualityController`]).

use super::{AdaptChange, AdaptEvent, Size};
use crate::config::{AdaptiveQuality, Preset};

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
