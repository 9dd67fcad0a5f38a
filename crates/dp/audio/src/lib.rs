//! `strahl-audio`: PCM in, Opus packets out, in the shape GameStream clients expect.
//!
//! Contract:
//! - [`layout::OpusParams`] holds the negotiated layout (channels/streams/coupled/mapping and
//!   bitrate) from gamestream-host.md §A17; the same values must go into the SDP
//!   `surround-params`, so they are public.
//! - [`encoder::OpusEncoder`] is a multistream Opus encoder (stereo is the 1-stream/1-coupled
//!   case) in RESTRICTED_LOWDELAY, **CBR**, 5 or 10 ms frames. CBR is a protocol requirement: the
//!   4 data + 2 parity payloads of an audio FEC block must be the same size. Packets are written
//!   into a caller-owned buffer; the steady state does not allocate.
//! - [`tone::ToneSource`] generates deterministic interleaved i16 sines (440 Hz left, 660 Hz
//!   right, other channels on their own frequencies) for tests and the synthetic session.
//! - [`pipewire`] captures the box's sound (the default sink's monitor) through `pw-record`,
//!   detected at run time, behind a [`jitter::JitterBuffer`] that turns PipeWire's bursts into
//!   steady packets (silence while priming or while the capture is down, never blocking).
#![forbid(unsafe_code)]

pub mod encoder;
pub mod jitter;
pub mod layout;
pub mod pipewire;
pub mod tone;

/// Sample rate of every GameStream audio stream.
pub const SAMPLE_RATE: u32 = 48_000;

/// Errors of the audio path, typed by origin.
#[derive(Debug)]
pub enum AudioError {
    /// Invalid configuration or buffer sizes.
    Config(String),
    /// libopus returned an error.
    Opus(opus::Error),
    /// The capture process (PipeWire's `pw-record`) could not start or failed.
    Capture(String),
}

impl std::fmt::Display for AudioError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Config(m) => write!(f, "audio config: {m}"),
            Self::Opus(e) => write!(f, "opus: {e}"),
            Self::Capture(m) => write!(f, "audio capture: {m}"),
        }
    }
}

impl std::error::Error for AudioError {}

impl From<opus::Error> for AudioError {
    fn from(e: opus::Error) -> Self {
        Self::Opus(e)
    }
}
