//! RTMP with real peers on loopback: the ffmpeg CLI and ffprobe as publisher and players,
//! nginx-rtmp as an external server, and hostile clients. Every process started is stopped.

use rml_rtmp::chunk_io::ChunkSerializer;
use rml_rtmp::messages::RtmpMessage;
use rml_rtmp::rml_amf0::Amf0Value;
use rml_rtmp::sessions::{
    ClientSession, ClientSessionConfig, ClientSessionEvent, ClientSessionResult, PublishRequestType,
};
use rml_rtmp::time::RtmpTimestamp;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use streamer::config::{RtmpConfig, StreamConfig};
use streamer::output::Output;
use streamer::probe::NoProbe;
use streamer::rtmp::client::{RtmpUrl, handshake};
use streamer::rtmp::player::PlayerLoad;
use streamer::rtmp::server::Server;
use streamer::stream::{Pacing, Stream};

fn small() -> StreamConfig {
    let mut cfg = StreamConfig::default();
    cfg.core.viewport.width = 640;
    cfg.core.viewport.height = 360;
    cfg.encoder.gop = 30;
    cfg
}

fn server(cfg: &RtmpConfig) -> Server {
    Server::start("127.0.0.1:0".parse().unwrap(), cfg, 1, true).unwrap()
}

fn url(server: &Server, key: &str) -> String {
    format!("rtmp://{}/live/{key}", server.local_addr())
}

/// A child process that is killed when dropped, so a failing test leaves nothing running.
struct Proc(Option<Child>);

