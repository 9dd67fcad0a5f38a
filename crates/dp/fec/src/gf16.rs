//! GF(2^16) Reed-Solomon through `reed-solomon-simd` (native `strahl/1` format).
//!
//! One block per frame: `data + parity <= 65535`, every shard the same even length.

use crate::FecError;

/// Encoder that keeps its working memory between frames (no allocation in steady state once it has
/// seen the largest shape).
pub struct Gf16Encoder {
    // implementation detail
}

impl Gf16Encoder {
    pub fn new() -> Self {
        todo!()
    }

    /// Compute `parity.len()` parity shards over `data` into the caller's buffers.
    pub fn encode(&mut self, data: &[&[u8]], parity: &mut [&mut [u8]]) -> Result<(), FecError> {
        let _ = (data, parity);
        todo!()
    }
}

impl Default for Gf16Encoder {
    fn default() -> Self {
        Self::new()
    }
}

/// Decoder that keeps its working memory between frames.
pub struct Gf16Decoder {
    // implementation detail
}

impl Gf16Decoder {
    pub fn new() -> Self {
        todo!()
    }

    /// `shards` holds `data + parity` equal-length buffers in index order (data first);
    /// `present[i]` says whether shard `i` arrived. Missing *data* shards are rewritten in place.
    /// Returns `TooFewShards` when fewer than `data` are present.
    pub fn reconstruct(
        &mut self,
        data: usize,
        parity: usize,
        shards: &mut [&mut [u8]],
        present: &[bool],
    ) -> Result<(), FecError> {
        let _ = (data, parity, shards, present);
        todo!()
    }
}

impl Default for Gf16Decoder {
    fn default() -> Self {
        Self::new()
    }
}
