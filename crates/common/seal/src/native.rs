//! `strahl/1` per-packet sealing: nonce = IV xor packet number, key update before 2^23 packets,
//! replay window on the receiver.
//!
//! Contract:
//! - One 32-byte secret per direction (from the QUIC TLS exporter). Packet numbers (pn) start at 0
//!   and count up by one per sealed packet; pn < 2^62 ([`PN_LIMIT`]), past that sealing fails with
//!   [`SealError::KeyExhausted`] (never reuse a nonce).
//! - Key generation g = pn >> 23. key_g (16 B) and iv_g (12 B) are HKDF-SHA256 outputs of the
//!   direction secret with labels naming the direction and g (see [`derive_generation`]), so the
//!   key changes every [`MAX_PACKETS_PER_KEY`] packets with no phase bit on the wire: the receiver
//!   derives g from the expanded pn. Derivation happens once per generation, never per packet.
//! - nonce = iv_g xor (0u32 ‖ pn as u64 big-endian). Within a generation pn is distinct per
//!   packet, so nonces are distinct under each key (property-tested below).
//! - [`RxOpener::open`] authenticates first, and only then records the pn in the replay window
//!   and advances the largest pn; a pn older than [`REPLAY_WINDOW`] behind the largest, or one
//!   already seen, is [`SealError::Replayed`]. Packets whose generation is not the current one,
//!   its predecessor or its successor are rejected as [`SealError::Forged`] without deriving a key
//!   (a forged far-future pn must not cost a derivation each).

use hkdf::Hkdf;
use sha2::Sha256;

use crate::aead::{Backend, PacketAead, new_aes128gcm};
use crate::{KEY_LEN, NONCE_LEN, SealError, TAG_LEN};

/// Which way packets flow; each direction has its own secret-derived keys and label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    HostToClient,
    ClientToHost,
}

impl Direction {
    fn label(self) -> &'static [u8] {
        match self {
            Direction::HostToClient => b"h2c",
            Direction::ClientToHost => b"c2h",
        }
    }
}

/// Each key seals at most 2^23 packets. AES-GCM's confidentiality bound for 2^23 messages of
/// ≤ 9000 B (jumbo) stays far below 2^-57 advantage, and at 1 Mpps this rotates every ~8 s.
pub const MAX_PACKETS_PER_KEY: u64 = 1 << 23;
/// log2 of [`MAX_PACKETS_PER_KEY`].
pub const GENERATION_SHIFT: u32 = 23;
/// Packet numbers must stay below 2^62 (the QUIC varint range; also leaves headroom in the
/// expansion arithmetic). 2^62 packets at 10 Mpps is ~14,000 years.
pub const PN_LIMIT: u64 = 1 << 62;
/// Packets behind the largest authenticated pn that can still be accepted once. 8192 packets is
/// ~10 ms at 10 Gbit/s with 1400-byte packets (several frames of reordering on a LAN), and the
/// bitmap costs 1 KiB per receiver.
pub const REPLAY_WINDOW: u64 = 8192;

/// HKDF-Extract salt: domain-separates strahl's key schedule from any other use of the secret.
const HKDF_SALT: &[u8] = b"strahl/1 seal v1";

/// Key generation of a packet number.
pub fn generation_of(packet_number: u64) -> u64 {
    packet_number >> GENERATION_SHIFT
}

/// key_g = HKDF-Expand(PRK, "strahl/1 " ‖ dir ‖ " key" ‖ g as u64 BE, 16) and
/// iv_g = HKDF-Expand(PRK, "strahl/1 " ‖ dir ‖ " iv" ‖ g as u64 BE, 12), with
/// PRK = HKDF-Extract(salt = "strahl/1 seal v1", secret) and dir = "h2c" | "c2h".
pub fn derive_generation(
    secret: &[u8; 32],
    direction: Direction,
    generation: u64,
) -> ([u8; KEY_LEN], [u8; NONCE_LEN]) {
    let hk = Hkdf::<Sha256>::new(Some(HKDF_SALT), secret);
    let g = generation.to_be_bytes();
    let mut key = [0u8; KEY_LEN];
    let mut iv = [0u8; NONCE_LEN];
    // 16 and 12 bytes are far below HKDF-SHA256's 255·32-byte limit: expand cannot fail.
    hk.expand_multi_info(&[b"strahl/1 ", direction.label(), b" key", &g], &mut key)
        .expect("HKDF output length within limit");
    hk.expand_multi_info(&[b"strahl/1 ", direction.label(), b" iv", &g], &mut iv)
        .expect("HKDF output length within limit");
    (key, iv)
}

