//! The seam between the NVENC session logic and the NVIDIA libraries.
//!
//! [`NvencApi`] is NVENC's function table (`NV_ENCODE_API_FUNCTION_LIST`), [`CudaApi`] the few
//! CUDA driver calls the encoder needs. The real implementations ([`super::ffi::RealNvenc`],
//! [`super::cuda::RealCuda`]) call the `dlopen`ed libraries; tests drive
//! [`super::session::NvencEncoder`] with a fake that records every call. The seam speaks in
//! plain Rust values (opaque handles, typed parameters), so the session logic — ordering,
//! release on every path, IDR/RFI/bitrate requests — is testable without a GPU, and the
//! `unsafe` translation to the C structs stays in the two real implementations.
//!
//! Handles are opaque integers: the real side stores the driver's pointer value, the fake
//! mints its own. A handle is valid from the call that returned it until the matching
//! release call (`destroy_*`, `unregister`, `unmap`, `release_*`, `free`).

use std::os::fd::BorrowedFd;

/// Video codecs NVENC can be asked for (identified by GUID in the C API).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Codec {
    H264,
    Hevc,
    Av1,
}

impl Codec {
    pub const ALL: [Codec; 3] = [Codec::H264, Codec::Hevc, Codec::Av1];

    pub fn name(self) -> &'static str {
        match self {
            Codec::H264 => "h264",
            Codec::Hevc => "hevc",
            Codec::Av1 => "av1",
        }
    }
}

/// The capabilities the session asks the driver about (`NV_ENC_CAPS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cap {
    WidthMax,
    HeightMax,
    TenBit,
    RefPicInvalidation,
}

/// What the driver reported for one codec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CodecCaps {
    pub codec: Codec,
    pub max_width: u32,
    pub max_height: u32,
    pub ten_bit: bool,
    /// Reference-picture invalidation (`NV_ENC_CAPS_SUPPORT_REF_PIC_INVALIDATION`).
    pub ref_pic_invalidation: bool,
}

/// Input pixel layouts NVENC converts to YUV itself (`NV_ENC_BUFFER_FORMAT`): the encoder's
/// own colour conversion, so an RGB scan-out buffer needs no shader pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BufferFormat {
    /// Y plane + interleaved UV (DRM `NV12`).
    Nv12,
    /// Y, U, V planes (I420).
    Iyuv,
    /// 10-bit NV12 in 16-bit words (DRM `P010`).
    P010,
    /// 8:8:8:8 packed, memory order B,G,R,A (DRM `ARGB8888`/`XRGB8888`).
    Argb,
    /// 8:8:8:8 packed, memory order R,G,B,A (DRM `ABGR8888`/`XBGR8888`).
    Abgr,
    /// 10:10:10:2 packed (DRM `ARGB2101010`/`XRGB2101010`).
    Argb10,
}

/// DRM fourcc codes (drm_fourcc.h: `fourcc_code(a,b,c,d)` little-endian).
pub mod fourcc {
    const fn code(c: &[u8; 4]) -> u32 {
        (c[0] as u32) | ((c[1] as u32) << 8) | ((c[2] as u32) << 16) | ((c[3] as u32) << 24)
    }
    pub const XRGB8888: u32 = code(b"XR24");
    pub const ARGB8888: u32 = code(b"AR24");
    pub const XBGR8888: u32 = code(b"XB24");
    pub const ABGR8888: u32 = code(b"AB24");
    pub const XRGB2101010: u32 = code(b"XR30");
    pub const ARGB2101010: u32 = code(b"AR30");
    pub const NV12: u32 = code(b"NV12");
    pub const P010: u32 = code(b"P010");
    /// `DRM_FORMAT_MOD_LINEAR`.
    pub const MOD_LINEAR: u64 = 0;
}

impl BufferFormat {
    /// The NVENC input format for a DRM fourcc, or `None` when NVENC cannot take it directly.
    pub fn from_drm_fourcc(fourcc: u32) -> Option<Self> {
        Some(match fourcc {
            fourcc::XRGB8888 | fourcc::ARGB8888 => Self::Argb,
            fourcc::XBGR8888 | fourcc::ABGR8888 => Self::Abgr,
            fourcc::XRGB2101010 | fourcc::ARGB2101010 => Self::Argb10,
            fourcc::NV12 => Self::Nv12,
            fourcc::P010 => Self::P010,
            _ => return None,
        })
    }

    pub fn is_ten_bit(self) -> bool {
        matches!(self, Self::P010 | Self::Argb10)
    }
}

/// Opaque handles (see the module header for their lifetime).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CudaContext(pub usize);
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ExternalMemory(pub usize);
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DevicePtr(pub u64);
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Session(pub usize);
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Bitstream(pub usize);
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Registered(pub usize);
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Mapped(pub usize);

/// How a session is configured (initialize and reconfigure).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionParams {
    pub codec: Codec,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    /// CBR target = peak, bits per second.
    pub bitrate_bps: u32,
    /// VBV buffer in bits: one frame's worth, so no AU bursts above the frame budget.
    pub vbv_bits: u32,
    /// The input layout every registered resource of this session uses.
    pub format: BufferFormat,
    /// Encode 10-bit (HEVC Main10 / AV1 Main 10-bit).
    pub ten_bit: bool,
}

/// A CUDA device buffer handed to NVENC (`NV_ENC_INPUT_RESOURCE_TYPE_CUDADEVICEPTR`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resource {
    pub ptr: DevicePtr,
    pub width: u32,
    pub height: u32,
    /// Bytes per row of the first plane.
    pub pitch: u32,
    pub format: BufferFormat,
    /// The DRM modifier of the memory behind `ptr` (LINEAR for our own uploads); kept so the
    /// registration carries what the capture side exported.
    pub modifier: u64,
}

