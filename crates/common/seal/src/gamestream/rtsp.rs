//! RTSP `rtspenc` framing (§A8): u32 BE (0x80000000 | plaintext length), u32 BE seq, 16-byte
//! GCM tag, ciphertext. AES-128-GCM with rikey, no AAD; IV = seq LE, zeros, side ('H'/'C'), 'R'.
//!
//! One message per TCP connection in GameStream, so the host feeds [`RtspCipher::open`] the bytes
//! read so far and gets either [`RtspRead::NeedMore`] or the decrypted message. The client counts
//! its seq from 1 and the host keeps its own counter, also from 1. The client's seq is returned,
//! not enforced: the reference does not say whether the client's counter spans connections.

use super::{Role, seq_iv};
use crate::aead::{Backend, PacketAead, new_aes128gcm};
use crate::{SealError, TAG_LEN};

/// The high bit of the length word marks an encrypted message.
const ENCRYPTED_FLAG: u32 = 0x8000_0000;

/// Outcome of [`RtspCipher::open`] on a prefix of the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RtspRead {
    /// The frame is incomplete: at least `needed` bytes in total are required.
    NeedMore { needed: usize },
    /// One message decrypted into `out`; it occupied `consumed` bytes of the input.
    Message { consumed: usize, seq: u32 },
}

pub struct RtspCipher {
    aead: Box<dyn PacketAead>,
    role: Role,
    /// Next seq this side seals with; u64 so that running past u32::MAX is detectable.
    next_seq: u64,
}

impl RtspCipher {
    /// Length word + seq + tag.
    pub const HEADER_LEN: usize = 4 + 4 + TAG_LEN;
    /// Largest plaintext accepted from the peer. ANNOUNCE (the largest request: SDP with every
    /// x-nv/x-ss attribute) is about 2–3 KiB; 64 KiB bounds memory per connection with ample room.
    pub const MAX_MESSAGE_LEN: usize = 64 * 1024;
    /// Both sides count from 1 (§A8).
    pub const FIRST_SEQ: u32 = 1;

    pub fn new(rikey: &[u8; 16], role: Role) -> Self {
        Self::with_backend(rikey, role, Backend::DEFAULT)
    }

    pub fn with_backend(rikey: &[u8; 16], role: Role, backend: Backend) -> Self {
        RtspCipher {
            aead: new_aes128gcm(backend, rikey),
            role,
            next_seq: u64::from(Self::FIRST_SEQ),
        }
    }

    /// Continue a counter (a host keeps one counter across the RTSP connections of a session).
    pub fn set_next_seq(&mut self, seq: u32) {
        self.next_seq = u64::from(seq);
    }

    /// The seq the next [`Self::seal`] uses (None once the counter is spent).
    pub fn next_seq(&self) -> Option<u32> {
        u32::try_from(self.next_seq).ok()
    }

    /// Encrypt one message (a host reply, or a client request for [`Role::Client`]): `out` is
    /// cleared and receives the whole frame. Returns the seq used.
    pub fn seal(&mut self, plaintext: &[u8], out: &mut Vec<u8>) -> Result<u32, SealError> {
        if plaintext.len() > Self::MAX_MESSAGE_LEN {
            return Err(SealError::Malformed(
                "rtspenc: message longer than MAX_MESSAGE_LEN",
            ));
        }
        let seq = u32::try_from(self.next_seq).map_err(|_| SealError::KeyExhausted)?;
        // Fits: MAX_MESSAGE_LEN < 2^31.
        let len_word = ENCRYPTED_FLAG | plaintext.len() as u32;
        out.clear();
        out.extend_from_slice(&len_word.to_be_bytes());
        out.extend_from_slice(&seq.to_be_bytes());
        out.extend_from_slice(&[0u8; TAG_LEN]);
        out.extend_from_slice(plaintext);
        let iv = seq_iv(seq, self.role.own_tag(), b'R');
        let tag = self
            .aead
            .seal_in_place(&iv, &[], &mut out[Self::HEADER_LEN..]);
        out[8..Self::HEADER_LEN].copy_from_slice(&tag);
        self.next_seq += 1;
        Ok(seq)
    }

    /// Total frame length announced by the first 4 bytes of `input`, once they are there.
    pub fn frame_len(input: &[u8]) -> Result<Option<usize>, SealError> {
        let Some(word) = input.get(..4) else {
            return Ok(None);
        };
        let word = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        if word & ENCRYPTED_FLAG == 0 {
            return Err(SealError::Malformed(
                "rtspenc: plaintext message in encrypted mode",
            ));
        }
        let len = (word & !ENCRYPTED_FLAG) as usize;
        if len > Self::MAX_MESSAGE_LEN {
            return Err(SealError::Malformed(
                "rtspenc: message longer than MAX_MESSAGE_LEN",
            ));
        }
        Ok(Some(Self::HEADER_LEN + len))
    }

    /// Decrypt the frame at the start of `input` (bytes received so far) from the peer. On
    /// [`RtspRead::Message`], `out` holds exactly the plaintext; on `NeedMore` or an error it is
    /// left cleared or unspecified. Bytes after the frame are not touched (GameStream sends one
    /// message per connection; the caller decides what trailing bytes mean).
    pub fn open(&self, input: &[u8], out: &mut Vec<u8>) -> Result<RtspRead, SealError> {
        let Some(total) = Self::frame_len(input)? else {
            return Ok(RtspRead::NeedMore {
                needed: Self::HEADER_LEN,
            });
        };
        if input.len() < total {
            return Ok(RtspRead::NeedMore { needed: total });
        }
        let seq = u32::from_be_bytes([input[4], input[5], input[6], input[7]]);
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&input[8..Self::HEADER_LEN]);
        out.clear();
        out.extend_from_slice(&input[Self::HEADER_LEN..total]);
        let iv = seq_iv(seq, self.role.peer_tag(), b'R');
        if let Err(e) = self.aead.open_in_place(&iv, &[], out, &tag) {
            out.clear();
            return Err(e);
        }
        Ok(RtspRead::Message {
            consumed: total,
            seq,
        })
    }
}
