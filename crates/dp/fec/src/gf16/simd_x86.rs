//! x86-64 SIMD kernels for [`super::kernel::mul_rows`]: same bytes as the scalar reference
//! (property-tested against it and against `reed-solomon-simd`'s decoder).
//!
//! Each kernel walks whole 64-byte chunks (32 low bytes, then the 32 high bytes of the same
//! symbols). `unsafe` is confined to: calling a `#[target_feature]` function (sound because the
//! dispatcher only passes a kernel whose features `is_x86_feature_detected!` confirmed), and
//! unaligned vector loads/stores from `&[u8; 64]` / `Tab` references that hold the bytes read.

use std::arch::x86_64::*;

use super::field::Field;
use super::kernel::{Chunks, Gf16Kernel, Job, Tab, scalar_group};

/// Run rows `r0 .. r0 + rows` (at most the kernel's `group_rows`) of `job` with `kernel`.
pub(crate) fn group<S: Chunks + ?Sized>(
    kernel: Gf16Kernel,
    job: &Job,
    r0: usize,
    rows: usize,
    src: &mut S,
) {
    macro_rules! by_rows {
        ($f:ident, $($n:literal)*) => {
            match rows {
                $($n => $f::<$n, S>(job, r0, src),)*
                _ => unreachable!("group larger than the kernel's group_rows"),
            }
        };
    }
    debug_assert!(kernel.is_available() && rows <= kernel.group_rows());
    // SAFETY: the decoder resolves an unavailable kernel to Scalar before preparing tables and
    // calling in, so the CPU has every feature the selected `#[target_feature]` function enables.
    unsafe {
        match kernel {
            Gf16Kernel::Gfni512 => by_rows!(gfni512, 1 2 3 4 5 6 7 8),
            Gf16Kernel::Gfni256 => by_rows!(gfni256, 1 2 3 4),
            Gf16Kernel::Avx2 => by_rows!(avx2, 1 2 3 4),
            Gf16Kernel::Ssse3 => by_rows!(ssse3, 1 2 3 4),
            Gf16Kernel::Scalar => scalar_group(job, r0, rows, src),
        }
    }
}

/// GFNI: a chunk is one ZMM `[lo | hi]`. Per coefficient two affine transforms: `first` keeps
/// bytes in place (lo->lo in the low lanes, hi->hi in the high lanes), `second` produces the cross
/// terms in the wrong half; both are summed over all inputs and `second`'s halves are swapped
/// once per output chunk.
#[target_feature(enable = "gfni,avx512f")]
fn gfni512<const G: usize, S: Chunks + ?Sized>(job: &Job, r0: usize, src: &mut S) {
    let load_tab = |t: &Tab| {
        // SAFETY: a Tab is 128 readable bytes; `loadu` has no alignment requirement.
        unsafe {
            (
                _mm512_loadu_si512(t.0.as_ptr().cast()),
                _mm512_loadu_si512(t.0[64..].as_ptr().cast()),
            )
        }
    };
    for c in 0..job.chunks {
        let at = 64 * c;
        let mut same = [_mm512_setzero_si512(); G];
        let mut cross = [_mm512_setzero_si512(); G];
        for (i, &shard) in job.ins.iter().enumerate() {
            let x = src.chunk(shard as usize, at);
            // SAFETY: `x` is exactly 64 readable bytes; `loadu` has no alignment requirement.
            let v = unsafe { _mm512_loadu_si512(x.as_ptr().cast()) };
            let tabs = &job.tabs[i * job.rows + r0..];
            for r in 0..G {
                let (m1, m2) = load_tab(&tabs[r]);
                same[r] = _mm512_xor_si512(same[r], _mm512_gf2p8affine_epi64_epi8::<0>(v, m1));
                cross[r] = _mm512_xor_si512(cross[r], _mm512_gf2p8affine_epi64_epi8::<0>(v, m2));
            }
        }
        for r in 0..G {
            // Swap the 256-bit halves of the cross terms: lanes (2, 3, 0, 1) of 128 bits.
            let swapped = _mm512_shuffle_i64x2::<0b01_00_11_10>(cross[r], cross[r]);
            let out = src.chunk_mut(job.outs[r0 + r] as usize, at);
            // SAFETY: `out` is exactly 64 writable bytes; `storeu` has no alignment requirement.
            unsafe {
                _mm512_storeu_si512(out.as_mut_ptr().cast(), _mm512_xor_si512(same[r], swapped))
            };
        }
    }
}

