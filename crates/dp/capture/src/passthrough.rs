//! Passthrough source: replays a pre-encoded stream — Annex-B H.264 or HEVC, or low-overhead
//! AV1 OBUs — one access unit (AV1: temporal unit) per call, looping forever. Used to drive the
//! packetizers and a real Moonlight client without an encoder in the loop.
//!
//! The whole file is read once (bounded by [`MAX_STREAM_BYTES`]), its codec recognised from its
//! first bytes, its [`StreamFormat`] read (SPS / sequence header, HDR metadata) and split into AU
//! ranges at open time; `next_au` then hands out borrowed slices (no copy, no allocation).
//! Key AUs are where a decoder can start (H.264 IDR, HEVC IRAP, AV1 shown key frame); each is
//! made to begin with the codec's parameter sets at open time — SPS+PPS, VPS+SPS+PPS, or the
//! sequence header after the temporal delimiter — copied from earlier in the stream when the
//! encoder wrote them only once, because Moonlight recognises an IDR by them (§A14); and the
//! encoders' `user_data_unregistered` SEI banners (x265 repeats 2 KB of options at every key
//! frame) are dropped, because the client must find the IDR slice in the first shard. Playback
//! starts at the first key AU and every loop restarts there, so the decoder always (re)starts
//! on one.

use std::ops::Range;
use std::path::Path;

use crate::CaptureError;
use crate::annexb::{self, nal_type, nal_units};
use crate::format::{CodecKind, StreamFormat};
use crate::{av1, hevc};

/// Refuse larger files: the stream is held in memory (256 MiB ≈ 35 min at 1 Mbit/s, or ~20 s
/// of 100 Mbit/s video — plenty for a test loop).
pub const MAX_STREAM_BYTES: u64 = 256 << 20;

/// One access unit handed out by [`PassthroughSource::next_au`].
#[derive(Clone, Copy, Debug)]
pub struct AccessUnit<'a> {
    /// Annex-B bytes of the AU (start codes included).
    pub data: &'a [u8],
    /// Index of the AU in the file.
    pub index: usize,
    /// Whether it is a key AU (starting with the codec's parameter sets).
    pub idr: bool,
    /// Monotonic count of AUs handed out (frame number).
    pub sequence: u64,
}

/// Replays an Annex-B file.
#[derive(Debug)]
pub struct PassthroughSource {
    format: StreamFormat,
    data: Vec<u8>,
    aus: Vec<Range<usize>>,
    idr: Vec<bool>,
    first_idr: usize,
    next: usize,
    sequence: u64,
}

impl PassthroughSource {
    /// Reads and indexes `path`.
    pub fn open(path: &Path) -> Result<Self, CaptureError> {
        let len = std::fs::metadata(path).map_err(CaptureError::Io)?.len();
        if len > MAX_STREAM_BYTES {
            return Err(CaptureError::BadStream(format!(
                "{}: {len} bytes exceeds {MAX_STREAM_BYTES}",
                path.display()
            )));
        }
        Self::from_bytes(std::fs::read(path).map_err(CaptureError::Io)?)
    }

    /// Indexes an in-memory stream (see the module contract).
    pub fn from_bytes(data: Vec<u8>) -> Result<Self, CaptureError> {
        let codec = detect_codec(&data);
        let format = match codec {
            CodecKind::H264 => h264_format(&data),
            CodecKind::Hevc => hevc::probe(&data),
            CodecKind::Av1 => av1::probe(&data),
        }
        .ok_or_else(|| {
            CaptureError::BadStream(format!(
                "{} stream without a readable {}",
                codec.name(),
                if codec == CodecKind::Av1 {
                    "sequence header"
                } else {
                    "SPS"
                }
            ))
        })?;
        let (data, aus, idr) = with_parameter_sets_at_keys(codec, data);
        let first_idr = idr.iter().position(|&b| b).ok_or_else(|| {
            CaptureError::BadStream(format!(
                "{} access units, none is a key frame a decoder can start on",
                aus.len()
            ))
        })?;
        Ok(Self {
            format,
            data,
            aus,
            idr,
            first_idr,
            next: first_idr,
            sequence: 0,
        })
    }

