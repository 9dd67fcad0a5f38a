//! Reed-Solomon erasure codes for both wire protocols.
//!
//! Contract (callers in `strahl-packetize` and the bench rely on these signatures):
//! - [`gf16`]: GF(2^16) via `reed-solomon-simd`, one block per frame, up to 65535 shards in total,
//!   shard length even. Encode writes parity into caller-owned buffers; decode recovers from any
//!   `k` of `k + m` shards. Up to [`gf16::FAST_MAX_ERASURES`] missing data shards are recovered by
//!   our own few-erasure solver (closed-form coefficients of the crate's code, SIMD GF(2^16)
//!   multiply-accumulate on the best [`gf16::Gf16Kernel`]), byte-identical to the crate's decoder.
//! - [`gf8`]: our own GF(2^8) systematic Cauchy code, byte-identical to Moonlight's nanors
//!   (polynomial 0x11D, coefficient `inv((p + i) ^ j)`, `d + p <= 255`). [`gf8::Gf8Code`] is a
//!   plain value (no allocation): coefficients come from the inverse table at encode time.
//!   [`gf8::AudioFec`] is the GameStream audio 4+2 code with its fixed parity rows.
//!   The bulk GF(2^8) multiply runs on the fastest [`gf8::Gf8Kernel`] the CPU has (GFNI affine on
//!   AVX-512 or AVX2, PSHUFB nibble tables on AVX2 or SSSE3, else scalar), picked at run time; all
//!   kernels are tested byte-equal to the scalar reference and to golden vectors from nanors
//!   (`golden/gen_golden.py`, `tests/golden/`).
//! - No function here allocates per call in the steady state except where documented
//!   (`Gf16Encoder`/`Gf16Decoder` allocate the crate's work buffers when a bigger shape arrives).
//! - Measured on the dev VM (`strahl-bench fec`, medians): GF(2^8) encode at (212, 43) x 1392 B
//!   ~3.5 GiB/s on gfni512, ~7x `reed-solomon-erasure`, 3.5-6.5x nanors' fastest build; the
//!   GF(2^16) wrapper within noise of raw `reed-solomon-simd`; GF(2^16) decode of 40-100 KiB
//!   frames with 1-4 shards lost 5-25 us on the few-erasure path vs 200-350 us for the crate's
//!   decoder (docs/measurements.md §fec few-erasure decode).
#![deny(unsafe_code)] // only `gf8::simd_x86` and `gf16::simd_x86` (std::arch intrinsics) are allowed unsafe, each block with a SAFETY note

pub mod gf16;
pub mod gf8;

/// Why an encode or decode was refused. Shapes are caller errors, not peer errors: the packetizer
/// validates peer-supplied shapes before it calls in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FecError {
    /// `data`/`parity` counts outside what the field supports.
    InvalidShape {
        data: usize,
        parity: usize,
        reason: &'static str,
    },
    /// Shards of unequal length, or a length the code cannot take (GF(2^16) needs even lengths).
    ShardLength { expected: usize, got: usize },
    /// Fewer shards present than data shards: not recoverable.
    TooFewShards { present: usize, needed: usize },
}

impl std::fmt::Display for FecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FecError::InvalidShape {
                data,
                parity,
                reason,
            } => {
                write!(f, "invalid FEC shape {data}+{parity}: {reason}")
            }
            FecError::ShardLength { expected, got } => {
                write!(f, "shard length {got} does not fit (expected {expected})")
            }
            FecError::TooFewShards { present, needed } => {
                write!(f, "only {present} shards present, {needed} needed")
            }
        }
    }
}

impl std::error::Error for FecError {}
