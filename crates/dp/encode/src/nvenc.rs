//! NVENC: detection ([`detect`]) and the encoder ([`session::NvencEncoder`]).
//!
//! Nothing NVIDIA is linked, so the binary starts on machines without the driver: the encode
//! library is `dlopen`ed at run time ([`LIBRARY`]) and used through its function table
//! ([`ffi`]), CUDA through `cudarc` with dynamic loading ([`cuda`]). Detection resolves
//! `NvEncodeAPIGetMaxSupportedVersion` and `NvEncodeAPICreateInstance`, checks the driver's API
//! version against [`API_MAJOR`].[`API_MINOR`] (the SDK 12.1 structs we fill) and asks for the
//! function table — the same first steps FFmpeg takes.
//!
//! The session logic is generic over the seam in [`api`] (`NvencApi` = the function table,
//! `CudaApi` = the CUDA calls) and is tested against a recording fake (`fake`: this crate's
//! tests, and the data plane's session-path tests through the `fake-gpu` feature):
//! formats and modifiers passed through, IDR and reference invalidation on request, bitrate
//! change, every buffer released on every path, device loss and a missing driver surfaced as
//! typed errors. The real table binding is tested against a C stand-in for the driver built
//! from the SDK header (`ffi_tests`). [`fallback`] swaps in the software encoder when the GPU
//! is lost; [`kms`] describes a frame from the KMS capture link as the dmabuf input.
//!
//! **Not verified on hardware**: this machine has no NVIDIA GPU; the real CUDA binding ran
//! only as far as "library not found" here. On a machine with one, run
//! `strahl-dataplane selftest --out FILE`. Data-centre GPUs such as the H100 have no NVENC
//! engine even with the driver present (opening a session reports it unsupported).

pub mod api;
pub mod cuda;
pub mod fallback;
pub mod ffi;
pub mod kms;
pub mod session;

#[cfg(any(test, feature = "fake-gpu"))]
pub mod fake;
#[cfg(test)]
mod ffi_tests;
#[cfg(test)]
mod session_tests;

use strahl_capture::format::{Chroma, CodecKind};

use crate::sys::NvEncodeLib;
use crate::{Capability, EncodeError, OutputFormat};

/// The driver's encode library soname.
pub const LIBRARY: &str = "libnvidia-encode.so.1";
/// The NVENC API version we build our structs for (SDK 12.1: drivers ≥ 530).
pub const API_MAJOR: u32 = nvidia_video_codec_sdk::sys::nvEncodeAPI::NVENCAPI_MAJOR_VERSION;
pub const API_MINOR: u32 = nvidia_video_codec_sdk::sys::nvEncodeAPI::NVENCAPI_MINOR_VERSION;

/// `NVENCAPI_VERSION` = major | minor << 24.
pub const fn api_version(major: u32, minor: u32) -> u32 {
    major | (minor << 24)
}

/// `NVENCAPI_STRUCT_VERSION(ver)` = api_version | ver << 16 | 0x7 << 28.
pub const fn struct_version(api: u32, ver: u32) -> u32 {
    api | (ver << 16) | (0x7 << 28)
}

/// `NV_ENCODE_API_FUNCTION_LIST_VER` for our API version.
pub const FUNCTION_LIST_VERSION: u32 = struct_version(api_version(API_MAJOR, API_MINOR), 2);

/// What detection found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NvencInfo {
    /// Highest API version the driver supports (major, minor).
    pub driver_api: (u32, u32),
    /// Function pointers the driver filled into the table.
    pub functions: usize,
}

/// Splits the driver's `(major << 4) | minor` version word.
pub const fn split_version(v: u32) -> (u32, u32) {
    (v >> 4, v & 0xf)
}

/// H.264 `profile_idc` High, HEVC `general_profile_idc` Main and Main 10, AV1 `seq_profile`
/// Main: the profiles the session configures ([`ffi`]).
pub const PROFILE_H264_HIGH: u8 = 100;
pub const PROFILE_HEVC_MAIN: u8 = 1;
pub const PROFILE_HEVC_MAIN10: u8 = 2;
pub const PROFILE_AV1_MAIN: u8 = 0;

