//! The crate's only `unsafe`: FFI calls into OpenH264's option API and into the NVIDIA encode
//! library loaded at run time. Each block states the invariant it relies on.
#![allow(unsafe_code)]

use std::ffi::c_void;

/// Sets OpenH264's target and max bitrate on an initialized encoder (no IDR, takes effect from
/// the next frame). OpenH264 clips the value to its own [MIN_BIT_RATE, MAX_BIT_RATE].
pub(crate) fn openh264_set_bitrate(
    enc: &mut openh264::encoder::Encoder,
    old_bps: u32,
    bps: u32,
) -> Result<(), String> {
    use openh264_sys2::{
        ENCODER_OPTION_BITRATE, ENCODER_OPTION_MAX_BITRATE, SBitrateInfo, SPATIAL_LAYER_0,
        SPATIAL_LAYER_ALL,
    };
    let bitrate = i32::try_from(bps).map_err(|_| format!("bitrate {bps} out of range"))?;
    // Raise the ceiling before the target and lower it after, so target ≤ max holds throughout.
    let max = (ENCODER_OPTION_MAX_BITRATE, SPATIAL_LAYER_0);
    let target_all = (ENCODER_OPTION_BITRATE, SPATIAL_LAYER_ALL);
    let target_0 = (ENCODER_OPTION_BITRATE, SPATIAL_LAYER_0);
    let steps: [(openh264_sys2::ENCODER_OPTION, openh264_sys2::LAYER_NUM); 3] = if bps >= old_bps {
        [max, target_all, target_0]
    } else {
        [target_all, target_0, max]
    };
    for (option, layer) in steps {
        let mut info = SBitrateInfo {
            iLayer: layer as _,
            iBitrate: bitrate,
        };
        // SAFETY: `raw_api` hands out the encoder's vtable; we only use SetOption with the two
        // bitrate options, whose argument is a pointer to an `SBitrateInfo` that lives on our
        // stack for the duration of the call (OpenH264 copies the values, keeps no pointer).
        // The openh264 crate re-applies its own parameters only on resolution change, which
        // does not happen here (fixed geometry), so this does not break its invariants.
        let rc = unsafe {
            enc.raw_api()
                .set_option(option, (&raw mut info).cast::<c_void>())
        };
        if rc != 0 {
            return Err(format!("SetOption({option}, layer {layer}) = {rc}"));
        }
    }
    Ok(())
}

/// Switches an initialized OpenH264 encoder to `slices` fixed slices per picture encoded by as
/// many threads. OpenH264 threads per slice only (`iMultipleThreadIdc` becomes
/// min(threads, slices) at init), and the openh264 crate always asks for one slice, so the
/// parameters are read back (GetOption), changed and set again (SetOption), which re-initialises
/// the encoder: its next picture is an IDR.
pub(crate) fn openh264_use_slices(
    enc: &mut openh264::encoder::Encoder,
    slices: u16,
) -> Result<(), String> {
    use openh264_sys2::{ENCODER_OPTION_SVC_ENCODE_PARAM_EXT, SEncParamExt, SM_FIXEDSLCNUM_SLICE};
    let mut params = SEncParamExt::default();
    // SAFETY: GetOption(ENCODER_OPTION_SVC_ENCODE_PARAM_EXT) copies the encoder's current
    // parameters (`sizeof(SEncParamExt)` bytes, the struct the binding declares for this
    // OpenH264 version) into `params`, which lives on our stack for the call; the encoder is
    // initialized (the caller encoded a picture with it).
    let rc = unsafe {
        enc.raw_api().get_option(
            ENCODER_OPTION_SVC_ENCODE_PARAM_EXT,
            (&raw mut params).cast::<c_void>(),
        )
    };
    if rc != 0 {
        return Err(format!("GetOption(SVC_ENCODE_PARAM_EXT) = {rc}"));
    }
    params.iMultipleThreadIdc = slices;
    let layer = &mut params.sSpatialLayers[0].sSliceArgument;
    layer.uiSliceMode = SM_FIXEDSLCNUM_SLICE;
    layer.uiSliceNum = u32::from(slices);
    // SAFETY: SetOption(ENCODER_OPTION_SVC_ENCODE_PARAM_EXT) reads one `SEncParamExt` from the
    // pointer (copied before it returns; no pointer is kept). The values are the encoder's own
    // but for the thread and slice counts, which OpenH264 validates (clamped to its limits).
    // The openh264 crate re-applies its own parameters only on a resolution change, which does
    // not happen here (fixed geometry), so its one-slice setting does not come back.
    let rc = unsafe {
        enc.raw_api().set_option(
            ENCODER_OPTION_SVC_ENCODE_PARAM_EXT,
            (&raw mut params).cast::<c_void>(),
        )
    };
    if rc != 0 {
        return Err(format!(
            "SetOption(SVC_ENCODE_PARAM_EXT, {slices} slices) = {rc}"
        ));
    }
    Ok(())
}

