//! AES-128-GCM behind one trait, two backends.
//!
//! Contract: [`PacketAead`] seals and opens in place with a detached 16-byte tag and never
//! allocates per call. [`new_aes128gcm`] allocates once per key (the boxed keyed state); keys
//! live for up to 2^23 packets ([`crate::native::MAX_PACKETS_PER_KEY`]), so that cost is
//! amortised away. Both backends produce byte-identical output (tested against each other and
//! against known-answer vectors).

use crate::{KEY_LEN, NONCE_LEN, SealError, TAG_LEN};

/// In-place AES-128-GCM with a detached tag.
///
/// `seal_in_place` has no error path: the only failure either backend has is a message longer
/// than GCM's per-nonce limit (2^36 − 32 bytes), which no packet or control message reaches; it
/// panics there rather than emit a bad tag.
pub trait PacketAead: Send + Sync {
    fn seal_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        in_out: &mut [u8],
    ) -> [u8; TAG_LEN];
    fn open_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        in_out: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), SealError>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// aws-lc-rs (the provider rustls/quinn use in this tree).
    AwsLc,
    /// RustCrypto `aes-gcm`.
    RustCrypto,
}

impl Backend {
    /// The faster backend as measured by `strahl-bench seal` on this machine (2-vCPU AMD EPYC
    /// with VAES/VPCLMULQDQ, release build, medians of 564 batches of 1024 packets, 1400-byte
    /// payloads with 16-byte AAD, through `native::TxSealer`, 2026-11-24): aws-lc-rs 1.19 seals
    /// 4.95 M packets/s = 6.45 GiB/s (202 ns/packet) and opens 6.85 GiB/s (190 ns); RustCrypto
    /// `aes-gcm` 0.11.1 seals 1.50 M packets/s = 1.96 GiB/s (667 ns) and opens 2.03 GiB/s.
    /// aws-lc-rs is 3.3x faster, so it is the default.
    pub const DEFAULT: Backend = Backend::AwsLc;

    /// Both backends, for benches and cross-checking tests.
    pub const ALL: [Backend; 2] = [Backend::AwsLc, Backend::RustCrypto];

    /// Short stable name (bench JSON keys, logs).
    pub fn name(self) -> &'static str {
        match self {
            Backend::AwsLc => "aws-lc-rs",
            Backend::RustCrypto => "rustcrypto-aes-gcm",
        }
    }
}

/// Build a keyed AES-128-GCM instance (allocates once per key, never per packet).
pub fn new_aes128gcm(backend: Backend, key: &[u8; 16]) -> Box<dyn PacketAead> {
    match backend {
        Backend::AwsLc => Box::new(AwsLcGcm::new(key)),
        Backend::RustCrypto => Box::new(RustCryptoGcm::new(key)),
    }
}

/// aws-lc-rs `LessSafeKey`: we own nonce uniqueness (native: IV xor packet number; GameStream:
/// counters), which is exactly what `LessSafeKey` is for.
struct AwsLcGcm {
    key: aws_lc_rs::aead::LessSafeKey,
}

impl AwsLcGcm {
    fn new(key: &[u8; KEY_LEN]) -> Self {
        // AES_128_GCM takes exactly 16 key bytes, which the type guarantees: this cannot fail.
        let unbound = aws_lc_rs::aead::UnboundKey::new(&aws_lc_rs::aead::AES_128_GCM, key)
            .expect("AES-128-GCM accepts a 16-byte key");
        AwsLcGcm {
            key: aws_lc_rs::aead::LessSafeKey::new(unbound),
        }
    }
}

impl PacketAead for AwsLcGcm {
    fn seal_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        in_out: &mut [u8],
    ) -> [u8; TAG_LEN] {
        use aws_lc_rs::aead::{Aad, Nonce};
        let tag = self
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(*nonce),
                Aad::from(aad),
                in_out,
            )
            .expect("GCM message length limit (2^36 bytes) exceeded");
        let mut out = [0u8; TAG_LEN];
        out.copy_from_slice(tag.as_ref());
        out
    }

    fn open_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        in_out: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), SealError> {
        use aws_lc_rs::aead::{Aad, Nonce};
        self.key
            .open_in_place_separate_tag(
                Nonce::assume_unique_for_key(*nonce),
                Aad::from(aad),
                tag,
                in_out,
            )
            .map(|_| ())
            .map_err(|_| SealError::Forged)
    }
}

