//! Network quality of the publisher's connection (the guide's "Implement bandwidth
//! monitoring" and "Add network quality metrics" under RTMP): the kernel's view of the TCP
//! connection (`TCP_INFO`: round-trip time and its variation, retransmissions, delivery rate,
//! bytes written but not yet sent) and the publisher's own (the media written but not yet on
//! the wire, as a duration: the congestion signal OBS's dynamic bitrate uses; the send rate
//! achieved over the last second).
//!
//! The publisher takes a sample after every frame it writes; [`NetQualityView`] lets another
//! thread (the metrics endpoint, a harness) read the latest.

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One sample of the publisher's connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct NetQuality {
    /// Smoothed round-trip time, ms (the kernel's `tcpi_rtt`).
    pub rtt_ms: f64,
    /// The least round-trip time seen on the connection, ms (`tcpi_min_rtt`): the path's own,
    /// without queueing.
    #[serde(default)]
    pub min_rtt_ms: f64,
    /// Its mean deviation, ms (`tcpi_rttvar`).
    pub rtt_var_ms: f64,
    /// Segments retransmitted on this connection so far (`tcpi_total_retrans`).
    pub retransmits: u64,
    /// The kernel's latest delivery-rate estimate, kbit/s (`tcpi_delivery_rate`).
    pub delivery_rate_kbps: f64,
    /// Bytes written by the publisher that the kernel has not sent yet (`tcpi_notsent_bytes`).
    pub unsent_bytes: u64,
    /// Media written but not yet delivered, ms: from the oldest frame the server has not
    /// wholly acknowledged to the newest written (0 when everything has arrived) or, while
    /// the publisher's writes wait for room in the socket, to the media time now (the frames
    /// held up before the socket count too: captured, not yet written). Counting from the
    /// acknowledgements rather than from what the kernel sent also sees the media waiting in
    /// a queue past the socket (a shaper's, a router's).
    pub queued_media_ms: f64,
    /// The most `queued_media_ms` has been on this connection.
    pub queued_media_peak_ms: f64,
    /// Bytes handed to the kernel over the last second, kbit/s.
    pub send_rate_kbps: f64,
    /// Bytes the server acknowledged over the last second, kbit/s (`tcpi_bytes_acked`): what
    /// the link carried.
    #[serde(default)]
    pub acked_rate_kbps: f64,
    /// Bytes written by the publisher that the server has not acknowledged yet.
    #[serde(default)]
    pub unacked_bytes: u64,
    /// What the server acknowledged over the last [`RECENT`], kbit/s: the link's rate while
    /// media is queued (a quicker estimate than `acked_rate_kbps` right after the link
    /// changes).
    #[serde(default)]
    pub recent_acked_kbps: f64,
    /// CPU the sampling itself has used on this connection so far (`TCP_INFO` and the
    /// bookkeeping, on the sending thread's CPU clock), ms: its cost.
    #[serde(default)]
    pub sampling_cpu_ms: f64,
}

/// The window of [`NetQuality::recent_acked_kbps`].
pub const RECENT: Duration = Duration::from_millis(300);

/// The latest sample, readable from any thread.
#[derive(Debug, Clone, Default)]
pub struct NetQualityView(Arc<Mutex<Option<NetQuality>>>);

impl NetQualityView {
    /// The latest sample (None before the first frame).
    pub fn latest(&self) -> Option<NetQuality> {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn set(&self, q: NetQuality) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(q);
    }
}

/// The kernel's `TCP_INFO` for `socket` (None where it cannot be read).
pub fn tcp_info(socket: &TcpStream) -> Option<libc::tcp_info> {
    let mut info = std::mem::MaybeUninit::<libc::tcp_info>::zeroed();
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: the buffer is a zeroed tcp_info of `len` bytes; the kernel writes at most `len`.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            info.as_mut_ptr().cast(),
            &mut len,
        )
    };
    // SAFETY: zeroed, then (partly) filled by the kernel; every field is plain data.
    (rc == 0).then(|| unsafe { info.assume_init() })
}

