//! Records the fuzzing seeds for the server's input path (`fuzz/corpus/server_input/`) and for
//! the publisher's and player's (`fuzz/corpus/client_input/`): real sessions through a
//! recording proxy in front of the embedded server — the ffmpeg CLI publishing and playing,
//! our own publisher and player, and GStreamer's (`rtmp2sink`, `rtmp2src`). A server seed is
//! a publisher's bytes and a player's bytes as `streamer::rtmp::server::fuzz_server::server_input`
//! reads them; a client seed is what the server sent a publisher and a player, as
//! `streamer::rtmp::fuzz_client::client_input` reads them.
//!
//! `cargo run --release -p streamer --example record_fuzz_seeds -- fuzz/corpus`

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use streamer::config::{RtmpConfig, StreamConfig};
use streamer::output::Output;
use streamer::probe::NoProbe;
use streamer::rtmp::player::PlayerLoad;
use streamer::rtmp::server::Server;
use streamer::stream::{Pacing, Stream};

/// What each connection through the proxy sent to the server and what the server sent it, in
/// order of connection.
type Sent = Arc<Mutex<Vec<(Arc<Mutex<Vec<u8>>>, Arc<Mutex<Vec<u8>>>)>>>;

/// A proxy on a free port in front of `upstream` that keeps what clients and the server send.
fn proxy(upstream: SocketAddr) -> (SocketAddr, Sent) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let sent: Sent = Arc::default();
    let all = Arc::clone(&sent);
    std::thread::spawn(move || {
        for client in listener.incoming().map_while(Result::ok) {
            let server = TcpStream::connect(upstream).unwrap();
            let record = Arc::new(Mutex::new(Vec::new()));
            let answers = Arc::new(Mutex::new(Vec::new()));
            all.lock()
                .unwrap()
                .push((Arc::clone(&record), Arc::clone(&answers)));
            let (mut c_in, mut s_out) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || {
                let mut buf = [0u8; 16 * 1024];
                while let Ok(n) = c_in.read(&mut buf) {
                    if n == 0 || s_out.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    record.lock().unwrap().extend_from_slice(&buf[..n]);
                }
                let _ = s_out.shutdown(std::net::Shutdown::Write);
            });
            let (mut s_in, mut c_out) = (server, client);
            std::thread::spawn(move || {
                let mut buf = [0u8; 16 * 1024];
                while let Ok(n) = s_in.read(&mut buf) {
                    if n == 0 || c_out.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    answers.lock().unwrap().extend_from_slice(&buf[..n]);
                }
                let _ = c_out.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    (addr, sent)
}

/// A seed: the publisher's part's length (4 bytes, little-endian), then the publisher's and
/// the player's bytes.
fn seed(publisher: &[u8], player: &[u8]) -> Vec<u8> {
    let mut out = (publisher.len() as u32).to_le_bytes().to_vec();
    out.extend_from_slice(publisher);
    out.extend_from_slice(player);
    out
}

/// The ffmpeg CLI as player (first connection) and publisher (second). The player is killed
/// while the stream goes on, so its bytes end as a dropped connection's do, not with the
/// `deleteStream` it sends when the stream ends (a replay could not keep it until the
/// publisher's frames had reached it).
fn ffmpeg_sessions(url: &str) {
    let mut player = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-i", url, "-f", "null", "-"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let mut publisher = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-nostdin",
            "-re",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=160x120:rate=30",
            "-frames:v",
            "60",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "10",
            "-f",
            "flv",
            url,
        ])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1200));
    let _ = player.kill();
    let _ = player.wait();
    assert!(publisher.wait().unwrap().success());
}

/// Our player (third connection) and our publisher (fourth).
fn our_sessions(url: &str) {
    let load = PlayerLoad::start(&url.parse().unwrap(), 1, 30, Arc::new(NoProbe)).unwrap();
    load.wait_playing(Duration::from_secs(5));
    let mut cfg = StreamConfig::default();
    (cfg.core.viewport.width, cfg.core.viewport.height) = (160, 120);
    cfg.encoder.gop = 10;
    let mut stream = Stream::open(&cfg, &Output::Rtmp(url.parse().unwrap()), &NoProbe).unwrap();
    stream.run(20, Pacing::Max).unwrap();
    stream.finish().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    load.stop();
}