/// RustCrypto `aes-gcm` 0.11 (aead 0.6 in-out API).
struct RustCryptoGcm {
    cipher: aes_gcm::Aes128Gcm,
}

impl RustCryptoGcm {
    fn new(key: &[u8; KEY_LEN]) -> Self {
        use aes_gcm::KeyInit;
        RustCryptoGcm {
            cipher: aes_gcm::Aes128Gcm::new(key.into()),
        }
    }
}

impl PacketAead for RustCryptoGcm {
    fn seal_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        in_out: &mut [u8],
    ) -> [u8; TAG_LEN] {
        use aes_gcm::AeadInOut;
        let tag = self
            .cipher
            .encrypt_inout_detached(nonce.into(), aad, in_out.into())
            .expect("GCM message length limit (2^36 bytes) exceeded");
        tag.into()
    }

    fn open_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        in_out: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), SealError> {
        use aes_gcm::AeadInOut;
        self.cipher
            .decrypt_inout_detached(nonce.into(), aad, in_out.into(), tag.into())
            .map_err(|_| SealError::Forged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// NIST GCM test vector (McGrew & Viega, "The Galois/Counter Mode of Operation", test case 4):
    /// AES-128, 96-bit IV, 60-byte plaintext, 20-byte AAD. Independent of both backends.
    #[test]
    fn nist_test_case_4_both_backends() {
        let key = hex("feffe9928665731c6d6a8f9467308308");
        let iv = hex("cafebabefacedbaddecaf888");
        let pt = hex(
            "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
        );
        let aad = hex("feedfacedeadbeeffeedfacedeadbeefabaddad2");
        let ct = hex(
            "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091",
        );
        let tag = hex("5bc94fbc3221a5db94fae95ae7121a47");
        for backend in Backend::ALL {
            let a = new_aes128gcm(backend, &key.clone().try_into().unwrap());
            let nonce: [u8; 12] = iv.clone().try_into().unwrap();
            let mut buf = pt.clone();
            let t = a.seal_in_place(&nonce, &aad, &mut buf);
            assert_eq!(buf, ct, "{backend:?} ciphertext");
            assert_eq!(t.to_vec(), tag, "{backend:?} tag");
            a.open_in_place(&nonce, &aad, &mut buf, &t).unwrap();
            assert_eq!(buf, pt, "{backend:?} open");
        }
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    proptest! {
        /// The two backends agree byte for byte and each opens the other's output.
        #[test]
        fn backends_agree(key in any::<[u8; 16]>(), nonce in any::<[u8; 12]>(),
                          aad in proptest::collection::vec(any::<u8>(), 0..40),
                          pt in proptest::collection::vec(any::<u8>(), 0..3000)) {
            let a = new_aes128gcm(Backend::AwsLc, &key);
            let b = new_aes128gcm(Backend::RustCrypto, &key);
            let (mut x, mut y) = (pt.clone(), pt.clone());
            let ta = a.seal_in_place(&nonce, &aad, &mut x);
            let tb = b.seal_in_place(&nonce, &aad, &mut y);
            prop_assert_eq!(&x, &y);
            prop_assert_eq!(ta, tb);
            b.open_in_place(&nonce, &aad, &mut x, &ta).unwrap();
            a.open_in_place(&nonce, &aad, &mut y, &tb).unwrap();
            prop_assert_eq!(&x, &pt);
            prop_assert_eq!(&y, &pt);
        }

        /// A flipped tag bit is `Forged` on both backends.
        #[test]
        fn bad_tag_is_forged(key in any::<[u8; 16]>(), bit in 0usize..128,
                             pt in proptest::collection::vec(any::<u8>(), 0..200)) {
            for backend in Backend::ALL {
                let a = new_aes128gcm(backend, &key);
                let mut buf = pt.clone();
                let mut tag = a.seal_in_place(&[7; 12], b"aad", &mut buf);
                tag[bit / 8] ^= 1 << (bit % 8);
                prop_assert_eq!(a.open_in_place(&[7; 12], b"aad", &mut buf, &tag), Err(SealError::Forged));
            }
        }
    }
}
