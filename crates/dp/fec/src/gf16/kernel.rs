//! The GF(2^16) bulk operation of the few-erasure decoder and its run-time kernel choice:
//!
//! `out[r] = XOR over i of coef(r, i) * in[i]`, symbol by symbol, over whole 64-byte chunks in
//! `reed-solomon-simd`'s layout (bytes `0..32` of a chunk are the low bytes of 32 symbols, bytes
//! `32..64` their high bytes). Outputs are overwritten, never accumulated.
//!
//! Multiplication by a constant is GF(2)-linear, so each coefficient is prepared once per decode
//! as a 128-byte [`Tab`] in the form its kernel wants: eight 16-entry nibble tables (low/high
//! product byte for each of the symbol's four nibbles; scalar, SSSE3, AVX2 via PSHUFB) or, for
//! GFNI, the 16x16 bit matrix as four 8x8 affine blocks laid out per 64-bit lane of a chunk.
//!
//! Inputs and outputs are addressed by index into a [`Chunks`] source (the caller's shards, or the
//! decoder's staging for a final partial chunk), so nothing allocates per call.

use super::field::Field;

/// A GF(2^16) kernel the crate can run. All produce identical bytes; they differ in speed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Gf16Kernel {
    /// Portable table lookups (the reference the others are tested against).
    Scalar,
    /// 16-byte nibble tables through PSHUFB.
    Ssse3,
    /// 32-byte nibble tables through VPSHUFB.
    Avx2,
    /// GFNI affine transforms on one 64-byte chunk per vector (AVX-512).
    Gfni512,
}

impl Gf16Kernel {
    /// Every kernel, slowest first.
    pub const ALL: [Gf16Kernel; 4] = [
        Gf16Kernel::Scalar,
        Gf16Kernel::Ssse3,
        Gf16Kernel::Avx2,
        Gf16Kernel::Gfni512,
    ];

