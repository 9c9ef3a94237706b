//! The server's whole input path without sockets, for fuzzing (`fuzz/`, `cargo xtask fuzz`)
//! and for the regression test that replays the committed corpus: a publisher's bytes and a
//! player's bytes go through the handshake, chunk reassembly and the session into the
//! server's own handling (connect, publish, play, metadata, media), and whatever reaches the
//! player's queue is serialized for it as its task would.

use super::connection::Connection;
use super::contain::contained;
use super::shared::Shared;
use crate::config::RtmpConfig;
use rml_rtmp::handshake::{Handshake, PeerType};
use rml_rtmp::sessions::{ServerSession, ServerSessionConfig};
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// C0, C1 and C2: what a client sends in the handshake.
const HANDSHAKE: usize = 1 + 1536 + 1536;

/// At most this many of the session's first bytes are fed a byte at a time (see
/// [`Peer::step`]).
const SETUP: usize = 2048;

/// How far an input got, for the regression test to check that its seeds reach the parts
/// they were recorded for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reached {
    /// Connections that got past the handshake's bytes (0, 1 or 2).
    pub handshakes: u32,
    /// A stream was published.
    pub published: bool,
    /// A player played.
    pub played: bool,
    /// Items serialized for the player (metadata, sequence headers, frames, the end).
    pub player_items: usize,
}

/// Feeds `data` to a server: its first 4 bytes (little-endian, modulo the rest's length + 1)
/// say how long the publisher's part is, the rest is split there into a publisher's bytes
/// and a player's bytes, fed in turns of one read each (up to 4 KiB) as two sockets would
/// deliver them. Never panics past the server's own containment: a panic here is a bug the
/// fuzzer found.
pub fn server_input(data: &[u8]) -> Reached {
    let Some((len, rest)) = data.split_first_chunk::<4>() else {
        return Reached::default();
    };
    let at = u32::from_le_bytes(*len) as usize % (rest.len() + 1);
    let (publisher, player) = rest.split_at(at);
    let cfg = RtmpConfig {
        fanout_threads: 1,
        ..RtmpConfig::default()
    };
    let shared = Shared::new(&cfg, Arc::default(), false);
    // Thousands of inputs a second make rml_rtmp panic: counted, not logged.
    shared.log_panics.store(false, Ordering::Relaxed);
    let mut peers = [
        Peer::new(1, &shared, publisher),
        Peer::new(2, &shared, player),
    ];
    let mut reached = Reached::default();
    while peers.iter().any(|p| !p.done) {
        // Every peer goes a byte at a time while any is still setting up, so that a player
        // plays before the publisher's media has all gone by.
        let setup = peers.iter().any(Peer::setting_up);
        for p in &mut peers {
            reached.player_items += p.step(setup);
        }
        let stats = &shared.stats;
        reached.played |= stats.players_open.load(Ordering::Relaxed) > 0;
        reached.published |= shared.published();
    }
    reached.handshakes = peers.iter().filter(|p| p.session.is_some()).count() as u32;
    reached
}

/// One peer's connection and the bytes it has yet to send.
struct Peer<'a> {
    conn: Connection,
    handshake: Handshake,
    session: Option<ServerSession>,
    bytes: &'a [u8],
    /// Bytes fed to the session so far.
    fed: usize,
    done: bool,
}

impl<'a> Peer<'a> {
    fn new(id: u64, shared: &Arc<Shared>, bytes: &'a [u8]) -> Self {
        Peer {
            conn: Connection::new(id, Arc::clone(shared)),
            handshake: Handshake::new(PeerType::Server),
            session: None,
            bytes,
            fed: 0,
            done: bytes.is_empty(),
        }
    }

    /// Whether this peer is still setting up: a client waits for the answer to `connect`
    /// before it sends `createStream` and `publish` or `play`, which the session only takes
    /// once the connection is accepted, so until the connection publishes or plays (or for
    /// its first SETUP bytes) it is fed a byte at a time: each message is answered before the
    /// next is read.
    fn setting_up(&self) -> bool {
        !self.done && self.fed < SETUP && !self.conn.has_role()
    }

    /// Feeds the next read's worth (a byte while `setup`); returns the items then serialized
    /// for a player. The
    /// handshake's bytes (C0, C1, C2: 3073) go through the server's handshake, but the session
    /// starts after them whatever it said: a recorded client's C2 answers the server's random
    /// S1 of that session, which a replay cannot reproduce.
    fn step(&mut self, setup: bool) -> usize {
        if self.done {
            return self.drain();
        }
        let mut out = Vec::new();
        let Some(session) = &mut self.session else {
            if self.bytes.len() < HANDSHAKE {
                let _ = contained(|| self.handshake.process_bytes(self.bytes));
                self.done = true;
                return 0;
            }
            let (hs, rest) = self.bytes.split_at(HANDSHAKE);
            let _ = contained(|| self.handshake.process_bytes(hs));
            self.bytes = rest;
            let mut config = ServerSessionConfig::new();
            config.chunk_size = 4096;
            let Ok(Ok((mut session, initial))) = contained(|| ServerSession::new(config)) else {
                self.done = true;
                return 0;
            };
            self.done =
                self.conn.handle(&mut session, initial, &mut out).is_err() || self.bytes.is_empty();
            self.session = Some(session);
            return self.drain();
        };
        let read = if setup { 1 } else { 4096 };
        let n = self.bytes.len().min(read);
        self.fed += n;
        let (piece, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        let fed = self.conn.feed(session, piece, &mut out);
        self.done = rest.is_empty() || fed.is_err();
        self.drain()
    }

    /// A player's queue, serialized.
    fn drain(&mut self) -> usize {
        match &mut self.session {
            Some(s) => self.conn.drain_queue(s),
            None => 0,
        }
    }
}