/// GFNI on 256-bit vectors (CPUs with GFNI but no AVX-512): low and high bytes of a chunk in
/// separate registers, four affine transforms per coefficient (lo->lo, hi->lo, lo->hi, hi->hi),
/// each matrix broadcast to the four lanes in the [`Tab`] (see `affine_tab` for the order).
#[target_feature(enable = "gfni,avx2")]
fn gfni256<const G: usize, S: Chunks + ?Sized>(job: &Job, r0: usize, src: &mut S) {
    for c in 0..job.chunks {
        let at = 64 * c;
        let mut lo_acc = [_mm256_setzero_si256(); G];
        let mut hi_acc = [_mm256_setzero_si256(); G];
        for (i, &shard) in job.ins.iter().enumerate() {
            let x = src.chunk(shard as usize, at);
            // SAFETY: `x` is 64 readable bytes: bytes 0..32 and 32..64 are both in bounds.
            let (l, h) = unsafe {
                (
                    _mm256_loadu_si256(x.as_ptr().cast()),
                    _mm256_loadu_si256(x[32..].as_ptr().cast()),
                )
            };
            let tabs = &job.tabs[i * job.rows + r0..];
            for r in 0..G {
                let t = &tabs[r].0;
                // SAFETY: the four 32-byte windows at 0, 32, 64, 96 lie inside the 128-byte Tab.
                let (ll, hh, lh, hl) = unsafe {
                    (
                        _mm256_loadu_si256(t.as_ptr().cast()),
                        _mm256_loadu_si256(t[32..].as_ptr().cast()),
                        _mm256_loadu_si256(t[64..].as_ptr().cast()),
                        _mm256_loadu_si256(t[96..].as_ptr().cast()),
                    )
                };
                let lo = _mm256_xor_si256(
                    _mm256_gf2p8affine_epi64_epi8::<0>(l, ll),
                    _mm256_gf2p8affine_epi64_epi8::<0>(h, hl),
                );
                let hi = _mm256_xor_si256(
                    _mm256_gf2p8affine_epi64_epi8::<0>(l, lh),
                    _mm256_gf2p8affine_epi64_epi8::<0>(h, hh),
                );
                lo_acc[r] = _mm256_xor_si256(lo_acc[r], lo);
                hi_acc[r] = _mm256_xor_si256(hi_acc[r], hi);
            }
        }
        for r in 0..G {
            let out = src.chunk_mut(job.outs[r0 + r] as usize, at);
            // SAFETY: `out` is 64 writable bytes: bytes 0..32 and 32..64 are both in bounds.
            unsafe {
                _mm256_storeu_si256(out.as_mut_ptr().cast(), lo_acc[r]);
                _mm256_storeu_si256(out[32..].as_mut_ptr().cast(), hi_acc[r]);
            }
        }
    }
}

/// Affine [`Tab`]s for every coefficient (built `e * k` times per decode; the portable
/// `Tab::from_columns` is several times the work). Only called for a GFNI kernel the decoder has
/// resolved as available, which requires GFNI and AVX2.
pub(crate) fn affine_tabs(f: &Field, coefs: &[u16], tabs: &mut [Tab]) {
    debug_assert!(Gf16Kernel::Gfni256.is_available());
    // SAFETY: only reached for a resolved GFNI kernel, whose `is_available` checked gfni + avx2.
    unsafe { affine_tabs_gfni(f, coefs, tabs) }
}

#[target_feature(enable = "gfni,avx2")]
fn affine_tabs_gfni(f: &Field, coefs: &[u16], tabs: &mut [Tab]) {
    // The 16 columns of each coefficient: XOR of one row per nibble of the 2 KiB `col_nib`
    // (L1-resident, unlike exp-table gathers). Building them as scalars and reloading them as a
    // vector stalled on store forwarding (60 % of this loop), so they are loaded as vectors.
    for (t, &c) in tabs.iter_mut().zip(coefs) {
        let mut v = _mm256_setzero_si256();
        for q in 0..4 {
            let row = &f.col_nib[q][(c >> (4 * q)) as usize & 15];
            // SAFETY: `row` is 16 u16s = 32 readable bytes; `loadu` needs no alignment.
            v = _mm256_xor_si256(v, unsafe { _mm256_loadu_si256(row.as_ptr().cast()) });
        }
        affine_tab_from(v, t);
    }
}

