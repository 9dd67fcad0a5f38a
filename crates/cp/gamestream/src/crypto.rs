//! The GameStream pairing primitives (reference gamestream-host.md §A5, §A19):
//! SHA-256 / SHA-1 digests, AES-128-ECB without padding, RSA PKCS#1 v1.5 SHA-256
//! signatures, and the two facts pairing needs from an X.509 certificate: the raw
//! signatureValue bytes and the RSA public key.
//!
//! Provider: aws-lc-rs for digests and RSA (the workspace's single TLS/crypto provider),
//! RustCrypto `aes` for the raw block cipher (aws-lc-rs exposes no padding-free ECB).

use aes::Aes128;
use aes::cipher::{BlockCipherDecrypt, BlockCipherEncrypt, KeyInit};
use aws_lc_rs::{digest, signature};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// Hash used by pairing: SHA-256 when the advertised appversion major is ≥ 7, else SHA-1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PairingHash {
    Sha1,
    Sha256,
}

impl PairingHash {
    /// Choice rule from §A5: major version ≥ 7 selects SHA-256.
    pub fn for_app_version_major(major: u32) -> Self {
        if major >= 7 {
            PairingHash::Sha256
        } else {
            PairingHash::Sha1
        }
    }

    /// Digest length in bytes.
    pub fn digest_len(self) -> usize {
        match self {
            PairingHash::Sha1 => 20,
            PairingHash::Sha256 => 32,
        }
    }

    /// Digest of the concatenation of `parts`.
    pub fn digest(self, parts: &[&[u8]]) -> Vec<u8> {
        let alg = match self {
            PairingHash::Sha1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
            PairingHash::Sha256 => &digest::SHA256,
        };
        let mut ctx = digest::Context::new(alg);
        for p in parts {
            ctx.update(p);
        }
        ctx.finish().as_ref().to_vec()
    }
}

/// AES-128-ECB; `data.len()` must be a multiple of 16 (callers check; a violation is a bug).
fn ecb(key: &[u8; 16], data: &mut [u8], encrypt: bool) {
    debug_assert!(data.len().is_multiple_of(16));
    let cipher = Aes128::new(key.into());
    for block in data.chunks_exact_mut(16) {
        let block: &mut [u8; 16] = block.try_into().expect("chunks_exact yields 16 bytes");
        if encrypt {
            cipher.encrypt_block(block.into());
        } else {
            cipher.decrypt_block(block.into());
        }
    }
}

/// AES-128-ECB encryption without padding. Returns `None` unless the length is a multiple of 16.
pub fn aes_ecb_encrypt(key: &[u8; 16], data: &[u8]) -> Option<Vec<u8>> {
    if !data.len().is_multiple_of(16) {
        return None;
    }
    let mut out = data.to_vec();
    ecb(key, &mut out, true);
    Some(out)
}

/// AES-128-ECB decryption without padding. Returns `None` unless the length is a multiple of 16.
pub fn aes_ecb_decrypt(key: &[u8; 16], data: &[u8]) -> Option<Vec<u8>> {
    if !data.len().is_multiple_of(16) {
        return None;
    }
    let mut out = data.to_vec();
    ecb(key, &mut out, false);
    Some(out)
}

/// The pairing AES key: first 16 bytes of H(salt ‖ PIN as ASCII).
pub fn pairing_key(hash: PairingHash, salt: &[u8], pin: &str) -> [u8; 16] {
    let d = hash.digest(&[salt, pin.as_bytes()]);
    let mut k = [0u8; 16];
    k.copy_from_slice(&d[..16]);
    k
}

/// Constant-time equality for secrets of public length.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Why a certificate could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertError {
    /// Not valid PEM text holding a CERTIFICATE block.
    Pem,
    /// The DER is not a parsable X.509 certificate.
    X509,
    /// The key is not an RSA key (GameStream pairing signs with RSA PKCS#1 v1.5).
    NotRsa,
}