    /// Whether this CPU can run the kernel (run-time CPUID, cached by std).
    pub fn is_available(self) -> bool {
        match self {
            Gf16Kernel::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Gf16Kernel::Ssse3 => std::arch::is_x86_feature_detected!("ssse3"),
            #[cfg(target_arch = "x86_64")]
            Gf16Kernel::Avx2 => std::arch::is_x86_feature_detected!("avx2"),
            #[cfg(target_arch = "x86_64")]
            Gf16Kernel::Gfni512 => {
                std::arch::is_x86_feature_detected!("gfni")
                    && std::arch::is_x86_feature_detected!("avx512f")
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// The fastest kernel this CPU runs.
    pub fn best() -> Gf16Kernel {
        Gf16Kernel::ALL
            .into_iter()
            .rev()
            .find(|k| k.is_available())
            .unwrap_or(Gf16Kernel::Scalar)
    }

    pub fn name(self) -> &'static str {
        match self {
            Gf16Kernel::Scalar => "scalar",
            Gf16Kernel::Ssse3 => "ssse3",
            Gf16Kernel::Avx2 => "avx2",
            Gf16Kernel::Gfni512 => "gfni512",
        }
    }

    /// Output rows computed per pass over the inputs: their accumulators must stay in registers
    /// (GFNI: 2 per row of the 32 ZMM; PSHUFB: 2 per row plus 4 nibble vectors of 16 registers).
    pub(crate) fn group_rows(self) -> usize {
        match self {
            Gf16Kernel::Gfni512 => 8,
            _ => 4,
        }
    }

    /// Whether [`Tab`]s for this kernel hold affine matrices rather than nibble tables.
    fn affine(self) -> bool {
        self == Gf16Kernel::Gfni512
    }
}

/// One prepared coefficient (see the module header for the two layouts).
#[derive(Clone, Copy)]
#[repr(C, align(64))]
pub(crate) struct Tab(pub(crate) [u8; 128]);

impl Default for Tab {
    fn default() -> Self {
        Tab([0; 128])
    }
}

impl Tab {
    /// Prepare multiplication by `c` for `kernel`.
    pub(crate) fn new(f: &Field, kernel: Gf16Kernel, c: u16) -> Tab {
        let col = f.columns(c);
        let mut t = Tab::default();
        if kernel.affine() {
            // Block (oh, ih) maps input byte `ih` (0 = low) to output byte `oh`. GF2P8AFFINEQB
            // computes output bit `i` as parity(matrix byte `7 - i` AND input byte), so byte
            // `7 - i` holds, for each input bit `b`, whether column `8 ih + b` has bit `8 oh + i`.
            let block = |oh: usize, ih: usize| -> u64 {
                let mut m = 0u64;
                for i in 0..8 {
                    let row = (0..8).fold(0u8, |acc, b| {
                        acc | ((((col[8 * ih + b] >> (8 * oh + i)) & 1) as u8) << b)
                    });
                    m |= (row as u64) << (8 * (7 - i));
                }
                m
            };
            // Chunk lanes 0..4 hold the low bytes, 4..8 the high bytes. `first` keeps each byte
            // in place (lo->lo, hi->hi); `second` computes the cross terms (lo->hi in the low
            // lanes, hi->lo in the high lanes), swapped into place once per output chunk.
            let first = [block(0, 0), block(1, 1)];
            let second = [block(1, 0), block(0, 1)];
            for lane in 0..8 {
                let half = lane / 4;
                t.0[8 * lane..8 * lane + 8].copy_from_slice(&first[half].to_le_bytes());
                t.0[64 + 8 * lane..64 + 8 * lane + 8].copy_from_slice(&second[half].to_le_bytes());
            }
        } else {
            // Table 2q + h: byte h of c * (n << 4q) for each nibble value n.
            for q in 0..4 {
                for n in 0..16usize {
                    let p = (0..4)
                        .filter(|b| n >> b & 1 == 1)
                        .fold(0u16, |acc, b| acc ^ col[4 * q + b]);
                    t.0[32 * q + n] = p as u8;
                    t.0[32 * q + 16 + n] = (p >> 8) as u8;
                }
            }
        }
        t
    }
}

/// Where the kernel's 64-byte chunks live.
pub(crate) trait Chunks {
    fn chunk(&self, shard: usize, at: usize) -> &[u8; 64];
    fn chunk_mut(&mut self, shard: usize, at: usize) -> &mut [u8; 64];
}

/// The caller's shards (only their whole chunks are addressed).
impl Chunks for [&mut [u8]] {
    #[inline(always)]
    fn chunk(&self, shard: usize, at: usize) -> &[u8; 64] {
        self[shard][at..at + 64].try_into().expect("64-byte window")
    }
    #[inline(always)]
    fn chunk_mut(&mut self, shard: usize, at: usize) -> &mut [u8; 64] {
        (&mut self[shard][at..at + 64])
            .try_into()
            .expect("64-byte window")
    }
}

/// Staging: one chunk per shard (`at` is always 0).
impl Chunks for [[u8; 64]] {
    #[inline(always)]
    fn chunk(&self, shard: usize, _at: usize) -> &[u8; 64] {
        &self[shard]
    }
    #[inline(always)]
    fn chunk_mut(&mut self, shard: usize, _at: usize) -> &mut [u8; 64] {
        &mut self[shard]
    }
}

/// One call's operands. `tabs[i * rows + r]` is the coefficient of input `i` in output row `r`;
/// `ins`/`outs` index shards of the source (disjoint); `chunks` whole chunks from byte 0.
pub(crate) struct Job<'a> {
    pub(crate) tabs: &'a [Tab],
    pub(crate) rows: usize,
    pub(crate) ins: &'a [u32],
    pub(crate) outs: &'a [u32],
    pub(crate) chunks: usize,
}

/// Run `job` on `src` with `kernel` (an unavailable kernel falls back to scalar; the tables must
/// have been prepared for the kernel actually passed, see [`Gf16Kernel::resolve`]).
pub(crate) fn mul_rows<S: Chunks + ?Sized>(kernel: Gf16Kernel, job: &Job, src: &mut S) {
    debug_assert_eq!(job.outs.len(), job.rows);
    debug_assert_eq!(job.tabs.len(), job.ins.len() * job.rows);
    let g = kernel.group_rows();
    let mut r0 = 0;
    while r0 < job.rows {
        let rows = (job.rows - r0).min(g);
        match kernel {
            #[cfg(target_arch = "x86_64")]
            Gf16Kernel::Ssse3 | Gf16Kernel::Avx2 | Gf16Kernel::Gfni512 => {
                super::simd_x86::group(kernel, job, r0, rows, src)
            }
            _ => scalar_group(job, r0, rows, src),
        }
        r0 += rows;
    }
}

impl Gf16Kernel {
    /// The kernel that will really run: `self` when available, else scalar.
    pub(crate) fn resolve(self) -> Gf16Kernel {
        if self.is_available() {
            self
        } else {
            Gf16Kernel::Scalar
        }
    }
}

/// Scalar reference over rows `r0 .. r0 + rows`: eight nibble-table lookups per symbol.
pub(crate) fn scalar_group<S: Chunks + ?Sized>(job: &Job, r0: usize, rows: usize, src: &mut S) {
    for c in 0..job.chunks {
        let at = 64 * c;
        for r in r0..r0 + rows {
            let mut acc = [0u8; 64];
            for (i, &shard) in job.ins.iter().enumerate() {
                let t = &job.tabs[i * job.rows + r].0;
                let x = src.chunk(shard as usize, at);
                for s in 0..32 {
                    let (lo, hi) = (x[s] as usize, x[32 + s] as usize);
                    let nib = [lo & 15, lo >> 4, hi & 15, hi >> 4];
                    for (q, &n) in nib.iter().enumerate() {
                        acc[s] ^= t[32 * q + n];
                        acc[32 + s] ^= t[32 * q + 16 + n];
                    }
                }
            }
            *src.chunk_mut(job.outs[r] as usize, at) = acc;
        }
    }
}
