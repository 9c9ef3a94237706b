//! Reading an incoming feed for the source stage (`source.kind = rtmp`): a blocking RTMP
//! player on a thread of its own that hands each video and audio tag over as a
//! [`FeedItem`]. The server keeps a player across publishes, so a feed that stops and comes
//! back simply sends new headers; a lost connection is made again every half second until the
//! stream ends.

use super::client::{RtmpUrl, handshake};
use super::flv;
use crate::source::{FeedInput, FeedItem, SourceError};
use rml_rtmp::sessions::{ClientSession, ClientSessionConfig, ClientSessionEvent};
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a read waits before looking whether the feed is to stop.
const POLL: Duration = Duration::from_millis(100);
const RETRY: Duration = Duration::from_millis(500);

/// A feed being read: the items so far, and the thread reading them.
pub struct Feed {
    url: RtmpUrl,
    items: Arc<Mutex<Vec<FeedItem>>>,
    stop: Arc<AtomicBool>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Feed {
    /// Starts playing `url` (and keeps at it, reconnecting, until dropped).
    ///
    /// # Errors
    /// `url` is not an RTMP address (TLS feeds are not read).
    pub fn play(url: &str) -> Result<Feed, SourceError> {
        let fail = |reason: String| SourceError::Feed {
            feed: url.to_string(),
            reason,
        };
        let parsed: RtmpUrl = url.parse().map_err(|e| fail(format!("{e}")))?;
        if parsed.tls {
            return Err(fail("rtmps:// feeds are not read yet: use rtmp://".into()));
        }
        let items = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let reader = std::thread::Builder::new()
            .name("feed".into())
            .spawn({
                let (url, items, stop) = (parsed.clone(), Arc::clone(&items), Arc::clone(&stop));
                move || {
                    while !stop.load(Ordering::Relaxed) {
                        // Whatever ended the connection, try again shortly.
                        let _ = read(&url, &items, &stop);
                        std::thread::sleep(RETRY);
                    }
                }
            })
            .map_err(|e| fail(format!("starting its reader: {e}")))?;
        Ok(Feed {
            url: parsed,
            items,
            stop,
            reader: Some(reader),
        })
    }
}

impl FeedInput for Feed {
    fn take(&mut self) -> Vec<FeedItem> {
        std::mem::take(&mut *self.items.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn describe(&self) -> String {
        self.url.to_string()
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

/// One connection: connect, play, and hand over every tag until it ends or `stop` is set.
fn read(url: &RtmpUrl, items: &Mutex<Vec<FeedItem>>, stop: &AtomicBool) -> std::io::Result<()> {
    let addr = (url.host.as_str(), url.port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other("no address"))?;
    let mut socket = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    socket.set_nodelay(true)?;
    socket.set_read_timeout(Some(Duration::from_secs(5)))?;
    let rest = handshake(&mut socket)?;
    socket.set_read_timeout(Some(POLL))?;
    let mut config = ClientSessionConfig::new();
    config.tc_url = Some(url.app_url());
    let (mut session, initial) = ClientSession::new(config).map_err(std::io::Error::other)?;
    let mut out = Vec::new();
    let mut events = Vec::new();
    super::player::collect(initial, &mut out, &mut events);
    let connect = session
        .request_connection(url.app.clone())
        .map_err(std::io::Error::other)?;
    super::player::collect(vec![connect], &mut out, &mut events);
    let mut input = rest;
    let mut buf = vec![0u8; 64 * 1024];
    while !stop.load(Ordering::Relaxed) {
        if !input.is_empty() {
            let results = super::server::contain::contained(|| session.handle_input(&input))
                .map_err(|p| std::io::Error::other(p.to_string()))?
                .map_err(std::io::Error::other)?;
            input.clear();
            super::player::collect(results, &mut out, &mut events);
        }
        for e in events.drain(..) {
            match e {
                ClientSessionEvent::ConnectionRequestAccepted => {
                    let r = session
                        .request_playback(url.key.clone())
                        .map_err(std::io::Error::other)?;
                    super::player::collect(vec![r], &mut out, &mut Vec::new());
                }
                ClientSessionEvent::ConnectionRequestRejected { description } => {
                    return Err(std::io::Error::other(description));
                }
                ClientSessionEvent::VideoDataReceived { data, .. } => {
                    if let Some(item) = video_item(&data) {
                        items.lock().unwrap_or_else(|e| e.into_inner()).push(item);
                    }
                }
                ClientSessionEvent::AudioDataReceived { data, timestamp } => {
                    if let Some(item) = audio_item(&data, timestamp.value) {
                        items.lock().unwrap_or_else(|e| e.into_inner()).push(item);
                    }
                }
                _ => {}
            }
        }
        if !out.is_empty() {
            socket.write_all(&out)?;
            out.clear();
        }
        match socket.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => input.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// An FLV VIDEODATA body as a feed item: H.264's sequence header or one access unit.
fn video_item(body: &[u8]) -> Option<FeedItem> {
    let tag = flv::parse_video_tag(body)?;
    let payload = body[5..].to_vec();
    Some(if tag.sequence_header {
        FeedItem::VideoHeader(payload)
    } else {
        FeedItem::Video(payload)
    })
}

/// An FLV AUDIODATA body as a feed item: AAC's sequence header or one raw frame.
fn audio_item(body: &[u8], ms: u32) -> Option<FeedItem> {
    if body.len() < 2 || body[0] >> 4 != 10 {
        return None;
    }
    let payload = body[2..].to_vec();
    Some(if body[1] == 0 {
        FeedItem::AudioHeader(payload)
    } else {
        FeedItem::Audio {
            ms: i64::from(ms),
            data: payload,
        }
    })
}
