//! Encoder selection: `auto` = NVENC when it is detected *and* a session opens, else OpenH264,
//! with a one-line reason for the log and status page. The decision from the probe is a pure
//! function ([`choose`]) so it is testable without hardware.
//!
//! The data plane decides once at start ([`Selection::select`]): it probes the driver and, for
//! NVENC, opens a short session for the capability queries — so a GPU whose driver loads but
//! which has no NVENC engine (a data-centre GPU) is found at start, not at the first session,
//! and the formats the control plane advertises are the GPU's. Under `auto` a refusal falls
//! back to OpenH264 (saying why); under `nvenc` it is an error the caller fails fast with.
//! Each session's encoder then comes from [`Selection::build`]: NVENC at the session's codec
//! and bit depth wrapped in [`FallbackEncoder`] (a GPU lost mid-stream continues in software,
//! for H.264 8-bit sessions: OpenH264 makes nothing else), or OpenH264.
//!
//! The driver is reached through [`NvencOpen`]: [`DriverNvenc`] in production, the recording
//! fake (`nvenc::fake`, feature `fake-gpu`) in tests. [`build`] is the one-shot form the
//! self-test uses.

use std::sync::Arc;

use strahl_capture::format::CodecKind;

use crate::nvenc::api::Codec;
use crate::nvenc::fallback::FallbackEncoder;
use crate::nvenc::session::NvencConfig;
use crate::nvenc::{self, NvencInfo};
use crate::openh264_enc::{OpenH264Config, OpenH264Encoder};
use crate::{Capability, EncodeError, Encoder};

/// What the operator asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preference {
    Auto,
    Nvenc,
    Software,
}

/// The chosen backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Nvenc,
    OpenH264,
}

impl Backend {
    /// The encoder's name, as [`Encoder::name`] reports it.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Nvenc => "nvenc",
            Backend::OpenH264 => "openh264",
        }
    }
}

/// A decision plus why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Choice {
    pub backend: Backend,
    pub reason: String,
}

/// Decides from a preference and an NVENC probe result.
pub fn choose(
    pref: Preference,
    nvenc: &Result<NvencInfo, EncodeError>,
) -> Result<Choice, EncodeError> {
    let soft = |reason: String| Choice {
        backend: Backend::OpenH264,
        reason,
    };
    match (pref, nvenc) {
        (Preference::Software, _) => Ok(soft("openh264: software encoder requested".into())),
        (_, Ok(info)) => Ok(Choice {
            backend: Backend::Nvenc,
            reason: format!(
                "nvenc: driver API {}.{} detected",
                info.driver_api.0, info.driver_api.1
            ),
        }),
        (Preference::Nvenc, Err(e)) => Err(EncodeError::NotAvailable(e.to_string())),
        (Preference::Auto, Err(e)) => Ok(soft(format!("openh264: {e}"))),
    }
}

/// How NVENC is reached: the driver, or a fake in tests.
pub trait NvencOpen: Send + Sync {
    /// The probe ([`nvenc::detect`]: the library loads, its API version suffices).
    fn detect(&self) -> Result<NvencInfo, EncodeError>;
    /// Opens one session.
    fn open(&self, cfg: NvencConfig) -> Result<Box<dyn Encoder + Send>, EncodeError>;
    /// What the GPU produces ([`nvenc::capability`]: a short session's queries).
    fn capability(&self) -> Result<Capability, EncodeError>;
}

/// The `dlopen`ed driver.
#[derive(Clone, Copy, Debug, Default)]
pub struct DriverNvenc;

impl NvencOpen for DriverNvenc {
    fn detect(&self) -> Result<NvencInfo, EncodeError> {
        nvenc::detect()
    }

    fn open(&self, cfg: NvencConfig) -> Result<Box<dyn Encoder + Send>, EncodeError> {
        Ok(Box::new(nvenc::open(cfg)?))
    }

    fn capability(&self) -> Result<Capability, EncodeError> {
        nvenc::capability()
    }
}

/// The start-time decision: the backend, why, and what it produces.
#[derive(Clone)]
pub struct Selection {
    pub choice: Choice,
    /// The formats of the chosen backend (NVENC: as the GPU reported them at start).
    pub capability: Capability,
    /// The way to NVENC when it was chosen.
    nvenc: Option<Arc<dyn NvencOpen>>,
}

impl std::fmt::Debug for Selection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Selection")
            .field("choice", &self.choice)
            .field("capability", &self.capability)
            .finish_non_exhaustive()
    }
}

