//! The RTMP publisher: `rml_rtmp`'s `ClientSession` over a blocking socket.
//!
//! It connects, publishes metadata and the AVC sequence header (and the AAC one, where the
//! source has sound), then one FLV video tag per encoded frame, with the source's audio tags
//! between them. A reader thread answers the server (pings, acknowledgements) while the encode
//! loop writes. When the connection drops, frames are counted as dropped while the publisher
//! reconnects with exponential backoff (100 ms doubling to 2 s); after reconnecting it sends the
//! headers again and resumes at the next keyframe, so players never see a broken GOP.
//!
//! `rtmps://` addresses publish over TLS (see [`super::tls`]): the same session over a
//! [`Wire`] that encrypts what the encode loop writes and decrypts what the reader thread reads.

use super::tls::Wire;
pub use super::url::RtmpUrl;
use super::{flv, handshake_driver};
use bytes::Bytes;
use rml_rtmp::handshake::{HandshakeError, PeerType};
use rml_rtmp::rml_amf0::Amf0Value;
use rml_rtmp::sessions::{
    ClientSession, ClientSessionConfig, ClientSessionError, ClientSessionEvent,
    ClientSessionResult, PublishRequestType, StreamMetadata,
};
use rml_rtmp::time::RtmpTimestamp;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Chunk size the publisher sends with: fixed (`rtmp.chunk_size` is the server's, to its
/// players).
pub const CHUNK_SIZE: u32 = 60_000;
/// How long connecting and the publish handshake may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// Why publishing could not start.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("{url}: {what}")]
    Connect { url: String, what: String },
    #[error("{url}: the server refused to publish: {reason}")]
    Refused { url: String, reason: String },
}

/// Publisher counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PublishStats {
    pub frames_sent: u64,
    /// Frames lost while disconnected or waiting for a keyframe after reconnecting.
    pub frames_dropped: u64,
    pub bytes_sent: u64,
    pub reconnects: u64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

struct Conn {
    session: Arc<Mutex<ClientSession>>,
    writer: Arc<Mutex<Wire>>,
    alive: Arc<AtomicBool>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.alive.store(false, Ordering::Relaxed);
        lock(&self.writer).shutdown();
    }
}

/// A publishing connection that survives the server going away.
pub struct Publisher {
    url: RtmpUrl,
    metadata: StreamMetadata,
    sequence_header: Bytes,
    conn: Option<Conn>,
    next_attempt: Instant,
    backoff: Duration,
    waiting_for_key: bool,
    stats: PublishStats,
    tag: Vec<u8>,
    /// The connection's quality, sampled after every frame written.
    monitor: Option<crate::adapt::network::Monitor>,
    quality: crate::adapt::network::NetQualityView,
    /// Parameter sets to send in-band with the next keyframe (after a new sequence header).
    in_band: Option<Vec<u8>>,
    /// The AAC sequence header (FLV AUDIODATA), sent after publishing starts on every
    /// connection; None for a silent stream.
    audio_header: Option<Bytes>,
    audio_tag: Vec<u8>,
}

impl Publisher {
    /// Connects and starts publishing `metadata` and the AVC sequence header `record`.
    ///
    /// # Errors
    /// The first connection fails or the server refuses the publish (later drops reconnect).
    pub fn connect(
        url: RtmpUrl,
        metadata: StreamMetadata,
        record: &[u8],
        audio_header: Option<Vec<u8>>,
    ) -> Result<Self, PublishError> {
        let sequence_header = Bytes::from(flv::sequence_header_tag(record));
        let audio_header = audio_header.map(Bytes::from);
        let conn = open_with_audio(&url, &metadata, &sequence_header, audio_header.as_ref())?;
        let quality = crate::adapt::network::NetQualityView::default();
        let monitor = monitor_of(&conn, &quality);
        Ok(Publisher {
            url,
            metadata,
            sequence_header,
            conn: Some(conn),
            next_attempt: Instant::now(),
            backoff: BACKOFF_MIN,
            waiting_for_key: false,
            stats: PublishStats::default(),
            tag: Vec::new(),
            monitor,
            quality,
            in_band: None,
            audio_header,
            audio_tag: Vec::new(),
        })
    }

