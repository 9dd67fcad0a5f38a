//! Persistent state of both ends: the host's paired native clients, the client's own
//! certificate and the hosts it has paired with.
//!
//! Contract:
//! - Every file is replaced atomically ([`write_atomic`]: temp file, fsync, rename, fsync the
//!   directory), so a crash leaves the old or the new content, never a torn file.
//! - A missing file is an empty store (first start); a file that does not parse is an error
//!   naming it (paired identities are never silently dropped).
//! - Fingerprints are SHA-256 of the certificate DER, stored as lower-case hex.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::pairing::{Fingerprint, Paired, hex, parse_hex};

/// The host's paired native clients, in its state directory.
pub const PAIRED_FILE: &str = "native-clients.json";
/// The client's certificate and key, in its state directory.
pub const CLIENT_CERT_FILE: &str = "client-cert.der";
pub const CLIENT_KEY_FILE: &str = "client-key.der";
/// The hosts the client has paired with (address → host fingerprint).
pub const HOSTS_FILE: &str = "hosts.json";

/// Atomic replacement (the module contract): the one implementation every plane uses.
pub use strahl_statefile::write_atomic;

/// Why a state file could not be used.
#[derive(Debug)]
pub enum StoreError {
    Io { path: PathBuf, source: io::Error },
    Corrupt { path: PathBuf, reason: String },
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            StoreError::Corrupt { path, reason } => write!(
                f,
                "{}: unreadable ({reason}); not overwritten — move it away to start over",
                path.display()
            ),
        }
    }
}

impl std::error::Error for StoreError {}

fn read_json<T: for<'de> Deserialize<'de> + Default>(path: &Path) -> Result<T, StoreError> {
    match fs::read(path) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| StoreError::Corrupt {
            path: path.to_owned(),
            reason: e.to_string(),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(T::default()),
        Err(e) => Err(StoreError::Io {
            path: path.to_owned(),
            source: e,
        }),
    }
}

fn write_json<T: Serialize>(path: &Path, v: &T) -> Result<(), StoreError> {
    let bytes = serde_json::to_vec_pretty(v).map_err(|e| StoreError::Corrupt {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    write_atomic(path, &bytes, 0o600).map_err(|e| StoreError::Io {
        path: path.to_owned(),
        source: e,
    })
}

/// One paired native client, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairedClient {
    /// SHA-256 of the client certificate, hex.
    pub fingerprint: String,
    pub name: String,
    /// When it paired (seconds since the Unix epoch).
    pub paired_unix_s: u64,
}

impl PairedClient {
    /// Short, stable, non-secret id for the status page and `clients unpair`.
    pub fn id(&self) -> String {
        format!("n-{}", &self.fingerprint[..16.min(self.fingerprint.len())])
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct PairedFile {
    clients: Vec<PairedClient>,
}

/// The host's paired native clients (one writer: the process that owns the state dir).
#[derive(Debug)]
pub struct PairedStore {
    path: PathBuf,
    file: PairedFile,
}

impl PairedStore {
    pub fn load(state_dir: &Path) -> Result<Self, StoreError> {
        let path = state_dir.join(PAIRED_FILE);
        let file: PairedFile = read_json(&path)?;
        if let Some(bad) = file
            .clients
            .iter()
            .find(|c| parse_hex(&c.fingerprint).is_none())
        {
            return Err(StoreError::Corrupt {
                path,
                reason: format!("bad fingerprint {:?}", bad.fingerprint),
            });
        }
        Ok(PairedStore { path, file })
    }

    pub fn contains(&self, fp: &Fingerprint) -> bool {
        let h = hex(fp);
        self.file.clients.iter().any(|c| c.fingerprint == h)
    }

    pub fn clients(&self) -> &[PairedClient] {
        &self.file.clients
    }

    /// Stores (or renames) a paired client; written before this returns.
    pub fn add(&mut self, p: &Paired, now_unix_s: u64) -> Result<(), StoreError> {
        let h = hex(&p.fingerprint);
        let mut next = self
            .file
            .clients
            .iter()
            .filter(|c| c.fingerprint != h)
            .cloned()
            .collect::<Vec<_>>();
        next.push(PairedClient {
            fingerprint: h,
            name: p.name.clone(),
            paired_unix_s: now_unix_s,
        });
        let file = PairedFile { clients: next };
        write_json(&self.path, &file)?;
        self.file = file;
        Ok(())
    }

    /// Removes the client whose [`PairedClient::id`] or full fingerprint is `id`; `Ok(None)`
    /// when there is none.
    pub fn remove(&mut self, id: &str) -> Result<Option<PairedClient>, StoreError> {
        let Some(i) = self
            .file
            .clients
            .iter()
            .position(|c| c.id() == id || c.fingerprint == id)
        else {
            return Ok(None);
        };
        let mut next = self.file.clients.clone();
        let gone = next.remove(i);
        let file = PairedFile { clients: next };
        write_json(&self.path, &file)?;
        self.file = file;
        Ok(Some(gone))
    }
}

/// The client's certificate (self-signed ECDSA P-256) and private key (PKCS#8), both DER.
#[derive(Clone)]
pub struct ClientIdentity {
    pub cert_der: Vec<u8>,
    pub key_der: Vec<u8>,
}

impl std::fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientIdentity")
            .field("fingerprint", &hex(&self.fingerprint()))
            .finish_non_exhaustive()
    }
}

impl ClientIdentity {
    /// A fresh identity (not stored).
    pub fn generate(common_name: &str) -> Result<Self, String> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(|e| e.to_string())?;
        let mut params = rcgen::CertificateParams::new(vec![]).map_err(|e| e.to_string())?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, common_name);
        let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
        Ok(ClientIdentity {
            cert_der: cert.der().to_vec(),
            key_der: key.serialize_der(),
        })
    }

    /// Loads the identity from `dir`, creating it on first use. One file without the other is
    /// an error (the certificate is what hosts have pinned; never regenerated silently).
    pub fn load_or_create(dir: &Path) -> Result<Self, StoreError> {
        let cp = dir.join(CLIENT_CERT_FILE);
        let kp = dir.join(CLIENT_KEY_FILE);
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| StoreError::Io { path, source }
        };
        match (cp.exists(), kp.exists()) {
            (true, true) => Ok(ClientIdentity {
                cert_der: fs::read(&cp).map_err(io(&cp))?,
                key_der: fs::read(&kp).map_err(io(&kp))?,
            }),
            (false, false) => {
                fs::create_dir_all(dir).map_err(io(dir))?;
                let id = Self::generate("strahl client").map_err(|reason| StoreError::Corrupt {
                    path: cp.clone(),
                    reason,
                })?;
                write_atomic(&kp, &id.key_der, 0o600).map_err(io(&kp))?;
                write_atomic(&cp, &id.cert_der, 0o644).map_err(io(&cp))?;
                Ok(id)
            }
            (c, _) => {
                let (present, missing) = if c { (&cp, &kp) } else { (&kp, &cp) };
                Err(StoreError::Corrupt {
                    path: missing.clone(),
                    reason: format!("missing while {} exists", present.display()),
                })
            }
        }
    }

    pub fn fingerprint(&self) -> Fingerprint {
        crate::pairing::fingerprint(&self.cert_der)
    }
}

