//! Host identity: the self-signed RSA-2048 / SHA-256 certificate the HTTPS server presents
//! and sends as `plaincert` during pairing (reference §A3, §A5).
//!
//! Contract: `HostIdentity::load_or_create(state_dir)` creates `host-key.pem` (PKCS#8,
//! mode 0600) and `host-cert.pem` on first start, each written atomically, and loads them
//! on later starts. A missing *pair* means first start; one file without the other, or any
//! unparsable file, is an error naming the file: the identity is what clients have pinned,
//! so it is never silently regenerated.

use std::fmt;
use std::path::{Path, PathBuf};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, RsaKeyPair};
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, SerialNumber};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};

use crate::crypto::CertInfo;
use strahl_statefile::write_atomic;

/// File name of the host certificate in the state directory.
pub const CERT_FILE: &str = "host-cert.pem";
/// File name of the host private key (PKCS#8 PEM) in the state directory.
pub const KEY_FILE: &str = "host-key.pem";
/// Common name of the generated certificate.
pub const CERT_COMMON_NAME: &str = "strahl GameStream Host";
/// Validity of the generated certificate: 20 years, as Sunshine does (ecosystem.md §2.3).
const CERT_VALIDITY_YEARS: i32 = 20;

/// Why the identity could not be loaded or created.
#[derive(Debug)]
pub enum IdentityError {
    /// Reading or writing a file failed.
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A file exists but its content is unusable.
    Corrupt { path: PathBuf, reason: String },
    /// Only one of the two files exists.
    Incomplete { present: PathBuf, missing: PathBuf },
    /// Key generation or self-signing failed.
    Generate(String),
}

impl fmt::Display for IdentityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdentityError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            IdentityError::Corrupt { path, reason } => {
                write!(
                    f,
                    "{}: corrupt host identity file: {reason} (not regenerated: clients pin this identity; move the file away to start over)",
                    path.display()
                )
            }
            IdentityError::Incomplete { present, missing } => write!(
                f,
                "host identity incomplete: {} exists but {} is missing (not regenerated)",
                present.display(),
                missing.display()
            ),
            IdentityError::Generate(e) => write!(f, "generating the host identity failed: {e}"),
        }
    }
}

impl std::error::Error for IdentityError {}

/// The host certificate and key, plus the derived values pairing and TLS need.
pub struct HostIdentity {
    cert_pem: String,
    key_der: Vec<u8>,
    cert: CertInfo,
    signer: RsaKeyPair,
}

impl fmt::Debug for HostIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostIdentity")
            .field("cert_der_len", &self.cert.der.len())
            .finish_non_exhaustive()
    }
}

impl HostIdentity {
    /// Loads the identity from `state_dir`, creating it (and the directory) on first start.
    pub fn load_or_create(state_dir: &Path) -> Result<Self, IdentityError> {
        let cert_path = state_dir.join(CERT_FILE);
        let key_path = state_dir.join(KEY_FILE);
        match (cert_path.exists(), key_path.exists()) {
            (true, true) => Self::load(&cert_path, &key_path),
            (false, false) => {
                std::fs::create_dir_all(state_dir).map_err(|source| IdentityError::Io {
                    path: state_dir.to_path_buf(),
                    source,
                })?;
                let (cert_pem, key_pem) = generate()?;
                // Key first: a crash between the two writes leaves "key without cert",
                // which is reported (Incomplete), never silently replaced.
                write_atomic(&key_path, key_pem.as_bytes(), 0o600).map_err(|source| {
                    IdentityError::Io {
                        path: key_path.clone(),
                        source,
                    }
                })?;
                write_atomic(&cert_path, cert_pem.as_bytes(), 0o644).map_err(|source| {
                    IdentityError::Io {
                        path: cert_path.clone(),
                        source,
                    }
                })?;
                Self::load(&cert_path, &key_path)
            }
            (true, false) => Err(IdentityError::Incomplete {
                present: cert_path,
                missing: key_path,
            }),
            (false, true) => Err(IdentityError::Incomplete {
                present: key_path,
                missing: cert_path,
            }),
        }
    }

    fn load(cert_path: &Path, key_path: &Path) -> Result<Self, IdentityError> {
        let read = |p: &Path| {
            std::fs::read(p).map_err(|source| IdentityError::Io {
                path: p.to_path_buf(),
                source,
            })
        };
        let cert_bytes = read(cert_path)?;
        let key_bytes = read(key_path)?;
        Self::from_pem(cert_bytes, &key_bytes, cert_path, key_path)
    }

    /// A fresh identity kept only in memory (tests, fuzzing, throw-away hosts).
    pub fn ephemeral() -> Result<Self, IdentityError> {
        let (cert_pem, key_pem) = generate()?;
        Self::from_pem(
            cert_pem.into_bytes(),
            key_pem.as_bytes(),
            Path::new("<memory>"),
            Path::new("<memory>"),
        )
    }

    /// Parses and cross-checks a PEM certificate and PKCS#8 key; the paths only name
    /// the sources in errors.
    fn from_pem(
        cert_bytes: Vec<u8>,
        key_bytes: &[u8],
        cert_path: &Path,
        key_path: &Path,
    ) -> Result<Self, IdentityError> {
        let corrupt = |p: &Path, reason: String| IdentityError::Corrupt {
            path: p.to_path_buf(),
            reason,
        };
        let cert_pem = String::from_utf8(cert_bytes)
            .map_err(|_| corrupt(cert_path, "not UTF-8 text".into()))?;
        let cert = CertInfo::from_pem(cert_pem.as_bytes())
            .map_err(|e| corrupt(cert_path, e.to_string()))?;
        let key_der = PrivatePkcs8KeyDer::from_pem_slice(key_bytes)
            .map_err(|e| corrupt(key_path, format!("no PKCS#8 PRIVATE KEY block: {e:?}")))?;
        let signer = RsaKeyPair::from_pkcs8(key_der.secret_pkcs8_der())
            .map_err(|e| corrupt(key_path, format!("not an RSA key: {e}")))?;
        // The key must belong to the certificate, or TLS and pairing signatures disagree.
        use aws_lc_rs::signature::KeyPair as _;
        if signer.public_key().as_ref() != cert.rsa_public_key.as_slice() {
            return Err(corrupt(
                key_path,
                format!("key does not match {}", cert_path.display()),
            ));
        }
        Ok(HostIdentity {
            cert_pem,
            key_der: key_der.secret_pkcs8_der().to_vec(),
            cert,
            signer,
        })
    }

