//! The embedded RTMP server: publish and play by app/stream key, fan-out to any number of
//! players, GOP cache, ping and ping timeout, handshake timeout, connection limit, publish keys.
//!
//! # Model
//!
//! One tokio task per connection owns its socket and its `rml_rtmp` `ServerSession` (which is
//! sans-IO). A publisher's media goes into its channel ([`gop::Channel`]): the metadata, the sequence
//! headers and, with `gop_cache`, every frame since the last keyframe are kept there for players
//! that join later. Each player has a bounded queue ([`PlayerQueue`]); its task drains the queue
//! into its session and socket. When a queue is full the player's non-key frames are dropped
//! until the next keyframe, and counted — a slow player never grows memory, and never slows the
//! publisher or the other players.
//!
//! A frame goes straight from the publisher's connection to each idle player's socket with
//! one `send(2)` of chunks built once for everyone; a large fan-out (a keyframe to many players)
//! is split over `rtmp.fanout_threads` threads ([`fanout::FanOut`]).
//!
//! Faults stay inside their connection: malformed bytes end that connection with a log line,
//! and so does a panic inside `rml_rtmp` (it panics on some malformed messages), caught around
//! every call into the session, logged as one line (no backtrace, whatever `RUST_BACKTRACE`
//! says; at most one a second) and counted. The connection's slot is a guard, released on
//! every way its task ends. Every write has a deadline of `ping_timeout`, so a peer that
//! stops reading is closed just as one that stops sending is.
//!
//! RTMPS is offered on a port of its own ([`Server::offer_tls`], `serve --tls-cert`): a TLS
//! terminator relays each connection to the plain listener (see [`crate::rtmp::tls`]).
//!
//! # Layout
//!
//! From the bottom up: `media` (a message and its chunks), `stats` (the counters),
//! `player_queue` (a player's queue and drop rule), `gop` (a channel and its GOP cache),
//! `fanout` (the fan-out threads), `shared` (what connections share), `connection` (one
//! connection: handshake, session, publish and play), and here the server's lifecycle and
//! accept loop.

mod connection;
pub(crate) mod contain;
mod fanout;
#[doc(hidden)]
#[cfg(feature = "fuzzing")]
pub mod fuzz_server;
mod gop;
mod handshake;
mod media;
mod notify;
mod player_queue;
mod shared;
mod stats;

pub use media::{Media, MediaKind};
pub use player_queue::PlayerQueue;
pub use stats::{Ingest, LATE_MS, ServerStats};

use crate::config::RtmpConfig;
use connection::Connection;
use shared::{Shared, Slot};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// The publisher's side of one video frame without sockets, for the instruction-count gate:
/// what the publishing connection does with a frame (parse its FLV tag, wrap it as
/// [`Media`]), the fan-out handing it to every queue of `players` (the publisher's thread
/// alone, as for every frame below the multi-thread threshold; the queues have no socket, so
/// each gets the frame queued), and the frame chunked once for message stream 1 at
/// `chunk_size`, as every player's task then shares it. Returns the chunks' size.
#[doc(hidden)]
pub fn fan_out_frame(
    players: &Arc<[Arc<PlayerQueue>]>,
    data: bytes::Bytes,
    timestamp: u32,
    chunk_size: u32,
    stats: &Arc<ServerStats>,
) -> usize {
    let key = crate::rtmp::flv::parse_video_tag(&data).is_some_and(|t| t.key);
    let media = Arc::new(Media::new(MediaKind::Video, timestamp, data, key));
    fanout::FanOut::new(1).hand(players, &media, stats);
    media.chunks(1, chunk_size).len()
}

/// Socket send buffer per connection (the kernel doubles it and caps it at wmem_max).
const SEND_BUFFER: usize = 1 << 20;