/// One `nvEncEncodePicture` call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Picture {
    pub input: Mapped,
    pub output: Bitstream,
    pub width: u32,
    pub height: u32,
    pub pitch: u32,
    pub format: BufferFormat,
    /// The input timestamp: the source's frame number, so an invalidation request for frame
    /// `n` names the picture encoded from frame `n`.
    pub timestamp: u64,
    /// `NV_ENC_PIC_FLAG_FORCEIDR | NV_ENC_PIC_FLAG_OUTPUT_SPSPPS`.
    pub force_idr: bool,
}

/// What `nvEncLockBitstream` reported besides the bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Locked {
    pub idr: bool,
    pub timestamp: u64,
}

/// Errors at the seam, typed by origin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NvError {
    /// A library or entry point is missing (no NVIDIA driver, too old a driver).
    DriverMissing(String),
    /// The GPU went away or stopped working mid-stream (NVENC device errors, CUDA device
    /// errors); the session is unusable and the caller should fall back.
    DeviceLost { call: &'static str, detail: String },
    /// The GPU or driver cannot do what was asked (no NVENC engine, codec, size, format).
    Unsupported(String),
    /// Any other failure of a call, with the driver's status code.
    Call {
        call: &'static str,
        status: u32,
        detail: String,
    },
}

impl std::fmt::Display for NvError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::DriverMissing(m) => write!(f, "NVIDIA driver missing: {m}"),
            Self::DeviceLost { call, detail } => write!(f, "GPU lost in {call}: {detail}"),
            Self::Unsupported(m) => write!(f, "not supported by this GPU/driver: {m}"),
            Self::Call {
                call,
                status,
                detail,
            } => write!(f, "{call} failed with status {status} ({detail})"),
        }
    }
}

impl std::error::Error for NvError {}

/// The CUDA driver calls the encoder makes.
pub trait CudaApi {
    /// `cuInit`, device `ordinal`, its primary context retained and made current.
    fn open_context(&mut self, ordinal: i32) -> Result<CudaContext, NvError>;
    /// Releases the primary context retained by `open_context`.
    fn close_context(&mut self, ctx: CudaContext);
    /// Imports a dmabuf of `size` bytes as external memory and maps it as one linear device
    /// buffer. `modifier` is the buffer's DRM modifier: an implementation refuses layouts it
    /// cannot address linearly with [`NvError::Unsupported`].
    fn import_dmabuf(
        &mut self,
        ctx: CudaContext,
        fd: BorrowedFd<'_>,
        size: u64,
        modifier: u64,
    ) -> Result<(ExternalMemory, DevicePtr), NvError>;
    /// Frees the mapping and destroys the imported memory.
    fn release_import(&mut self, mem: ExternalMemory, ptr: DevicePtr);
    /// Allocates a device buffer of `bytes`.
    fn alloc(&mut self, ctx: CudaContext, bytes: usize) -> Result<DevicePtr, NvError>;
    fn free(&mut self, ptr: DevicePtr);
    /// Host → device copy of `src` to the start of `dst`.
    fn upload(&mut self, dst: DevicePtr, src: &[u8]) -> Result<(), NvError>;
}

/// NVENC's function table, one method per entry the encoder uses.
pub trait NvencApi {
    /// `nvEncOpenEncodeSessionEx` on a CUDA context.
    fn open_session(&mut self, ctx: CudaContext) -> Result<Session, NvError>;
    /// `nvEncGetEncodeGUIDs`, mapped to the codecs we know (others are skipped).
    fn codecs(&mut self, s: Session) -> Result<Vec<Codec>, NvError>;
    /// `nvEncGetEncodeCaps`.
    fn cap(&mut self, s: Session, codec: Codec, cap: Cap) -> Result<i32, NvError>;
    /// `nvEncInitializeEncoder`: low-latency preset and tuning, infinite GOP, CBR.
    fn initialize(&mut self, s: Session, p: &SessionParams) -> Result<(), NvError>;
    /// `nvEncReconfigureEncoder` without a reset (the stream continues).
    fn reconfigure(&mut self, s: Session, p: &SessionParams) -> Result<(), NvError>;
    fn create_bitstream(&mut self, s: Session) -> Result<Bitstream, NvError>;
    fn destroy_bitstream(&mut self, s: Session, b: Bitstream);
    fn register(&mut self, s: Session, r: &Resource) -> Result<Registered, NvError>;
    fn unregister(&mut self, s: Session, r: Registered);
    fn map(&mut self, s: Session, r: Registered) -> Result<Mapped, NvError>;
    fn unmap(&mut self, s: Session, m: Mapped);
    fn encode(&mut self, s: Session, pic: &Picture) -> Result<(), NvError>;
    /// `nvEncLockBitstream` (blocking): appends the AU's bytes to `out`. Must be followed by
    /// [`NvencApi::unlock_bitstream`] whatever happens next.
    fn lock_bitstream(
        &mut self,
        s: Session,
        b: Bitstream,
        out: &mut Vec<u8>,
    ) -> Result<Locked, NvError>;
    fn unlock_bitstream(&mut self, s: Session, b: Bitstream);
    /// `nvEncInvalidateRefFrames` for the picture encoded with input `timestamp`.
    fn invalidate_ref_frame(&mut self, s: Session, timestamp: u64) -> Result<(), NvError>;
    /// `nvEncDestroyEncoder`.
    fn destroy(&mut self, s: Session);
}
