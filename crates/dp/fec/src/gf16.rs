//! GF(2^16) Reed-Solomon through `reed-solomon-simd` (native `strahl/1` format).
//!
//! One block per frame: `data + parity <= 65535` (and within what `reed-solomon-simd` supports,
//! e.g. not 60000 + 5000), every shard the same even, non-zero length.
//!
//! - Encode copies the crate's recovery shards into the caller's parity buffers (the crate owns
//!   its working buffers; the copy is the price of caller-owned packet memory).
//! - Encoder and decoder keep the crate's working memory across frames (`reset`), so once the
//!   largest shape has been seen there is no allocation per frame.
//! - The decoder is only invoked when a data shard is actually missing: its transform has a fixed
//!   cost of about 190 µs per frame (docs/measurements.md §fec), so "all data arrived" must be free.
//! - Few erasures (up to [`FAST_MAX_ERASURES`] missing data shards) are recovered without that
//!   transform: `fast` solves the small system from the code's closed-form coefficients
//!   (`field`) and runs one SIMD multiply-accumulate pass (`kernel`, best [`Gf16Kernel`] at run
//!   time). Same code, same bytes: property-tested against the crate's own decoder.
//! - `parity == 0` is a valid "FEC off" shape here: encode does nothing, reconstruct succeeds
//!   only when every data shard is present.

use reed_solomon_simd::{Error as RsError, ReedSolomonDecoder, ReedSolomonEncoder};

use crate::FecError;

mod fast;
mod field;
mod kernel;
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod simd_x86;

pub use kernel::Gf16Kernel;

/// Most missing data shards the few-erasure path takes on a SIMD kernel; more go to
/// `reed-solomon-simd`'s FFT decoder. The fast path's cost grows with `e * k`, the crate's is
/// about flat in `e`: at 72+36 x 1428 B (`strahl-bench fec`, `crossover_100k_50pct`) ours on
/// gfni512 took 0.26x the crate's time at 16 lost and still 0.8-0.87x at all 36 lost; avx2 at
/// 46+10 took 0.08-0.15x at 4 lost (docs/measurements.md §fec few-erasure decode). 16 keeps a
/// margin for slower kernels and larger frames (our cost scales with `k`, the crate's with
/// `n log n`) while covering every loss a 20 % parity budget of a 720p frame can repair.
pub const FAST_MAX_ERASURES: usize = 16;

/// The same limit when only the scalar kernel runs (no SSSE3, or not x86-64, where the crate
/// has NEON and we have no vector kernel): it beat the crate 3-4x at 1 lost and 1.6x at 2, and
/// only broke even (0.8-1.1x) at 4 (46+10 x 1428 B, same bench).
pub const FAST_MAX_ERASURES_SCALAR: usize = 2;

/// Most shards in one GF(2^16) block.
pub const MAX_SHARDS: usize = 65535;

/// Encoder that keeps its working memory between frames (no allocation in steady state once it has
/// seen the largest shape).
pub struct Gf16Encoder {
    inner: Option<ReedSolomonEncoder>,
}

impl Gf16Encoder {
    pub fn new() -> Self {
        Gf16Encoder { inner: None }
    }

    /// Compute `parity.len()` parity shards over `data` into the caller's buffers.
    pub fn encode(&mut self, data: &[&[u8]], parity: &mut [&mut [u8]]) -> Result<(), FecError> {
        let (d, p) = (data.len(), parity.len());
        let len = check_shape(
            d,
            p,
            data.iter()
                .map(|s| s.len())
                .chain(parity.iter().map(|s| s.len())),
        )?;
        if p == 0 {
            return Ok(());
        }
        let enc = match &mut self.inner {
            Some(enc) => {
                enc.reset(d, p, len).map_err(|e| map_err(d, p, e))?;
                enc
            }
            slot => slot.insert(ReedSolomonEncoder::new(d, p, len).map_err(|e| map_err(d, p, e))?),
        };
        for shard in data {
            enc.add_original_shard(shard)
                .map_err(|e| map_err(d, p, e))?;
        }
        let result = enc.encode().map_err(|e| map_err(d, p, e))?;
        for (dst, src) in parity.iter_mut().zip(result.recovery_iter()) {
            dst.copy_from_slice(src);
        }
        Ok(())
    }
}

impl Default for Gf16Encoder {
    fn default() -> Self {
        Self::new()
    }
}

/// Decoder that keeps its working memory between frames.
pub struct Gf16Decoder {
    inner: Option<ReedSolomonDecoder>,
    /// Built with the decoder (it also builds the crate's exp/log tables, ~1 ms once per process),
    /// so the first frame with a lost shard does not pay for it.
    fast: fast::FastDecoder,
    kernel: Gf16Kernel,
    fast_limit: usize,
    fast_decodes: u64,
}

impl Gf16Decoder {
    pub fn new() -> Self {
        Self::with_kernel(Gf16Kernel::best())
    }

