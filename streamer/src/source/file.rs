//! A file as the stream's picture: any file FFmpeg reads, its video decoded with libavcodec,
//! converted to the viewport's size and YUV420P with swscale where it differs, and played
//! again from the start when it ends.
//!
//! Frame `n` of the stream is the file's `n`-th picture (counting on across loops): a frame the
//! stream skips (dropped as behind) is still decoded, so the picture stays on the file's own
//! timeline, as a live feed's would.

use super::SourceError;
use super::audio::{AudioConfig, AudioPacket, AudioTrack};
use crate::config::HwAccelConfig;
use crate::frame::Planes;
use crate::hwdevice::{Device, DeviceKind, device_type};
use ffmpeg_next as ff;
use std::path::{Path, PathBuf};

/// An open file, decoding ahead of no one: each [`FileSource::draw`] decodes up to the frame
/// it is asked for.
pub struct FileSource {
    path: PathBuf,
    input: ff::format::context::Input,
    /// The video stream's index in the file.
    video: usize,
    decoder: ff::decoder::Video,
    /// The viewport's size, which every picture is scaled to.
    size: (u32, u32),
    /// Whether pictures are scaled or converted (the file's differ from the viewport's, or
    /// they come off a hardware decoder).
    converts: bool,
    /// To the viewport's size and YUV420P, made for the pictures' format and size.
    scaler: Option<(Scaler, (ff::format::Pixel, u32, u32))>,
    decoded: ff::frame::Video,
    /// A hardware decoder's picture, copied to memory.
    transferred: ff::frame::Video,
    scaled: ff::frame::Video,
    /// Which of the frames the picture is in now.
    picture: Picture,
    /// The hardware decoder's device (`encoder.hwaccel.decode`), where one opened: held for
    /// as long as the decoder decodes on it.
    _device: Option<Device>,
    /// What `encoder.hwaccel.decode` came to, where it was asked for.
    pub(super) hw_note: Option<String>,
    /// The stream frame the next decoded picture is.
    next: u64,
    /// The file's frame rate, rounded to whole frames a second.
    fps: u32,
    /// Pictures decoded since the file was opened, across loops.
    pub(super) decoded_frames: u64,
    /// Times the file ended and was played again from its start.
    pub(super) loops: u64,
    /// Whether the pass through the file under way has decoded a picture yet.
    any_this_pass: bool,
    /// The file has no more packets to send; the decoder is draining.
    draining: bool,
    /// The file's AAC audio, carried through.
    audio: Option<AudioTrack>,
    /// Why the file's audio is not carried, where it has audio that is not.
    pub(super) audio_note: Option<String>,
}

/// Which frame holds the latest picture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Picture {
    Decoded,
    Transferred,
    Scaled,
}

/// swscale's context, moved to the thread that draws the stream's frames.
pub(super) struct Scaler(pub(super) ff::software::scaling::Context);

// SAFETY: an SwsContext belongs to no thread; it is used from one thread at a time (through
// `&mut FileSource`), which is all libswscale asks.
unsafe impl Send for Scaler {}

