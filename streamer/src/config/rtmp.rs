//! The guide's `RTMPConfig` (names as in node-media-server): the RTMP server's chunking,
//! pings, limits, fan-out and publish keys, their defaults and their range checks.

use super::Checker;
use serde::{Deserialize, Serialize};

/// The guide's `RTMPConfig` (names as in node-media-server).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RtmpConfig {
    /// Outgoing chunk size in bytes.
    pub chunk_size: u32,
    /// Keep the packets since the last keyframe for late joiners.
    pub gop_cache: bool,
    /// Seconds between pings to each peer.
    pub ping: u32,
    /// Seconds of silence after which a peer is closed.
    pub ping_timeout: u32,
    /// Seconds a new connection has to complete the RTMP handshake (not in the guide).
    pub handshake_timeout: u32,
    /// Most connections the server holds at once; more are closed on accept (not in the guide).
    pub max_connections: u32,
    /// Frames queued per player before the server drops its non-key frames until the next
    /// keyframe (not in the guide).
    pub player_queue: u32,
    /// `TCP_NODELAY` on a player's connection once it has had its first media (setting up
    /// always runs with it on). Off (the default, as nginx-rtmp leaves it), Nagle's algorithm
    /// holds a frame while the player has not yet acknowledged the one before; players
    /// acknowledge at once, except just after they answer a ping (then their kernel delays
    /// acknowledgements to send them with the next answer), so for one second after each ping
    /// the server turns TCP_NODELAY on for that player, which shortens most of those waits. On,
    /// every frame always leaves at once from the server's thread, which costs the server 8–19%
    /// more CPU at 200 players here, with no better relay p99 (not in the guide).
    pub tcp_nodelay: bool,
    /// Threads that hand a large frame to a stream's players (when frame size × players is
    /// 4 MiB or more, e.g. a keyframe to 40 players): the publisher's connection and
    /// `fanout_threads - 1` helpers, each taking a share of the players. 1 hands every frame on
    /// the publisher's connection alone (not in the guide).
    pub fanout_threads: u32,
    /// Stream keys allowed to publish; empty allows any (not in the guide).
    pub publish_keys: Vec<String>,
    /// Seconds `stream-manager serve` gives its players, on SIGINT or SIGTERM, to receive what
    /// is queued for them and the end of the stream before it exits; a second signal exits at
    /// once (not in the guide).
    pub drain_timeout: u32,
}

impl Default for RtmpConfig {
    fn default() -> Self {
        RtmpConfig {
            chunk_size: 60000,
            gop_cache: true,
            ping: 30,
            ping_timeout: 60,
            handshake_timeout: 10,
            max_connections: 1000,
            player_queue: 120,
            fanout_threads: 2,
            tcp_nodelay: false,
            publish_keys: Vec::new(),
            drain_timeout: 5,
        }
    }
}

impl RtmpConfig {
    pub(super) fn check(&self, c: &mut Checker) {
        let t = self;
        c.range("rtmp.chunk_size", t.chunk_size.into(), 128, 16_777_215);
        c.range("rtmp.ping", t.ping.into(), 1, 3600);
        c.range(
            "rtmp.ping_timeout",
            t.ping_timeout.into(),
            t.ping.max(1).into(),
            7200,
        );
        c.range("rtmp.handshake_timeout", t.handshake_timeout.into(), 1, 600);
        c.range("rtmp.max_connections", t.max_connections.into(), 1, 100_000);
        c.range("rtmp.player_queue", t.player_queue.into(), 2, 10_000);
        c.range("rtmp.fanout_threads", t.fanout_threads.into(), 1, 64);
        c.range("rtmp.drain_timeout", t.drain_timeout.into(), 0, 600);
        for key in &t.publish_keys {
            if key.is_empty() || key.contains(['/', '?', ' ']) {
                c.fail(
                    "rtmp.publish_keys",
                    format!("{key:?}"),
                    "non-empty keys without '/', '?' or spaces",
                );
            }
        }
    }
}
