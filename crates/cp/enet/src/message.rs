//! Control stream V2 messages (§A12): typed decoding of what the client sends, and encoders
//! (fixed-size arrays, no allocation) for what the host sends. The V2 type/length header and
//! the encryption around it are `strahl_seal::gamestream::ControlCipher`'s business.

use strahl_input::InputEvent;
use strahl_input::wire::{self, InputError};

// Client → host.
pub const MSG_PING: u16 = 0x0200;
pub const MSG_LOSS_STATS: u16 = 0x0201;
pub const MSG_INPUT: u16 = 0x0206;
pub const MSG_RFI: u16 = 0x0301;
pub const MSG_IDR_REQUEST: u16 = 0x0302;
pub const MSG_START_B: u16 = 0x0307;
pub const MSG_LTR_ACK: u16 = 0x0350;
pub const MSG_FEC_STATUS: u16 = 0x5502;
/// Apollo's set-clipboard (frontier.md §1, used by Artemis). The reference names the type and
/// nothing else; strahl takes the whole V2 payload as the clipboard's UTF-8 text (the control
/// plane checks size, UTF-8 and the client's `clipboard-set` permission).
pub const MSG_SET_CLIPBOARD: u16 = 0x3001;

// Host → client.
pub const MSG_TERMINATION: u16 = 0x0109;
pub const MSG_RUMBLE: u16 = 0x010b;
pub const MSG_HDR_MODE: u16 = 0x010e;
pub const MSG_TRIGGER_RUMBLE: u16 = 0x5500;
pub const MSG_MOTION_REQUEST: u16 = 0x5501;
/// Same number as the client's SS_FRAME_FEC_STATUS; the direction tells them apart.
pub const MSG_RGB_LED: u16 = 0x5502;
pub const MSG_ADAPTIVE_TRIGGERS: u16 = 0x5503;

/// HRESULTs for the termination message (§A12).
pub const TERMINATION_GRACEFUL: u32 = 0x8003_0023;
pub const TERMINATION_FRAME_CONVERSION: u32 = 0x800e_9403;
pub const TERMINATION_PROTECTED_CONTENT: u32 = 0x800e_9302;

/// SS_FRAME_FEC_STATUS, all fields big-endian on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FecStatus {
    pub frame_index: u32,
    pub highest_recv_seq: u16,
    pub next_contiguous_seq: u16,
    pub missing_before_highest: u16,
    pub total_data: u16,
    pub total_parity: u16,
    pub recv_data: u16,
    pub recv_parity: u16,
    pub fec_pct: u8,
    pub block_index: u8,
    pub block_count: u8,
}

impl FecStatus {
    pub const WIRE_LEN: usize = 21;

    pub fn decode(p: &[u8]) -> Option<Self> {
        let p: &[u8; Self::WIRE_LEN] = p.get(..Self::WIRE_LEN)?.try_into().ok()?;
        let u16at = |i: usize| u16::from_be_bytes([p[i], p[i + 1]]);
        Some(FecStatus {
            frame_index: u32::from_be_bytes([p[0], p[1], p[2], p[3]]),
            highest_recv_seq: u16at(4),
            next_contiguous_seq: u16at(6),
            missing_before_highest: u16at(8),
            total_data: u16at(10),
            total_parity: u16at(12),
            recv_data: u16at(14),
            recv_parity: u16at(16),
            fec_pct: p[18],
            block_index: p[19],
            block_count: p[20],
        })
    }