    /// What the stream is (codec, profile, bit depth, chroma, size, HDR metadata).
    pub fn format(&self) -> &StreamFormat {
        &self.format
    }

    /// Number of AUs in the file.
    pub fn len(&self) -> usize {
        self.aus.len()
    }

    /// Always false (construction fails on a stream without AUs); for clippy's `len` rule.
    pub fn is_empty(&self) -> bool {
        self.aus.is_empty()
    }

    /// The next AU, wrapping to the first IDR at the end of the file.
    pub fn next_au(&mut self) -> AccessUnit<'_> {
        if self.next >= self.aus.len() {
            self.next = self.first_idr;
        }
        let index = self.next;
        self.next += 1;
        let sequence = self.sequence;
        self.sequence += 1;
        AccessUnit {
            data: &self.data[self.aus[index].clone()],
            index,
            idr: self.idr[index],
            sequence,
        }
    }

    /// Makes the next `next_au` return an IDR: the next one in file order (wrapping).
    pub fn seek_to_next_idr(&mut self) {
        let n = self.aus.len();
        let from = if self.next >= n {
            self.first_idr
        } else {
            self.next
        };
        let found = (0..n).map(|k| (from + k) % n).find(|&i| self.idr[i]);
        self.next = found.unwrap_or(self.first_idr);
    }
}

/// The codec of a stream from its first bytes: AV1 opens with a temporal delimiter OBU; an
/// Annex-B stream whose first NAL header reads as an HEVC parameter set, AUD or SEI (second
/// header byte with a non-zero temporal id) is HEVC, anything else H.264.
pub fn detect_codec(data: &[u8]) -> CodecKind {
    if av1::looks_like_av1(data) {
        return CodecKind::Av1;
    }
    match nal_units(data).next() {
        Some(n)
            if n.bytes.len() >= 2
                && n.bytes[1] & 0x07 != 0
                && matches!(hevc::kind(n.bytes), 32..=35 | 39) =>
        {
            CodecKind::Hevc
        }
        _ => CodecKind::H264,
    }
}

fn h264_format(data: &[u8]) -> Option<StreamFormat> {
    let sps = nal_units(data).find(|n| n.kind() == nal_type::SPS)?;
    annexb::sps_format(sps.bytes)
}

/// An SEI NAL whose first message is `user_data_unregistered` (payload type 5): an encoder's
/// free-form banner, nothing a decoder needs.
fn is_user_data_sei(codec: CodecKind, nal: &[u8]) -> bool {
    let (is_sei, header) = match codec {
        CodecKind::H264 => (nal.first().is_some_and(|b| b & 0x1f == nal_type::SEI), 1),
        _ => (hevc::kind(nal) == hevc::nal_type::PREFIX_SEI, 2),
    };
    is_sei && nal.get(header) == Some(&5)
}