impl Selection {
    /// Probes `gpu` and decides (see the module header). Errors only under
    /// [`Preference::Nvenc`]: [`EncodeError::NotAvailable`] without the driver, or whatever
    /// opening the probe session returned.
    pub fn select(pref: Preference, gpu: Arc<dyn NvencOpen>) -> Result<Self, EncodeError> {
        let choice = choose(pref, &gpu.detect())?;
        if choice.backend == Backend::OpenH264 {
            return Ok(Self::openh264(choice.reason));
        }
        match gpu.capability() {
            Ok(capability) if capability.formats.is_empty() => {
                let e = EncodeError::NotAvailable("nvenc: the GPU lists no codec".into());
                Self::refused(pref, &choice, e)
            }
            Ok(capability) => Ok(Self {
                choice,
                capability,
                nvenc: Some(gpu),
            }),
            Err(e) => Self::refused(pref, &choice, e),
        }
    }

    fn refused(pref: Preference, choice: &Choice, e: EncodeError) -> Result<Self, EncodeError> {
        if pref == Preference::Nvenc {
            return Err(e);
        }
        Ok(Self::openh264(format!(
            "openh264: {}, but the session failed: {e}",
            choice.reason
        )))
    }

    /// OpenH264, for `reason`.
    pub fn openh264(reason: impl Into<String>) -> Self {
        Self {
            choice: Choice {
                backend: Backend::OpenH264,
                reason: reason.into(),
            },
            capability: crate::openh264_enc::capability(),
            nvenc: None,
        }
    }

    /// One session's encoder at `codec` and bit depth (the caller checked them against
    /// [`Selection::capability`]). NVENC sessions are wrapped in [`FallbackEncoder`]; a
    /// session NVENC refuses under `auto` is encoded by OpenH264 when it is H.264 8-bit (the
    /// returned choice says why), and is an error otherwise.
    pub fn build(
        &self,
        cfg: OpenH264Config,
        codec: CodecKind,
        ten_bit: bool,
    ) -> Result<(Box<dyn Encoder + Send>, Choice), EncodeError> {
        let software_ok = codec == CodecKind::H264 && !ten_bit;
        let Some(gpu) = &self.nvenc else {
            if !software_ok {
                return Err(no_software(codec, ten_bit));
            }
            return Ok((Box::new(OpenH264Encoder::new(cfg)?), self.choice.clone()));
        };
        let ncfg = NvencConfig {
            codec: match codec {
                CodecKind::H264 => Codec::H264,
                CodecKind::Hevc => Codec::Hevc,
                CodecKind::Av1 => Codec::Av1,
            },
            ten_bit,
            ..NvencConfig::h264(cfg.width, cfg.height, cfg.fps, cfg.bitrate_bps)
        };
        match gpu.open(ncfg) {
            Ok(mut enc) => {
                enc.set_max_access_unit_bytes(cfg.max_access_unit_bytes);
                let soft = move || {
                    if !software_ok {
                        return Err(no_software(codec, ten_bit));
                    }
                    Ok(Box::new(OpenH264Encoder::new(cfg)?) as Box<dyn Encoder + Send>)
                };
                Ok((
                    Box::new(FallbackEncoder::new(enc, soft)),
                    self.choice.clone(),
                ))
            }
            Err(e) if software_ok => {
                let reason = format!(
                    "openh264: {}, but this session's failed: {e}",
                    self.choice.reason
                );
                let choice = Choice {
                    backend: Backend::OpenH264,
                    reason,
                };
                Ok((Box::new(OpenH264Encoder::new(cfg)?), choice))
            }
            Err(e) => Err(e),
        }
    }
}

fn no_software(codec: CodecKind, ten_bit: bool) -> EncodeError {
    EncodeError::NotAvailable(format!(
        "no software encoder for {} {}-bit (openh264 makes H.264 8-bit only)",
        codec.name(),
        if ten_bit { 10 } else { 8 }
    ))
}

