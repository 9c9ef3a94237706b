//! The stream's CPU hot paths, set up to be timed alone: the criterion benchmarks
//! (`benches/hotpaths.rs`), the gungraun instruction counts (`benches/instructions.rs`) and the
//! gate's wall-time ratios (`gate::measure_ratios`) use these: the compositor ([`Compose`]),
//! RTMP chunking ([`Chunker`]), the server's fan-out of a frame ([`FanOutFrame`]), the encoder
//! wrapper around libx264 ([`EncoderWrapper`]) and the workers' format conversions
//! ([`FormatStage`]).

use ffmpeg_next as ff;
use rml_rtmp::chunk_io::ChunkSerializer;
use rml_rtmp::messages::RtmpMessage;
use rml_rtmp::time::RtmpTimestamp;
use std::sync::Arc;
use std::time::Duration;
use streamer::config::{
    CompositionConfig, FrameFormat, LayoutConfig, PipelineConfig, RtmpConfig, ViewportConfig,
};
use streamer::core::assets::AssetCache;
use streamer::core::generated_assets;
use streamer::core::layout::Layout;
use streamer::core::viewport::Viewport;
use streamer::frame::RawPicture;
use streamer::pipeline::buffers::{BufferPool, Slot};
use streamer::pipeline::format::{Converter, Ingest};
use streamer::probe::NoProbe;
use streamer::render::cpu::Compositor;
use streamer::rtmp::server::{PlayerQueue, ServerStats};
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

/// The RTMP server's side of one video frame to `players` players, without sockets: the
/// frame's FLV tag wrapped as the server's media, handed to every player's queue by the
/// fan-out, and chunked once for all of them ([`streamer::rtmp::server::fan_out_frame`]).
pub struct FanOutFrame {
    players: Arc<[Arc<PlayerQueue>]>,
    stats: Arc<ServerStats>,
    tag: bytes::Bytes,
    chunk_size: u32,
    timestamp: u32,
}

impl FanOutFrame {
    /// `players` playing players (queues of the default `rtmp.player_queue`, past their first
    /// keyframe), a non-key frame of `frame_len` bytes, RTMP chunks of `chunk_size` bytes.
    pub fn new(players: usize, frame_len: usize, chunk_size: u32) -> Self {
        let capacity = RtmpConfig::default().player_queue as usize;
        let mut tag = Vec::new();
        streamer::rtmp::flv::frame_tag(false, 0, &h264_like_frame(frame_len), &mut tag);
        FanOutFrame {
            players: (0..players)
                .map(|_| Arc::new(PlayerQueue::new(capacity, false)))
                .collect(),
            stats: Arc::new(ServerStats::default()),
            tag: tag.into(),
            chunk_size,
            timestamp: 0,
        }
    }

    /// One frame to every player; returns the size of its chunks.
    pub fn frame(&mut self) -> usize {
        self.timestamp += 33;
        streamer::rtmp::server::fan_out_frame(
            &self.players,
            self.tag.clone(),
            self.timestamp,
            self.chunk_size,
            &self.stats,
        )
    }
}

/// The encoder wrapper's per-frame work outside libx264 at `width × height`: the renderer's
/// thread making the pooled frame writable and splitting it into planes to draw into
/// (`make_writable`, `frame_planes`), the encoder's loop stamping it (zero copy) or copying it
/// into a fresh frame (`zeroCopy = false`, `copied_frame`), and reading back an encoded
/// packet's size and key flag as the output's delivery does. x264's own encode is not here
/// (`hotpaths.rs` times it).
pub struct EncoderWrapper {
    frame: ff::frame::Video,
    packet: ff::Packet,
    copy: bool,
    id: u64,
}

impl EncoderWrapper {
    /// With `copy`: the `zeroCopy = false` path.
    pub fn new(width: u32, height: u32, copy: bool) -> Self {
        streamer::encode::init_ffmpeg().expect("FFmpeg");
        let mut frame = ff::frame::Video::new(ff::format::Pixel::YUV420P, width, height);
        Scene::new(width, height).draw(1, streamer::encode::frame_planes(&mut frame));
        EncoderWrapper {
            frame,
            packet: ff::Packet::copy(&h264_like_frame(10_000)),
            copy,
            id: 0,
        }
    }

    /// One frame's wrapper work; returns bytes touched (to keep it from being optimised out).
    pub fn frame(&mut self) -> usize {
        self.id += 1;
        let id = self.id;
        let mut n = usize::from(streamer::encode::make_writable(&mut self.frame));
        n += std::hint::black_box(streamer::encode::frame_planes(&mut self.frame))
            .y
            .len();
        if self.copy {
            n += std::hint::black_box(streamer::encode::copied_frame(&self.frame, id)).width()
                as usize;
        } else {
            self.frame.set_pts(Some(id as i64));
        }
        let packet = streamer::encode::Packet {
            frame: id,
            inner: &self.packet,
        };
        n + packet.data().len() + usize::from(packet.is_key())
    }
}

/// A pipeline worker's conversion of one rendered frame (`Converter::convert`, at the default
/// `pipeline.quality`), and for jpeg/png the encoder's input stage turning it back
/// (`Ingest::ingest`). Set up with one frame converted and read back already, so a measured
/// frame finds the codecs warm.
pub struct FormatStage {
    converter: Converter,
    ingest: Ingest,
    slot: Slot,
    _pool: BufferPool,
}

impl FormatStage {
    pub fn new(format: FrameFormat, width: u32, height: u32) -> Self {
        streamer::encode::init_ffmpeg().expect("FFmpeg");
        let quality = PipelineConfig::default().jpeg_quality;
        let pool = BufferPool::new(width, height, 1, true);
        let mut slot = pool.take(5);
        Scene::new(width, height).draw(5, streamer::encode::frame_planes(&mut slot.picture));
        let mut stage = FormatStage {
            converter: Converter::new(format, quality, width, height).expect("converter"),
            ingest: Ingest::new(format, width, height).expect("input stage"),
            slot,
            _pool: pool,
        };
        stage.convert();
        stage.ingest();
        stage
    }

    /// The worker's conversion; returns the converted size (0 for raw).
    pub fn convert(&mut self) -> usize {
        self.converter.convert(&mut self.slot).expect("converts");
        self.slot.encoded.len()
    }

    /// The encoder's input stage on the last converted frame.
    pub fn ingest(&mut self) -> usize {
        self.ingest.ingest(&mut self.slot).expect("reads back");
        self.slot.picture.width() as usize
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

    #[test]
    fn the_new_set_ups_run() {
        // 10 KB of frame at 4096-byte chunks: the tag's 10,005 bytes + a 12-byte header + 2
        // continuation bytes.
        let mut f = super::FanOutFrame::new(3, 10_000, 4096);
        assert_eq!(f.frame(), 10_005 + 12 + 2);
        for copy in [false, true] {
            assert!(super::EncoderWrapper::new(64, 36, copy).frame() > 10_000);
        }
        for format in [
            streamer::config::FrameFormat::Raw,
            streamer::config::FrameFormat::Jpeg,
        ] {
            let mut s = super::FormatStage::new(format, 64, 36);
            assert_eq!(
                s.convert() > 0,
                format != streamer::config::FrameFormat::Raw
            );
            assert_eq!(s.ingest(), 64);
        }
    }
}
