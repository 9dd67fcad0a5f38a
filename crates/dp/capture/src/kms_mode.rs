//! The client's mode on the connector, sans IO: which of a connector's modes serves a session
//! ([`choose`]), and the request/reply the data plane and the capture helper exchange about it
//! ([`ModeRequest`], [`ModeReply`]; sent by [`crate::kms_wire`]).
//!
//! Why: a headless appliance streams best when the display already has the client's size (no
//! scaling, no wasted pixels). When strahl owns the display (nobody else is DRM master), the
//! helper sets that mode with an atomic modeset for the session and restores the previous one
//! at its end ([`crate::kms_modeset`]); otherwise the encoder scales and the log says why.
//!
//! Contract:
//! - [`choose`]: exactly the requested W×H, progressive (interlaced and double-scan modes never
//!   serve a stream), at the refresh nearest the requested one (ties: the connector's preferred
//!   mode, then the higher refresh); a refresh of 0 asks for none in particular (preferred,
//!   then highest). Nothing at that size → [`NotOffered`](ModeReply::NotOffered) with
//!   [`summarise`]'s bounded summary of what the connector does offer.
//! - Messages: little-endian, their own magic and [`MODE_VERSION`] (independent of the frame
//!   messages'). Compatibility: a helper that answers requests says so in every frame it sends
//!   ([`crate::kms_wire::FLAG_MODES`]; older data planes ignore the bit), and the data plane
//!   only asks such a helper, so a new data plane never writes to an older helper (which would
//!   take the write for a hang-up). A request of another version is answered
//!   [`Failed`](ModeReply::Failed) naming both versions, never acted on.
//! - Decoding is for bytes off a socket: every length, magic, version, kind and size is checked
//!   and refused as [`WireError::Bad`]; nothing panics (proptest below).

use crate::kms_wire::{MAX_DIM, WireError};

/// Bumped on any layout change of [`ModeRequest`] or [`ModeReply`].
pub const MODE_VERSION: u16 = 1;
const REQUEST_MAGIC: u32 = u32::from_le_bytes(*b"SKMQ");
pub(crate) const REPLY_MAGIC: u32 = u32::from_le_bytes(*b"SKMA");
/// Bytes of one request.
pub const REQUEST_LEN: usize = 24;
/// Bytes of a reply's fixed part (the text follows).
pub const REPLY_HEADER: usize = 24;
/// Longest reply text (a summary of the offered modes, a reason).
pub const REPLY_TEXT_MAX: usize = 480;
/// Largest reply message.
pub const REPLY_MAX: usize = REPLY_HEADER + REPLY_TEXT_MAX;
/// The one request: set this mode for the session.
const OP_SET_MODE: u32 = 1;
/// Highest refresh a request may name (mHz): 1000 Hz.
pub const MAX_REFRESH_MHZ: u32 = 1_000_000;

const KIND_APPLIED: u16 = 1;
const KIND_HELD: u16 = 2;
const KIND_NOT_OFFERED: u16 = 3;
const KIND_FAILED: u16 = 4;

/// A display mode as the stream sees it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DisplayMode {
    pub width: u32,
    pub height: u32,
    /// Millihertz; 0 in a request: any.
    pub refresh_mhz: u32,
}

impl std::fmt::Display for DisplayMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}@{}", self.width, self.height, hz(self.refresh_mhz))
    }
}

/// `60`, `59.94`: millihertz as a short Hz figure.
pub fn hz(mhz: u32) -> String {
    let s = format!("{:.2}", f64::from(mhz) / 1000.0);
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The data plane asks for the session's mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModeRequest {
    pub mode: DisplayMode,
}

/// The helper's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModeReply {
    /// The connector shows this mode now (committed, or already showing); restored when the
    /// peer leaves.
    Applied(DisplayMode),
    /// Another process is DRM master (a compositor, a game): its display is left alone.
    HeldByOther,
    /// The connector has no such mode; what it offers, summarised.
    NotOffered(String),
    /// The modeset was tried and failed, or the request was refused; why.
    Failed(String),
}