    /// Sends one raw AAC frame at `ms`. Sound waits, as video does, for the connection to be
    /// back and a keyframe sent after it; it is not counted among the frames.
    pub fn send_audio(&mut self, ms: u32, data: &[u8]) {
        if self.waiting_for_key || self.audio_header.is_none() {
            return;
        }
        let Some(conn) = &self.conn else {
            return;
        };
        flv::aac_frame_tag(data, &mut self.audio_tag);
        let packet = lock(&conn.session).publish_audio_data(
            Bytes::copy_from_slice(&self.audio_tag),
            RtmpTimestamp::new(ms),
            true,
        );
        match written(conn, packet) {
            Some(n) => self.stats.bytes_sent += n as u64,
            None => self.disconnect(),
        }
    }

    /// Samples the connection now (between frames written).
    pub fn sample_quality(&mut self) {
        if let Some(m) = &mut self.monitor {
            m.sample();
        }
    }

    /// The connection's latest quality sample, readable from any thread.
    pub fn net_quality(&self) -> crate::adapt::network::NetQualityView {
        self.quality.clone()
    }

    /// Counters so far.
    pub fn stats(&self) -> PublishStats {
        self.stats
    }

    /// A new AVC sequence header (`record`, an `AVCDecoderConfigurationRecord`) for pictures of
    /// `size` (width, height), as after the encoder was reopened with other settings: the
    /// metadata (with the new size) and the header are sent now at `dts_ms`, before the keyframe
    /// that follows, and on every reconnect from now on.
    pub fn set_sequence_header(&mut self, record: &[u8], size: (u32, u32), dts_ms: u32) {
        self.sequence_header = Bytes::from(flv::sequence_header_tag(record));
        // Players that parse the stream as it comes (ffmpeg's parser does not take a sequence
        // header midway) find the new parameter sets in-band where the frames using them begin.
        self.in_band = Some(flv::record_parameter_sets(record));
        let resized =
            (self.metadata.video_width, self.metadata.video_height) != (Some(size.0), Some(size.1));
        (self.metadata.video_width, self.metadata.video_height) = (Some(size.0), Some(size.1));
        let Some(conn) = &self.conn else {
            return;
        };
        let packets = {
            let mut session = lock(&conn.session);
            let meta = resized.then(|| session.publish_metadata(&self.metadata));
            let head = session.publish_video_data(
                self.sequence_header.clone(),
                RtmpTimestamp::new(dts_ms),
                false,
            );
            meta.into_iter().chain([head]).collect::<Vec<_>>()
        };
        let sent = packets.into_iter().all(|p| match p {
            Ok(ClientSessionResult::OutboundResponse(p)) => {
                lock(&conn.writer).write_all(&p.bytes).is_ok()
            }
            _ => false,
        });
        if !sent {
            self.disconnect();
        }
    }