/// GStreamer as player (fifth connection) and publisher (sixth): rtmp2src and rtmp2sink, a
/// client written apart from both ffmpeg and us. The player is killed mid-stream as ffmpeg's
/// was.
fn gstreamer_sessions(url: &str) {
    let gst = |args: &str| {
        Command::new("gst-launch-1.0")
            .arg("-q")
            .args(args.split_whitespace())
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "gst-launch-1.0: {e} (Debian: apt-get install gstreamer1.0-tools \
                     gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly)"
                )
            })
    };
    let mut gst_player = gst(&format!("rtmp2src location={url} ! flvdemux ! fakesink"));
    std::thread::sleep(Duration::from_millis(500));
    let mut gst_publisher = gst(&format!(
        "videotestsrc num-buffers=60 is-live=true ! video/x-raw,width=160,height=120,framerate=30/1 \
         ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=10 ! h264parse \
         ! flvmux streamable=true ! rtmp2sink location={url}"
    ));
    std::thread::sleep(Duration::from_millis(1200));
    let _ = gst_player.kill();
    let _ = gst_player.wait();
    assert!(gst_publisher.wait().unwrap().success());
}

fn write_seeds(dir: &Path, seeds: &[(&str, Vec<u8>)]) {
    for (name, bytes) in seeds {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        println!("{}: {} bytes", path.display(), bytes.len());
    }
}

fn main() {
    let corpus = PathBuf::from(std::env::args().nth(1).expect("the corpus folder"));
    let (dir, client_dir) = (corpus.join("server_input"), corpus.join("client_input"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::create_dir_all(&client_dir).unwrap();
    let server = Server::start(
        "127.0.0.1:0".parse().unwrap(),
        &RtmpConfig::default(),
        1,
        false,
    )
    .unwrap();
    let (addr, sent) = proxy(server.local_addr());
    let url = format!("rtmp://{addr}/live/seed");
    ffmpeg_sessions(&url);
    our_sessions(&url);
    gstreamer_sessions(&url);
    std::thread::sleep(Duration::from_millis(300));
    let both: Vec<(Vec<u8>, Vec<u8>)> = sent
        .lock()
        .unwrap()
        .iter()
        .map(|(to, from)| (to.lock().unwrap().clone(), from.lock().unwrap().clone()))
        .collect();
    let sent: Vec<Vec<u8>> = both.iter().map(|b| b.0.clone()).collect();
    let got: Vec<Vec<u8>> = both.iter().map(|b| b.1.clone()).collect();
    assert!(sent.len() >= 6, "{} connections recorded", sent.len());
    let (ffplay, ffpub, ours_play, ours_pub) = (&sent[0], &sent[1], &sent[2], &sent[3]);
    let (gst_play, gst_pub) = (&sent[4], &sent[5]);
    write_seeds(
        &dir,
        &[
            ("ffmpeg-publishes-ffmpeg-plays", seed(ffpub, ffplay)),
            ("ours-publishes-ours-plays", seed(ours_pub, ours_play)),
            ("ffmpeg-publishes-ours-plays", seed(ffpub, ours_play)),
            ("ours-publishes-ffmpeg-plays", seed(ours_pub, ffplay)),
            ("ffmpeg-publishes", seed(ffpub, &[])),
            ("ffmpeg-plays", seed(&[], ffplay)),
            (
                "gstreamer-publishes-gstreamer-plays",
                seed(gst_pub, gst_play),
            ),
            ("gstreamer-publishes-ours-plays", seed(gst_pub, ours_play)),
            ("ours-publishes-gstreamer-plays", seed(ours_pub, gst_play)),
        ],
    );
    // What the server answered each client: to ffmpeg's player, ffmpeg's publisher, our
    // player and our publisher.
    let (to_ffplay, to_ffpub, to_ours_play, to_ours_pub) = (&got[0], &got[1], &got[2], &got[3]);
    let (to_gst_play, to_gst_pub) = (&got[4], &got[5]);
    write_seeds(
        &client_dir,
        &[
            (
                "server-to-ours-publishing-and-playing",
                seed(to_ours_pub, to_ours_play),
            ),
            (
                "server-to-ffmpeg-publishing-and-playing",
                seed(to_ffpub, to_ffplay),
            ),
            ("server-to-ours-publishing", seed(to_ours_pub, &[])),
            ("server-to-ffmpeg-playing", seed(&[], to_ffplay)),
            (
                "server-to-gstreamer-publishing-and-playing",
                seed(to_gst_pub, to_gst_play),
            ),
        ],
    );
}
