//! A short soak, end to end: the real server process, publisher, waves of players, stalled
//! readers and hostile connections, and every check passing (`cargo xtask soak` runs it for
//! 30 minutes).

use harness::soak::{SoakOptions, run};
use std::path::PathBuf;
use std::time::Duration;

/// `stream-manager` of this build (cargo builds it for the streamer's tests beside ours).
fn stream_manager() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|d| d.parent()).unwrap();
    let bin = dir.join("stream-manager");
    if !bin.exists() {
        let status = std::process::Command::new(env!("CARGO"))
            .args(["build", "-p", "streamer", "--bin", "stream-manager"])
            .status()
            .unwrap();
        assert!(status.success());
    }
    assert!(bin.exists(), "{} (cargo build -p streamer)", bin.display());
    bin
}

#[test]
fn a_short_soak_passes_every_check() {
    let opts = SoakOptions {
        duration: Duration::from_secs(50),
        max_players: 30,
        wave_s: 20.0,
        seed: 7,
        rss_bound_mib: 1.0,
        warmup_s: 10.0,
        stream_manager: stream_manager(),
        leak_mib_per_min: 0.0,
    };
    let r = run(&opts, |line| eprintln!("{line}")).unwrap();
    for c in &r.checks {
        eprintln!("{} {}: {}", c.passed, c.what, c.measured);
    }
    assert!(r.passed, "{:#?}", r.checks);
    assert!(r.troughs.len() >= 2, "{:?}", r.troughs);
    assert!(
        r.players >= 20 && r.frames_received > 0,
        "{} players",
        r.players
    );
    assert!(r.hostile >= 20 && r.stalled_readers >= 2);
    assert!(r.samples.len() >= 45);
}

/// A leak of 1 MiB a minute planted in the server is caught by the memory check, whose bound
/// comes from the run's own noise: a quiet server (a publisher, hostile connections, no
/// players) over 50 s.
#[test]
fn a_planted_leak_of_one_mib_a_minute_is_caught() {
    let opts = SoakOptions {
        duration: Duration::from_secs(50),
        max_players: 0,
        wave_s: 20.0,
        seed: 11,
        rss_bound_mib: 1.0,
        warmup_s: 10.0,
        stream_manager: stream_manager(),
        leak_mib_per_min: 1.0,
    };
    let r = run(&opts, |line| eprintln!("{line}")).unwrap();
    let memory = &r.checks[0];
    eprintln!("{}: {}", memory.what, memory.measured);
    assert!(!memory.passed, "{memory:?}");
    assert!(
        r.rss_slope_mib_per_10min > 5.0,
        "{} MiB per 10 min",
        r.rss_slope_mib_per_10min
    );
    // Everything else held.
    assert!(r.checks[1..].iter().all(|c| c.passed), "{:#?}", r.checks);
}
