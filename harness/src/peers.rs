//! The same publisher and player load against three RTMP servers, each its own process so its
//! CPU and memory are its own: our server (`stream-manager serve`, over plain RTMP and over
//! RTMPS), nginx-rtmp, and node-media-server 2.7. Everything listens on loopback; every process
//! started is stopped.

use crate::record::Recorder;
use crate::results::{PeerRow, median};
use serde::{Deserialize, Serialize};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use streamer::config::StreamConfig;
use streamer::output::Output;
use streamer::probe::NoProbe;
use streamer::rtmp::client::RtmpUrl;
use streamer::rtmp::player::PlayerLoad;
use streamer::stream::{Pacing, Stream};
use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, RefreshKind, System};

/// Which server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum PeerKind {
    /// Our server, `stream-manager serve` on one worker thread.
    Embedded,
    /// The same, with the publisher and every player on RTMPS (TLS, a certificate made for
    /// the run): what TLS costs per player.
    EmbeddedTls,
    Nginx,
    NodeMediaServer,
}

impl PeerKind {
    /// The name in tables.
    pub fn name(self) -> &'static str {
        match self {
            PeerKind::Embedded => "stream-manager (embedded)",
            PeerKind::EmbeddedTls => "stream-manager (embedded, RTMPS)",
            PeerKind::Nginx => "nginx-rtmp",
            PeerKind::NodeMediaServer => "node-media-server 2.7",
        }
    }
}

/// Where the peers' programs are.
#[derive(Debug, Clone)]
pub struct PeerPrograms {
    pub stream_manager: PathBuf,
    /// nginx's RTMP module (`ngx_rtmp_module.so`).
    pub nginx_module: PathBuf,
    /// A folder whose `node_modules` holds node-media-server 2.7.
    pub node_media_server: PathBuf,
}

