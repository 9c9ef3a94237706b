//! A shaped link on this machine: a network namespace of its own (its own loopback), where
//! the kernel limits the traffic sent to one TCP port: an `htb` qdisc on the namespace's `lo`,
//! a class at the link's rate and a `u32` filter on the destination port, so the publisher →
//! server direction is shaped and the server → players direction is not. Only `htb` and `u32`
//! are used (this machine's kernel has no `netem`). The rate changes while streams run
//! (`tc class change`).
//!
//! A thread enters the namespace with [`ShapedLink::enter`]; every socket it opens from then
//! on, and every thread it starts, is inside. The namespace and its qdisc go when the link is
//! dropped (`ip netns del` runs even after a panic, through `Drop`); one left by a run killed
//! outright (Ctrl-C) is removed by the next run, since its process is gone.
//!
//! Needs root (network namespaces and `tc`) and iproute2's `ip` and `tc`; without them
//! [`ShapedLink::create`] says exactly what is missing.
//!
//! A point run through a shaped link samples the stream every [`SAMPLE_MS`] into a
//! [`LinkSample`] timeline, and [`LinkFigures`] times what the guide's network adaptation is
//! for: how long after the link is cut the media queued unsent is short again, how long after
//! it comes back the stream regains its bitrate, and how often each player stalled.

use std::path::Path;
use std::process::Command;

/// Why a shaped link could not be made or changed.
#[derive(Debug, thiserror::Error)]
pub enum ShapeError {
    #[error(
        "a shaped link needs root (a network namespace and tc): run as root, e.g. `sudo cargo \
         xtask …`"
    )]
    NotRoot,
    #[error("`{command}` failed: {why}")]
    Command { command: String, why: String },
    #[error("entering the network namespace {name}: {why}")]
    Enter { name: String, why: String },
}

/// A network namespace with a shaped loopback.
pub struct ShapedLink {
    name: String,
}

/// Runs `ip`/`tc` with `args`; the error names the whole command.
fn run(program: &str, args: &[&str]) -> Result<(), ShapeError> {
    let shown = format!("{program} {}", args.join(" "));
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| ShapeError::Command {
            command: shown.clone(),
            why: format!("{e} (install iproute2)"),
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(ShapeError::Command {
            command: shown,
            why: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

impl ShapedLink {
    /// A new namespace (named after this process and `tag`) with its loopback up and an
    /// `htb` qdisc whose default class is unlimited.
    ///
    /// # Errors
    /// Not root, or `ip`/`tc` failed.
    pub fn create(tag: &str) -> Result<Self, ShapeError> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err(ShapeError::NotRoot);
        }
        remove_orphans();
        let name = format!("sm-{}-{tag}", std::process::id());
        run("ip", &["netns", "add", &name])?;
        let link = ShapedLink { name };
        let n = link.name.as_str();
        // Packets the size of an Ethernet link's, one at a time through the shaper: with
        // loopback's segmentation offload, TCP hands the qdisc up to 64 KiB at once even at an
        // MTU of 1500, and a 1.5 Mbit/s class then delivers in bursts a third of a second
        // apart (measured: reads 363 ms apart, against 13 ms with one segment per packet), a
        // stall no real link of that rate causes.
        let lo = format!("-n {n} link set lo mtu 1500 gso_max_segs 1 up");
        run("ip", &lo.split(' ').collect::<Vec<_>>())?;
        run(
            "tc",
            &[
                "-n", n, "qdisc", "add", "dev", "lo", "root", "handle", "1:", "htb", "default",
                "10",
            ],
        )?;
        run(
            "tc",
            &[
                "-n", n, "class", "add", "dev", "lo", "parent", "1:", "classid", "1:10", "htb",
                "rate", "10gbit", "quantum", "60000",
            ],
        )?;
        Ok(link)
    }

    /// The namespace's name (`ip -n NAME …`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Moves the calling thread into the namespace.
    ///
    /// # Errors
    /// The namespace cannot be opened or entered.
    pub fn enter(&self) -> Result<(), ShapeError> {
        let err = |why: String| ShapeError::Enter {
            name: self.name.clone(),
            why,
        };
        let file = std::fs::File::open(format!("/run/netns/{}", self.name))
            .map_err(|e| err(e.to_string()))?;
        // SAFETY: setns on an open namespace file descriptor affects only this thread.
        let rc = unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&file), libc::CLONE_NEWNET) };
        if rc == 0 {
            Ok(())
        } else {
            Err(err(std::io::Error::last_os_error().to_string()))
        }
    }

    /// Limits traffic to TCP `port` (inside the namespace) to `kbps`.
    ///
    /// # Errors
    /// `tc` failed.
    pub fn shape_port(&self, port: u16, kbps: u32) -> Result<(), ShapeError> {
        let n = self.name.as_str();
        let rate = format!("{kbps}kbit");
        run(
            "tc",
            &[
                "-n", n, "class", "add", "dev", "lo", "parent", "1:", "classid", "1:20", "htb",
                "rate", &rate, "ceil", &rate,
            ],
        )?;
        let port = port.to_string();
        run(
            "tc",
            &[
                "-n", n, "filter", "add", "dev", "lo", "parent", "1:", "protocol", "ip", "u32",
                "match", "ip", "dport", &port, "0xffff", "flowid", "1:20",
            ],
        )
    }

    /// Changes the shaped port's rate.
    ///
    /// # Errors
    /// `tc` failed.
    pub fn set_rate(&self, kbps: u32) -> Result<(), ShapeError> {
        let rate = format!("{kbps}kbit");
        run(
            "tc",
            &[
                "-n", &self.name, "class", "change", "dev", "lo", "parent", "1:", "classid",
                "1:20", "htb", "rate", &rate, "ceil", &rate,
            ],
        )
    }
}

