//! One connection ([`Connection`]): the handshake, the `rml_rtmp` session, and what the peer
//! does with it: publish into a channel, or play one from its queue; pings, timeouts and every
//! write's deadline.

use super::contain::contained;
use super::handshake;
use super::notify::unpublish_notify;
use super::player_queue::{Item, PlayerQueue, lock};
use super::shared::Shared;
use bytes::Bytes;
use rml_rtmp::sessions::{ServerSession, ServerSessionConfig};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::time::{Instant, timeout_at};

mod events;

/// A fraction in [0, 1) that scatters evenly over consecutive ids (Fibonacci hashing).
fn spread(id: u64) -> f64 {
    (id.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11) as f64 / (1u64 << 53) as f64
}

/// What a connection does.
enum Role {
    None,
    Publisher {
        key: (String, String),
    },
    Player {
        key: (String, String),
        stream_id: u32,
        queue: Arc<PlayerQueue>,
    },
}

/// One peer's connection: its session's state and what it does (its [`Role`]).
pub(super) struct Connection {
    id: u64,
    shared: Arc<Shared>,
    role: Role,
    last_input: Instant,
    /// A player that has had its first media (its socket now follows `rtmp.tcp_nodelay`).
    settled: bool,
    /// Over a limit: the peer's connect request is answered `NetConnection.Connect.Rejected`
    /// with this description, and the connection ends.
    refusal: Option<String>,
    /// Set when the connection is to end once what is due is written.
    ending: Option<Ended>,
}

/// How long a settled player's socket sends every frame at once after a ping, when
/// `rtmp.tcp_nodelay` is off. The player's answer makes its kernel delay acknowledgements (to
/// send them with its next answer) until a delayed-ACK timer fires; while frames arrive faster
/// than that timeout it acknowledges on the next arrival instead, so the mode can outlast this
/// window and the first frame after it can still wait for the timer. Measured here (100
/// players, ping 5 s, in-process suite, 3 runs): relay p99 8.2 ms without this, 3.4–4.8 ms with
/// it, 2.3–2.9 ms at ping 30 s; a 4 s window gave 2.9 ms but is TCP_NODELAY nearly for good,
/// which costs 12–19% more server CPU at 200 players and no better p99 between pings.
const NODELAY_AFTER_PING: Duration = Duration::from_secs(1);

/// Why a connection ended.
type Ended = String;

/// The ping schedule and a player's Nagle window, kept by a connection's loop.
struct Clock {
    ping: Duration,
    next_ping: Instant,
    /// When a player's socket goes back to Nagle's algorithm after a ping (see
    /// [`NODELAY_AFTER_PING`]).
    nagle_back: Option<Instant>,
}

impl Clock {
    fn new(ping: Duration, id: u64) -> Self {
        Clock {
            ping,
            // The first ping comes between half a period and a period after connecting, spread
            // by the connection's id (never later than `ping`, so a quiet peer still answers
            // before `ping_timeout`): players that connect together (a load test, a restart)
            // would otherwise all be pinged, and answer, in the same instant every `ping`
            // seconds.
            next_ping: Instant::now() + ping.mul_f64(0.5 + 0.5 * spread(id)),
            nagle_back: None,
        }
    }
}

/// Ends a connection gently after its last answer: no more writes (a FIN), then what the peer
/// still sends is read and discarded for up to a second. Closing with its bytes unread would
/// reset the connection, and the peer could lose the answer before reading it.
async fn linger(rd: &mut OwnedReadHalf, wr: &OwnedWriteHalf) {
    let _ =
        socket2::SockRef::from(AsRef::<TcpStream>::as_ref(wr)).shutdown(std::net::Shutdown::Write);
    let mut buf = [0u8; 1024];
    let drain = async {
        while let Ok(n) = rd.read(&mut buf).await
            && n > 0
        {}
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.leave();
    }
}

impl Connection {
    pub(super) fn new(id: u64, shared: Arc<Shared>) -> Self {
        Connection {
            id,
            shared,
            role: Role::None,
            last_input: Instant::now(),
            settled: false,
            refusal: None,
            ending: None,
        }
    }

    /// A connection over a limit: it answers the peer's connect request with
    /// `NetConnection.Connect.Rejected` and `why`, then ends.
    pub(super) fn refusing(id: u64, shared: Arc<Shared>, why: String) -> Self {
        let mut conn = Connection::new(id, shared);
        conn.refusal = Some(why);
        conn
    }

