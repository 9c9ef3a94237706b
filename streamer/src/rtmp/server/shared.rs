//! What every connection of one server shares ([`Shared`]): its settings, its channels, its
//! fan-out threads and its counters.

use super::fanout::FanOut;
use super::gop::Channel;
use super::stats::ServerStats;
use crate::config::RtmpConfig;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The server's state, one per server, held by every connection.
pub(super) struct Shared {
    pub(super) cfg: RtmpConfig,
    pub(super) fanout: FanOut,
    pub(super) channels: Mutex<HashMap<(String, String), Channel>>,
    pub(super) stats: Arc<ServerStats>,
    pub(super) next_id: AtomicU64,
    /// Connections being told they are refused, now.
    pub(super) refusing: AtomicU64,
    /// The burst of refusals under way: when it began and how many so far.
    refusals: Mutex<Option<(Instant, u64)>>,
    /// When a contained panic was last logged, and how many since went unlogged.
    panic_log: Mutex<(Option<Instant>, u64)>,
    /// Turns true when the server drains (see [`Shared::begin_drain`]).
    drain: tokio::sync::watch::Sender<bool>,
    pub(super) verbose: bool,
    /// Contained panics are logged (off only for the fuzzing harness, which makes thousands).
    pub(super) log_panics: std::sync::atomic::AtomicBool,
}

/// How a connection closed by a contained panic ends (already logged by [`Shared::panicked`]).
pub(super) const PANICKED: &str = "rml_rtmp panicked on its input";
/// At most one line a second about contained panics.
const PANIC_LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// At most this many refused connections are told why at once; more are closed at once.
pub(super) const MAX_REFUSING: u64 = 64;

/// A connection slot, released when dropped: on every way a connection's task ends,
/// a panic included.
pub(super) struct Slot {
    shared: Arc<Shared>,
    counter: fn(&Shared) -> &AtomicU64,
}

impl Slot {
    /// Takes a slot of `counter` (open connections, or connections being refused).
    pub(super) fn take(shared: &Arc<Shared>, counter: fn(&Shared) -> &AtomicU64) -> Self {
        counter(shared).fetch_add(1, Ordering::Relaxed);
        Slot {
            shared: Arc::clone(shared),
            counter,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        (self.counter)(&self.shared).fetch_sub(1, Ordering::Relaxed);
    }
}

impl Shared {
    /// Items waiting in every player's queue now.
    pub(super) fn queued_items(&self) -> u64 {
        let channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        channels
            .values()
            .flat_map(|c| c.players.iter())
            .map(|(_, q)| q.len() as u64)
            .sum()
    }

    pub(super) fn new(cfg: &RtmpConfig, stats: Arc<ServerStats>, verbose: bool) -> Arc<Self> {
        Arc::new(Shared {
            cfg: cfg.clone(),
            fanout: FanOut::new(cfg.fanout_threads as usize),
            channels: Mutex::new(HashMap::new()),
            stats,
            next_id: AtomicU64::new(1),
            refusing: AtomicU64::new(0),
            refusals: Mutex::new(None),
            panic_log: Mutex::new((None, 0)),
            drain: tokio::sync::watch::Sender::new(false),
            verbose,
            log_panics: std::sync::atomic::AtomicBool::new(true),
        })
    }

    /// A connection was refused at `rtmp.max_connections` with `open` connections open: the
    /// first of a burst is logged (always, not only when verbose), the rest counted.
    pub(super) fn refused(&self, open: u64) {
        let mut burst = self.refusals.lock().unwrap_or_else(|e| e.into_inner());
        match &mut *burst {
            Some((_, n)) => *n += 1,
            None => {
                eprintln!(
                    "rtmp server: refusing connections: {open} open, at rtmp.max_connections \
                     ({}); each is told so (NetConnection.Connect.Rejected)",
                    self.cfg.max_connections
                );
                *burst = Some((Instant::now(), 1));
            }
        }
    }

    /// `rml_rtmp` panicked on connection `id`'s input while `doing`: counted, and logged as
    /// one line (always, not only when verbose; at most one a second, with how many were not);
    /// returns the connection's end, [`PANICKED`] (its close is not logged again).
    pub(super) fn panicked(&self, id: u64, doing: &str, c: &super::contain::Contained) -> String {
        self.stats.panics.fetch_add(1, Ordering::Relaxed);
        if !self.log_panics.load(Ordering::Relaxed) {
            return PANICKED.to_string();
        }
        let mut log = self.panic_log.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if log
            .0
            .is_some_and(|at| now.duration_since(at) < PANIC_LOG_EVERY)
        {
            log.1 += 1;
        } else {
            let unlogged = std::mem::take(&mut log.1);
            let more = if unlogged > 0 {
                format!(" ({unlogged} more since the last such line)")
            } else {
                String::new()
            };
            eprintln!(
                "rtmp server: connection {id}: closed: rml_rtmp panicked on {doing}: {c}{more}"
            );
            log.0 = Some(now);
        }
        PANICKED.to_string()
    }

    /// Whether any channel has a publisher now.
    #[cfg(feature = "fuzzing")]
    pub(super) fn published(&self) -> bool {
        let channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        channels.values().any(|c| c.publisher.is_some())
    }

    /// Turns true when the server starts draining.
    pub(super) fn draining(&self) -> tokio::sync::watch::Receiver<bool> {
        self.drain.subscribe()
    }

    /// Starts draining: every channel's players are told the stream ended (after what is
    /// queued for them), and every connection is told to end — a player once it has written
    /// its queue, any other at once. Returns the players told.
    pub(super) fn begin_drain(&self) -> u64 {
        let mut told = 0;
        {
            let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
            for ch in channels.values_mut() {
                told += ch.players.len() as u64;
                ch.unpublish(&self.stats);
            }
        }
        self.drain.send_replace(true);
        told
    }

    /// A connection was accepted: a burst of refusals before it is over, and summed up.
    pub(super) fn accepting(&self) {
        let mut burst = self.refusals.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((since, n)) = burst.take() {
            eprintln!(
                "rtmp server: refused {n} connections at rtmp.max_connections over {:.1} s",
                since.elapsed().as_secs_f64()
            );
        }
    }

    pub(super) fn log(&self, id: u64, msg: impl std::fmt::Display) {
        if self.verbose {
            eprintln!("rtmp server: connection {id}: {msg}");
        }
    }
}