/// nonce = iv xor (pn as u64 big-endian in bytes 4..12).
fn nonce_for(iv: &[u8; NONCE_LEN], packet_number: u64) -> [u8; NONCE_LEN] {
    let mut nonce = *iv;
    for (n, p) in nonce[4..].iter_mut().zip(packet_number.to_be_bytes()) {
        *n ^= p;
    }
    nonce
}

/// The keyed state of one generation.
struct GenKey {
    generation: u64,
    aead: Box<dyn PacketAead>,
    iv: [u8; NONCE_LEN],
}

impl GenKey {
    fn derive(
        secret: &[u8; 32],
        direction: Direction,
        backend: Backend,
        generation: u64,
    ) -> GenKey {
        let (key, iv) = derive_generation(secret, direction, generation);
        GenKey {
            generation,
            aead: new_aes128gcm(backend, &key),
            iv,
        }
    }
}

/// Sender side: seals packets with consecutive packet numbers.
pub struct TxSealer {
    secret: [u8; 32],
    direction: Direction,
    backend: Backend,
    key: GenKey,
    next_pn: u64,
}

impl TxSealer {
    pub fn new(secret: &[u8; 32], direction: Direction, backend: Backend) -> Self {
        Self::with_first_packet_number(secret, direction, backend, 0)
    }

    /// Start at `first_pn` instead of 0 (tests and benches that exercise rotation boundaries).
    pub fn with_first_packet_number(
        secret: &[u8; 32],
        direction: Direction,
        backend: Backend,
        first_pn: u64,
    ) -> Self {
        let generation = generation_of(first_pn.min(PN_LIMIT - 1));
        TxSealer {
            secret: *secret,
            direction,
            backend,
            key: GenKey::derive(secret, direction, backend, generation),
            next_pn: first_pn,
        }
    }

    /// What the next seal() will use.
    pub fn next_packet_number(&self) -> u64 {
        self.next_pn
    }

    /// The backend this sealer uses.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Seal `payload` in place, `aad` authenticated; returns (packet number used, tag).
    pub fn seal(
        &mut self,
        aad: &[u8],
        payload: &mut [u8],
    ) -> Result<(u64, [u8; TAG_LEN]), SealError> {
        let pn = self.next_pn;
        if pn >= PN_LIMIT {
            return Err(SealError::KeyExhausted);
        }
        let generation = generation_of(pn);
        if generation != self.key.generation {
            // Once per 2^23 packets: derive the next generation's key.
            self.key = GenKey::derive(&self.secret, self.direction, self.backend, generation);
        }
        let nonce = nonce_for(&self.key.iv, pn);
        let tag = self.key.aead.seal_in_place(&nonce, aad, payload);
        self.next_pn = pn + 1;
        Ok((pn, tag))
    }
}

/// Sliding replay window over the last [`REPLAY_WINDOW`] packet numbers.
///
/// Bit `pn % REPLAY_WINDOW` records whether `pn` was accepted, for pn in
/// (largest − REPLAY_WINDOW, largest]. Reused by the GameStream control cipher.
#[derive(Clone)]
pub(crate) struct ReplayWindow {
    largest: Option<u64>,
    bits: [u64; (REPLAY_WINDOW / 64) as usize],
}

impl ReplayWindow {
    pub(crate) fn new() -> Self {
        ReplayWindow {
            largest: None,
            bits: [0; (REPLAY_WINDOW / 64) as usize],
        }
    }

    pub(crate) fn largest(&self) -> Option<u64> {
        self.largest
    }

    fn bit(pn: u64) -> (usize, u64) {
        let i = pn % REPLAY_WINDOW;
        ((i / 64) as usize, 1u64 << (i % 64))
    }

    /// Ok if `pn` is new and inside the window; does not record it.
    pub(crate) fn check(&self, pn: u64) -> Result<(), SealError> {
        let Some(largest) = self.largest else {
            return Ok(());
        };
        if pn > largest {
            return Ok(());
        }
        if largest - pn >= REPLAY_WINDOW {
            return Err(SealError::Replayed { packet_number: pn });
        }
        let (w, m) = Self::bit(pn);
        if self.bits[w] & m != 0 {
            return Err(SealError::Replayed { packet_number: pn });
        }
        Ok(())
    }