impl Proc {
    fn spawn(cmd: &mut Command) -> Proc {
        let name = format!("{cmd:?}");
        Proc(Some(
            cmd.stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("{name}: {e} (cargo xtask test installs the peers)")),
        ))
    }

    /// Waits at most `limit` for the process to end; returns its stdout and stderr.
    fn finish(mut self, limit: Duration) -> (String, String) {
        let mut child = self.0.take().unwrap();
        let deadline = Instant::now() + limit;
        while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// ffmpeg decoding `url`, one framecrc line per decoded frame.
fn ffmpeg_player(url: &str) -> Proc {
    Proc::spawn(Command::new("ffmpeg").args([
        "-v", "error", "-nostdin", "-i", url, "-map", "0:v", "-f", "framecrc", "-",
    ]))
}

fn decoded(framecrc: &str) -> usize {
    framecrc
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .count()
}

/// The ffmpeg CLI publishing 90 frames of 320x240 at 30 fps (real time, x264 ultrafast,
/// a keyframe a second) to `url`.
fn ffmpeg_publisher(url: &str) -> Proc {
    Proc::spawn(Command::new("ffmpeg").args([
        "-v",
        "error",
        "-nostdin",
        "-re",
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=30",
        "-frames:v",
        "90",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-tune",
        "zerolatency",
        "-g",
        "30",
        "-f",
        "flv",
        url,
    ]))
}

/// ffprobe decoding every frame of `url`.
fn ffprobe_player(url: &str) -> Proc {
    Proc::spawn(Command::new("ffprobe").args([
        "-v",
        "error",
        "-select_streams",
        "v:0",
        "-count_frames",
        "-show_entries",
        "stream=codec_name,nb_read_frames",
        "-of",
        "csv=p=0",
        url,
    ]))
}

/// The frames ffprobe read, from its `codec_name,nb_read_frames` line.
fn probed_frames(probed: &str) -> usize {
    probed
        .trim()
        .rsplit(',')
        .next()
        .unwrap_or("0")
        .parse()
        .unwrap_or(0)
}

fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn publish(
    cfg: &StreamConfig,
    url: &str,
    frames: u64,
    pacing: Pacing,
) -> streamer::stream::Summary {
    let mut stream = Stream::open(cfg, &Output::Rtmp(url.parse().unwrap()), &NoProbe).unwrap();
    stream.run(frames, pacing).unwrap();
    stream.finish().unwrap()
}

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

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
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

fn send(r: ClientSessionResult, socket: &mut TcpStream) {
    if let ClientSessionResult::OutboundResponse(p) = r {
        socket.write_all(&p.bytes).unwrap();
    }
}

/// Feeds the server's bytes to a raw `session`, answering as it asks, until an event matches.
fn until(
    session: &mut ClientSession,
    socket: &mut TcpStream,
    done: fn(&ClientSessionEvent) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut buf = [0u8; 4096];
    let mut input = Vec::new();
    loop {
        let mut hit = false;
        for r in session.handle_input(&input).unwrap() {
            match r {
                ClientSessionResult::RaisedEvent(e) => hit |= done(&e),
                other => send(other, socket),
            }
        }
        input.clear();
        if hit {
            return;
        }
        assert!(Instant::now() < deadline, "no answer from the server");
        let n = socket.read(&mut buf).unwrap();
        input.extend_from_slice(&buf[..n]);
    }
}

/// A raw client session, handshaken and connected to the `live` app.
fn connected(addr: SocketAddr) -> (ClientSession, TcpStream) {
    let mut socket = TcpStream::connect(addr).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let rest = handshake(&mut socket).unwrap();
    let (mut session, _) = ClientSession::new(ClientSessionConfig::new()).unwrap();
    for r in session.handle_input(&rest).unwrap() {
        send(r, &mut socket);
    }
    send(
        session.request_connection("live".into()).unwrap(),
        &mut socket,
    );
    until(&mut session, &mut socket, |e| {
        matches!(e, ClientSessionEvent::ConnectionRequestAccepted)
    });
    (session, socket)
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

/// A raw session publishing `key`; returns its socket.
fn publishing_socket(addr: SocketAddr, key: &str) -> TcpStream {
    let (mut session, mut socket) = connected(addr);
    send(
        session
            .request_publishing(key.into(), PublishRequestType::Live)
            .unwrap(),
        &mut socket,
    );
    until(&mut session, &mut socket, |e| {
        matches!(e, ClientSessionEvent::PublishRequestAccepted)
    });
    socket
}

/// Raw RTMP chunk bytes (type 0 header) for `message` on message stream 1.
fn chunk(message: RtmpMessage) -> Vec<u8> {
    let payload = message
        .into_message_payload(RtmpTimestamp::new(0), 1)
        .unwrap();
    ChunkSerializer::new()
        .serialize(&payload, true, false)
        .unwrap()
        .bytes
}

fn still_serves(server: &Server, case: &str) {
    let target = url(server, &format!("after-{}", case.replace(' ', "-")));
    let load = PlayerLoad::start(&target.parse().unwrap(), 1, 30, Arc::new(NoProbe)).unwrap();
    assert!(
        load.wait_playing(Duration::from_secs(5)),
        "after {case}: a player could not play"
    );
    let summary = publish(&small(), &target, 15, Pacing::Max);
    assert_eq!(summary.sink.dropped, 0, "after {case}");
    std::thread::sleep(Duration::from_millis(300));
    let report = load.stop().remove(0);
    assert_eq!(report.frames, 15, "after {case}: {report:?}");
}

#[test]
fn malformed_input_ends_only_its_own_connection() {
    let cfg = RtmpConfig {
        handshake_timeout: 1,
        ..RtmpConfig::default()
    };
    let server = server(&cfg);
    let addr = server.local_addr();

    let mut garbage = TcpStream::connect(addr).unwrap();
    garbage.write_all(&[0xde; 5000]).unwrap();
    still_serves(&server, "garbage");

    let mut truncated = TcpStream::connect(addr).unwrap();
    truncated.write_all(&[3; 700]).unwrap(); // C0 and part of C1, then silence
    still_serves(&server, "a truncated handshake");

    // `@setDataFrame` with nothing after it: rml_rtmp panics on it.
    let panics_before = server.stats().panics.load(Ordering::Relaxed);
    let mut amf = publishing_socket(addr, "amf");
    let _ = amf.write_all(&chunk(RtmpMessage::Amf0Data {
        values: vec![Amf0Value::Utf8String("@setDataFrame".into())],
    }));
    still_serves(&server, "AMF data with missing values");
    // The server surviving is not enough (tokio would isolate a task's panic on its own): the
    // panic count is raised only where the connection's catch_unwind caught rml_rtmp's panic.
    wait_for(
        "rml_rtmp's panic on `@setDataFrame` to be caught and counted",
        Duration::from_secs(5),
        || server.stats().panics.load(Ordering::Relaxed) == panics_before + 1,
    );

    let mut chunky = publishing_socket(addr, "chunky");
    let _ = chunky.write_all(&chunk(RtmpMessage::SetChunkSize { size: 0x7fff_ffff }));
    let _ = chunky.write_all(&[0x06; 4096]);
    still_serves(&server, "an absurd chunk size");

    // A type 0 chunk header announcing a 16 MiB message, then garbage.
    let mut long = publishing_socket(addr, "long");
    let _ = long.write_all(&[0x04, 0, 0, 0, 0xff, 0xff, 0xff, 0x09, 1, 0, 0, 0]);
    let _ = long.write_all(&[0x17; 8192]);
    still_serves(&server, "an absurd message length");

    let flood: Vec<TcpStream> = (0..200)
        .filter_map(|_| TcpStream::connect(addr).ok())
        .collect();
    assert!(flood.len() >= 150);
    still_serves(&server, "a flood of half-open connections");
    wait_for(
        "half-open connections to time out",
        Duration::from_secs(5),
        || server.stats().connections_open.load(Ordering::Relaxed) < 50,
    );
    let stats = server.stats();
    assert!(
        stats.panics.load(Ordering::Relaxed) + stats.protocol_errors.load(Ordering::Relaxed) >= 2
    );
    drop((garbage, truncated, amf, chunky, long, flood));
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

/// `stream-manager serve` on a free loopback port with `env` set and `args` added: the
/// process, its pid, its address, and its stderr's lines as they come (after the announcement,
/// and the metrics endpoint's line before it, which are read here).
fn serve_binary(
    env: &[(&str, &str)],
    args: &[&str],
) -> (
    Proc,
    u32,
    (SocketAddr, Option<SocketAddr>),
    std::sync::mpsc::Receiver<String>,
) {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_stream-manager"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (pid, stderr) = (child.id(), child.stderr.take().unwrap());
    let server = Proc(Some(child));
    let (lines_tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = lines_tx.send(line);
        }
    });
    let announce = loop {
        let line = lines
            .recv_timeout(Duration::from_secs(10))
            .expect("the server's announcement");
        if line.starts_with("serving RTMP on") {
            break line;
        }
    };
    let addr: SocketAddr = announce
        .split("rtmp://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {announce:?}"));
    let tls = announce
        .split("rtmps://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .and_then(|a| a.parse().ok());
    (server, pid, (addr, tls), lines)
}

/// `GET /metrics` from a metrics endpoint at `addr`: the body.
fn scrape(addr: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or(text)
}

/// Resident memory of process `pid`, KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

#[test]
fn a_contained_panic_is_one_quiet_line_even_with_rust_backtrace_set() {
    // A fixed metrics port would clash between runs: find a free one first.
    let metrics = format!("127.0.0.1:{}", free_port());
    let (server, pid, (addr, _), lines) =
        serve_binary(&[("RUST_BACKTRACE", "1")], &["--metrics", &metrics]);
    let next = |limit: Duration| lines.recv_timeout(limit).ok();
    // `@setDataFrame` with nothing after it: rml_rtmp panics on it.
    let hostile = || {
        let mut s = publishing_socket(addr, "amf");
        let _ = s.write_all(&chunk(RtmpMessage::Amf0Data {
            values: vec![Amf0Value::Utf8String("@setDataFrame".into())],
        }));
        // The server closes the connection: read to its end.
        let _ = s.read_to_end(&mut Vec::new());
    };
    hostile();
    let first = next(Duration::from_secs(5)).expect("a line for the first panic");
    assert!(
        first.contains("rml_rtmp panicked on what it sent (")
            && first.contains(" bytes: ")
            && first.contains("rml_rtmp-")
            && first.contains(".rs:"),
        "{first}"
    );
    let rss_before = rss_kib(pid);
    for _ in 0..20 {
        hostile();
    }
    std::thread::sleep(Duration::from_millis(1100));
    hostile();
    let mut rest = Vec::new();
    while let Some(l) = next(Duration::from_millis(500)) {
        rest.push(l);
    }
    let rss_after = rss_kib(pid);
    // Counted, and exported.
    let exported = scrape(&metrics);
    assert!(
        exported.contains("\nstream_manager_server_panics_total 22\n"),
        "{exported}"
    );
    drop(server);
    // No backtrace, no default panic message: one line a second at most, which says how many
    // it left out.
    assert!(
        rest.iter()
            .all(|l| !l.contains("backtrace") && !l.contains("thread '")),
        "{rest:#?}"
    );
    // 21 more panics, over about a second and a half (more on a slow machine): a few lines.
    let panic_lines: Vec<&String> = rest.iter().filter(|l| l.contains("panicked")).collect();
    assert!(
        (1..=10).contains(&panic_lines.len())
            && panic_lines
                .iter()
                .any(|l| l.contains("more since the last such line")),
        "{rest:#?}"
    );
    assert!(
        rss_after < rss_before + 1024,
        "resident memory grew from {rss_before} KiB to {rss_after} KiB over 21 contained panics"
    );
}

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

/// A CA and a server certificate it signed for 127.0.0.1 and localhost, written to `dir` as
/// `cert.pem` and `key.pem`; returns the CA's PEM.
fn certificates(dir: &Path) -> String {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "stream-manager test CA");
    let ca_key = KeyPair::generate().unwrap();
    let ca = ca.self_signed(&ca_key).unwrap();
    let leaf =
        CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = leaf.signed_by(&leaf_key, &ca, &ca_key).unwrap();
    std::fs::write(dir.join("cert.pem"), leaf.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), leaf_key.serialize_pem()).unwrap();
    ca.pem()
}

