//! Media as the publisher sent it ([`Media`]) and as RTMP chunks built once for every player
//! ([`chunk_message`]), and what counts as a sequence header.

use crate::rtmp::flv;
use bytes::Bytes;
use std::sync::OnceLock;

/// One media message as the publisher sent it.
#[derive(Debug, Clone)]
pub struct Media {
    pub kind: MediaKind,
    pub timestamp: u32,
    pub data: Bytes,
    /// A video keyframe (players can start decoding here).
    pub key: bool,
    /// An AVC or AAC sequence header (kept for late joiners, never dropped). Worked out once
    /// here, not once per player.
    pub(super) header: bool,
    /// The message as RTMP chunks for message stream 1 at the server's chunk size, built once
    /// and shared by every player on stream 1 (what rml_rtmp assigns to the first stream).
    chunked: OnceLock<Bytes>,
}

impl Media {
    /// A media message as the publisher sent it.
    pub fn new(kind: MediaKind, timestamp: u32, data: Bytes, key: bool) -> Self {
        Media {
            header: is_sequence_header(kind, &data),
            kind,
            timestamp,
            data,
            key,
            chunked: OnceLock::new(),
        }
    }

    /// A video frame (not a sequence header): what the drop policy may pass over.
    pub(super) fn is_frame(&self) -> bool {
        self.kind == MediaKind::Video && !self.header
    }

    /// This message as chunks for `stream_id` at `chunk_size`, shared when `stream_id` is 1.
    pub(super) fn chunks(&self, stream_id: u32, chunk_size: u32) -> Bytes {
        self.with_chunks(stream_id, chunk_size, Bytes::clone)
    }

    /// Calls `f` with this message's chunks, without touching the shared buffer's reference
    /// count when `stream_id` is 1 (several fan-out threads read it at once).
    pub(super) fn with_chunks<R>(
        &self,
        stream_id: u32,
        chunk_size: u32,
        f: impl FnOnce(&Bytes) -> R,
    ) -> R {
        let build = || {
            Bytes::from(chunk_message(
                self.kind,
                stream_id,
                self.timestamp,
                &self.data,
                chunk_size,
            ))
        };
        if stream_id == 1 {
            f(self.chunked.get_or_init(build))
        } else {
            f(&build())
        }
    }
}

/// Chunk streams for media. `rml_rtmp`'s serializer uses 2–6; media goes on its own so its
/// full (type 0) headers never disturb the session's header compression.
const VIDEO_CSID: u8 = 7;
const AUDIO_CSID: u8 = 8;

/// One audio or video message as RTMP chunks: a type 0 header, then type 3 continuations.
fn chunk_message(
    kind: MediaKind,
    stream_id: u32,
    timestamp: u32,
    payload: &[u8],
    chunk_size: u32,
) -> Vec<u8> {
    let (csid, type_id) = match kind {
        MediaKind::Video => (VIDEO_CSID, 9u8),
        MediaKind::Audio => (AUDIO_CSID, 8u8),
    };
    let extended = timestamp >= 0xff_ffff;
    let size = chunk_size.max(1) as usize;
    let chunks = payload.len().div_ceil(size).max(1);
    let mut out = Vec::with_capacity(payload.len() + 16 + chunks * 5);
    out.push(csid);
    let ts = if extended { 0xff_ffff } else { timestamp };
    out.extend_from_slice(&ts.to_be_bytes()[1..]);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    out.push(type_id);
    out.extend_from_slice(&stream_id.to_le_bytes());
    if extended {
        out.extend_from_slice(&timestamp.to_be_bytes());
    }
    for (i, part) in payload.chunks(size).enumerate() {
        if i > 0 {
            out.push(0xc0 | csid);
            if extended {
                out.extend_from_slice(&timestamp.to_be_bytes());
            }
        }
        out.extend_from_slice(part);
    }
    out
}

/// What a [`Media`] carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    Video,
    Audio,
}

fn is_sequence_header(kind: MediaKind, data: &[u8]) -> bool {
    match kind {
        MediaKind::Video => flv::parse_video_tag(data).is_some_and(|t| t.sequence_header),
        MediaKind::Audio => data.len() > 1 && data[0] >> 4 == 10 && data[1] == 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_chunks_parse_as_the_messages_they_carry() {
        use rml_rtmp::chunk_io::ChunkDeserializer;
        for (chunk_size, timestamp, len) in
            [(128, 33, 1000), (4096, 0x1ff_ffff, 10_000), (60000, 7, 5)]
        {
            let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let bytes = chunk_message(MediaKind::Video, 1, timestamp, &payload, chunk_size);
            let mut d = ChunkDeserializer::new();
            d.set_max_chunk_size(chunk_size as usize).unwrap();
            let m = d
                .get_next_message(&bytes)
                .unwrap()
                .expect("one whole message");
            assert_eq!(
                (m.type_id, m.message_stream_id, m.timestamp.value),
                (9, 1, timestamp)
            );
            assert_eq!(&m.data[..], &payload[..]);
        }
    }
}