/// Samples a publisher's connection: call [`Monitor::wrote`] after each frame written.
pub(crate) struct Monitor {
    /// A second handle on the connection's socket, for `TCP_INFO`.
    socket: TcpStream,
    view: NetQualityView,
    /// Bytes written on this connection.
    written: u64,
    /// Frames not yet wholly sent: (bytes written up to their end, their time in ms).
    frames: VecDeque<(u64, u32)>,
    /// (when, bytes written then, bytes acknowledged then) over the last second.
    rate: VecDeque<(Instant, u64, u64)>,
    peak_ms: f64,
    /// The kernel's count of bytes acknowledged when monitoring began (the handshake and
    /// the commands before it, all answered by then).
    acked_base: u64,
    /// CPU spent sampling, ns.
    cpu_ns: u64,
    /// When media time 0 was, as the writes show it: the earliest of (a write's end − its
    /// frame's time), so the least delay from a frame's time to its write.
    origin: Option<Instant>,
    /// The last write waited for room in the socket.
    blocked: bool,
}

impl Monitor {
    /// Monitors `socket` (a clone of the publisher's), publishing samples into `view`.
    pub(crate) fn new(socket: TcpStream, view: NetQualityView) -> Self {
        let acked_base = tcp_info(&socket).map_or(0, |i| i.tcpi_bytes_acked);
        Monitor {
            acked_base,
            cpu_ns: 0,
            socket,
            view,
            written: 0,
            frames: VecDeque::new(),
            rate: VecDeque::new(),
            peak_ms: 0.0,
            origin: None,
            blocked: false,
        }
    }

    /// A frame of `bytes` with time `ms` was written, the write taking `took`: take a sample.
    pub(crate) fn wrote(&mut self, bytes: usize, ms: u32, took: Duration) {
        self.written += bytes as u64;
        self.frames.push_back((self.written, ms));
        if let Some(at) = Instant::now().checked_sub(Duration::from_millis(ms.into())) {
            self.origin = Some(self.origin.map_or(at, |o| o.min(at)));
        }
        self.blocked = took > BLOCKED;
        self.sample();
    }

    /// Takes a sample now (also between frames written: while frames are dropped or the
    /// publisher waits, the connection still drains).
    pub(crate) fn sample(&mut self) {
        let cpu_before = crate::clock::thread_cpu_ns();
        let Some(info) = tcp_info(&self.socket) else {
            return;
        };
        let now = Instant::now();
        self.rate
            .push_back((now, self.written, info.tcpi_bytes_acked));
        while self
            .rate
            .front()
            .is_some_and(|(t, _, _)| now.duration_since(*t) > Duration::from_secs(1))
        {
            self.rate.pop_front();
        }
        let unsent = u64::from(info.tcpi_notsent_bytes);
        let acked = info.tcpi_bytes_acked.saturating_sub(self.acked_base);
        // A write that waited, with bytes still unsent: the socket is full, and the frames
        // captured since wait before it (a CPU-starved thread's slow write leaves none unsent).
        let held_up = self.origin.filter(|_| self.blocked && unsent > 0);
        let now_ms = held_up.map(|o| now.duration_since(o).as_millis() as u32);
        let queued_ms = queued_media_ms(&mut self.frames, acked, now_ms);
        self.peak_ms = self.peak_ms.max(queued_ms);
        let (send_rate_kbps, acked_rate_kbps) = match (self.rate.front(), self.rate.back()) {
            (Some(a), Some(b)) if b.0 > a.0 => {
                let s = b.0.duration_since(a.0).as_secs_f64();
                let kbps = |bytes: u64| bytes as f64 * 8.0 / s / 1000.0;
                (kbps(b.1 - a.1), kbps(b.2.saturating_sub(a.2)))
            }
            _ => (0.0, 0.0),
        };
        let recent_acked_kbps = self
            .rate
            .iter()
            .find(|(t, _, _)| now.duration_since(*t) <= RECENT)
            .filter(|(t, _, _)| now.duration_since(*t) >= RECENT / 2)
            .map_or(acked_rate_kbps, |(t, _, a)| {
                (info.tcpi_bytes_acked.saturating_sub(*a)) as f64 * 8.0
                    / now.duration_since(*t).as_secs_f64()
                    / 1000.0
            });
        self.view.set(NetQuality {
            rtt_ms: f64::from(info.tcpi_rtt) / 1000.0,
            rtt_var_ms: f64::from(info.tcpi_rttvar) / 1000.0,
            min_rtt_ms: f64::from(info.tcpi_min_rtt) / 1000.0,
            retransmits: u64::from(info.tcpi_total_retrans),
            delivery_rate_kbps: info.tcpi_delivery_rate as f64 * 8.0 / 1000.0,
            unsent_bytes: unsent,
            queued_media_ms: queued_ms,
            queued_media_peak_ms: self.peak_ms,
            send_rate_kbps,
            acked_rate_kbps,
            unacked_bytes: self.written.saturating_sub(acked),
            recent_acked_kbps,
            sampling_cpu_ms: self.cpu_ns as f64 / 1e6,
        });
        self.cpu_ns += crate::clock::thread_cpu_ns().saturating_sub(cpu_before);
    }
}