/// Our server offering RTMPS with a certificate from a CA this process trusts.
fn tls_server(dir: &Path) -> (Server, SocketAddr) {
    let ca = certificates(dir);
    streamer::rtmp::tls::trust_pem(ca.as_bytes()).unwrap();
    let mut server = server(&RtmpConfig::default());
    let config =
        streamer::rtmp::tls::server_config(&dir.join("cert.pem"), &dir.join("key.pem")).unwrap();
    let tls = server
        .offer_tls("127.0.0.1:0".parse().unwrap(), config)
        .unwrap();
    (server, tls)
}

#[test]
fn ffmpeg_publishes_and_plays_over_rtmps_on_our_server_and_so_do_our_players() {
    let dir = tempfile::tempdir().unwrap();
    let (server, tls) = tls_server(dir.path());
    let url = format!("rtmps://{tls}/live/cli");
    let player = ffmpeg_player(&url);
    let ours = PlayerLoad::start(&url.parse().unwrap(), 2, 30, Arc::new(NoProbe)).unwrap();
    wait_for("three players over TLS", Duration::from_secs(10), || {
        server.stats().players_open.load(Ordering::Relaxed) == 3
    });
    let publisher = ffmpeg_publisher(&url);
    let (_, err) = publisher.finish(Duration::from_secs(20));
    assert!(err.is_empty(), "publisher over rtmps: {err}");
    let (crc, err) = player.finish(Duration::from_secs(10));
    assert!(
        decoded(&crc) >= 86,
        "ffmpeg decoded {} of 90 frames over rtmps: {err}",
        decoded(&crc)
    );
    for r in ours.stop() {
        assert!(r.frames >= 86, "our rtmps player: {r:?}");
        assert!(
            r.told_ended,
            "our rtmps player was told the stream ended: {r:?}"
        );
    }
}

