//! The source stage: where the stream's pictures come from, before the core's layers are drawn
//! over them (`source.kind`): the built-in synthetic scene ([`Scene`]), or a file decoded with
//! libavcodec ([`FileSource`]).

mod audio;
mod file;
mod synthetic;

pub use audio::{AudioConfig, AudioPacket};
pub use file::FileSource;
pub use synthetic::Scene;

use crate::config::{SourceConfig, SourceKind};
use crate::frame::Planes;
use std::path::Path;

/// A source that cannot give pictures, naming it.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The file source: what went wrong with which file.
    #[error("source file {path}: {reason}")]
    File { path: String, reason: String },
}

/// The stream's pictures.
pub enum Source {
    Synthetic(Scene),
    File(Box<FileSource>),
}

/// What a source has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SourceStats {
    /// Pictures decoded (0 for the synthetic scene).
    pub decoded: u64,
    /// Times a file ended and was played again from its start.
    pub loops: u64,
}

impl Source {
    /// Opens the source `cfg` names, giving pictures of `width × height`.
    ///
    /// # Errors
    /// A file source whose file cannot be opened or decoded.
    pub fn open(cfg: &SourceConfig, width: u32, height: u32) -> Result<Source, SourceError> {
        Ok(match cfg.kind {
            SourceKind::Synthetic => Source::Synthetic(Scene::new(width, height)),
            SourceKind::File => Source::File(Box::new(FileSource::open(
                Path::new(&cfg.path),
                width,
                height,
                cfg.threads,
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
            SourceKind::Synthetic => Ok(None),
            SourceKind::File => Ok(Some(file::probe(Path::new(&cfg.path))?.2)),
        }
    }

    /// The source's own frame rate, where it has one (a file's); the stream runs at it.
    pub fn fps(&self) -> Option<u32> {
        match self {
            Source::Synthetic(_) => None,
            Source::File(f) => Some(f.fps()),
        }
    }

    /// Whether the source decodes (its pictures are timed as the `decode` span).
    pub fn decodes(&self) -> bool {
        matches!(self, Source::File(_))
    }

    /// Draws frame `id`'s picture into `p`.
    ///
    /// # Errors
    /// A file source that can no longer decode.
    pub fn draw(&mut self, id: u64, p: Planes<'_>) -> Result<(), SourceError> {
        match self {
            Source::Synthetic(s) => {
                s.draw(id, p);
                Ok(())
            }
            Source::File(f) => f.draw(id, p),
        }
    }

    /// The source's sound as the output announces it (None: the stream is silent).
    pub fn audio(&self) -> Option<&AudioConfig> {
        match self {
            Source::Synthetic(_) => None,
            Source::File(f) => f.audio(),
        }
    }

    /// The audio packets read since the last call, on the stream's timeline.
    pub fn take_audio(&mut self) -> Vec<AudioPacket> {
        match self {
            Source::Synthetic(_) => Vec::new(),
            Source::File(f) => f.take_audio(),
        }
    }

    /// What the source has done so far.
    pub fn stats(&self) -> SourceStats {
        match self {
            Source::Synthetic(_) => SourceStats::default(),
            Source::File(f) => SourceStats {
                decoded: f.decoded_frames,
                loops: f.loops,
            },
        }
    }

    /// Notes for a run's results: where the pictures came from and what the stream made of
    /// them.
    pub fn notes(&self, cfg: &SourceConfig, viewport_fps: u32) -> Vec<String> {
        match self {
            Source::Synthetic(_) => Vec::new(),
            Source::File(f) => {
                let mut notes = vec![format!(
                    "source: {} decoded at its own {} fps{}",
                    cfg.path,
                    f.fps(),
                    if f.scales() {
                        ", scaled to the viewport"
                    } else {
                        ""
                    }
                )];
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
