//! Media ciphers: SS_ENC_VIDEO (§A16, AES-128-GCM) and audio (§A17, AES-128-CBC + PKCS#7).
//! Both work on caller-owned fixed buffers and never allocate per packet.

use aes::cipher::block_padding::Pkcs7;
use aes::cipher::{BlockModeDecrypt, BlockModeEncrypt, InnerIvInit, KeyInit};

use crate::aead::{Backend, PacketAead, new_aes128gcm};
use crate::{NONCE_LEN, SealError, TAG_LEN};

/// SS_ENC_VIDEO: 32-byte header `iv[12] | frameNumber u32 LE | tag[16]`, then the AES-128-GCM
/// ciphertext of the whole shard. IV = u64 LE counter, 3 zero bytes, 'V'.
pub struct VideoCipher {
    aead: Box<dyn PacketAead>,
    /// Next IV counter; every shard (data and parity) takes one, so IVs never repeat.
    counter: u64,
}

impl VideoCipher {
    pub const HEADER_LEN: usize = 32;

    pub fn new(rikey: &[u8; 16]) -> Self {
        Self::with_backend(rikey, Backend::DEFAULT)
    }

    pub fn with_backend(rikey: &[u8; 16], backend: Backend) -> Self {
        VideoCipher {
            aead: new_aes128gcm(backend, rikey),
            counter: 0,
        }
    }

    /// Start the IV counter elsewhere than 0 (tests, vectors).
    pub fn set_counter(&mut self, counter: u64) {
        self.counter = counter;
    }

    /// The IV counter the next shard uses.
    pub fn counter(&self) -> u64 {
        self.counter
    }

    /// The frame number in a sealed packet's header (readable before decrypting).
    pub fn frame_number(packet: &[u8]) -> Option<u32> {
        let b = packet.get(12..16)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// `packet[..32]` is space for the header; `packet[32..]` is the plaintext shard, encrypted in
    /// place.
    pub fn seal_shard(&mut self, frame_number: u32, packet: &mut [u8]) -> Result<(), SealError> {
        if packet.len() < Self::HEADER_LEN {
            return Err(SealError::TooShort {
                needed: Self::HEADER_LEN,
                got: packet.len(),
            });
        }
        if self.counter == u64::MAX {
            return Err(SealError::KeyExhausted);
        }
        let mut iv = [0u8; NONCE_LEN];
        iv[..8].copy_from_slice(&self.counter.to_le_bytes());
        iv[11] = b'V';
        let (header, body) = packet.split_at_mut(Self::HEADER_LEN);
        let tag = self.aead.seal_in_place(&iv, &[], body);
        header[..12].copy_from_slice(&iv);
        header[12..16].copy_from_slice(&frame_number.to_le_bytes());
        header[16..32].copy_from_slice(&tag);
        self.counter += 1;
        Ok(())
    }

    /// Inverse of [`Self::seal_shard`] (client side and tests): decrypts `packet[32..]` in place.
    pub fn open_shard(&self, packet: &mut [u8]) -> Result<(), SealError> {
        if packet.len() < Self::HEADER_LEN {
            return Err(SealError::TooShort {
                needed: Self::HEADER_LEN,
                got: packet.len(),
            });
        }
        let (header, body) = packet.split_at_mut(Self::HEADER_LEN);
        let mut iv = [0u8; NONCE_LEN];
        iv.copy_from_slice(&header[..12]);
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&header[16..32]);
        self.aead.open_in_place(&iv, &[], body, &tag)
    }
}

/// Audio AES-128-CBC with PKCS#7, IV = BE32(avRiKeyId + rtp seq) ‖ 12 zero bytes.
pub struct AudioCipher {
    /// Key schedules expanded once; per packet only the IV is set (a copy of the round keys).
    enc: aes::Aes128Enc,
    dec: aes::Aes128Dec,
    av_ri_key_id: u32,
}

impl AudioCipher {
    pub fn new(rikey: &[u8; 16], av_ri_key_id: u32) -> Self {
        AudioCipher {
            enc: aes::Aes128Enc::new(rikey.into()),
            dec: aes::Aes128Dec::new(rikey.into()),
            av_ri_key_id,
        }
    }

    /// PKCS#7 always adds 1..=16 bytes.
    pub fn padded_len(plaintext_len: usize) -> usize {
        (plaintext_len / 16 + 1) * 16
    }

    /// IV for RTP sequence number `seq` (the sum wraps, as a u32 addition on the wire does).
    fn iv(&self, seq: u16) -> [u8; 16] {
        let mut iv = [0u8; 16];
        iv[..4].copy_from_slice(&self.av_ri_key_id.wrapping_add(u32::from(seq)).to_be_bytes());
        iv
    }

    /// Encrypt `plaintext` into `out` (at least `padded_len` bytes); returns the ciphertext length.
    pub fn encrypt(&self, seq: u16, plaintext: &[u8], out: &mut [u8]) -> Result<usize, SealError> {
        let needed = Self::padded_len(plaintext.len());
        if out.len() < needed {
            return Err(SealError::TooShort {
                needed,
                got: out.len(),
            });
        }
        let iv = self.iv(seq);
        let cbc = cbc::Encryptor::<aes::Aes128Enc>::inner_iv_init(self.enc.clone(), &iv.into());
        cbc.encrypt_padded_b2b::<Pkcs7>(plaintext, &mut out[..needed])
            .map(|ct| ct.len())
            .map_err(|_| SealError::TooShort {
                needed,
                got: out.len(),
            })
    }

    /// Decrypt into `out`; returns the plaintext length.
    pub fn decrypt(&self, seq: u16, ciphertext: &[u8], out: &mut [u8]) -> Result<usize, SealError> {
        if ciphertext.is_empty() || !ciphertext.len().is_multiple_of(16) {
            return Err(SealError::Malformed(
                "audio: ciphertext is not a whole number of blocks",
            ));
        }
        if out.len() < ciphertext.len() {
            return Err(SealError::TooShort {
                needed: ciphertext.len(),
                got: out.len(),
            });
        }
        let iv = self.iv(seq);
        let cbc = cbc::Decryptor::<aes::Aes128Dec>::inner_iv_init(self.dec.clone(), &iv.into());
        cbc.decrypt_padded_b2b::<Pkcs7>(ciphertext, &mut out[..ciphertext.len()])
            .map(|pt| pt.len())
            .map_err(|_| SealError::Malformed("audio: bad PKCS#7 padding"))
    }
}