    /// Sends one frame (Annex B `data`) with its timestamps in ms. A frame that cannot be sent
    /// is counted as dropped; the publisher reconnects on its own.
    pub fn send_frame(&mut self, key: bool, dts_ms: u32, composition_ms: i32, data: &[u8]) {
        if self
            .conn
            .as_ref()
            .is_some_and(|c| !c.alive.load(Ordering::Relaxed))
        {
            self.disconnect();
        }
        if self.conn.is_none() && Instant::now() >= self.next_attempt {
            match open_with_audio(
                &self.url,
                &self.metadata,
                &self.sequence_header,
                self.audio_header.as_ref(),
            ) {
                Ok(conn) => {
                    self.monitor = monitor_of(&conn, &self.quality);
                    self.conn = Some(conn);
                    self.backoff = BACKOFF_MIN;
                    self.stats.reconnects += 1;
                }
                Err(_) => {
                    self.next_attempt = Instant::now() + self.backoff;
                    self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
        let Some(conn) = &self.conn else {
            self.stats.frames_dropped += 1;
            return;
        };
        if self.waiting_for_key && !key {
            self.stats.frames_dropped += 1;
            return;
        }
        flv::frame_tag(key, composition_ms, data, &mut self.tag);
        if let Some(sets) = self.in_band.take_if(|_| key) {
            // After the frame tag's 5-byte header, before its first NAL unit.
            self.tag.splice(5..5, sets);
        }
        let packet = lock(&conn.session).publish_video_data(
            Bytes::copy_from_slice(&self.tag),
            RtmpTimestamp::new(dts_ms),
            false,
        );
        let writing = Instant::now();
        match written(conn, packet) {
            Some(n) => {
                self.waiting_for_key = false;
                self.stats.frames_sent += 1;
                self.stats.bytes_sent += n as u64;
                if let Some(m) = &mut self.monitor {
                    m.wrote(n, dts_ms, writing.elapsed());
                }
            }
            None => {
                self.stats.frames_dropped += 1;
                self.disconnect();
            }
        }
    }

    /// Ends publishing properly: `deleteStream` for the stream (the server tells its players
    /// the stream ended), then no more writes (a FIN), and the connection closes once the
    /// server has closed its side (at most a second).
    pub fn close(&mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        let stop = lock(&conn.session).stop_publishing();
        let mut writer = lock(&conn.writer);
        for r in stop.into_iter().flatten() {
            if let ClientSessionResult::OutboundResponse(p) = r {
                let _ = writer.write_all(&p.bytes);
            }
        }
        writer.finish();
        drop(writer);
        let deadline = Instant::now() + Duration::from_secs(1);
        while conn.alive.load(Ordering::Relaxed) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn disconnect(&mut self) {
        self.conn = None;
        self.waiting_for_key = true;
        self.next_attempt = Instant::now() + self.backoff;
    }
}

/// Writes what the session made of a message to `conn`; the bytes written, or None where the
/// session gave nothing to send or the write failed.
fn written(conn: &Conn, packet: Result<ClientSessionResult, ClientSessionError>) -> Option<usize> {
    match packet {
        Ok(ClientSessionResult::OutboundResponse(p)) => lock(&conn.writer)
            .write_all(&p.bytes)
            .map(|()| p.bytes.len())
            .ok(),
        _ => None,
    }
}

/// [`open`], then the AAC sequence header (`audio`, if any) on the new connection.
fn open_with_audio(
    url: &RtmpUrl,
    metadata: &StreamMetadata,
    header: &Bytes,
    audio: Option<&Bytes>,
) -> Result<Conn, PublishError> {
    let conn = open(url, metadata, header)?;
    let Some(audio) = audio else {
        return Ok(conn);
    };
    let packet =
        lock(&conn.session).publish_audio_data(audio.clone(), RtmpTimestamp::new(0), false);
    match written(&conn, packet) {
        Some(_) => Ok(conn),
        None => Err(PublishError::Connect {
            url: url.to_string(),
            what: "the connection closed as the audio header was sent".into(),
        }),
    }
}

/// A monitor on a second handle of `conn`'s socket (None if it cannot be cloned).
fn monitor_of(
    conn: &Conn,
    view: &crate::adapt::network::NetQualityView,
) -> Option<crate::adapt::network::Monitor> {
    let socket = lock(&conn.writer).socket().try_clone().ok()?;
    Some(crate::adapt::network::Monitor::new(socket, view.clone()))
}

/// Runs the RTMP handshake on a blocking connection; returns bytes that followed it.
pub fn handshake(socket: &mut (impl Read + Write + Send)) -> std::io::Result<Vec<u8>> {
    // Every step finishes on its first poll: the socket blocks, not the future.
    pollster::block_on(handshake_driver::run(
        &mut Blocking(socket),
        PeerType::Client,
    ))
}

/// A blocking connection as a handshake transport: each call does its I/O at once and hands
/// back a future that is already ready.
struct Blocking<'a, S>(&'a mut S);

impl<S: Read + Write + Send> handshake_driver::Transport for Blocking<'_, S> {
    type Error = std::io::Error;

    fn read(&mut self, buf: &mut [u8]) -> impl Future<Output = std::io::Result<usize>> + Send {
        std::future::ready(self.0.read(buf))
    }

    fn write(&mut self, bytes: &[u8]) -> impl Future<Output = std::io::Result<()>> + Send {
        std::future::ready(self.0.write_all(bytes))
    }

    fn closed(&mut self) -> std::io::Error {
        std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "server closed during handshake",
        )
    }

    fn refused(&mut self, e: HandshakeError) -> std::io::Error {
        std::io::Error::other(format!("{e:?}"))
    }
}

fn open(url: &RtmpUrl, metadata: &StreamMetadata, header: &Bytes) -> Result<Conn, PublishError> {
    let fail = |what: String| PublishError::Connect {
        url: url.to_string(),
        what,
    };
    let addr = (url.host.as_str(), url.port)
        .to_socket_addrs()
        .map_err(|e| fail(format!("cannot resolve: {e}")))?
        .next()
        .ok_or_else(|| fail("no address".into()))?;
    let socket = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)
        .map_err(|e| fail(format!("cannot connect: {e}")))?;
    socket.set_nodelay(true).map_err(|e| fail(e.to_string()))?;
    socket
        .set_read_timeout(Some(CONNECT_TIMEOUT))
        .map_err(|e| fail(e.to_string()))?;
    let mut socket = if url.tls {
        Wire::tls(socket, &url.host).map_err(|e| fail(format!("TLS: {e}")))?
    } else {
        Wire::plain(socket)
    };
    let rest = handshake(&mut socket).map_err(|e| fail(format!("handshake: {e}")))?;
    let mut out = Vec::new();
    let mut negotiation = Negotiation::start(url, metadata, header, &mut out)?;
    let mut input = rest;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let publishing = negotiation.take(&input, &mut out)?;
        input.clear();
        if !out.is_empty() {
            socket.write_all(&out).map_err(|e| fail(e.to_string()))?;
            out.clear();
        }
        if publishing {
            return start_reader(socket, negotiation.session).map_err(|e| fail(e.to_string()));
        }
        let n = socket
            .read(&mut buf)
            .map_err(|e| fail(format!("waiting for the server: {e}")))?;
        if n == 0 {
            return Err(fail(
                "the server closed the connection before publishing started".into(),
            ));
        }
        input.extend_from_slice(&buf[..n]);
    }
}

