//! An incoming feed as the stream's picture (`source.kind = rtmp`): H.264 pictures as they
//! arrive, decoded with libavcodec and scaled to the viewport; at each of its frames the stream
//! takes the latest picture. When the feed stops, the stream holds its last picture (counting
//! the frames held and the gap) and goes on when the feed returns; the feed's AAC is carried
//! through onto the stream's clock. The network side (reading the feed) is the RTMP stage's,
//! handed in as a [`FeedInput`].

use super::SourceError;
use super::audio::{AudioConfig, AudioPacket};
use super::file::{Scaler, copy_planes};
use crate::frame::Planes;
use ffmpeg_next as ff;
use std::time::{Duration, Instant};

/// What a feed delivers, in the order it arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedItem {
    /// An `AVCDecoderConfigurationRecord`: a publish starts (or restarts) with one.
    VideoHeader(Vec<u8>),
    /// One H.264 access unit, its NAL units length-prefixed (AVCC).
    Video(Vec<u8>),
    /// An AAC `AudioSpecificConfig`.
    AudioHeader(Vec<u8>),
    /// One raw AAC frame at the feed's own time, ms.
    Audio { ms: i64, data: Vec<u8> },
}

/// A feed's network side: what has arrived since it was last asked.
pub trait FeedInput: Send {
    /// The items received since the last call, in order.
    fn take(&mut self) -> Vec<FeedItem>;
    /// Where the feed comes from (its address), for errors and notes.
    fn describe(&self) -> String;
}

/// No new picture for this long: the feed has stopped (a gap), until a picture comes again.
const STALL: Duration = Duration::from_millis(500);

/// The feed's pictures, decoded as they come; the latest held for the stream.
pub struct FeedSource {
    input: Box<dyn FeedInput>,
    name: String,
    size: (u32, u32),
    fps: u32,
    decoder: Option<ff::decoder::Video>,
    scaler: Option<(Scaler, (ff::format::Pixel, u32, u32))>,
    decoded: ff::frame::Video,
    /// The latest picture at the viewport's size (None before the first).
    picture: Option<ff::frame::Video>,
    /// Items that came with the first header, not yet used.
    pending: Vec<FeedItem>,
    last_new: Instant,
    /// Whether the latest picture is newer than the frame drawn before.
    fresh: bool,
    stalled: bool,
    pub(super) decoded_frames: u64,
    /// Frames drawn from a picture already drawn (the feed slower than the stream, or
    /// stopped).
    pub(super) held_frames: u64,
    /// Times the feed stopped (no new picture for [`STALL`]) and the stream held its picture.
    pub(super) gaps: u64,
    audio: Option<AudioConfig>,
    /// Stream ms − feed ms, set by the first audio packet of each publish.
    audio_offset: Option<i64>,
    last_audio_ms: Option<i64>,
    pending_audio: Vec<AudioPacket>,
    /// The stream time of the frame being drawn, ms.
    now_ms: i64,
}

impl FeedSource {
    /// Waits at most `timeout` for the feed's first video header (and an audio header that
    /// comes with it), then decodes its pictures for `width × height` frames at `fps`.
    ///
    /// # Errors
    /// Nothing arrived within `timeout`, or no H.264 decoder.
    pub fn open(
        mut input: Box<dyn FeedInput>,
        (width, height): (u32, u32),
        fps: u32,
        timeout: Duration,
    ) -> Result<Self, SourceError> {
        let name = input.describe();
        let fail = |reason: String| SourceError::Feed {
            feed: name.clone(),
            reason,
        };
        ff::init().map_err(|e| fail(format!("initialising FFmpeg: {e}")))?;
        let deadline = Instant::now() + timeout;
        let mut pending = Vec::new();
        // The server sends a publish's headers before its frames: wait for the video header
        // and the first picture after it, so an audio header sent between is seen too.
        while !pending.iter().any(|i| matches!(i, FeedItem::Video(_))) {
            if Instant::now() >= deadline {
                return Err(fail(format!(
                    "no stream arrived within {} s (source.timeout)",
                    timeout.as_secs()
                )));
            }
            pending.extend(input.take());
            std::thread::sleep(Duration::from_millis(10));
        }
        let audio = pending.iter().find_map(|i| match i {
            FeedItem::AudioHeader(asc) => super::audio::from_specific_config(asc),
            _ => None,
        });
        Ok(FeedSource {
            input,
            name,
            size: (width, height),
            fps: fps.max(1),
            decoder: None,
            scaler: None,
            decoded: ff::frame::Video::empty(),
            picture: None,
            pending,
            last_new: Instant::now(),
            fresh: false,
            stalled: false,
            decoded_frames: 0,
            held_frames: 0,
            gaps: 0,
            audio,
            audio_offset: None,
            last_audio_ms: None,
            pending_audio: Vec::new(),
            now_ms: 0,
        })
    }

    /// The feed's address.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The feed's sound as the output announces it (None: silent).
    pub fn audio(&self) -> Option<&AudioConfig> {
        self.audio.as_ref()
    }

    /// The audio packets taken since the last call, on the stream's timeline.
    pub fn take_audio(&mut self) -> Vec<AudioPacket> {
        std::mem::take(&mut self.pending_audio)
    }

