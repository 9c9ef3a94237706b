//! The side-by-side measurements `harness run` can add to a sweep: the in-process encoder
//! against the ffmpeg CLI, the file source's decoding against the CLI's, the recorder's
//! overhead, and the same load on other RTMP servers.

use super::options::RunOptions;
use super::progress::Progress;
use crate::compare;
use crate::peers::{self, PeerKind, PeerPrograms};
use crate::results::{Comparisons, PeerRow};
use anyhow::Result;
use std::path::Path;
use streamer::config::{Preset, StreamConfig};

/// How large a comparison is: full, `--quick`, or `--smallest` (the tests' run).
fn sized<T>(args: &RunOptions, full: T, quick: T, smallest: T) -> T {
    if args.smallest {
        smallest
    } else if args.quick {
        quick
    } else {
        full
    }
}

/// The comparisons `args` asks for, on the scenario's base configuration, at the sizes of
/// `plan` (the sweep's: full, quick or smallest).
///
/// # Errors
/// A comparison that fails.
pub fn side_by_side(
    args: &RunOptions,
    scenario: &crate::scenario::Scenario,
    plan: &crate::scenario::Plan,
    exe: &Path,
    progress: &Progress,
) -> Result<Comparisons> {
    let base = &scenario.base;
    let mut comparisons = Comparisons::default();
    if args.compare_cli {
        let frames = sized(args, 600, 150, 30);
        let runs = sized(args, 5, 2, 2);
        comparisons.cli = compare::versus_cli(
            Some(exe),
            base,
            &[Preset::Ultrafast, Preset::Veryfast, Preset::Medium],
            frames,
            runs,
            |m| progress.note(&format!("vs ffmpeg CLI, {m}")),
        )?;
    }
    if args.probe_overhead {
        let frames = sized(args, 900, 300, 60);
        let runs = sized(args, 5, 3, 2);
        comparisons.probe_overhead = Some(compare::probe_overhead(
            exe,
            base,
            "base configuration",
            frames,
            runs,
            |m| progress.note(m),
        )?);
    }
    if args.compare_decode {
        let clip = std::env::var_os("STREAM_MANAGER_CLIP")
            .filter(|c| !c.is_empty())
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "--compare-decode needs the clip's path in STREAM_MANAGER_CLIP (cargo xtask \
                     clip fetches it and prints its path; cargo xtask perf sets it)"
                )
            })?;
        let frames = sized(args, 1320, 660, 60);
        let runs = sized(args, 7, 3, 2);
        comparisons.decode = Some(compare::decode_versus_cli(
            Path::new(&clip),
            frames,
            runs,
            |m| progress.note(m),
        )?);
    }
    if args.peers {
        comparisons.peers = peer_rows(args, base, exe, progress)?;
    }
    if let Some(link) = &plan.link {
        progress.note("the ffmpeg CLI through the same link");
        comparisons.cli_link = Some(crate::cli_link::run(
            base,
            link,
            scenario.players,
            &plan.settings,
        )?);
    }
    Ok(comparisons)
}

/// Our server, nginx-rtmp and node-media-server under the same load, at each player count.
fn peer_rows(
    args: &RunOptions,
    base: &StreamConfig,
    exe: &Path,
    progress: &Progress,
) -> Result<Vec<PeerRow>> {
    let programs = PeerPrograms {
        stream_manager: exe.with_file_name("stream-manager"),
        nginx_module: peers::default_nginx_module(),
        node_media_server: args.nms_dir.clone(),
    };
    let counts: Vec<u32> = if args.peer_players.is_empty() {
        sized(args, vec![1, 10, 100, 200, 400], vec![10, 100], vec![2])
    } else {
        args.peer_players.clone()
    };
    let seconds = sized(args, args.peer_seconds, 3.0_f64.min(args.peer_seconds), 1.0);
    let reps = args.peer_reps.unwrap_or(sized(args, 3, 1, 1)).max(1);
    let kinds = if args.peer_servers.is_empty() {
        <PeerKind as clap::ValueEnum>::value_variants().to_vec()
    } else {
        args.peer_servers.clone()
    };
    let mut rows = Vec::new();
    // Servers side by side at each player count, taking turns run by run, so the
    // machine's drift over the run falls on all of them alike.
    for &n in &counts {
        let mut runs: Vec<Vec<PeerRow>> = vec![Vec::new(); kinds.len()];
        for rep in 1..=reps {
            for (k, &kind) in kinds.iter().enumerate() {
                progress.note(&format!(
                    "peers: {} with {n} players (run {rep} of {reps})",
                    kind.name()
                ));
                runs[k].push(peers::measure(kind, base, &programs, n, 30, seconds)?);
            }
        }
        rows.extend(runs.iter().filter_map(|r| peers::combine(r)));
    }
    Ok(rows)
}