/// Removes the namespaces of processes that are gone (a run killed before its `Drop`, by
/// Ctrl-C or a signal): `sm-<pid>-…` whose pid no longer runs.
fn remove_orphans() {
    for name in orphans(Path::new("/run/netns")) {
        let _ = run("ip", &["netns", "del", &name]);
    }
}

/// The entries of `dir` named `sm-<pid>-…` (what a run makes for itself: a namespace, a
/// cgroup) whose process no longer runs.
pub(crate) fn orphans(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| {
            name.strip_prefix("sm-")
                .and_then(|rest| rest.split('-').next())
                .and_then(|p| p.parse::<u32>().ok())
                .is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists())
        })
        .collect()
}

impl Drop for ShapedLink {
    fn drop(&mut self) {
        // Removing the namespace removes its loopback and qdisc with it.
        let _ = run("ip", &["netns", "del", &self.name]);
    }
}

/// One sample of a stream through a shaped link (every [`SAMPLE_MS`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LinkSample {
    /// Since the measured window began.
    pub t_ms: u64,
    /// The link's rate then, kbit/s.
    pub link_kbps: u32,
    /// The encoder's target (adaptive bitrate; 0 without), kbit/s.
    pub target_kbps: u64,
    /// Encoded media handed to the connection since the last sample, kbit/s.
    pub sent_kbps: f64,
    /// What the server acknowledged over the last second, kbit/s.
    pub acked_kbps: f64,
    /// Media written but not yet on the wire, ms.
    pub queued_ms: f64,
    /// Players that received no frame since the last sample (a coarser view of stalls, over
    /// time).
    pub players_stalled: u32,
    /// How far behind real time the players are, against the window's start, ms (see
    /// [`crate::cli_link`]; None before any frame).
    #[serde(default)]
    pub lag_ms: Option<f64>,
}

/// What a stream through a shaped link did.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LinkFigures {
    pub schedule: Vec<(f64, u32)>,
    pub timeline: Vec<LinkSample>,
    /// From the first cut of the link's rate to the media queued unsent back under
    /// [`QUEUED_OK_MS`] (0 when it never went over; None when not within the window).
    pub cap_recovery_ms: Option<f64>,
    /// From the link's rate going back up to the server acknowledging ≥ 90% of the
    /// configured bitrate (None when not within the window).
    pub lift_regain_ms: Option<f64>,
    /// Each player's stall ratio: the time it went more than two frame intervals without a
    /// frame (of every longer gap between two frames' arrivals, the part beyond two
    /// intervals) ÷ the window's time.
    pub stall_ratio: Vec<f64>,
    /// Glass-to-glass latency (capture to a player's receipt) of the frames the players
    /// received while the link was cut (from the cut to the lift, or to the window's end),
    /// p50 and p99, ms.
    #[serde(default)]
    pub capped_e2e_ms: Option<(f64, f64)>,
    /// CPU the publisher spent sampling its connection over the window, ms (see
    /// [`streamer::adapt::network::NetQuality::sampling_cpu_ms`]).
    #[serde(default)]
    pub sampling_cpu_ms: Option<f64>,
    /// The window's length, ms.
    #[serde(default)]
    pub window_ms: f64,
    /// When the window began, ms after the stream opened (the time base of adaptation
    /// events).
    #[serde(default)]
    pub window_start_ms: u64,
}

