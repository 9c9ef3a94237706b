//! What the server says to players outside their session: `onStatus` when the publisher left.

use rml_rtmp::chunk_io::{ChunkSerializer, Packet};
use rml_rtmp::messages::RtmpMessage;
use rml_rtmp::rml_amf0::Amf0Value;
use rml_rtmp::time::RtmpTimestamp;
use std::collections::HashMap;

/// `onStatus NetStream.Play.UnpublishNotify`: the publisher left. FFmpeg, like Flash, ends
/// playback on it (rml_rtmp's `finish_playing` sends `Play.Complete`, which FFmpeg ignores).
/// The session's serializer is private, so this goes out with a full (type 0) chunk header
/// from a serializer of its own, at the session's chunk size.
pub(super) fn unpublish_notify(chunk_size: u32, stream_id: u32) -> Packet {
    let mut status = HashMap::new();
    for (k, v) in [
        ("level", "status"),
        ("code", "NetStream.Play.UnpublishNotify"),
        ("description", "the publisher stopped"),
    ] {
        status.insert(k.to_string(), Amf0Value::Utf8String(v.to_string()));
    }
    let message = RtmpMessage::Amf0Command {
        command_name: "onStatus".into(),
        transaction_id: 0.0,
        command_object: Amf0Value::Null,
        additional_arguments: vec![Amf0Value::Object(status)],
    };
    let mut serializer = ChunkSerializer::new();
    let built = serializer
        .set_max_chunk_size(chunk_size, RtmpTimestamp::new(0))
        .ok()
        .and_then(|_| {
            message
                .into_message_payload(RtmpTimestamp::new(0), stream_id)
                .ok()
        })
        .and_then(|payload| serializer.serialize(&payload, true, false).ok());
    built.unwrap_or(Packet {
        bytes: Vec::new(),
        can_be_dropped: true,
    })
}