/// Why a comparison could not run.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("{0}: {1}")]
    Start(&'static str, String),
    #[error("{0}: {1}")]
    Run(&'static str, String),
}

/// A server process, killed when dropped.
struct ServerProc {
    child: Child,
    /// The port clients use (RTMPS for [`PeerKind::EmbeddedTls`]).
    port: u16,
    tls: bool,
    _dir: tempfile::TempDir,
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> Result<u16, std::io::Error> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Binds node-media-server 2.7 (which has no bind option) to loopback and runs it.
const NMS_WRAPPER: &str = r#"
const net = require('net');
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (port, ...rest) {
  if (typeof port === 'number') {
    return listen.call(this, port, '127.0.0.1', ...rest.filter((x) => typeof x === 'function'));
  }
  return listen.call(this, port, ...rest);
};
const NodeMediaServer = require('node-media-server');
new NodeMediaServer(JSON.parse(process.argv[2])).run();
"#;

fn start(
    kind: PeerKind,
    cfg: &StreamConfig,
    programs: &PeerPrograms,
) -> Result<ServerProc, PeerError> {
    let fail = |e: String| PeerError::Start(kind.name(), e);
    let port = free_port().map_err(|e| fail(e.to_string()))?;
    let dir = tempfile::tempdir().map_err(|e| fail(e.to_string()))?;
    let r = &cfg.rtmp;
    let mut client = (port, false);
    let mut cmd = match kind {
        PeerKind::Embedded | PeerKind::EmbeddedTls => {
            let mut c = Command::new(&programs.stream_manager);
            c.args(["serve", "--threads", "1", "--listen"])
                .arg(format!("127.0.0.1:{port}"))
                .args(["--chunk-size", &r.chunk_size.to_string()])
                .args(["--gop-cache", &r.gop_cache.to_string()])
                .args(["--ping", &r.ping.to_string()])
                .args(["--ping-timeout", &r.ping_timeout.to_string()])
                .args([
                    "--set",
                    &format!("rtmp.fanout_threads={}", r.fanout_threads),
                ]);
            if kind == PeerKind::EmbeddedTls {
                let tls_port = free_port().map_err(|e| fail(e.to_string()))?;
                let ca = certificates(dir.path())?;
                streamer::rtmp::tls::trust_pem(ca.as_bytes()).map_err(|e| fail(e.to_string()))?;
                c.arg("--tls-cert")
                    .arg(dir.path().join("cert.pem"))
                    .arg("--tls-key")
                    .arg(dir.path().join("key.pem"))
                    .arg("--tls-listen")
                    .arg(format!("127.0.0.1:{tls_port}"));
                client = (tls_port, true);
            }
            c
        }
        PeerKind::Nginx => {
            let conf = dir.path().join("nginx.conf");
            let text = format!(
                "load_module {module};\ndaemon off;\nmaster_process off;\npid {d}/nginx.pid;\n\
                 error_log {d}/error.log error;\nevents {{ worker_connections 4096; }}\n\
                 rtmp {{ server {{ listen 127.0.0.1:{port}; chunk_size {chunk}; ping {ping}s; \
                 ping_timeout {timeout}s; application live {{ live on; }} }} }}\n",
                module = programs.nginx_module.display(),
                d = dir.path().display(),
                chunk = r.chunk_size.min(65536),
                ping = r.ping,
                timeout = r.ping_timeout,
            );
            std::fs::write(&conf, text).map_err(|e| fail(e.to_string()))?;
            let mut c = Command::new("nginx");
            c.arg("-p")
                .arg(dir.path())
                .arg("-e")
                .arg(dir.path().join("error.log"))
                .arg("-c")
                .arg(&conf);
            c
        }
        PeerKind::NodeMediaServer => {
            let script = dir.path().join("nms.js");
            std::fs::write(&script, NMS_WRAPPER).map_err(|e| fail(e.to_string()))?;
            let config = serde_json::json!({
                "logType": 1,
                "rtmp": {
                    "port": port,
                    "chunk_size": r.chunk_size,
                    "gop_cache": r.gop_cache,
                    "ping": r.ping,
                    "ping_timeout": r.ping_timeout,
                }
            });
            let mut c = Command::new("node");
            c.arg(&script)
                .arg(config.to_string())
                .env("NODE_PATH", programs.node_media_server.join("node_modules"));
            c
        }
    };
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| fail(format!("cannot start: {e}")))?;
    let mut server = ServerProc {
        child,
        port: client.0,
        tls: client.1,
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err()
        || TcpStream::connect(("127.0.0.1", client.0)).is_err()
    {
        if let Ok(Some(status)) = server.child.try_wait() {
            return Err(fail(format!("exited before listening ({status})")));
        }
        if Instant::now() > deadline {
            return Err(fail("did not listen within 10 s".into()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = &mut server;
    Ok(server)
}

/// A CA and a server certificate it signed for 127.0.0.1, written to `dir` as `cert.pem` and
/// `key.pem`; returns the CA's PEM (for the clients to trust).
fn certificates(dir: &Path) -> Result<String, PeerError> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let e = |e: rcgen::Error| PeerError::Start("a certificate for the run", e.to_string());
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(e)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "stream-manager bench CA");
    let ca_key = KeyPair::generate().map_err(e)?;
    let ca = ca.self_signed(&ca_key).map_err(e)?;
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string()]).map_err(e)?;
    let key = KeyPair::generate().map_err(e)?;
    let leaf = leaf.signed_by(&key, &ca, &ca_key).map_err(e)?;
    let write = |name: &str, text: String| {
        std::fs::write(dir.join(name), text)
            .map_err(|e| PeerError::Start("a certificate for the run", format!("{name}: {e}")))
    };
    write("cert.pem", leaf.pem())?;
    write("key.pem", key.serialize_pem())?;
    Ok(ca.pem())
}

/// CPU time (ms) and RSS (bytes) of a process.
fn usage(sys: &mut System, pid: u32) -> (u64, u64) {
    let pid = Pid::from_u32(pid);
    sys.refresh_processes_specifics(
        ProcessesToUpdate::Some(&[pid]),
        false,
        ProcessRefreshKind::nothing().with_cpu().with_memory(),
    );
    sys.process(pid)
        .map_or((0, 0), |p| (p.accumulated_cpu_time(), p.memory()))
}

/// Streams to `kind` with `players` players for `seconds` (after `warmup` frames) and measures.
///
/// # Errors
/// The server, the players or the publisher could not start.
pub fn measure(
    kind: PeerKind,
    cfg: &StreamConfig,
    programs: &PeerPrograms,
    players: u32,
    warmup: u64,
    seconds: f64,
) -> Result<PeerRow, PeerError> {
    let fail = |e: String| PeerError::Run(kind.name(), e);
    let server = start(kind, cfg, programs)?;
    let pid = server.child.id();
    let mut sys =
        System::new_with_specifics(RefreshKind::nothing()).map_err(|e| fail(e.to_string()))?;
    std::thread::sleep(Duration::from_millis(300));
    let (_, rss_idle) = usage(&mut sys, pid);
    let fps = cfg.core.viewport.fps;
    let url = RtmpUrl {
        tls: server.tls,
        host: "127.0.0.1".into(),
        port: server.port,
        app: "live".into(),
        key: "peers".into(),
    };
    let recorder = Arc::new(Recorder::new());
    let load = PlayerLoad::start(&url, players as usize, fps, Arc::clone(&recorder))
        .map_err(|e| fail(e.to_string()))?;
    if !load.wait_playing(Duration::from_secs(20)) {
        return Err(fail(format!(
            "not every one of {players} players could start playing"
        )));
    }
    let mut stream = Stream::open(cfg, &Output::Rtmp(url.clone()), &*recorder)
        .map_err(|e| fail(e.to_string()))?;
    stream
        .run(warmup, Pacing::Realtime)
        .map_err(|e| fail(e.to_string()))?;
    recorder.begin_measurement(warmup);
    let before = load.reports();
    let sent_before = stream.sink_stats();
    let late =
        PlayerLoad::start(&url, 1, fps, Arc::new(NoProbe)).map_err(|e| fail(e.to_string()))?;
    let (cpu0, _) = usage(&mut sys, pid);
    let cpu_ns0 = streamer::clock::process_cpu_ns_of(pid);
    let started = Instant::now();
    let frames = (seconds * f64::from(fps)).round() as u64;
    let mut rss_peak = rss_idle;
    // Stream in slices so the server's RSS is sampled as it runs.
    let slice = u64::from(fps / 5).max(1);
    let mut done = 0;
    while done < frames {
        let n = slice.min(frames - done);
        stream
            .run(n, Pacing::Realtime)
            .map_err(|e| fail(e.to_string()))?;
        done += n;
        rss_peak = rss_peak.max(usage(&mut sys, pid).1);
    }
    let wall = started.elapsed().as_secs_f64();
    let (cpu1, rss_end) = usage(&mut sys, pid);
    let cpu_ns1 = streamer::clock::process_cpu_ns_of(pid);
    let summary = stream.finish().map_err(|e| fail(e.to_string()))?;
    std::thread::sleep(Duration::from_millis(150));
    let after = load.stop();
    let late = late.stop();
    let realtime = after
        .iter()
        .zip(&before)
        .filter(|(a, b)| (a.frames - b.frames) as f64 / f64::from(fps) / wall >= 0.99)
        .count() as u32;
    let snapshot = recorder.snapshot();
    let span = |name: &str, q: f64| {
        snapshot
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, h)| h.value_at_quantile(q) as f64 / 1e6)
    };
    let cpu_percent = match (cpu_ns0, cpu_ns1) {
        (Some(a), Some(b)) => b.saturating_sub(a) as f64 / 1e7 / wall,
        _ => (cpu1.saturating_sub(cpu0)) as f64 / 10.0 / wall,
    };
    let mut joins: Vec<f64> = late
        .iter()
        .filter_map(|r| r.join)
        .map(|d| d.as_secs_f64() * 1000.0)
        .collect();
    drop(server);
    Ok(PeerRow {
        server: kind.name().to_string(),
        players,
        cpu_percent,
        cpu_per_player: cpu_percent / f64::from(players.max(1)),
        rss_idle_bytes: rss_idle,
        rss_peak_bytes: rss_peak.max(rss_end),
        players_realtime: realtime,
        e2e_p50_ms: span("e2e", 0.5),
        e2e_p99_ms: span("e2e", 0.99),
        relay_p99_ms: span("relay", 0.99),
        join_ms: (!joins.is_empty()).then(|| median(&mut joins)),
        publisher_dropped: summary.sink.dropped - sent_before.dropped,
        repetitions: 1,
        cpu_percent_runs: vec![cpu_percent],
    })
}