impl FileSource {
    /// Opens `path`, finds its video and sets up the decoder (`threads`: libavcodec's decoding
    /// threads, 0 for as many as it likes) and, where the file's pictures differ from
    /// `width × height` YUV420P, the scaler.
    ///
    /// # Errors
    /// The file cannot be opened or has no video FFmpeg can decode.
    pub fn open(
        path: &Path,
        (width, height): (u32, u32),
        threads: u32,
        hwaccel: &HwAccelConfig,
    ) -> Result<Self, SourceError> {
        let fail = |reason: String| SourceError::File {
            path: path.display().to_string(),
            reason,
        };
        let (input, video, fps) = probe(path)?;
        let (audio, audio_note) = AudioTrack::find(&input);
        let stream = input.stream(video).expect("probe found this stream");
        let mut ctx = ff::codec::context::Context::from_parameters(stream.parameters())
            .map_err(|e| fail(format!("its video's codec: {e}")))?;
        ctx.set_threading(ff::threading::Config {
            kind: ff::threading::Type::Frame,
            count: threads as usize,
            ..Default::default()
        });
        let (hw, hw_note) = hardware(&mut ctx, hwaccel);
        let decoder = ctx
            .decoder()
            .video()
            .map_err(|e| fail(format!("no decoder for its video: {e}")))?;
        let same = decoder.format() == ff::format::Pixel::YUV420P
            && decoder.width() == width
            && decoder.height() == height;
        let mut source = FileSource {
            path: path.to_path_buf(),
            input,
            video,
            decoder,
            size: (width, height),
            converts: !same || hw.is_some(),
            scaler: None,
            decoded: ff::frame::Video::empty(),
            transferred: ff::frame::Video::empty(),
            scaled: ff::frame::Video::empty(),
            picture: Picture::Decoded,
            _device: hw,
            hw_note,
            next: 0,
            fps,
            decoded_frames: 0,
            loops: 0,
            any_this_pass: false,
            draining: false,
            audio,
            audio_note,
        };
        if !same {
            // A size or format swscale cannot convert is said now, not at the first frame.
            let d = &source.decoder;
            let from = (d.format(), d.width(), d.height());
            source.scaler = Some((source.make_scaler(from)?, from));
        }
        Ok(source)
    }

    /// A scaler from `(format, width, height)` pictures to the viewport's YUV420P.
    fn make_scaler(
        &self,
        (format, w, h): (ff::format::Pixel, u32, u32),
    ) -> Result<Scaler, SourceError> {
        let (width, height) = self.size;
        ff::software::scaling::Context::get(
            format,
            w,
            h,
            ff::format::Pixel::YUV420P,
            width,
            height,
            ff::software::scaling::Flags::BILINEAR,
        )
        .map(Scaler)
        .map_err(|e| {
            self.fail(format!(
                "cannot scale its {w}×{h} {format:?} pictures to {width}×{height}: {e}"
            ))
        })
    }

    /// The file's frame rate (whole frames a second).
    pub fn fps(&self) -> u32 {
        self.fps
    }

    /// The file's audio as the output announces it (None: the stream is silent).
    pub fn audio(&self) -> Option<&AudioConfig> {
        self.audio.as_ref().map(|a| &a.config)
    }

    /// The audio packets read since the last call, on the stream's timeline.
    pub fn take_audio(&mut self) -> Vec<AudioPacket> {
        self.audio
            .as_mut()
            .map(AudioTrack::drain)
            .unwrap_or_default()
    }

    /// Whether the file's pictures are scaled or converted to the viewport's.
    pub fn scales(&self) -> bool {
        self.converts
    }

    fn fail(&self, reason: String) -> SourceError {
        SourceError::File {
            path: self.path.display().to_string(),
            reason,
        }
    }

    /// Decodes up to stream frame `id` and scales its picture where the file's size or format
    /// differs (the `decode` stage).
    ///
    /// # Errors
    /// Decoding or scaling failed, or a pass through the file decoded no picture.
    pub fn decode(&mut self, id: u64) -> Result<(), SourceError> {
        if self.next > id {
            return Ok(());
        }
        while self.next <= id {
            self.decode_one()?;
            self.next += 1;
        }
        self.picture = Picture::Decoded;
        // SAFETY: reads a field of the frame this source owns.
        let on_device = !unsafe { (*self.decoded.as_ptr()).hw_frames_ctx }.is_null();
        if on_device {
            // SAFETY: both frames are this source's own; the destination is emptied first, so
            // libavutil allocates it for the picture's memory format.
            let rc = unsafe {
                ff::ffi::av_frame_unref(self.transferred.as_mut_ptr());
                ff::ffi::av_hwframe_transfer_data(
                    self.transferred.as_mut_ptr(),
                    self.decoded.as_ptr(),
                    0,
                )
            };
            if rc < 0 {
                return Err(self.fail(format!(
                    "copying a decoded picture off the device: {}",
                    ff::Error::from(rc)
                )));
            }
            self.picture = Picture::Transferred;
        }
        let picture = match self.picture {
            Picture::Transferred => &self.transferred,
            _ => &self.decoded,
        };
        let from = (picture.format(), picture.width(), picture.height());
        if from == (ff::format::Pixel::YUV420P, self.size.0, self.size.1) {
            return Ok(());
        }
        if self.scaler.as_ref().is_none_or(|(_, made)| *made != from) {
            self.scaler = Some((self.make_scaler(from)?, from));
        }
        let picture = match self.picture {
            Picture::Transferred => &self.transferred,
            _ => &self.decoded,
        };
        let (Scaler(s), _) = self.scaler.as_mut().expect("made above");
        s.run(picture, &mut self.scaled)
            .map_err(|e| SourceError::File {
                path: self.path.display().to_string(),
                reason: format!("scaling a picture: {e}"),
            })?;
        self.picture = Picture::Scaled;
        Ok(())
    }

