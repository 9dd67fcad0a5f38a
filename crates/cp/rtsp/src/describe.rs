//! The DESCRIBE reply body (gamestream-host.md §A9 step 2, §A10).
//!
//! Contract: [`describe_body`] renders the host's capabilities as `\n`-terminated lines, the way
//! Sunshine does; the client only searches the body with `strstr`, so each marker is emitted
//! exactly when its condition holds:
//! - `a=x-ss-general.featureFlags`, `encryptionSupported`, `encryptionRequested` always;
//! - `a=x-nv-video[0].refPicInvalidation:1` iff the encoder supports RFI;
//! - `sprop-parameter-sets=AAAAAU` iff some HEVC format is enabled (the client's HEVC test);
//! - `a=rtpmap:98 AV1/90000` iff some AV1 format is enabled (the client's AV1 test);
//! - `a=fmtp:97 surround-params=…`: a launch-supplied layout twice, then stereo, 5.1 and 7.1
//!   normal followed by HQ (§A9, §A17).

use std::fmt::Write;

use crate::announce::{EncryptionFlags, HostCodecs};
use crate::media::{STEREO, SURROUND_51, SURROUND_51_HQ, SURROUND_71, SURROUND_71_HQ};

/// The HEVC marker the client searches for (§A10).
pub const HEVC_MARKER: &str = "sprop-parameter-sets=AAAAAU";
/// The AV1 marker the client searches for (§A10).
pub const AV1_MARKER: &str = "a=rtpmap:98 AV1/90000";

/// A launch-supplied `surroundParams` value: `<channels><streams><coupled><mapping digits>`,
/// all decimal digits, as /launch passes it (§A7). Validated so it cannot corrupt the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SurroundParams(String);

impl SurroundParams {
    /// Accepts 2, 6 or 8 channels, streams and coupled counts that fit, and exactly one mapping
    /// digit per channel, each naming a valid Opus stream channel.
    pub fn new(s: &str) -> Option<Self> {
        let d: Vec<u8> = s
            .bytes()
            .map(|b| b.wrapping_sub(b'0'))
            .take_while(|&d| d <= 9)
            .collect();
        if d.len() != s.len() || d.len() < 3 {
            return None;
        }
        let (ch, streams, coupled) = (d[0], d[1], d[2]);
        let ok = matches!(ch, 2 | 6 | 8)
            && streams >= 1
            && coupled <= streams
            && streams + coupled <= ch
            && d.len() == 3 + usize::from(ch)
            && d[3..].iter().all(|&m| m < streams + coupled);
        ok.then(|| SurroundParams(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What DESCRIBE advertises.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribeParams {
    /// `a=x-ss-general.featureFlags`: 0x01 pen/touch, 0x02 controller touch.
    pub host_feature_flags: u32,
    pub encryption_supported: EncryptionFlags,
    pub encryption_requested: EncryptionFlags,
    pub codecs: HostCodecs,
    pub rfi_supported: bool,
    pub launch_surround_params: Option<SurroundParams>,
}

/// Render the DESCRIBE body. See the module contract.
pub fn describe_body(p: &DescribeParams) -> Vec<u8> {
    let mut s = String::with_capacity(512);
    // Writing into a String cannot fail.
    let _ = writeln!(s, "a=x-ss-general.featureFlags:{}", p.host_feature_flags);
    let _ = writeln!(
        s,
        "a=x-ss-general.encryptionSupported:{}",
        p.encryption_supported.0
    );
    let _ = writeln!(
        s,
        "a=x-ss-general.encryptionRequested:{}",
        p.encryption_requested.0
    );
    if p.rfi_supported {
        s.push_str("a=x-nv-video[0].refPicInvalidation:1\n");
    }
    if p.codecs.any_hevc() {
        s.push_str(HEVC_MARKER);
        s.push('\n');
    }
    if p.codecs.any_av1() {
        s.push_str(AV1_MARKER);
        s.push('\n');
    }
    if let Some(launch) = &p.launch_surround_params {
        for _ in 0..2 {
            let _ = writeln!(s, "a=fmtp:97 surround-params={}", launch.as_str());
        }
    }
    for layout in [
        STEREO,
        SURROUND_51,
        SURROUND_51_HQ,
        SURROUND_71,
        SURROUND_71_HQ,
    ] {
        let _ = writeln!(s, "a=fmtp:97 surround-params={}", layout.surround_params());
    }
    s.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn surround_params_validation() {
        assert!(SurroundParams::new("21101").is_some());
        assert!(SurroundParams::new("642012453").is_some());
        assert!(SurroundParams::new("88001234567").is_some());
        assert!(SurroundParams::new("").is_none());
        assert!(SurroundParams::new("2110").is_none()); // one mapping digit short
        assert!(SurroundParams::new("211012").is_none()); // one too many
        assert!(SurroundParams::new("31101").is_none()); // 3 channels
        assert!(SurroundParams::new("21191").is_none()); // mapping beyond streams
        assert!(SurroundParams::new("2110\n").is_none());
        assert!(SurroundParams::new("21x01").is_none());
    }
}
