//! RTMP: the embedded server, the publisher, and players, on `rml_rtmp` (sans-IO) with our own
//! sockets, threads and fan-out.

pub mod client;
pub mod flv;
#[doc(hidden)]
#[cfg(feature = "fuzzing")]
pub mod fuzz_client;
mod handshake_driver;
pub mod ingest;
pub mod player;
pub mod server;
pub mod tls;
mod url;

use crate::config::RtmpConfig;
use crate::probe::Probe;
use client::RtmpUrl;
use player::{PlayerLoad, PlayerReport};
use server::{Server, ServerError};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// An embedded server on a free loopback port with N players attached: what the main job
/// streams to when no output is given, so it needs nothing else started.
pub struct LocalRelay {
    pub server: Server,
    /// The first stream's address (`live/stream`, or `live/s0` of several).
    pub url: RtmpUrl,
    /// Every stream's address, in order.
    pub urls: Vec<RtmpUrl>,
    /// Each stream's players.
    players: Vec<PlayerLoad>,
}

/// Why the relay could not start.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error(transparent)]
    Server(#[from] ServerError),
    #[error("players: {0}")]
    Players(std::io::Error),
    #[error("{0} of {1} players could not start playing within 10 s")]
    NotPlaying(usize, usize),
}

impl LocalRelay {
    /// Starts the server on 127.0.0.1 (an ephemeral port) and `players` players of
    /// `live/stream`, and waits until they all play.
    ///
    /// # Errors
    /// The server or the players could not start.
    pub fn start<P: Probe + Send + Sync + 'static>(
        cfg: &RtmpConfig,
        players: usize,
        fps: u32,
        probe: Arc<P>,
    ) -> Result<Self, RelayError> {
        Self::start_keys(cfg, &["stream".to_string()], players, fps, probe)
    }

    /// [`LocalRelay::start`] for several streams: `players` players of each of `live/KEY`,
    /// for every key of `keys`.
    ///
    /// # Errors
    /// The server or the players could not start.
    pub fn start_keys<P: Probe + Send + Sync + 'static>(
        cfg: &RtmpConfig,
        keys: &[String],
        players: usize,
        fps: u32,
        probe: Arc<P>,
    ) -> Result<Self, RelayError> {
        // Room for every player asked for, the publishers, and a few more.
        let mut cfg = cfg.clone();
        let need = u32::try_from((players + 1) * keys.len())
            .unwrap_or(u32::MAX)
            .saturating_add(16);
        cfg.max_connections = cfg.max_connections.max(need);
        let server = Server::start(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), &cfg, 1, false)?;
        let urls: Vec<RtmpUrl> = keys
            .iter()
            .map(|key| RtmpUrl {
                tls: false,
                host: "127.0.0.1".into(),
                port: server.local_addr().port(),
                app: "live".into(),
                key: key.clone(),
            })
            .collect();
        let mut loads = Vec::new();
        for url in &urls {
            let load = PlayerLoad::start(url, players, fps, Arc::clone(&probe))
                .map_err(RelayError::Players)?;
            if !load.wait_playing(Duration::from_secs(10)) {
                let playing = load.reports().iter().filter(|r| r.playing).count();
                return Err(RelayError::NotPlaying(players - playing, players));
            }
            loads.push(load);
        }
        Ok(LocalRelay {
            server,
            url: urls[0].clone(),
            urls,
            players: loads,
        })
    }

    /// The players' counters now, every stream's.
    pub fn reports(&self) -> Vec<PlayerReport> {
        self.players.iter().flat_map(PlayerLoad::reports).collect()
    }

    /// The players' counters now, of stream `i` (in the order of the keys).
    pub fn reports_of(&self, i: usize) -> Vec<PlayerReport> {
        self.players
            .get(i)
            .map(PlayerLoad::reports)
            .unwrap_or_default()
    }

    /// Waits, at most `limit`, for the players to read what the server sent them: until each
    /// has `frames` frames, or none has had a new frame for half a second (the rest were
    /// dropped for a slow player, or lost with a connection). With many players on few cores
    /// the players' own parsing trails the server by seconds.
    pub fn settle(&self, frames: u64, limit: Duration) {
        let deadline = std::time::Instant::now() + limit;
        let mut last = (0, std::time::Instant::now());
        loop {
            let reports = self.reports();
            let total: u64 = reports.iter().map(|r| r.frames).sum();
            let now = std::time::Instant::now();
            if total != last.0 {
                last = (total, now);
            }
            let done = reports.iter().all(|r| r.frames >= frames);
            if done || now >= deadline || now - last.1 >= Duration::from_millis(500) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the players, then the server; returns the players' final counters and the frames
    /// the server dropped for slow players.
    pub fn stop(mut self) -> (Vec<PlayerReport>, u64) {
        let reports = std::mem::take(&mut self.players)
            .into_iter()
            .flat_map(PlayerLoad::stop)
            .collect();
        // Each player's drops are added to the server's count as its connection closes.
        let stats = self.server.stats();
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while stats.players_open.load(Ordering::Relaxed) > 0 && std::time::Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        let dropped = stats.frames_dropped.load(Ordering::Relaxed);
        self.server.stop();
        (reports, dropped)
    }
}
