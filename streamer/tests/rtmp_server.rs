//! The embedded server's behaviour: the GOP cache for late joiners, players that stop
//! reading, refused publishes, a publisher that reconnects, the connection limit and the
//! embedded relay's room for every player.

mod common;

use common::*;
use rml_rtmp::sessions::ClientSessionEvent;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use streamer::config::RtmpConfig;
use streamer::output::Output;
use streamer::probe::NoProbe;
use streamer::rtmp::client::RtmpUrl;
use streamer::rtmp::player::PlayerLoad;
use streamer::rtmp::server::Server;
use streamer::stream::{Pacing, Stream};

#[test]
fn a_late_joiner_starts_at_the_cached_gop_or_at_the_next_keyframe() {
    for gop_cache in [true, false] {
        let server = server(&RtmpConfig {
            gop_cache,
            ..RtmpConfig::default()
        });
        let url: RtmpUrl = url(&server, "late").parse().unwrap();
        let mut cfg = small();
        cfg.encoder.gop = 60;
        let target = url.to_string();
        let publisher = std::thread::spawn(move || publish(&cfg, &target, 90, Pacing::Realtime));
        // Join at about frame 30, in the middle of the first GOP (frames 0–59).
        std::thread::sleep(Duration::from_millis(1000));
        let load = PlayerLoad::start(&url, 1, 30, Arc::new(NoProbe)).unwrap();
        assert!(load.wait_playing(Duration::from_secs(5)));
        publisher.join().unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let report = load.stop().remove(0);
        assert_eq!(
            report.first_frame_key,
            Some(true),
            "gop_cache {gop_cache}: {report:?}"
        );
        let expected_first = if gop_cache { 0 } else { 60 };
        assert_eq!(
            report.first_frame_id,
            Some(expected_first),
            "gop_cache {gop_cache}: {report:?}"
        );
        assert_eq!(
            report.frames,
            90 - expected_first,
            "gop_cache {gop_cache}: {report:?}"
        );
    }
}

/// Plays `key` (createStream, then play), then never reads again.
fn stalled_player(addr: SocketAddr, key: &str) -> TcpStream {
    let (mut session, mut socket) = connected(addr);
    send(session.request_playback(key.into()).unwrap(), &mut socket);
    until(&mut session, &mut socket, |e| {
        matches!(e, ClientSessionEvent::PlaybackRequestAccepted)
    });
    socket
}

#[test]
fn a_player_that_stops_reading_is_closed_and_the_others_keep_receiving() {
    let cfg = RtmpConfig {
        ping: 1,
        ping_timeout: 2,
        player_queue: 30,
        ..RtmpConfig::default()
    };
    let server = server(&cfg);
    let target = url(&server, "slow");
    let _stalled = stalled_player(server.local_addr(), "slow");
    let load = PlayerLoad::start(&target.parse().unwrap(), 1, 30, Arc::new(NoProbe)).unwrap();
    assert!(load.wait_playing(Duration::from_secs(5)));
    wait_for("both players", Duration::from_secs(5), || {
        server.stats().players_open.load(Ordering::Relaxed) == 2
    });
    let summary = publish(&small(), &target, 120, Pacing::Realtime);
    assert_eq!(summary.sink.dropped, 0);
    std::thread::sleep(Duration::from_millis(300));
    let stats = server.stats();
    assert!(
        stats.timed_out.load(Ordering::Relaxed) >= 1,
        "the stalled player was not closed"
    );
    assert_eq!(
        stats.players_open.load(Ordering::Relaxed),
        1,
        "only the good player remains"
    );
    let good = load.stop().remove(0);
    assert_eq!(good.frames, 120, "the good player lost frames: {good:?}");
}

#[test]
fn a_refused_publish_gets_an_error_status_not_a_hang() {
    let server = server(&RtmpConfig {
        publish_keys: vec!["secret".into()],
        ..RtmpConfig::default()
    });
    let err = Stream::open(
        &small(),
        &Output::Rtmp(url(&server, "guess").parse().unwrap()),
        &NoProbe,
    )
    .err()
    .unwrap();
    // A hang would end in the publisher's 5 s read timeout, not in a refusal.
    assert!(err.to_string().contains("refused"), "{err}");
    publish(&small(), &url(&server, "secret"), 5, Pacing::Max);
}

