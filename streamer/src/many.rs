//! `stream-manager run --streams N`: several streams at once in this process, each to its own
//! stream key, each with its own settings where the configuration file gives them.

use crate::{RunArgs, what_streams};
use anyhow::{Context, Result, bail};
use std::sync::Arc;
use std::time::Instant;
use streamer::config::StreamConfig;
use streamer::output::Output;
use streamer::probe::NoProbe;
use streamer::rtmp::LocalRelay;
use streamer::stream::Pacing;

/// `run --streams N`: N streams at once, each to its own key; one line each, then the whole
/// process's CPU. Fails when any stream failed (after every other has finished).
pub(crate) fn run_many(args: &RunArgs, each: &[StreamConfig]) -> Result<()> {
    let n = args.streams as usize;
    let cfg = &each[0];
    let fps = each.iter().map(|c| c.core.viewport.fps).max().unwrap_or(30);
    let keys: Vec<String> = (0..n).map(streamer::streams::key).collect();
    let relay = match &args.output {
        Some(_) => None,
        None => Some(
            LocalRelay::start_keys(&cfg.rtmp, &keys, args.players, fps, Arc::new(NoProbe))
                .context("starting the embedded RTMP server and its players")?,
        ),
    };
    let specs = (0..n)
        .map(|i| {
            let output = match (&args.output, &relay) {
                (Some(o), _) => streamer::streams::output_of(o, i)
                    .with_context(|| format!("--streams {n} cannot share the file {o}"))?,
                (None, Some(r)) => Output::Rtmp(r.urls[i].clone()),
                (None, None) => unreachable!("a relay starts when there is no output"),
            };
            Ok(streamer::streams::StreamSpec {
                config: each[i].clone(),
                output,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let same = each.iter().all(|c| c == cfg);
    eprintln!(
        "streaming {n} streams of {}{}",
        if same {
            format!("{} each", what_streams(args, cfg))
        } else {
            let of = |(i, c)| format!("{}: {}", streamer::streams::key(i), what_streams(args, c));
            each.iter()
                .enumerate()
                .map(of)
                .collect::<Vec<_>>()
                .join("; ")
        },
        if relay.is_some() {
            format!(" to the embedded server, {} players each", args.players)
        } else {
            String::new()
        }
    );
    // Each stream's own metrics (every series labelled with its key): the endpoint serves
    // them as they open, and each stream's diagnosis reads its own.
    let metrics: Vec<Arc<streamer::metrics::Metrics>> = keys
        .iter()
        .map(|k| Arc::new(streamer::metrics::Metrics::labelled(k)))
        .collect();
    let open: streamer::metrics::Streams = Arc::default();
    let _endpoint = match &args.metrics {
        Some(addr) => {
            let server = relay.as_ref().map(|r| r.server.stats_handle());
            let e = streamer::metrics::serve_many(addr, Arc::clone(&open), server)?;
            eprintln!("metrics: http://{}/metrics", e.addr);
            Some(e)
        }
        None => None,
    };
    let probes: Vec<&streamer::metrics::Metrics> = metrics.iter().map(|m| &**m).collect();
    let cpu_before = streamer::clock::process_cpu_ns() as f64 * 1e-9;
    let started = Instant::now();
    let outcomes =
        streamer::streams::run_all(&specs, args.frames, args.pacing, &probes, |i, stream| {
            let mut open = open.lock().unwrap_or_else(|e| e.into_inner());
            open.push((Arc::clone(&metrics[i]), stream.live()));
        });
    let secs = started.elapsed().as_secs_f64();
    let cpu = (streamer::clock::process_cpu_ns() as f64 * 1e-9 - cpu_before) / secs * 100.0;
    if let Some(r) = &relay {
        let most = outcomes
            .iter()
            .filter_map(|o| o.as_ref().ok())
            .map(|(s, _)| s.counters.packets)
            .max()
            .unwrap_or(0);
        r.settle(most, std::time::Duration::from_secs(30));
    }
    let share = cpu / n as f64;
    let failed = outcomes
        .iter()
        .enumerate()
        .filter(|(i, o)| {
            !stream_line(
                args,
                &each[*i],
                (&keys[*i], *i, o),
                relay.as_ref(),
                &metrics[*i],
                share,
            )
        })
        .count();
    println!(
        "{n} streams in {secs:.2} s: the process used {cpu:.0}% of a core ({share:.0}% a stream)"
    );
    if let Some(r) = relay {
        r.stop();
    }
    if failed > 0 {
        bail!("{failed} of {n} streams failed");
    }
    Ok(())
}

/// Prints stream `i`'s line of `run --streams` and its diagnosis (`cpu_share`: its share of
/// the process's CPU, percent of a core); false for a stream that failed.
fn stream_line(
    args: &RunArgs,
    cfg: &StreamConfig,
    (key, i, outcome): (&str, usize, &streamer::streams::Outcome),
    relay: Option<&LocalRelay>,
    metrics: &streamer::metrics::Metrics,
    cpu_share: f64,
) -> bool {
    let (s, run_s) = match outcome {
        Ok(done) => done,
        Err(e) => {
            println!("{key}: failed: {e}");
            return false;
        }
    };
    let c = s.counters;
    let players = relay.map_or(String::new(), |r| {
        let got: Vec<u64> = r.reports_of(i).iter().map(|p| p.frames).collect();
        format!(
            "; {} players received {}–{} frames",
            got.len(),
            got.iter().min().unwrap_or(&0),
            got.iter().max().unwrap_or(&0)
        )
    });
    println!(
        "{key}: {} frames encoded in {run_s:.2} s ({:.1} fps), {} dropped, {:.0} kbit/s{players}",
        c.packets,
        c.packets as f64 / run_s.max(1e-9),
        c.dropped + s.sink.dropped,
        s.bitrate_kbps
    );
    let facts = streamer::stream::RunFacts {
        secs: *run_s,
        realtime: args.pacing == Pacing::Realtime,
        players: if relay.is_some() {
            args.players as u32
        } else {
            0
        },
        cpu_percent: cpu_share,
        server_dropped: 0,
    };
    let observed = streamer::stream::observed(cfg, s, &facts, |name| metrics.span_mean_ms(name));
    for f in streamer::diagnose::diagnose(&observed) {
        println!("{key} diagnosis: {}: {}", f.symptom, f.cause);
    }
    true
}
