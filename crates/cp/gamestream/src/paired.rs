//! The set of paired clients, persisted in the state directory (`paired-clients.json`).
//!
//! Contract: `PairedStore::load` reads the file (absent = empty set) and fails with an error
//! naming the file when it is unparsable or holds an invalid certificate — a corrupt file
//! never silently unpairs everyone. `add` writes the whole set atomically before it becomes
//! visible in memory, so what the server authorises is always what is on disk.
//! Authorisation is by exact DER equality of the TLS client certificate (§A3).

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::atomic::write_atomic;
use crate::crypto::CertInfo;

/// File name in the state directory.
pub const PAIRED_FILE: &str = "paired-clients.json";
/// Format version written to and required from the file.
const FORMAT_VERSION: u32 = 1;
/// Most clients kept. Each entry is ≈ 1.2 KiB; this bounds the file and lookups.
pub const MAX_PAIRED_CLIENTS: usize = 256;

/// One paired client as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairedClient {
    /// The `devicename` the client sent while pairing (Moonlight sends "roth").
    pub name: String,
    /// The client's `uniqueid` while pairing.
    pub uniqueid: String,
    /// The client certificate, PEM.
    pub cert_pem: String,
}

#[derive(Serialize, Deserialize)]
struct FileFormat {
    version: u32,
    clients: Vec<PairedClient>,
}

/// Why the paired set could not be loaded or saved.
#[derive(Debug)]
pub enum PairedStoreError {
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    Corrupt {
        path: PathBuf,
        reason: String,
    },
    Full,
}

impl fmt::Display for PairedStoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PairedStoreError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            PairedStoreError::Corrupt { path, reason } => {
                write!(
                    f,
                    "{}: corrupt paired-clients file: {reason} (fix or remove it; not reset automatically)",
                    path.display()
                )
            }
            PairedStoreError::Full => {
                write!(f, "paired-client limit ({MAX_PAIRED_CLIENTS}) reached")
            }
        }
    }
}

impl std::error::Error for PairedStoreError {}

/// The paired set.
#[derive(Debug)]
pub struct PairedStore {
    path: PathBuf,
    clients: Vec<PairedClient>,
    ders: HashSet<Vec<u8>>,
}