/// One coefficient's table (also the unit test's entry point).
#[cfg(test)]
pub(crate) fn affine_tab(col: &[u16; 16]) -> Tab {
    let mut t = Tab::default();
    debug_assert!(Gf16Kernel::Gfni256.is_available());
    // SAFETY: the test calls this only after checking Gfni256 (gfni + avx2) is available;
    // `col` is 32 readable bytes.
    unsafe { affine_tab_from(_mm256_loadu_si256(col.as_ptr().cast()), &mut t) };
    t
}

/// The affine table from the 16 columns of a multiplication (`v`: column `b` in u16 lane `b`),
/// in a dozen vector instructions.
#[target_feature(enable = "gfni,avx2")]
#[inline]
fn affine_tab_from(v: __m256i, tab: &mut Tab) {
    // Per 128-bit lane (columns 0..8, then 8..16): qword 0 <- their low bytes, qword 1 <- their
    // high bytes, both in reversed column order (byte p <- column 7 - p).
    let gather = _mm256_setr_epi8(
        14, 12, 10, 8, 6, 4, 2, 0, 15, 13, 11, 9, 7, 5, 3, 1, 14, 12, 10, 8, 6, 4, 2, 0, 15, 13,
        11, 9, 7, 5, 3, 1,
    );
    let x = _mm256_shuffle_epi8(v, gather);
    // Against identity bytes (byte j = 1 << j), GF2P8AFFINEQB returns the bit transpose of its
    // matrix operand with rows reversed; with the reversed gather and the final byte swap this
    // is exactly the block layout `affine_block` builds bit by bit (unit-tested equal).
    let ident = _mm256_set1_epi64x(0x8040_2010_0804_0201u64 as i64);
    let t = _mm256_gf2p8affine_epi64_epi8::<0>(ident, x);
    let bswap = _mm256_setr_epi8(
        7, 6, 5, 4, 3, 2, 1, 0, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 15, 14, 13,
        12, 11, 10, 9, 8,
    );
    // Qwords: 0 = lo->lo, 1 = lo->hi, 2 = hi->lo, 3 = hi->hi.
    let w = _mm256_shuffle_epi8(t, bswap);
    let parts = [
        _mm256_permute4x64_epi64::<0x00>(w), // lo->lo (low lanes of `first`)
        _mm256_permute4x64_epi64::<0xFF>(w), // hi->hi (high lanes of `first`)
        _mm256_permute4x64_epi64::<0x55>(w), // lo->hi (low lanes of `second`)
        _mm256_permute4x64_epi64::<0xAA>(w), // hi->lo (high lanes of `second`)
    ];
    for (k, p) in parts.into_iter().enumerate() {
        // SAFETY: bytes 32k .. 32k + 32 lie inside the 128-byte Tab.
        unsafe { _mm256_storeu_si256(tab.0[32 * k..].as_mut_ptr().cast(), p) };
    }
}