#[test]
fn our_publisher_over_rtmps_to_our_server_decodes_in_ffmpeg() {
    let dir = tempfile::tempdir().unwrap();
    let (server, tls) = tls_server(dir.path());
    let url = format!("rtmps://{tls}/live/ours");
    let player = ffmpeg_player(&url);
    wait_for("the player", Duration::from_secs(10), || {
        server.stats().players_open.load(Ordering::Relaxed) == 1
    });
    let summary = publish(&small(), &url, 90, Pacing::Realtime);
    assert_eq!(summary.sink.dropped, 0);
    std::thread::sleep(Duration::from_millis(300));
    drop(server);
    let (crc, err) = player.finish(Duration::from_secs(10));
    assert!(
        decoded(&crc) >= 86,
        "ffmpeg decoded {} of 90 over rtmps: {err}",
        decoded(&crc)
    );
}

#[test]
fn an_untrusted_certificate_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    // A CA this process never trusts.
    certificates(dir.path());
    let mut server = server(&RtmpConfig::default());
    let config = streamer::rtmp::tls::server_config(
        &dir.path().join("cert.pem"),
        &dir.path().join("key.pem"),
    )
    .unwrap();
    let tls = server
        .offer_tls("127.0.0.1:0".parse().unwrap(), config)
        .unwrap();
    let url = format!("rtmps://{tls}/live/x");
    let err = Stream::open(&small(), &Output::Rtmp(url.parse().unwrap()), &NoProbe)
        .err()
        .expect("an untrusted server is refused")
        .to_string();
    assert!(
        err.contains("TLS") && err.contains("UnknownIssuer") && err.contains("--tls-ca"),
        "{err}"
    );
    // A key that is not the certificate's, and files that are not PEM, are named.
    let other = tempfile::tempdir().unwrap();
    certificates(other.path());
    let mismatch = streamer::rtmp::tls::server_config(
        &dir.path().join("cert.pem"),
        &other.path().join("key.pem"),
    )
    .expect_err("a key that does not match")
    .to_string();
    assert!(mismatch.contains("--tls-key"), "{mismatch}");
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate").unwrap();
    let e = streamer::rtmp::tls::server_config(&garbage, &dir.path().join("key.pem"))
        .expect_err("not PEM")
        .to_string();
    assert!(e.contains("--tls-cert") && e.contains("garbage.pem"), "{e}");
}

