//! The real [`NvencApi`]: `libnvidia-encode.so.1` loaded with `dlopen`, its function table
//! from `NvEncodeAPICreateInstance`, and the C structs of `nvidia-video-codec-sdk` (SDK 12.1
//! bindings, used for their types only: the crate's `ci-check` feature keeps it from linking
//! the driver, so the binary starts without NVIDIA libraries).
//!
//! Every call fills the struct version the SDK defines for API 12.1; a driver older than that
//! is refused at load ([`RealNvenc::load`]). Status codes are classified for the session:
//! device errors → [`NvError::DeviceLost`], "no/unsupported encode device" and unsupported
//! parameters → [`NvError::Unsupported`], the rest → [`NvError::Call`] with the driver's last
//! error string.
//!
//! **Not verified on hardware**: this machine has no NVIDIA GPU. This binding is tested against
//! a C stand-in for the driver compiled from the SDK header (`ffi_tests`: struct versions,
//! configuration and fields across the C ABI); the session logic above it against a fake of
//! the seam.
#![allow(unsafe_code)]

use std::ffi::{CStr, c_void};
use std::mem::MaybeUninit;
use std::ptr::null_mut;

use nvidia_video_codec_sdk::sys::nvEncodeAPI as sys;
use sys::{GUID, NVENCSTATUS};

use super::api::{
    Bitstream, BufferFormat, Cap, Codec, CudaContext, Locked, Mapped, NvError, NvencApi, Picture,
    Registered, Resource, Session, SessionParams,
};

use super::LIBRARY;

type GetMaxSupportedVersion = unsafe extern "C" fn(*mut u32) -> NVENCSTATUS;
type CreateInstance = unsafe extern "C" fn(*mut sys::NV_ENCODE_API_FUNCTION_LIST) -> NVENCSTATUS;

/// NVENC through the driver's function table.
pub struct RealNvenc {
    table: sys::NV_ENCODE_API_FUNCTION_LIST,
    // Keeps the library mapped while `table`'s pointers are in use; dropped last.
    _lib: libloading::Library,
}

fn codec_guid(c: Codec) -> GUID {
    match c {
        Codec::H264 => sys::NV_ENC_CODEC_H264_GUID,
        Codec::Hevc => sys::NV_ENC_CODEC_HEVC_GUID,
        Codec::Av1 => sys::NV_ENC_CODEC_AV1_GUID,
    }
}

fn buffer_format(f: BufferFormat) -> sys::NV_ENC_BUFFER_FORMAT {
    use sys::NV_ENC_BUFFER_FORMAT as F;
    match f {
        BufferFormat::Nv12 => F::NV_ENC_BUFFER_FORMAT_NV12,
        BufferFormat::Iyuv => F::NV_ENC_BUFFER_FORMAT_IYUV,
        BufferFormat::P010 => F::NV_ENC_BUFFER_FORMAT_YUV420_10BIT,
        BufferFormat::Argb => F::NV_ENC_BUFFER_FORMAT_ARGB,
        BufferFormat::Abgr => F::NV_ENC_BUFFER_FORMAT_ABGR,
        BufferFormat::Argb10 => F::NV_ENC_BUFFER_FORMAT_ARGB10,
    }
}

fn classify(st: NVENCSTATUS, call: &'static str, last: String) -> Result<(), NvError> {
    use sys::NVENCSTATUS as S;
    match st {
        S::NV_ENC_SUCCESS => Ok(()),
        S::NV_ENC_ERR_DEVICE_NOT_EXIST | S::NV_ENC_ERR_INVALID_DEVICE => Err(NvError::DeviceLost {
            call,
            detail: format!("{st:?} {last}"),
        }),
        S::NV_ENC_ERR_NO_ENCODE_DEVICE
        | S::NV_ENC_ERR_UNSUPPORTED_DEVICE
        | S::NV_ENC_ERR_INVALID_ENCODERDEVICE
        | S::NV_ENC_ERR_UNSUPPORTED_PARAM
        | S::NV_ENC_ERR_UNIMPLEMENTED => {
            Err(NvError::Unsupported(format!("{call}: {st:?} {last}")))
        }
        _ => Err(NvError::Call {
            call,
            status: st as u32,
            detail: format!("{st:?} {last}"),
        }),
    }
}