#[target_feature(enable = "avx2")]
fn avx2<const G: usize, S: Chunks + ?Sized>(job: &Job, r0: usize, src: &mut S) {
    let mask = _mm256_set1_epi8(0x0f);
    for c in 0..job.chunks {
        let at = 64 * c;
        let mut lo_acc = [_mm256_setzero_si256(); G];
        let mut hi_acc = [_mm256_setzero_si256(); G];
        for (i, &shard) in job.ins.iter().enumerate() {
            let x = src.chunk(shard as usize, at);
            // SAFETY: `x` is 64 readable bytes: bytes 0..32 and 32..64 are both in bounds.
            let (l, h) = unsafe {
                (
                    _mm256_loadu_si256(x.as_ptr().cast()),
                    _mm256_loadu_si256(x[32..].as_ptr().cast()),
                )
            };
            let nib = [
                _mm256_and_si256(l, mask),
                _mm256_and_si256(_mm256_srli_epi64::<4>(l), mask),
                _mm256_and_si256(h, mask),
                _mm256_and_si256(_mm256_srli_epi64::<4>(h), mask),
            ];
            let tabs = &job.tabs[i * job.rows + r0..];
            for r in 0..G {
                let t = &tabs[r].0;
                for (q, n) in nib.iter().enumerate() {
                    // SAFETY: bytes 32q .. 32q + 32 of the 128-byte table are in bounds.
                    let (tl, th) = unsafe {
                        (
                            _mm256_broadcastsi128_si256(_mm_loadu_si128(
                                t[32 * q..].as_ptr().cast(),
                            )),
                            _mm256_broadcastsi128_si256(_mm_loadu_si128(
                                t[32 * q + 16..].as_ptr().cast(),
                            )),
                        )
                    };
                    lo_acc[r] = _mm256_xor_si256(lo_acc[r], _mm256_shuffle_epi8(tl, *n));
                    hi_acc[r] = _mm256_xor_si256(hi_acc[r], _mm256_shuffle_epi8(th, *n));
                }
            }
        }
        for r in 0..G {
            let out = src.chunk_mut(job.outs[r0 + r] as usize, at);
            // SAFETY: `out` is 64 writable bytes: bytes 0..32 and 32..64 are both in bounds.
            unsafe {
                _mm256_storeu_si256(out.as_mut_ptr().cast(), lo_acc[r]);
                _mm256_storeu_si256(out[32..].as_mut_ptr().cast(), hi_acc[r]);
            }
        }
    }
}

/// SSSE3: each chunk in two halves, symbols `0..16` then `16..32` (bytes `h..h+16` low,
/// `32+h..48+h` high).
#[target_feature(enable = "ssse3")]
fn ssse3<const G: usize, S: Chunks + ?Sized>(job: &Job, r0: usize, src: &mut S) {
    let mask = _mm_set1_epi8(0x0f);
    for c in 0..job.chunks {
        let at = 64 * c;
        for half in [0usize, 16] {
            let mut lo_acc = [_mm_setzero_si128(); G];
            let mut hi_acc = [_mm_setzero_si128(); G];
            for (i, &shard) in job.ins.iter().enumerate() {
                let x = src.chunk(shard as usize, at);
                // SAFETY: `half + 16 <= 32` and `32 + half + 16 <= 64`: both windows in bounds.
                let (l, h) = unsafe {
                    (
                        _mm_loadu_si128(x[half..].as_ptr().cast()),
                        _mm_loadu_si128(x[32 + half..].as_ptr().cast()),
                    )
                };
                let nib = [
                    _mm_and_si128(l, mask),
                    _mm_and_si128(_mm_srli_epi64::<4>(l), mask),
                    _mm_and_si128(h, mask),
                    _mm_and_si128(_mm_srli_epi64::<4>(h), mask),
                ];
                let tabs = &job.tabs[i * job.rows + r0..];
                for r in 0..G {
                    let t = &tabs[r].0;
                    for (q, n) in nib.iter().enumerate() {
                        // SAFETY: bytes 32q .. 32q + 32 of the 128-byte table are in bounds.
                        let (tl, th) = unsafe {
                            (
                                _mm_loadu_si128(t[32 * q..].as_ptr().cast()),
                                _mm_loadu_si128(t[32 * q + 16..].as_ptr().cast()),
                            )
                        };
                        lo_acc[r] = _mm_xor_si128(lo_acc[r], _mm_shuffle_epi8(tl, *n));
                        hi_acc[r] = _mm_xor_si128(hi_acc[r], _mm_shuffle_epi8(th, *n));
                    }
                }
            }
            for r in 0..G {
                let out = src.chunk_mut(job.outs[r0 + r] as usize, at);
                // SAFETY: as for the loads: both 16-byte windows lie inside the 64-byte chunk.
                unsafe {
                    _mm_storeu_si128(out[half..].as_mut_ptr().cast(), lo_acc[r]);
                    _mm_storeu_si128(out[32 + half..].as_mut_ptr().cast(), hi_acc[r]);
                }
            }
        }
    }
}
