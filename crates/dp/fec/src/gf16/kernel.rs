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
    /// GFNI affine transforms on 32-byte vectors (VEX encoding; GFNI without AVX-512).
    Gfni256,
    /// GFNI affine transforms on one 64-byte chunk per vector (AVX-512).
    Gfni512,
}

impl Gf16Kernel {
    /// Every kernel, slowest first.
    pub const ALL: [Gf16Kernel; 5] = [
        Gf16Kernel::Scalar,
        Gf16Kernel::Ssse3,
        Gf16Kernel::Avx2,
        Gf16Kernel::Gfni256,
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
            Gf16Kernel::Gfni256 => {
                std::arch::is_x86_feature_detected!("gfni")
                    && std::arch::is_x86_feature_detected!("avx2")
            }
            // AVX2 too: the affine tables are built with 256-bit instructions.
            #[cfg(target_arch = "x86_64")]
            Gf16Kernel::Gfni512 => {
                std::arch::is_x86_feature_detected!("gfni")
                    && std::arch::is_x86_feature_detected!("avx2")
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
            Gf16Kernel::Gfni256 => "gfni256",
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
        matches!(self, Gf16Kernel::Gfni256 | Gf16Kernel::Gfni512)
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
    /// Multiplication by the element whose columns (`c * 2^b`) are `col`, for a nibble-table
    /// kernel or (`affine`) a GFNI one. Portable; the reference for the vector builder.
    pub(crate) fn from_columns(col: &[u16; 16], affine: bool) -> Tab {
        let mut t = Tab::default();
        if affine {
            // Chunk lanes 0..4 hold the low bytes, 4..8 the high bytes. `first` keeps each byte
            // in place (lo->lo, hi->hi); `second` computes the cross terms (lo->hi in the low
            // lanes, hi->lo in the high lanes), swapped into place once per output chunk.
            let first = [affine_block(col, 0, 0), affine_block(col, 1, 1)];
            let second = [affine_block(col, 1, 0), affine_block(col, 0, 1)];
            for lane in 0..8 {
                let half = lane / 4;
                t.0[8 * lane..8 * lane + 8].copy_from_slice(&first[half].to_le_bytes());
                t.0[64 + 8 * lane..64 + 8 * lane + 8].copy_from_slice(&second[half].to_le_bytes());
            }
        } else {
            // Table 2q + h: byte h of c * (n << 4q) for each nibble value n = XOR over the set bits
            // b of n of byte h of column 4q + b. Eight entries per u64 (SWAR): broadcast the
            // byte, keep it where bit b of the entry index is set; entries 8..16 add column 3.
            const ONES: u64 = 0x0101_0101_0101_0101;
            const BIT: [u64; 3] = [
                0xFF00_FF00_FF00_FF00, // entries 1, 3, 5, 7
                0xFFFF_0000_FFFF_0000, // entries 2, 3, 6, 7
                0xFFFF_FFFF_0000_0000, // entries 4..8
            ];
            for q in 0..4 {
                for h in 0..2 {
                    let byte = |b: usize| ((col[4 * q + b] >> (8 * h)) & 0xff) as u64 * ONES;
                    let low = (byte(0) & BIT[0]) ^ (byte(1) & BIT[1]) ^ (byte(2) & BIT[2]);
                    let at = 32 * q + 16 * h;
                    t.0[at..at + 8].copy_from_slice(&low.to_le_bytes());
                    t.0[at + 8..at + 16].copy_from_slice(&(low ^ byte(3)).to_le_bytes());
                }
            }
        }
        t
    }
}

/// The GF2P8AFFINEQB matrix mapping input byte `ih` (0 = low) of a symbol to output byte `oh`.
/// The instruction computes output bit `i` as parity(matrix byte `7 - i` AND input byte), so byte
/// `7 - i` must hold, at bit `b`, bit `8 oh + i` of column `8 ih + b`: the transpose of the 8x8
/// bit matrix whose byte `b` is byte `oh` of column `8 ih + b`, bytes reversed.
fn affine_block(col: &[u16; 16], oh: usize, ih: usize) -> u64 {
    let x = (0..8).fold(0u64, |acc, b| {
        acc | (((col[8 * ih + b] >> (8 * oh)) & 0xff) as u64) << (8 * b)
    });
    transpose8(x).swap_bytes()
}

/// Transpose an 8x8 bit matrix held as 8 bytes (byte = row, bit = column): three rounds of
/// swapping off-diagonal blocks of 1, 2 and 4 bits.
fn transpose8(mut x: u64) -> u64 {
    let mut t = (x ^ (x >> 7)) & 0x00AA_00AA_00AA_00AA;
    x ^= t ^ (t << 7);
    t = (x ^ (x >> 14)) & 0x0000_CCCC_0000_CCCC;
    x ^= t ^ (t << 14);
    t = (x ^ (x >> 28)) & 0x0000_0000_F0F0_F0F0;
    x ^= t ^ (t << 28);
    x
}

/// Prepare `tabs[n]` = multiplication by `coefs[n]` for `kernel` (already resolved). This runs
/// `e * k` times per decode, so it is built from the 16 columns with word operations rather than
/// bit by bit, and on GFNI machines with vector instructions in one loop.
pub(crate) fn prepare(f: &Field, kernel: Gf16Kernel, coefs: &[u16], tabs: &mut [Tab]) {
    debug_assert_eq!(coefs.len(), tabs.len());
    #[cfg(target_arch = "x86_64")]
    if kernel.affine() {
        return super::simd_x86::affine_tabs(f, coefs, tabs);
    }
    for (t, &c) in tabs.iter_mut().zip(coefs) {
        *t = Tab::from_columns(&f.columns(c), kernel.affine());
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
            Gf16Kernel::Ssse3 | Gf16Kernel::Avx2 | Gf16Kernel::Gfni256 | Gf16Kernel::Gfni512 => {
                super::simd_x86::group(kernel, job, r0, rows, src)
            }
            _ => scalar_group(job, r0, rows, src),
        }
        r0 += rows;
    }
}

impl Gf16Kernel {
    /// The kernel that will really run: `self` when available, else scalar.
    pub fn resolve(self) -> Gf16Kernel {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose8_swaps_rows_and_columns() {
        let mut x = 0x0123_4567_89AB_CDEFu64;
        for _ in 0..20 {
            let y = transpose8(x);
            for r in 0..8 {
                for c in 0..8 {
                    assert_eq!(
                        x >> (8 * r + c) & 1,
                        y >> (8 * c + r) & 1,
                        "({r}, {c}) of {x:#x}"
                    );
                }
            }
            x = x.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17);
        }
    }

