//! Where encoded packets go: an RTMP server, an FLV file (FFmpeg's muxer), or nowhere; with
//! the source's sound beside them where it has any (AAC, as the source gave it).
//!
//! A [`Sink`] takes each packet as the encoder hands it out, in decode order. The stream marks
//! `network:send:start/end` around [`Sink::send`], so for a file the span is the mux-and-write
//! time, and for the null sink it is the cost of the call.

use crate::encode::{Encoder, Packet};
use crate::rtmp::client::{PublishError, Publisher, RtmpUrl};
use crate::rtmp::flv;
use crate::source::{AudioConfig, AudioPacket};
use ffmpeg_next as ff;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Where the stream goes, as the command line names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Encode only; packets are counted and dropped.
    Null,
    /// An FLV file.
    Flv(PathBuf),
    /// An RTMP server, `rtmp://host[:port]/app/key` (or `rtmps://`, over TLS).
    Rtmp(RtmpUrl),
}

impl FromStr for Output {
    type Err = crate::config::ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "null" {
            Ok(Output::Null)
        } else if s.starts_with("rtmp://") || s.starts_with("rtmps://") {
            s.parse().map(Output::Rtmp)
        } else if s.ends_with(".flv") {
            Ok(Output::Flv(PathBuf::from(s)))
        } else {
            Err(crate::config::ParseError(format!(
                "output {s:?}: expected `null`, rtmp[s]://host[:port]/app/key, or a path ending in .flv"
            )))
        }
    }
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Output::Null => f.write_str("null"),
            Output::Flv(p) => write!(f, "{}", p.display()),
            Output::Rtmp(u) => write!(f, "{u}"),
        }
    }
}

impl Output {
    /// Whether the encoder must put SPS/PPS in extradata for this output.
    pub fn needs_global_header(&self) -> bool {
        matches!(self, Output::Flv(_) | Output::Rtmp(_))
    }
}

/// An output failure.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("output {target}: {what}: {source}")]
    Ffmpeg {
        target: String,
        what: &'static str,
        source: ff::Error,
    },
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error("output {0}: the encoder gave no SPS/PPS to build the AVC sequence header from")]
    NoHeader(String),
    #[error(
        "output {0}: a file cannot change its encoder's settings midway (adaptive.quality needs \
         an RTMP or null output)"
    )]
    FixedFile(String),
}

/// What a sink reports besides the packets it took.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SinkStats {
    /// Frames handed on (to the server).
    pub frames_sent: u64,
    /// Bytes put on the wire (RTMP chunks).
    pub bytes_sent: u64,
    /// Frames the sink could not deliver (a dropped connection).
    pub dropped: u64,
    pub reconnects: u64,
}

/// Receives encoded packets.
pub trait Sink {
    /// Sends one packet on.
    ///
    /// # Errors
    /// The packet could not be written.
    fn send(&mut self, packet: Packet<'_>) -> Result<(), OutputError>;

    /// Completes the output (trailer, flush).
    ///
    /// # Errors
    /// The output could not be completed.
    fn finish(&mut self) -> Result<(), OutputError>;

    /// Counters so far.
    fn stats(&self) -> SinkStats {
        SinkStats::default()
    }

    /// The network connection's quality, where the sink has one (RTMP).
    fn net_quality(&self) -> Option<crate::adapt::network::NetQualityView> {
        None
    }

    /// Samples the connection's quality now (it is also sampled after every packet sent).
    fn sample_quality(&mut self) {}

    /// The encoder was reopened with other settings (quality scaling): what follows is
    /// `encoder`'s, from a keyframe at `frame` on.
    ///
    /// # Errors
    /// The output cannot change its stream's parameters (a file).
    fn new_encoder(&mut self, _encoder: &Encoder, _frame: u64) -> Result<(), OutputError> {
        Ok(())
    }

    /// Sends one packet of the source's sound on (a sink opened without audio ignores it).
    ///
    /// # Errors
    /// The packet could not be written.
    fn audio(&mut self, _packet: &AudioPacket) -> Result<(), OutputError> {
        Ok(())
    }
}

/// Opens the sink for `output`, taking the stream parameters from `encoder`, with an audio
/// track where the source has sound (`audio`).
///
/// # Errors
/// The file cannot be created or the muxer refuses the stream.
pub fn open(
    output: &Output,
    encoder: &Encoder,
    audio: Option<&AudioConfig>,
) -> Result<Box<dyn Sink>, OutputError> {
    match output {
        Output::Null => Ok(Box::new(NullSink)),
        Output::Flv(path) => Ok(Box::new(FlvFile::create(path, encoder, audio)?)),
        Output::Rtmp(url) => Ok(Box::new(RtmpSink::connect(url, encoder, audio)?)),
    }
}

/// Discards packets.
pub struct NullSink;

impl Sink for NullSink {
    fn send(&mut self, packet: Packet<'_>) -> Result<(), OutputError> {
        std::hint::black_box(packet.data());
        Ok(())
    }

