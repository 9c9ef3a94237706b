//! What a connection's session asks of the server ([`Connection::feed`] → [`Connection::handle`]):
//! answering the peer, publishing into a channel (its metadata and media handed to the
//! channel's players), or playing one.

use super::{Connection, Ended, Role};
use crate::rtmp::flv;
use crate::rtmp::server::contain::{contained, sample};
use crate::rtmp::server::media::{Media, MediaKind};
use crate::rtmp::server::player_queue::{PlayerQueue, lock};
use bytes::Bytes;
use rml_rtmp::sessions::{ServerSession, ServerSessionEvent, ServerSessionResult, StreamMetadata};
use rml_rtmp::time::RtmpTimestamp;
use std::sync::Arc;
use std::sync::atomic::Ordering;

impl Connection {
    pub(in crate::rtmp::server) fn feed(
        &mut self,
        session: &mut ServerSession,
        bytes: &[u8],
        out: &mut Vec<Bytes>,
    ) -> Result<(), Ended> {
        match contained(|| session.handle_input(bytes)) {
            Ok(Ok(results)) => self.handle(session, results, out),
            Ok(Err(e)) => {
                self.shared
                    .stats
                    .protocol_errors
                    .fetch_add(1, Ordering::Relaxed);
                Err(format!("malformed input: {e:?}"))
            }
            Err(c) => {
                Err(self
                    .shared
                    .panicked(self.id, &format!("what it sent ({})", sample(bytes)), &c))
            }
        }
    }

    pub(in crate::rtmp::server) fn handle(
        &mut self,
        session: &mut ServerSession,
        results: Vec<ServerSessionResult>,
        out: &mut Vec<Bytes>,
    ) -> Result<(), Ended> {
        for r in results {
            match r {
                ServerSessionResult::OutboundResponse(p) => out.push(Bytes::from(p.bytes)),
                ServerSessionResult::RaisedEvent(e) => {
                    let more = self.event(session, e)?;
                    self.handle(session, more, out)?;
                }
                ServerSessionResult::UnhandleableMessageReceived(_) => {}
            }
        }
        Ok(())
    }

    fn answer(
        &self,
        session: &mut ServerSession,
        f: impl FnOnce(
            &mut ServerSession,
        )
            -> Result<Vec<ServerSessionResult>, rml_rtmp::sessions::ServerSessionError>,
    ) -> Result<Vec<ServerSessionResult>, Ended> {
        match contained(|| f(session)) {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(format!("request failed: {e:?}")),
            Err(c) => Err(self.shared.panicked(self.id, "answering its request", &c)),
        }
    }

    fn event(
        &mut self,
        session: &mut ServerSession,
        e: ServerSessionEvent,
    ) -> Result<Vec<ServerSessionResult>, Ended> {
        match e {
            ServerSessionEvent::ConnectionRequested { request_id, .. } => {
                match self.refusal.take() {
                    Some(why) => {
                        let answer = self.answer(session, |s| {
                            s.reject_request(request_id, "NetConnection.Connect.Rejected", &why)
                        });
                        self.ending = Some(format!("refused: {why}"));
                        answer
                    }
                    None => self.answer(session, |s| s.accept_request(request_id)),
                }
            }
            ServerSessionEvent::PublishStreamRequested {
                request_id,
                app_name,
                stream_key,
                ..
            } => self.publish_requested(session, request_id, app_name, stream_key),
            ServerSessionEvent::PlayStreamRequested {
                request_id,
                app_name,
                stream_key,
                stream_id,
                ..
            } => self.play_requested(session, request_id, (app_name, stream_key), stream_id),
            ServerSessionEvent::StreamMetadataChanged { metadata, .. } => {
                self.metadata_changed(metadata);
                Ok(Vec::new())
            }
            ServerSessionEvent::VideoDataReceived {
                data, timestamp, ..
            } => {
                self.publish(MediaKind::Video, data, timestamp);
                Ok(Vec::new())
            }
            ServerSessionEvent::AudioDataReceived {
                data, timestamp, ..
            } => {
                self.publish(MediaKind::Audio, data, timestamp);
                Ok(Vec::new())
            }
            ServerSessionEvent::PublishStreamFinished { .. } => {
                self.leave();
                Ok(Vec::new())
            }
            ServerSessionEvent::PlayStreamFinished { .. } => {
                self.leave();
                Ok(Vec::new())
            }
            _ => Ok(Vec::new()),
        }
    }