/// Zero-initialised C structs for the calls. The SDK bindings' `Default` is `mem::zeroed()`,
/// which is not a valid Rust value for a struct holding an enum without a 0 variant
/// (`NV_ENC_CONFIG::frameFieldMode`, `pictureStruct` of the picture and lock structs): such a
/// value is undefined behaviour, and in practice the enum's invalid 0 is the niche a
/// `Result<NV_ENC_CONFIG, _>` uses for `Err` (found by the C-stub test: an `Ok(config)` read as
/// an `Err`). These write those fields first, then make the value.
fn zeroed_config() -> sys::NV_ENC_CONFIG {
    let mut c = MaybeUninit::<sys::NV_ENC_CONFIG>::zeroed();
    // SAFETY: all-zero bytes are valid for every field of NV_ENC_CONFIG (integers, pointers,
    // unions of those, enums with a 0 variant) except `frameFieldMode`, written before
    // `assume_init`.
    unsafe {
        (&raw mut (*c.as_mut_ptr()).frameFieldMode).write(FRAME_MODE);
        c.assume_init()
    }
}

fn zeroed_preset() -> sys::NV_ENC_PRESET_CONFIG {
    let mut p = MaybeUninit::<sys::NV_ENC_PRESET_CONFIG>::zeroed();
    // SAFETY: as for zeroed_config: the only field without a valid zero is the embedded
    // config's `frameFieldMode`.
    unsafe {
        (&raw mut (*p.as_mut_ptr()).presetCfg).write(zeroed_config());
        p.assume_init()
    }
}

fn zeroed_pic() -> sys::NV_ENC_PIC_PARAMS {
    let mut p = MaybeUninit::<sys::NV_ENC_PIC_PARAMS>::zeroed();
    // SAFETY: all-zero is valid for every field but `pictureStruct`, written first (the codec
    // picture-params union holds integers and pointers only).
    unsafe {
        (&raw mut (*p.as_mut_ptr()).pictureStruct).write(PIC_FRAME);
        p.assume_init()
    }
}

fn zeroed_lock() -> sys::NV_ENC_LOCK_BITSTREAM {
    let mut p = MaybeUninit::<sys::NV_ENC_LOCK_BITSTREAM>::zeroed();
    // SAFETY: all-zero is valid for every field but `pictureStruct`, written first.
    unsafe {
        (&raw mut (*p.as_mut_ptr()).pictureStruct).write(PIC_FRAME);
        p.assume_init()
    }
}

const FRAME_MODE: sys::NV_ENC_PARAMS_FRAME_FIELD_MODE =
    sys::NV_ENC_PARAMS_FRAME_FIELD_MODE::NV_ENC_PARAMS_FRAME_FIELD_MODE_FRAME;
const PIC_FRAME: sys::NV_ENC_PIC_STRUCT = sys::NV_ENC_PIC_STRUCT::NV_ENC_PIC_STRUCT_FRAME;

/// Resolves a table entry or says which one the driver left out.
macro_rules! entry {
    ($self:ident . $name:ident) => {
        $self.table.$name.ok_or_else(|| {
            NvError::DriverMissing(format!(
                "{LIBRARY}: {} missing from the function table",
                stringify!($name)
            ))
        })?
    };
}

fn enc(s: Session) -> *mut c_void {
    s.0 as *mut c_void
}

impl RealNvenc {
    /// Loads [`LIBRARY`] and its function table.
    pub fn load() -> Result<Self, NvError> {
        Self::load_from(LIBRARY)
    }