    fn finish(&mut self) -> Result<(), OutputError> {
        Ok(())
    }
}

/// An FLV file written by libavformat's muxer.
pub struct FlvFile {
    ctx: ff::format::context::Output,
    target: String,
    encoder_tb: ff::Rational,
    stream_tb: ff::Rational,
    packet: ff::Packet,
    /// The audio stream's time base, where the file has one (stream 1).
    audio_tb: Option<ff::Rational>,
}

impl FlvFile {
    /// Creates `path` and writes the FLV header for the encoder's stream.
    ///
    /// # Errors
    /// The file cannot be created or the header written.
    pub fn create(
        path: &Path,
        encoder: &Encoder,
        audio: Option<&AudioConfig>,
    ) -> Result<Self, OutputError> {
        let target = path.display().to_string();
        let err = |what| {
            let target = target.clone();
            move |source| OutputError::Ffmpeg {
                target,
                what,
                source,
            }
        };
        let mut ctx = ff::format::output_as(path, "flv").map_err(err("cannot create"))?;
        let fps = ff::Rational::new(encoder.fps() as i32, 1);
        let mut stream = ctx
            .add_stream(ff::encoder::find(ff::codec::Id::H264))
            .map_err(err("add stream"))?;
        stream.set_parameters(encoder.parameters());
        // FLV counts in milliseconds; without the frame rate players guess it from timestamps.
        stream.set_avg_frame_rate(fps);
        stream.set_rate(fps);
        stream.set_time_base(ff::Rational::new(1, 1000));
        if let Some(a) = audio {
            let mut track = ctx
                .add_stream(ff::encoder::find(ff::codec::Id::AAC))
                .map_err(err("add audio stream"))?;
            track.set_parameters(a.parameters.clone());
            track.set_time_base(ff::Rational::new(1, 1000));
        }
        ctx.write_header().map_err(err("write header"))?;
        let stream_tb = ctx
            .stream(0)
            .map(|s| s.time_base())
            .unwrap_or(ff::Rational::new(1, 1000));
        let audio_tb = audio.and_then(|_| ctx.stream(1)).map(|s| s.time_base());
        Ok(FlvFile {
            ctx,
            target,
            encoder_tb: ff::Rational::new(1, encoder.fps() as i32),
            stream_tb,
            packet: ff::Packet::empty(),
            audio_tb,
        })
    }
}

impl Sink for FlvFile {
    fn new_encoder(&mut self, _encoder: &Encoder, _frame: u64) -> Result<(), OutputError> {
        Err(OutputError::FixedFile(self.target.clone()))
    }

    fn send(&mut self, packet: Packet<'_>) -> Result<(), OutputError> {
        // The muxer takes ownership of what it is given; hand it a new reference.
        self.packet.clone_from(packet.inner);
        self.packet.set_stream(0);
        self.packet.rescale_ts(self.encoder_tb, self.stream_tb);
        self.packet
            .write_interleaved(&mut self.ctx)
            .map_err(|source| OutputError::Ffmpeg {
                target: self.target.clone(),
                what: "write packet",
                source,
            })
    }

    fn audio(&mut self, packet: &AudioPacket) -> Result<(), OutputError> {
        let Some(tb) = self.audio_tb else {
            return Ok(());
        };
        let mut p = ff::Packet::copy(&packet.data);
        p.set_pts(Some(packet.ms));
        p.set_dts(Some(packet.ms));
        p.set_stream(1);
        p.rescale_ts(ff::Rational::new(1, 1000), tb);
        p.write_interleaved(&mut self.ctx)
            .map_err(|source| OutputError::Ffmpeg {
                target: self.target.clone(),
                what: "write audio packet",
                source,
            })
    }