    /// The vector-built affine table is the portable one, byte for byte.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn vector_affine_tab_equals_portable() {
        if !Gf16Kernel::Gfni256.is_available() {
            return; // nothing to compare on this CPU
        }
        let f = Field::new();
        for c in (0..=u16::MAX).step_by(97).chain([1, 0xFFFF]) {
            let col = f.columns(c);
            assert_eq!(
                super::super::simd_x86::affine_tab(&col).0,
                Tab::from_columns(&col, true).0,
                "c = {c:#x}"
            );
        }
    }

    /// Both table layouts against the product computed bit by bit from the columns.
    #[test]
    fn tables_multiply_like_the_columns_say() {
        let f = Field::new();
        for c in [1u16, 2, 0x8000, 0x1234, 0xFFFF, 0xACCA] {
            let col = f.columns(c);
            let prod = |x: u16| {
                (0..16)
                    .filter(|b| x >> b & 1 == 1)
                    .fold(0, |a, b| a ^ col[b])
            };
            let nib = Tab::from_columns(&col, false).0;
            let aff = Tab::from_columns(&col, true).0;
            let qword = |lane: usize, second: bool| {
                let at = 8 * lane + if second { 64 } else { 0 };
                u64::from_le_bytes(aff[at..at + 8].try_into().unwrap())
            };
            // Apply an affine matrix to a byte as the instruction defines it.
            let apply = |m: u64, x: u8| -> u8 {
                (0..8).fold(0u8, |acc, i| {
                    let row = (m >> (8 * (7 - i))) as u8;
                    acc | (((row & x).count_ones() & 1) as u8) << i
                })
            };
            for x in [0u16, 1, 0x00FF, 0xFF00, 0x1357, 0xFFFF, 0x8001] {
                assert_eq!(prod(x), f.mul(c, x), "columns of {c:#x}");
                let (lo, hi) = ((x & 0xff) as usize, (x >> 8) as usize);
                let n = [lo & 15, lo >> 4, hi & 15, hi >> 4];
                let (mut pl, mut ph) = (0u8, 0u8);
                for (q, &v) in n.iter().enumerate() {
                    pl ^= nib[32 * q + v];
                    ph ^= nib[32 * q + 16 + v];
                }
                assert_eq!(
                    u16::from(pl) | u16::from(ph) << 8,
                    prod(x),
                    "nibbles {c:#x} {x:#x}"
                );
                // Low lanes: first maps lo->lo, second lo->hi; high lanes: first hi->hi,
                // second hi->lo.
                let (l, h) = (lo as u8, hi as u8);
                let out_lo = apply(qword(0, false), l) ^ apply(qword(4, true), h);
                let out_hi = apply(qword(4, false), h) ^ apply(qword(0, true), l);
                assert_eq!(
                    u16::from(out_lo) | u16::from(out_hi) << 8,
                    prod(x),
                    "affine {c:#x}"
                );
            }
        }
    }
}
