//! The source stage: where the stream's pictures come from, before the core's layers are drawn
//! over them (`source.kind`): the built-in synthetic scene ([`Scene`]), a file decoded with
//! libavcodec ([`FileSource`]), or an incoming RTMP feed ([`FeedSource`]).

mod audio;
mod feed;
mod file;
mod synthetic;

pub use audio::{AudioConfig, AudioPacket};
pub use feed::{FeedInput, FeedItem, FeedSource};
pub use file::FileSource;
pub use synthetic::Scene;

use crate::config::{HwAccelConfig, SourceConfig, SourceKind};
use crate::frame::Planes;
use std::path::Path;

/// A source that cannot give pictures, naming it.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The file source: what went wrong with which file.
    #[error("source file {path}: {reason}")]
    File { path: String, reason: String },
    /// The feed source: what went wrong with which feed.
    #[error("source feed {feed}: {reason}")]
    Feed { feed: String, reason: String },
}

/// The stream's pictures.
pub enum Source {
    Synthetic(Scene),
    File(Box<FileSource>),
    Feed(Box<FeedSource>),
}

/// What a source has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SourceStats {
    /// Pictures decoded (0 for the synthetic scene).
    pub decoded: u64,
    /// Times a file ended and was played again from its start.
    pub loops: u64,
    /// Frames a feed's stream drew from a picture it had drawn already (the feed slower than
    /// the stream, or stopped).
    pub held: u64,
    /// Times a feed stopped sending pictures (for half a second or more) and the stream held
    /// its last one.
    pub gaps: u64,
}

impl Source {
    /// Opens the source `cfg` names, giving pictures of `width × height` at `fps` frames a
    /// second; a feed (`source.kind = rtmp`) is read through what `connect` makes of its
    /// address (the RTMP stage's reader: this floor does no networking). A file is decoded on
    /// the hardware `hwaccel` names where `hwaccel.decode` asks for it and the device opens
    /// (a note says which, or why not).
    ///
    /// # Errors
    /// A file that cannot be opened or decoded; a feed that cannot be reached or sends
    /// nothing within `source.timeout`.
    pub fn open(
        cfg: &SourceConfig,
        hwaccel: &HwAccelConfig,
        (width, height): (u32, u32),
        fps: u32,
        connect: impl FnOnce(&str) -> Result<Box<dyn FeedInput>, SourceError>,
    ) -> Result<Source, SourceError> {
        Ok(match cfg.kind {
            SourceKind::Synthetic => Source::Synthetic(Scene::new(width, height)),
            SourceKind::File => Source::File(Box::new(FileSource::open(
                Path::new(&cfg.path),
                (width, height),
                cfg.threads,
                hwaccel,
            )?)),
            SourceKind::Rtmp => Source::Feed(Box::new(FeedSource::open(
                connect(&cfg.url)?,
                (width, height),
                fps,
                std::time::Duration::from_secs(cfg.timeout.into()),
            )?)),
        })
    }

    /// The frame rate a source of `cfg` has of its own (a file's), without opening its
    /// decoder; None for the synthetic scene, which runs at the viewport's.
    ///
    /// # Errors
    /// A file that cannot be read or has no video with a frame rate.
    pub fn own_fps(cfg: &SourceConfig) -> Result<Option<u32>, SourceError> {
        match cfg.kind {
            SourceKind::Synthetic | SourceKind::Rtmp => Ok(None),
            SourceKind::File => Ok(Some(file::probe(Path::new(&cfg.path))?.2)),
        }
    }

    /// The source's own frame rate, where it has one (a file's); the stream runs at it.
    pub fn fps(&self) -> Option<u32> {
        match self {
            Source::Synthetic(_) | Source::Feed(_) => None,
            Source::File(f) => Some(f.fps()),
        }
    }

    /// Whether the source decodes (its pictures are timed as the `decode` span).
    pub fn decodes(&self) -> bool {
        matches!(self, Source::File(_) | Source::Feed(_))
    }

    /// Gets frame `id`'s picture ready: a file or a feed decodes (and scales) up to it — the
    /// `decode` stage; the synthetic scene has nothing to do.
    ///
    /// # Errors
    /// A file or feed that can no longer decode.
    pub fn decode(&mut self, id: u64) -> Result<(), SourceError> {
        match self {
            Source::Synthetic(_) => Ok(()),
            Source::File(f) => f.decode(id),
            Source::Feed(f) => f.decode(id),
        }
    }

    /// Draws frame `id`'s picture into `p` (after [`Source::decode`]): the scene, or the
    /// decoded picture copied in.
    pub fn paint(&self, id: u64, mut p: Planes<'_>) {
        match self {
            Source::Synthetic(s) => s.draw(id, p),
            Source::File(f) => f.paint(&mut p),
            Source::Feed(f) => f.paint(&mut p),
        }
    }

    /// The source's sound as the output announces it (None: the stream is silent).
    pub fn audio(&self) -> Option<&AudioConfig> {
        match self {
            Source::Synthetic(_) => None,
            Source::File(f) => f.audio(),
            Source::Feed(f) => f.audio(),
        }
    }

    /// The audio packets read since the last call, on the stream's timeline.
    pub fn take_audio(&mut self) -> Vec<AudioPacket> {
        match self {
            Source::Synthetic(_) => Vec::new(),
            Source::File(f) => f.take_audio(),
            Source::Feed(f) => f.take_audio(),
        }
    }

    /// What the source has done so far.
    pub fn stats(&self) -> SourceStats {
        match self {
            Source::Synthetic(_) => SourceStats::default(),
            Source::File(f) => SourceStats {
                decoded: f.decoded_frames,
                loops: f.loops,
                ..SourceStats::default()
            },
            Source::Feed(f) => SourceStats {
                decoded: f.decoded_frames,
                held: f.held_frames,
                gaps: f.gaps,
                ..SourceStats::default()
            },
        }
    }

    /// Notes for a run's results: where the pictures came from and what the stream made of
    /// them.
    pub fn notes(&self, cfg: &SourceConfig, viewport_fps: u32) -> Vec<String> {
        match self {
            Source::Synthetic(_) => Vec::new(),
            Source::Feed(f) => vec![format!(
                "source: the feed {} decoded as it arrives, its latest picture at each frame{}",
                f.name(),
                f.audio().map_or(String::new(), |a| format!(
                    "; its AAC ({} Hz, {} channels) copied to the output",
                    a.sample_rate, a.channels
                ))
            )],
            Source::File(f) => {
                let name = Path::new(&cfg.path)
                    .file_name()
                    .map_or_else(|| cfg.path.clone(), |n| n.to_string_lossy().into_owned());
                let mut notes = vec![format!(
                    "source: {name} decoded at its own {} fps{}",
                    f.fps(),
                    if f.scales() {
                        ", scaled to the viewport"
                    } else {
                        ""
                    }
                )];
                notes.extend(f.hw_note.clone());
                match (f.audio(), &f.audio_note) {
                    (Some(a), _) => notes.push(format!(
                        "source audio: AAC {} Hz, {} channels, copied to the output",
                        a.sample_rate, a.channels
                    )),
                    (None, Some(why)) => notes.push(why.clone()),
                    (None, None) => {}
                }
                if f.fps() != viewport_fps {
                    notes.push(format!(
                        "core.viewport.fps = {viewport_fps} not used: the stream runs at the \
                         file's {} fps",
                        f.fps()
                    ));
                }
                notes
            }
        }
    }
}