#[test]
fn the_publisher_reconnects_and_counts_the_gap_as_drops() {
    let cfg = RtmpConfig::default();
    let first = server(&cfg);
    let addr = first.local_addr();
    let target = url(&first, "again");
    let mut stream =
        Stream::open(&small(), &Output::Rtmp(target.parse().unwrap()), &NoProbe).unwrap();
    stream.run(30, Pacing::Realtime).unwrap();
    first.stop();
    stream.run(15, Pacing::Realtime).unwrap();
    let second = Server::start(addr, &cfg, 1, true).unwrap();
    let load = PlayerLoad::start(&target.parse().unwrap(), 1, 30, Arc::new(NoProbe)).unwrap();
    assert!(load.wait_playing(Duration::from_secs(5)));
    stream.run(75, Pacing::Realtime).unwrap();
    let summary = stream.finish().unwrap();
    let s = summary.sink;
    assert!(s.reconnects >= 1, "{s:?}");
    assert!(s.dropped >= 15, "the gap must count as drops: {s:?}");
    std::thread::sleep(Duration::from_millis(300));
    let report = load.stop().remove(0);
    assert!(
        report.frames > 0 && report.first_frame_key == Some(true),
        "{report:?}"
    );
    assert_eq!(
        s.frames_sent + s.dropped,
        120,
        "every frame is sent or counted: {s:?}"
    );
    assert!(report.frames >= 30, "{report:?}");
    drop(second);
}

#[test]
fn a_connection_over_max_connections_is_told_why_and_the_slot_comes_back() {
    let cfg = RtmpConfig {
        max_connections: 1,
        ..RtmpConfig::default()
    };
    let server = server(&cfg);
    let url = url(&server, "full");
    let stats = server.stats();
    // ffmpeg takes the only slot, waiting to play.
    let first = ffmpeg_player(&url);
    wait_for("the first player", Duration::from_secs(10), || {
        stats.players_open.load(Ordering::Relaxed) == 1
    });
    // Our publisher is refused, and says which setting to change.
    let refused = Stream::open(&small(), &Output::Rtmp(url.parse().unwrap()), &NoProbe)
        .err()
        .expect("a refusal at max_connections");
    assert!(
        refused.to_string().contains("rtmp.max_connections"),
        "{refused}"
    );
    // So is a second ffmpeg, in RTMP terms it prints.
    let (_, err) = ffmpeg_player(&url).finish(Duration::from_secs(10));
    assert!(
        err.contains("NetConnection.Connect.Rejected") || err.contains("rtmp.max_connections"),
        "ffmpeg: {err}"
    );
    assert_eq!(stats.connections_refused.load(Ordering::Relaxed), 2);
    // The refusals took no slot: the first player's ends, and then a publisher gets one.
    drop(first);
    wait_for("the slot back", Duration::from_secs(10), || {
        stats.connections_open.load(Ordering::Relaxed) == 0
    });
    let summary = publish(&small(), &url, 10, Pacing::Max);
    assert_eq!(summary.sink.dropped, 0);
}

#[test]
fn the_embedded_relay_makes_room_for_every_player_it_is_asked_for() {
    // `stream-manager run --players N`: the limit grows to fit N players and the publisher.
    let cfg = RtmpConfig {
        max_connections: 2,
        ..RtmpConfig::default()
    };
    let relay = streamer::rtmp::LocalRelay::start(&cfg, 20, 30, Arc::new(NoProbe)).unwrap();
    let summary = publish(&small(), &relay.url.to_string(), 30, Pacing::Max);
    assert_eq!(summary.sink.dropped, 0);
    relay.settle(30, Duration::from_secs(10));
    // The publisher closed the stream properly (deleteStream): every player was told.
    wait_for(
        "every player told the stream ended",
        Duration::from_secs(5),
        || relay.reports().iter().all(|r| r.told_ended),
    );
    let (players, _) = relay.stop();
    let frames: Vec<u64> = players.iter().map(|p| p.frames).collect();
    assert_eq!(frames, [30; 20]);
}
