//! AES-128-GCM behind one trait, two backends.

use crate::{NONCE_LEN, SealError, TAG_LEN};

/// In-place AES-128-GCM with a detached tag.
pub trait PacketAead: Send + Sync {
    fn seal_in_place(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], in_out: &mut [u8]) -> [u8; TAG_LEN];
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
    /// The faster backend as measured by `strahl-bench seal` on this machine.
    pub const DEFAULT: Backend = Backend::AwsLc;
}

/// Build a keyed AES-128-GCM instance (allocates once per key, never per packet).
pub fn new_aes128gcm(backend: Backend, key: &[u8; 16]) -> Box<dyn PacketAead> {
    let _ = (backend, key);
    todo!()
}