    fn fail(&self, reason: String) -> SourceError {
        SourceError::Feed {
            feed: self.name.clone(),
            reason,
        }
    }

    /// Decodes what arrived since the last frame, for frame `id` (the `decode` stage).
    ///
    /// # Errors
    /// A picture could not be scaled, or no decoder could be made for a header.
    pub fn decode(&mut self, id: u64) -> Result<(), SourceError> {
        let fps = i64::from(self.fps);
        self.now_ms = (id as i64 * 1000 + fps / 2).div_euclid(fps);
        let mut items = std::mem::take(&mut self.pending);
        items.extend(self.input.take());
        for item in items {
            self.take(item)?;
        }
        if self.fresh {
            self.fresh = false;
            self.last_new = Instant::now();
            self.stalled = false;
        } else {
            self.held_frames += 1;
            if !self.stalled && self.last_new.elapsed() > STALL {
                self.stalled = true;
                self.gaps += 1;
            }
        }
        Ok(())
    }

    /// Copies the latest picture into `p` (black before the first).
    pub fn paint(&self, p: &mut Planes<'_>) {
        match &self.picture {
            Some(picture) => copy_planes(picture, p),
            None => {
                p.y.fill(16);
                p.u.fill(128);
                p.v.fill(128);
            }
        }
    }

    fn take(&mut self, item: FeedItem) -> Result<(), SourceError> {
        match item {
            FeedItem::VideoHeader(record) => {
                self.decoder = Some(self.decoder_for(&record)?);
                // A new publish: its audio starts on a clock of its own.
                self.audio_offset = None;
            }
            FeedItem::Video(data) => self.decode_unit(&data)?,
            FeedItem::AudioHeader(_) => self.audio_offset = None,
            FeedItem::Audio { ms, data } => {
                if self.audio.is_none() {
                    return Ok(());
                }
                let offset = *self.audio_offset.get_or_insert(self.now_ms - ms);
                let at = ms + offset;
                if self.last_audio_ms.is_some_and(|last| at <= last) {
                    return Ok(());
                }
                self.last_audio_ms = Some(at);
                self.pending_audio.push(AudioPacket { ms: at, data });
            }
        }
        Ok(())
    }

    /// An H.264 decoder for AVCC pictures described by `record`.
    fn decoder_for(&self, record: &[u8]) -> Result<ff::decoder::Video, SourceError> {
        let codec = ff::decoder::find(ff::codec::Id::H264)
            .ok_or_else(|| self.fail("this FFmpeg has no H.264 decoder".into()))?;
        let mut ctx = ff::codec::context::Context::new_with_codec(codec);
        // SAFETY: the context is fresh and owns its extradata; av_mallocz gives the padded,
        // zeroed buffer libavcodec requires, which it frees with the context.
        unsafe {
            let raw = ctx.as_mut_ptr();
            let pad = ff::ffi::AV_INPUT_BUFFER_PADDING_SIZE as usize;
            let buf = ff::ffi::av_mallocz(record.len() + pad) as *mut u8;
            if buf.is_null() {
                return Err(self.fail("out of memory for the decoder's header".into()));
            }
            std::ptr::copy_nonoverlapping(record.as_ptr(), buf, record.len());
            (*raw).extradata = buf;
            (*raw).extradata_size = record.len() as i32;
        }
        ctx.decoder()
            .video()
            .map_err(|e| self.fail(format!("opening the H.264 decoder: {e}")))
    }

    /// Decodes one access unit; a picture it completes becomes the latest.
    fn decode_unit(&mut self, data: &[u8]) -> Result<(), SourceError> {
        let Some(decoder) = &mut self.decoder else {
            return Ok(());
        };
        let packet = ff::Packet::copy(data);
        // A damaged or unexpected unit is skipped, as a player would.
        if decoder.send_packet(&packet).is_err() {
            return Ok(());
        }
        while decoder.receive_frame(&mut self.decoded).is_ok() {
            self.decoded_frames += 1;
            self.fresh = true;
            let (w, h) = self.size;
            let from = (
                self.decoded.format(),
                self.decoded.width(),
                self.decoded.height(),
            );
            let mut out = self
                .picture
                .take()
                .unwrap_or_else(|| ff::frame::Video::new(ff::format::Pixel::YUV420P, w, h));
            if from == (ff::format::Pixel::YUV420P, w, h) {
                let mut planes = crate::frame::frame_planes(&mut out);
                copy_planes(&self.decoded, &mut planes);
            } else {
                if self.scaler.as_ref().is_none_or(|(_, f)| *f != from) {
                    let s = ff::software::scaling::Context::get(
                        from.0,
                        from.1,
                        from.2,
                        ff::format::Pixel::YUV420P,
                        w,
                        h,
                        ff::software::scaling::Flags::BILINEAR,
                    )
                    .map_err(|e| SourceError::Feed {
                        feed: self.name.clone(),
                        reason: format!("scaling its pictures: {e}"),
                    })?;
                    self.scaler = Some((Scaler(s), from));
                }
                let (Scaler(s), _) = self.scaler.as_mut().expect("made above");
                s.run(&self.decoded, &mut out)
                    .map_err(|e| SourceError::Feed {
                        feed: self.name.clone(),
                        reason: format!("scaling a picture: {e}"),
                    })?;
            }
            self.picture = Some(out);
        }
        Ok(())
    }
}