    /// Loads a given library name or path (tests use a missing one).
    pub fn load_from(name: &str) -> Result<Self, NvError> {
        // SAFETY: loading a shared library runs its initialisers; the library is the NVIDIA
        // driver's encode library (or nothing), the same one FFmpeg and other hosts load.
        let lib = unsafe { libloading::Library::new(name) }
            .map_err(|e| NvError::DriverMissing(format!("{name} not found ({e})")))?;
        // SAFETY: the C signature is `NVENCSTATUS (uint32_t*)` in every SDK.
        let max: libloading::Symbol<'_, GetMaxSupportedVersion> =
            unsafe { lib.get(b"NvEncodeAPIGetMaxSupportedVersion\0") }
                .map_err(|e| NvError::DriverMissing(format!("{name}: {e}")))?;
        let mut version = 0u32;
        // SAFETY: `version` is a writable u32 for the duration of the call.
        let st = unsafe { max(&raw mut version) };
        classify(st, "NvEncodeAPIGetMaxSupportedVersion", String::new())?;
        let have = (version >> 4, version & 0xf);
        let need = (sys::NVENCAPI_MAJOR_VERSION, sys::NVENCAPI_MINOR_VERSION);
        if have < need {
            return Err(NvError::DriverMissing(format!(
                "{name}: the driver supports NVENC API {}.{}, strahl needs {}.{} (a newer driver)",
                have.0, have.1, need.0, need.1
            )));
        }
        // SAFETY: the C signature is `NVENCSTATUS (NV_ENCODE_API_FUNCTION_LIST*)`.
        let create: libloading::Symbol<'_, CreateInstance> =
            unsafe { lib.get(b"NvEncodeAPICreateInstance\0") }
                .map_err(|e| NvError::DriverMissing(format!("{name}: {e}")))?;
        let mut table = sys::NV_ENCODE_API_FUNCTION_LIST {
            version: sys::NV_ENCODE_API_FUNCTION_LIST_VER,
            ..Default::default()
        };
        // SAFETY: `table` is the SDK 12.1 struct with its version set; the driver (≥ 12.1,
        // checked above) fills function pointers into it and keeps no reference to it.
        let st = unsafe { create(&raw mut table) };
        classify(st, "NvEncodeAPICreateInstance", String::new())?;
        Ok(Self { table, _lib: lib })
    }

    /// Checks a status; adds the driver's last error string for the session when it fails.
    fn status(
        &self,
        s: Option<Session>,
        st: NVENCSTATUS,
        call: &'static str,
    ) -> Result<(), NvError> {
        if st == NVENCSTATUS::NV_ENC_SUCCESS {
            return Ok(());
        }
        let last = match (s, self.table.nvEncGetLastErrorString) {
            (Some(s), Some(f)) => {
                // SAFETY: `s` is a live session handle from nvEncOpenEncodeSessionEx; the
                // driver returns a NUL-terminated string it owns (or null), valid until the
                // next call on this session — copied at once.
                let p = unsafe { f(enc(s)) };
                if p.is_null() {
                    String::new()
                } else {
                    // SAFETY: non-null, NUL-terminated, owned by the driver (see above).
                    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
                }
            }
            _ => String::new(),
        };
        classify(st, call, last)
    }