/// Publishing set up without the socket: `connect`, then `publish` once it is accepted, then
/// the metadata and the sequence header; the server's bytes in, what to send out. [`open`]
/// runs it over a socket; the fuzzing harness ([`super::fuzz_client::client_input`]) over arbitrary
/// bytes.
pub(crate) struct Negotiation<'a> {
    url: &'a RtmpUrl,
    metadata: &'a StreamMetadata,
    header: &'a Bytes,
    pub(crate) session: ClientSession,
    connected: bool,
}

impl<'a> Negotiation<'a> {
    /// A session that asks to connect to `url`'s app (appended to `out`).
    pub(crate) fn start(
        url: &'a RtmpUrl,
        metadata: &'a StreamMetadata,
        header: &'a Bytes,
        out: &mut Vec<u8>,
    ) -> Result<Self, PublishError> {
        let mut config = ClientSessionConfig::new();
        config.chunk_size = CHUNK_SIZE;
        config.tc_url = Some(url.app_url());
        let fail = |e: ClientSessionError| PublishError::Connect {
            url: url.to_string(),
            what: format!("{e:?}"),
        };
        let (mut session, initial) = ClientSession::new(config).map_err(fail)?;
        let first = session.request_connection(url.app.clone()).map_err(fail)?;
        let mut negotiation = Negotiation {
            url,
            metadata,
            header,
            session,
            connected: false,
        };
        let events = gather(initial.into_iter().chain([first]), out);
        negotiation.handle(events, out)?;
        Ok(negotiation)
    }