/// One row for several runs of the same server and player count: median CPU, latency and
/// join; peak RSS; the fewest players that kept real time; every drop. `None` for no runs.
pub fn combine(runs: &[PeerRow]) -> Option<PeerRow> {
    let first = runs.first()?;
    let med = |f: &dyn Fn(&PeerRow) -> Option<f64>| {
        let mut v: Vec<f64> = runs.iter().filter_map(f).collect();
        (!v.is_empty()).then(|| median(&mut v))
    };
    let cpu_percent = med(&|r| Some(r.cpu_percent)).unwrap_or(0.0);
    Some(PeerRow {
        server: first.server.clone(),
        players: first.players,
        cpu_percent,
        cpu_per_player: cpu_percent / f64::from(first.players.max(1)),
        rss_idle_bytes: runs.iter().map(|r| r.rss_idle_bytes).min().unwrap_or(0),
        rss_peak_bytes: runs.iter().map(|r| r.rss_peak_bytes).max().unwrap_or(0),
        players_realtime: runs.iter().map(|r| r.players_realtime).min().unwrap_or(0),
        e2e_p50_ms: med(&|r| r.e2e_p50_ms),
        e2e_p99_ms: med(&|r| r.e2e_p99_ms),
        relay_p99_ms: med(&|r| r.relay_p99_ms),
        join_ms: med(&|r| r.join_ms),
        publisher_dropped: runs.iter().map(|r| r.publisher_dropped).sum(),
        repetitions: runs.iter().map(|r| r.repetitions).sum(),
        cpu_percent_runs: runs
            .iter()
            .flat_map(|r| r.cpu_percent_runs.clone())
            .collect(),
    })
}