    /// The low-latency configuration for `p`: the P1 preset with ultra-low-latency tuning,
    /// then infinite GOP, no B-frames, CBR at the bitrate with a one-frame VBV, parameter sets
    /// repeated on every IDR, and the profile [`super::output_formats`] reports (H.264 High,
    /// HEVC Main/Main10, AV1 Main).
    fn config(&self, s: Session, p: &SessionParams) -> Result<sys::NV_ENC_CONFIG, NvError> {
        let get = entry!(self.nvEncGetEncodePresetConfigEx);
        let mut preset = zeroed_preset();
        preset.version = sys::NV_ENC_PRESET_CONFIG_VER;
        preset.presetCfg.version = sys::NV_ENC_CONFIG_VER;
        // SAFETY: live session; `preset` is a writable, versioned struct the driver fills.
        let st = unsafe {
            get(
                enc(s),
                codec_guid(p.codec),
                sys::NV_ENC_PRESET_P1_GUID,
                sys::NV_ENC_TUNING_INFO::NV_ENC_TUNING_INFO_ULTRA_LOW_LATENCY,
                &raw mut preset,
            )
        };
        self.status(Some(s), st, "nvEncGetEncodePresetConfigEx")?;
        let mut c = preset.presetCfg;
        c.version = sys::NV_ENC_CONFIG_VER;
        c.gopLength = sys::NVENC_INFINITE_GOPLENGTH;
        c.frameIntervalP = 1;
        c.rcParams.rateControlMode = sys::NV_ENC_PARAMS_RC_MODE::NV_ENC_PARAMS_RC_CBR;
        c.rcParams.averageBitRate = p.bitrate_bps;
        c.rcParams.maxBitRate = p.bitrate_bps;
        c.rcParams.vbvBufferSize = p.vbv_bits;
        c.rcParams.vbvInitialDelay = p.vbv_bits;
        let depth = if p.ten_bit { 2 } else { 0 };
        let input_depth = if p.format.is_ten_bit() { 2 } else { 0 };
        // SAFETY: `encodeCodecConfig` is a C union; the preset call filled the member for
        // `p.codec`, and we only touch that member.
        unsafe {
            match p.codec {
                Codec::H264 => {
                    c.profileGUID = sys::NV_ENC_H264_PROFILE_HIGH_GUID;
                    let h = &mut c.encodeCodecConfig.h264Config;
                    h.idrPeriod = sys::NVENC_INFINITE_GOPLENGTH;
                    h.set_repeatSPSPPS(1);
                }
                Codec::Hevc => {
                    let h = &mut c.encodeCodecConfig.hevcConfig;
                    h.idrPeriod = sys::NVENC_INFINITE_GOPLENGTH;
                    h.set_repeatSPSPPS(1);
                    h.set_pixelBitDepthMinus8(depth);
                    c.profileGUID = if p.ten_bit {
                        sys::NV_ENC_HEVC_PROFILE_MAIN10_GUID
                    } else {
                        sys::NV_ENC_HEVC_PROFILE_MAIN_GUID
                    };
                }
                Codec::Av1 => {
                    c.profileGUID = sys::NV_ENC_AV1_PROFILE_MAIN_GUID;
                    let a = &mut c.encodeCodecConfig.av1Config;
                    a.idrPeriod = sys::NVENC_INFINITE_GOPLENGTH;
                    a.set_repeatSeqHdr(1);
                    a.set_inputPixelBitDepthMinus8(input_depth);
                    a.set_pixelBitDepthMinus8(depth);
                }
            }
        }
        Ok(c)
    }

    fn init_params(
        p: &SessionParams,
        config: &mut sys::NV_ENC_CONFIG,
    ) -> sys::NV_ENC_INITIALIZE_PARAMS {
        sys::NV_ENC_INITIALIZE_PARAMS {
            version: sys::NV_ENC_INITIALIZE_PARAMS_VER,
            encodeGUID: codec_guid(p.codec),
            presetGUID: sys::NV_ENC_PRESET_P1_GUID,
            encodeWidth: p.width,
            encodeHeight: p.height,
            darWidth: p.width,
            darHeight: p.height,
            frameRateNum: p.fps,
            frameRateDen: 1,
            enablePTD: 1,
            encodeConfig: config,
            maxEncodeWidth: p.width,
            maxEncodeHeight: p.height,
            tuningInfo: sys::NV_ENC_TUNING_INFO::NV_ENC_TUNING_INFO_ULTRA_LOW_LATENCY,
            bufferFormat: buffer_format(p.format),
            ..Default::default()
        }
    }
}