    fn finish(&mut self) -> Result<(), OutputError> {
        self.ctx
            .write_trailer()
            .map_err(|source| OutputError::Ffmpeg {
                target: self.target.clone(),
                what: "write trailer",
                source,
            })
    }
}

/// Publishes to an RTMP server; timestamps are the frames' times in ms.
pub struct RtmpSink {
    publisher: Publisher,
    fps: u32,
    url: String,
}

impl RtmpSink {
    /// Connects to `url` and publishes the stream's metadata and sequence header.
    ///
    /// # Errors
    /// The server cannot be reached or refuses the publish.
    pub fn connect(
        url: &RtmpUrl,
        encoder: &Encoder,
        audio: Option<&AudioConfig>,
    ) -> Result<Self, OutputError> {
        let record = avc_record(encoder).ok_or_else(|| OutputError::NoHeader(url.to_string()))?;
        let mut meta = rml_rtmp::sessions::StreamMetadata::new();
        let (w, h) = encoder.size();
        meta.video_width = Some(w);
        meta.video_height = Some(h);
        meta.video_codec_id = Some(7);
        meta.video_frame_rate = Some(encoder.fps() as f32);
        meta.encoder = Some(format!("stream-manager ({})", encoder.name()));
        if let Some(a) = audio {
            meta.audio_codec_id = Some(10);
            meta.audio_sample_rate = Some(a.sample_rate);
            meta.audio_channels = Some(u32::from(a.channels));
            meta.audio_is_stereo = Some(a.channels >= 2);
        }
        let audio_header = audio.map(|a| flv::aac_header_tag(&a.specific_config));
        let publisher = Publisher::connect(url.clone(), meta, &record, audio_header)?;
        Ok(RtmpSink {
            publisher,
            fps: encoder.fps(),
            url: url.to_string(),
        })
    }
}

/// The `AVCDecoderConfigurationRecord` of `encoder`'s extradata (None without SPS/PPS).
fn avc_record(encoder: &Encoder) -> Option<Vec<u8>> {
    {
        let params = encoder.parameters();
        // SAFETY: the parameters own a valid AVCodecParameters; extradata is `extradata_size`
        // bytes or null.
        let extradata = unsafe {
            let p = &*params.as_ptr();
            if p.extradata.is_null() {
                &[][..]
            } else {
                std::slice::from_raw_parts(p.extradata, p.extradata_size as usize)
            }
        };
        flv::avc_decoder_config(extradata)
    }
}

impl Sink for RtmpSink {
    fn send(&mut self, packet: Packet<'_>) -> Result<(), OutputError> {
        let pts = packet.inner.pts().unwrap_or(packet.frame as i64);
        let dts = packet.inner.dts().unwrap_or(pts).max(0);
        let dts_ms = flv::ms_of_frame(dts, self.fps);
        let cts = (flv::ms_of_frame(pts, self.fps) - dts_ms) as i32;
        self.publisher
            .send_frame(packet.is_key(), dts_ms as u32, cts, packet.data());
        Ok(())
    }

    fn audio(&mut self, packet: &AudioPacket) -> Result<(), OutputError> {
        self.publisher
            .send_audio(packet.ms.max(0) as u32, &packet.data);
        Ok(())
    }

    fn finish(&mut self) -> Result<(), OutputError> {
        self.publisher.close();
        Ok(())
    }

    fn net_quality(&self) -> Option<crate::adapt::network::NetQualityView> {
        Some(self.publisher.net_quality())
    }

    fn sample_quality(&mut self) {
        self.publisher.sample_quality();
    }

    fn new_encoder(&mut self, encoder: &Encoder, frame: u64) -> Result<(), OutputError> {
        let record = avc_record(encoder).ok_or_else(|| OutputError::NoHeader(self.url.clone()))?;
        let dts_ms = flv::ms_of_frame(frame as i64, self.fps).max(0) as u32;
        self.publisher
            .set_sequence_header(&record, encoder.size(), dts_ms);
        Ok(())
    }

    fn stats(&self) -> SinkStats {
        let s = self.publisher.stats();
        SinkStats {
            frames_sent: s.frames_sent,
            bytes_sent: s.bytes_sent,
            dropped: s.frames_dropped,
            reconnects: s.reconnects,
        }
    }
}