/// A running server; dropping it (or [`Server::stop`]) closes the listener and every connection.
pub struct Server {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accepting: tokio::task::JoinHandle<()>,
    /// The RTMPS port's accept loop, when offered.
    tls_accepting: Option<tokio::task::JoinHandle<()>>,
    runtime: Option<Arc<tokio::runtime::Runtime>>,
    /// With one thread: the thread driving the single-threaded runtime, and its stop signal.
    driver: Option<(Arc<Notify>, std::thread::JoinHandle<()>)>,
    stats: Arc<ServerStats>,
    stopping: Arc<AtomicBool>,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[error("rtmp server on {addr}: {source}")]
pub struct ServerError {
    addr: String,
    source: std::io::Error,
}

impl Server {
    /// Binds `addr` and serves with `cfg` on `threads` worker threads. `verbose` logs each
    /// connection's end and every fault.
    ///
    /// # Errors
    /// The address cannot be bound, or the runtime cannot start.
    pub fn start(
        addr: SocketAddr,
        cfg: &RtmpConfig,
        threads: usize,
        verbose: bool,
    ) -> Result<Self, ServerError> {
        Self::start_with(addr, cfg, threads, verbose, Arc::default())
    }

    /// As [`Server::start`], counting into `stats`.
    ///
    /// # Errors
    /// The address cannot be bound, or the runtime cannot start.
    pub fn start_with(
        addr: SocketAddr,
        cfg: &RtmpConfig,
        threads: usize,
        verbose: bool,
        stats: Arc<ServerStats>,
    ) -> Result<Self, ServerError> {
        let fail = |source| ServerError {
            addr: addr.to_string(),
            source,
        };
        // One thread: a current-thread runtime on a thread of its own, which spares the
        // work-stealing scheduler's cost on every wake-up (one per frame per player).
        let runtime = if threads <= 1 {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
        } else {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(threads)
                .thread_name("rtmp-server")
                .enable_all()
                .build()
        }
        .map_err(fail)?;
        let listener = runtime.block_on(TcpListener::bind(addr)).map_err(fail)?;
        let addr = listener.local_addr().map_err(fail)?;
        let stopping = Arc::new(AtomicBool::new(false));
        let shared = Shared::new(cfg, Arc::clone(&stats), verbose);
        let accepting = runtime.spawn(accept_loop(listener, Arc::clone(&shared)));
        let runtime = Arc::new(runtime);
        let driver = if threads <= 1 {
            let stop = Arc::new(Notify::new());
            let (rt, signal) = (Arc::clone(&runtime), Arc::clone(&stop));
            let thread = std::thread::Builder::new()
                .name("rtmp-server".into())
                .spawn(move || rt.block_on(signal.notified()))
                .map_err(fail)?;
            Some((stop, thread))
        } else {
            None
        };
        Ok(Server {
            addr,
            shared,
            accepting,
            tls_accepting: None,
            runtime: Some(runtime),
            driver,
            stats,
            stopping,
        })
    }

    /// Offers RTMPS on `addr` with `config` beside plain RTMP: a TLS terminator relaying to
    /// this server's plain listener. Returns the bound address.
    ///
    /// # Errors
    /// The address cannot be bound.
    pub fn offer_tls(
        &mut self,
        addr: SocketAddr,
        config: Arc<rustls::ServerConfig>,
    ) -> Result<SocketAddr, ServerError> {
        let runtime = self.runtime.as_ref().expect("running until stopped");
        let _inside = runtime.enter();
        let (tls_addr, task) = offer_tls(addr, config, self.addr, &self.shared)?;
        if let Some(old) = self.tls_accepting.replace(task) {
            old.abort();
        }
        Ok(tls_addr)
    }