    fn set_nodelay(&self, wr: &OwnedWriteHalf, on: bool) {
        if let Err(e) = AsRef::<TcpStream>::as_ref(wr).set_nodelay(on) {
            self.shared
                .log(self.id, format_args!("TCP_NODELAY {on}: {e}"));
        }
    }

    fn ping_timeout(&self) -> Duration {
        Duration::from_secs(self.shared.cfg.ping_timeout.into())
    }

    /// Writes `out` in order (and empties it); the whole write must finish within
    /// `ping_timeout`, or the peer has stopped reading. Most writes fit the socket buffer at
    /// once, so the deadline's timer is armed only when one has to wait.
    async fn write(&mut self, wr: &OwnedWriteHalf, out: &mut Vec<Bytes>) -> Result<(), Ended> {
        let mut deadline = None;
        for bytes in out.drain(..) {
            let mut rest = &bytes[..];
            while !rest.is_empty() {
                match wr.try_write(rest) {
                    Ok(n) => {
                        self.shared
                            .stats
                            .bytes_out
                            .fetch_add(n as u64, Ordering::Relaxed);
                        rest = &rest[n..];
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        let until =
                            *deadline.get_or_insert_with(|| Instant::now() + self.ping_timeout());
                        match timeout_at(until, wr.writable()).await {
                            Ok(Ok(())) => {}
                            Ok(Err(e)) => return Err(format!("write failed: {e}")),
                            Err(_) => {
                                self.shared.stats.timed_out.fetch_add(1, Ordering::Relaxed);
                                return Err(format!(
                                    "peer stopped reading for {} s (ping_timeout)",
                                    self.shared.cfg.ping_timeout
                                ));
                            }
                        }
                    }
                    Err(e) => return Err(format!("write failed: {e}")),
                }
            }
        }
        Ok(())
    }

    pub(super) async fn serve(&mut self, mut socket: TcpStream) -> Ended {
        let timeout = Duration::from_secs(self.shared.cfg.handshake_timeout.into());
        let rest = match handshake::run(&mut socket, timeout, &self.shared, self.id).await {
            Ok(rest) => rest,
            Err(why) => return why,
        };
        match self.open_session(socket, &rest).await {
            Ok((_, mut rd, wr)) if self.ending.is_some() => {
                linger(&mut rd, &wr).await;
                self.ending.take().unwrap_or_default()
            }
            Ok((session, rd, wr)) => self.run(session, rd, wr).await,
            Err(why) => why,
        }
    }

    /// Starts the session on the handshaken socket, takes the bytes that followed the
    /// handshake, and writes the session's first answers.
    async fn open_session(
        &mut self,
        socket: TcpStream,
        rest: &[u8],
    ) -> Result<(ServerSession, OwnedReadHalf, Arc<OwnedWriteHalf>), Ended> {
        let mut config = ServerSessionConfig::new();
        config.chunk_size = self.shared.cfg.chunk_size;
        let (mut session, initial) = match ServerSession::new(config) {
            Ok(x) => x,
            Err(e) => return Err(format!("session setup failed: {e:?}")),
        };
        let (rd, wr) = socket.into_split();
        let wr = Arc::new(wr);
        let mut out = Vec::new();
        self.handle(&mut session, initial, &mut out)?;
        if !rest.is_empty() {
            self.feed(&mut session, rest, &mut out)?;
        }
        self.write(&wr, &mut out).await?;
        Ok((session, rd, wr))
    }

