//! The server's counters ([`ServerStats`]), shared by every connection and fan-out thread.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

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
    /// Each published stream as it arrives, by (app, key), kept after its publisher leaves.
    pub ingest: Mutex<BTreeMap<(String, String), Ingest>>,
}

/// A frame arriving more than this far behind its timestamp's real-time schedule is late: the
/// stream is not keeping real time.
pub const LATE_MS: f64 = 500.0;

/// One published stream's video frames as they arrived: how far behind its timestamps'
/// real-time schedule each came (its arrival since the publish's first frame, less its
/// timestamp since that frame's).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Ingest {
    /// Video frames (sequence headers left out) over every publish of the key.
    pub frames: u64,
    /// Those more than [`LATE_MS`] behind.
    pub late: u64,
    /// The most behind a frame of the publish under way has come, ms.
    pub behind_max_ms: f64,
    /// Publishes of the key so far.
    pub publishes: u64,
    /// The publish's first frame: when it came and its timestamp, ms.
    origin: Option<(Instant, u32)>,
}

impl Ingest {
    /// A new publish of the key: its schedule starts again at its first frame.
    pub fn published(&mut self) {
        self.publishes += 1;
        self.origin = None;
        self.behind_max_ms = 0.0;
    }

    /// A video frame with timestamp `ts` (ms) arrived at `now`.
    pub fn arrived(&mut self, now: Instant, ts: u32) {
        self.frames += 1;
        let (t0, ts0) = *self.origin.get_or_insert((now, ts));
        let behind =
            now.duration_since(t0).as_secs_f64() * 1000.0 - f64::from(ts.wrapping_sub(ts0));
        self.behind_max_ms = self.behind_max_ms.max(behind);
        if behind > LATE_MS {
            self.late += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_frame_more_than_half_a_second_behind_its_schedule_is_late_and_a_new_publish_starts_over() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut i = Ingest::default();
        i.published();
        i.arrived(at(0), 1_000);
        // 1 s after the first frame, a frame stamped 0.4 s after it: 0.6 s behind.
        i.arrived(at(1_000), 1_400);
        // Then on time again (0.1 s behind).
        i.arrived(at(1_100), 2_000);
        assert_eq!((i.frames, i.late), (3, 1));
        assert!((i.behind_max_ms - 600.0).abs() < 1.0, "{}", i.behind_max_ms);
        // A new publish restarts its timestamps: its first frame is its own origin.
        i.published();
        i.arrived(at(5_000), 0);
        i.arrived(at(5_033), 33);
        assert_eq!((i.frames, i.late, i.publishes), (5, 1, 2));
        assert!(i.behind_max_ms < 1.0, "{}", i.behind_max_ms);
    }
}
