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

use super::network::{NetQuality, RECENT};
use super::{AdaptChange, AdaptEvent};
use crate::config::AdaptiveBitrate;

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
        let queued = (q.queued_media_ms - q.min_rtt_ms).max(0.0);
        let trigger = f64::from(self.cfg.trigger_ms);
        let mut changes = Vec::new();
        changes.extend(self.drops(queued));
        // Half the trigger is enough while the link carries clearly less than the target (what
        // the server acknowledged lately under the target less the margin): a cut link shows in
        // the acknowledgements at once, well before its queue reaches the trigger, and every
        // frame sent at the old rate meanwhile crosses slower than real time.
        let early = queued > trigger / 2.0
            && q.recent_acked_kbps > 0.0
            && q.recent_acked_kbps < f64::from(self.target_kbps) * self.margin();
        if queued > trigger || early {
            self.clear_since_ms = None;
            changes.extend(self.cut(t_ms, queued, q));
        } else if queued < trigger / 4.0 {
            changes.extend(self.step_up(t_ms));
        } else {
            self.clear_since_ms = None;
        }
        changes
            .into_iter()
            .map(|(change, signal)| AdaptEvent {
                t_ms,
                change,
                signal,
            })
            .collect()
    }

    /// 1 less `marginPercent`.
    fn margin(&self) -> f64 {
        1.0 - f64::from(self.cfg.margin_percent) / 100.0
    }

    /// Starts dropping non-keyframes above `dropMs` of queued media, stops under `triggerMs`.
    fn drops(&mut self, queued: f64) -> Option<(AdaptChange, String)> {
        let c = &self.cfg;
        if !self.dropping && queued > f64::from(c.drop_ms) {
            self.dropping = true;
            Some((
                AdaptChange::DropStart,
                format!("queued media {queued:.0} ms > {} ms", c.drop_ms),
            ))
        } else if self.dropping && queued < f64::from(c.trigger_ms) {
            self.dropping = false;
            Some((
                AdaptChange::DropStop,
                format!("queued media {queued:.0} ms < {} ms", c.trigger_ms),
            ))
        } else {
            None
        }
    }

    /// With media queued past the trigger (or past half of it on a link carrying clearly less
    /// than the target): the cut to the throughput less the margin and the drain room, unless
    /// one is held.
    fn cut(&mut self, t_ms: u64, queued: f64, q: &NetQuality) -> Option<(AdaptChange, String)> {
        let c = &self.cfg;
        let trigger = f64::from(c.trigger_ms);
        // Within holdMs of a cut (of an early cut, once the throughput measured is all
        // after it), or while what was queued at the cut drains, no more.
        let hold = if self.early_cut {
            u64::from(c.hold_ms).min(RECENT.as_millis() as u64)
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
        if held || throughput <= 0.0 {
            return None;
        }
        // Room to drain what is queued within drainMs, on top of the margin.
        let drain = if c.drain_ms > 0 {
            q.unacked_bytes as f64 * 8.0 / f64::from(c.drain_ms)
        } else {
            0.0
        };
        let to = ((throughput * self.margin() - drain).max(0.0) as u32)
            .max(c.min_kbps)
            .min(self.configured_kbps);
        if to >= self.target_kbps {
            return None;
        }
        let why = if queued > trigger {
            format!("{} ms", c.trigger_ms)
        } else {
            format!(
                "{:.0} ms with the link under {}% of the target",
                trigger / 2.0,
                100 - c.margin_percent
            )
        };
        let change = AdaptChange::Bitrate {
            from: self.target_kbps,
            to,
        };
        let signal = format!(
            "queued media {queued:.0} ms > {why}; throughput {throughput:.0} kbit/s; {:.0} kB \
             queued",
            q.unacked_bytes as f64 / 1000.0
        );
        self.target_kbps = to;
        self.last_cut_ms = Some(t_ms);
        self.ceiling_kbps = Some(throughput as u32);
        self.unacked_at_cut = Some(q.unacked_bytes);
        self.early_cut = queued <= trigger;
        self.streak = 0;
        Some((change, signal))
    }

    /// With the queue under a quarter of the trigger: the next step up once it has been clear
    /// long enough (see [`update`](Self::update)).
    fn step_up(&mut self, t_ms: u64) -> Option<(AdaptChange, String)> {
        let knee = self.ceiling_kbps.map(|c| self.knee(c));
        let c = &self.cfg;
        let since = *self.clear_since_ms.get_or_insert(t_ms);
        let clear_for = t_ms.saturating_sub(since);
        let clear = u64::from(c.clear_ms);
        let base =
            (u64::from(self.configured_kbps) * u64::from(c.step_up_percent) / 100).max(1) as u32;
        let target = self.target_kbps;
        let (to, why) = match (self.ceiling_kbps, knee) {
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
                    let over =
                        (f64::from(ceiling) * (1.0 + f64::from(c.margin_percent) / 100.0)) as u32;
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
        }?;
        let to = to.min(self.configured_kbps);
        let signal = format!(
            "queued media under {:.0} ms for {clear_for} ms ({why})",
            f64::from(c.trigger_ms) / 4.0
        );
        self.target_kbps = to;
        self.clear_since_ms = Some(t_ms);
        self.unacked_at_cut = None;
        Some((AdaptChange::Bitrate { from: target, to }, signal))
    }
}

/// What the link carries now, kbit/s: what the server acknowledged lately (over the last
/// [`RECENT`], else the last second) where known, else the smaller of the
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
}