    /// A decoder whose few-erasure path runs on `kernel` (an unavailable one runs scalar); for
    /// tests and benches, which compare kernels.
    pub fn with_kernel(kernel: Gf16Kernel) -> Self {
        Gf16Decoder {
            inner: None,
            fast: fast::FastDecoder::new(kernel),
            kernel: kernel.resolve(),
            fast_limit: if kernel.resolve() == Gf16Kernel::Scalar {
                FAST_MAX_ERASURES_SCALAR
            } else {
                FAST_MAX_ERASURES
            },
            fast_decodes: 0,
        }
    }

    /// The kernel the few-erasure path runs on (the one asked for, or scalar if unavailable).
    pub fn kernel(&self) -> Gf16Kernel {
        self.kernel
    }

    /// Blocks recovered by the few-erasure path so far (the rest of the decodes that had work to
    /// do went through the crate's decoder).
    pub fn fast_decodes(&self) -> u64 {
        self.fast_decodes
    }

    /// Most missing data shards recovered by the few-erasure path (default
    /// [`FAST_MAX_ERASURES`], [`FAST_MAX_ERASURES_SCALAR`] on the scalar kernel; 0 always uses the
    /// crate's decoder). For tests and benches.
    pub fn set_fast_limit(&mut self, limit: usize) {
        self.fast_limit = limit;
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
        let (d, p) = (data, parity);
        if shards.len() != d.saturating_add(p) || present.len() != shards.len() {
            return Err(FecError::InvalidShape {
                data: d,
                parity: p,
                reason: "shard or present-mask count differs from data + parity",
            });
        }
        let len = check_shape(d, p, shards.iter().map(|s| s.len()))?;
        let have = present.iter().filter(|&&b| b).count();
        if have < d {
            return Err(FecError::TooFewShards {
                present: have,
                needed: d,
            });
        }
        let have_data = present[..d].iter().filter(|&&b| b).count();
        if have_data == d {
            return Ok(()); // the common case: no transform at all
        }
        if d - have_data <= self.fast_limit && self.fast.reconstruct(d, p, shards, present, len) {
            self.fast_decodes += 1;
            return Ok(());
        }
        let dec = match &mut self.inner {
            Some(dec) => {
                dec.reset(d, p, len).map_err(|e| map_err(d, p, e))?;
                dec
            }
            slot => slot.insert(ReedSolomonDecoder::new(d, p, len).map_err(|e| map_err(d, p, e))?),
        };
        for (i, shard) in shards[..d].iter().enumerate().filter(|&(i, _)| present[i]) {
            dec.add_original_shard(i, shard)
                .map_err(|e| map_err(d, p, e))?;
        }
        // Exactly `d` shards in total: more would only cost copies.
        let need = d - have_data;
        let recovery = (0..p).filter(|&j| present[d + j]).take(need);
        for j in recovery {
            dec.add_recovery_shard(j, &shards[d + j])
                .map_err(|e| map_err(d, p, e))?;
        }
        let result = dec.decode().map_err(|e| map_err(d, p, e))?;
        for (i, restored) in result.restored_original_iter() {
            if let Some(dst) = shards.get_mut(i) {
                dst.copy_from_slice(restored);
            }
        }
        Ok(())
    }
}

impl Default for Gf16Decoder {
    fn default() -> Self {
        Self::new()
    }
}

/// Shared shape checks; returns the common shard length.
fn check_shape(
    d: usize,
    p: usize,
    mut lens: impl Iterator<Item = usize>,
) -> Result<usize, FecError> {
    if d == 0 {
        return Err(FecError::InvalidShape {
            data: d,
            parity: p,
            reason: "no data shards",
        });
    }
    if d.saturating_add(p) > MAX_SHARDS {
        return Err(FecError::InvalidShape {
            data: d,
            parity: p,
            reason: "GF(2^16) block is limited to 65535 shards",
        });
    }
    if p > 0 && !ReedSolomonEncoder::supports(d, p) {
        return Err(FecError::InvalidShape {
            data: d,
            parity: p,
            reason: "shard counts not supported by reed-solomon-simd",
        });
    }
    let expected = lens.next().unwrap_or(0);
    if let Some(got) = lens.find(|&l| l != expected) {
        return Err(FecError::ShardLength { expected, got });
    }
    if expected == 0 || !expected.is_multiple_of(2) {
        // Report the nearest valid length the caller could pad to.
        return Err(FecError::ShardLength {
            expected: (expected + 1).max(2) & !1,
            got: expected,
        });
    }
    Ok(expected)
}

/// The crate's errors after our own validation can only be shape problems; keep them typed.
fn map_err(d: usize, p: usize, e: RsError) -> FecError {
    match e {
        RsError::DifferentShardSize { shard_bytes, got } => FecError::ShardLength {
            expected: shard_bytes,
            got,
        },
        RsError::InvalidShardSize { shard_bytes } => FecError::ShardLength {
            expected: (shard_bytes + 1).max(2) & !1,
            got: shard_bytes,
        },
        RsError::NotEnoughShards {
            original_received_count,
            recovery_received_count,
            ..
        } => FecError::TooFewShards {
            present: original_received_count + recovery_received_count,
            needed: d,
        },
        _ => FecError::InvalidShape {
            data: d,
            parity: p,
            reason: "rejected by reed-solomon-simd",
        },
    }
}