/// AU ranges and key flags of `data`, rebuilt so every key AU starts with parameter sets and
/// carries no encoder banner SEI (see the module contract).
fn with_parameter_sets_at_keys(
    codec: CodecKind,
    data: Vec<u8>,
) -> (Vec<u8>, Vec<Range<usize>>, Vec<bool>) {
    let aus = match codec {
        CodecKind::H264 => annexb::access_unit_ranges(&data),
        CodecKind::Hevc => hevc::access_unit_ranges(&data),
        CodecKind::Av1 => av1::temporal_unit_ranges(&data),
    };
    let mut out = Vec::with_capacity(data.len() + data.len() / 16);
    let mut ranges = Vec::with_capacity(aus.len());
    let mut keys = Vec::with_capacity(aus.len());
    // The latest parameter sets seen, each with a 4-byte start code (AV1: the whole OBU).
    let mut params: Vec<Vec<u8>> = Vec::new();
    let mut seq = None;
    for r in aus {
        let au = &data[r];
        let start = out.len();
        let key = match codec {
            CodecKind::Av1 => {
                if let Some(sh) = av1::sequence_header_obu(au) {
                    seq = av1::parse_sequence_header(
                        av1::obus(&au[sh.clone()])
                            .next()
                            .map_or(&[][..], |o| o.payload),
                    );
                    params = vec![au[sh].to_vec()];
                }
                let key = av1::is_key_unit_with(au, seq);
                if key && av1::sequence_header_obu(au).is_none() && !params.is_empty() {
                    // After the temporal delimiter, which must stay first.
                    let td = av1::obus(au)
                        .next()
                        .filter(|o| o.kind == av1::obu_type::TEMPORAL_DELIMITER)
                        .map_or(0, |o| o.end);
                    out.extend_from_slice(&au[..td]);
                    out.extend_from_slice(&params[0]);
                    out.extend_from_slice(&au[td..]);
                } else {
                    out.extend_from_slice(au);
                }
                key
            }
            CodecKind::H264 | CodecKind::Hevc => {
                let is_param = |b: &[u8]| match codec {
                    CodecKind::H264 => matches!(b[0] & 0x1f, nal_type::SPS | nal_type::PPS),
                    _ => matches!(
                        hevc::kind(b),
                        hevc::nal_type::VPS | hevc::nal_type::SPS | hevc::nal_type::PPS
                    ),
                };
                let (key, starts_right) = match codec {
                    CodecKind::H264 => (
                        nal_units(au).any(|n| n.kind() == nal_type::IDR),
                        annexb::is_idr_au(au),
                    ),
                    _ => (hevc::has_irap(au), hevc::starts_with_vps(au)),
                };
                let own: Vec<Vec<u8>> = nal_units(au)
                    .filter(|n| !n.bytes.is_empty() && is_param(n.bytes))
                    .map(|n| [&[0, 0, 0, 1][..], n.bytes].concat())
                    .collect();
                if !own.is_empty() {
                    params = own;
                }
                if key && !starts_right && !params.is_empty() {
                    for p in &params {
                        out.extend_from_slice(p);
                    }
                    // The AU's own parameter sets stay where they were: repeats are harmless.
                }
                if nal_units(au).any(|n| is_user_data_sei(codec, n.bytes)) {
                    // Encoder banners (x264/x265 write kilobytes of options) would push the
                    // IDR slice out of the first shard, where the client looks for it (§A14).
                    for n in nal_units(au).filter(|n| !is_user_data_sei(codec, n.bytes)) {
                        out.extend_from_slice(&[0, 0, 0, 1]);
                        out.extend_from_slice(n.bytes);
                    }
                } else {
                    out.extend_from_slice(au);
                }
                key && (starts_right || !params.is_empty())
            }
        };
        ranges.push(start..out.len());
        keys.push(key);
    }
    (out, ranges, keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nal(kind: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![0, 0, 0, 1, 0x60 | kind];
        v.extend_from_slice(payload);
        v
    }

    fn stream() -> Vec<u8> {
        let mut s = Vec::new();
        s.extend(nal(1, &[0x88])); // leading P slice without an IDR: skipped
        for _ in 0..2 {
            s.extend(crate::annexb::tests::sps_320x240());
            s.extend(nal(8, &[0xce]));
            s.extend(nal(5, &[0x88]));
            s.extend(nal(1, &[0x9a]));
            s.extend(nal(1, &[0x9a]));
        }
        s
    }

    #[test]
    fn loops_from_first_idr_and_seeks() {
        let mut p = PassthroughSource::from_bytes(stream()).unwrap();
        assert_eq!(p.len(), 7);
        let mut seq = Vec::new();
        for _ in 0..8 {
            let a = p.next_au();
            seq.push((a.index, a.idr));
        }
        assert_eq!(
            seq,
            [
                (1, true),
                (2, false),
                (3, false),
                (4, true),
                (5, false),
                (6, false),
                (1, true),
                (2, false)
            ]
        );
        p.seek_to_next_idr();
        assert_eq!(p.next_au().index, 4);
        p.seek_to_next_idr();
        assert_eq!(p.next_au().index, 1);
    }

    fn hevc_nal(k: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![0, 0, 0, 1, k << 1, 1];
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn h264_format_is_read() {
        let p = PassthroughSource::from_bytes(stream()).unwrap();
        assert_eq!(p.format().codec, CodecKind::H264);
        assert_eq!((p.format().width, p.format().height), (320, 240));
    }

    /// An HEVC stream whose encoder wrote VPS/SPS/PPS once: the second IRAP gets them copied in
    /// front, so both key AUs start with a VPS.
    #[test]
    fn hevc_parameter_sets_are_repeated_at_every_irap() {
        // SPS bits: vps id 0, no sub-layers, nesting 1; PTL with profile Main10 (2), the other
        // 88 bits zero; sps id 0, chroma 4:2:0, 320x240, no window, 10-bit luma and chroma.
        let mut sps_bits = String::from("00000001");
        sps_bits.push_str("00000010");
        sps_bits.push_str(&"0".repeat(88));
        sps_bits.push_str("1010");
        sps_bits.push_str(&format!("{:017b}", 321)); // ue(320): 8 zeros + 9-bit 321
        sps_bits.push_str(&format!("{:015b}", 241)); // ue(240): 7 zeros + 8-bit 241
        sps_bits.push('0'); // no conformance window
        sps_bits.push_str("011011"); // bit depths 10 (ue 2) and 10
        while sps_bits.len() % 8 != 0 {
            sps_bits.push('1');
        }
        let sps: Vec<u8> = sps_bits
            .as_bytes()
            .chunks(8)
            .map(|c| u8::from_str_radix(std::str::from_utf8(c).unwrap(), 2).unwrap())
            .collect();
        let mut s = Vec::new();
        s.extend(hevc_nal(hevc::nal_type::VPS, &[0x0c]));
        s.extend(hevc_nal(hevc::nal_type::SPS, &sps));
        s.extend(hevc_nal(hevc::nal_type::PPS, &[0xc1]));
        // An encoder banner (user data, payload type 5) and a content light level SEI (144).
        s.extend(hevc_nal(
            hevc::nal_type::PREFIX_SEI,
            &[5, 2, 0xaa, 0xbb, 0x80],
        ));
        s.extend(hevc_nal(
            hevc::nal_type::PREFIX_SEI,
            &[144, 4, 3, 0xe8, 1, 0x90, 0x80],
        ));
        s.extend(hevc_nal(19, &[0x80, 0x11]));
        s.extend(hevc_nal(1, &[0x80, 0x22]));
        s.extend(hevc_nal(21, &[0x80, 0x33])); // CRA without parameter sets
        s.extend(hevc_nal(1, &[0x80, 0x44]));
        assert_eq!(detect_codec(&s), CodecKind::Hevc);
        let mut p = PassthroughSource::from_bytes(s).unwrap();
        let f = *p.format();
        assert_eq!(
            (f.codec, f.profile, f.bit_depth, f.width, f.height),
            (CodecKind::Hevc, 2, 10, 320, 240)
        );
        let au0: Vec<(u8, u8)> = nal_units(p.next_au().data)
            .map(|n| (hevc::kind(n.bytes), n.bytes[2]))
            .collect();
        assert_eq!(
            au0,
            [(32, 0x0c), (33, sps[0]), (34, 0xc1), (39, 144), (19, 0x80)],
            "the banner SEI is gone, the rest kept in order"
        );
        p.seek_to_next_idr();
        p.seek_to_next_idr();
        let keys: Vec<(bool, bool)> = (0..4)
            .map(|_| {
                let a = p.next_au();
                (a.idr, hevc::starts_with_vps(a.data))
            })
            .collect();
        assert_eq!(
            keys,
            [(true, true), (false, false), (true, true), (false, false)]
        );
    }

    #[test]
    fn rejects_stream_without_idr() {
        assert!(matches!(
            PassthroughSource::from_bytes(nal(1, &[0x88])),
            Err(CaptureError::BadStream(_))
        ));
        let mut no_idr = crate::annexb::tests::sps_320x240();
        no_idr.extend(nal(1, &[0x88]));
        assert!(matches!(
            PassthroughSource::from_bytes(no_idr),
            Err(CaptureError::BadStream(_))
        ));
        assert!(PassthroughSource::from_bytes(Vec::new()).is_err());
        let missing = PassthroughSource::open(Path::new("/nonexistent/strahl.h264"));
        assert!(matches!(missing, Err(CaptureError::Io(_))));
    }
}
