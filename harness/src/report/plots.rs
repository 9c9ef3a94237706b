//! SVG plots beside the report (`results/plots/*.svg`), drawn with `plotters` (its SVG
//! backend; text is laid out without system fonts, so it works on any machine): fps per preset
//! × threads; latency by percentile per span in HdrHistogram's style (percentile on a log axis
//! of 1 ÷ (1 − p), milliseconds on a log axis) from a real-time suite; RSS over time; and, per
//! server under the same load, CPU per player and peak RSS against players.

use crate::results::Results;
use crate::scenario::GuideTable;
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;
use std::path::{Path, PathBuf};
use streamer::stream::Pacing;

const SIZE: (u32, u32) = (720, 420);
/// One distinct colour per series (more than any plot draws: every span has its own); none is
/// black, the axes' colour.
const COLORS: [RGBColor; 12] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
    RGBColor(255, 187, 120),
    RGBColor(174, 199, 232),
];

/// A plot that could not be drawn: its file and why.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PlotError(String);

/// One line of a chart.
struct Series {
    name: String,
    points: Vec<(f64, f64)>,
}

/// Adds `point` to the series called `name`, starting it if need be.
fn add(series: &mut Vec<Series>, name: &str, point: (f64, f64)) {
    match series.iter_mut().find(|s| s.name == name) {
        Some(s) => s.points.push(point),
        None => series.push(Series {
            name: name.to_string(),
            points: vec![point],
        }),
    }
}

/// Draws each of `series` as a line in its own colour (with a dot on each point when
/// `markers`) and the legend at `legend`: the part every chart here shares, whatever its axes.
fn draw_lines<'a, X, Y>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>,
    series: &[Series],
    markers: bool,
    legend: SeriesLabelPosition,
) -> Result<(), DrawingAreaErrorKind<<SVGBackend<'a> as DrawingBackend>::ErrorType>>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    for (i, s) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        chart
            .draw_series(LineSeries::new(
                s.points.iter().copied(),
                color.stroke_width(2),
            ))?
            .label(s.name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
        if markers {
            chart.draw_series(
                s.points
                    .iter()
                    .map(|&(x, y)| Circle::new((x, y), 3, color.filled())),
            )?;
        }
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(legend)
        .draw()
}

/// How a chart is laid out: its title, its axes' names and how the x axis's values are
/// labelled, whether its points are marked, and where its legend goes.
struct Layout<'a> {
    title: &'a str,
    x_label: &'a str,
    y_label: &'a str,
    x_format: &'a dyn Fn(&f64) -> String,
    markers: bool,
    legend: SeriesLabelPosition,
}

