//! The stream's CPU hot paths, set up to be timed alone: the criterion benchmarks
//! (`benches/hotpaths.rs`), the gungraun instruction counts (`benches/instructions.rs`) and the
//! gate's wall-time ratios (`gate::measure_ratios`) all use these.

use rml_rtmp::chunk_io::ChunkSerializer;
use rml_rtmp::messages::RtmpMessage;
use rml_rtmp::time::RtmpTimestamp;
use std::time::Duration;
use streamer::config::{CompositionConfig, LayoutConfig, ViewportConfig};
use streamer::core::assets::AssetCache;
use streamer::core::generated_assets;
use streamer::core::layout::Layout;
use streamer::core::viewport::Viewport;
use streamer::frame::RawPicture;
use streamer::probe::NoProbe;
use streamer::render::cpu::Compositor;
use streamer::source::Scene;

/// The CPU compositor on a `width × height` frame with `layers` of the generated badges,
/// sprites built and the background drawn: [`Compose::frame`] is the per-frame cost alone.
pub struct Compose {
    compositor: Compositor,
    layout: Layout,
    assets: AssetCache,
    background: RawPicture,
    frame: RawPicture,
    size: (u32, u32),
}

impl Compose {
    pub fn new(width: u32, height: u32, layers: u32) -> Self {
        let viewport = Viewport::new(&ViewportConfig {
            width,
            height,
            ..ViewportConfig::default()
        });
        let sources = generated_assets();
        let mut layout = Layout::new(
            &LayoutConfig {
                layers,
                ..LayoutConfig::default()
            },
            &viewport,
            sources.len(),
        );
        layout.update(1500, 0, &viewport, &NoProbe);
        let mut background = RawPicture::new(width, height);
        Scene::new(width, height).draw(3, background.planes());
        let compositor = Compositor::new(&CompositionConfig {
            thread_pool: 1,
            ..CompositionConfig::default()
        })
        .expect("compositor");
        let mut c = Compose {
            compositor,
            layout,
            assets: AssetCache::new(sources, 1 << 30, Duration::from_secs(3600)),
            frame: RawPicture::new(width, height),
            background,
            size: (width, height),
        };
        c.frame();
        c
    }

    /// Blends the layers over a fresh copy of the background.
    pub fn frame(&mut self) {
        self.frame.data.copy_from_slice(&self.background.data);
        self.compositor
            .compose(
                &mut self.frame.planes(),
                self.size,
                &self.layout,
                &mut self.assets,
                0,
                &NoProbe,
            )
            .expect("compose");
    }

    /// Bytes of one frame (what a memcpy of it moves).
    pub fn frame_bytes(&self) -> usize {
        self.frame.data.len()
    }
}

/// An H.264-like access unit of `len` bytes as x264 emits it: Annex B, one start code and a
/// non-IDR slice NAL of pseudo-random bytes (no zero bytes, so no false start codes).
pub fn h264_like_frame(len: usize) -> Vec<u8> {
    let mut v = 0x9E37_79B9u32;
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&[0, 0, 0, 1, 0x41]);
    while out.len() < len {
        v ^= v << 13;
        v ^= v >> 17;
        v ^= v << 5;
        out.push((v as u8).max(1));
    }
    out
}

/// RTMP chunking of video messages at one chunk size, as the server sends them.
pub struct Chunker {
    serializer: ChunkSerializer,
    time: u32,
}

impl Chunker {
    pub fn new(chunk_size: u32) -> Self {
        let mut serializer = ChunkSerializer::new();
        serializer
            .set_max_chunk_size(chunk_size, RtmpTimestamp::new(0))
            .expect("a valid chunk size");
        Chunker {
            serializer,
            time: 0,
        }
    }

    /// The chunks of one FLV video tag body; returns their total size.
    pub fn chunk(&mut self, tag: &[u8]) -> usize {
        self.time += 33;
        let payload = RtmpMessage::VideoData {
            data: bytes::Bytes::copy_from_slice(tag),
        }
        .into_message_payload(RtmpTimestamp::new(self.time), 1)
        .expect("a video message");
        self.serializer
            .serialize(&payload, false, true)
            .expect("serializes")
            .bytes
            .len()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_frame_packs_into_a_full_flv_tag() {
        let frame = super::h264_like_frame(10_000);
        let mut tag = Vec::new();
        streamer::rtmp::flv::frame_tag(false, 0, &frame, &mut tag);
        // 5-byte VIDEODATA header + 4-byte length + the NAL (the frame less its start code).
        assert_eq!(tag.len(), 5 + 4 + 10_000 - 4);
        assert!(super::Chunker::new(128).chunk(&tag) > tag.len());
    }
}