    /// Client-side layout (tests, fuzz seeds).
    pub fn encode(&self) -> [u8; Self::WIRE_LEN] {
        let mut o = [0u8; Self::WIRE_LEN];
        o[..4].copy_from_slice(&self.frame_index.to_be_bytes());
        for (i, v) in [
            self.highest_recv_seq,
            self.next_contiguous_seq,
            self.missing_before_highest,
            self.total_data,
            self.total_parity,
            self.recv_data,
            self.recv_parity,
        ]
        .into_iter()
        .enumerate()
        {
            o[4 + 2 * i..6 + 2 * i].copy_from_slice(&v.to_be_bytes());
        }
        o[18] = self.fec_pct;
        o[19] = self.block_index;
        o[20] = self.block_count;
        o
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ClientMessage {
    Ping,
    IdrRequest,
    StartB,
    /// Sunshine reads the 24-byte payload as two LE i64 (first, last frame).
    RefInvalidation {
        first_frame: i64,
        last_frame: i64,
    },
    LtrAck {
        frame_index: u32,
    },
    FecStatus(FecStatus),
    Input(InputEvent),
    /// 0x3001: the clipboard text as received (unchecked: see [`MSG_SET_CLIPBOARD`]).
    SetClipboard(Vec<u8>),
    /// Legacy loss stats (never sent to Sunshine-type hosts); accepted and ignored.
    LossStats,
    Unknown(u16),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageError {
    TooShort {
        msg_type: u16,
        needed: usize,
        got: usize,
    },
    Input(InputError),
}

fn need(msg_type: u16, p: &[u8], needed: usize) -> Result<(), MessageError> {
    if p.len() < needed {
        return Err(MessageError::TooShort {
            msg_type,
            needed,
            got: p.len(),
        });
    }
    Ok(())
}

/// Decode one authenticated V2 message.
pub fn decode_client(msg_type: u16, p: &[u8]) -> Result<ClientMessage, MessageError> {
    Ok(match msg_type {
        MSG_PING => ClientMessage::Ping,
        MSG_IDR_REQUEST => ClientMessage::IdrRequest,
        MSG_START_B => ClientMessage::StartB,
        MSG_RFI => {
            need(msg_type, p, 16)?;
            let i64at = |i: usize| {
                let mut b = [0u8; 8];
                b.copy_from_slice(&p[i..i + 8]);
                i64::from_le_bytes(b)
            };
            ClientMessage::RefInvalidation {
                first_frame: i64at(0),
                last_frame: i64at(8),
            }
        }
        MSG_LTR_ACK => {
            need(msg_type, p, 4)?;
            ClientMessage::LtrAck {
                frame_index: u32::from_le_bytes([p[0], p[1], p[2], p[3]]),
            }
        }
        MSG_FEC_STATUS => {
            ClientMessage::FecStatus(FecStatus::decode(p).ok_or(MessageError::TooShort {
                msg_type,
                needed: FecStatus::WIRE_LEN,
                got: p.len(),
            })?)
        }
        MSG_INPUT => ClientMessage::Input(wire::decode(p).map_err(MessageError::Input)?),
        MSG_LOSS_STATS => ClientMessage::LossStats,
        MSG_SET_CLIPBOARD => ClientMessage::SetClipboard(p.to_vec()),
        other => ClientMessage::Unknown(other),
    })
}

/// Host → client payload encoders (the V2 type is the matching `MSG_*` constant).
pub mod host {
    /// 0x0109: u32 **BE** HRESULT.
    pub fn termination(hresult: u32) -> [u8; 4] {
        hresult.to_be_bytes()
    }

    /// 0x010b: u32 filler, id, low-frequency, high-frequency motor (u16 LE).
    pub fn rumble(id: u16, low: u16, high: u16) -> [u8; 10] {
        let mut o = [0u8; 10];
        // Sunshine's filler value; the client ignores it.
        o[..4].copy_from_slice(&0x00C0_FFEEu32.to_le_bytes());
        o[4..6].copy_from_slice(&id.to_le_bytes());
        o[6..8].copy_from_slice(&low.to_le_bytes());
        o[8..10].copy_from_slice(&high.to_le_bytes());
        o
    }

    /// 0x5500: id, left, right (u16 LE).
    pub fn trigger_rumble(id: u16, left: u16, right: u16) -> [u8; 6] {
        let mut o = [0u8; 6];
        o[..2].copy_from_slice(&id.to_le_bytes());
        o[2..4].copy_from_slice(&left.to_le_bytes());
        o[4..6].copy_from_slice(&right.to_le_bytes());
        o
    }

    /// 0x5501: id u16, report rate Hz u16, type u8 (1 accel, 2 gyro).
    pub fn motion_request(id: u16, rate_hz: u16, motion_type: u8) -> [u8; 5] {
        let mut o = [0u8; 5];
        o[..2].copy_from_slice(&id.to_le_bytes());
        o[2..4].copy_from_slice(&rate_hz.to_le_bytes());
        o[4] = motion_type;
        o
    }

    /// 0x5502 (host → client): id u16, r, g, b.
    pub fn rgb_led(id: u16, r: u8, g: u8, b: u8) -> [u8; 5] {
        let mut o = [0u8; 5];
        o[..2].copy_from_slice(&id.to_le_bytes());
        o[2] = r;
        o[3] = g;
        o[4] = b;
        o
    }

    /// 0x5503: id u16, flags, type-left, type-right, left[10], right[10].
    pub fn adaptive_triggers(
        id: u16,
        flags: u8,
        type_left: u8,
        type_right: u8,
        left: &[u8; 10],
        right: &[u8; 10],
    ) -> [u8; 25] {
        let mut o = [0u8; 25];
        o[..2].copy_from_slice(&id.to_le_bytes());
        o[2] = flags;
        o[3] = type_left;
        o[4] = type_right;
        o[5..15].copy_from_slice(left);
        o[15..25].copy_from_slice(right);
        o
    }

    /// HDR metadata as 0x010e carries it (LE u16s after the enable byte).
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
    pub struct HdrMetadata {
        pub primaries: [(u16, u16); 3],
        pub white_point: (u16, u16),
        pub max_display_luminance: u16,
        pub min_display_luminance: u16,
        pub max_cll: u16,
        pub max_fall: u16,
        pub max_full_frame_luminance: u16,
    }

    /// 0x010e: enabled u8, then 13 LE u16s.
    pub fn hdr_mode(enabled: bool, m: &HdrMetadata) -> [u8; 27] {
        let mut o = [0u8; 27];
        o[0] = u8::from(enabled);
        let vals = [
            m.primaries[0].0,
            m.primaries[0].1,
            m.primaries[1].0,
            m.primaries[1].1,
            m.primaries[2].0,
            m.primaries[2].1,
            m.white_point.0,
            m.white_point.1,
            m.max_display_luminance,
            m.min_display_luminance,
            m.max_cll,
            m.max_fall,
            m.max_full_frame_luminance,
        ];
        for (i, v) in vals.into_iter().enumerate() {
            o[1 + 2 * i..3 + 2 * i].copy_from_slice(&v.to_le_bytes());
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fec_status_is_big_endian() {
        let mut raw = [0u8; 21];
        raw[..4].copy_from_slice(&[0, 0, 1, 2]);
        raw[4..6].copy_from_slice(&[0x12, 0x34]);
        raw[20] = 4;
        let s = FecStatus::decode(&raw).unwrap();
        assert_eq!(s.frame_index, 0x102);
        assert_eq!(s.highest_recv_seq, 0x1234);
        assert_eq!(s.block_count, 4);
        assert_eq!(s.encode(), raw);
        assert!(FecStatus::decode(&raw[..20]).is_none());
    }

    #[test]
    fn decode_each_type() {
        assert_eq!(
            decode_client(MSG_IDR_REQUEST, &[0, 0]),
            Ok(ClientMessage::IdrRequest)
        );
        let mut rfi = [0u8; 24];
        rfi[..4].copy_from_slice(&7u32.to_le_bytes());
        rfi[8..12].copy_from_slice(&9u32.to_le_bytes());
        assert_eq!(
            decode_client(MSG_RFI, &rfi),
            Ok(ClientMessage::RefInvalidation {
                first_frame: 7,
                last_frame: 9
            })
        );
        assert!(matches!(
            decode_client(MSG_RFI, &rfi[..10]),
            Err(MessageError::TooShort { .. })
        ));
        assert_eq!(
            decode_client(MSG_LTR_ACK, &[5, 0, 0, 0, 0, 0, 0, 0]),
            Ok(ClientMessage::LtrAck { frame_index: 5 })
        );
        assert_eq!(
            decode_client(0x1234, &[]),
            Ok(ClientMessage::Unknown(0x1234))
        );
        assert!(matches!(
            decode_client(MSG_INPUT, &[1, 2]),
            Err(MessageError::Input(_))
        ));
        // The whole payload is the text, empty included (clears nothing: the control plane
        // stores an empty text as set).
        assert_eq!(
            decode_client(MSG_SET_CLIPBOARD, "grüß".as_bytes()),
            Ok(ClientMessage::SetClipboard("grüß".as_bytes().to_vec()))
        );
        assert_eq!(
            decode_client(MSG_SET_CLIPBOARD, &[]),
            Ok(ClientMessage::SetClipboard(Vec::new()))
        );
    }

    #[test]
    fn host_encoders() {
        assert_eq!(
            host::termination(TERMINATION_GRACEFUL),
            [0x80, 0x03, 0x00, 0x23]
        );
        assert_eq!(
            host::rumble(1, 0x0203, 0x0405),
            [0xEE, 0xFF, 0xC0, 0, 1, 0, 3, 2, 5, 4]
        );
        assert_eq!(host::rgb_led(2, 9, 8, 7), [2, 0, 9, 8, 7]);
        let h = host::hdr_mode(
            true,
            &host::HdrMetadata {
                max_full_frame_luminance: 0xABCD,
                ..Default::default()
            },
        );
        assert_eq!((h[0], h[25], h[26]), (1, 0xCD, 0xAB));
    }
}