    /// Serves the connection until it ends: reads the peer, wakes for a player's queue, pings
    /// and watches for silence, and after each of these writes what is due.
    async fn run(
        &mut self,
        mut session: ServerSession,
        mut rd: OwnedReadHalf,
        wr: Arc<OwnedWriteHalf>,
    ) -> Ended {
        let mut clock = Clock::new(Duration::from_secs(self.shared.cfg.ping.into()), self.id);
        // One timer for both the next ping and the silence deadline, re-armed only when it
        // fires (a fresh timer per loop turn would cost a timer-wheel entry per frame).
        let timer =
            tokio::time::sleep_until(clock.next_ping.min(self.last_input + self.ping_timeout()));
        tokio::pin!(timer);
        let mut drain = self.shared.draining();
        let mut draining = *drain.borrow();
        // Players send little; a publisher gets a larger buffer once it publishes.
        let mut buf = vec![0u8; 4 * 1024];
        let mut out = Vec::new();
        let mut items = Vec::new();
        loop {
            if matches!(self.role, Role::Publisher { .. }) && buf.len() < 64 * 1024 {
                buf.resize(64 * 1024, 0);
            }
            let queue = match &self.role {
                Role::Player { queue, .. } => Some(Arc::clone(queue)),
                _ => None,
            };
            let turn = tokio::select! {
                read = rd.read(&mut buf) => self.on_read(read, &mut session, &buf, &mut out),
                () = async {
                    match &queue {
                        Some(q) => q.notify.notified().await,
                        None => std::future::pending().await,
                    }
                } => Ok(()),
                () = &mut timer => self
                    .on_timer(&mut session, &wr, &mut out, &mut clock)
                    .map(|wake| timer.as_mut().reset(wake)),
                _ = drain.changed(), if !draining => {
                    draining = true;
                    Ok(())
                }
            };
            if let Err(why) = turn {
                return why;
            }
            if let Err(why) = self.flush(&mut session, &wr, &mut out, &mut items).await {
                return why;
            }
            if let Some(why) = self.ending.take() {
                linger(&mut rd, &wr).await;
                return why;
            }
            if draining {
                // A player has written what was queued for it, the end of the stream last.
                let why = match self.role {
                    Role::Player { .. } => "stream ended: the server is draining",
                    _ => "the server is draining",
                };
                linger(&mut rd, &wr).await;
                return why.into();
            }
        }
    }

    /// What the peer sent, or why reading ended the connection.
    fn on_read(
        &mut self,
        read: std::io::Result<usize>,
        session: &mut ServerSession,
        buf: &[u8],
        out: &mut Vec<Bytes>,
    ) -> Result<(), Ended> {
        match read {
            Ok(0) => Err("peer closed the connection".into()),
            Ok(n) => {
                self.last_input = Instant::now();
                self.feed(session, &buf[..n], out)
            }
            Err(e) => Err(format!("read failed: {e}")),
        }
    }

    /// The timer fired: ends a silent connection, ends a player's Nagle window, sends a ping
    /// when due. Returns when the timer should fire next.
    fn on_timer(
        &mut self,
        session: &mut ServerSession,
        wr: &OwnedWriteHalf,
        out: &mut Vec<Bytes>,
        clock: &mut Clock,
    ) -> Result<Instant, Ended> {
        let now = Instant::now();
        let silence_deadline = self.last_input + self.ping_timeout();
        if now >= silence_deadline {
            self.shared.stats.timed_out.fetch_add(1, Ordering::Relaxed);
            return Err(format!(
                "nothing received for {} s (ping_timeout)",
                self.shared.cfg.ping_timeout
            ));
        }
        if clock.nagle_back.is_some_and(|at| now >= at) {
            clock.nagle_back = None;
            self.set_nodelay(wr, false);
        }
        if now >= clock.next_ping {
            clock.next_ping = now + clock.ping;
            match contained(|| session.send_ping_request()) {
                Ok(Ok((p, _))) => out.push(Bytes::from(p.bytes)),
                Ok(Err(_)) => return Err("could not build a ping".into()),
                Err(c) => return Err(self.shared.panicked(self.id, "building a ping", &c)),
            }
            if self.settled && !self.shared.cfg.tcp_nodelay {
                // The player's answer to the ping puts its socket in "interactive"
                // mode, where it delays its acknowledgements to send them with its
                // next answer; with Nagle's algorithm a frame would wait for one.
                // Frames leave at once for a while (see NODELAY_AFTER_PING).
                self.set_nodelay(wr, true);
                clock.nagle_back = Some(now + NODELAY_AFTER_PING);
            }
        }
        let mut wake = clock.next_ping.min(silence_deadline);
        if let Some(at) = clock.nagle_back {
            wake = wake.min(at);
        }
        Ok(wake)
    }

    /// Writes what is due after a turn of the loop: a player's queue and answers, or the
    /// session's answers.
    async fn flush(
        &mut self,
        session: &mut ServerSession,
        wr: &Arc<OwnedWriteHalf>,
        out: &mut Vec<Bytes>,
        items: &mut Vec<Item>,
    ) -> Result<(), Ended> {
        match &self.role {
            Role::Player {
                queue, stream_id, ..
            } => {
                let (queue, stream_id) = (Arc::clone(queue), *stream_id);
                self.flush_player(session, &queue, stream_id, wr, out, items)
                    .await
            }
            _ => self.write(wr, out).await,
        }
    }

