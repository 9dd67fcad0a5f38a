//! A GPU encoder with a software fallback: when the primary encoder reports
//! [`EncodeError::DeviceLost`], it is dropped (releasing what it still holds), the software
//! encoder is built, given the current bitrate and AU cap, and the same frame is encoded again
//! — its first AU is an IDR, so the client recovers without a new session. Any other error is
//! returned as is.
//!
//! Dmabufs ([`Encoder::encode_dmabuf`]) go to the primary while it takes them; a device loss
//! there switches the same way but returns the error, since the software encoder reads CPU
//! frames only: the caller converts that picture and gives it to [`Encoder::encode`] (and
//! [`Encoder::takes_dmabuf`] is false from then on).
//!
//! The switch is not logged here (no logger in this crate): [`Encoder::fell_back`] says why,
//! for the caller's log and status page. Counters are carried over: [`Encoder::stats`] is the sum of both encoders' counters.

use strahl_capture::Frame;

use crate::{DmabufFrame, EncodeError, EncodedInfo, Encoder, EncoderStats};

type Factory = Box<dyn FnOnce() -> Result<Box<dyn Encoder + Send>, EncodeError> + Send>;

pub struct FallbackEncoder {
    current: Box<dyn Encoder + Send>,
    software: Option<Factory>,
    bitrate: Option<u32>,
    cap: Option<usize>,
    carried: EncoderStats,
    fell_back: Option<String>,
}

impl FallbackEncoder {
    /// `software` builds the fallback (e.g. OpenH264 at the session's geometry).
    pub fn new(
        primary: Box<dyn Encoder + Send>,
        software: impl FnOnce() -> Result<Box<dyn Encoder + Send>, EncodeError> + Send + 'static,
    ) -> Self {
        Self {
            current: primary,
            software: Some(Box::new(software)),
            bitrate: None,
            cap: None,
            carried: EncoderStats::default(),
            fell_back: None,
        }
    }

    fn switch(&mut self, why: &EncodeError) -> Result<(), EncodeError> {
        let Some(make) = self.software.take() else {
            return Err(EncodeError::Backend(format!(
                "{why}; the software fallback failed before"
            )));
        };
        let mut soft = make()?;
        if let Some(bps) = self.bitrate {
            soft.set_bitrate(bps)?;
        }
        soft.set_max_access_unit_bytes(self.cap);
        soft.request_idr();
        let old = std::mem::replace(&mut self.current, soft);
        add(&mut self.carried, &old.stats());
        let reason = format!("{} → {}: {why}", old.name(), self.current.name());
        drop(old);
        self.fell_back = Some(reason);
        Ok(())
    }
}

fn add(a: &mut EncoderStats, b: &EncoderStats) {
    a.frames += b.frames;
    a.idr_frames += b.idr_frames;
    a.bytes += b.bytes;
    a.over_cap += b.over_cap;
    a.capped_ok += b.capped_ok;
    a.capped_dropped += b.capped_dropped;
}

impl Encoder for FallbackEncoder {
    fn name(&self) -> &'static str {
        self.current.name()
    }

    fn encode(&mut self, frame: &Frame, out: &mut Vec<u8>) -> Result<EncodedInfo, EncodeError> {
        match self.current.encode(frame, out) {
            Err(e @ EncodeError::DeviceLost(_)) => {
                self.switch(&e)?;
                self.current.encode(frame, out)
            }
            r => r,
        }
    }

    fn request_idr(&mut self) {
        self.current.request_idr();
    }

    fn invalidate_frames(&mut self, first: u32, last: u32) {
        self.current.invalidate_frames(first, last);
    }

    fn set_bitrate(&mut self, bps: u32) -> Result<(), EncodeError> {
        let r = match self.current.set_bitrate(bps) {
            Err(e @ EncodeError::DeviceLost(_)) => {
                self.switch(&e)?;
                self.current.set_bitrate(bps)
            }
            r => r,
        };
        if r.is_ok() {
            self.bitrate = Some(bps);
        }
        r
    }

    fn set_max_access_unit_bytes(&mut self, cap: Option<usize>) {
        self.cap = cap;
        self.current.set_max_access_unit_bytes(cap);
    }

    fn fell_back(&self) -> Option<&str> {
        self.fell_back.as_deref()
    }

    fn takes_dmabuf(&self) -> bool {
        self.current.takes_dmabuf()
    }

    fn encode_dmabuf(
        &mut self,
        frame: &DmabufFrame<'_>,
        out: &mut Vec<u8>,
    ) -> Result<EncodedInfo, EncodeError> {
        let r = self.current.encode_dmabuf(frame, out);
        if let Err(e @ EncodeError::DeviceLost(_)) = &r {
            // The picture is not encoded: the caller hands it over as a CPU frame.
            self.switch(e)?;
        }
        r
    }

    fn stats(&self) -> EncoderStats {
        let mut s = self.carried;
        add(&mut s, &self.current.stats());
        s
    }
}