/// Draws `series` into `path` over the `x` and `y` ranges (linear or log): the one chart
/// every plot here is.
fn chart<X, Y>(
    path: &Path,
    x: X,
    y: Y,
    layout: &Layout<'_>,
    series: &[Series],
) -> Result<(), PlotError>
where
    X: AsRangedCoord<Value = f64>,
    Y: AsRangedCoord<Value = f64>,
    X::CoordDescType: Ranged<ValueType = f64> + ValueFormatter<f64>,
    Y::CoordDescType: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    let err = |e: &dyn std::fmt::Display| PlotError(format!("{}: {e}", path.display()));
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(layout.title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(x, y)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc(layout.x_label)
        .y_desc(layout.y_label)
        .x_label_formatter(layout.x_format)
        .draw()
        .map_err(|e| err(&e))?;
    draw_lines(&mut chart, series, layout.markers, layout.legend.clone()).map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

/// Draws `series` as lines with markers into `path`, on linear axes from their points.
fn line_chart(
    path: &Path,
    title: &str,
    (x_label, y_label): (&str, &str),
    series: &[Series],
) -> Result<(), PlotError> {
    let all = series.iter().flat_map(|s| s.points.iter());
    let (mut x0, mut x1, mut y1) = (f64::MAX, f64::MIN, 0.0f64);
    for &(x, y) in all {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y1 = y1.max(y);
    }
    if x0 > x1 {
        return Ok(());
    }
    if x0 == x1 {
        x1 = x0 + 1.0;
    }
    let layout = Layout {
        title,
        x_label,
        y_label,
        x_format: &|x| format!("{x}"),
        markers: true,
        legend: SeriesLabelPosition::UpperRight,
    };
    chart(path, x0..x1, 0.0..y1 * 1.1 + f64::EPSILON, &layout, series)
}

/// A plot drawn: the suite whose table it goes beside (`soak` for the soak's), its caption
/// and its file under the plots folder.
#[derive(Debug, Clone, PartialEq)]
pub struct Plot {
    pub suite: String,
    pub caption: String,
    pub file: String,
}

/// Every plot the loaded results allow, written under `dir` (any other `.svg` there removed);
/// returns each, for the report to show beside its table. A plot that fails is left out with
/// a note on stderr.
pub fn write(dir: &Path, loaded: &[Results], soak: Option<&crate::soak::SoakResults>) -> Vec<Plot> {
    let _ = std::fs::create_dir_all(dir);
    let mut made: Vec<Plot> = Vec::new();
    let mut keep = |suite: &str, caption: &str, file: &str, r: Result<bool, PlotError>| match r {
        Ok(true) => made.push(Plot {
            suite: suite.to_string(),
            caption: caption.to_string(),
            file: file.to_string(),
        }),
        Ok(false) => {}
        Err(e) => eprintln!("report: plot {file}: {e}"),
    };
    let file = |name: &str| -> PathBuf { dir.join(name) };
    if let Some(r) = loaded.iter().find(|r| r.table == GuideTable::Encoder) {
        keep(
            &r.suite,
            "Frames per second by preset and encoder threads (zero copy on)",
            "fps-preset-threads.svg",
            fps_by_preset(&file("fps-preset-threads.svg"), r),
        );
    }
    // Latency only from a real-time suite: under max pacing it is mostly the queue's wait.
    if let Some(r) = [GuideTable::Rtmp, GuideTable::Memory, GuideTable::Timing]
        .iter()
        .find_map(|t| {
            loaded
                .iter()
                .find(|r| r.table == *t && r.settings.pacing == Pacing::Realtime)
        })
    {
        keep(
            &r.suite,
            &format!(
                "Latency by percentile per span, first point of the {} suite (real time)",
                r.suite
            ),
            "latency-percentiles.svg",
            latency_percentiles(&file("latency-percentiles.svg"), r),
        );
    }
    if let Some(r) = loaded
        .iter()
        .find(|r| r.table == GuideTable::Memory)
        .or_else(|| loaded.iter().find(|r| r.table == GuideTable::Encoder))
    {
        keep(
            &r.suite,
            "Resident memory over the measured window",
            "rss-over-time.svg",
            rss_over_time(&file("rss-over-time.svg"), r),
        );
    }
    server_plots(loaded, soak, &file, &mut keep);
    // A plot the report no longer draws goes, so the folder holds exactly what it links.
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".svg") && !made.iter().any(|p| p.file == name) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    made
}

/// Whether a plot was drawn (false: nothing to draw), or why it failed.
type Drawn = Result<bool, PlotError>;

/// Keeps a plot drawn for a suite: `(suite, caption, file, drawn)`.
type Keep<'a> = dyn FnMut(&str, &str, &str, Drawn) + 'a;

