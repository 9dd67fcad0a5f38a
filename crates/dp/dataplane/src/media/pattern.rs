//! The pattern source: checkable frames (`strahl_packetize::native::check`) of a chosen size at
//! the session's frame rate, in place of capture + encode — issue 10 item 5, "passthrough at any
//! rate": the network path can be offered 1–20 Gbit/s without an encoder that makes it.
//!
//! Contract:
//! - A native session whose client chose the passthrough codec (`strahl/1` codec bit 8; IPC
//!   `StreamOptions::CHECKABLE`) gets it; GameStream and native H.264 sessions keep the
//!   configured source. The frame size follows the session's bitrate:
//!   `bitrate / 8 / fps` bytes (at least [`CHECK_HEADER_LEN`]), so a client asks for a rate
//!   the way it asks an encoder for one, and a bitrate change mid-stream changes the size from
//!   the next frame.
//! - Frame `n` (from 0, +1 per frame made) is `fill_checkable(n, ..)`: with no unit refused,
//!   its sequence number equals the `strahl/1` frame id, so a receiver checks both order and
//!   every byte (`verify_checkable`).
//! - Every checkable frame is decodable on its own, but only the first and those after a
//!   keyframe request carry the keyframe flag — a receiver sees its request answered the way
//!   an encoder would answer it.
//! - It runs as the [`Encoder`] of the session's video tile ([`super::video`]): the same frame
//!   clock, slot skipping and AU cap as any encoder; it writes the slot's buffer in place (the
//!   buffer grows once to the frame size, then never again).

use strahl_capture::Frame;
use strahl_encode::{EncodeError, EncodedInfo, Encoder, EncoderStats};
use strahl_packetize::native::check::{CHECK_HEADER_LEN, fill_checkable};

/// Bytes of one checkable frame at `bitrate_kbps` and `fps`.
pub fn frame_bytes(bitrate_kbps: u32, fps: u16) -> usize {
    let bytes = u64::from(bitrate_kbps) * 1000 / 8 / u64::from(fps.max(1));
    usize::try_from(bytes)
        .unwrap_or(usize::MAX)
        .max(CHECK_HEADER_LEN)
}

/// The checkable-frame "encoder" (see the module contract).
#[derive(Debug)]
pub struct PatternEncoder {
    fps: u16,
    bytes: usize,
    seq: u64,
    want_key: bool,
    cap: Option<usize>,
    stats: EncoderStats,
}

impl PatternEncoder {
    pub fn new(bitrate_kbps: u32, fps: u16) -> Self {
        Self {
            fps,
            bytes: frame_bytes(bitrate_kbps, fps),
            seq: 0,
            want_key: true,
            cap: None,
            stats: EncoderStats::default(),
        }
    }

    /// The same source continuing at sequence number `seq` (a new epoch re-makes the pattern at
    /// another rate: the sequence still follows the `strahl/1` frame ids).
    pub fn continuing_at(mut self, seq: u64) -> Self {
        self.seq = seq;
        self
    }

    /// Bytes of the next frame.
    pub fn frame_bytes(&self) -> usize {
        self.bytes
    }
}

impl Encoder for PatternEncoder {
    fn name(&self) -> &'static str {
        "pattern"
    }

    fn encode(&mut self, frame: &Frame, out: &mut Vec<u8>) -> Result<EncodedInfo, EncodeError> {
        let n = self.bytes;
        if let Some(cap) = self.cap
            && n > cap
        {
            self.stats.over_cap += 1;
            self.stats.capped_dropped += 1;
            return Err(EncodeError::AccessUnitTooLarge { len: n, cap });
        }
        // Every byte is written by `fill_checkable`: no clearing pass at these sizes.
        out.resize(n, 0);
        fill_checkable(self.seq, out).map_err(|e| EncodeError::Config(e.to_string()))?;
        self.seq += 1;
        let idr = std::mem::take(&mut self.want_key);
        self.stats.frames += 1;
        self.stats.idr_frames += u64::from(idr);
        self.stats.bytes += n as u64;
        Ok(EncodedInfo {
            idr,
            len: n,
            frame_number: frame.frame_number,
            pts_us: frame.pts_us,
            reencodes: 0,
        })
    }

    fn request_idr(&mut self) {
        self.want_key = true;
    }

    fn set_bitrate(&mut self, bps: u32) -> Result<(), EncodeError> {
        self.set_bitrate_kbps(bps / 1000)
    }

    /// The encode tile's path: kbit/s, so rates past 4.29 Gbit/s change the size too. A size
    /// over the AU cap is refused and the old one kept: the stream goes on at its old rate
    /// rather than every frame being dropped.
    fn set_bitrate_kbps(&mut self, kbps: u32) -> Result<(), EncodeError> {
        let n = frame_bytes(kbps, self.fps);
        if let Some(cap) = self.cap
            && n > cap
        {
            return Err(EncodeError::Config(format!(
                "{n} B frames exceed the {cap} B one frame carries; staying at {} B",
                self.bytes
            )));
        }
        self.bytes = n;
        Ok(())
    }

    fn set_max_access_unit_bytes(&mut self, cap: Option<usize>) {
        self.cap = cap;
    }

    fn stats(&self) -> EncoderStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strahl_capture::PixelFormat;
    use strahl_packetize::native::check::verify_checkable;

    #[test]
    fn frames_verify_in_sequence_at_the_asked_size_with_keyframes_on_request() {
        // 1 Gbit/s at 120 fps: 1_041_666 B a frame.
        let mut e = PatternEncoder::new(1_000_000, 120);
        assert_eq!(e.frame_bytes(), 1_041_666);
        let f = Frame::new(16, 16, PixelFormat::I420).unwrap();
        let mut out = Vec::new();
        let mut keys = Vec::new();
        for n in 0..5u64 {
            if n == 3 {
                e.request_idr();
            }
            let info = e.encode(&f, &mut out).unwrap();
            assert_eq!(info.len, 1_041_666);
            assert_eq!(verify_checkable(&out[..info.len]), Ok(n));
            keys.push(info.idr);
        }
        assert_eq!(keys, [true, false, false, true, false]);
        // A bitrate change sizes the next frame; the sequence runs on.
        e.set_bitrate(24_000_000).unwrap();
        let info = e.encode(&f, &mut out).unwrap();
        assert_eq!((info.len, verify_checkable(&out)), (25_000, Ok(5)));
        // Past what a u32 of bit/s holds: 6 Gbit/s at 120 fps is 6.25 MB a frame.
        e.set_bitrate_kbps(6_000_000).unwrap();
        assert_eq!(e.frame_bytes(), 6_250_000);
        e.set_bitrate(24_000_000).unwrap();
        // A rate whose frames exceed the cap is refused; the size stays.
        e.set_max_access_unit_bytes(Some(1_000_000));
        assert!(e.set_bitrate_kbps(6_000_000).is_err());
        assert_eq!(e.frame_bytes(), 25_000);
        // Over the AU cap: refused, nothing consumed.
        e.set_max_access_unit_bytes(Some(1000));
        assert!(matches!(
            e.encode(&f, &mut out),
            Err(EncodeError::AccessUnitTooLarge {
                len: 25_000,
                cap: 1000
            })
        ));
        e.set_max_access_unit_bytes(None);
        let n = e.encode(&f, &mut out).unwrap().len;
        assert_eq!(verify_checkable(&out[..n]), Ok(6));
        assert_eq!(frame_bytes(1, 1000), CHECK_HEADER_LEN);
    }
}
