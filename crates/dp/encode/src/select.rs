//! Encoder selection: `auto` = NVENC when it is detected *and* usable, else OpenH264, with a
//! one-line reason for the log and status page. The decision is a pure function of the probe
//! result so it is testable without hardware.

use crate::nvenc::{self, NvencInfo};
use crate::openh264_enc::{OpenH264Config, OpenH264Encoder};
use crate::{EncodeError, Encoder};

/// Whether an NVENC encode session is implemented. Detection is; the session (CUDA context,
/// NV_ENC_INITIALIZE_PARAMS, bitstream buffers) is not yet, so auto never picks NVENC.
pub const NVENC_SESSION_IMPLEMENTED: bool = false;

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
        (_, Ok(info)) if NVENC_SESSION_IMPLEMENTED => Ok(Choice {
            backend: Backend::Nvenc,
            reason: format!(
                "nvenc: driver API {}.{} detected",
                info.driver_api.0, info.driver_api.1
            ),
        }),
        (Preference::Nvenc, Ok(info)) => Err(EncodeError::NotAvailable(format!(
            "driver API {}.{} detected, but the NVENC encode session is not implemented",
            info.driver_api.0, info.driver_api.1
        ))),
        (Preference::Nvenc, Err(e)) => Err(EncodeError::NotAvailable(e.to_string())),
        (Preference::Auto, Ok(info)) => Ok(soft(format!(
            "openh264: NVENC API {}.{} detected but its encode session is not implemented",
            info.driver_api.0, info.driver_api.1
        ))),
        (Preference::Auto, Err(e)) => Ok(soft(format!("openh264: {e}"))),
    }
}

/// Probes NVENC, decides, and builds the encoder.
pub fn build(
    pref: Preference,
    cfg: OpenH264Config,
) -> Result<(Box<dyn Encoder + Send>, Choice), EncodeError> {
    let choice = choose(pref, &nvenc::detect())?;
    match choice.backend {
        Backend::OpenH264 => Ok((Box::new(OpenH264Encoder::new(cfg)?), choice)),
        Backend::Nvenc => Err(EncodeError::NotAvailable(
            "NVENC encode session not implemented".into(),
        )),
    }
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
        assert_eq!(c.backend, Backend::OpenH264);
        assert!(c.reason.contains("12.2"), "{}", c.reason);
        assert!(!c.reason.contains('\n'));
    }

    #[test]
    fn explicit_nvenc_fails_typed() {
        assert!(matches!(
            choose(Preference::Nvenc, &missing()),
            Err(EncodeError::NotAvailable(_))
        ));
        assert!(matches!(
            choose(Preference::Nvenc, &found()),
            Err(EncodeError::NotAvailable(_))
        ));
        assert_eq!(
            choose(Preference::Software, &found()).unwrap().backend,
            Backend::OpenH264
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
}