/// A write that takes longer than this waited for room in the socket.
const BLOCKED: Duration = Duration::from_millis(2);

/// Drops the frames wholly delivered (their end at or before `sent` bytes) from `frames` and
/// returns the media still queued: the newest frame's time (or `now_ms`, the media time now,
/// when later: frames wait before the socket) − the oldest undelivered frame's, ms.
fn queued_media_ms(frames: &mut VecDeque<(u64, u32)>, sent: u64, now_ms: Option<u32>) -> f64 {
    while frames.front().is_some_and(|(end, _)| *end <= sent) {
        frames.pop_front();
    }
    match (frames.front(), frames.back()) {
        (Some(first), Some(last)) => {
            let newest = last.1.max(now_ms.unwrap_or(0));
            f64::from(newest.saturating_sub(first.1))
        }
        _ => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::TcpListener;

    #[test]
    fn queued_media_is_the_span_of_the_frames_not_wholly_sent() {
        let mut frames: VecDeque<(u64, u32)> = [(100, 0), (200, 33), (300, 66), (400, 100)].into();
        // 250 bytes out: the frame ending at 300 is partly sent, so 66..100 is queued.
        assert_eq!(queued_media_ms(&mut frames, 250, None), 34.0);
        assert_eq!(frames.len(), 2);
        // The writer is held up and the media time is 400 ms: the frames captured since
        // the last one written wait too.
        assert_eq!(queued_media_ms(&mut frames, 250, Some(400)), 334.0);
        // … but never less than what was written.
        assert_eq!(queued_media_ms(&mut frames, 250, Some(50)), 34.0);
        assert_eq!(queued_media_ms(&mut frames, 400, Some(400)), 0.0);
        assert!(frames.is_empty());
    }

    #[test]
    fn a_peer_that_stops_reading_shows_as_unsent_bytes_and_queued_media() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut out = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (_peer, _) = listener.accept().unwrap();
        out.set_nonblocking(true).unwrap();
        let view = NetQualityView::default();
        let mut m = Monitor::new(out.try_clone().unwrap(), view.clone());
        let frame = vec![7u8; 64 * 1024];
        // The peer never reads: write until the socket's buffers are full (bounded).
        for n in 0..2000u32 {
            match out.write(&frame) {
                Ok(k) => m.wrote(k, n * 33, Duration::ZERO),
                Err(_) => break,
            }
        }
        let q = view.latest().expect("a sample");
        assert!(q.unsent_bytes > 0, "{q:?}");
        assert!(
            q.queued_media_ms > 0.0 && q.queued_media_peak_ms >= q.queued_media_ms,
            "{q:?}"
        );
        assert!(q.rtt_ms >= 0.0 && q.send_rate_kbps > 0.0, "{q:?}");
    }
}