impl NvencApi for RealNvenc {
    fn open_session(&mut self, ctx: CudaContext) -> Result<Session, NvError> {
        let open = entry!(self.nvEncOpenEncodeSessionEx);
        let mut p = sys::NV_ENC_OPEN_ENCODE_SESSION_EX_PARAMS {
            version: sys::NV_ENC_OPEN_ENCODE_SESSION_EX_PARAMS_VER,
            deviceType: sys::NV_ENC_DEVICE_TYPE::NV_ENC_DEVICE_TYPE_CUDA,
            device: ctx.0 as *mut c_void,
            apiVersion: sys::NVENCAPI_VERSION,
            ..Default::default()
        };
        let mut e: *mut c_void = null_mut();
        // SAFETY: `ctx` is a live CUcontext from CudaApi::open_context; `p` and `e` are
        // writable for the call; the driver stores the session handle into `e`.
        let st = unsafe { open(&raw mut p, &raw mut e) };
        if let Err(err) = self.status(None, st, "nvEncOpenEncodeSessionEx") {
            // The API asks for the handle of a failed open to be destroyed too.
            if let (false, Some(destroy)) = (e.is_null(), self.table.nvEncDestroyEncoder) {
                // SAFETY: `e` is the handle the failed open returned, destroyed once.
                let _ = unsafe { destroy(e) };
            }
            return Err(err);
        }
        if e.is_null() {
            return Err(NvError::Call {
                call: "nvEncOpenEncodeSessionEx",
                status: 0,
                detail: "null session".into(),
            });
        }
        Ok(Session(e as usize))
    }

    fn codecs(&mut self, s: Session) -> Result<Vec<Codec>, NvError> {
        let count = entry!(self.nvEncGetEncodeGUIDCount);
        let list = entry!(self.nvEncGetEncodeGUIDs);
        let mut n = 0u32;
        // SAFETY: live session; `n` writable.
        let st = unsafe { count(enc(s), &raw mut n) };
        self.status(Some(s), st, "nvEncGetEncodeGUIDCount")?;
        let mut guids = vec![GUID::default(); n as usize];
        let mut got = 0u32;
        // SAFETY: `guids` has room for `n` GUIDs, which is the size we pass.
        let st = unsafe { list(enc(s), guids.as_mut_ptr(), n, &raw mut got) };
        self.status(Some(s), st, "nvEncGetEncodeGUIDs")?;
        guids.truncate((got as usize).min(guids.len()));
        Ok(Codec::ALL
            .into_iter()
            .filter(|c| guids.contains(&codec_guid(*c)))
            .collect())
    }

    fn cap(&mut self, s: Session, codec: Codec, cap: Cap) -> Result<i32, NvError> {
        use sys::NV_ENC_CAPS as C;
        let get = entry!(self.nvEncGetEncodeCaps);
        let mut p = sys::NV_ENC_CAPS_PARAM {
            version: sys::NV_ENC_CAPS_PARAM_VER,
            capsToQuery: match cap {
                Cap::WidthMax => C::NV_ENC_CAPS_WIDTH_MAX,
                Cap::HeightMax => C::NV_ENC_CAPS_HEIGHT_MAX,
                Cap::TenBit => C::NV_ENC_CAPS_SUPPORT_10BIT_ENCODE,
                Cap::RefPicInvalidation => C::NV_ENC_CAPS_SUPPORT_REF_PIC_INVALIDATION,
            },
            ..Default::default()
        };
        let mut v = 0;
        // SAFETY: live session; `p` versioned, `v` writable.
        let st = unsafe { get(enc(s), codec_guid(codec), &raw mut p, &raw mut v) };
        self.status(Some(s), st, "nvEncGetEncodeCaps")?;
        Ok(v)
    }

    fn initialize(&mut self, s: Session, p: &SessionParams) -> Result<(), NvError> {
        let init = entry!(self.nvEncInitializeEncoder);
        let mut config = self.config(s, p)?;
        let mut params = Self::init_params(p, &mut config);
        // SAFETY: live session; `params.encodeConfig` points to `config`, which outlives the
        // call; the driver copies both.
        let st = unsafe { init(enc(s), &raw mut params) };
        self.status(Some(s), st, "nvEncInitializeEncoder")
    }

    fn reconfigure(&mut self, s: Session, p: &SessionParams) -> Result<(), NvError> {
        let reconf = entry!(self.nvEncReconfigureEncoder);
        let mut config = self.config(s, p)?;
        let mut params = sys::NV_ENC_RECONFIGURE_PARAMS {
            version: sys::NV_ENC_RECONFIGURE_PARAMS_VER,
            reInitEncodeParams: Self::init_params(p, &mut config),
            ..Default::default()
        };
        // resetEncoder = 0, forceIDR = 0 (the zeroed bit-field): the stream continues.
        // SAFETY: as for initialize; `config` outlives the call.
        let st = unsafe { reconf(enc(s), &raw mut params) };
        self.status(Some(s), st, "nvEncReconfigureEncoder")
    }