/// Value layout of `NV_ENCODE_API_FUNCTION_LIST`: a version word, a reserved word, then the
/// function pointers and reserved pointer slots. The driver fills at most its own struct size
/// for the requested version; every SDK to date uses fewer than 320 pointer slots, so
/// [`NVENC_FN_SLOTS`] leaves room for growth.
const NVENC_FN_SLOTS: usize = 512;

#[repr(C)]
struct NvEncFunctionList {
    version: u32,
    reserved: u32,
    slots: [*mut c_void; NVENC_FN_SLOTS],
}

type GetMaxSupportedVersion = unsafe extern "C" fn(*mut u32) -> i32;
type CreateInstance = unsafe extern "C" fn(*mut NvEncFunctionList) -> i32;

/// `libnvidia-encode` loaded with `dlopen`.
pub(crate) struct NvEncodeLib {
    lib: libloading::Library,
}

impl NvEncodeLib {
    /// `dlopen`s `name` (a soname or path). Fails cleanly when the driver is absent.
    pub(crate) fn open(name: &str) -> Result<Self, String> {
        // SAFETY: loading a shared library runs its initialisers. The library we load is the
        // NVIDIA driver's encode library (or nothing); its initialisers are the vendor's and are
        // the same ones FFmpeg/Sunshine run. No symbol is used before the checks below.
        let lib = unsafe { libloading::Library::new(name) }.map_err(|e| e.to_string())?;
        Ok(Self { lib })
    }

    /// `NvEncodeAPIGetMaxSupportedVersion`: (major << 4) | minor.
    pub(crate) fn max_supported_version(&self) -> Result<u32, String> {
        // SAFETY: the symbol's C signature is `NVENCSTATUS (uint32_t*)` in every NVENC SDK;
        // `GetMaxSupportedVersion` matches it (NVENCSTATUS is a C enum = i32).
        let f = unsafe {
            self.lib
                .get::<GetMaxSupportedVersion>(b"NvEncodeAPIGetMaxSupportedVersion\0")
        }
        .map_err(|e| e.to_string())?;
        let mut version = 0u32;
        // SAFETY: `version` is a valid, writable u32 for the duration of the call.
        let status = unsafe { f(&raw mut version) };
        if status != 0 {
            return Err(format!(
                "NvEncodeAPIGetMaxSupportedVersion returned {status}"
            ));
        }
        Ok(version)
    }

    /// `NvEncodeAPICreateInstance` for `struct_version`; returns how many of the table's slots
    /// the driver filled with function pointers.
    pub(crate) fn create_function_table(&self, struct_version: u32) -> Result<usize, String> {
        // SAFETY: the symbol's C signature is `NVENCSTATUS (NV_ENCODE_API_FUNCTION_LIST*)`.
        let f = unsafe {
            self.lib
                .get::<CreateInstance>(b"NvEncodeAPICreateInstance\0")
        }
        .map_err(|e| e.to_string())?;
        let mut table = Box::new(NvEncFunctionList {
            version: struct_version,
            reserved: 0,
            slots: [std::ptr::null_mut(); NVENC_FN_SLOTS],
        });
        // SAFETY: `table` is a zeroed, writable struct at least as large as any SDK's
        // NV_ENCODE_API_FUNCTION_LIST (see NVENC_FN_SLOTS) with the version word set; the
        // driver writes function pointers into it and keeps no reference to it.
        let status = unsafe { f(&raw mut *table) };
        if status != 0 {
            return Err(format!("NvEncodeAPICreateInstance returned {status}"));
        }
        Ok(table.slots.iter().filter(|p| !p.is_null()).count())
    }
}