    /// Record an authenticated `pn` (call only after [`Self::check`] passed and the packet opened).
    pub(crate) fn record(&mut self, pn: u64) {
        match self.largest {
            Some(largest) if pn <= largest => {}
            Some(largest) => {
                // Slots largest+1..=pn now stand for new packet numbers: clear them (bounded by
                // the window size, whole words at a time where possible).
                let gap = pn - largest;
                if gap >= REPLAY_WINDOW {
                    self.bits = [0; (REPLAY_WINDOW / 64) as usize];
                } else {
                    let mut q = largest + 1;
                    while q <= pn {
                        let (w, m) = Self::bit(q);
                        if q % 64 == 0 && pn - q >= 63 {
                            self.bits[w] = 0;
                            q += 64;
                        } else {
                            self.bits[w] &= !m;
                            q += 1;
                        }
                    }
                }
                self.largest = Some(pn);
            }
            None => {
                self.largest = Some(pn);
            }
        }
        let (w, m) = Self::bit(pn);
        self.bits[w] |= m;
    }
}

/// Receiver side: expands truncated packet numbers, opens, and rejects replays.
pub struct RxOpener {
    secret: [u8; 32],
    direction: Direction,
    backend: Backend,
    /// Up to three generations: the current one (of the largest pn), its predecessor (late
    /// packets across a rotation) and its successor (the first packets after a rotation).
    keys: [Option<GenKey>; 3],
    window: ReplayWindow,
}

impl RxOpener {
    pub fn new(secret: &[u8; 32], direction: Direction, backend: Backend) -> Self {
        RxOpener {
            secret: *secret,
            direction,
            backend,
            keys: [
                Some(GenKey::derive(secret, direction, backend, 0)),
                None,
                None,
            ],
            window: ReplayWindow::new(),
        }
    }

    /// Largest authenticated packet number so far (None before the first packet).
    pub fn largest_packet_number(&self) -> Option<u64> {
        self.window.largest()
    }

    /// Expand the low `bits` bits of a packet number relative to the largest authenticated one
    /// (QUIC-style, RFC 9000 §A.3): the result is the value closest to largest + 1 whose low
    /// `bits` bits equal `truncated`. `bits` is clamped to 1..=62; higher bits of `truncated`
    /// are ignored.
    pub fn expand_packet_number(&self, truncated: u64, bits: u32) -> u64 {
        let bits = bits.clamp(1, 62);
        let expected = self.window.largest().map_or(0, |l| l + 1);
        let win = 1u64 << bits;
        let hwin = win / 2;
        let mask = win - 1;
        let candidate = (expected & !mask) | (truncated & mask);
        if candidate.saturating_add(hwin) <= expected && candidate < PN_LIMIT - win {
            candidate + win
        } else if candidate > expected.saturating_add(hwin) && candidate >= win {
            candidate - win
        } else {
            candidate
        }
    }

    /// Authenticate + decrypt in place; enforces the replay window; only then advances the
    /// largest pn.
    pub fn open(
        &mut self,
        packet_number: u64,
        aad: &[u8],
        payload: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), SealError> {
        if packet_number >= PN_LIMIT {
            // No honest sender can seal it.
            return Err(SealError::Forged);
        }
        self.window.check(packet_number)?;
        let generation = generation_of(packet_number);
        let current = generation_of(self.window.largest().unwrap_or(0));
        if generation + 1 < current || generation > current + 1 {
            return Err(SealError::Forged);
        }
        let key = self.key_for(generation, current);
        let nonce = nonce_for(&key.iv, packet_number);
        key.aead.open_in_place(&nonce, aad, payload, tag)?;
        self.window.record(packet_number);
        Ok(())
    }

    /// The cached key of `generation` (within one of `current`), deriving it on first use.
    fn key_for(&mut self, generation: u64, current: u64) -> &GenKey {
        let pos = self
            .keys
            .iter()
            .position(|k| k.as_ref().is_some_and(|k| k.generation == generation));
        let slot = match pos {
            Some(i) => i,
            None => {
                // Reuse an empty slot, else one whose generation fell out of current ± 1.
                let stale = |k: &Option<GenKey>| match k {
                    None => true,
                    Some(k) => k.generation + 1 < current || k.generation > current + 1,
                };
                let i = self.keys.iter().position(stale).unwrap_or(0);
                self.keys[i] = Some(GenKey::derive(
                    &self.secret,
                    self.direction,
                    self.backend,
                    generation,
                ));
                i
            }
        };
        // The slot was just found or filled.
        self.keys[slot].as_ref().expect("slot holds a key")
    }

    /// How many generation keys are cached (tests: derivation stays bounded).
    #[doc(hidden)]
    pub fn cached_generations(&self) -> usize {
        self.keys.iter().filter(|k| k.is_some()).count()
    }
}

#[cfg(test)]
mod tests;