    fn create_bitstream(&mut self, s: Session) -> Result<Bitstream, NvError> {
        let create = entry!(self.nvEncCreateBitstreamBuffer);
        let mut p = sys::NV_ENC_CREATE_BITSTREAM_BUFFER {
            version: sys::NV_ENC_CREATE_BITSTREAM_BUFFER_VER,
            ..Default::default()
        };
        // SAFETY: live session; `p` versioned and writable.
        let st = unsafe { create(enc(s), &raw mut p) };
        self.status(Some(s), st, "nvEncCreateBitstreamBuffer")?;
        Ok(Bitstream(p.bitstreamBuffer as usize))
    }

    fn destroy_bitstream(&mut self, s: Session, b: Bitstream) {
        if let Some(f) = self.table.nvEncDestroyBitstreamBuffer {
            // SAFETY: `b` came from nvEncCreateBitstreamBuffer on `s` and is destroyed once.
            let st = unsafe { f(enc(s), b.0 as *mut c_void) };
            let _ = self.status(Some(s), st, "nvEncDestroyBitstreamBuffer");
        }
    }

    fn register(&mut self, s: Session, r: &Resource) -> Result<Registered, NvError> {
        let reg = entry!(self.nvEncRegisterResource);
        let mut p = sys::NV_ENC_REGISTER_RESOURCE {
            version: sys::NV_ENC_REGISTER_RESOURCE_VER,
            resourceType: sys::NV_ENC_INPUT_RESOURCE_TYPE::NV_ENC_INPUT_RESOURCE_TYPE_CUDADEVICEPTR,
            width: r.width,
            height: r.height,
            pitch: r.pitch,
            resourceToRegister: r.ptr.0 as *mut c_void,
            bufferFormat: buffer_format(r.format),
            bufferUsage: sys::NV_ENC_BUFFER_USAGE::NV_ENC_INPUT_IMAGE,
            ..Default::default()
        };
        // SAFETY: live session; `resourceToRegister` is a CUdeviceptr of at least
        // pitch × rows bytes for the format (the session sized or imported it).
        let st = unsafe { reg(enc(s), &raw mut p) };
        self.status(Some(s), st, "nvEncRegisterResource")?;
        Ok(Registered(p.registeredResource as usize))
    }

    fn unregister(&mut self, s: Session, r: Registered) {
        if let Some(f) = self.table.nvEncUnregisterResource {
            // SAFETY: `r` came from nvEncRegisterResource on `s`, is not mapped, and is
            // unregistered once.
            let st = unsafe { f(enc(s), r.0 as *mut c_void) };
            let _ = self.status(Some(s), st, "nvEncUnregisterResource");
        }
    }

    fn map(&mut self, s: Session, r: Registered) -> Result<Mapped, NvError> {
        let map = entry!(self.nvEncMapInputResource);
        let mut p = sys::NV_ENC_MAP_INPUT_RESOURCE {
            version: sys::NV_ENC_MAP_INPUT_RESOURCE_VER,
            registeredResource: r.0 as *mut c_void,
            ..Default::default()
        };
        // SAFETY: live session and registration; `p` versioned and writable.
        let st = unsafe { map(enc(s), &raw mut p) };
        self.status(Some(s), st, "nvEncMapInputResource")?;
        Ok(Mapped(p.mappedResource as usize))
    }

    fn unmap(&mut self, s: Session, m: Mapped) {
        if let Some(f) = self.table.nvEncUnmapInputResource {
            // SAFETY: `m` came from nvEncMapInputResource on `s` and is unmapped once.
            let st = unsafe { f(enc(s), m.0 as *mut c_void) };
            let _ = self.status(Some(s), st, "nvEncUnmapInputResource");
        }
    }