/// The plots of the servers' side-by-side comparison, the adaptation suites' links and the
/// soak.
fn server_plots(
    loaded: &[Results],
    soak: Option<&crate::soak::SoakResults>,
    file: &dyn Fn(&str) -> PathBuf,
    keep: &mut Keep<'_>,
) {
    if let Some(r) = loaded
        .iter()
        .find(|r| r.table == GuideTable::Rtmp && !r.comparisons.peers.is_empty())
    {
        keep(
            &r.suite,
            "Server CPU per player against players, per server (same load)",
            "server-cpu-per-player.svg",
            per_server(
                &file("server-cpu-per-player.svg"),
                r,
                ("Server CPU per player", "% of one core per player"),
                |row| row.cpu_per_player,
            ),
        );
        keep(
            &r.suite,
            "Server peak RSS against players, per server (same load)",
            "server-rss.svg",
            per_server(
                &file("server-rss.svg"),
                r,
                ("Server peak RSS", "MiB"),
                |row| row.rss_peak_bytes as f64 / 1048576.0,
            ),
        );
    }
    for r in loaded
        .iter()
        .filter(|r| r.points.iter().any(|p| p.link.is_some()))
    {
        let name = if r.suite == "adapt" {
            "bitrate-vs-link.svg".to_string()
        } else {
            format!("bitrate-vs-link-{}.svg", r.suite)
        };
        keep(
            &r.suite,
            &format!(
                "Bitrate against the link's capacity over time ({}): what the server \
                 acknowledged per point, and the link's rate",
                r.suite
            ),
            &name,
            bitrate_vs_link(&file(&name), r),
        );
    }
    if let Some(s) = soak {
        keep(
            "soak",
            "Soak: the server's resident memory over the run",
            "soak-rss.svg",
            soak_series(
                &file("soak-rss.svg"),
                s,
                ("Soak: server resident memory", "MiB"),
                &[("RSS (MiB)", |x| x.rss_bytes as f64 / 1048576.0)],
            ),
        );
        keep(
            "soak",
            "Soak: the server's descriptors, threads, connections, players and queued items \
             over the run",
            "soak-load.svg",
            soak_series(
                &file("soak-load.svg"),
                s,
                ("Soak: server load and resources", "count"),
                &[
                    ("open file descriptors", |x| x.fds as f64),
                    ("threads", |x| x.threads as f64),
                    ("connections open", |x| x.connections_open as f64),
                    ("players open", |x| x.players_open as f64),
                    ("items in players' queues", |x| x.queued_items as f64),
                ],
            ),
        );
    }
}

/// A named figure of a soak's samples.
type SoakLine<'a> = (&'a str, fn(&crate::soak::SoakSample) -> f64);

