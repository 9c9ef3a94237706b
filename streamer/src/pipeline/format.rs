//! The pipeline's frame formats: what the workers turn a rendered frame into, and how the
//! encoder's input stage reads it back.
//!
//! `raw` passes the YUV420P picture through untouched. `jpeg` and `png` are what a renderer that
//! hands out images (a browser screenshot, an image pipe into ffmpeg) would deliver: the workers
//! compress each frame with FFmpeg's own `mjpeg` / `png` encoders and the encoder's input stage
//! decodes it again with FFmpeg's decoders, so the format's full cost and its loss both show up
//! in the measurements. JPEG takes the YUV 4:2:0 planes as they are (full-range JPEG, no colour
//! conversion); PNG is RGB, so libswscale converts both ways. `quality` (1–100) maps linearly
//! onto JPEG's quantiser scale, 100 → 2 (best) … 1 → 31, as `ffmpeg -q:v` counts it.

use super::buffers::Slot;
use crate::config::FrameFormat;
use ffmpeg_next as ff;

/// A format conversion that failed.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("{what} ({codec}): {source}")]
    Codec {
        what: &'static str,
        codec: &'static str,
        source: ff::Error,
    },
    #[error("{0} produced no picture")]
    Empty(&'static str),
}

fn codec_err(what: &'static str, codec: &'static str) -> impl Fn(ff::Error) -> FormatError {
    move |source| FormatError::Codec {
        what,
        codec,
        source,
    }
}

/// JPEG's quantiser scale for a quality of 1–100.
pub fn jpeg_qscale(quality: u32) -> u32 {
    let q = quality.clamp(1, 100);
    2 + ((100 - q) * 29 + 49) / 99
}

/// A worker's converter: rendered picture → `slot.encoded`.
pub struct Converter {
    format: FrameFormat,
    encoder: Option<ff::encoder::Video>,
    /// PNG: YUV → RGB.
    scaler: Option<ff::software::scaling::Context>,
    rgb: Option<ff::frame::Video>,
    packet: ff::Packet,
    next_pts: i64,
    /// JPEG: the quantiser scale in lambda units.
    lambda: i32,
}

impl Converter {
    /// A converter to `format` for `width × height` pictures.
    ///
    /// # Errors
    /// FFmpeg lacks the encoder or refuses the settings.
    pub fn new(
        format: FrameFormat,
        quality: u32,
        width: u32,
        height: u32,
    ) -> Result<Self, FormatError> {
        let mut c = Converter {
            format,
            encoder: None,
            scaler: None,
            rgb: None,
            packet: ff::Packet::empty(),
            next_pts: 0,
            lambda: (jpeg_qscale(quality) * ff::ffi::FF_QP2LAMBDA as u32) as i32,
        };
        let (codec_name, id, pixel) = match format {
            FrameFormat::Raw => return Ok(c),
            FrameFormat::Jpeg => ("mjpeg", ff::codec::Id::MJPEG, ff::format::Pixel::YUVJ420P),
            FrameFormat::Png => ("png", ff::codec::Id::PNG, ff::format::Pixel::RGB24),
        };
        let codec = ff::encoder::find(id).ok_or(FormatError::Codec {
            what: "finding the encoder",
            codec: codec_name,
            source: ff::Error::EncoderNotFound,
        })?;
        let mut ctx = ff::codec::Context::new_with_codec(codec)
            .encoder()
            .video()
            .map_err(codec_err("creating the encoder", codec_name))?;
        ctx.set_width(width);
        ctx.set_height(height);
        ctx.set_format(pixel);
        ctx.set_time_base(ff::Rational::new(1, 30));
        if format == FrameFormat::Jpeg {
            ctx.set_flags(ff::codec::Flags::QSCALE);
            ctx.set_global_quality(c.lambda);
        }
        let mut dict = ff::Dictionary::new();
        if format == FrameFormat::Jpeg {
            dict.set("qmin", "1");
            dict.set("qmax", "31");
        }
        c.encoder = Some(
            ctx.open_with(dict)
                .map_err(codec_err("opening the encoder", codec_name))?,
        );
        if format == FrameFormat::Png {
            c.scaler = Some(
                ff::software::scaling::Context::get(
                    ff::format::Pixel::YUV420P,
                    width,
                    height,
                    ff::format::Pixel::RGB24,
                    width,
                    height,
                    ff::software::scaling::Flags::BILINEAR,
                )
                .map_err(codec_err("creating the YUV→RGB scaler", "swscale"))?,
            );
            c.rgb = Some(ff::frame::Video::new(
                ff::format::Pixel::RGB24,
                width,
                height,
            ));
        }
        Ok(c)
    }

