//! The `/metrics` endpoint: the stream's metrics (one stream's, or several streams' with a
//! `stream` label each) and an RTMP server's counters, served by `tiny_http` on a thread of its
//! own.

use super::Metrics;
use crate::rtmp::server::Ingest;
use crate::rtmp::server::ServerStats;
use crate::stream::Live;
use prometheus::{Encoder as _, IntCounter, IntGauge, Registry};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Why the endpoint could not start.
#[derive(Debug, thiserror::Error)]
#[error("metrics endpoint on {addr}: {why}")]
pub struct ServeError {
    pub addr: String,
    pub why: String,
}

/// The `/metrics` endpoint, serving until dropped.
pub struct Endpoint {
    pub addr: std::net::SocketAddr,
    server: Arc<tiny_http::Server>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Serves `metrics` with `live`'s counters at `http://addr/metrics` (port 0: a free one), and
/// with `server`'s after them when the stream goes to an embedded server.
///
/// # Errors
/// The address cannot be bound.
pub fn serve(
    addr: &str,
    metrics: Arc<Metrics>,
    live: Live,
    server: Option<Arc<ServerStats>>,
) -> Result<Endpoint, ServeError> {
    serve_text(addr, move || {
        let mut body = metrics.render(&live.snapshot());
        if let Some(s) = &server {
            body.push_str(&render_server(s));
        }
        body
    })
}

/// Several streams' metrics, each added (with its live view) once its stream is open.
pub type Streams = Arc<Mutex<Vec<(Arc<Metrics>, Live)>>>;

/// Serves several streams' metrics at `http://addr/metrics`, each series labelled with its
/// stream (`stream="s0"`: made with [`Metrics::labelled`]), every metric family once; with
/// `server`'s counters after them.
///
/// # Errors
/// The address cannot be bound.
pub fn serve_many(
    addr: &str,
    streams: Streams,
    server: Option<Arc<ServerStats>>,
) -> Result<Endpoint, ServeError> {
    serve_text(addr, move || {
        let open = streams.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let each: Vec<(&Metrics, crate::stream::LiveSnapshot)> =
            open.iter().map(|(m, l)| (&**m, l.snapshot())).collect();
        let mut body = super::render_many(&each);
        if let Some(s) = &server {
            body.push_str(&render_server(s));
        }
        body
    })
}

/// Serves an RTMP server's counters (`stream-manager serve --metrics`) at `http://addr/metrics`.
///
/// # Errors
/// The address cannot be bound.
pub fn serve_server(addr: &str, server: Arc<ServerStats>) -> Result<Endpoint, ServeError> {
    serve_text(addr, move || render_server(&server))
}

/// The RTMP server's counters in Prometheus' text format (`stream_manager_server_*`).
pub fn render_server(s: &ServerStats) -> String {
    let mut out = render_counters(s);
    out.push_str(&render_ingest(s));
    out
}

/// The server's own counters and gauges.
fn render_counters(s: &ServerStats) -> String {
    let registry = Registry::new();
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let counters: [(&str, &str, u64); 8] = [
        (
            "stream_manager_server_connections_accepted_total",
            "Connections the RTMP server accepted",
            load(&s.connections_accepted),
        ),
        (
            "stream_manager_server_connections_refused_total",
            "Connections refused at rtmp.max_connections (told why, then closed)",
            load(&s.connections_refused),
        ),
        (
            "stream_manager_server_panics_total",
            "Connections closed because rml_rtmp panicked on their input (contained, logged \
             as one line)",
            load(&s.panics),
        ),
        (
            "stream_manager_server_protocol_errors_total",
            "Connections closed for malformed input",
            load(&s.protocol_errors),
        ),
        (
            "stream_manager_server_timed_out_total",
            "Connections closed for silence or a stalled write past rtmp.ping_timeout",
            load(&s.timed_out),
        ),
        (
            "stream_manager_server_player_frames_dropped_total",
            "Player frames dropped by the queue policy (closed players included)",
            load(&s.frames_dropped),
        ),
        (
            "stream_manager_server_bytes_out_total",
            "Bytes the server wrote to its peers",
            load(&s.bytes_out),
        ),
        (
            "stream_manager_server_direct_writes_total",
            "Frames a publisher wrote straight to a player's socket",
            load(&s.direct_writes),
        ),
    ];
    for (name, help, v) in counters {
        let c = IntCounter::new(name, help).expect("a valid counter");
        c.inc_by(v);
        let _ = registry.register(Box::new(c));
    }
    for (name, help, v) in [
        (
            "stream_manager_server_connections_open",
            "Connections open now",
            load(&s.connections_open),
        ),
        (
            "stream_manager_server_players_open",
            "Players playing now",
            load(&s.players_open),
        ),
        (
            "stream_manager_server_player_queue_items",
            "Frames and headers waiting in the players' queues, all players (summed each second)",
            load(&s.queued),
        ),
    ] {
        let g = IntGauge::new(name, help).expect("a valid gauge");
        g.set(i64::try_from(v).unwrap_or(i64::MAX));
        let _ = registry.register(Box::new(g));
    }
    let mut out = Vec::new();
    let _ = prometheus::TextEncoder::new().encode(&registry.gather(), &mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// One metric family of [`render_ingest`]: name, type, help, and its value for a stream.
type Family = (&'static str, &'static str, &'static str, fn(&Ingest) -> f64);

/// Each published stream as it arrived: frames, those more than 500 ms behind their
/// timestamps' real-time schedule, and the most behind one of its current publish.
fn render_ingest(s: &ServerStats) -> String {
    let ingest = s.ingest.lock().unwrap_or_else(|e| e.into_inner()).clone();
    if ingest.is_empty() {
        return String::new();
    }
    let mut out = String::new();
    let families: [Family; 3] = [
        (
            "stream_manager_server_stream_frames_total",
            "counter",
            "Video frames each published stream brought, over all its publishes",
            |i| i.frames as f64,
        ),
        (
            "stream_manager_server_stream_late_frames_total",
            "counter",
            "Video frames that arrived more than 500 ms behind their timestamps' real-time \
             schedule (counted from the publish's first frame)",
            |i| i.late as f64,
        ),
        (
            "stream_manager_server_stream_behind_max_seconds",
            "gauge",
            "The most behind its real-time schedule a frame of the stream's current publish \
             arrived, seconds",
            |i| i.behind_max_ms / 1000.0,
        ),
    ];
    for (name, kind, help, value) in families {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for ((app, key), i) in &ingest {
            let _ = writeln!(out, "{name}{{stream=\"{app}/{key}\"}} {}", value(i));
        }
    }
    out
}

/// Serves what `render` gives at `http://addr/metrics` on a thread of its own.
fn serve_text(
    addr: &str,
    render: impl Fn() -> String + Send + 'static,
) -> Result<Endpoint, ServeError> {
    let server = tiny_http::Server::http(addr).map_err(|e| ServeError {
        addr: addr.to_string(),
        why: e.to_string(),
    })?;
    let bound = server.server_addr().to_ip().ok_or_else(|| ServeError {
        addr: addr.to_string(),
        why: "not an IP address".into(),
    })?;
    let server = Arc::new(server);
    let stop = Arc::new(AtomicBool::new(false));
    let (srv, halt) = (Arc::clone(&server), Arc::clone(&stop));
    let thread = std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            while !halt.load(Ordering::Relaxed) {
                let Ok(Some(request)) = srv.recv_timeout(Duration::from_millis(200)) else {
                    continue;
                };
                let response = if request.url() == "/metrics" {
                    let body = render();
                    tiny_http::Response::from_string(body).with_header(
                        tiny_http::Header::from_bytes("Content-Type", prometheus::TEXT_FORMAT)
                            .expect("a valid header"),
                    )
                } else {
                    tiny_http::Response::from_string("stream-manager: see /metrics\n")
                        .with_status_code(404)
                };
                let _ = request.respond(response);
            }
        })
        .map_err(|e| ServeError {
            addr: addr.to_string(),
            why: e.to_string(),
        })?;
    Ok(Endpoint {
        addr: bound,
        server,
        stop,
        thread: Some(thread),
    })
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
