//! Adaptive bitrate: the controller that steers the encoder's target from the publisher's
//! connection (`adaptive.bitrate`; see [`crate::config::AdaptiveBitrate`]).
//!
//! The signal is the media written but not yet on the wire ([`NetQuality::queued_media_ms`]),
//! as in OBS's dynamic bitrate. Above `triggerMs` the target drops to the measured
//! throughput (what the server acknowledged over the last second) less `marginPercent`, at most once per `holdMs`, never below `minKbps`, and only ever
//! down. With queued media under a quarter of `triggerMs` for `clearMs`, the target steps up
//! by `stepUpPercent` of the configured bitrate, up to it. Between the two, it holds, so a
//! steady link never makes it move. Above `dropMs` non-keyframes are dropped before they are
//! sent until the queue is back under `triggerMs`.
//!
//! The controller is plain state over samples and their times, so it runs on recorded traces
//! in tests; every change it makes is an [`AdaptEvent`] with its time and the signal behind
//! it.

use crate::config::AdaptiveBitrate;
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
}

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

    /// One sample of the connection at `t_ms`; returns the changes it makes, in order.
    pub fn update(&mut self, t_ms: u64, q: &NetQuality) -> Vec<AdaptEvent> {
        let c = &self.cfg;
        let queued = q.queued_media_ms;
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
        if queued > trigger {
            self.clear_since_ms = None;
            let held = self
                .last_cut_ms
                .is_some_and(|at| t_ms.saturating_sub(at) < u64::from(c.hold_ms));
            let throughput = throughput_kbps(q);
            if !held && throughput > 0.0 {
                let to = ((throughput * (1.0 - f64::from(c.margin_percent) / 100.0)) as u32)
                    .max(c.min_kbps)
                    .min(self.configured_kbps);
                if to < self.target_kbps {
                    event(
                        AdaptChange::Bitrate {
                            from: self.target_kbps,
                            to,
                        },
                        format!(
                            "queued media {queued:.0} ms > {} ms; throughput {throughput:.0} kbit/s",
                            c.trigger_ms
                        ),
                    );
                    self.target_kbps = to;
                    self.last_cut_ms = Some(t_ms);
                }
            }
        } else if queued < trigger / 4.0 {
            let since = *self.clear_since_ms.get_or_insert(t_ms);
            if self.target_kbps < self.configured_kbps
                && t_ms.saturating_sub(since) >= u64::from(c.clear_ms)
            {
                let step = (u64::from(self.configured_kbps) * u64::from(c.step_up_percent) / 100)
                    .max(1) as u32;
                let to = (self.target_kbps + step).min(self.configured_kbps);
                event(
                    AdaptChange::Bitrate {
                        from: self.target_kbps,
                        to,
                    },
                    format!(
                        "queued media under {:.0} ms for {} ms",
                        trigger / 4.0,
                        c.clear_ms
                    ),
                );
                self.target_kbps = to;
                self.clear_since_ms = Some(t_ms);
            }
        } else {
            self.clear_since_ms = None;
        }
        events
    }
}

/// What the link carries now, kbit/s: what the server acknowledged over the last second where
/// known, else the smaller of the publisher's send rate and the kernel's delivery-rate
/// estimate.
fn throughput_kbps(q: &NetQuality) -> f64 {
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

    fn controller() -> BitrateController {
        BitrateController::new(&AdaptiveBitrate::default(), 6000)
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
    fn a_clear_link_raises_it_step_by_step_to_the_configured_bitrate() {
        let mut c = controller();
        run(&mut c, &[(0, 900.0, 1000.0)]);
        assert_eq!(c.target_kbps(), 850);
        // Clear from 1 s on: a step of 600 every 2 s.
        let trace: Vec<_> = (30..1000).map(|i| (i * 33, 10.0, 2000.0)).collect();
        let e = run(&mut c, &trace);
        let steps: Vec<u32> = e
            .iter()
            .map(|e| match e.change {
                AdaptChange::Bitrate { to, .. } => to,
                _ => 0,
            })
            .collect();
        assert_eq!(
            steps,
            [1450, 2050, 2650, 3250, 3850, 4450, 5050, 5650, 6000]
        );
        assert!(e.windows(2).all(|w| w[1].t_ms - w[0].t_ms >= 2000));
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
