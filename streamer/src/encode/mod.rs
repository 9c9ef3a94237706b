//! The video encoder: H.264 through FFmpeg's libavcodec (libx264, or a hardware encoder).
//!
//! # Model
//!
//! Pictures go in as frames, encoded packets come out, possibly later (x264's lookahead holds
//! frames back unless `zerolatency` is set). [`Encoder::send`] takes a frame id (its presentation
//! time in frame periods) and marks `encode:start`; every packet handed to the `on_packet`
//! callback of [`Encoder::send`] or [`Encoder::finish`] carries the id of the frame it encodes,
//! and `encode:end` is marked for that id just before the callback.
//!
//! `zeroCopy = true` draws each picture straight into a frame from a small pool owned by the
//! encoder ([`Encoder::pooled_planes`]) and sends it without copying. `zeroCopy = false` is the
//! copying path: the picture is drawn into caller memory and [`Encoder::send_copy`] copies it into
//! a freshly allocated frame each time (the copy is inside the `encode` span).
//!
//! The x264 options are one list ([`codec_options`]) given both to libavcodec here and, as
//! `-key value` arguments, to the ffmpeg CLI when the harness compares the two.

pub mod hw;
mod log;

use crate::config::{EncoderConfig, HwDevice, RateMode, StreamConfig};
use crate::frame::{Planes, RawPicture};
use crate::probe::{Point, Probe};
use ffmpeg_next as ff;
use std::sync::Once;

/// Frames in the zero-copy pool. libavcodec releases its reference to a sent frame before
/// `send_frame` returns for libx264 (x264 copies the picture into its own lookahead), so two
/// frames are enough; a frame still referenced is made writable (copied) and counted.
const POOL: usize = 2;

/// What can go wrong opening or driving the encoder.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// FFmpeg could not be initialised.
    #[error("FFmpeg failed to initialise: {0}")]
    Init(ff::Error),
    /// The named encoder is not in this FFmpeg build.
    #[error("encoder {0} is not in this FFmpeg build")]
    NotFound(&'static str),
    /// Hardware acceleration was asked for and is not available.
    #[error(transparent)]
    Hw(#[from] hw::HwUnavailable),
    /// libavcodec refused to open the encoder with these settings.
    #[error("could not open encoder {encoder} with {options}: {source}")]
    Open {
        encoder: String,
        options: String,
        source: ff::Error,
    },
    /// An encode call failed.
    #[error("encoder {encoder} failed: {source}")]
    Encode { encoder: String, source: ff::Error },
    /// Scaling the picture to the encoder's size failed.
    #[error("scaling {from} to {to} failed: {source}")]
    Scale {
        from: String,
        to: String,
        source: ff::Error,
    },
}

/// Sets up FFmpeg once per process: registers codecs and keeps its log to errors, so x264's
/// per-run banner and statistics do not bury the tool's own output.
pub fn init_ffmpeg() -> Result<(), EncodeError> {
    static INIT: Once = Once::new();
    let mut result = Ok(());
    INIT.call_once(|| {
        result = ff::init().map_err(EncodeError::Init);
        ff::util::log::set_level(ff::util::log::Level::Error);
        log::install();
    });
    result
}

/// The codec options for `cfg`, as `(AVOption name, value)` pairs — exactly what the ffmpeg
/// CLI takes as `-name value` after `-c:v libx264`.
pub fn codec_options(cfg: &EncoderConfig, hardware: bool) -> Vec<(String, String)> {
    let mut o: Vec<(String, String)> = Vec::new();
    let mut push = |k: &str, v: String| o.push((k.to_string(), v));
    push("g", cfg.gop.to_string());
    push("flags", "+cgop".to_string());
    if !hardware {
        push("preset", cfg.preset.as_str().to_string());
        if cfg.zerolatency {
            push("tune", "zerolatency".to_string());
        }
        // No scene-cut keyframes: every GOP is exactly `gop` frames long.
        push("sc_threshold", "0".to_string());
        push("threads", cfg.pipeline.threads.to_string());
        if let Some(flags) = &cfg.pipeline.cpu_flags {
            push("x264-params", format!("asm={}", flags.join(",")));
        }
    }
    match cfg.rate_control.mode {
        RateMode::Crf if !hardware => push("crf", cfg.rate_control.crf.to_string()),
        RateMode::Crf => push("qp", cfg.rate_control.crf.to_string()),
        RateMode::Bitrate => {
            let k = u64::from(cfg.rate_control.bitrate_kbps) * 1000;
            push("b", k.to_string());
            push("maxrate", k.to_string());
            push(
                "bufsize",
                (u64::from(cfg.rate_control.vbv_buffer_kbits) * 1000).to_string(),
            );
        }
    }
    o
}

/// One encoded packet and the frame it encodes.
pub struct Packet<'a> {
    /// The frame id (pts in frame periods).
    pub frame: u64,
    /// The libavcodec packet; timestamps in the encoder's time base (1/fps).
    pub inner: &'a ff::Packet,
}

