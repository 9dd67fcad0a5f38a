//! `strahl-encode`: frames in, Annex-B H.264 access units out.
//!
//! Contract of an [`Encoder`]:
//! - `encode` writes exactly one access unit into a caller-owned `Vec<u8>` (cleared first, its
//!   capacity reused, so the steady state does not allocate once the buffer has grown).
//! - The first AU, and every AU after [`Encoder::request_idr`], is an IDR access unit whose first
//!   NAL is an SPS followed by a PPS (Moonlight recognises an IDR only by an SPS first,
//!   gamestream-host.md §A14). No B-frames; one reference frame.
//! - An optional cap on the AU size ([`Encoder::set_max_access_unit_bytes`]) is what the
//!   GameStream packetizer's `max_access_unit_bytes(packet_size)` is enforced with: an AU over
//!   the cap is re-encoded smaller when the backend can, and counted; otherwise the call fails
//!   with [`EncodeError::AccessUnitTooLarge`] and the next AU is an IDR.
//!
//! - Each backend reports what it can produce as a [`Capability`] (codec, profile, bit depth,
//!   chroma, and the source's HDR mastering metadata) before any session exists: the data plane
//!   sends it to the control plane, which advertises and accepts exactly those formats.
//!   OpenH264 makes H.264 constrained baseline 8-bit 4:2:0 only ([`openh264_enc::capability`]);
//!   the passthrough makes what its clip is ([`passthrough::capability`]); NVENC reports what
//!   the GPU says ([`nvenc::capability`] opens a short session for the queries).
//!
//! Backends: [`openh264_enc::OpenH264Encoder`] (software, always available),
//! [`passthrough::PassthroughEncoder`] (replays a pre-encoded file), and NVENC
//! ([`nvenc`], run-time `dlopen` of the driver and CUDA, no link-time NVIDIA dependency).
//! [`select`] picks one at start and builds each session's encoder from that choice. `unsafe` lives only in [`sys`] and NVENC's two driver
//! bindings (`nvenc::ffi`, `nvenc::cuda`), with SAFETY notes.
#![deny(unsafe_code)]

pub mod nvenc;
pub mod openh264_enc;
pub mod passthrough;
pub mod select;
pub mod sps;
mod sys;

pub use nvenc::session::DmabufFrame;

use strahl_capture::Frame;
use strahl_capture::format::{Chroma, CodecKind, MasteringMetadata};

/// One format a backend produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutputFormat {
    pub codec: CodecKind,
    /// The codec's profile number (H.264 `profile_idc`, HEVC `general_profile_idc`, AV1
    /// `seq_profile`).
    pub profile: u8,
    pub bit_depth: u8,
    pub chroma: Chroma,
}

/// What the active backend can produce.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Capability {
    /// Backend name and detail for logs and the status page ("openh264", "passthrough: x.hevc").
    pub encoder: String,
    pub formats: Vec<OutputFormat>,
    /// HDR10 static metadata of the source, when it has HDR content.
    pub mastering: Option<MasteringMetadata>,
}

impl Capability {
    /// Whether `codec` at `bit_depth` (4:2:0 unless `yuv444`) is among the formats.
    pub fn supports(&self, codec: CodecKind, bit_depth: u8, yuv444: bool) -> bool {
        self.formats.iter().any(|f| {
            f.codec == codec && f.bit_depth == bit_depth && (f.chroma == Chroma::Yuv444) == yuv444
        })
    }

    /// One line: "openh264: H.264 profile 66 8-bit 4:2:0".
    pub fn describe(&self) -> String {
        let formats: Vec<String> = self
            .formats
            .iter()
            .map(|f| {
                format!(
                    "{} profile {} {}-bit {}",
                    f.codec.name(),
                    f.profile,
                    f.bit_depth,
                    f.chroma.name()
                )
            })
            .collect();
        format!(
            "{}: {}{}",
            self.encoder,
            if formats.is_empty() {
                "no formats".to_owned()
            } else {
                formats.join(", ")
            },
            if self.mastering.is_some() {
                ", HDR metadata"
            } else {
                ""
            }
        )
    }
}