    fn encode(&mut self, s: Session, pic: &Picture) -> Result<(), NvError> {
        let f = entry!(self.nvEncEncodePicture);
        let flags = if pic.force_idr {
            sys::NV_ENC_PIC_FLAGS::NV_ENC_PIC_FLAG_FORCEIDR as u32
                | sys::NV_ENC_PIC_FLAGS::NV_ENC_PIC_FLAG_OUTPUT_SPSPPS as u32
        } else {
            0
        };
        let mut p = sys::NV_ENC_PIC_PARAMS {
            version: sys::NV_ENC_PIC_PARAMS_VER,
            inputWidth: pic.width,
            inputHeight: pic.height,
            inputPitch: pic.pitch,
            encodePicFlags: flags,
            inputTimeStamp: pic.timestamp,
            inputBuffer: pic.input.0 as *mut c_void,
            outputBitstream: pic.output.0 as *mut c_void,
            bufferFmt: buffer_format(pic.format),
            ..zeroed_pic()
        };
        // SAFETY: live session; input is mapped and output a bitstream buffer of `s`.
        let st = unsafe { f(enc(s), &raw mut p) };
        self.status(Some(s), st, "nvEncEncodePicture")
    }

    fn lock_bitstream(
        &mut self,
        s: Session,
        b: Bitstream,
        out: &mut Vec<u8>,
    ) -> Result<Locked, NvError> {
        let lock = entry!(self.nvEncLockBitstream);
        let mut p = sys::NV_ENC_LOCK_BITSTREAM {
            version: sys::NV_ENC_LOCK_BITSTREAM_VER,
            outputBitstream: b.0 as *mut c_void,
            ..zeroed_lock()
        };
        // doNotWait = 0 (zeroed bit-field): the call blocks until the picture is encoded.
        // SAFETY: live session; `b` a bitstream buffer of `s` with a picture submitted.
        let st = unsafe { lock(enc(s), &raw mut p) };
        self.status(Some(s), st, "nvEncLockBitstream")?;
        let len = p.bitstreamSizeInBytes as usize;
        if len > 0 && !p.bitstreamBufferPtr.is_null() {
            // SAFETY: while locked, the driver guarantees `bitstreamBufferPtr` points to
            // `bitstreamSizeInBytes` readable bytes; copied before the unlock.
            let bytes =
                unsafe { std::slice::from_raw_parts(p.bitstreamBufferPtr.cast::<u8>(), len) };
            out.extend_from_slice(bytes);
        }
        // Read the picture type as the raw C enum word, so a value this binding does not
        // know cannot become an invalid Rust enum.
        // SAFETY: `pictureType` is a 4-byte C enum field of the initialised struct `p`.
        let pic_type = unsafe { (&raw const p.pictureType).cast::<u32>().read() };
        Ok(Locked {
            idr: pic_type == sys::NV_ENC_PIC_TYPE::NV_ENC_PIC_TYPE_IDR as u32,
            timestamp: p.outputTimeStamp,
        })
    }

    fn unlock_bitstream(&mut self, s: Session, b: Bitstream) {
        if let Some(f) = self.table.nvEncUnlockBitstream {
            // SAFETY: `b` was locked by nvEncLockBitstream on `s`; unlocked once.
            let st = unsafe { f(enc(s), b.0 as *mut c_void) };
            let _ = self.status(Some(s), st, "nvEncUnlockBitstream");
        }
    }

    fn invalidate_ref_frame(&mut self, s: Session, timestamp: u64) -> Result<(), NvError> {
        let f = entry!(self.nvEncInvalidateRefFrames);
        // SAFETY: live session; a plain value argument.
        let st = unsafe { f(enc(s), timestamp) };
        self.status(Some(s), st, "nvEncInvalidateRefFrames")
    }

    fn destroy(&mut self, s: Session) {
        if let Some(f) = self.table.nvEncDestroyEncoder {
            // SAFETY: `s` is a live session destroyed once, after its buffers were released.
            let _ = unsafe { f(enc(s)) };
        }
    }
}

// SAFETY (Send): the table holds function pointers into a library that stays loaded as long
// as `self`; NVENC sessions may be used from any one thread at a time, which `&mut self`
// on every call guarantees.
unsafe impl Send for RealNvenc {}