    /// A peer asks to publish `app_name/stream_key`: refused when the key is not allowed or
    /// the stream already has a publisher, else this connection becomes its publisher.
    fn publish_requested(
        &mut self,
        session: &mut ServerSession,
        request_id: u32,
        app_name: String,
        stream_key: String,
    ) -> Result<Vec<ServerSessionResult>, Ended> {
        let keys = &self.shared.cfg.publish_keys;
        if !keys.is_empty() && !keys.contains(&stream_key) {
            self.shared.log(
                self.id,
                format_args!("refused publish of {app_name}/{stream_key}: key not allowed"),
            );
            return self.answer(session, |s| {
                s.reject_request(
                    request_id,
                    "NetStream.Publish.BadName",
                    "stream key not allowed",
                )
            });
        }
        let key = (app_name, stream_key);
        {
            let mut channels = lock(&self.shared.channels);
            let ch = channels.entry(key.clone()).or_default();
            if ch.publisher.is_some() {
                drop(channels);
                return self.answer(session, |s| {
                    s.reject_request(
                        request_id,
                        "NetStream.Publish.BadName",
                        "stream is already being published",
                    )
                });
            }
            ch.publisher = Some(self.id);
        }
        lock(&self.shared.stats.ingest)
            .entry(key.clone())
            .or_default()
            .published();
        self.role = Role::Publisher { key };
        self.answer(session, |s| s.accept_request(request_id))
    }

    /// A peer asks to play `key`: accepted, and this connection becomes a player of the
    /// channel, its queue primed with what the channel keeps for late joiners.
    fn play_requested(
        &mut self,
        session: &mut ServerSession,
        request_id: u32,
        key: (String, String),
        stream_id: u32,
    ) -> Result<Vec<ServerSessionResult>, Ended> {
        let results = self.answer(session, |s| s.accept_request(request_id))?;
        let gop_cache = self.shared.cfg.gop_cache;
        let queue = Arc::new(PlayerQueue::new(
            self.shared.cfg.player_queue as usize,
            true,
        ));
        lock(&self.shared.channels)
            .entry(key.clone())
            .or_default()
            .join(self.id, &queue, gop_cache, &self.shared.stats);
        self.shared
            .stats
            .players_open
            .fetch_add(1, Ordering::Relaxed);
        self.role = Role::Player {
            key,
            stream_id,
            queue,
        };
        Ok(results)
    }

    /// A publisher's new metadata: kept for late joiners and queued for every player.
    fn metadata_changed(&self, metadata: StreamMetadata) {
        if let Role::Publisher { key } = &self.role {
            let m = Arc::new(metadata);
            let mut channels = lock(&self.shared.channels);
            if let Some(ch) = channels.get_mut(key) {
                ch.set_metadata(&m, &self.shared.stats);
            }
        }
    }

    fn publish(&self, kind: MediaKind, data: Bytes, timestamp: RtmpTimestamp) {
        let Role::Publisher { key } = &self.role else {
            return;
        };
        let tag = (kind == MediaKind::Video)
            .then(|| flv::parse_video_tag(&data))
            .flatten();
        if tag.is_some_and(|t| !t.sequence_header) {
            let now = std::time::Instant::now();
            let mut ingest = lock(&self.shared.stats.ingest);
            match ingest.get_mut(key) {
                Some(i) => i.arrived(now, timestamp.value),
                None => ingest
                    .entry(key.clone())
                    .or_default()
                    .arrived(now, timestamp.value),
            }
        }
        let media = Arc::new(Media::new(
            kind,
            timestamp.value,
            data,
            tag.is_some_and(|t| t.key),
        ));
        let mut channels = lock(&self.shared.channels);
        let Some(ch) = channels.get_mut(key) else {
            return;
        };
        ch.keep(&media, self.shared.cfg.gop_cache);
        let players = ch.fan_out_list();
        drop(channels);
        self.shared
            .fanout
            .hand(&players, &media, &self.shared.stats);
    }
}