    /// Binds `addr` and serves on the calling thread until SIGINT or SIGTERM, then drains (see
    /// [`Drained`]): the whole server in one thread. With `tls` (an address and a
    /// configuration), RTMPS too (see [`Server::offer_tls`]). A process of one thread is cheaper in the
    /// kernel: with more than one, every `send(2)` takes and drops a reference on the socket's
    /// file (the descriptor table is shared), one more cache line per player per frame. `ready`
    /// is called once bound, with the plain and the RTMPS address; the server counts into
    /// `stats`.
    ///
    /// # Errors
    /// The address cannot be bound, or the runtime or the signal handlers cannot start.
    pub fn serve_here(
        addr: SocketAddr,
        cfg: &RtmpConfig,
        verbose: bool,
        stats: Arc<ServerStats>,
        tls: Option<(SocketAddr, Arc<rustls::ServerConfig>)>,
        ready: impl FnOnce(SocketAddr, Option<SocketAddr>),
    ) -> Result<Drained, ServerError> {
        let fail = |source| ServerError {
            addr: addr.to_string(),
            source,
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(fail)?;
        let listener = runtime.block_on(TcpListener::bind(addr)).map_err(fail)?;
        let plain = listener.local_addr().map_err(fail)?;
        let shared = Shared::new(cfg, stats, verbose);
        let _inside = runtime.enter();
        let tls = tls
            .map(|(tls_addr, config)| offer_tls(tls_addr, config, plain, &shared))
            .transpose()?;
        ready(plain, tls.as_ref().map(|t| t.0));
        runtime
            .block_on(async {
                let accepting = tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
                let drained = drain_on_signal(&shared, &accepting).await;
                if let Some((_, task)) = &tls {
                    task.abort();
                }
                drained
            })
            .map_err(fail)
    }

    /// Waits for SIGINT or SIGTERM, then drains (see [`Drained`]).
    ///
    /// # Errors
    /// The signal handlers cannot be set up.
    pub fn drain_on_signal(&self) -> Result<Drained, ServerError> {
        let runtime = self.runtime.as_ref().expect("running until stopped");
        runtime
            .block_on(async {
                let drained = drain_on_signal(&self.shared, &self.accepting).await;
                if let Some(t) = &self.tls_accepting {
                    t.abort();
                }
                drained
            })
            .map_err(|source| ServerError {
                addr: self.addr.to_string(),
                source,
            })
    }

    /// The bound address (the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server's counters.
    pub fn stats(&self) -> &ServerStats {
        &self.stats
    }

    /// The server's counters, to read from another thread (a metrics endpoint).
    pub fn stats_handle(&self) -> Arc<ServerStats> {
        Arc::clone(&self.stats)
    }

    /// Closes every connection and stops.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stopping.store(true, Ordering::Relaxed);
        if let Some((stop, thread)) = self.driver.take() {
            stop.notify_one();
            let _ = thread.join();
        }
        if let Some(rt) = self.runtime.take().and_then(|rt| Arc::try_unwrap(rt).ok()) {
            rt.shutdown_timeout(Duration::from_secs(1));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// What a drain did: on the first SIGINT or SIGTERM the server stops accepting, tells every
/// player the stream ended (`onStatus NetStream.Play.UnpublishNotify`, after what was queued
/// for it), ends every other connection, and waits at most `rtmp.drain_timeout` for the
/// players to take it all and close. A second signal exits at once (status 130).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Drained {
    /// Players told the stream ended.
    pub players_told: u64,
    /// Connections still open when `rtmp.drain_timeout` ran out (0: all closed in time).
    pub cut: u64,
    /// From the signal to the last connection closed (or the timeout).
    pub took: Duration,
}

async fn drain_on_signal(
    shared: &Arc<Shared>,
    accepting: &tokio::task::JoinHandle<()>,
) -> std::io::Result<Drained> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let which = tokio::select! {
        _ = interrupt.recv() => "SIGINT",
        _ = terminate.recv() => "SIGTERM",
    };
    accepting.abort();
    let started = tokio::time::Instant::now();
    let limit = Duration::from_secs(shared.cfg.drain_timeout.into());
    let open = || shared.stats.connections_open.load(Ordering::Relaxed);
    eprintln!(
        "{which}: draining {} connections: no new ones; players get what is queued and the end \
         of the stream, within {} s (rtmp.drain_timeout); another signal exits at once",
        open(),
        limit.as_secs()
    );
    let players_told = shared.begin_drain();
    while open() > 0 && started.elapsed() < limit {
        tokio::select! {
            _ = interrupt.recv() => std::process::exit(130),
            _ = terminate.recv() => std::process::exit(130),
            () = tokio::time::sleep(Duration::from_millis(10)) => {}
        }
    }
    Ok(Drained {
        players_told,
        cut: open(),
        took: started.elapsed(),
    })
}

/// Binds the RTMPS port and starts its accept loop (inside the runtime).
fn offer_tls(
    addr: SocketAddr,
    config: Arc<rustls::ServerConfig>,
    plain: SocketAddr,
    shared: &Arc<Shared>,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), ServerError> {
    let fail = |source| ServerError {
        addr: addr.to_string(),
        source,
    };
    let terminator = crate::rtmp::tls::Terminator::bind(addr, config, plain).map_err(fail)?;
    let bound = terminator.local_addr().map_err(fail)?;
    let timeout = Duration::from_secs(shared.cfg.handshake_timeout.into());
    let task = tokio::spawn(terminator.run(timeout, shared.verbose));
    Ok((bound, task))
}

/// Sums the players' queues into [`ServerStats::queued`] once a second, until the server is
/// gone.
async fn sample_queues(shared: std::sync::Weak<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let n = shared.queued_items();
        shared.stats.queued.store(n, Ordering::Relaxed);
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    tokio::spawn(sample_queues(Arc::downgrade(&shared)));
    loop {
        let Ok((socket, peer)) = listener.accept().await else {
            continue;
        };
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        let open = shared.stats.connections_open.load(Ordering::Relaxed);
        let max = u64::from(shared.cfg.max_connections);
        let (slot, refusal) = if open >= max {
            shared
                .stats
                .connections_refused
                .fetch_add(1, Ordering::Relaxed);
            shared.refused(open);
            shared.log(
                id,
                format_args!("refused {peer}: {open} connections open (max_connections)"),
            );
            if shared.refusing.load(Ordering::Relaxed) >= shared::MAX_REFUSING {
                drop(socket);
                continue;
            }
            let why = format!(
                "the server is at rtmp.max_connections ({max} connections open); raise \
                 rtmp.max_connections"
            );
            (Slot::take(&shared, |s| &s.refusing), Some(why))
        } else {
            shared.accepting();
            shared
                .stats
                .connections_accepted
                .fetch_add(1, Ordering::Relaxed);
            (Slot::take(&shared, |s| &s.stats.connections_open), None)
        };
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            // Released however this task ends.
            let _slot = slot;
            // Setting up is request and answer: with Nagle's algorithm an answer can wait out
            // the peer's delayed acknowledgement (40 ms). A player's socket follows
            // `rtmp.tcp_nodelay` once it has had its first media (see `flush_player`).
            let _ = socket.set_nodelay(true);
            let why = match refusal {
                Some(why) => {
                    // Told why within the handshake's time, then closed.
                    let limit = Duration::from_secs(shared.cfg.handshake_timeout.into());
                    let mut conn = Connection::refusing(id, Arc::clone(&shared), why);
                    tokio::time::timeout(limit, conn.serve(socket))
                        .await
                        .unwrap_or_else(|_| "refused; no connect request in time".into())
                }
                None => {
                    // Room for a whole keyframe: a frame written in one piece goes out from
                    // the publisher's task; one that does not fit waits on the player's task
                    // and its wake-up.
                    let _ = socket2::SockRef::from(&socket).set_send_buffer_size(SEND_BUFFER);
                    let mut conn = Connection::new(id, Arc::clone(&shared));
                    let why = conn.serve(socket).await;
                    conn.leave();
                    why
                }
            };
            if why != shared::PANICKED {
                shared.log(id, format_args!("closed: {why}"));
            }
        });
    }
}