    /// Converts `slot.picture` into `slot.encoded` (raw: nothing to do).
    ///
    /// # Errors
    /// The encoder failed.
    pub fn convert(&mut self, slot: &mut Slot) -> Result<(), FormatError> {
        let name = match self.format {
            FrameFormat::Raw => return Ok(()),
            FrameFormat::Jpeg => "mjpeg",
            FrameFormat::Png => "png",
        };
        let Some(encoder) = self.encoder.as_mut() else {
            return Ok(());
        };
        let pts = self.next_pts;
        self.next_pts += 1;
        let sent = match (self.scaler.as_mut(), self.rgb.as_mut()) {
            (Some(scaler), Some(rgb)) => {
                scaler
                    .run(&slot.picture, rgb)
                    .map_err(codec_err("converting to RGB", "swscale"))?;
                rgb.set_pts(Some(pts));
                encoder.send_frame(rgb)
            }
            _ => {
                let keep = slot.picture.pts();
                slot.picture.set_pts(Some(pts));
                // With a fixed quantiser, mpegvideo encoders read it from each frame (as the
                // ffmpeg CLI sets it from -q:v).
                // SAFETY: the frame is a valid AVFrame; `quality` is a plain int field.
                unsafe { (*slot.picture.as_mut_ptr()).quality = self.lambda };
                let r = encoder.send_frame(&slot.picture);
                slot.picture.set_pts(keep);
                r
            }
        };
        sent.map_err(codec_err("encoding", name))?;
        slot.encoded.clear();
        while encoder.receive_packet(&mut self.packet).is_ok() {
            if let Some(data) = self.packet.data() {
                slot.encoded.extend_from_slice(data);
            }
        }
        if slot.encoded.is_empty() {
            return Err(FormatError::Empty(name));
        }
        Ok(())
    }
}

/// The encoder's input stage: `slot.encoded` → `slot.picture` (raw: nothing to do).
pub struct Ingest {
    format: FrameFormat,
    decoder: Option<ff::decoder::Video>,
    decoded: ff::frame::Video,
    /// PNG: RGB → YUV.
    scaler: Option<ff::software::scaling::Context>,
}

impl Ingest {
    /// An input stage for `format` at `width × height`.
    ///
    /// # Errors
    /// FFmpeg lacks the decoder.
    pub fn new(format: FrameFormat, width: u32, height: u32) -> Result<Self, FormatError> {
        let mut i = Ingest {
            format,
            decoder: None,
            decoded: ff::frame::Video::empty(),
            scaler: None,
        };
        let (name, id) = match format {
            FrameFormat::Raw => return Ok(i),
            FrameFormat::Jpeg => ("mjpeg", ff::codec::Id::MJPEG),
            FrameFormat::Png => ("png", ff::codec::Id::PNG),
        };
        let codec = ff::decoder::find(id).ok_or(FormatError::Codec {
            what: "finding the decoder",
            codec: name,
            source: ff::Error::DecoderNotFound,
        })?;
        i.decoder = Some(
            ff::codec::Context::new_with_codec(codec)
                .decoder()
                .video()
                .map_err(codec_err("opening the decoder", name))?,
        );
        if format == FrameFormat::Png {
            i.scaler = Some(
                ff::software::scaling::Context::get(
                    ff::format::Pixel::RGB24,
                    width,
                    height,
                    ff::format::Pixel::YUV420P,
                    width,
                    height,
                    ff::software::scaling::Flags::BILINEAR,
                )
                .map_err(codec_err("creating the RGB→YUV scaler", "swscale"))?,
            );
        }
        Ok(i)
    }

