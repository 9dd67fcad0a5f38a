//! `strahl-capture`: where the data plane's video comes from.
//!
//! Contract:
//! - A [`VideoSource`] fills a caller-owned [`Frame`]: the caller allocates once (or recycles a
//!   pool of frames) and the source only writes pixels, `pts_us` and `frame_number` into it. The
//!   steady state does not allocate.
//! - Sources are sans-clock: `pts_us` is derived from the frame number and the configured frame
//!   rate, so tests are deterministic. The capture tile decides *when* to call `next_frame`.
//! - [`synthetic::SyntheticSource`] draws a non-black moving pattern carrying the frame number in
//!   large macroblock-aligned blocks that survive lossy H.264; [`synthetic::read_frame_number`]
//!   reads it back from decoded pixels (used by encode tests and the Moonlight harness).
//! - [`passthrough::PassthroughSource`] replays a pre-encoded H.264, HEVC (Annex-B) or AV1
//!   (OBU) file access unit by access unit, in a loop, and reports its [`format::StreamFormat`]
//!   ([`annexb`], [`hevc`] and [`av1`] have the per-codec splitting and header readers).
//! - [`kms`] probes DRM/KMS at run time for a scanout framebuffer and documents the capture's
//!   privilege split: [`kms_grab`] (privileged helper: GETFB2 + PRIME export per flip),
//!   [`kms_wire`] (dmabuf fds over SCM_RIGHTS), [`kms_map`] (data plane: mmap, DMA_BUF sync,
//!   RGB to I420), [`kms_source`] (data plane: newest frame from the helper, mode changes),
//!   [`kms_video`] (the encode tile's [`VideoSource`] at the session's size, scaling when the
//!   display differs).
//! - `unsafe` only in [`kms_map`] (mmap of a dmabuf and its sync ioctl), each block with its
//!   invariant.
#![deny(unsafe_code)]

pub mod annexb;
pub mod av1;
pub mod format;
pub mod fuzzing;
pub mod h264_sps;
pub mod hevc;
pub mod kms;
pub mod kms_grab;
pub mod kms_map;
pub mod kms_mode;
pub mod kms_modeset;
pub mod kms_source;
pub mod kms_video;
pub mod kms_wire;
pub mod passthrough;
pub mod synthetic;

mod frame;

pub use frame::{Frame, FrameError, PixelFormat};

/// Errors of a capture source, typed by origin.
#[derive(Debug)]
pub enum CaptureError {
    /// The requested configuration cannot be produced (e.g. a size too small for the pattern).
    Config(String),
    /// The capture backend does not exist on this machine (no device, no permission).
    NotAvailable(String),
    /// Reading the input (file, device) failed.
    Io(std::io::Error),
    /// The input file is not a usable H.264, HEVC or AV1 stream.
    BadStream(String),
    /// The caller's frame has the wrong geometry or format for this source.
    Frame(FrameError),
}

impl std::fmt::Display for CaptureError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Config(m) => write!(f, "capture config: {m}"),
            Self::NotAvailable(m) => write!(f, "capture not available: {m}"),
            Self::Io(e) => write!(f, "capture io: {e}"),
            Self::BadStream(m) => write!(f, "bad video stream: {m}"),
            Self::Frame(e) => write!(f, "frame: {e}"),
        }
    }
}

impl std::error::Error for CaptureError {}

impl From<FrameError> for CaptureError {
    fn from(e: FrameError) -> Self {
        Self::Frame(e)
    }
}

/// A producer of raw frames.
pub trait VideoSource {
    /// Width and height of the frames this source produces.
    fn dimensions(&self) -> (u32, u32);
    /// Pixel layout of the frames this source produces.
    fn format(&self) -> PixelFormat;
    /// Writes the next frame into `frame` (which must have this source's geometry; use
    /// [`Frame::new`] with [`VideoSource::dimensions`] and [`VideoSource::format`]).
    fn next_frame(&mut self, frame: &mut Frame) -> Result<(), CaptureError>;
}
