//! RTMPS: the ffmpeg CLI and our publisher and players over TLS to our server, an untrusted
//! certificate refused with the reason, and our publisher to nginx-rtmp behind nginx's TLS.

mod common;

use common::*;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use streamer::config::RtmpConfig;
use streamer::output::Output;
use streamer::probe::NoProbe;
use streamer::rtmp::player::PlayerLoad;
use streamer::rtmp::server::Server;
use streamer::stream::{Pacing, Stream};

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
