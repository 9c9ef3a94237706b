//! An incoming RTMP feed as the stream's source: the ffmpeg CLI publishes a feed (picture and
//! sound) to the server's `ingest` app, the stream restreams it with its layers to `live`, and
//! a player watches; the feed stops and returns while the output goes on.

mod common;

use std::process::Command;
use std::time::Duration;
use streamer::config::{RtmpConfig, SourceKind};
use streamer::output::Output;
use streamer::probe::NoProbe;
use streamer::stream::{Pacing, Stream, StreamError};

/// The ffmpeg CLI publishing `seconds` of a 640×360 25 fps picture with a 48 kHz AAC tone to
/// `url`, in real time.
fn feed_publisher(url: &str, seconds: &str) -> common::Proc {
    common::Proc::spawn(Command::new("ffmpeg").args([
        "-v",
        "error",
        "-nostdin",
        "-re",
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=640x360:rate=25",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=48000",
        "-t",
        seconds,
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-tune",
        "zerolatency",
        "-g",
        "25",
        "-c:a",
        "aac",
        "-f",
        "flv",
        url,
    ]))
}

#[test]
fn a_feed_that_stops_and_returns_is_restreamed_without_the_output_ending() {
    let server = common::server(&RtmpConfig::default());
    let ingest = common::url(&server, "cam").replace("/live/", "/ingest/");
    let out_url = common::url(&server, "show");
    let first = feed_publisher(&ingest, "2");
    let mut cfg = common::small();
    cfg.source.kind = SourceKind::Rtmp;
    cfg.source.url = ingest.clone();
    cfg.core.layout.layers = 4;
    let mut stream = Stream::open(&cfg, &Output::Rtmp(out_url.parse().unwrap()), &NoProbe)
        .expect("the feed arrives within source.timeout");
    let player = common::ffprobe_player(&out_url);
    let feeds = std::thread::spawn(move || {
        let _ = first.finish(Duration::from_secs(10));
        std::thread::sleep(Duration::from_secs(1));
        let _ = feed_publisher(&ingest, "1.5").finish(Duration::from_secs(10));
    });
    // 5 s at 30 fps: the first feed (2 s), a gap, the second (1.5 s).
    stream.run(150, Pacing::Realtime).unwrap();
    let stats = stream.source_stats();
    let summary = stream.finish().unwrap();
    feeds.join().unwrap();
    assert_eq!(summary.counters.captured + summary.counters.dropped, 150);
    assert!(summary.counters.packets >= 145, "{:?}", summary.counters);
    assert_eq!(summary.sink.dropped, 0, "{:?}", summary.sink);
    assert!(stats.gaps >= 1, "the stop was not seen: {stats:?}");
    // Both publishes decoded: 2 s and 1.5 s at 25 fps, less what came before the stream
    // opened and after it ended.
    assert!(stats.decoded >= 60, "{stats:?}");
    assert!(
        summary
            .notes
            .iter()
            .any(|n| n.contains("its AAC (48000 Hz")),
        "{:?}",
        summary.notes
    );
    let (probed, err) = player.finish(Duration::from_secs(20));
    let frames = common::probed_frames(&probed);
    assert!(
        frames >= 140,
        "the player read {frames} frames: {probed} {err}"
    );
}

#[test]
fn a_feed_that_never_arrives_is_named_after_the_timeout() {
    let server = common::server(&RtmpConfig::default());
    let mut cfg = common::small();
    cfg.source.kind = SourceKind::Rtmp;
    cfg.source.url = common::url(&server, "nobody");
    cfg.source.timeout = 1;
    let err = match Stream::open(&cfg, &Output::Null, &NoProbe) {
        Err(e @ StreamError::Source(_)) => e.to_string(),
        Err(e) => panic!("another error: {e}"),
        Ok(_) => panic!("opened with no feed"),
    };
    assert!(err.contains("nobody"), "{err}");
    assert!(err.contains("no stream arrived within 1 s"), "{err}");
}
