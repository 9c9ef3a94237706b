//! `stream-manager serve` in its own process, and what is read of it (`/proc` and its
//! `/metrics`): the soak's server and the density search's.

use std::io::{BufRead, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The server, killed when dropped; its stderr's last lines kept for when it exits.
pub struct ServerProc {
    pub child: Child,
    pub rtmp: SocketAddr,
    pub metrics: String,
    pub last_lines: Arc<Mutex<Vec<String>>>,
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The variable that plants a leak in `stream-manager serve` (MiB a minute; see the soak's
/// test).
pub const LEAK_ENV: &str = "STREAM_MANAGER_PLANTED_LEAK_MIB_PER_MIN";

/// `stream-manager serve` would not start or did not say where it listens.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartError(String);

/// Starts `stream-manager serve` with its metrics, and reads the addresses it announces.
pub fn start_server(exe: &Path, leak_mib_per_min: f64) -> Result<ServerProc, StartError> {
    let mut child = Command::new(exe)
        .env(LEAK_ENV, leak_mib_per_min.to_string())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--metrics",
            "127.0.0.1:0",
            "--ping",
            "5",
            "--ping-timeout",
            "10",
            "--set",
            "rtmp.max_connections=2000",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| StartError(format!("{}: {e}", exe.display())))?;
    let stderr = child.stderr.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    let last_lines = Arc::new(Mutex::new(Vec::new()));
    let keep = Arc::clone(&last_lines);
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line.clone());
            let mut k = keep.lock().unwrap_or_else(|e| e.into_inner());
            k.push(line);
            if k.len() > 20 {
                k.remove(0);
            }
        }
    });
    let (mut rtmp, mut metrics) = (None, None);
    while rtmp.is_none() || metrics.is_none() {
        let line = rx.recv_timeout(Duration::from_secs(10)).map_err(|_| {
            StartError("the server did not announce its addresses within 10 s".into())
        })?;
        if let Some(rest) = line.strip_prefix("metrics: http://") {
            metrics = rest.strip_suffix("/metrics").map(String::from);
        }
        if let Some(rest) = line.strip_prefix("serving RTMP on rtmp://") {
            rtmp = rest.split('/').next().and_then(|a| a.parse().ok());
        }
    }
    Ok(ServerProc {
        child,
        rtmp: rtmp.expect("parsed"),
        metrics: metrics.expect("parsed"),
        last_lines,
    })
}

/// `name value` lines of a Prometheus text exposition: the value of `name`.
pub fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| {
            let (n, v) = l.split_once(' ')?;
            (n == name).then(|| v.trim().parse::<f64>().ok())?
        })
        .map_or(0, |v| v as u64)
}

/// The server's `/metrics` text (empty when it cannot be read).
pub fn scrape(addr: &str) -> String {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n");
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    text
}

/// `Name:  value` from `/proc/PID/status`.
pub fn status_field(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                let rest = l.strip_prefix(field)?.strip_prefix(':')?;
                rest.split_whitespace().next()?.parse().ok()
            })
        })
        .unwrap_or(0)
}

/// The server's open file descriptors.
pub fn open_fds(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64)
}

impl ServerProc {
    /// How it exited, with its last lines, once it has.
    pub fn exited(&mut self) -> Option<String> {
        let status = self.child.try_wait().ok()??;
        let lines = self
            .last_lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .join("\n");
        Some(format!("{status}; its last lines:\n{lines}"))
    }
}