    /// Decodes `slot.encoded` back into `slot.picture`.
    ///
    /// # Errors
    /// The decoder failed or gave no picture.
    pub fn ingest(&mut self, slot: &mut Slot) -> Result<(), FormatError> {
        let name = match self.format {
            FrameFormat::Raw => return Ok(()),
            FrameFormat::Jpeg => "mjpeg",
            FrameFormat::Png => "png",
        };
        let Some(decoder) = self.decoder.as_mut() else {
            return Ok(());
        };
        let packet = ff::Packet::copy(&slot.encoded);
        decoder
            .send_packet(&packet)
            .map_err(codec_err("decoding", name))?;
        decoder
            .receive_frame(&mut self.decoded)
            .map_err(|_| FormatError::Empty(name))?;
        match self.scaler.as_mut() {
            Some(scaler) => scaler
                .run(&self.decoded, &mut slot.picture)
                .map_err(codec_err("converting to YUV", "swscale"))?,
            None => copy_planes(&self.decoded, &mut slot.picture),
        }
        Ok(())
    }
}

/// Copies a 4:2:0 picture's three planes row by row (strides may differ).
fn copy_planes(src: &ff::frame::Video, dst: &mut ff::frame::Video) {
    let (w, h) = (dst.width() as usize, dst.height() as usize);
    for (i, (row, rows)) in [(w, h), (w / 2, h / 2), (w / 2, h / 2)]
        .into_iter()
        .enumerate()
    {
        let (ss, ds) = (src.stride(i), dst.stride(i));
        let s = src.data(i);
        let d = dst.data_mut(i);
        for r in 0..rows {
            d[r * ds..r * ds + row].copy_from_slice(&s[r * ss..r * ss + row]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::buffers::BufferPool;
    use crate::source::Scene;

    fn round_trip(format: FrameFormat, quality: u32) -> (f64, usize) {
        crate::encode::init_ffmpeg().unwrap();
        let (w, h) = (320, 180);
        let pool = BufferPool::new(w, h, 1, true);
        let mut slot = pool.take(5);
        Scene::new(w, h).draw(5, crate::encode::frame_planes(&mut slot.picture));
        let before: Vec<u8> = slot.picture.data(0)[..w as usize].to_vec();
        let mut conv = Converter::new(format, quality, w, h).unwrap();
        conv.convert(&mut slot).unwrap();
        let size = slot.encoded.len();
        slot.picture.data_mut(0).fill(0);
        Ingest::new(format, w, h)
            .unwrap()
            .ingest(&mut slot)
            .unwrap();
        let after = &slot.picture.data(0)[..w as usize];
        let err = before
            .iter()
            .zip(after)
            .map(|(a, b)| f64::from((i16::from(*a) - i16::from(*b)).unsigned_abs()))
            .sum::<f64>()
            / w as f64;
        (err, size)
    }

    #[test]
    fn jpeg_round_trip_is_close_and_quality_sets_the_size() {
        let (err_hi, size_hi) = round_trip(FrameFormat::Jpeg, 95);
        let (err_lo, size_lo) = round_trip(FrameFormat::Jpeg, 10);
        assert!(err_hi < 4.0, "mean luma error {err_hi} at quality 95");
        assert!(
            size_hi > size_lo,
            "quality 95: {size_hi} B, 10: {size_lo} B"
        );
        assert!(err_lo >= err_hi);
    }

    #[test]
    fn png_round_trip_is_close() {
        // Lossless itself; only the YUV↔RGB conversions round.
        let (err, size) = round_trip(FrameFormat::Png, 85);
        assert!(err < 3.0, "mean luma error {err}");
        assert!(size > 1000);
    }

    #[test]
    fn quality_maps_onto_the_jpeg_scale() {
        assert_eq!(jpeg_qscale(100), 2);
        assert_eq!(jpeg_qscale(1), 31);
        assert!((5..=8).contains(&jpeg_qscale(85)));
    }
}
