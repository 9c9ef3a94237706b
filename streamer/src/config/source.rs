//! The source stage's settings (beyond the guide, which starts at the core): where the
//! stream's pictures come from, their defaults and their range checks.

use super::Checker;
use serde::{Deserialize, Serialize};

/// Where the stream's pictures come from (`source`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SourceConfig {
    /// `synthetic`: the built-in moving scene (the default); `file`: any file FFmpeg reads
    /// (`path`), its video decoded, scaled to the viewport where its size differs, played again
    /// from the start when it ends, at the file's own frame rate (which then replaces
    /// `core.viewport.fps`); `rtmp`: an incoming stream (`url`), its latest picture at each of
    /// the stream's frames, held while it stops.
    pub kind: SourceKind,
    /// The file to read (`kind = file`).
    pub path: String,
    /// libavcodec's decoding threads for a file (0: as many as it likes).
    pub threads: u32,
    /// The feed to play (`kind = rtmp`): `rtmp://host[:port]/app/key`, e.g. what a camera or
    /// encoder publishes to `stream-manager serve`'s `ingest` app.
    pub url: String,
    /// Seconds to wait for the feed's first picture before the stream fails (`kind = rtmp`).
    pub timeout: u32,
}

impl Default for SourceConfig {
    fn default() -> Self {
        SourceConfig {
            kind: SourceKind::Synthetic,
            path: String::new(),
            threads: 1,
            url: String::new(),
            timeout: 10,
        }
    }
}

/// `source.kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    Synthetic,
    File,
    /// An incoming RTMP stream (`url`), played as it arrives: restreaming with overlays.
    Rtmp,
}

impl SourceConfig {
    pub(super) fn check(&self, c: &mut Checker) {
        if self.kind == SourceKind::File && self.path.is_empty() {
            c.fail(
                "source.path",
                "(unset)",
                "a file FFmpeg can read when source.kind = file",
            );
        }
        if self.kind == SourceKind::Rtmp
            && !(self.url.starts_with("rtmp://") || self.url.starts_with("rtmps://"))
        {
            c.fail(
                "source.url",
                if self.url.is_empty() {
                    "(unset)"
                } else {
                    &self.url
                },
                "rtmp[s]://host[:port]/app/key when source.kind = rtmp",
            );
        }
        c.range("source.threads", self.threads.into(), 0, 64);
        c.range("source.timeout", self.timeout.into(), 1, 3600);
    }
}