impl PairedStore {
    /// Loads `<state_dir>/paired-clients.json`; a missing file is an empty set.
    pub fn load(state_dir: &Path) -> Result<Self, PairedStoreError> {
        let path = state_dir.join(PAIRED_FILE);
        let corrupt = |reason: String| PairedStoreError::Corrupt {
            path: path.clone(),
            reason,
        };
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(PairedStore {
                    path,
                    clients: Vec::new(),
                    ders: HashSet::new(),
                });
            }
            Err(source) => return Err(PairedStoreError::Io { path, source }),
        };
        let file: FileFormat =
            serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
        if file.version != FORMAT_VERSION {
            return Err(corrupt(format!("unsupported version {}", file.version)));
        }
        if file.clients.len() > MAX_PAIRED_CLIENTS {
            return Err(corrupt(format!("more than {MAX_PAIRED_CLIENTS} clients")));
        }
        let mut ders = HashSet::new();
        for (i, c) in file.clients.iter().enumerate() {
            let info = CertInfo::from_pem(c.cert_pem.as_bytes())
                .map_err(|e| corrupt(format!("client #{i}: {e}")))?;
            ders.insert(info.der);
        }
        Ok(PairedStore {
            path,
            clients: file.clients,
            ders,
        })
    }

    /// Whether this DER certificate is paired (exact match).
    pub fn is_paired(&self, cert_der: &[u8]) -> bool {
        self.ders.contains(cert_der)
    }

    /// The paired clients.
    pub fn clients(&self) -> &[PairedClient] {
        &self.clients
    }

    /// Adds (or replaces, for the same certificate) a client and persists the set.
    /// On error nothing changes in memory.
    pub fn add(&mut self, client: PairedClient, cert_der: Vec<u8>) -> Result<(), PairedStoreError> {
        let mut next: Vec<PairedClient> = self
            .clients
            .iter()
            .filter(|c| c.cert_pem != client.cert_pem)
            .cloned()
            .collect();
        if next.len() >= MAX_PAIRED_CLIENTS {
            return Err(PairedStoreError::Full);
        }
        next.push(client);
        self.persist(&next)?;
        self.clients = next;
        self.ders.insert(cert_der);
        Ok(())
    }

    /// Removes every client whose certificate PEM equals `cert_pem`; returns how many.
    pub fn remove(&mut self, cert_pem: &str) -> Result<usize, PairedStoreError> {
        let next: Vec<PairedClient> = self
            .clients
            .iter()
            .filter(|c| c.cert_pem != cert_pem)
            .cloned()
            .collect();
        let removed = self.clients.len() - next.len();
        if removed > 0 {
            self.persist(&next)?;
            if let Ok(info) = CertInfo::from_pem(cert_pem.as_bytes()) {
                self.ders.remove(&info.der);
            }
            self.clients = next;
        }
        Ok(removed)
    }

    /// Removes the client with this DER certificate (what HTTPS presents); returns how many
    /// entries went (0 or 1).
    pub fn remove_der(&mut self, cert_der: &[u8]) -> Result<usize, PairedStoreError> {
        let pem = self.clients.iter().find_map(|c| {
            CertInfo::from_pem(c.cert_pem.as_bytes())
                .ok()
                .filter(|i| i.der == cert_der)
                .map(|_| c.cert_pem.clone())
        });
        match pem {
            Some(pem) => self.remove(&pem),
            None => Ok(0),
        }
    }

    fn persist(&self, clients: &[PairedClient]) -> Result<(), PairedStoreError> {
        let file = FileFormat {
            version: FORMAT_VERSION,
            clients: clients.to_vec(),
        };
        let json = serde_json::to_vec_pretty(&file).expect("plain strings always serialise");
        write_atomic(&self.path, &json, 0o600).map_err(|source| PairedStoreError::Io {
            path: self.path.clone(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert() -> (String, Vec<u8>) {
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
        let c = rcgen::CertificateParams::default()
            .self_signed(&kp)
            .unwrap();
        (c.pem(), c.der().to_vec())
    }

    #[test]
    fn add_reload_replace_remove() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = PairedStore::load(dir.path()).unwrap();
        assert!(s.clients().is_empty());
        let (pem_a, der_a) = cert();
        let (pem_b, der_b) = cert();
        let client = |name: &str, pem: &str| PairedClient {
            name: name.into(),
            uniqueid: "u".into(),
            cert_pem: pem.into(),
        };
        s.add(client("a", &pem_a), der_a.clone()).unwrap();
        s.add(client("b", &pem_b), der_b.clone()).unwrap();
        s.add(client("a2", &pem_a), der_a.clone()).unwrap(); // same cert: replaced, not duplicated
        let r = PairedStore::load(dir.path()).unwrap();
        assert_eq!(r.clients().len(), 2);
        assert!(r.is_paired(&der_a) && r.is_paired(&der_b));
        assert!(r.clients().iter().any(|c| c.name == "a2"));
        s.remove(&pem_a).unwrap();
        let r = PairedStore::load(dir.path()).unwrap();
        assert!(!r.is_paired(&der_a) && r.is_paired(&der_b));
        assert!(!s.is_paired(&der_a));
    }

    #[test]
    fn wrong_version_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(PAIRED_FILE),
            br#"{"version":2,"clients":[]}"#,
        )
        .unwrap();
        let e = PairedStore::load(dir.path()).unwrap_err();
        assert!(matches!(e, PairedStoreError::Corrupt { .. }), "{e}");
        assert!(e.to_string().contains(PAIRED_FILE));
    }
}