    /// Copies the latest decoded picture into `p` (the stream's frame, where the layers are
    /// drawn over it: part of render, as drawing the synthetic scene is).
    pub fn paint(&self, p: &mut Planes<'_>) {
        let picture = match self.picture {
            Picture::Decoded => &self.decoded,
            Picture::Transferred => &self.transferred,
            Picture::Scaled => &self.scaled,
        };
        copy_planes(picture, p);
    }

    /// The next picture into `self.decoded`, from the start again when the file ends.
    fn decode_one(&mut self) -> Result<(), SourceError> {
        loop {
            match self.decoder.receive_frame(&mut self.decoded) {
                Ok(()) => {
                    self.decoded_frames += 1;
                    self.any_this_pass = true;
                    return Ok(());
                }
                Err(ff::Error::Eof) => self.rewind()?,
                Err(ff::Error::Other {
                    errno: ff::util::error::EAGAIN,
                }) => self.feed()?,
                Err(e) => return Err(self.fail(format!("decoding: {e}"))),
            }
        }
    }

    /// Sends the decoder the file's next video packet, or the end of the file.
    fn feed(&mut self) -> Result<(), SourceError> {
        if self.draining {
            return Err(self.fail("the decoder wants more after the end".into()));
        }
        loop {
            let mut packet = ff::Packet::empty();
            match packet.read(&mut self.input) {
                Ok(()) if packet.stream() == self.video => {
                    return match self.decoder.send_packet(&packet) {
                        // A damaged packet: skip it, as a player would.
                        Ok(()) | Err(ff::Error::InvalidData) => Ok(()),
                        Err(e) => Err(self.fail(format!("decoding: {e}"))),
                    };
                }
                Ok(()) => {
                    if let Some(a) = self.audio.as_mut().filter(|a| a.index == packet.stream()) {
                        a.take(&packet);
                    }
                }
                Err(ff::Error::Eof) => {
                    self.draining = true;
                    return self
                        .decoder
                        .send_eof()
                        .map_err(|e| self.fail(format!("ending the decode: {e}")));
                }
                Err(e) => return Err(self.fail(format!("reading: {e}"))),
            }
        }
    }

    /// Plays the file again from its start.
    fn rewind(&mut self) -> Result<(), SourceError> {
        if !self.any_this_pass {
            return Err(self.fail("a whole pass through it decoded no picture".into()));
        }
        self.input
            .seek(0, ..)
            .map_err(|e| self.fail(format!("going back to its start: {e}")))?;
        self.decoder.flush();
        // The next pass's first picture is stream frame `decoded_frames`: its audio starts
        // there too (the output's clock: frame n at n × 1000 ÷ fps, rounded).
        let fps = i64::from(self.fps);
        let offset_ms = (self.decoded_frames as i64 * 1000 + fps / 2).div_euclid(fps);
        if let Some(a) = &mut self.audio {
            a.new_pass(offset_ms);
        }
        self.loops += 1;
        self.any_this_pass = false;
        self.draining = false;
        Ok(())
    }
}

