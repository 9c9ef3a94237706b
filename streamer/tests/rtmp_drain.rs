//! `stream-manager serve` drains on SIGTERM: every player gets the stream to its end and the
//! end-of-stream status, over RTMP and RTMPS, on one thread and on two.

mod common;

use common::*;
use std::sync::Arc;
use std::time::{Duration, Instant};
use streamer::probe::NoProbe;
use streamer::rtmp::client::RtmpUrl;
use streamer::rtmp::player::PlayerLoad;
use streamer::stream::Pacing;

#[test]
fn sigterm_drains_every_player_to_the_end_of_the_stream_and_exits_0() {
    sigterm_drain(&[], false);
}

#[test]
fn sigterm_drains_a_server_on_two_threads_and_its_rtmps_players_too() {
    sigterm_drain(&["--threads", "2"], true);
}

/// 100 players and a publisher on `serve ARGS` (the players over RTMPS when `tls`), then
/// SIGTERM: every player is told the stream ended, and the server exits 0 within
/// `rtmp.drain_timeout`.
fn sigterm_drain(args: &[&str], tls: bool) {
    let dir = tempfile::tempdir().unwrap();
    let mut args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    if tls {
        let ca = certificates(dir.path());
        streamer::rtmp::tls::trust_pem(ca.as_bytes()).unwrap();
        for (flag, file) in [("--tls-cert", "cert.pem"), ("--tls-key", "key.pem")] {
            args.push(flag.into());
            args.push(dir.path().join(file).display().to_string());
        }
        args.extend(["--tls-listen".into(), "127.0.0.1:0".into()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (mut server, pid, (addr, tls_addr), lines) = serve_binary(&[], &args);
    let target: RtmpUrl = format!("rtmp://{addr}/live/drain").parse().unwrap();
    let watched = match tls {
        true => format!("rtmps://{}/live/drain", tls_addr.expect("an RTMPS address"))
            .parse()
            .unwrap(),
        false => target.clone(),
    };
    let players = PlayerLoad::start(&watched, 100, 30, Arc::new(NoProbe)).unwrap();
    assert!(players.wait_playing(Duration::from_secs(10)));
    let publisher = std::thread::spawn({
        let url = target.to_string();
        move || publish(&small(), &url, 120, Pacing::Realtime)
    });
    wait_for(
        "every player's first frames",
        Duration::from_secs(10),
        || players.reports().iter().all(|r| r.frames >= 10),
    );
    // SAFETY: kill has no memory preconditions; pid is our child, still running.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGTERM) }, 0);
    let signalled = Instant::now();
    let mut child = server.0.take().unwrap();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            signalled.elapsed() < Duration::from_secs(5),
            "still running 5 s (rtmp.drain_timeout) after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(status.success(), "{status:?}");
    let said: Vec<String> = lines.try_iter().collect();
    assert!(
        said.iter().any(|l| l
            .starts_with("drained: 100 players told the stream ended; every connection closed in")),
        "{said:#?}"
    );
    wait_for(
        "every player to see the end",
        Duration::from_secs(5),
        || players.reports().iter().all(|r| r.ended),
    );
    let told = players.stop().iter().filter(|r| r.told_ended).count();
    assert_eq!(told, 100);
    drop(publisher);
}
