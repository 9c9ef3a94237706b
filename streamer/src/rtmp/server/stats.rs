//! The server's counters ([`ServerStats`]), shared by every connection and fan-out thread.

use std::sync::atomic::AtomicU64;

/// Counters of the whole server.
#[derive(Debug, Default)]
pub struct ServerStats {
    pub connections_accepted: AtomicU64,
    pub connections_refused: AtomicU64,
    pub connections_open: AtomicU64,
    pub players_open: AtomicU64,
    /// Player frames dropped by the queue policy, all players, including closed ones.
    pub frames_dropped: AtomicU64,
    /// Connections closed for silence past `ping_timeout` or a write that stalled as long.
    pub timed_out: AtomicU64,
    /// Connections closed because `rml_rtmp` panicked on their input.
    pub panics: AtomicU64,
    /// Connections closed for malformed input.
    pub protocol_errors: AtomicU64,
    pub bytes_out: AtomicU64,
    /// Frames a publisher wrote straight to a player's socket (no queue, no task wake-up).
    pub direct_writes: AtomicU64,
    /// Frames that went through a player's queue.
    pub queued_writes: AtomicU64,
    /// Items (frames, headers) waiting in the players' queues now, all players: summed once a
    /// second while the server runs.
    pub queued: AtomicU64,
}
