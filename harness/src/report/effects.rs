//! Which settings of a suite moved a figure beyond run-to-run spread, and which did not.
//!
//! For each axis, the points that differ only in it (every other axis equal) are compared
//! figure by figure: a figure moved where two of them have runs whose ranges do not overlap
//! and medians more than [`MIN_SHIFT`] apart. The axis moves the figure where it does so in at
//! least half of those comparisons' groups, so one unlucky group does not make an effect. An
//! axis that moved nothing has **no measurable effect on this machine**: the main report shows
//! only its first value's rows (every row stays in the suite's detail page). A suite run once a
//! point is not judged.

use crate::results::{PointResult, Repetition, Results};
use std::collections::BTreeMap;

/// The least difference of medians that counts, as a share of the larger: below it, parted
/// ranges are the runs' own luck.
pub const MIN_SHIFT: f64 = 0.03;

/// A figure of one run (None where the run did not measure it).
type Figure = fn(&Repetition) -> Option<f64>;

/// The figures judged, from each run's (join time and latency where players were measured).
const FIGURES: [(&str, Figure); 7] = [
    ("fps", |r| Some(r.fps)),
    ("CPU", |r| Some(r.cpu_percent)),
    ("memory", |r| Some(r.rss_bytes as f64)),
    ("bitrate", |r| Some(r.bitrate_kbps)),
    ("drops", |r| Some(r.dropped_frames as f64)),
    ("join time", |r| r.join_ms),
    ("latency", |r| r.latency_ms),
];

/// One axis and what it did.
#[derive(Debug, Clone, PartialEq)]
pub struct AxisEffect {
    pub path: String,
    /// The figures it moved (empty: no measurable effect).
    pub moved: Vec<&'static str>,
}

/// What a suite's axes did; `None` where it cannot be judged (a point run once).
pub fn effects(r: &Results) -> Option<Vec<AxisEffect>> {
    let first = r.points.first()?;
    if r.points.iter().any(|p| p.repetitions.len() < 2) {
        return None;
    }
    let axes: Vec<&str> = first.axes.iter().map(|a| a.path.as_str()).collect();
    Some(
        axes.iter()
            .enumerate()
            .filter(|(i, _)| varies(r, *i))
            .map(|(i, path)| AxisEffect {
                path: path.to_string(),
                moved: moved_by(r, i),
            })
            .collect(),
    )
}

/// Whether axis `i` takes more than one value over the points.
fn varies(r: &Results, i: usize) -> bool {
    let mut values = r
        .points
        .iter()
        .filter_map(|p| p.axes.get(i))
        .map(|a| &a.value);
    let Some(first) = values.next() else {
        return false;
    };
    values.any(|v| v != first)
}

/// The figures axis `i` moves (see the module's rule).
fn moved_by(r: &Results, i: usize) -> Vec<&'static str> {
    // Points that differ only in axis `i`.
    let mut groups: BTreeMap<Vec<&str>, Vec<&PointResult>> = BTreeMap::new();
    for p in &r.points {
        let rest: Vec<&str> = p
            .axes
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, a)| a.value.as_str())
            .collect();
        groups.entry(rest).or_default().push(p);
    }
    let groups: Vec<&Vec<&PointResult>> = groups.values().filter(|g| g.len() > 1).collect();
    FIGURES
        .iter()
        .filter(|(_, of)| {
            // Only the groups whose every run measured the figure.
            let judged: Vec<_> = groups
                .iter()
                .filter(|g| {
                    g.iter()
                        .all(|p| p.repetitions.iter().all(|r| of(r).is_some()))
                })
                .collect();
            let moved = judged.iter().filter(|g| group_moved(g, *of)).count();
            !judged.is_empty() && moved * 2 >= judged.len()
        })
        .map(|(name, _)| *name)
        .collect()
}

/// Whether two points of `group` part on figure `of`.
fn group_moved(group: &[&PointResult], of: Figure) -> bool {
    let stats: Vec<(f64, f64, f64)> = group
        .iter()
        .map(|p| {
            let mut v: Vec<f64> = p.repetitions.iter().filter_map(of).collect();
            v.sort_by(f64::total_cmp);
            (v[0], crate::stats::median(&v), v[v.len() - 1])
        })
        .collect();
    stats.iter().enumerate().any(|(k, a)| {
        stats[k + 1..].iter().any(|b| {
            let apart = a.2 < b.0 || b.2 < a.0;
            let larger = a.1.abs().max(b.1.abs());
            apart && larger > 0.0 && (a.1 - b.1).abs() > MIN_SHIFT * larger
        })
    })
}

