//! GF(2^8) Reed-Solomon byte-identical to Moonlight's nanors (GameStream video and audio).

use crate::FecError;

/// A (data, parity) shape of the nanors Cauchy code. Cheap to construct, `Copy`, no allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gf8Code {
    data: u8,
    parity: u8,
}

impl Gf8Code {
    /// `1 <= data`, `1 <= parity`, `data + parity <= 255` (nanors refuses otherwise).
    pub fn new(data: usize, parity: usize) -> Result<Self, FecError> {
        let _ = (data, parity);
        todo!()
    }

    pub fn data_shards(&self) -> usize {
        self.data as usize
    }

    pub fn parity_shards(&self) -> usize {
        self.parity as usize
    }

    /// Parity over the full shards (all the same length), into the caller's buffers.
    pub fn encode(&self, data: &[&[u8]], parity: &mut [&mut [u8]]) -> Result<(), FecError> {
        let _ = (data, parity);
        todo!()
    }
}

/// Decoder with its scratch space (matrix inversion) owned, so decoding does not allocate.
pub struct Gf8Decoder {
    // implementation detail
}

impl Gf8Decoder {
    pub fn new() -> Self {
        todo!()
    }

    /// `shards`: `data + parity` equal-length buffers in index order; `present[i]` whether shard `i`
    /// arrived. Missing data shards are rewritten in place.
    pub fn reconstruct(
        &mut self,
        code: Gf8Code,
        shards: &mut [&mut [u8]],
        present: &[bool],
    ) -> Result<(), FecError> {
        let _ = (code, shards, present);
        todo!()
    }
}

impl Default for Gf8Decoder {
    fn default() -> Self {
        Self::new()
    }
}

/// The GameStream audio 4+2 code: fixed parity rows
/// `77 40 38 0e` and `c7 a7 0d 6c` (not the Cauchy rows nanors would compute).
pub struct AudioFec;

impl AudioFec {
    pub const DATA: usize = 4;
    pub const PARITY: usize = 2;

    pub fn encode(data: &[&[u8]; 4], parity: &mut [&mut [u8]; 2]) -> Result<(), FecError> {
        let _ = (data, parity);
        todo!()
    }

    /// Recover missing data shards among the 6 (index order: 4 data, 2 parity).
    pub fn reconstruct(shards: &mut [&mut [u8]; 6], present: &[bool; 6]) -> Result<(), FecError> {
        let _ = (shards, present);
        todo!()
    }
}