impl Packet<'_> {
    /// A keyframe (IDR).
    pub fn is_key(&self) -> bool {
        self.inner.is_key()
    }

    /// The encoded bytes.
    pub fn data(&self) -> &[u8] {
        self.inner.data().unwrap_or_default()
    }
}

/// What the encoder reads of the configuration: the `encoder` section and the picture it is
/// given (`core.viewport`'s size and frame rate).
#[derive(Debug, Clone, Copy)]
pub struct Settings<'a> {
    pub encoder: &'a EncoderConfig,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
}

impl<'a> Settings<'a> {
    /// The encoder's settings in `cfg`.
    pub fn of(cfg: &'a StreamConfig) -> Self {
        let v = &cfg.core.viewport;
        Settings {
            encoder: &cfg.encoder,
            width: v.width,
            height: v.height,
            fps: v.fps,
        }
    }
}

/// An open H.264 encoder with its frame pool.
pub struct Encoder {
    inner: ff::encoder::Video,
    name: String,
    width: u32,
    height: u32,
    fps: u32,
    pool: Vec<ff::frame::Video>,
    next: usize,
    packet: ff::Packet,
    /// Things a reader of the results should know (fallbacks).
    notes: Vec<String>,
    /// Pooled frames that libavcodec still referenced and had to be copied.
    pool_copies: u64,
    /// Pictures loaded once with [`Encoder::load`], encoded by index.
    loaded: Vec<ff::frame::Video>,
}

impl Encoder {
    /// Opens the encoder `settings` ask for. `global_header` puts SPS/PPS in extradata (FLV, RTMP)
    /// instead of in-band.
    ///
    /// # Errors
    /// The encoder is missing or refuses the settings; hardware was asked for and is unavailable
    /// (unless `hwaccel.fallback` is set, in which case libx264 is used and a note says why).
    pub fn open(settings: &Settings<'_>, global_header: bool) -> Result<Self, EncodeError> {
        init_ffmpeg()?;
        let mut notes = Vec::new();
        let hwcfg = &settings.encoder.hwaccel;
        let mut name = "libx264";
        if hwcfg.enabled {
            let device = hwcfg.device.unwrap_or(HwDevice::Nvidia);
            match hw::probe(device, settings) {
                Ok(encoder) => name = encoder,
                Err(e) if hwcfg.fallback => {
                    notes.push(format!("{e}; fell back to libx264"));
                }
                Err(e) => return Err(e.into()),
            }
        }
        let (inner, caps) = open_codec(name, settings, global_header)?;
        // With cpuFlags set, what the encoder made of them (libx264 says what it uses).
        if let (Some(caps), Some(_)) = (caps, &settings.encoder.pipeline.cpu_flags) {
            notes.push(format!("{name} uses cpu capabilities: {caps}"));
        }
        let (width, height) = (settings.width, settings.height);
        let pool = (0..POOL)
            .map(|_| ff::frame::Video::new(ff::format::Pixel::YUV420P, width, height))
            .collect();
        Ok(Encoder {
            inner,
            name: name.to_string(),
            width,
            height,
            fps: settings.fps,
            pool,
            next: 0,
            packet: ff::Packet::empty(),
            notes,
            pool_copies: 0,
            loaded: Vec::new(),
        })
    }

    /// The libavcodec encoder's name (`libx264`, `h264_nvenc`, …).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Notes for the run's results (e.g. a hardware fallback).
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// Pooled frames that had to be copied because libavcodec still held them (0 expected).
    pub fn pool_copies(&self) -> u64 {
        self.pool_copies
    }

    /// The encoder's stream parameters (with extradata), for muxers.
    pub fn parameters(&self) -> ff::codec::Parameters {
        ff::codec::Parameters::from(&self.inner)
    }