/// Lines of a soak's samples against minutes.
fn soak_series(
    path: &Path,
    s: &crate::soak::SoakResults,
    (title, y_label): (&str, &str),
    lines: &[SoakLine<'_>],
) -> Result<bool, PlotError> {
    let mut series: Vec<Series> = Vec::new();
    for (name, f) in lines {
        for x in &s.samples {
            add(&mut series, name, (x.t_s / 60.0, f(x)));
        }
    }
    line_chart(path, title, ("minutes", y_label), &series)?;
    Ok(!series.is_empty())
}

fn fps_by_preset(path: &Path, r: &Results) -> Result<bool, PlotError> {
    let mut series: Vec<Series> = Vec::new();
    for p in r
        .points
        .iter()
        .filter(|p| p.config.encoder.pipeline.zero_copy)
    {
        let point = (f64::from(p.config.encoder.pipeline.threads), p.fps);
        add(&mut series, &p.config.encoder.preset.to_string(), point);
    }
    for s in &mut series {
        s.points.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    line_chart(
        path,
        "FPS per preset × threads",
        ("encoder threads", "frames per second"),
        &series,
    )?;
    Ok(!series.is_empty())
}

/// The percentiles plotted, as HdrHistogram's plots place them: x = 1 ÷ (1 − p); a span
/// shows each only where it has enough samples beyond it (see `SpanStats::quantile`).
const PERCENTILES: [f64; 4] = [0.5, 0.9, 0.99, 0.999];

fn latency_percentiles(path: &Path, r: &Results) -> Result<bool, PlotError> {
    let Some(p) = r.points.first() else {
        return Ok(false);
    };
    let series: Vec<Series> = streamer::probe::SPANS
        .iter()
        .filter_map(|s| {
            let st = p.spans.get(s.name)?;
            let points: Vec<(f64, f64)> = PERCENTILES
                .iter()
                .filter_map(|q| Some((1.0 / (1.0 - q), (st.quantile(*q)? / 1000.0).max(0.001))))
                .collect();
            (!points.is_empty()).then_some(())?;
            Some(Series {
                name: s.name.to_string(),
                points,
            })
        })
        .collect();
    if series.is_empty() {
        return Ok(false);
    }
    log_chart(path, "Latency by percentile (log–log)", &series)?;
    Ok(true)
}

/// Draws `series` on a log percentile axis (x = 1 ÷ (1 − p), labelled as percentiles) against
/// log milliseconds.
fn log_chart(path: &Path, title: &str, series: &[Series]) -> Result<(), PlotError> {
    let ys = series.iter().flat_map(|s| s.points.iter().map(|p| p.1));
    let (y0, y1) = ys.fold((f64::MAX, f64::MIN), |(lo, hi), y| (lo.min(y), hi.max(y)));
    let layout = Layout {
        title,
        x_label: "percentile",
        y_label: "ms",
        x_format: &|x| {
            let p = (1.0 - 1.0 / x) * 100.0;
            let shown = format!("{p:.4}");
            let shown = shown.trim_end_matches('0').trim_end_matches('.');
            format!("{shown}%")
        },
        markers: false,
        legend: SeriesLabelPosition::UpperLeft,
    };
    chart(
        path,
        (1.5f64..15_000.0).log_scale(),
        (y0 / 2.0..y1 * 2.0).log_scale(),
        &layout,
        series,
    )
}

fn rss_over_time(path: &Path, r: &Results) -> Result<bool, PlotError> {
    let series: Vec<Series> = r
        .points
        .iter()
        .filter(|p| !p.rss_timeline.is_empty())
        .take(6)
        .map(|p| Series {
            name: p
                .axes
                .iter()
                .map(|a| format!("{}={}", a.path.rsplit('.').next().unwrap_or(""), a.value))
                .collect::<Vec<_>>()
                .join(" "),
            points: p
                .rss_timeline
                .iter()
                .map(|&(ms, b)| (ms as f64 / 1000.0, b as f64 / 1048576.0))
                .collect(),
        })
        .collect();
    line_chart(
        path,
        &format!("RSS over time ({})", r.suite),
        ("seconds", "MiB"),
        &series,
    )?;
    Ok(!series.is_empty())
}

/// Through a shaped link: the link's rate, and each point's acknowledged bitrate (and its
/// encoder target where adaptive bitrate set one), against time.
fn bitrate_vs_link(path: &Path, r: &Results) -> Result<bool, PlotError> {
    let mut series: Vec<Series> = Vec::new();
    let label = |p: &crate::results::PointResult| {
        p.axes
            .iter()
            .map(|a| format!("{}={}", a.path, a.value))
            .collect::<Vec<_>>()
            .join(" ")
    };
    for (i, p) in r.points.iter().enumerate() {
        let Some(l) = &p.link else { continue };
        for s in &l.timeline {
            let t = s.t_ms as f64 / 1000.0;
            if i == 0 {
                add(&mut series, "link capacity", (t, f64::from(s.link_kbps)));
            }
            add(
                &mut series,
                &format!("acked, {}", label(p)),
                (t, s.acked_kbps),
            );
            if s.target_kbps > 0 {
                add(
                    &mut series,
                    &format!("target, {}", label(p)),
                    (t, s.target_kbps as f64),
                );
            }
        }
    }
    line_chart(
        path,
        &format!("Bitrate through a shaped link ({})", r.suite),
        ("seconds into the window", "kbit/s"),
        &series,
    )?;
    Ok(!series.is_empty())
}

/// One line per server of the side-by-side comparison: `figure` of each row against players.
fn per_server(
    path: &Path,
    r: &Results,
    (title, y_label): (&str, &str),
    figure: fn(&crate::results::PeerRow) -> f64,
) -> Result<bool, PlotError> {
    let mut series: Vec<Series> = Vec::new();
    for row in &r.comparisons.peers {
        add(
            &mut series,
            &row.server,
            (f64::from(row.players), figure(row)),
        );
    }
    line_chart(path, title, ("players connected", y_label), &series)?;
    Ok(!series.is_empty())
}
