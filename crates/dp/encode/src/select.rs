//! Encoder selection: `auto` = NVENC when it is detected *and* a session opens, else OpenH264,
//! with a one-line reason for the log and status page. The decision from the probe is a pure
//! function ([`choose`]) so it is testable without hardware; [`build`] then opens the session
//! and, under `auto`, falls back to OpenH264 (saying why) when the GPU refuses it — e.g. a
//! data-centre GPU with the driver but no NVENC engine. A chosen NVENC encoder is wrapped in
//! [`FallbackEncoder`], so a GPU lost mid-stream continues in software.

use crate::nvenc::fallback::FallbackEncoder;
use crate::nvenc::session::NvencConfig;
use crate::nvenc::{self, NvencInfo};
use crate::openh264_enc::{OpenH264Config, OpenH264Encoder};
use crate::{EncodeError, Encoder};

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

/// Probes NVENC, decides, and builds the encoder.
pub fn build(
    pref: Preference,
    cfg: OpenH264Config,
) -> Result<(Box<dyn Encoder + Send>, Choice), EncodeError> {
    let choice = choose(pref, &nvenc::detect())?;
    if choice.backend == Backend::Nvenc {
        let ncfg = NvencConfig::h264(cfg.width, cfg.height, cfg.fps, cfg.bitrate_bps);
        match nvenc::open(ncfg) {
            Ok(mut enc) => {
                enc.set_max_access_unit_bytes(cfg.max_access_unit_bytes);
                let soft =
                    move || Ok(Box::new(OpenH264Encoder::new(cfg)?) as Box<dyn Encoder + Send>);
                return Ok((Box::new(FallbackEncoder::new(Box::new(enc), soft)), choice));
            }
            Err(e) if pref == Preference::Nvenc => return Err(e),
            Err(e) => {
                let reason = format!("openh264: {}, but the session failed: {e}", choice.reason);
                let choice = Choice {
                    backend: Backend::OpenH264,
                    reason,
                };
                return Ok((Box::new(OpenH264Encoder::new(cfg)?), choice));
            }
        }
    }
    Ok((Box::new(OpenH264Encoder::new(cfg)?), choice))
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
}
