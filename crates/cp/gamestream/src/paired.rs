//! The set of paired clients, persisted in the state directory (`paired-clients.json`).
//!
//! Contract: `PairedStore::load` reads the file (absent = empty set) and fails with an error
//! naming the file when it is unparsable or holds an invalid certificate — a corrupt file
//! never silently unpairs everyone. `add` writes the whole set atomically before it becomes
//! visible in memory, so what the server authorises is always what is on disk.
//! Authorisation is by exact DER equality of the TLS client certificate (§A3).
//!
//! Permissions ([`crate::perms`]) are stored with each client. A file written before they
//! existed (no `permissions` field) still loads: its first client gets every permission, the
//! others view + list — what pairing in that order would have given them. A newly paired
//! client gets every permission when it is the only one, else view + list.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::crypto::CertInfo;
use crate::perms::Permissions;
use strahl_statefile::write_atomic;

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
    /// Permission bits ([`Permissions`]); `None` only before the store assigned them (a
    /// client being added, or a file from before permissions existed).
    #[serde(default)]
    pub permissions: Option<u32>,
}

impl PairedClient {
    /// The client's permissions (view + list when unassigned).
    pub fn perms(&self) -> Permissions {
        self.permissions
            .map_or(Permissions::DEFAULT_LATER, Permissions)
            .known()
    }
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
    /// DER certificate → its client's permissions.
    ders: HashMap<Vec<u8>, Permissions>,
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
                    ders: HashMap::new(),
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
        let mut clients = file.clients;
        let mut ders = HashMap::new();
        for (i, c) in clients.iter_mut().enumerate() {
            let info = CertInfo::from_pem(c.cert_pem.as_bytes())
                .map_err(|e| corrupt(format!("client #{i}: {e}")))?;
            if c.permissions.is_none() {
                let p = if i == 0 {
                    Permissions::ALL
                } else {
                    Permissions::DEFAULT_LATER
                };
                c.permissions = Some(p.0);
            }
            ders.insert(info.der, c.perms());
        }
        Ok(PairedStore {
            path,
            clients,
            ders,
        })
    }

    /// Whether this DER certificate is paired (exact match).
    pub fn is_paired(&self, cert_der: &[u8]) -> bool {
        self.ders.contains_key(cert_der)
    }

    /// The permissions of the client with this DER certificate; `None` when it is not paired.
    pub fn permissions_of(&self, cert_der: &[u8]) -> Option<Permissions> {
        self.ders.get(cert_der).copied()
    }

    /// Sets the permissions of the client whose certificate PEM is `cert_pem` and persists the
    /// set; `Ok(false)` when no such client is paired. On error nothing changes in memory.
    pub fn set_permissions(
        &mut self,
        cert_pem: &str,
        perms: Permissions,
    ) -> Result<bool, PairedStoreError> {
        let perms = perms.known();
        let mut next = self.clients.clone();
        let Some(c) = next.iter_mut().find(|c| c.cert_pem == cert_pem) else {
            return Ok(false);
        };
        c.permissions = Some(perms.0);
        self.persist(&next)?;
        self.clients = next;
        if let Ok(info) = CertInfo::from_pem(cert_pem.as_bytes()) {
            self.ders.insert(info.der, perms);
        }
        Ok(true)
    }

    /// The paired clients.
    pub fn clients(&self) -> &[PairedClient] {
        &self.clients
    }

    /// Adds (or replaces, for the same certificate) a client and persists the set. Without
    /// permissions of its own it gets every permission when it is the only client, else view
    /// + list. On error nothing changes in memory.
    pub fn add(
        &mut self,
        mut client: PairedClient,
        cert_der: Vec<u8>,
    ) -> Result<(), PairedStoreError> {
        let mut next: Vec<PairedClient> = self
            .clients
            .iter()
            .filter(|c| c.cert_pem != client.cert_pem)
            .cloned()
            .collect();
        if next.len() >= MAX_PAIRED_CLIENTS {
            return Err(PairedStoreError::Full);
        }
        if client.permissions.is_none() {
            let p = if next.is_empty() {
                Permissions::ALL
            } else {
                Permissions::DEFAULT_LATER
            };
            client.permissions = Some(p.0);
        }
        let perms = client.perms();
        next.push(client);
        self.persist(&next)?;
        self.clients = next;
        self.ders.insert(cert_der, perms);
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
            permissions: None,
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
    fn permissions_first_gets_all_later_view_list_old_files_load() {
        let dir = tempfile::tempdir().unwrap();
        let (pem_a, der_a) = cert();
        let (pem_b, der_b) = cert();
        let (pem_c, der_c) = cert();
        // A file from before permissions: no field at all.
        let old = serde_json::json!({"version": 1, "clients": [
            {"name": "a", "uniqueid": "u", "cert_pem": pem_a},
            {"name": "b", "uniqueid": "u", "cert_pem": pem_b},
        ]});
        std::fs::write(
            dir.path().join(PAIRED_FILE),
            serde_json::to_vec(&old).unwrap(),
        )
        .unwrap();
        let mut s = PairedStore::load(dir.path()).unwrap();
        assert_eq!(s.permissions_of(&der_a), Some(Permissions::ALL));
        assert_eq!(s.permissions_of(&der_b), Some(Permissions::DEFAULT_LATER));
        // A third pairs: view + list. The operator grants it the keyboard; it is on disk.
        let c = PairedClient {
            name: "c".into(),
            uniqueid: "u".into(),
            cert_pem: pem_c.clone(),
            permissions: None,
        };
        s.add(c, der_c.clone()).unwrap();
        assert_eq!(s.permissions_of(&der_c), Some(Permissions::DEFAULT_LATER));
        let grant = Permissions(Permissions::DEFAULT_LATER.0 | Permissions::KEYBOARD);
        assert!(s.set_permissions(&pem_c, grant).unwrap());
        assert!(!s.set_permissions("not a cert", grant).unwrap());
        let r = PairedStore::load(dir.path()).unwrap();
        assert_eq!(r.permissions_of(&der_c), Some(grant));
        assert_eq!(r.permissions_of(&der_a), Some(Permissions::ALL));
        assert_eq!(r.permissions_of(&der_b), Some(Permissions::DEFAULT_LATER));
        // The first client of an empty store gets everything.
        let dir2 = tempfile::tempdir().unwrap();
        let mut s2 = PairedStore::load(dir2.path()).unwrap();
        let first = PairedClient {
            name: "first".into(),
            uniqueid: "u".into(),
            cert_pem: pem_a,
            permissions: None,
        };
        s2.add(first, der_a.clone()).unwrap();
        assert_eq!(s2.permissions_of(&der_a), Some(Permissions::ALL));
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