impl ModeRequest {
    pub fn encode(&self) -> [u8; REQUEST_LEN] {
        let mut b = [0u8; REQUEST_LEN];
        b[0..4].copy_from_slice(&REQUEST_MAGIC.to_le_bytes());
        b[4..6].copy_from_slice(&MODE_VERSION.to_le_bytes());
        b[8..12].copy_from_slice(&OP_SET_MODE.to_le_bytes());
        b[12..16].copy_from_slice(&self.mode.width.to_le_bytes());
        b[16..20].copy_from_slice(&self.mode.height.to_le_bytes());
        b[20..24].copy_from_slice(&self.mode.refresh_mhz.to_le_bytes());
        b
    }

    pub fn decode(b: &[u8]) -> Result<Self, WireError> {
        if b.len() != REQUEST_LEN {
            return Err(WireError::Bad(format!(
                "request of {} bytes, want {REQUEST_LEN}",
                b.len()
            )));
        }
        if le32(b, 0) != REQUEST_MAGIC {
            return Err(WireError::Bad("request magic".into()));
        }
        let version = le16(b, 4);
        if version != MODE_VERSION {
            return Err(WireError::Bad(format!(
                "request version {version}, this helper speaks {MODE_VERSION}"
            )));
        }
        if le32(b, 8) != OP_SET_MODE {
            return Err(WireError::Bad(format!("request op {}", le32(b, 8))));
        }
        let mode = DisplayMode {
            width: le32(b, 12),
            height: le32(b, 16),
            refresh_mhz: le32(b, 20),
        };
        check_size(mode.width, mode.height)?;
        if mode.refresh_mhz > MAX_REFRESH_MHZ {
            return Err(WireError::Bad(format!("refresh {} mHz", mode.refresh_mhz)));
        }
        Ok(Self { mode })
    }
}

impl ModeReply {
    /// One message; a text longer than [`REPLY_TEXT_MAX`] is cut at a character boundary.
    pub fn encode(&self) -> Vec<u8> {
        let (kind, mode, text) = match self {
            Self::Applied(m) => (KIND_APPLIED, *m, ""),
            Self::HeldByOther => (KIND_HELD, DisplayMode::default(), ""),
            Self::NotOffered(s) => (KIND_NOT_OFFERED, DisplayMode::default(), s.as_str()),
            Self::Failed(s) => (KIND_FAILED, DisplayMode::default(), s.as_str()),
        };
        let mut cut = text.len().min(REPLY_TEXT_MAX);
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        let text = &text.as_bytes()[..cut];
        let mut b = Vec::with_capacity(REPLY_HEADER + text.len());
        b.extend_from_slice(&REPLY_MAGIC.to_le_bytes());
        b.extend_from_slice(&MODE_VERSION.to_le_bytes());
        b.extend_from_slice(&kind.to_le_bytes());
        for v in [mode.width, mode.height, mode.refresh_mhz] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(&(text.len() as u16).to_le_bytes());
        b.extend_from_slice(&[0u8; 2]);
        b.extend_from_slice(text);
        b
    }

    pub fn decode(b: &[u8]) -> Result<Self, WireError> {
        if b.len() < REPLY_HEADER || b.len() > REPLY_MAX {
            return Err(WireError::Bad(format!("reply of {} bytes", b.len())));
        }
        if le32(b, 0) != REPLY_MAGIC {
            return Err(WireError::Bad("reply magic".into()));
        }
        let version = le16(b, 4);
        if version != MODE_VERSION {
            return Err(WireError::Bad(format!(
                "reply version {version}, want {MODE_VERSION}"
            )));
        }
        let text_len = usize::from(le16(b, 20));
        if REPLY_HEADER + text_len != b.len() {
            return Err(WireError::Bad(format!(
                "reply text of {text_len} bytes in a {}-byte message",
                b.len()
            )));
        }
        let text = String::from_utf8_lossy(&b[REPLY_HEADER..]).into_owned();
        match le16(b, 6) {
            KIND_APPLIED => {
                let m = DisplayMode {
                    width: le32(b, 8),
                    height: le32(b, 12),
                    refresh_mhz: le32(b, 16),
                };
                check_size(m.width, m.height)?;
                Ok(Self::Applied(m))
            }
            KIND_HELD => Ok(Self::HeldByOther),
            KIND_NOT_OFFERED => Ok(Self::NotOffered(text)),
            KIND_FAILED => Ok(Self::Failed(text)),
            k => Err(WireError::Bad(format!("reply kind {k}"))),
        }
    }
}