/// The hosts a client has paired with: what it pins when it connects again.
#[derive(Debug)]
pub struct KnownHosts {
    path: PathBuf,
    hosts: std::collections::BTreeMap<String, String>,
}

impl KnownHosts {
    pub fn load(dir: &Path) -> Result<Self, StoreError> {
        let path = dir.join(HOSTS_FILE);
        Ok(KnownHosts {
            hosts: read_json(&path)?,
            path,
        })
    }

    pub fn get(&self, host: &str) -> Option<Fingerprint> {
        self.hosts.get(host).and_then(|h| parse_hex(h))
    }

    pub fn insert(&mut self, host: &str, fp: &Fingerprint) -> Result<(), StoreError> {
        let mut next = self.hosts.clone();
        next.insert(host.to_owned(), hex(fp));
        write_json(&self.path, &next)?;
        self.hosts = next;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paired(b: u8, name: &str) -> Paired {
        Paired {
            fingerprint: [b; 32],
            name: name.into(),
        }
    }

    #[test]
    fn paired_store_survives_reload_and_unpairs_by_id() {
        let d = tempfile::tempdir().unwrap();
        let mut s = PairedStore::load(d.path()).unwrap();
        assert!(s.clients().is_empty());
        s.add(&paired(1, "deck"), 10).unwrap();
        s.add(&paired(2, "laptop"), 11).unwrap();
        s.add(&paired(1, "deck again"), 12).unwrap();
        let s2 = PairedStore::load(d.path()).unwrap();
        assert_eq!(s2.clients().len(), 2);
        assert!(s2.contains(&[1; 32]) && s2.contains(&[2; 32]) && !s2.contains(&[3; 32]));
        let id = s2
            .clients()
            .iter()
            .find(|c| c.name == "deck again")
            .unwrap()
            .id();
        let mut s2 = s2;
        assert_eq!(s2.remove(&id).unwrap().unwrap().name, "deck again");
        assert_eq!(s2.remove(&id).unwrap(), None);
        assert!(!PairedStore::load(d.path()).unwrap().contains(&[1; 32]));
        // Only the file itself remains: no temp files.
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn corrupt_files_are_errors_not_empty_stores() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join(PAIRED_FILE), b"{not json").unwrap();
        assert!(matches!(
            PairedStore::load(d.path()),
            Err(StoreError::Corrupt { .. })
        ));
        fs::write(
            d.path().join(PAIRED_FILE),
            br#"{"clients":[{"fingerprint":"zz","name":"x","paired_unix_s":0}]}"#,
        )
        .unwrap();
        assert!(PairedStore::load(d.path()).is_err());
    }

    #[test]
    fn client_identity_is_created_once_and_reloaded() {
        let d = tempfile::tempdir().unwrap();
        let a = ClientIdentity::load_or_create(d.path()).unwrap();
        let b = ClientIdentity::load_or_create(d.path()).unwrap();
        assert_eq!(a.fingerprint(), b.fingerprint());
        fs::remove_file(d.path().join(CLIENT_KEY_FILE)).unwrap();
        assert!(ClientIdentity::load_or_create(d.path()).is_err());
        let mut h = KnownHosts::load(d.path()).unwrap();
        h.insert("10.0.0.1:47900", &[5; 32]).unwrap();
        assert_eq!(
            KnownHosts::load(d.path()).unwrap().get("10.0.0.1:47900"),
            Some([5; 32])
        );
    }
}