/// The suite's points as the main report shows them: an axis with no measurable effect at its
/// first value only.
pub fn shown(r: &Results, effects: Option<&[AxisEffect]>) -> Results {
    let mut out = r.clone();
    let Some(effects) = effects else {
        return out;
    };
    for e in effects.iter().filter(|e| e.moved.is_empty()) {
        let Some(first) = r
            .points
            .first()
            .and_then(|p| p.axes.iter().find(|a| a.path == e.path))
            .map(|a| a.value.clone())
        else {
            continue;
        };
        out.points.retain(|p| {
            p.axes
                .iter()
                .find(|a| a.path == e.path)
                .is_none_or(|a| a.value == first)
        });
    }
    out
}

/// The most rows a suite's table shows in the main report; a longer one is narrowed to one
/// value of one axis ([`narrowed`]) and its every row stays in the detail page.
pub const MAIN_ROWS: usize = 20;

/// `r`'s points narrowed for the main report when more than [`MAIN_ROWS`]: held at the first
/// value of the axis that moved the fewest figures (then the one that keeps the most rows)
/// among those that bring the table within [`MAIN_ROWS`]; with the line that says so. `r`
/// unchanged and no line where it fits, or where no single axis brings it within.
pub fn narrowed(
    r: &Results,
    effects: Option<&[AxisEffect]>,
    details: &str,
) -> (Results, Option<String>) {
    let Some(first) = r.points.first().filter(|_| r.points.len() > MAIN_ROWS) else {
        return (r.clone(), None);
    };
    let moved = |path: &str| {
        effects
            .and_then(|es| es.iter().find(|e| e.path == path))
            .map(|e| e.moved.clone())
            .unwrap_or_default()
    };
    let held = |path: &str, value: &str| -> Vec<PointResult> {
        r.points
            .iter()
            .filter(|p| {
                p.axes
                    .iter()
                    .find(|a| a.path == path)
                    .is_none_or(|a| a.value == value)
            })
            .cloned()
            .collect()
    };
    let best = first
        .axes
        .iter()
        .enumerate()
        .filter(|(i, _)| varies(r, *i))
        .map(|(_, a)| (a, held(&a.path, &a.value)))
        .filter(|(_, kept)| kept.len() <= MAIN_ROWS)
        .min_by_key(|(a, kept)| (moved(&a.path).len(), std::cmp::Reverse(kept.len())));
    let Some((axis, kept)) = best else {
        return (r.clone(), None);
    };
    let what = match moved(&axis.path) {
        m if m.is_empty() => "no figure measurably".to_string(),
        m => m.join(", "),
    };
    let line = format!(
        "**Shown here:** the {} of {} rows at `{}` = {} (of the swept settings, it moves the \
         fewest figures: {what}); every row is in [the details]({details}).\n",
        kept.len(),
        r.points.len(),
        axis.path,
        axis.value,
    );
    let mut out = r.clone();
    out.points = kept;
    (out, Some(line))
}

