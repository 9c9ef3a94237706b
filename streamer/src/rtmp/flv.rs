//! FLV video tag bodies for H.264, as RTMP carries them.
//!
//! libx264 emits Annex B (start-code delimited NAL units) and, with a global header, Annex B
//! SPS/PPS in extradata. RTMP wants AVCC: an `AVCDecoderConfigurationRecord` as the sequence
//! header, then each frame's NAL units with 4-byte big-endian lengths, each behind the FLV
//! VIDEODATA header: `frame type << 4 | codec 7`, `AVCPacketType`, and a 24-bit composition time.

/// FLV codec id of H.264.
const AVC: u8 = 7;

/// The NAL units of an Annex B buffer, without their start codes.
pub fn annexb_nals(data: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 2 < data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    starts
        .iter()
        .enumerate()
        .map(|(k, &s)| {
            let mut end = starts.get(k + 1).map_or(data.len(), |&n| n - 3);
            // A 4-byte start code leaves one more zero before the next unit.
            while end > s && data[end - 1] == 0 && k + 1 < starts.len() {
                end -= 1;
            }
            &data[s..end]
        })
        .filter(|n| !n.is_empty())
        .collect()
}

/// Builds the `AVCDecoderConfigurationRecord` from encoder extradata (Annex B SPS and PPS, or
/// a record already, which is returned as is). `None` when there is no SPS or PPS.
pub fn avc_decoder_config(extradata: &[u8]) -> Option<Vec<u8>> {
    if extradata.first() == Some(&1) {
        return Some(extradata.to_vec());
    }
    let nals = annexb_nals(extradata);
    let sps: Vec<&[u8]> = nals.iter().copied().filter(|n| n[0] & 0x1f == 7).collect();
    let pps: Vec<&[u8]> = nals.iter().copied().filter(|n| n[0] & 0x1f == 8).collect();
    let first = sps.first().filter(|s| s.len() >= 4)?;
    if pps.is_empty() {
        return None;
    }
    let mut out = vec![
        1,
        first[1],
        first[2],
        first[3],
        0xff,
        0xe0 | sps.len() as u8,
    ];
    for s in &sps {
        out.extend_from_slice(&(s.len() as u16).to_be_bytes());
        out.extend_from_slice(s);
    }
    out.push(pps.len() as u8);
    for p in &pps {
        out.extend_from_slice(&(p.len() as u16).to_be_bytes());
        out.extend_from_slice(p);
    }
    Some(out)
}

/// The FLV VIDEODATA body of the AVC sequence header.
pub fn sequence_header_tag(record: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(record.len() + 5);
    out.extend_from_slice(&[(1 << 4) | AVC, 0, 0, 0, 0]);
    out.extend_from_slice(record);
    out
}

/// The FLV AUDIODATA byte that opens every AAC tag: AAC (10), and the fixed fields FLV
/// requires for it (44 kHz, 16-bit, stereo); the real rate and channels are in the
/// `AudioSpecificConfig`.
const AAC_TAG: u8 = (10 << 4) | (3 << 2) | (1 << 1) | 1;

/// The FLV AUDIODATA body of the AAC sequence header: its `AudioSpecificConfig`.
pub fn aac_header_tag(specific_config: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(specific_config.len() + 2);
    out.extend_from_slice(&[AAC_TAG, 0]);
    out.extend_from_slice(specific_config);
    out
}

/// The FLV AUDIODATA body of one raw AAC frame, into `out`.
pub fn aac_frame_tag(data: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&[AAC_TAG, 1]);
    out.extend_from_slice(data);
}

/// The FLV VIDEODATA body of one encoded frame: Annex B `data` rewritten as AVCC into `out`.
/// Parameter sets (SPS/PPS) and access unit delimiters are left out: the sequence header
/// carries them.
pub fn frame_tag(key: bool, composition_ms: i32, data: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let frame_type = if key { 1 } else { 2 };
    let cts = composition_ms.to_be_bytes();
    out.extend_from_slice(&[(frame_type << 4) | AVC, 1, cts[1], cts[2], cts[3]]);
    for nal in annexb_nals(data) {
        if matches!(nal[0] & 0x1f, 7..=9) {
            continue;
        }
        out.extend_from_slice(&(nal.len() as u32).to_be_bytes());
        out.extend_from_slice(nal);
    }
}