/// Errors of an encoder, typed by origin.
#[derive(Debug)]
pub enum EncodeError {
    /// The backend does not exist on this machine (library, device or driver missing).
    NotAvailable(String),
    /// The request is valid but this backend cannot do it (e.g. bitrate of a passthrough).
    Unsupported(&'static str),
    /// The configuration is invalid.
    Config(String),
    /// The input frame does not match the configured geometry/format.
    Frame(strahl_capture::FrameError),
    /// Even the smallest re-encode exceeded the cap; the AU must be dropped. The next AU is an IDR.
    AccessUnitTooLarge { len: usize, cap: usize },
    /// The backend library reported an error.
    Backend(String),
    /// The GPU went away or stopped working mid-stream; this encoder is unusable and the
    /// caller should switch to the software encoder ([`nvenc::fallback`]).
    DeviceLost(String),
}

impl std::fmt::Display for EncodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotAvailable(m) => write!(f, "encoder not available: {m}"),
            Self::Unsupported(m) => write!(f, "unsupported: {m}"),
            Self::Config(m) => write!(f, "encoder config: {m}"),
            Self::Frame(e) => write!(f, "input frame: {e}"),
            Self::AccessUnitTooLarge { len, cap } => {
                write!(
                    f,
                    "access unit of {len} bytes exceeds the cap of {cap} bytes"
                )
            }
            Self::Backend(m) => write!(f, "encoder backend: {m}"),
            Self::DeviceLost(m) => write!(f, "encoder device lost: {m}"),
        }
    }
}

impl std::error::Error for EncodeError {}

impl From<strahl_capture::FrameError> for EncodeError {
    fn from(e: strahl_capture::FrameError) -> Self {
        Self::Frame(e)
    }
}

/// What `encode` produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncodedInfo {
    /// The AU is an IDR starting with SPS, PPS.
    pub idr: bool,
    /// Bytes written to the output buffer.
    pub len: usize,
    /// Frame number and pts of the input (passed through for the packetizer's frame header).
    pub frame_number: u32,
    pub pts_us: u64,
    /// How many re-encodes the AU cap forced for this AU (0 normally).
    pub reencodes: u32,
}

/// Counters kept by every encoder (read by the encode tile, flushed to metrics).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EncoderStats {
    pub frames: u64,
    pub idr_frames: u64,
    pub bytes: u64,
    /// AUs that exceeded the cap on the first try.
    pub over_cap: u64,
    /// Of those, AUs that a re-encode brought under the cap.
    pub capped_ok: u64,
    /// AUs dropped because nothing fit ([`EncodeError::AccessUnitTooLarge`]).
    pub capped_dropped: u64,
}

/// A video encoder.
pub trait Encoder {
    /// Short backend name for logs and the status page.
    fn name(&self) -> &'static str;
    /// Encodes `frame` into `out` (cleared first).
    fn encode(&mut self, frame: &Frame, out: &mut Vec<u8>) -> Result<EncodedInfo, EncodeError>;
    /// Makes the next AU an IDR (with SPS and PPS first).
    fn request_idr(&mut self);
    /// The client lost frames `first..=last`: stop referencing them. Backends that cannot
    /// invalidate references send an IDR instead (this default).
    fn invalidate_frames(&mut self, first: u32, last: u32) {
        let _ = (first, last);
        self.request_idr();
    }
    /// Changes the target bitrate (bits per second) from the next frame on.
    fn set_bitrate(&mut self, bps: u32) -> Result<(), EncodeError>;
    /// The same in kbit/s, for rates a `u32` of bits per second cannot hold (4.29 Gbit/s and
    /// up: the data plane's pattern source). Encoders never get near them: by default the rate
    /// is passed on saturated.
    fn set_bitrate_kbps(&mut self, kbps: u32) -> Result<(), EncodeError> {
        self.set_bitrate(kbps.saturating_mul(1000))
    }
    /// Sets or clears the AU size cap in bytes.
    fn set_max_access_unit_bytes(&mut self, cap: Option<usize>);
    /// Counters since creation.
    fn stats(&self) -> EncoderStats;
    /// Why this encoder now runs on another backend than it started on (a GPU lost
    /// mid-stream, [`nvenc::fallback`]); `None` while it has not switched.
    fn fell_back(&self) -> Option<&str> {
        None
    }
    /// Whether [`Encoder::encode_dmabuf`] takes captured dmabufs now (NVENC while its GPU
    /// works). Backends that read CPU frames only say `false` (this default).
    fn takes_dmabuf(&self) -> bool {
        false
    }
    /// Encodes a captured dmabuf without a CPU copy, as [`Encoder::encode`] does a frame.
    /// An error other than [`EncodeError::AccessUnitTooLarge`] means this picture was not
    /// encoded: the caller gives the same picture to [`Encoder::encode`] as a CPU frame (an
    /// import the GPU refused, or a GPU lost — after which [`Encoder::takes_dmabuf`] is false).
    fn encode_dmabuf(
        &mut self,
        frame: &DmabufFrame<'_>,
        out: &mut Vec<u8>,
    ) -> Result<EncodedInfo, EncodeError> {
        let _ = (frame, out);
        Err(EncodeError::Unsupported(
            "this encoder reads CPU frames only",
        ))
    }
}
