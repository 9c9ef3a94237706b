//! A source's sound, carried through as it is: a file's AAC packets, their timestamps moved
//! onto the stream's timeline (on across loops), for the output to send beside the video.
//! Nothing is decoded or encoded again.

use ffmpeg_next as ff;

/// A source's audio as the output announces it.
#[derive(Clone)]
pub struct AudioConfig {
    /// The codec parameters (for a muxer's audio stream).
    pub parameters: ff::codec::Parameters,
    /// The AAC `AudioSpecificConfig` (the FLV audio sequence header's body).
    pub specific_config: Vec<u8>,
    pub sample_rate: u32,
    pub channels: u16,
}

impl std::fmt::Debug for AudioConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AudioConfig")
            .field("sample_rate", &self.sample_rate)
            .field("channels", &self.channels)
            .field("specific_config", &self.specific_config)
            .finish()
    }
}

/// One compressed audio packet (a raw AAC frame) at its time on the stream's timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioPacket {
    /// Milliseconds from the stream's start, on the video's clock (frame `n` is at
    /// `n × 1000 ÷ fps`).
    pub ms: i64,
    pub data: Vec<u8>,
}

/// A file's audio stream as it is read.
pub(super) struct AudioTrack {
    /// The stream's index in the file.
    pub(super) index: usize,
    pub(super) config: AudioConfig,
    time_base: ff::Rational,
    /// The stream's first timestamp (where its 0 ms is).
    start: i64,
    /// Where the pass through the file under way starts on the stream's timeline, ms.
    offset_ms: i64,
    /// The latest packet's time, ms: one not after it (a longer audio than video overlapping
    /// the next pass) is left out, so the output's audio never goes back.
    last_ms: Option<i64>,
    pending: Vec<AudioPacket>,
}

impl AudioTrack {
    /// The file's AAC audio, if it has any; otherwise a note saying what is not carried.
    pub(super) fn find(input: &ff::format::context::Input) -> (Option<AudioTrack>, Option<String>) {
        let Some(stream) = input.streams().best(ff::media::Type::Audio) else {
            return (None, None);
        };
        let mut parameters = stream.parameters();
        // The container's tag (mp4's `mp4a`) is not the output's: let each muxer pick its own.
        // SAFETY: the parameters own a valid AVCodecParameters.
        unsafe { (*parameters.as_mut_ptr()).codec_tag = 0 };
        let id = parameters.id();
        if id != ff::codec::Id::AAC {
            return (
                None,
                Some(format!(
                    "source audio: {id:?} is not carried (only AAC is copied to the output)"
                )),
            );
        }
        // SAFETY: the parameters own a valid AVCodecParameters; extradata is
        // `extradata_size` bytes or null.
        let (specific_config, sample_rate, channels) = unsafe {
            let p = &*parameters.as_ptr();
            let extradata = if p.extradata.is_null() {
                Vec::new()
            } else {
                std::slice::from_raw_parts(p.extradata, p.extradata_size as usize).to_vec()
            };
            (
                extradata,
                p.sample_rate as u32,
                p.ch_layout.nb_channels as u16,
            )
        };
        if specific_config.is_empty() {
            return (
                None,
                Some("source audio: AAC without its AudioSpecificConfig is not carried".into()),
            );
        }
        let start = stream.start_time();
        let track = AudioTrack {
            index: stream.index(),
            config: AudioConfig {
                parameters,
                specific_config,
                sample_rate,
                channels,
            },
            time_base: stream.time_base(),
            start: if start == ff::ffi::AV_NOPTS_VALUE {
                0
            } else {
                start
            },
            offset_ms: 0,
            last_ms: None,
            pending: Vec::new(),
        };
        (Some(track), None)
    }

    /// Takes a packet the file gave for this stream.
    pub(super) fn take(&mut self, packet: &ff::Packet) {
        let (Some(pts), Some(data)) = (packet.pts().or(packet.dts()), packet.data()) else {
            return;
        };
        let tb = self.time_base;
        let ms = (pts - self.start) * 1000 * i64::from(tb.numerator())
            / i64::from(tb.denominator()).max(1)
            + self.offset_ms;
        if self.last_ms.is_some_and(|last| ms <= last) {
            return;
        }
        self.last_ms = Some(ms);
        self.pending.push(AudioPacket {
            ms,
            data: data.to_vec(),
        });
    }

    /// A new pass through the file starts at `offset_ms` on the stream's timeline.
    pub(super) fn new_pass(&mut self, offset_ms: i64) {
        self.offset_ms = offset_ms;
    }

    /// The packets read since the last call, in order.
    pub(super) fn drain(&mut self) -> Vec<AudioPacket> {
        std::mem::take(&mut self.pending)
    }
}

/// AAC's sampling rates by `samplingFrequencyIndex`.
const AAC_RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

/// The audio an AAC `AudioSpecificConfig` describes (its rate and channels read from it);
/// None where it is too short or its rate or channels are not given plainly.
pub(super) fn from_specific_config(asc: &[u8]) -> Option<AudioConfig> {
    if asc.len() < 2 {
        return None;
    }
    // 5 bits object type (no escape), 4 bits rate index, 4 bits channel configuration.
    let bits = u16::from_be_bytes([asc[0], asc[1]]);
    let rate = *AAC_RATES.get(usize::from((bits >> 7) & 0x0f))?;
    let channels = match (bits >> 3) & 0x0f {
        0 => return None,
        7 => 8,
        c => c,
    };
    let mut parameters = ff::codec::Parameters::new();
    // SAFETY: the parameters own a valid AVCodecParameters; the extradata is allocated
    // padded and zeroed with av_mallocz, as libavcodec requires, and freed with them.
    unsafe {
        let p = parameters.as_mut_ptr();
        (*p).codec_type = ff::ffi::AVMediaType::AVMEDIA_TYPE_AUDIO;
        (*p).codec_id = ff::ffi::AVCodecID::AV_CODEC_ID_AAC;
        (*p).sample_rate = rate as i32;
        ff::ffi::av_channel_layout_default(&mut (*p).ch_layout, i32::from(channels));
        let pad = ff::ffi::AV_INPUT_BUFFER_PADDING_SIZE as usize;
        let buf = ff::ffi::av_mallocz(asc.len() + pad) as *mut u8;
        if buf.is_null() {
            return None;
        }
        std::ptr::copy_nonoverlapping(asc.as_ptr(), buf, asc.len());
        (*p).extradata = buf;
        (*p).extradata_size = asc.len() as i32;
    }
    Some(AudioConfig {
        parameters,
        specific_config: asc.to_vec(),
        sample_rate: rate,
        channels,
    })
}