/// Probes NVENC, decides, and builds one H.264 encoder: the self-test's one-shot form of
/// [`Selection`].
pub fn build(
    pref: Preference,
    cfg: OpenH264Config,
) -> Result<(Box<dyn Encoder + Send>, Choice), EncodeError> {
    Selection::select(pref, Arc::new(DriverNvenc))?.build(cfg, CodecKind::H264, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found() -> Result<NvencInfo, EncodeError> {
        Ok(NvencInfo {
            driver_api: (12, 2),
            functions: 40,
        })
    }

    fn missing() -> Result<NvencInfo, EncodeError> {
        Err(EncodeError::NotAvailable(
            "libnvidia-encode.so.1 not found".into(),
        ))
    }

    #[test]
    fn auto_falls_back_with_a_reason() {
        let c = choose(Preference::Auto, &missing()).unwrap();
        assert_eq!(c.backend, Backend::OpenH264);
        assert!(
            c.reason.contains("libnvidia-encode.so.1 not found"),
            "{}",
            c.reason
        );
        let c = choose(Preference::Auto, &found()).unwrap();
        assert_eq!(c.backend, Backend::Nvenc);
        assert!(c.reason.contains("12.2"), "{}", c.reason);
        assert!(!c.reason.contains('\n'));
    }

    #[test]
    fn explicit_nvenc_fails_typed() {
        assert!(matches!(
            choose(Preference::Nvenc, &missing()),
            Err(EncodeError::NotAvailable(_))
        ));
        assert_eq!(
            choose(Preference::Nvenc, &found()).unwrap().backend,
            Backend::Nvenc
        );
        assert_eq!(
            choose(Preference::Software, &found()).unwrap().backend,
            Backend::OpenH264
        );
    }

    #[test]
    fn build_explicit_nvenc_without_the_driver_fails_typed() {
        if nvenc::detect().is_ok() {
            return; // a machine with the driver: covered by the selftest, not here
        }
        let r = build(
            Preference::Nvenc,
            OpenH264Config::new(320, 240, 60, 1_000_000),
        );
        assert!(
            matches!(r, Err(EncodeError::NotAvailable(ref m)) if m.contains(nvenc::LIBRARY)),
            "{:?}",
            r.err()
        );
    }

    #[test]
    fn build_auto_here_gives_openh264() {
        let (enc, choice) = build(
            Preference::Auto,
            OpenH264Config::new(320, 240, 60, 1_000_000),
        )
        .unwrap();
        assert_eq!(enc.name(), "openh264");
        assert_eq!(choice.backend, Backend::OpenH264);
    }

    use crate::nvenc::api::NvError;
    use crate::nvenc::fake::FakeGpu;

    #[test]
    fn selection_with_a_gpu_advertises_its_formats_and_builds_nvenc_sessions() {
        let gpu = FakeGpu::default();
        let sel = Selection::select(Preference::Auto, Arc::new(gpu.clone())).unwrap();
        assert_eq!(sel.choice.backend, Backend::Nvenc);
        assert_eq!(sel.capability.encoder, "nvenc");
        assert!(sel.capability.supports(CodecKind::Hevc, 10, false));
        // The probe session is gone again.
        assert_eq!(gpu.live(), Vec::<String>::new());
        let cfg = OpenH264Config::new(320, 240, 60, 1_000_000);
        let (enc, choice) = sel.build(cfg, CodecKind::Hevc, true).unwrap();
        assert_eq!((enc.name(), choice.backend), ("nvenc", Backend::Nvenc));
        drop(enc);
        assert_eq!(gpu.live(), Vec::<String>::new());
        assert_eq!(gpu.violations(), Vec::<String>::new());
    }

    #[test]
    fn a_gpu_without_an_encode_engine_is_openh264_under_auto_and_an_error_under_nvenc() {
        let engine = || {
            let gpu = FakeGpu::default();
            gpu.fail_once(
                "open_session",
                0,
                NvError::Unsupported("NV_ENC_ERR_NO_ENCODE_DEVICE".into()),
            );
            Arc::new(gpu)
        };
        let sel = Selection::select(Preference::Auto, engine()).unwrap();
        assert_eq!(sel.choice.backend, Backend::OpenH264);
        assert!(
            sel.choice.reason.contains("NV_ENC_ERR_NO_ENCODE_DEVICE"),
            "{}",
            sel.choice.reason
        );
        assert_eq!(sel.capability, crate::openh264_enc::capability());
        let err = Selection::select(Preference::Nvenc, engine()).unwrap_err();
        assert!(matches!(err, EncodeError::NotAvailable(_)), "{err}");
        // `openh264` never asks the GPU.
        let gpu = FakeGpu::default();
        let sel = Selection::select(Preference::Software, Arc::new(gpu.clone())).unwrap();
        assert_eq!(sel.choice.backend, Backend::OpenH264);
        assert!(gpu.calls().is_empty());
    }

    #[test]
    fn a_session_nvenc_refuses_is_openh264_only_where_openh264_can_encode_it() {
        let gpu = FakeGpu::default();
        let sel = Selection::select(Preference::Auto, Arc::new(gpu.clone())).unwrap();
        let cfg = OpenH264Config::new(320, 240, 60, 1_000_000);
        let refuse = || gpu.fail_once("open_session", 0, NvError::Unsupported("busy".into()));
        refuse();
        let (enc, choice) = sel.build(cfg, CodecKind::H264, false).unwrap();
        assert_eq!(
            (enc.name(), choice.backend),
            ("openh264", Backend::OpenH264)
        );
        assert!(choice.reason.contains("busy"), "{}", choice.reason);
        refuse();
        let err = sel.build(cfg, CodecKind::Av1, false).err().unwrap();
        assert!(matches!(err, EncodeError::NotAvailable(_)), "{err}");
        // Without NVENC an HEVC session has no encoder at all.
        let soft = Selection::openh264("openh264: requested");
        let err = soft.build(cfg, CodecKind::Hevc, false).err().unwrap();
        assert!(err.to_string().contains("HEVC"), "{err}");
    }
}
