//! The GameStream ciphers, from `gamestream-host.md` §A8, §A12, §A16, §A17.

use crate::SealError;

/// SS_ENC_VIDEO: 32-byte header `iv[12] | frameNumber u32 LE | tag[16]`, then the AES-128-GCM
/// ciphertext of the whole shard. IV = u64 LE counter, 3 zero bytes, 'V'.
pub struct VideoCipher {
    // implementation detail
}

impl VideoCipher {
    pub const HEADER_LEN: usize = 32;

    pub fn new(rikey: &[u8; 16]) -> Self {
        let _ = rikey;
        todo!()
    }

    /// `packet[..32]` is space for the header; `packet[32..]` is the plaintext shard, encrypted in
    /// place.
    pub fn seal_shard(&mut self, frame_number: u32, packet: &mut [u8]) -> Result<(), SealError> {
        let _ = (frame_number, packet);
        todo!()
    }

    /// Inverse of [`Self::seal_shard`] (client side and tests): decrypts `packet[32..]` in place.
    pub fn open_shard(&self, packet: &mut [u8]) -> Result<(), SealError> {
        let _ = packet;
        todo!()
    }
}

/// Audio AES-128-CBC with PKCS#7, IV = BE32(avRiKeyId + rtp seq) ‖ 12 zero bytes.
pub struct AudioCipher {
    // implementation detail
}

impl AudioCipher {
    pub fn new(rikey: &[u8; 16], av_ri_key_id: u32) -> Self {
        let _ = (rikey, av_ri_key_id);
        todo!()
    }

    /// PKCS#7 always adds 1..=16 bytes.
    pub fn padded_len(plaintext_len: usize) -> usize {
        (plaintext_len / 16 + 1) * 16
    }

    /// Encrypt `plaintext` into `out` (at least `padded_len` bytes); returns the ciphertext length.
    pub fn encrypt(&self, seq: u16, plaintext: &[u8], out: &mut [u8]) -> Result<usize, SealError> {
        let _ = (seq, plaintext, out);
        todo!()
    }

    /// Decrypt into `out`; returns the plaintext length.
    pub fn decrypt(&self, seq: u16, ciphertext: &[u8], out: &mut [u8]) -> Result<usize, SealError> {
        let _ = (seq, ciphertext, out);
        todo!()
    }
}
