//! RTMP with real peers on loopback: the ffmpeg CLI and ffprobe publishing to and playing from
//! our server, our publisher to nginx-rtmp, across preset and resolution switches.

mod common;

use common::*;
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::Duration;
use streamer::config::RtmpConfig;
use streamer::stream::Pacing;

#[test]
fn ffmpeg_publishes_to_our_server_and_ffmpeg_and_ffprobe_play_it() {
    let server = server(&RtmpConfig::default());
    let url = url(&server, "cli");
    let player = ffmpeg_player(&url);
    let probe = ffprobe_player(&url);
    wait_for("two players", Duration::from_secs(10), || {
        server.stats().players_open.load(Ordering::Relaxed) == 2
    });
    let publisher = ffmpeg_publisher(&url);
    let (_, err) = publisher.finish(Duration::from_secs(20));
    assert!(err.is_empty(), "publisher: {err}");
    let (crc, err) = player.finish(Duration::from_secs(10));
    assert!(
        decoded(&crc) >= 86,
        "ffmpeg decoded {} of 90 frames: {err}",
        decoded(&crc)
    );
    let (probed, err) = probe.finish(Duration::from_secs(10));
    assert!(
        probed.starts_with("h264") && probed_frames(&probed) >= 86,
        "ffprobe: {probed} {err}"
    );
}

#[test]
fn our_publisher_to_our_server_decodes_in_ffmpeg() {
    let server = server(&RtmpConfig::default());
    let url = url(&server, "ours");
    let player = ffmpeg_player(&url);
    wait_for("the player", Duration::from_secs(10), || {
        server.stats().players_open.load(Ordering::Relaxed) == 1
    });
    let summary = publish(&small(), &url, 90, Pacing::Realtime);
    assert_eq!(summary.sink.dropped, 0);
    assert!(summary.sink.bytes_sent > summary.counters.bytes);
    std::thread::sleep(Duration::from_millis(300));
    drop(server); // ends the play: ffmpeg sees the end of the stream
    let (crc, err) = player.finish(Duration::from_secs(10));
    assert!(
        decoded(&crc) >= 86,
        "ffmpeg decoded {} of 90: {err}",
        decoded(&crc)
    );
}

#[test]
fn ffmpeg_and_ffprobe_decode_across_preset_and_resolution_switches() {
    const FRAMES: u64 = 150;
    let server = server(&RtmpConfig::default());
    let url = url(&server, "switch");
    let player = ffmpeg_player(&url);
    let probe = ffprobe_player(&url);
    wait_for("two players", Duration::from_secs(10), || {
        server.stats().players_open.load(Ordering::Relaxed) == 2
    });
    // Quality scaling with a line (10% of the frame interval) that x264 on one thread stays
    // over at 720p: after the first second it steps from veryfast to ultrafast, then to
    // 960x540, a switch (a reopened encoder, a new sequence header) every 200 ms or so, done
    // with time to spare in 5 s even on a busy machine.
    let mut cfg = small();
    (cfg.core.viewport.width, cfg.core.viewport.height) = (1280, 720);
    cfg.encoder.pipeline.threads = 1;
    cfg.encoder.preset = streamer::config::Preset::Veryfast;
    let q = &mut cfg.adaptive.quality;
    (q.enabled, q.behind_percent, q.headroom_percent, q.hold_ms) = (true, 10, 5, 200);
    let summary = publish(&cfg, &url, FRAMES, Pacing::Realtime);
    let switches: Vec<String> = summary
        .adaptation
        .iter()
        .map(|e| e.change.to_string())
        .collect();
    assert!(
        switches.iter().any(|s| s.starts_with("preset"))
            && switches.contains(&"resolution 1280x720 → 960x540".to_string()),
        "{switches:?}"
    );
    assert_eq!(summary.sink.dropped, 0);
    std::thread::sleep(Duration::from_millis(300));
    drop(server);
    let (crc, err) = player.finish(Duration::from_secs(10));
    assert!(
        decoded(&crc) >= FRAMES as usize - 4 && err.trim().is_empty(),
        "ffmpeg decoded {} of {FRAMES} across {switches:?}: {err}",
        decoded(&crc)
    );
    let (probed, err) = probe.finish(Duration::from_secs(10));
    assert!(
        probed.starts_with("h264")
            && probed_frames(&probed) >= FRAMES as usize - 4
            && err.trim().is_empty(),
        "ffprobe across {switches:?}: {probed} {err}"
    );
}

#[test]
fn our_publisher_to_nginx_rtmp_decodes_in_ffprobe() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let module = Path::new("/usr/lib/nginx/modules/ngx_rtmp_module.so");
    assert!(
        module.exists(),
        "nginx-rtmp is required (cargo xtask test installs libnginx-mod-rtmp)"
    );
    let conf = dir.path().join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "load_module {};\ndaemon off;\nmaster_process off;\npid {}/nginx.pid;\nerror_log {}/error.log info;\n\
             events {{ worker_connections 256; }}\n\
             rtmp {{ server {{ listen 127.0.0.1:{port}; application live {{ live on; }} }} }}\n",
            module.display(),
            dir.path().display(),
            dir.path().display()
        ),
    )
    .unwrap();
    let _nginx = Proc::spawn(
        Command::new("nginx")
            .arg("-p")
            .arg(dir.path())
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .arg("-c")
            .arg(&conf),
    );
    wait_for("nginx to listen", Duration::from_secs(10), || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let url = format!("rtmp://127.0.0.1:{port}/live/ours");
    let cfg = small();
    let publisher = std::thread::spawn({
        let url = url.clone();
        move || publish(&cfg, &url, 150, Pacing::Realtime)
    });
    std::thread::sleep(Duration::from_millis(500));
    // nginx never ends a play when the publisher leaves (it waits for a new one), and the FLV
    // header it sends announces audio, so ffprobe would wait for its full analyzeduration (5 s
    // of stream): ask for 2 s.
    let probe = Proc::spawn(Command::new("ffprobe").args([
        "-v",
        "error",
        "-analyzeduration",
        "2000000",
        "-show_entries",
        "stream=codec_name,width,height",
        "-of",
        "csv=p=0",
        &url,
    ]));
    let (out, err) = probe.finish(Duration::from_secs(15));
    let summary = publisher.join().unwrap();
    assert_eq!(summary.sink.dropped, 0);
    assert!(
        out.lines().any(|l| l == "h264,640,360"),
        "ffprobe: {out} {err}"
    );
}
