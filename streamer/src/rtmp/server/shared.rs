//! What every connection of one server shares ([`Shared`]): its settings, its channels, its
//! fan-out threads and its counters.

use super::fanout::FanOut;
use super::gop::Channel;
use super::stats::ServerStats;
use crate::config::RtmpConfig;
use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

/// The server's state, one per server, held by every connection.
pub(super) struct Shared {
    pub(super) cfg: RtmpConfig,
    pub(super) fanout: FanOut,
    pub(super) channels: Mutex<HashMap<(String, String), Channel>>,
    pub(super) stats: Arc<ServerStats>,
    pub(super) next_id: AtomicU64,
    verbose: bool,
}

impl Shared {
    pub(super) fn new(cfg: &RtmpConfig, stats: Arc<ServerStats>, verbose: bool) -> Arc<Self> {
        Arc::new(Shared {
            cfg: cfg.clone(),
            fanout: FanOut::new(cfg.fanout_threads as usize),
            channels: Mutex::new(HashMap::new()),
            stats,
            next_id: AtomicU64::new(1),
            verbose,
        })
    }

    pub(super) fn log(&self, id: u64, msg: impl std::fmt::Display) {
        if self.verbose {
            eprintln!("rtmp server: connection {id}: {msg}");
        }
    }
}
