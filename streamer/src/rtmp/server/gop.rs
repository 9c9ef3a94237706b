//! A published stream's channel ([`Channel`]): its publisher, its players, and the GOP cache
//! (metadata, sequence headers, frames since the last keyframe) that late joiners start from.

use super::media::{Media, MediaKind};
use super::player_queue::{Item, PlayerQueue};
use super::stats::ServerStats;
use rml_rtmp::sessions::StreamMetadata;
use std::sync::Arc;

/// One published stream and what late joiners need from it.
#[derive(Default)]
pub(super) struct Channel {
    pub(super) publisher: Option<u64>,
    pub(super) metadata: Option<Arc<StreamMetadata>>,
    pub(super) video_header: Option<Arc<Media>>,
    pub(super) audio_header: Option<Arc<Media>>,
    /// Frames since the last keyframe (when `gop_cache` is on).
    pub(super) gop: Vec<Arc<Media>>,
    pub(super) players: Vec<(u64, Arc<PlayerQueue>)>,
    /// The players' queues as the fan-out threads take them, rebuilt after a player joins or
    /// leaves (a frame then costs one reference count, not one per player).
    pub(super) queues: Option<Arc<[Arc<PlayerQueue>]>>,
}

impl Channel {
    pub(super) fn fan_out_list(&mut self) -> Arc<[Arc<PlayerQueue>]> {
        let players = &self.players;
        Arc::clone(
            self.queues
                .get_or_insert_with(|| players.iter().map(|(_, q)| Arc::clone(q)).collect()),
        )
    }

    /// Keeps what late joiners need of `media`: a sequence header always; with `gop_cache`, a
    /// frame in the GOP cache, which restarts at each keyframe.
    pub(super) fn keep(&mut self, media: &Arc<Media>, gop_cache: bool) {
        if media.header {
            match media.kind {
                MediaKind::Video => self.video_header = Some(Arc::clone(media)),
                MediaKind::Audio => self.audio_header = Some(Arc::clone(media)),
            }
        } else if gop_cache {
            if media.key {
                self.gop.clear();
            }
            if media.key || !self.gop.is_empty() {
                self.gop.push(Arc::clone(media));
            }
        }
    }

    /// Adds player `id`, its queue primed with what late joiners start from: the metadata, the
    /// sequence headers and, with `gop_cache`, the frames since the last keyframe.
    pub(super) fn join(
        &mut self,
        id: u64,
        queue: &Arc<PlayerQueue>,
        gop_cache: bool,
        stats: &ServerStats,
    ) {
        if let Some(m) = &self.metadata {
            queue.push(Item::Metadata(Arc::clone(m)), stats);
        }
        for h in [&self.video_header, &self.audio_header]
            .into_iter()
            .flatten()
        {
            queue.push(Item::Media(Arc::clone(h)), stats);
        }
        if gop_cache {
            for m in &self.gop {
                queue.push(Item::Media(Arc::clone(m)), stats);
            }
        }
        self.players.push((id, Arc::clone(queue)));
        self.queues = None;
    }

    /// The publisher's new metadata: kept for late joiners and queued for every player.
    pub(super) fn set_metadata(&mut self, m: &Arc<StreamMetadata>, stats: &ServerStats) {
        self.metadata = Some(Arc::clone(m));
        for (_, q) in &self.players {
            q.push(Item::Metadata(Arc::clone(m)), stats);
        }
    }

    /// The publisher left: the GOP cache goes, and every player is told.
    pub(super) fn unpublish(&mut self, stats: &ServerStats) {
        self.publisher = None;
        self.gop.clear();
        for (_, q) in &self.players {
            q.push(Item::End, stats);
        }
    }

    /// Player `id` left.
    pub(super) fn remove_player(&mut self, id: u64) {
        self.players.retain(|(p, _)| *p != id);
        self.queues = None;
    }
}