/// The nginx RTMP module where Debian installs it.
pub fn default_nginx_module() -> PathBuf {
    Path::new("/usr/lib/nginx/modules/ngx_rtmp_module.so").to_path_buf()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(cpu: f64, rss: u64, realtime: u32, relay: Option<f64>) -> PeerRow {
        PeerRow {
            server: "s".into(),
            players: 200,
            cpu_percent: cpu,
            cpu_per_player: cpu / 200.0,
            rss_idle_bytes: 10,
            rss_peak_bytes: rss,
            players_realtime: realtime,
            e2e_p50_ms: None,
            e2e_p99_ms: Some(cpu),
            relay_p99_ms: relay,
            join_ms: None,
            publisher_dropped: 1,
            repetitions: 1,
            cpu_percent_runs: vec![cpu],
        }
    }

    #[test]
    fn runs_combine_into_medians_peaks_and_minimums() {
        let c = combine(&[
            row(6.0, 30, 200, Some(3.0)),
            row(9.0, 50, 199, None),
            row(5.0, 40, 200, Some(2.0)),
        ])
        .expect("three runs");
        assert_eq!(c.cpu_percent, 6.0);
        assert_eq!(c.cpu_per_player, 0.03);
        assert_eq!(c.rss_peak_bytes, 50);
        assert_eq!(c.players_realtime, 199);
        assert_eq!(
            c.relay_p99_ms,
            Some(2.5),
            "median of the runs that have one"
        );
        assert_eq!(c.e2e_p50_ms, None);
        assert_eq!(c.publisher_dropped, 3);
        assert_eq!(c.repetitions, 3);
        assert_eq!(c.cpu_percent_runs, vec![6.0, 9.0, 5.0]);
        assert!(combine(&[]).is_none());
    }
}