    /// Takes the server's bytes; appends what to send to `out`. Ok(true) once publishing has
    /// started (the metadata and the sequence header are then in `out`).
    ///
    /// # Errors
    /// The server refused, or its bytes are not RTMP (a panic of `rml_rtmp` on them included).
    pub(crate) fn take(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<bool, PublishError> {
        if input.is_empty() {
            return Ok(false);
        }
        let results = super::server::contain::contained(|| self.session.handle_input(input))
            .map_err(|p| self.fail(format!("the server's bytes made rml_rtmp panic: {p}")))?
            .map_err(|e| self.fail(format!("{e:?}")))?;
        let events = gather(results, out);
        self.handle(events, out)
    }

    fn fail(&self, what: String) -> PublishError {
        PublishError::Connect {
            url: self.url.to_string(),
            what,
        }
    }

    fn refused(&self, reason: String) -> PublishError {
        PublishError::Refused {
            url: self.url.to_string(),
            reason,
        }
    }

    fn handle(
        &mut self,
        events: Vec<ClientSessionEvent>,
        out: &mut Vec<u8>,
    ) -> Result<bool, PublishError> {
        for e in events {
            match e {
                ClientSessionEvent::ConnectionRequestAccepted if !self.connected => {
                    self.connected = true;
                    let r = self
                        .session
                        .request_publishing(self.url.key.clone(), PublishRequestType::Live)
                        .map_err(|e| self.fail(format!("{e:?}")))?;
                    gather([r], out);
                }
                ClientSessionEvent::ConnectionRequestRejected { description } => {
                    return Err(self.refused(description));
                }
                ClientSessionEvent::UnknownTransactionResultReceived {
                    additional_values, ..
                } => {
                    // An `_error` answer to publish (what our server and others send).
                    let reason = additional_values
                        .into_iter()
                        .find_map(|v| match v {
                            Amf0Value::Object(mut o) => {
                                match (o.remove("code"), o.remove("description")) {
                                    (
                                        Some(Amf0Value::Utf8String(c)),
                                        Some(Amf0Value::Utf8String(d)),
                                    ) => Some(format!("{c}: {d}")),
                                    (Some(Amf0Value::Utf8String(c)), _) => Some(c),
                                    _ => None,
                                }
                            }
                            _ => None,
                        })
                        .unwrap_or_else(|| "an error result".to_string());
                    return Err(self.refused(reason));
                }
                ClientSessionEvent::UnhandleableOnStatusCode { code } => {
                    return Err(self.refused(code));
                }
                ClientSessionEvent::PublishRequestAccepted => {
                    let meta = self
                        .session
                        .publish_metadata(self.metadata)
                        .map_err(|e| self.fail(format!("{e:?}")))?;
                    let head = self
                        .session
                        .publish_video_data(self.header.clone(), RtmpTimestamp::new(0), false)
                        .map_err(|e| self.fail(format!("{e:?}")))?;
                    gather([meta, head], out);
                    return Ok(true);
                }
                _ => {}
            }
        }
        Ok(false)
    }
}

/// Appends what `results` asks to send to `out`; returns the events.
fn gather(
    results: impl IntoIterator<Item = ClientSessionResult>,
    out: &mut Vec<u8>,
) -> Vec<ClientSessionEvent> {
    let mut events = Vec::new();
    for r in results {
        match r {
            ClientSessionResult::OutboundResponse(p) => out.extend_from_slice(&p.bytes),
            ClientSessionResult::RaisedEvent(e) => events.push(e),
            ClientSessionResult::UnhandleableMessageReceived(_) => {}
        }
    }
    events
}

/// What the reader thread does with the server's bytes once publishing: answers (pings,
/// acknowledgements) appended to `out`. Err when the connection must end (a panic of
/// `rml_rtmp` on them included).
pub(crate) fn answer(
    session: &Mutex<ClientSession>,
    input: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), ()> {
    let mut session = lock(session);
    let results = super::server::contain::contained(|| session.handle_input(input))
        .map_err(|_| ())?
        .map_err(|_| ())?;
    drop(session);
    gather(results, out);
    Ok(())
}

/// Moves the socket's reading side to a thread that answers the server.
fn start_reader(mut socket: Wire, session: ClientSession) -> std::io::Result<Conn> {
    socket.socket().set_read_timeout(None)?;
    let mut reader = socket.split_reader()?;
    let writer = Arc::new(Mutex::new(socket));
    let session = Arc::new(Mutex::new(session));
    let alive = Arc::new(AtomicBool::new(true));
    let (w, s, a) = (
        Arc::clone(&writer),
        Arc::clone(&session),
        Arc::clone(&alive),
    );
    std::thread::Builder::new()
        .name("rtmp-publisher-reader".into())
        .spawn(move || {
            let mut buf = vec![0u8; 16 * 1024];
            while a.load(Ordering::Relaxed) {
                let n = match reader.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let mut out = Vec::new();
                if answer(&s, &buf[..n], &mut out).is_err() {
                    break;
                }
                if !out.is_empty() && lock(&w).write_all(&out).is_err() {
                    break;
                }
            }
            a.store(false, Ordering::Relaxed);
        })?;
    Ok(Conn {
        session,
        writer,
        alive,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rtmp_urls() {
        let u: RtmpUrl = "rtmp://127.0.0.1:1936/live/abc".parse().unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.app.as_str(), u.key.as_str()),
            ("127.0.0.1", 1936, "live", "abc")
        );
        assert!(!u.tls);
        assert_eq!(u.to_string(), "rtmp://127.0.0.1:1936/live/abc");
        assert_eq!("rtmp://h/live/k".parse::<RtmpUrl>().unwrap().port, 1935);
        let s: RtmpUrl = "rtmps://a.example/live/k".parse().unwrap();
        assert!(s.tls);
        assert_eq!(s.port, 443);
        assert_eq!(s.to_string(), "rtmps://a.example:443/live/k");
        for bad in [
            "http://h/a/b",
            "rtmp://h/live",
            "rtmp://h:x/a/b",
            "rtmp://h/a/b/c",
        ] {
            assert!(bad.parse::<RtmpUrl>().is_err(), "{bad}");
        }
    }
}