/// The formats a GPU with these capabilities produces through [`session::NvencEncoder`]:
/// 8-bit 4:2:0 for every codec it lists, 10-bit where it reports 10-bit encode (never H.264:
/// High 10 is not an NVENC profile).
pub fn output_formats(caps: &[api::CodecCaps]) -> Vec<OutputFormat> {
    let mut v = Vec::new();
    for c in caps {
        let (codec, eight, ten) = match c.codec {
            api::Codec::H264 => (CodecKind::H264, PROFILE_H264_HIGH, None),
            api::Codec::Hevc => (
                CodecKind::Hevc,
                PROFILE_HEVC_MAIN,
                Some(PROFILE_HEVC_MAIN10),
            ),
            api::Codec::Av1 => (CodecKind::Av1, PROFILE_AV1_MAIN, Some(PROFILE_AV1_MAIN)),
        };
        let fmt = |profile, bit_depth| OutputFormat {
            codec,
            profile,
            bit_depth,
            chroma: Chroma::Yuv420,
        };
        v.push(fmt(eight, 8));
        if let Some(p) = ten.filter(|_| c.ten_bit) {
            v.push(fmt(p, 10));
        }
    }
    v
}

/// What this machine's GPU can produce: a short-lived session (640×480) is opened for the
/// capability queries and closed again.
pub fn capability() -> Result<Capability, EncodeError> {
    Ok(open(session::NvencConfig::h264(640, 480, 60, 1_000_000))?.capability())
}

/// The encoder on the real driver.
pub type RealEncoder = session::NvencEncoder<ffi::RealNvenc, cuda::RealCuda>;

/// Loads the driver's encode library and CUDA, and opens a session.
pub fn open(cfg: session::NvencConfig) -> Result<RealEncoder, EncodeError> {
    let nv = ffi::RealNvenc::load().map_err(|e| EncodeError::NotAvailable(e.to_string()))?;
    let cuda = cuda::RealCuda::load().map_err(|e| EncodeError::NotAvailable(e.to_string()))?;
    session::NvencEncoder::open(nv, cuda, cfg)
}

/// Probes [`LIBRARY`].
pub fn detect() -> Result<NvencInfo, EncodeError> {
    detect_library(LIBRARY)
}

/// Probes a given library name or path (the seam tests use).
pub fn detect_library(name: &str) -> Result<NvencInfo, EncodeError> {
    let lib = NvEncodeLib::open(name)
        .map_err(|e| EncodeError::NotAvailable(format!("{name} not found ({e})")))?;
    let driver_api = split_version(
        lib.max_supported_version()
            .map_err(|e| EncodeError::NotAvailable(format!("{name}: {e}")))?,
    );
    if driver_api < (API_MAJOR, API_MINOR) {
        return Err(EncodeError::NotAvailable(format!(
            "driver supports NVENC API {}.{}, need {API_MAJOR}.{API_MINOR}",
            driver_api.0, driver_api.1
        )));
    }
    let functions = lib
        .create_function_table(FUNCTION_LIST_VERSION)
        .map_err(|e| EncodeError::NotAvailable(format!("{name}: {e}")))?;
    if functions == 0 {
        return Err(EncodeError::NotAvailable(format!(
            "{name}: empty function table"
        )));
    }
    Ok(NvencInfo {
        driver_api,
        functions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_words() {
        // SDK 12.1: NVENCAPI_VERSION = 12 | 1 << 24, function list struct version 2 — the
        // same word the SDK bindings define.
        assert_eq!(
            FUNCTION_LIST_VERSION,
            12 | (1 << 24) | (2 << 16) | (7 << 28)
        );
        assert_eq!(
            FUNCTION_LIST_VERSION,
            nvidia_video_codec_sdk::sys::nvEncodeAPI::NV_ENCODE_API_FUNCTION_LIST_VER
        );
        assert_eq!(api_version(12, 1), 12 | (1 << 24));
        assert_eq!(split_version(0xc2), (12, 2));
    }

    #[test]
    fn missing_library_is_typed_not_available() {
        let err = detect_library("libstrahl-definitely-missing.so.1").unwrap_err();
        assert!(
            matches!(err, EncodeError::NotAvailable(ref m) if m.contains("libstrahl-definitely-missing.so.1 not found")),
            "{err}"
        );
    }

    #[test]
    fn library_without_nvenc_symbols_is_not_available() {
        // libc is always loadable and has no NVENC entry points.
        let err = detect_library("libc.so.6").unwrap_err();
        assert!(
            matches!(err, EncodeError::NotAvailable(ref m) if m.contains("NvEncodeAPIGetMaxSupportedVersion")),
            "{err}"
        );
    }

    #[test]
    fn this_machine() {
        // Without the NVIDIA driver this is the typed "not found"; with it, a real version.
        match detect() {
            Ok(info) => assert!(info.driver_api.0 >= API_MAJOR && info.functions > 0),
            Err(EncodeError::NotAvailable(m)) => assert!(m.contains(LIBRARY), "{m}"),
            Err(e) => panic!("unexpected error kind: {e}"),
        }
    }
}