/// The line under a suite's table in the main report: what each axis moved, which moved
/// nothing, or why none was judged.
pub fn line(r: &Results, effects: Option<&[AxisEffect]>, details: &str) -> String {
    let Some(effects) = effects else {
        return format!(
            "**Effects: not judged (1 run a point):** a difference between two rows here may \
             be the runs' own spread. Every point's figures: [the details]({details}).\n"
        );
    };
    let runs = r
        .points
        .iter()
        .map(|p| p.repetitions.len())
        .min()
        .unwrap_or(0);
    let moving: Vec<String> = effects
        .iter()
        .filter(|e| !e.moved.is_empty())
        .map(|e| format!("`{}` moves {}", e.path, e.moved.join(", ")))
        .collect();
    let still: Vec<String> = effects
        .iter()
        .filter(|e| e.moved.is_empty())
        .map(|e| format!("`{}`", e.path))
        .collect();
    let mut s = format!(
        "**Effects** ({runs}+ runs a point; a setting moves a figure where, the others equal, \
         its runs' ranges part and their medians differ by over {:.0}%): {}.",
        MIN_SHIFT * 100.0,
        if moving.is_empty() {
            "none moved any figure".to_string()
        } else {
            moving.join("; ")
        }
    );
    if !still.is_empty() {
        s.push_str(&format!(
            " **No measurable effect on this machine:** {} (shown at their first value; every \
             row is in [the details]({details})).",
            still.join(", ")
        ));
    } else {
        s.push_str(&format!(
            " Every point's figures: [the details]({details})."
        ));
    }
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::AxisValue;

    fn point(values: [&str; 2], fps: [f64; 3]) -> PointResult {
        let path = ["a", "b"];
        let mut p: PointResult = serde_json::from_value(serde_json::json!({
            "id": format!("a={}, b={}", values[0], values[1]),
            "axes": [],
            "config": streamer::config::StreamConfig::default(),
            "fps_min": 0.0, "fps_max": 0.0, "fps": 0.0, "cpu_percent": 0.0, "rss_bytes": 0,
            "dropped_frames": 0, "bitrate_kbps": 0.0, "encoder": "", "notes": [],
            "unmatched_marks": 0, "spans": {}, "rss_timeline": [], "repetitions": []
        }))
        .unwrap();
        p.axes = (0..2)
            .map(|i| AxisValue {
                path: path[i].into(),
                value: values[i].into(),
            })
            .collect();
        p.repetitions = fps
            .iter()
            .map(|&f| Repetition {
                fps: f,
                cpu_percent: 100.0,
                rss_bytes: 1 << 20,
                dropped_frames: 0,
                bitrate_kbps: 1000.0,
                join_ms: None,
                latency_ms: None,
            })
            .collect();
        p
    }

    /// The test data's results, whose points each test replaces.
    fn sample() -> Results {
        serde_json::from_str(
            &std::fs::read_to_string(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/data/results-sample.json"
            ))
            .unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn an_axis_moves_a_figure_only_beyond_the_runs_spread() {
        let mut r = sample();
        // `a` doubles fps; `b` moves it within the runs' spread.
        r.points = vec![
            point(["1", "x"], [100.0, 101.0, 99.0]),
            point(["1", "y"], [100.5, 98.0, 102.0]),
            point(["2", "x"], [200.0, 201.0, 199.0]),
            point(["2", "y"], [199.0, 202.0, 200.5]),
        ];
        let e = effects(&r).unwrap();
        assert_eq!(e[0].moved, ["fps"]);
        assert!(e[1].moved.is_empty(), "{e:?}");
        // The main report keeps `b` at its first value only.
        let kept = shown(&r, Some(&e));
        assert_eq!(kept.points.len(), 2);
        assert!(kept.points.iter().all(|p| p.axes[1].value == "x"));
        let text = line(&r, Some(&e), "stream/REPORT.md");
        assert!(text.contains("`a` moves fps"), "{text}");
        assert!(
            text.contains("No measurable effect on this machine:** `b`"),
            "{text}"
        );
        // Run once, nothing is judged.
        for p in &mut r.points {
            p.repetitions.truncate(1);
        }
        assert!(effects(&r).is_none());
        assert!(line(&r, None, "x").contains("not judged (1 run a point)"));
    }

    #[test]
    fn join_time_and_latency_are_judged_where_every_run_measured_them() {
        let mut r = sample();
        // `a` (a GOP cache, say) moves only the late joiner's wait; `b` moves nothing.
        let mut points = vec![
            point(["on", "x"], [30.0, 30.0, 30.0]),
            point(["on", "y"], [30.0, 30.0, 30.0]),
            point(["off", "x"], [30.0, 30.0, 30.0]),
            point(["off", "y"], [30.0, 30.0, 30.0]),
        ];
        for (k, p) in points.iter_mut().enumerate() {
            for (j, rep) in p.repetitions.iter_mut().enumerate() {
                rep.join_ms = Some(if k < 2 { 1.0 } else { 900.0 } + j as f64);
                rep.latency_ms = Some(4.0 + j as f64 * 0.1);
            }
        }
        r.points = points.clone();
        let e = effects(&r).unwrap();
        assert_eq!(e[0].moved, ["join time"]);
        assert!(e[1].moved.is_empty(), "{e:?}");
        // A run that did not measure it leaves its group unjudged for that figure.
        points[2].repetitions[0].join_ms = None;
        points[3].repetitions[0].join_ms = None;
        r.points = points;
        assert!(effects(&r).unwrap()[0].moved.is_empty());
    }

    #[test]
    fn a_long_table_is_held_at_the_axis_that_moves_the_fewest_figures() {
        let mut r = sample();
        // 5 × 6 = 30 rows: `a` doubles fps at each step, `b` moves nothing.
        r.points = (1..=5)
            .flat_map(|a| {
                (0..6).map(move |b| {
                    let f = 100.0 * f64::from(a);
                    point([&a.to_string(), &b.to_string()], [f, f + 1.0, f - 1.0])
                })
            })
            .collect();
        let e = effects(&r).unwrap();
        let (shown, line) = narrowed(&r, Some(&e), "d.md");
        assert_eq!(
            shown.points.len(),
            5,
            "held at b = 0: one row per value of a"
        );
        assert!(shown.points.iter().all(|p| p.axes[1].value == "0"));
        let line = line.unwrap();
        assert!(line.contains("the 5 of 30 rows at `b` = 0"), "{line}");
        assert!(line.contains("no figure measurably"), "{line}");
        r.points.truncate(MAIN_ROWS);
        assert_eq!(
            narrowed(&r, Some(&e), "d.md").1,
            None,
            "a table that fits stays whole"
        );
    }
}
