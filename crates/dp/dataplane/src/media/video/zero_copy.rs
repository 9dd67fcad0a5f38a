//! KMS capture into an encoder that imports dmabufs (NVENC): the session's pictures reach the
//! GPU without a CPU copy. Used by the encode tile ([`super::VideoProducer`]) when the source is
//! KMS and the session's encoder [`Encoder::takes_dmabuf`] at build time; otherwise the KMS
//! source is an ordinary [`strahl_capture::VideoSource`] (map + convert on the CPU, unchanged).
//!
//! Contract, per frame slot — two steps so the CPU copy stays outside the encode timing, as on
//! the CPU-only path:
//! - [`ZeroCopy::capture`] takes the newest picture *unmapped* and stamps the next dense frame
//!   number ([`KmsVideoSource::next_dmabuf`]). It decides the input:
//!   - [`Input::Dmabuf`] when the session is still zero-copy, the encoder still takes dmabufs
//!     and the picture is exactly the stream's size;
//!   - [`Input::Frame`] otherwise: the picture is mapped, converted (and scaled) into the CPU
//!     frame ([`KmsVideoSource::cpu_frame`]). That is the case before the first capture (dark
//!     grey), for a display whose size differs from the stream's (scaled in software: NVENC
//!     could scale on the GPU, but one scaler keeps the two paths' pictures identical; said by
//!     the capture's per-display-size log line), and once the session left zero-copy.
//! - [`ZeroCopy::encode`] hands an [`Input::Dmabuf`] frame to [`Encoder::encode_dmabuf`]
//!   (counted in `strahl_video_frames_zero_copy_total`). An import refused (any error but
//!   [`EncodeError::AccessUnitTooLarge`]: modifier, format, driver) or a GPU lost switches the
//!   session to the CPU copy *for good* — a refused layout would be refused again on every frame,
//!   and a lost GPU leaves the software encoder, which reads CPU frames only — with one log line
//!   saying why and `strahl_video_zero_copy_fallbacks_total` counted once. The same picture is
//!   then converted and encoded as a CPU frame under the *same* frame number, so numbers stay
//!   dense whichever path encodes a frame. A CPU path that cannot read the picture either (a
//!   tiled modifier) ends the session with that error.
//! - An encoder that stops taking dmabufs by itself (a GPU lost while encoding a CPU frame:
//!   [`strahl_encode::nvenc::fallback`] switched to software) is noticed at the next capture and
//!   counted/logged the same way.
//!
//! Steady state allocates nothing: one dmabuf fd is held at a time (the capture side closes the
//! previous one), [`DmabufFrame::from_kms`] dups and `fstat`s the fd (no heap), the import is
//! cached by buffer in the encoder; only the one-time switch formats a message.

use strahl_capture::kms_video::KmsVideoSource;
use strahl_capture::{CaptureError, Frame};
use strahl_encode::{DmabufFrame, EncodeError, EncodedInfo, Encoder};
use strahl_metrics::{Metric, Registry};

/// What [`ZeroCopy::capture`] prepared for the encoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input {
    /// The CPU frame holds the picture: [`Encoder::encode`].
    Frame,
    /// The held dmabuf goes to the GPU: [`ZeroCopy::encode`].
    Dmabuf,
}

/// A session's KMS source on the zero-copy path.
pub struct ZeroCopy {
    src: KmsVideoSource,
    id: u64,
    /// The stream's size (the encoder's): only a picture of exactly this size is imported.
    size: (u32, u32),
    /// The frame number and pts [`ZeroCopy::capture`] stamped last.
    stamp: (u32, u64),
    /// The session left zero-copy (said and counted once).
    off: bool,
}

impl ZeroCopy {
    pub fn new(src: KmsVideoSource, id: u64) -> Self {
        use strahl_capture::VideoSource;
        let size = src.dimensions();
        Self {
            src,
            id,
            size,
            stamp: (0, 0),
            off: false,
        }
    }

    /// Takes the newest picture, stamps the frame and decides its input (module header);
    /// `frame` is filled for [`Input::Frame`].
    pub fn capture(
        &mut self,
        enc: &dyn Encoder,
        frame: &mut Frame,
        metrics: &Registry,
    ) -> Result<Input, CaptureError> {
        if !self.off && !enc.takes_dmabuf() {
            let why = enc
                .fell_back()
                .unwrap_or("the encoder no longer imports dmabufs");
            self.switch(why, metrics);
        }
        let held = self.src.next_dmabuf()?;
        let (n, pts) = (held.frame_number, held.pts_us);
        let fits = held
            .picture
            .is_some_and(|(m, _)| (m.width, m.height) == self.size);
        self.stamp = (n, pts);
        if fits && !self.off {
            return Ok(Input::Dmabuf);
        }
        self.src.cpu_frame(frame, n, pts)?;
        Ok(Input::Frame)
    }

    /// Encodes the [`Input::Dmabuf`] frame [`ZeroCopy::capture`] stamped; an import refused or
    /// a GPU lost falls back to the CPU copy of the same picture (module header). The outer
    /// error is the capture's (the CPU path could not read the picture), the inner the
    /// encoder's.
    pub fn encode(
        &mut self,
        enc: &mut dyn Encoder,
        frame: &mut Frame,
        out: &mut Vec<u8>,
        metrics: &Registry,
    ) -> Result<Result<EncodedInfo, EncodeError>, CaptureError> {
        let (n, pts) = self.stamp;
        if let Some((meta, fd)) = self.src.source().held() {
            let r =
                DmabufFrame::from_kms(meta, fd, n, pts).and_then(|f| enc.encode_dmabuf(&f, out));
            match r {
                Ok(info) => {
                    metrics.inc(Metric::VideoFramesZeroCopy);
                    return Ok(Ok(info));
                }
                // Encoded, but over the FEC cap: the caller drops it (next AU an IDR).
                Err(e @ EncodeError::AccessUnitTooLarge { .. }) => return Ok(Err(e)),
                Err(e) => self.switch(&e.to_string(), metrics),
            }
        }
        self.src.cpu_frame(frame, n, pts)?;
        Ok(enc.encode(frame, out))
    }

    /// Leaves zero-copy for the rest of the session: one line, one count.
    fn switch(&mut self, why: &str, metrics: &Registry) {
        if self.off {
            return;
        }
        self.off = true;
        metrics.inc(Metric::VideoZeroCopyFallbacks);
        log::warn!(
            "session {}: video capture: zero-copy (dmabuf → NVENC) off from frame {}, CPU copy \
             (map + convert) for the rest of the session: {why}",
            self.id,
            self.stamp.0
        );
    }
}