/// The parameter sets (SPS, then PPS) of an `AVCDecoderConfigurationRecord`, each as AVCC (a
/// 4-byte length, then the NAL unit): to put in-band at the start of a keyframe. Empty for a
/// malformed record.
pub fn record_parameter_sets(record: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut at = 5;
    let mut sets = |count: usize, at: &mut usize| -> Option<()> {
        for _ in 0..count {
            let len = usize::from(u16::from_be_bytes([
                *record.get(*at)?,
                *record.get(*at + 1)?,
            ]));
            let nal = record.get(*at + 2..*at + 2 + len)?;
            out.extend_from_slice(&(len as u32).to_be_bytes());
            out.extend_from_slice(nal);
            *at += 2 + len;
        }
        Some(())
    };
    let ok = record.get(at).map(|n| usize::from(n & 0x1f)).and_then(|n| {
        at += 1;
        sets(n, &mut at)?;
        let pps = usize::from(*record.get(at)?);
        at += 1;
        sets(pps, &mut at)
    });
    if ok.is_none() {
        out.clear();
    }
    out
}

/// What a player needs to know of a received VIDEODATA body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoTag {
    pub key: bool,
    /// An AVC sequence header rather than a frame.
    pub sequence_header: bool,
    /// Composition time offset, ms (pts − dts).
    pub composition_ms: i32,
}

/// Parses the VIDEODATA header; `None` for anything that is not H.264.
pub fn parse_video_tag(body: &[u8]) -> Option<VideoTag> {
    if body.len() < 5 || body[0] & 0x0f != AVC {
        return None;
    }
    let cts = i32::from_be_bytes([
        if body[2] & 0x80 != 0 { 0xff } else { 0 },
        body[2],
        body[3],
        body[4],
    ]);
    Some(VideoTag {
        key: body[0] >> 4 == 1,
        sequence_header: body[1] == 0,
        composition_ms: cts,
    })
}

/// Milliseconds of frame `n` at `fps`, rounded (the inverse of [`frame_of_ms`]).
pub fn ms_of_frame(n: i64, fps: u32) -> i64 {
    let fps = i64::from(fps);
    (n * 1000 + fps / 2).div_euclid(fps)
}

/// The frame whose presentation time is `ms` at `fps`.
pub fn frame_of_ms(ms: i64, fps: u32) -> i64 {
    (ms * i64::from(fps) + 500).div_euclid(1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPS: &[u8] = &[0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9];
    const PPS: &[u8] = &[0x68, 0xeb, 0xe3, 0xcb];

    fn annexb(nals: &[&[u8]]) -> Vec<u8> {
        let mut v = Vec::new();
        for (i, n) in nals.iter().enumerate() {
            v.extend_from_slice(if i % 2 == 0 {
                &[0, 0, 0, 1]
            } else {
                &[0, 0, 1]
            });
            v.extend_from_slice(n);
        }
        v
    }

    #[test]
    fn splits_three_and_four_byte_start_codes() {
        let idr: &[u8] = &[0x65, 0x88, 0x00, 0x10];
        let data = annexb(&[SPS, PPS, idr]);
        assert_eq!(annexb_nals(&data), vec![SPS, PPS, idr]);
    }

    #[test]
    fn decoder_config_record_carries_profile_and_parameter_sets() {
        let rec = avc_decoder_config(&annexb(&[SPS, PPS])).unwrap();
        assert_eq!(&rec[..6], &[1, 0x64, 0x00, 0x1f, 0xff, 0xe1]);
        assert_eq!(&rec[6..8], &[0, SPS.len() as u8]);
        assert_eq!(rec[8 + SPS.len()], 1);
        assert_eq!(avc_decoder_config(&rec).unwrap(), rec);
        assert!(avc_decoder_config(&annexb(&[SPS])).is_none());
    }

    #[test]
    fn frame_tags_round_trip_their_header() {
        let mut out = Vec::new();
        frame_tag(true, -33, &annexb(&[SPS, &[0x65, 1, 2]]), &mut out);
        assert_eq!(&out[5..], &[0, 0, 0, 3, 0x65, 1, 2]);
        let tag = parse_video_tag(&out).unwrap();
        assert_eq!(
            tag,
            VideoTag {
                key: true,
                sequence_header: false,
                composition_ms: -33
            }
        );
        let record = avc_decoder_config(&[0, 0, 0, 1, 0x67, 1, 2, 3, 0, 0, 1, 0x68, 9]).unwrap();
        assert_eq!(
            record_parameter_sets(&record),
            [0, 0, 0, 4, 0x67, 1, 2, 3, 0, 0, 0, 2, 0x68, 9]
        );
        assert!(record_parameter_sets(&record[..8]).is_empty());
        let seq = parse_video_tag(&sequence_header_tag(&[1, 2])).unwrap();
        assert!(seq.key && seq.sequence_header);
    }

    #[test]
    fn frame_times_invert() {
        for fps in [24, 25, 30, 60] {
            for n in 0..1000 {
                assert_eq!(
                    frame_of_ms(ms_of_frame(n, fps), fps),
                    n,
                    "fps {fps} frame {n}"
                );
            }
        }
    }
}