    /// The next pooled frame's planes, to draw the next picture into (zero-copy path).
    pub fn pooled_planes(&mut self) -> Planes<'_> {
        let frame = &mut self.pool[self.next];
        // SAFETY: the frame is a valid, allocated AVFrame owned by the pool.
        let writable = unsafe { ff::ffi::av_frame_is_writable(frame.as_mut_ptr()) } != 0;
        if !writable {
            // SAFETY: as above; make_writable copies the picture into a fresh buffer.
            unsafe { ff::ffi::av_frame_make_writable(frame.as_mut_ptr()) };
            self.pool_copies += 1;
        }
        frame_planes(frame)
    }

    /// Encodes the pooled frame last handed out by [`Encoder::pooled_planes`] as frame `id`.
    ///
    /// # Errors
    /// libavcodec failed.
    pub fn send_pooled<P: Probe>(
        &mut self,
        id: u64,
        probe: &P,
        on_packet: impl FnMut(Packet<'_>),
    ) -> Result<(), EncodeError> {
        probe.mark(Point::EncodeStart, id);
        let idx = self.next;
        self.next = (self.next + 1) % POOL;
        self.pool[idx].set_pts(Some(id as i64));
        let result = self.inner.send_frame(&self.pool[idx]);
        self.check(result)?;
        self.drain(probe, on_packet)
    }

    /// Copies `picture` into a freshly allocated frame and encodes it as frame `id`.
    ///
    /// # Errors
    /// libavcodec failed.
    pub fn send_copy<P: Probe>(
        &mut self,
        id: u64,
        picture: &RawPicture,
        probe: &P,
        on_packet: impl FnMut(Packet<'_>),
    ) -> Result<(), EncodeError> {
        probe.mark(Point::EncodeStart, id);
        let mut frame = ff::frame::Video::new(ff::format::Pixel::YUV420P, self.width, self.height);
        copy_into(picture, &mut frame);
        frame.set_pts(Some(id as i64));
        let result = self.inner.send_frame(&frame);
        self.check(result)?;
        self.drain(probe, on_packet)
    }

    /// Encodes `frame` (YUV420P at the encoder's geometry) as frame `id`: zero copy, or, with
    /// `copy`, through a freshly allocated frame (`zeroCopy = false`). The caller marks
    /// `encode:start` (the pipeline's input stage belongs to the encode span).
    ///
    /// # Errors
    /// libavcodec failed.
    pub fn encode_frame<P: Probe>(
        &mut self,
        id: u64,
        frame: &mut ff::frame::Video,
        copy: bool,
        probe: &P,
        on_packet: impl FnMut(Packet<'_>),
    ) -> Result<(), EncodeError> {
        let result = if copy {
            let fresh = copied_frame(frame, id);
            self.inner.send_frame(&fresh)
        } else {
            frame.set_pts(Some(id as i64));
            self.inner.send_frame(frame)
        };
        self.check(result)?;
        self.drain(probe, on_packet)
    }

    /// Sets the target bitrate (and the VBV max rate with it) and the VBV buffer from the
    /// next frame on, without reopening: libavcodec's libx264 wrapper sees the change before
    /// the next frame and reconfigures x264 (in `bitrate` rate control; `crf` ignores it).
    pub fn set_bitrate_kbps(&mut self, kbps: u32, buffer_kbits: u32) {
        let bits = i64::from(kbps) * 1000;
        // SAFETY: the context is open and owned by this encoder; these are plain fields that
        // libavcodec reads at the next `avcodec_send_frame` on this thread.
        unsafe {
            let ctx = self.inner.as_mut_ptr();
            (*ctx).bit_rate = bits;
            (*ctx).rc_max_rate = bits;
            (*ctx).rc_buffer_size = (i64::from(buffer_kbits) * 1000) as i32;
        }
    }

    /// Copies `pictures` into encoder frames once, so [`Encoder::send_loaded`] can encode them
    /// any number of times without copying (a clip in memory, as a benchmark input).
    pub fn load(&mut self, pictures: &[RawPicture]) {
        self.loaded = pictures
            .iter()
            .map(|p| {
                let mut frame =
                    ff::frame::Video::new(ff::format::Pixel::YUV420P, self.width, self.height);
                copy_into(p, &mut frame);
                frame
            })
            .collect();
    }

    /// Encodes loaded picture `index` (modulo the number loaded) as frame `id`.
    ///
    /// # Errors
    /// libavcodec failed.
    ///
    /// # Panics
    /// When nothing was loaded.
    pub fn send_loaded<P: Probe>(
        &mut self,
        index: usize,
        id: u64,
        probe: &P,
        on_packet: impl FnMut(Packet<'_>),
    ) -> Result<(), EncodeError> {
        probe.mark(Point::EncodeStart, id);
        let n = self.loaded.len();
        let frame = &mut self.loaded[index % n];
        frame.set_pts(Some(id as i64));
        let result = self.inner.send_frame(frame);
        self.check(result)?;
        self.drain(probe, on_packet)
    }

    /// Flushes the frames the encoder still holds.
    ///
    /// # Errors
    /// libavcodec failed.
    pub fn finish<P: Probe>(
        &mut self,
        probe: &P,
        on_packet: impl FnMut(Packet<'_>),
    ) -> Result<(), EncodeError> {
        let result = self.inner.send_eof();
        self.check(result)?;
        self.drain(probe, on_packet)
    }

    /// Picture width and height.
    pub fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    /// Frames per second (the time base is 1/fps).
    pub fn fps(&self) -> u32 {
        self.fps
    }

    fn check(&self, result: Result<(), ff::Error>) -> Result<(), EncodeError> {
        result.map_err(|source| EncodeError::Encode {
            encoder: self.name.clone(),
            source,
        })
    }

    fn drain<P: Probe>(
        &mut self,
        probe: &P,
        mut on_packet: impl FnMut(Packet<'_>),
    ) -> Result<(), EncodeError> {
        loop {
            match self.inner.receive_packet(&mut self.packet) {
                Ok(()) => {
                    let frame = self.packet.pts().unwrap_or(0).max(0) as u64;
                    probe.mark(Point::EncodeEnd, frame);
                    on_packet(Packet {
                        frame,
                        inner: &self.packet,
                    });
                }
                Err(ff::Error::Other {
                    errno: ff::util::error::EAGAIN,
                })
                | Err(ff::Error::Eof) => {
                    return Ok(());
                }
                Err(source) => {
                    return Err(EncodeError::Encode {
                        encoder: self.name.clone(),
                        source,
                    });
                }
            }
        }
    }
}

/// Opens encoder `name` for the settings' geometry, rate and options; with the CPU
/// capabilities it said it uses, where it said so (libx264 does).
fn open_codec(
    name: &'static str,
    settings: &Settings<'_>,
    global_header: bool,
) -> Result<(ff::encoder::Video, Option<String>), EncodeError> {
    let codec = ff::encoder::find_by_name(name).ok_or(EncodeError::NotFound(name))?;
    let mut ctx = ff::codec::Context::new_with_codec(codec)
        .encoder()
        .video()
        .map_err(|source| EncodeError::Open {
            encoder: name.to_string(),
            options: String::new(),
            source,
        })?;
    ctx.set_width(settings.width);
    ctx.set_height(settings.height);
    ctx.set_format(ff::format::Pixel::YUV420P);
    ctx.set_time_base(ff::Rational::new(1, settings.fps as i32));
    ctx.set_frame_rate(Some(ff::Rational::new(settings.fps as i32, 1)));
    let mut options = codec_options(settings.encoder, name != "libx264");
    if global_header {
        // OR the bit in through the option parser: set_flags() would overwrite +cgop.
        options.push(("flags".to_string(), "+global_header".to_string()));
    }
    let mut dict = ff::Dictionary::new();
    for (k, value) in &options {
        // Repeated keys (flags) must accumulate: join them into one `+a+b` value.
        match (k.as_str(), dict.get(k)) {
            ("flags", Some(prev)) => {
                let joined = format!("{prev}{value}");
                dict.set(k, &joined);
            }
            _ => dict.set(k, value),
        }
    }
    let shown = options
        .iter()
        .map(|(k, v)| format!("-{k} {v}"))
        .collect::<Vec<_>>()
        .join(" ");
    // SAFETY: only the address is kept, to find what this context logs.
    let key = unsafe { ctx.as_ptr() };
    let opened = ctx.open_with(dict).map_err(|source| EncodeError::Open {
        encoder: name.to_string(),
        options: shown,
        source,
    })?;
    Ok((opened, log::cpu_caps(key)))
}

/// Scales pictures down to the size the encoder was reopened at (quality scaling below
/// ultrafast), with FFmpeg's bilinear scaler into a frame of its own.
pub struct Downscale {
    ctx: ff::software::scaling::Context,
    frame: ff::frame::Video,
}

impl Downscale {
    /// A scaler of YUV420P pictures from `from` to `to` (width, height).
    ///
    /// # Errors
    /// libswscale refuses the sizes.
    pub fn new(from: (u32, u32), to: (u32, u32)) -> Result<Self, EncodeError> {
        let yuv = ff::format::Pixel::YUV420P;
        let ctx = ff::software::scaling::Context::get(
            yuv,
            from.0,
            from.1,
            yuv,
            to.0,
            to.1,
            ff::software::scaling::Flags::BILINEAR,
        )
        .map_err(|source| EncodeError::Scale {
            from: format!("{}x{}", from.0, from.1),
            to: format!("{}x{}", to.0, to.1),
            source,
        })?;
        Ok(Downscale {
            ctx,
            frame: ff::frame::Video::new(yuv, to.0, to.1),
        })
    }

    /// `picture` scaled, in the scaler's own frame (made writable first if libavcodec still
    /// holds it).
    ///
    /// # Errors
    /// `picture` is not at the size the scaler was made for.
    pub fn run(
        &mut self,
        picture: &ff::frame::Video,
    ) -> Result<&mut ff::frame::Video, EncodeError> {
        make_writable(&mut self.frame);
        let scaled = self.ctx.run(picture, &mut self.frame);
        scaled.map_err(|source| {
            let (i, o) = (self.ctx.input(), self.ctx.output());
            EncodeError::Scale {
                from: format!("{}x{}", i.width, i.height),
                to: format!("{}x{}", o.width, o.height),
                source,
            }
        })?;
        Ok(&mut self.frame)
    }
}

/// Copies a picture into a frame of the same geometry, row by row (strides differ).
pub fn copy_into(picture: &RawPicture, frame: &mut ff::frame::Video) {
    for (i, (src, row)) in picture.plane_slices().into_iter().enumerate() {
        let stride = frame.stride(i);
        let dst = frame.data_mut(i);
        for (d, s) in dst.chunks_mut(stride).zip(src.chunks(row)) {
            d[..row].copy_from_slice(s);
        }
    }
}

/// A freshly allocated copy of `frame` (YUV420P) stamped as frame `id`: the `zeroCopy = false`
/// path's per-frame copy in [`Encoder::encode_frame`], public for the instruction-count gate.
#[doc(hidden)]
pub fn copied_frame(frame: &ff::frame::Video, id: u64) -> ff::frame::Video {
    let mut fresh =
        ff::frame::Video::new(ff::format::Pixel::YUV420P, frame.width(), frame.height());
    // SAFETY: both frames are allocated YUV420P frames of the same geometry.
    unsafe { ff::ffi::av_frame_copy(fresh.as_mut_ptr(), frame.as_ptr()) };
    fresh.set_pts(Some(id as i64));
    fresh
}

/// Makes `frame` safe to draw into: if libavcodec still references its buffer, the frame gets
/// a private copy, and the answer is `true` (a broken zero copy; never seen with libx264).
pub fn make_writable(frame: &mut ff::frame::Video) -> bool {
    // SAFETY: `frame` is a valid, allocated AVFrame.
    let writable = unsafe { ff::ffi::av_frame_is_writable(frame.as_mut_ptr()) } != 0;
    if !writable {
        // SAFETY: as above; make_writable copies the picture into a fresh buffer.
        unsafe { ff::ffi::av_frame_make_writable(frame.as_mut_ptr()) };
    }
    !writable
}

pub use crate::frame::frame_planes;

/// FFmpeg's version string and the x264 build this process links, for results.
pub fn versions() -> (String, String) {
    // SAFETY: av_version_info returns a static NUL-terminated string.
    let ffmpeg = unsafe { std::ffi::CStr::from_ptr(ff::ffi::av_version_info()) }
        .to_string_lossy()
        .into_owned();
    // libavcodec loads libx264.so.<build>; the soname's number is x264's API build.
    let x264 = std::fs::read_to_string("/proc/self/maps")
        .ok()
        .and_then(|maps| {
            maps.lines().find_map(|l| {
                let name = l.rsplit('/').next()?;
                name.strip_prefix("libx264.so.")
                    .map(|b| format!("build {b}"))
            })
        })
        .unwrap_or_else(|| "unknown".to_string());
    (ffmpeg, x264)
}
