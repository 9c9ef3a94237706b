//! The soak's verdict: the memory trend, the wave bottoms' descriptors and threads, missed
//! frames and the server's exit, each a [`Check`].

use super::{Check, SoakOptions, SoakSample, Trough};
use streamer::rtmp::player::PlayerReport;

/// Least-squares slope of `points` (x, y).
pub fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let (mx, my) = points
        .iter()
        .fold((0.0, 0.0), |(a, b), (x, y)| (a + x / n, b + y / n));
    let (num, den) = points.iter().fold((0.0, 0.0), |(a, b), (x, y)| {
        (a + (x - mx) * (y - my), b + (x - mx) * (x - mx))
    });
    if den == 0.0 { 0.0 } else { num / den }
}

/// The share of its own baseline the server's memory may rise by over a soak, at the least.
pub const BASELINE_SHARE: f64 = 0.01;

/// The fitted line's value where the points start (MiB): what the server held when the
/// warm-up ended.
fn baseline_mib(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    let Some(first) = points.first() else {
        return 0.0;
    };
    let (mx, my) = points
        .iter()
        .fold((0.0, 0.0), |(a, c), (x, y)| (a + x / n, c + y / n));
    my + slope(points) * (first.0 - mx)
}

/// What the checks found.
pub(super) struct Verdict {
    pub checks: Vec<Check>,
    /// MiB per 10 minutes after the warm-up.
    pub rss_slope: f64,
    pub players_missed: u64,
    pub players_excused: u64,
}

/// Every check over a soak's samples, wave bottoms, players and the server's exit.
pub(super) fn verdict(
    opts: &SoakOptions,
    samples: &[SoakSample],
    troughs: &[Trough],
    idle_threads: u64,
    reports: &[(PlayerReport, bool)],
    server_exit: Option<&String>,
) -> Verdict {
    let rss_points: Vec<(f64, f64)> = samples
        .iter()
        .filter(|s| s.t_s >= opts.warmup_s)
        .map(|s| (s.t_s / 60.0, s.rss_bytes as f64 / 1048576.0))
        .collect();
    let rss_slope = slope(&rss_points) * 10.0;
    // The rise the fitted line makes over the run after the warm-up, against the run's own
    // baseline: what it held when the warm-up ended.
    let minutes = match (rss_points.first(), rss_points.last()) {
        (Some(a), Some(b)) => b.0 - a.0,
        _ => 0.0,
    };
    let rise = rss_slope / 10.0 * minutes;
    let baseline = baseline_mib(&rss_points);
    let allowed = (opts.rss_bound_mib * minutes / 10.0).max(BASELINE_SHARE * baseline);
    let missed: Vec<&(PlayerReport, bool)> = reports.iter().filter(|(r, _)| r.missed > 0).collect();
    let players_missed = missed.iter().filter(|(_, excused)| !excused).count() as u64;
    let players_excused = missed.iter().filter(|(_, excused)| *excused).count() as u64;
    // Each wave bottom's excess of one kind, in order.
    let excesses = |of: fn(&Trough) -> i64| {
        troughs
            .iter()
            .map(|t| of(t).to_string())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let checks = vec![
        Check {
            what: format!(
                "resident memory after the first {:.0} s rises no more than {} MiB per 10 min \
                 or {:.0}% of what it held then (the run's own baseline), whichever allows \
                 more",
                opts.warmup_s,
                opts.rss_bound_mib,
                BASELINE_SHARE * 100.0
            ),
            passed: rss_points.len() >= 3 && rise <= allowed,
            measured: if rss_points.len() >= 3 {
                format!(
                    "{rss_slope:+.3} MiB per 10 min over {} samples: {rise:+.3} MiB in \
                     {minutes:.1} min, {allowed:.3} MiB allowed (baseline {baseline:.1} MiB)",
                    rss_points.len()
                )
            } else {
                "too short to fit (nothing after the warm-up)".into()
            },
        },
        Check {
            what: "file descriptors back to idle (plus one per open connection) at the bottom \
                   of every wave"
                .into(),
            passed: !troughs.is_empty() && troughs.iter().all(|t| t.fd_excess <= 0),
            measured: format!(
                "{} wave bottoms, excess {}",
                troughs.len(),
                excesses(|t| t.fd_excess)
            ),
        },
        Check {
            what: "threads back to idle at the bottom of every wave".into(),
            passed: !troughs.is_empty() && troughs.iter().all(|t| t.thread_excess <= 0),
            measured: format!(
                "idle {idle_threads}; excess {}",
                excesses(|t| t.thread_excess)
            ),
        },
        Check {
            what: "no frame missed by a player that kept reading".into(),
            passed: players_missed == 0,
            measured: format!(
                "{} players, {} missed frames the publisher sent ({} more missed only what the \
                 publisher itself dropped)",
                reports.len(),
                players_missed,
                players_excused
            ),
        },
        Check {
            what: "the server never exited".into(),
            passed: server_exit.is_none(),
            measured: server_exit
                .cloned()
                .unwrap_or_else(|| "ran throughout".into()),
        },
    ];
    Verdict {
        checks,
        rss_slope,
        players_missed,
        players_excused,
    }
}
