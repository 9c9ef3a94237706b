//! The publisher's and the player's input paths without sockets, for fuzzing (`fuzz/`,
//! `cargo xtask fuzz`) and for the regression test that replays the committed corpus: a
//! server's bytes to our publisher go through the client handshake, setting up the publish
//! ([`super::client::Negotiation`]) and the reader thread's answers while frames are sent;
//! a server's bytes to our player go through the handshake and the player's session
//! ([`super::player::Playing`]: connect, play, frames, the end of the stream).

use super::client::{Negotiation, RtmpUrl, answer};
use super::player::{PlayerCounters, Playing};
use crate::probe::NoProbe;
use bytes::Bytes;
use rml_rtmp::handshake::{Handshake, PeerType};
use rml_rtmp::sessions::StreamMetadata;
use rml_rtmp::time::RtmpTimestamp;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// S0, S1 and S2: what a server sends in the handshake.
const HANDSHAKE: usize = 1 + 1536 + 1536;

/// At most this many of a session's first bytes are fed a byte at a time: setting up is
/// request and answer, and each answer is read before the next (as from a socket).
const SETUP: usize = 2048;

/// How far an input got, for the regression test to check that its seeds reach the parts
/// they were recorded for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientReached {
    /// The publisher started publishing.
    pub published: bool,
    /// Frames the publisher sent after that.
    pub frames_sent: u32,
    /// The player's play was accepted.
    pub playing: bool,
    /// Video frames the player received.
    pub frames_received: u64,
    /// The player was told the stream ended.
    pub told_ended: bool,
}

/// Feeds `data` to a publisher and a player: its first 4 bytes (little-endian, modulo the
/// rest's length + 1) say how long the publisher's part is; the rest is split there into what
/// a server sent the publisher and what it sent the player. Each part's first 3073 bytes go
/// through the client handshake, and the session starts after them whatever it said (a
/// recorded server's S2 answers the C1 of that session, which a replay cannot reproduce).
/// Never panics: a panic here is a bug the fuzzer found.
pub fn client_input(data: &[u8]) -> ClientReached {
    let Some((len, rest)) = data.split_first_chunk::<4>() else {
        return ClientReached::default();
    };
    let at = u32::from_le_bytes(*len) as usize % (rest.len() + 1);
    let (to_publisher, to_player) = rest.split_at(at);
    let mut reached = ClientReached::default();
    publisher(to_publisher, &mut reached);
    player(to_player, &mut reached);
    reached
}

/// The handshake's bytes through a client handshake; returns what follows them, or None when
/// there is nothing after them.
fn after_handshake(bytes: &[u8]) -> Option<&[u8]> {
    let mut hs = Handshake::new(PeerType::Client);
    let _ = hs.generate_outbound_p0_and_p1();
    let (shake, rest) = bytes.split_at(bytes.len().min(HANDSHAKE));
    let _ = super::server::contain::contained(|| hs.process_bytes(shake));
    (!rest.is_empty()).then_some(rest)
}

/// Splits `bytes` into reads: a byte at a time for the first [`SETUP`] bytes while `setup`
/// says so, then up to 4 KiB.
fn next_read<'b>(bytes: &mut &'b [u8], setup: bool) -> &'b [u8] {
    let n = bytes.len().min(if setup { 1 } else { 4096 });
    let (piece, rest) = bytes.split_at(n);
    *bytes = rest;
    piece
}

fn publisher(bytes: &[u8], reached: &mut ClientReached) {
    let Some(mut bytes) = after_handshake(bytes) else {
        return;
    };
    let url: RtmpUrl = "rtmp://fuzz:1935/live/key".parse().expect("a valid URL");
    let metadata = StreamMetadata {
        video_width: Some(64),
        video_height: Some(64),
        video_codec_id: Some(7),
        video_frame_rate: Some(30.0),
        ..StreamMetadata::new()
    };
    // An AVC sequence header tag with an empty record.
    let header = Bytes::from_static(&[0x17, 0, 0, 0, 0]);
    let mut out = Vec::new();
    let Ok(mut negotiation) = Negotiation::start(&url, &metadata, &header, &mut out) else {
        return;
    };
    let mut fed = 0;
    loop {
        if bytes.is_empty() {
            return;
        }
        let piece = next_read(&mut bytes, fed < SETUP);
        fed += piece.len();
        out.clear();
        match negotiation.take(piece, &mut out) {
            Ok(true) => break,
            Ok(false) => {}
            Err(_) => return,
        }
    }
    reached.published = true;
    // Publishing: the reader thread answers the server while the encode loop sends frames
    // through the same session.
    let session = Mutex::new(negotiation.session);
    let frame = Bytes::from_static(&[0x27, 1, 0, 0, 0, 0, 0, 0, 1, 0x41]);
    // A few frames, then one for each read of what is left.
    for n in 0u32.. {
        if n >= 3 {
            if bytes.is_empty() {
                return;
            }
            let piece = next_read(&mut bytes, false);
            out.clear();
            if answer(&session, piece, &mut out).is_err() {
                return;
            }
        }
        let sent = super::server::contain::contained(|| {
            session
                .lock()
                .map(|mut s| {
                    s.publish_video_data(frame.clone(), RtmpTimestamp::new(n * 33), false)
                        .is_ok()
                })
                .unwrap_or(false)
        });
        if sent != Ok(true) {
            return;
        }
        reached.frames_sent += 1;
    }
}

fn player(bytes: &[u8], reached: &mut ClientReached) {
    let Some(mut bytes) = after_handshake(bytes) else {
        return;
    };
    let url: RtmpUrl = "rtmp://fuzz:1935/live/key".parse().expect("a valid URL");
    let counters = Arc::new(PlayerCounters::default());
    let now = Instant::now();
    let mut out = Vec::new();
    let Ok(mut playing) = Playing::new(
        &url,
        30,
        Arc::new(NoProbe),
        Arc::clone(&counters),
        now,
        &mut out,
    ) else {
        return;
    };
    let mut fed = 0;
    while !bytes.is_empty() {
        let setup = fed < SETUP && !counters.playing.load(Ordering::Relaxed);
        let piece = next_read(&mut bytes, setup);
        fed += piece.len();
        out.clear();
        if playing.take(piece, now, &mut out).is_err() {
            break;
        }
    }
    let r = counters.report();
    reached.playing = r.playing;
    reached.frames_received = r.frames;
    reached.told_ended = r.told_ended;
}