fn check_size(w: u32, h: u32) -> Result<(), WireError> {
    if w == 0 || h == 0 || w > MAX_DIM || h > MAX_DIM {
        return Err(WireError::Bad(format!("mode size {w}x{h}")));
    }
    Ok(())
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// One mode a connector offers, as [`choose`] sees it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OfferedMode {
    pub width: u32,
    pub height: u32,
    pub refresh_mhz: u32,
    /// Interlaced or double-scan: never chosen for a stream.
    pub interlaced: bool,
    /// The connector's preferred mode (EDID's native one).
    pub preferred: bool,
}

impl OfferedMode {
    pub fn display(&self) -> DisplayMode {
        DisplayMode {
            width: self.width,
            height: self.height,
            refresh_mhz: self.refresh_mhz,
        }
    }
}

/// A mode's refresh in millihertz from its pixel clock (kHz) and totals, as the kernel's
/// `drm_mode_vrefresh` does (an interlaced mode's field rate is twice its frame rate); 0 for a
/// mode without totals.
pub fn refresh_mhz(clock_khz: u32, htotal: u16, vtotal: u16, interlaced: bool) -> u32 {
    let denom = u64::from(htotal) * u64::from(vtotal);
    let r = (u64::from(clock_khz) * 1_000_000)
        .checked_div(denom)
        .unwrap_or(0);
    let r = if interlaced { r * 2 } else { r };
    u32::try_from(r).unwrap_or(u32::MAX)
}

/// The index in `offered` of the mode that serves `want` (see the module contract), or what the
/// connector offers instead.
pub fn choose(offered: &[OfferedMode], want: DisplayMode) -> Result<usize, String> {
    let candidates = offered
        .iter()
        .enumerate()
        .filter(|(_, m)| (m.width, m.height) == (want.width, want.height));
    let mut only_interlaced = false;
    let best = candidates
        .filter(|(_, m)| {
            only_interlaced |= m.interlaced;
            !m.interlaced
        })
        .min_by_key(|(_, m)| {
            let distance = if want.refresh_mhz == 0 {
                0
            } else {
                m.refresh_mhz.abs_diff(want.refresh_mhz)
            };
            (distance, !m.preferred, u32::MAX - m.refresh_mhz)
        })
        .map(|(i, _)| i);
    best.ok_or_else(|| {
        let size = format!("{}x{}", want.width, want.height);
        if only_interlaced {
            format!("{size} only interlaced; offers {}", summarise(offered))
        } else {
            format!("no {size}; offers {}", summarise(offered))
        }
    })
}

/// Most distinct sizes [`summarise`] lists before `… (N more sizes)`.
const SUMMARY_SIZES: usize = 24;