impl std::fmt::Display for CertError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CertError::Pem => "not a PEM certificate",
            CertError::X509 => "not a parsable X.509 certificate",
            CertError::NotRsa => "certificate key is not RSA",
        })
    }
}

impl std::error::Error for CertError {}

/// What pairing needs from a peer certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertInfo {
    /// DER of the whole certificate (what TLS presents; the paired-set key).
    pub der: Vec<u8>,
    /// Raw X.509 signatureValue bytes (256 for RSA-2048).
    pub signature: Vec<u8>,
    /// PKCS#1 RSAPublicKey DER (the SubjectPublicKeyInfo bit string).
    pub rsa_public_key: Vec<u8>,
}

/// OID 1.2.840.113549.1.1.1 (rsaEncryption).
const OID_RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";

impl CertInfo {
    /// Parses one PEM CERTIFICATE block.
    pub fn from_pem(pem: &[u8]) -> Result<Self, CertError> {
        let der = CertificateDer::from_pem_slice(pem).map_err(|_| CertError::Pem)?;
        Self::from_der(der.as_ref())
    }

    /// Parses a DER certificate.
    pub fn from_der(der: &[u8]) -> Result<Self, CertError> {
        let (rest, cert) = x509_parser::parse_x509_certificate(der).map_err(|_| CertError::X509)?;
        if !rest.is_empty() {
            return Err(CertError::X509);
        }
        let spki = &cert.tbs_certificate.subject_pki;
        if spki.algorithm.algorithm.to_id_string() != OID_RSA_ENCRYPTION {
            return Err(CertError::NotRsa);
        }
        Ok(CertInfo {
            der: der.to_vec(),
            signature: cert.signature_value.data.to_vec(),
            rsa_public_key: spki.subject_public_key.data.to_vec(),
        })
    }

    /// Verifies an RSA PKCS#1 v1.5 SHA-256 signature over `msg` with this cert's key.
    pub fn verify_rsa_sha256(&self, msg: &[u8], sig: &[u8]) -> bool {
        signature::UnparsedPublicKey::new(
            &signature::RSA_PKCS1_2048_8192_SHA256,
            &self.rsa_public_key,
        )
        .verify(msg, sig)
        .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aes_ecb_known_answer_fips197() {
        // FIPS-197 Appendix C.1 vector.
        let key: [u8; 16] = core::array::from_fn(|i| i as u8);
        let pt: Vec<u8> = (0..16u8).map(|i| i * 0x11).collect();
        let ct = aes_ecb_encrypt(&key, &pt).unwrap();
        assert_eq!(
            ct,
            [
                0x69, 0xc4, 0xe0, 0xd8, 0x6a, 0x7b, 0x04, 0x30, 0xd8, 0xcd, 0xb7, 0x80, 0x70, 0xb4,
                0xc5, 0x5a
            ]
        );
        assert_eq!(aes_ecb_decrypt(&key, &ct).unwrap(), pt);
        assert!(aes_ecb_encrypt(&key, &pt[..15]).is_none());
    }

    #[test]
    fn hash_lengths_and_choice() {
        assert_eq!(PairingHash::for_app_version_major(7), PairingHash::Sha256);
        assert_eq!(PairingHash::for_app_version_major(6), PairingHash::Sha1);
        assert_eq!(PairingHash::Sha256.digest(&[b"a", b"bc"]).len(), 32);
        // SHA-256("abc") known answer.
        assert_eq!(
            PairingHash::Sha256.digest(&[b"a", b"bc"])[..4],
            [0xba, 0x78, 0x16, 0xbf]
        );
        assert_eq!(
            PairingHash::Sha1.digest(&[b"abc"])[..4],
            [0xa9, 0x99, 0x3e, 0x36]
        );
    }

    #[test]
    fn garbage_certs_are_errors() {
        assert_eq!(CertInfo::from_pem(b"hello"), Err(CertError::Pem));
        assert_eq!(
            CertInfo::from_der(&[0x30, 0x03, 0x02, 0x01, 0x01]),
            Err(CertError::X509)
        );
    }
}
