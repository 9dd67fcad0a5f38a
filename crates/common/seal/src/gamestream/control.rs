//! Control stream V2 encryption (§A12), one ENet packet payload at a time:
//! u16 LE 0x0001, u16 LE length = 4 + 16 + len(ct), u32 LE seq, 16-byte GCM tag, ciphertext.
//! The plaintext is the V2 message: u16 LE type, u16 LE payload length, payload.
//! AES-128-GCM with rikey, no AAD; IV = seq LE, zeros, side ('H'/'C'), 'C'.
//!
//! Each side counts its own seq; the host starts at 0 (as Sunshine does). Incoming seqs go
//! through the same replay window as `strahl/1` packets: a peer that repeated a seq would be
//! repeating a GCM nonce, so a duplicate is never legitimate, and unsequenced ENet packets
//! (SS_FRAME_FEC_STATUS) may still arrive out of order inside the window.

use super::{Role, seq_iv};
use crate::aead::{Backend, PacketAead, new_aes128gcm};
use crate::native::ReplayWindow;
use crate::{SealError, TAG_LEN};

/// The first u16 of every encrypted control packet.
const ENCRYPTED_MAGIC: u16 = 0x0001;

pub struct ControlCipher {
    aead: Box<dyn PacketAead>,
    role: Role,
    next_seq: u64,
    window: ReplayWindow,
}

impl ControlCipher {
    /// magic + length + seq + tag.
    pub const OVERHEAD: usize = 2 + 2 + 4 + TAG_LEN;
    /// The V2 header inside the plaintext: type + payload length.
    pub const V2_HEADER_LEN: usize = 4;
    /// The u16 length field counts seq + tag + ciphertext.
    pub const MAX_PLAINTEXT_LEN: usize = u16::MAX as usize - 4 - TAG_LEN;

    pub fn new(rikey: &[u8; 16], role: Role) -> Self {
        Self::with_backend(rikey, role, Backend::DEFAULT)
    }

    pub fn with_backend(rikey: &[u8; 16], role: Role, backend: Backend) -> Self {
        ControlCipher {
            aead: new_aes128gcm(backend, rikey),
            role,
            next_seq: 0,
            window: ReplayWindow::new(),
        }
    }

    /// Start this side's counter elsewhere than 0 (tests, vectors).
    pub fn set_next_seq(&mut self, seq: u32) {
        self.next_seq = u64::from(seq);
    }

    /// The seq the next seal uses (None once the counter is spent).
    pub fn next_seq(&self) -> Option<u32> {
        u32::try_from(self.next_seq).ok()
    }

    /// Encrypt an already-built V2 plaintext (type, length, payload) into `out` (cleared first).
    /// Returns the seq used.
    pub fn seal(&mut self, plaintext: &[u8], out: &mut Vec<u8>) -> Result<u32, SealError> {
        self.seal_parts(&[plaintext], out)
    }

    /// Build the V2 plaintext from `msg_type` and `payload` and encrypt it into `out`.
    pub fn seal_message(
        &mut self,
        msg_type: u16,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<u32, SealError> {
        let len = u16::try_from(payload.len())
            .ok()
            .filter(|_| payload.len() + Self::V2_HEADER_LEN <= Self::MAX_PLAINTEXT_LEN)
            .ok_or(SealError::Malformed("control: payload too long"))?;
        let mut v2 = [0u8; Self::V2_HEADER_LEN];
        v2[..2].copy_from_slice(&msg_type.to_le_bytes());
        v2[2..].copy_from_slice(&len.to_le_bytes());
        self.seal_parts(&[&v2, payload], out)
    }

    fn seal_parts(&mut self, parts: &[&[u8]], out: &mut Vec<u8>) -> Result<u32, SealError> {
        let pt_len: usize = parts.iter().map(|p| p.len()).sum();
        if pt_len > Self::MAX_PLAINTEXT_LEN {
            return Err(SealError::Malformed("control: message too long"));
        }
        let seq = u32::try_from(self.next_seq).map_err(|_| SealError::KeyExhausted)?;
        // Fits: pt_len <= MAX_PLAINTEXT_LEN.
        let length = (4 + TAG_LEN + pt_len) as u16;
        out.clear();
        out.extend_from_slice(&ENCRYPTED_MAGIC.to_le_bytes());
        out.extend_from_slice(&length.to_le_bytes());
        out.extend_from_slice(&seq.to_le_bytes());
        out.extend_from_slice(&[0u8; TAG_LEN]);
        for p in parts {
            out.extend_from_slice(p);
        }
        let iv = seq_iv(seq, self.role.own_tag(), b'C');
        let tag = self
            .aead
            .seal_in_place(&iv, &[], &mut out[Self::OVERHEAD..]);
        out[8..Self::OVERHEAD].copy_from_slice(&tag);
        self.next_seq += 1;
        Ok(seq)
    }

    /// Authenticate and decrypt one packet from the peer into `out` (cleared first; on success it
    /// holds the V2 plaintext, see [`Self::parse_v2`]). Returns the packet's seq. Replayed seqs are
    /// [`SealError::Replayed`]; only authenticated packets move the window.
    pub fn open(&mut self, packet: &[u8], out: &mut Vec<u8>) -> Result<u32, SealError> {
        out.clear();
        if packet.len() < Self::OVERHEAD {
            return Err(SealError::TooShort {
                needed: Self::OVERHEAD,
                got: packet.len(),
            });
        }
        if u16::from_le_bytes([packet[0], packet[1]]) != ENCRYPTED_MAGIC {
            return Err(SealError::Malformed("control: not an encrypted V2 packet"));
        }
        let length = usize::from(u16::from_le_bytes([packet[2], packet[3]]));
        if length != packet.len() - 4 {
            return Err(SealError::Malformed(
                "control: length field does not match the packet",
            ));
        }
        let seq = u32::from_le_bytes([packet[4], packet[5], packet[6], packet[7]]);
        self.window.check(u64::from(seq))?;
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&packet[8..Self::OVERHEAD]);
        out.extend_from_slice(&packet[Self::OVERHEAD..]);
        let iv = seq_iv(seq, self.role.peer_tag(), b'C');
        if let Err(e) = self.aead.open_in_place(&iv, &[], out, &tag) {
            out.clear();
            return Err(e);
        }
        self.window.record(u64::from(seq));
        Ok(seq)
    }

    /// Split a decrypted V2 plaintext into (type, payload). The payload length field must match.
    pub fn parse_v2(plaintext: &[u8]) -> Result<(u16, &[u8]), SealError> {
        if plaintext.len() < Self::V2_HEADER_LEN {
            return Err(SealError::TooShort {
                needed: Self::V2_HEADER_LEN,
                got: plaintext.len(),
            });
        }
        let msg_type = u16::from_le_bytes([plaintext[0], plaintext[1]]);
        let len = usize::from(u16::from_le_bytes([plaintext[2], plaintext[3]]));
        let payload = &plaintext[Self::V2_HEADER_LEN..];
        if payload.len() != len {
            return Err(SealError::Malformed("control: V2 payload length mismatch"));
        }
        Ok((msg_type, payload))
    }
}
