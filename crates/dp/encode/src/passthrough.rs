//! Passthrough "encoder": ignores the pixels and hands out the next AU of a pre-encoded
//! H.264/HEVC/AV1 file ([`strahl_capture::passthrough::PassthroughSource`]). Lets the whole
//! send path and a real Moonlight client run without an encoder in the loop; it makes exactly
//! its clip's format ([`capability`]).
//!
//! It cannot change bitrate or re-encode: an AU over the cap is refused (typed error, counted)
//! and the stream skips to the next IDR.

use strahl_capture::Frame;
use strahl_capture::passthrough::PassthroughSource;

use crate::{Capability, EncodeError, EncodedInfo, Encoder, EncoderStats, OutputFormat};

/// What a passthrough of `source` produces: exactly its clip's format (named `clip` in logs).
pub fn capability(source: &PassthroughSource, clip: &str) -> Capability {
    let f = source.format();
    Capability {
        encoder: format!("passthrough: {clip}"),
        formats: vec![OutputFormat {
            codec: f.codec,
            profile: f.profile,
            bit_depth: f.bit_depth,
            chroma: f.chroma,
        }],
        mastering: f.mastering,
    }
}

#[derive(Debug)]
pub struct PassthroughEncoder {
    source: PassthroughSource,
    cap: Option<usize>,
    want_idr: bool,
    stats: EncoderStats,
}

impl PassthroughEncoder {
    pub fn new(source: PassthroughSource) -> Self {
        Self {
            source,
            cap: None,
            want_idr: false,
            stats: EncoderStats::default(),
        }
    }
}

impl Encoder for PassthroughEncoder {
    fn name(&self) -> &'static str {
        "passthrough"
    }

    fn encode(&mut self, frame: &Frame, out: &mut Vec<u8>) -> Result<EncodedInfo, EncodeError> {
        if self.want_idr {
            self.source.seek_to_next_idr();
            self.want_idr = false;
        }
        let au = self.source.next_au();
        out.clear();
        out.extend_from_slice(au.data);
        let idr = au.idr;
        if let Some(cap) = self.cap
            && out.len() > cap
        {
            self.stats.over_cap += 1;
            self.stats.capped_dropped += 1;
            self.want_idr = true;
            return Err(EncodeError::AccessUnitTooLarge {
                len: out.len(),
                cap,
            });
        }
        self.stats.frames += 1;
        self.stats.idr_frames += u64::from(idr);
        self.stats.bytes += out.len() as u64;
        Ok(EncodedInfo {
            idr,
            len: out.len(),
            frame_number: frame.frame_number,
            pts_us: frame.pts_us,
            reencodes: 0,
        })
    }

    fn request_idr(&mut self) {
        self.want_idr = true;
    }

    fn set_bitrate(&mut self, _bps: u32) -> Result<(), EncodeError> {
        Err(EncodeError::Unsupported(
            "a pre-encoded stream has a fixed bitrate",
        ))
    }

    fn set_max_access_unit_bytes(&mut self, cap: Option<usize>) {
        self.cap = cap;
    }

    fn stats(&self) -> EncoderStats {
        self.stats
    }
}