    /// Writes a player's queue and its own output in order: the rest of a partial direct write
    /// first, then what the session answered, then queued media. While this runs the queue is
    /// marked as writing, so the publisher queues instead of writing directly.
    async fn flush_player(
        &mut self,
        session: &mut ServerSession,
        queue: &Arc<PlayerQueue>,
        stream_id: u32,
        wr: &Arc<OwnedWriteHalf>,
        out: &mut Vec<Bytes>,
        items: &mut Vec<Item>,
    ) -> Result<(), Ended> {
        let mut batch = Vec::new();
        loop {
            queue.take_for_writing(items);
            queue.write_directly(wr, stream_id, self.shared.cfg.chunk_size);
            // Only until the player has had its first media.
            let first_media = !self.settled && items.iter().any(|i| matches!(i, Item::Media(_)));
            let raw = items
                .iter()
                .take_while(|i| matches!(i, Item::Raw(_)))
                .count();
            for item in items.drain(..raw) {
                batch.push(self.play_item(session, stream_id, item)?);
            }
            batch.append(out);
            for item in items.drain(..) {
                batch.push(self.play_item(session, stream_id, item)?);
            }
            self.write(wr, &mut batch).await?;
            if first_media {
                // The player has its first media: from here on frames follow rtmp.tcp_nodelay.
                self.settled = true;
                if !self.shared.cfg.tcp_nodelay {
                    self.set_nodelay(wr, false);
                }
            }
            if !queue.done_writing() {
                return Ok(());
            }
        }
    }

    /// One queued item as bytes for this player. Media is chunked once and shared by every
    /// player (see [`Media::chunks`]); metadata goes through the session.
    fn play_item(
        &self,
        session: &mut ServerSession,
        stream_id: u32,
        item: Item,
    ) -> Result<Bytes, Ended> {
        match item {
            Item::Media(m) => Ok(m.chunks(stream_id, self.shared.cfg.chunk_size)),
            Item::Raw(bytes) => Ok(bytes),
            Item::End => Ok(Bytes::from(
                unpublish_notify(self.shared.cfg.chunk_size, stream_id).bytes,
            )),
            Item::Metadata(m) => match contained(|| session.send_metadata(stream_id, &m)) {
                Ok(Ok(p)) => Ok(Bytes::from(p.bytes)),
                Ok(Err(e)) => Err(format!("could not send to player: {e:?}")),
                Err(c) => Err(self.shared.panicked(
                    self.id,
                    "serializing the stream's metadata for this player",
                    &c,
                )),
            },
        }
    }

    /// Whether the connection publishes or plays yet.
    #[cfg(feature = "fuzzing")]
    pub(super) fn has_role(&self) -> bool {
        !matches!(self.role, Role::None)
    }

    /// A player's queue serialized as its task would, without a socket (fuzzing); returns
    /// the items.
    #[cfg(feature = "fuzzing")]
    pub(super) fn drain_queue(&self, session: &mut ServerSession) -> usize {
        let Role::Player {
            queue, stream_id, ..
        } = &self.role
        else {
            return 0;
        };
        let mut items = Vec::new();
        queue.take_for_writing(&mut items);
        let n = items.len();
        for item in items {
            let _ = self.play_item(session, *stream_id, item);
        }
        queue.done_writing();
        n
    }

    /// Leaves whatever role the connection had (also when dropped: a task that panicked
    /// leaves its channel too).
    pub(super) fn leave(&mut self) {
        let role = std::mem::replace(&mut self.role, Role::None);
        let mut channels = lock(&self.shared.channels);
        match role {
            Role::None => {}
            Role::Publisher { key } => {
                // Unless the server already ended the stream (draining).
                if let Some(ch) = channels.get_mut(&key)
                    && ch.publisher == Some(self.id)
                {
                    ch.unpublish(&self.shared.stats);
                }
            }
            Role::Player { key, queue, .. } => {
                if let Some(ch) = channels.get_mut(&key) {
                    ch.remove_player(self.id);
                }
                self.shared
                    .stats
                    .frames_dropped
                    .fetch_add(queue.dropped(), Ordering::Relaxed);
                self.shared
                    .stats
                    .players_open
                    .fetch_sub(1, Ordering::Relaxed);
            }
        }
        if let Some(key) = channels
            .iter()
            .find(|(_, c)| c.publisher.is_none() && c.players.is_empty())
            .map(|(k, _)| k.clone())
        {
            channels.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_pings_spread_over_a_period() {
        let mut tenths = [0; 10];
        for id in 1..=100 {
            let f = spread(id);
            assert!((0.0..1.0).contains(&f));
            tenths[(f * 10.0) as usize] += 1;
        }
        assert!(tenths.iter().all(|&n| (5..=15).contains(&n)), "{tenths:?}");
    }
}