#[test]
fn our_publisher_over_rtmps_to_nginx_rtmp_behind_nginx_tls_decodes_in_ffprobe() {
    let dir = tempfile::tempdir().unwrap();
    let ca = certificates(dir.path());
    streamer::rtmp::tls::trust_pem(ca.as_bytes()).unwrap();
    let (port, tls_port) = (free_port(), free_port());
    let modules = Path::new("/usr/lib/nginx/modules");
    for m in ["ngx_rtmp_module.so", "ngx_stream_module.so"] {
        assert!(
            modules.join(m).exists(),
            "{m} is required (cargo xtask test installs libnginx-mod-rtmp and libnginx-mod-stream)"
        );
    }
    let d = dir.path().display();
    let conf = dir.path().join("nginx.conf");
    // nginx's stream module terminates TLS and hands the bytes to nginx-rtmp.
    std::fs::write(
        &conf,
        format!(
            "load_module {m}/ngx_rtmp_module.so;\nload_module {m}/ngx_stream_module.so;\n\
             daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\n\
             events {{ worker_connections 256; }}\n\
             stream {{ server {{ listen 127.0.0.1:{tls_port} ssl; ssl_certificate {d}/cert.pem; \
             ssl_certificate_key {d}/key.pem; proxy_pass 127.0.0.1:{port}; }} }}\n\
             rtmp {{ server {{ listen 127.0.0.1:{port}; application live {{ live on; }} }} }}\n",
            m = modules.display(),
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
            && TcpStream::connect(("127.0.0.1", tls_port)).is_ok()
    });
    let cfg = small();
    let publisher = std::thread::spawn(move || {
        publish(
            &cfg,
            &format!("rtmps://127.0.0.1:{tls_port}/live/ours"),
            150,
            Pacing::Realtime,
        )
    });
    std::thread::sleep(Duration::from_millis(500));
    // As in the plain nginx test: 2 s of analysis, nginx keeps the play open.
    let probe = Proc::spawn(Command::new("ffprobe").args([
        "-v",
        "error",
        "-analyzeduration",
        "2000000",
        "-show_entries",
        "stream=codec_name,width,height",
        "-of",
        "csv=p=0",
        &format!("rtmp://127.0.0.1:{port}/live/ours"),
    ]));
    let (out, err) = probe.finish(Duration::from_secs(15));
    let summary = publisher.join().unwrap();
    assert_eq!(summary.sink.dropped, 0, "{summary:?}");
    assert!(
        out.lines().any(|l| l == "h264,640,360"),
        "ffprobe: {out} {err}"
    );
}