/// Opens `path` and finds its video: the input, the video stream's index and its frame rate
/// (rounded to whole frames a second).
///
/// # Errors
/// The file is missing, FFmpeg cannot read it, or it has no video with a frame rate.
pub(super) fn probe(path: &Path) -> Result<(ff::format::context::Input, usize, u32), SourceError> {
    let fail = |reason: String| SourceError::File {
        path: path.display().to_string(),
        reason,
    };
    ff::init().map_err(|e| fail(format!("initialising FFmpeg: {e}")))?;
    if !path.is_file() {
        return Err(fail("no such file".into()));
    }
    let input = ff::format::input(&path).map_err(|e| fail(format!("cannot read it: {e}")))?;
    let stream = input
        .streams()
        .best(ff::media::Type::Video)
        .ok_or_else(|| fail("it holds no video".into()))?;
    let rate = [stream.avg_frame_rate(), stream.rate()]
        .into_iter()
        .find(|r| r.numerator() > 0 && r.denominator() > 0)
        .ok_or_else(|| fail("its video gives no frame rate".into()))?;
    let fps = (f64::from(rate).round() as u32).max(1);
    let video = stream.index();
    Ok((input, video, fps))
}

/// Copies a YUV420P picture's rows into `p` (the same size).
pub(super) fn copy_planes(f: &ff::frame::Video, p: &mut Planes<'_>) {
    let (w, h) = (f.width() as usize, f.height() as usize);
    let planes: [(&mut [u8], usize, usize, usize); 3] = [
        (&mut *p.y, p.y_stride, w, h),
        (&mut *p.u, p.u_stride, w / 2, h / 2),
        (&mut *p.v, p.v_stride, w / 2, h / 2),
    ];
    for (i, (dst, stride, cols, rows)) in planes.into_iter().enumerate() {
        let src = f.data(i);
        let src_stride = f.stride(i);
        for row in 0..rows {
            dst[row * stride..row * stride + cols]
                .copy_from_slice(&src[row * src_stride..row * src_stride + cols]);
        }
    }
}

/// The hardware decoder `hwaccel` asks for, attached to `ctx` where its device opens and the
/// file's codec can decode on it; and the line that says what came of it (None when hardware
/// decoding was not asked for).
fn hardware(
    ctx: &mut ff::codec::context::Context,
    hwaccel: &HwAccelConfig,
) -> (Option<Device>, Option<String>) {
    if hwaccel.decode != Some(true) {
        return (None, None);
    }
    let software = |why: String| {
        Some(format!(
            "encoder.hwaccel.decode = true: {why}: decoding in software (libavcodec)"
        ))
    };
    let Some(family) = hwaccel.device else {
        return (
            None,
            software("no device named (encoder.hwaccel.device)".into()),
        );
    };
    let Some(kind) = device_type(family) else {
        return (
            None,
            software(format!("{family} has no decoding device in libavutil")),
        );
    };
    if !decodes_on(ctx, kind) {
        return (
            None,
            software(format!(
                "this FFmpeg's decoder for the file's video cannot decode on {}",
                DeviceKind(kind)
            )),
        );
    }
    match Device::open(kind) {
        Ok(device) => {
            // SAFETY: the codec context is not opened yet; it takes ownership of the new
            // reference (libavcodec releases it when the context is freed).
            unsafe { (*ctx.as_mut_ptr()).hw_device_ctx = device.new_ref() };
            let line = format!(
                "encoder.hwaccel.decode: decoding on {family} ({}); pictures copied to memory \
                 for the layers",
                DeviceKind(kind)
            );
            (Some(device), Some(line))
        }
        Err(e) => (None, software(e.to_string())),
    }
}

/// Whether the decoder for `ctx`'s codec has a configuration that decodes on a device of
/// `kind` given a device context.
fn decodes_on(ctx: &ff::codec::context::Context, kind: ff::ffi::AVHWDeviceType) -> bool {
    // SAFETY: reads the codec id of a context this function borrows.
    let id = unsafe { (*ctx.as_ptr()).codec_id };
    // SAFETY: a lookup in libavcodec's static tables.
    let codec = unsafe { ff::ffi::avcodec_find_decoder(id) };
    if codec.is_null() {
        return false;
    }
    (0..)
        .map_while(|i| {
            // SAFETY: returns a static configuration, or null past the last.
            let c = unsafe { ff::ffi::avcodec_get_hw_config(codec, i) };
            // SAFETY: non-null static configuration.
            (!c.is_null()).then(|| unsafe { *c })
        })
        .any(|c| {
            c.device_type == kind
                && c.methods & ff::ffi::AV_CODEC_HW_CONFIG_METHOD_HW_DEVICE_CTX as i32 != 0
        })
}
