//! What the RTMP tests share: the stream and server they set up, the real peers they start
//! (the ffmpeg CLI and ffprobe, the `stream-manager serve` binary), raw RTMP clients for
//! hostile input, and certificates for RTMPS. Every process started is stopped on drop.

#![allow(dead_code)] // each test file uses some of these

use rml_rtmp::chunk_io::ChunkSerializer;
use rml_rtmp::messages::RtmpMessage;
use rml_rtmp::sessions::{
    ClientSession, ClientSessionConfig, ClientSessionEvent, ClientSessionResult, PublishRequestType,
};
use rml_rtmp::time::RtmpTimestamp;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use streamer::config::{RtmpConfig, StreamConfig};
use streamer::output::Output;
use streamer::probe::NoProbe;
use streamer::rtmp::client::handshake;
use streamer::rtmp::server::Server;
use streamer::stream::{Pacing, Stream};

pub fn small() -> StreamConfig {
    let mut cfg = StreamConfig::default();
    cfg.core.viewport.width = 640;
    cfg.core.viewport.height = 360;
    cfg.encoder.gop = 30;
    cfg
}

pub fn server(cfg: &RtmpConfig) -> Server {
    Server::start("127.0.0.1:0".parse().unwrap(), cfg, 1, true).unwrap()
}

pub fn url(server: &Server, key: &str) -> String {
    format!("rtmp://{}/live/{key}", server.local_addr())
}

/// A child process that is killed when dropped, so a failing test leaves nothing running.
pub struct Proc(pub Option<Child>);

impl Proc {
    pub fn spawn(cmd: &mut Command) -> Proc {
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
    pub fn finish(mut self, limit: Duration) -> (String, String) {
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
pub fn ffmpeg_player(url: &str) -> Proc {
    Proc::spawn(Command::new("ffmpeg").args([
        "-v", "error", "-nostdin", "-i", url, "-map", "0:v", "-f", "framecrc", "-",
    ]))
}

pub fn decoded(framecrc: &str) -> usize {
    framecrc
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .count()
}

/// The ffmpeg CLI publishing 90 frames of 320x240 at 30 fps (real time, x264 ultrafast,
/// a keyframe a second) to `url`.
pub fn ffmpeg_publisher(url: &str) -> Proc {
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
pub fn ffprobe_player(url: &str) -> Proc {
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
pub fn probed_frames(probed: &str) -> usize {
    probed
        .trim()
        .rsplit(',')
        .next()
        .unwrap_or("0")
        .parse()
        .unwrap_or(0)
}

pub fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn publish(
    cfg: &StreamConfig,
    url: &str,
    frames: u64,
    pacing: Pacing,
) -> streamer::stream::Summary {
    let mut stream = Stream::open(cfg, &Output::Rtmp(url.parse().unwrap()), &NoProbe).unwrap();
    stream.run(frames, pacing).unwrap();
    stream.finish().unwrap()
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn send(r: ClientSessionResult, socket: &mut TcpStream) {
    if let ClientSessionResult::OutboundResponse(p) = r {
        socket.write_all(&p.bytes).unwrap();
    }
}

/// Feeds the server's bytes to a raw `session`, answering as it asks, until an event matches.
pub fn until(
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
pub fn connected(addr: SocketAddr) -> (ClientSession, TcpStream) {
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

/// A raw session publishing `key`; returns its socket.
pub fn publishing_socket(addr: SocketAddr, key: &str) -> TcpStream {
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
pub fn chunk(message: RtmpMessage) -> Vec<u8> {
    let payload = message
        .into_message_payload(RtmpTimestamp::new(0), 1)
        .unwrap();
    ChunkSerializer::new()
        .serialize(&payload, true, false)
        .unwrap()
        .bytes
}

/// `stream-manager serve` on a free loopback port with `env` set and `args` added: the
/// process, its pid, its address, and its stderr's lines as they come (after the announcement,
/// and the metrics endpoint's line before it, which are read here).
pub fn serve_binary(
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

/// A CA and a server certificate it signed for 127.0.0.1 and localhost, written to `dir` as
/// `cert.pem` and `key.pem`; returns the CA's PEM.
pub fn certificates(dir: &Path) -> String {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    // Each CA its own name: a client that trusts another test's CA of the same name would
    // find this one's certificates badly signed rather than of an unknown issuer.
    static CAS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = CAS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, format!("stream-manager test CA {n}"));
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