/// Sampling interval of a shaped run, ms (over two frame intervals at 30 fps: a sample with
/// no new frame is a stall).
pub const SAMPLE_MS: u64 = 100;
/// Media queued unsent under this counts as recovered, ms.
pub const QUEUED_OK_MS: f64 = 500.0;

/// When the schedule first cuts the link's rate, s, and when it next raises it again (None:
/// it never does).
pub fn cap_and_lift<T: PartialOrd + Copy>(schedule: &[(f64, T)]) -> Option<(f64, Option<f64>)> {
    let (t_cap, k_cap) = schedule
        .windows(2)
        .find(|w| w[1].1 < w[0].1)
        .map(|w| (w[1].0, w[1].1))?;
    let lift = schedule
        .iter()
        .find(|(t, k)| *t > t_cap && *k > k_cap)
        .map(|(t, _)| *t);
    Some((t_cap, lift))
}

/// A schedule's value `t_s` into the window (the link's rate, a CPU quota; the default before
/// the first step).
pub fn rate_at<T: Copy + Default>(schedule: &[(f64, T)], t_s: f64) -> T {
    schedule
        .iter()
        .take_while(|(at, _)| *at <= t_s)
        .last()
        .map_or(T::default(), |(_, k)| *k)
}

impl LinkFigures {
    /// The figures of a timeline for a stream configured at `configured_kbps`, with each
    /// player's time stalled over the window of `window_ms`.
    pub fn of(
        schedule: Vec<(f64, u32)>,
        timeline: Vec<LinkSample>,
        configured_kbps: u32,
        stalled_ms: &[f64],
        window_ms: f64,
    ) -> Self {
        let cap = cap_and_lift(&schedule);
        let lift = cap.and_then(|(_, lift)| lift);
        let ms = |s: f64| s * 1000.0;
        let cap_recovery_ms = cap.and_then(|(t_cap, _)| {
            let after: Vec<&LinkSample> = timeline
                .iter()
                .filter(|s| s.t_ms as f64 >= ms(t_cap))
                .collect();
            match after.iter().position(|s| s.queued_ms >= QUEUED_OK_MS) {
                None => Some(0.0),
                Some(i) => after[i..]
                    .iter()
                    .find(|s| s.queued_ms < QUEUED_OK_MS)
                    .map(|s| s.t_ms as f64 - ms(t_cap)),
            }
        });
        let lift_regain_ms = lift.and_then(|t_lift| {
            timeline
                .iter()
                .filter(|s| s.t_ms as f64 >= ms(t_lift))
                .find(|s| s.acked_kbps >= 0.9 * f64::from(configured_kbps))
                .map(|s| s.t_ms as f64 - ms(t_lift))
        });
        let window = window_ms.max(1.0);
        LinkFigures {
            schedule,
            timeline,
            cap_recovery_ms,
            lift_regain_ms,
            stall_ratio: stalled_ms.iter().map(|&k| k / window).collect(),
            capped_e2e_ms: None,
            sampling_cpu_ms: None,
            window_ms,
            window_start_ms: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t_ms: u64, queued_ms: f64, acked_kbps: f64) -> LinkSample {
        LinkSample {
            t_ms,
            link_kbps: 0,
            target_kbps: 0,
            sent_kbps: 0.0,
            acked_kbps,
            queued_ms,
            players_stalled: 0,
            lag_ms: None,
        }
    }

    #[test]
    fn recovery_and_regain_are_timed_from_the_schedules_cap_and_lift() {
        let schedule = vec![(0.0, 8000), (1.0, 1500), (3.0, 8000)];
        assert_eq!(rate_at(&schedule, 0.5), 8000);
        assert_eq!(rate_at(&schedule, 1.0), 1500);
        assert_eq!(rate_at(&schedule, 9.0), 8000);
        let timeline = vec![
            sample(900, 0.0, 2500.0),
            sample(1200, 800.0, 1400.0),
            sample(1700, 300.0, 1400.0),
            sample(3100, 0.0, 1500.0),
            sample(3400, 0.0, 2300.0),
        ];
        let f = LinkFigures::of(schedule, timeline, 2500, &[700.0, 0.0], 3500.0);
        assert_eq!(f.cap_recovery_ms, Some(700.0));
        assert_eq!(f.lift_regain_ms, Some(400.0));
        assert_eq!(f.stall_ratio, [0.2, 0.0]);
    }
}