    /// The certificate as PEM text (what `plaincert` carries, hex-encoded).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The certificate DER.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert.der
    }

    /// The raw X.509 signatureValue of the certificate (256 bytes for RSA-2048).
    pub fn cert_signature(&self) -> &[u8] {
        &self.cert.signature
    }

    /// Parsed certificate facts.
    pub fn cert_info(&self) -> &CertInfo {
        &self.cert
    }

    /// RSA PKCS#1 v1.5 SHA-256 signature over `msg` with the host key.
    pub fn sign_rsa_sha256(&self, msg: &[u8]) -> Vec<u8> {
        let mut sig = vec![0u8; self.signer.public_modulus_len()];
        self.signer
            .sign(
                &signature::RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                msg,
                &mut sig,
            )
            .expect("RSA signing with a validated key and a correctly sized buffer cannot fail");
        sig
    }

    /// TLS material for rustls.
    pub fn tls_cert_and_key(&self) -> (CertificateDer<'static>, PrivatePkcs8KeyDer<'static>) {
        (
            CertificateDer::from(self.cert.der.clone()),
            PrivatePkcs8KeyDer::from(self.key_der.clone()),
        )
    }

    /// A stable host id for /serverinfo `uniqueid`: UUID-formatted prefix of SHA-256(cert DER),
    /// stable as long as the identity is.
    pub fn unique_id(&self) -> String {
        let d = crate::crypto::PairingHash::Sha256.digest(&[&self.cert.der]);
        let h: String = d[..16].iter().map(|b| format!("{b:02X}")).collect();
        format!(
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )
    }
}

/// Generates an RSA-2048 key and a self-signed SHA-256 certificate. Returns (cert PEM, key PEM).
fn generate() -> Result<(String, String), IdentityError> {
    let err = |e: rcgen::Error| IdentityError::Generate(e.to_string());
    let key = KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).map_err(err)?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, CERT_COMMON_NAME);
    params.distinguished_name = dn;
    let now = std::time::SystemTime::now();
    params.not_before = now.into();
    let years = std::time::Duration::from_secs(CERT_VALIDITY_YEARS as u64 * 365 * 24 * 3600);
    params.not_after = (now + years).into();
    // Random positive 159-bit serial, as Sunshine does (§A3): clear the top bit.
    let mut serial = [0u8; 20];
    aws_lc_rs::rand::fill(&mut serial).map_err(|_| IdentityError::Generate("no entropy".into()))?;
    serial[0] &= 0x7f;
    serial[0] |= 0x01;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    let cert = params.self_signed(&key).map_err(err)?;
    Ok((cert.pem(), key.serialize_pem()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_then_reloaded_identically_and_signs() {
        let dir = tempfile::tempdir().unwrap();
        let a = HostIdentity::load_or_create(dir.path()).unwrap();
        assert_eq!(a.cert_signature().len(), 256);
        assert_eq!(
            a.cert_info().rsa_public_key.len(),
            270,
            "RSA-2048 PKCS#1 public key DER"
        );
        let b = HostIdentity::load_or_create(dir.path()).unwrap();
        assert_eq!(a.cert_der(), b.cert_der());
        assert_eq!(a.unique_id(), b.unique_id());
        let sig = b.sign_rsa_sha256(b"hello");
        assert!(a.cert_info().verify_rsa_sha256(b"hello", &sig));
        assert!(!a.cert_info().verify_rsa_sha256(b"hellO", &sig));
        // The certificate really is SHA-256 with RSA: OID 1.2.840.113549.1.1.11.
        let (_, c) = x509_parser::parse_x509_certificate(a.cert_der()).unwrap();
        assert_eq!(
            c.signature_algorithm.algorithm.to_id_string(),
            "1.2.840.113549.1.1.11"
        );
    }

    #[test]
    fn corrupt_or_incomplete_files_are_named_errors() {
        let dir = tempfile::tempdir().unwrap();
        HostIdentity::load_or_create(dir.path()).unwrap();
        let cert = dir.path().join(CERT_FILE);
        let good = std::fs::read(&cert).unwrap();
        std::fs::write(
            &cert,
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let e = HostIdentity::load_or_create(dir.path()).unwrap_err();
        assert!(
            matches!(e, IdentityError::Corrupt { ref path, .. } if path == &cert),
            "{e}"
        );
        assert!(e.to_string().contains(CERT_FILE));
        std::fs::write(&cert, &good).unwrap();
        std::fs::write(dir.path().join(KEY_FILE), b"garbage").unwrap();
        let e = HostIdentity::load_or_create(dir.path()).unwrap_err();
        assert!(e.to_string().contains(KEY_FILE), "{e}");
        std::fs::remove_file(dir.path().join(KEY_FILE)).unwrap();
        let e = HostIdentity::load_or_create(dir.path()).unwrap_err();
        assert!(matches!(e, IdentityError::Incomplete { .. }), "{e}");
        // Never silently regenerated: the cert is still the old one.
        assert_eq!(std::fs::read(&cert).unwrap(), good);
    }
}