/// `640x480@60, 800x600@56/60/72/75, 1920x1080i@60, …`: each size once (in the connector's
/// order), its refresh rates rounded to Hz, bounded ([`SUMMARY_SIZES`], and below
/// [`REPLY_TEXT_MAX`]).
pub fn summarise(offered: &[OfferedMode]) -> String {
    let mut sizes: Vec<(u32, u32, bool, Vec<u32>)> = Vec::new();
    for m in offered {
        let hz = (m.refresh_mhz + 500) / 1000;
        match sizes
            .iter_mut()
            .find(|s| (s.0, s.1, s.2) == (m.width, m.height, m.interlaced))
        {
            Some(s) => {
                if !s.3.contains(&hz) {
                    s.3.push(hz);
                }
            }
            None => sizes.push((m.width, m.height, m.interlaced, vec![hz])),
        }
    }
    if sizes.is_empty() {
        return "no modes".into();
    }
    let total = sizes.len();
    let mut out = String::new();
    for (n, (w, h, i, mut rates)) in sizes.into_iter().enumerate() {
        rates.sort_unstable();
        let rates: Vec<String> = rates.iter().map(u32::to_string).collect();
        let item = format!("{w}x{h}{}@{}", if i { "i" } else { "" }, rates.join("/"));
        // Room for the tail below, so the whole stays under the reply's bound.
        if n == SUMMARY_SIZES || out.len() + item.len() + 2 > REPLY_TEXT_MAX - 40 {
            out.push_str(&format!(", … ({} more sizes)", total - n));
            break;
        }
        if n > 0 {
            out.push_str(", ");
        }
        out.push_str(&item);
    }
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn m(width: u32, height: u32, hz: u32) -> OfferedMode {
        OfferedMode {
            width,
            height,
            refresh_mhz: hz * 1000,
            ..OfferedMode::default()
        }
    }

    fn want(width: u32, height: u32, hz: u32) -> DisplayMode {
        DisplayMode {
            width,
            height,
            refresh_mhz: hz * 1000,
        }
    }

    #[test]
    fn exact_size_at_the_nearest_refresh() {
        // virtio-gpu's list (no EDID): DMT modes, several rates per size.
        let offered = [
            OfferedMode {
                preferred: true,
                ..m(1024, 768, 60)
            },
            m(800, 600, 56),
            m(800, 600, 60),
            m(800, 600, 72),
            m(800, 600, 75),
            m(640, 480, 60),
            m(640, 480, 75),
        ];
        assert_eq!(choose(&offered, want(800, 600, 60)), Ok(2));
        assert_eq!(choose(&offered, want(800, 600, 70)), Ok(3), "72 is nearest");
        assert_eq!(
            choose(&offered, want(800, 600, 120)),
            Ok(4),
            "75: the highest"
        );
        assert_eq!(choose(&offered, want(640, 480, 30)), Ok(5));
        // No refresh asked: the highest at that size.
        assert_eq!(choose(&offered, want(800, 600, 0)), Ok(4));
        // The size must match exactly; a close one is not offered.
        let e = choose(&offered, want(800, 602, 60)).unwrap_err();
        assert!(e.starts_with("no 800x602; offers 1024x768@60, "), "{e}");
        assert!(
            e.contains("800x600@56/60/72/75") && e.contains("640x480@60/75"),
            "{e}"
        );
    }

    #[test]
    fn ties_go_to_the_preferred_then_the_higher_refresh() {
        let offered = [
            m(1920, 1080, 59),
            m(1920, 1080, 61),
            OfferedMode {
                preferred: true,
                ..m(1920, 1080, 61)
            },
        ];
        assert_eq!(choose(&offered, want(1920, 1080, 60)), Ok(2));
        let offered = [m(1920, 1080, 59), m(1920, 1080, 61)];
        assert_eq!(choose(&offered, want(1920, 1080, 60)), Ok(1));
        // 59.94 vs 60: exact millihertz distance decides.
        let ntsc = OfferedMode {
            refresh_mhz: 59_940,
            ..m(1920, 1080, 0)
        };
        let offered = [m(1920, 1080, 60), ntsc];
        let asked = DisplayMode {
            refresh_mhz: 59_940,
            ..want(1920, 1080, 0)
        };
        assert_eq!(choose(&offered, asked), Ok(1));
        assert_eq!(choose(&offered, want(1920, 1080, 60)), Ok(0));
    }

    #[test]
    fn interlaced_modes_never_serve_a_stream() {
        let i1080 = OfferedMode {
            interlaced: true,
            preferred: true,
            ..m(1920, 1080, 60)
        };
        let offered = [i1080, m(1920, 1080, 30), m(1280, 720, 60)];
        assert_eq!(
            choose(&offered, want(1920, 1080, 60)),
            Ok(1),
            "progressive 30 rather than interlaced 60"
        );
        let e = choose(&[i1080, m(1280, 720, 60)], want(1920, 1080, 60)).unwrap_err();
        assert_eq!(
            e,
            "1920x1080 only interlaced; offers 1920x1080i@60, 1280x720@60"
        );
        assert_eq!(
            choose(&[], want(640, 480, 60)).unwrap_err(),
            "no 640x480; offers no modes"
        );
    }

    #[test]
    fn refresh_from_clock_and_totals() {
        // CEA 1080p60: 148.5 MHz, 2200 x 1125.
        assert_eq!(refresh_mhz(148_500, 2200, 1125, false), 60_000);
        // DMT 800x600@60: 40 MHz, 1056 x 628.
        assert_eq!(refresh_mhz(40_000, 1056, 628, false), 60_316);
        assert_eq!(refresh_mhz(74_250, 2200, 1125, true), 60_000);
        assert_eq!(refresh_mhz(40_000, 0, 628, false), 0);
        assert_eq!(hz(60_316), "60.32");
        assert_eq!(hz(60_000), "60");
        assert_eq!(hz(59_940), "59.94");
    }

    #[test]
    fn summary_is_bounded() {
        let many: Vec<OfferedMode> = (0..200).map(|i| m(640 + 16 * i, 480 + 8 * i, 60)).collect();
        let s = summarise(&many);
        assert!(s.len() <= REPLY_TEXT_MAX, "{}", s.len());
        assert!(s.ends_with("more sizes)"), "{s}");
        assert!(s.starts_with("640x480@60, 656x488@60"), "{s}");
    }

    #[test]
    fn messages_round_trip() {
        let r = ModeRequest {
            mode: DisplayMode {
                width: 1280,
                height: 720,
                refresh_mhz: 59_940,
            },
        };
        assert_eq!(ModeRequest::decode(&r.encode()).unwrap(), r);
        for reply in [
            ModeReply::Applied(want(800, 600, 60)),
            ModeReply::HeldByOther,
            ModeReply::NotOffered("no 1000x700; offers 800x600@60".into()),
            ModeReply::Failed(String::new()),
            ModeReply::Failed("é".repeat(REPLY_TEXT_MAX)),
        ] {
            let b = reply.encode();
            assert!(b.len() <= REPLY_MAX);
            let back = ModeReply::decode(&b).unwrap();
            match (&reply, &back) {
                // Cut at a character boundary within the bound.
                (ModeReply::Failed(a), ModeReply::Failed(b)) if a.len() > REPLY_TEXT_MAX => {
                    assert!(a.starts_with(b.as_str()) && b.len() > REPLY_TEXT_MAX - 2);
                }
                _ => assert_eq!(back, reply),
            }
        }
    }

    #[test]
    fn bad_messages_are_refused() {
        let good = ModeRequest {
            mode: want(800, 600, 60),
        }
        .encode();
        let bad = |at: usize, v: u8| {
            let mut b = good;
            b[at] = v;
            ModeRequest::decode(&b).unwrap_err().to_string()
        };
        assert!(bad(0, b'X').contains("magic"));
        assert!(bad(4, 2).contains("request version 2, this helper speaks 1"));
        assert!(bad(8, 7).contains("op 7"));
        assert!(ModeRequest::decode(&good[..20]).is_err());
        let mut huge = good;
        huge[23] = 0xff;
        assert!(
            ModeRequest::decode(&huge)
                .unwrap_err()
                .to_string()
                .contains("refresh")
        );
        let zero = ModeRequest {
            mode: want(0, 600, 60),
        };
        assert!(ModeRequest::decode(&zero.encode()).is_err());

        let reply = ModeReply::NotOffered("abc".into()).encode();
        assert!(
            ModeReply::decode(&reply[..reply.len() - 1]).is_err(),
            "text short"
        );
        let mut long = reply.clone();
        long.push(b'd');
        assert!(ModeReply::decode(&long).is_err(), "text long");
        let mut kind = reply.clone();
        kind[6] = 9;
        assert!(
            ModeReply::decode(&kind)
                .unwrap_err()
                .to_string()
                .contains("kind 9")
        );
        let mut applied = ModeReply::Applied(want(800, 600, 60)).encode();
        applied[8..12].copy_from_slice(&(MAX_DIM + 1).to_le_bytes());
        assert!(ModeReply::decode(&applied).is_err());
    }

    proptest! {
        // Bytes off the socket: decoding never panics, and whatever decodes re-encodes to
        // something that decodes the same.
        #[test]
        fn decoding_any_bytes_never_panics(b in proptest::collection::vec(any::<u8>(), 0..600)) {
            if let Ok(r) = ModeRequest::decode(&b) {
                prop_assert_eq!(ModeRequest::decode(&r.encode()).unwrap(), r);
            }
            // (A reply's text may grow when invalid UTF-8 is replaced; it still re-encodes.)
            if let Ok(r) = ModeReply::decode(&b) {
                prop_assert!(ModeReply::decode(&r.encode()).is_ok());
            }
        }

        #[test]
        fn mutated_replies_never_panic(i in 0usize..40, v: u8) {
            let mut b = ModeReply::NotOffered("800x600@60".into()).encode();
            let n = b.len();
            b[i % n] = v;
            let _ = ModeReply::decode(&b);
        }
    }
}
