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

/// The standard error of [`slope`]'s estimate, from the points' scatter about the fitted line
/// (0 for fewer than 3 points or no spread in x).
pub fn slope_error(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if n < 3.0 {
        return 0.0;
    }
    let b = slope(points);
    let (mx, my) = points
        .iter()
        .fold((0.0, 0.0), |(a, c), (x, y)| (a + x / n, c + y / n));
    let sxx: f64 = points.iter().map(|(x, _)| (x - mx) * (x - mx)).sum();
    if sxx == 0.0 {
        return 0.0;
    }
    let sse: f64 = points
        .iter()
        .map(|(x, y)| {
            let r = y - (my + b * (x - mx));
            r * r
        })
        .sum();
    (sse / (n - 2.0) / sxx).sqrt()
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
    // The bound: what is allowed, plus what the run's own samples cannot tell from noise
    // (three standard errors of the fitted slope).
    let noise = slope_error(&rss_points) * 10.0;
    let bound = opts.rss_bound_mib + 3.0 * noise;
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
                "resident memory slope after the first {:.0} s ≤ {} MiB per 10 min + 3 standard \
                 errors of the slope (the run's own noise)",
                opts.warmup_s, opts.rss_bound_mib
            ),
            passed: rss_points.len() >= 3 && rss_slope <= bound,
            measured: if rss_points.len() >= 3 {
                format!(
                    "{rss_slope:+.3} MiB per 10 min over {} samples (bound {bound:.3}: \
                     standard error {noise:.3})",
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
