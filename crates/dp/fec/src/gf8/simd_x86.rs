//! x86-64 SIMD kernels for [`super::kernel::mul_rows`], one per [`Gf8Kernel`] variant.
//!
//! Contract: same bytes as the scalar reference (property-tested on random shapes and lengths).
//! Each kernel walks the shard in vector-width chunks; a final partial chunk is handled by
//! recomputing the *last full-width window* `[len - W, len)`, which overlaps bytes already written
//! but produces the same values (outputs are overwritten, and never alias inputs). Shards shorter
//! than one vector go to the scalar code.
//!
//! `unsafe` is confined to: calling a `#[target_feature]` function (sound because the dispatcher
//! only selects a kernel whose features `is_x86_feature_detected!` confirmed), and unaligned vector
//! loads/stores from slices that were bounds-checked to hold exactly one vector.

use std::arch::x86_64::*;

use super::kernel::{GROUP, Gf8Kernel, MAX_INPUTS, scalar_range};
use super::tables::{AFFINE, NIBBLE};

/// Run one group (1..=GROUP rows) with `kernel`, which the caller has checked is available.
pub(crate) fn group(kernel: Gf8Kernel, coefs: &[u8], inputs: &[&[u8]], outputs: &mut [&mut [u8]]) {
    macro_rules! by_rows {
        ($f:ident, $($n:literal)*) => {
            match outputs.len() {
                $($n => $f::<$n>(coefs, inputs, outputs),)*
                _ => unreachable!("group larger than the kernel's group_rows"),
            }
        };
    }
    debug_assert!(outputs.len() <= kernel.group_rows() && kernel.is_available());
    // SAFETY: `mul_rows` replaces an unavailable kernel by Scalar before calling here, so the CPU
    // supports every feature the selected `#[target_feature]` function enables.
    unsafe {
        match kernel {
            Gf8Kernel::Gfni512 => by_rows!(gfni512, 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16),
            Gf8Kernel::Gfni256 => by_rows!(gfni256, 1 2 3 4 5 6 7 8),
            Gf8Kernel::Avx2 => by_rows!(avx2, 1 2 3 4 5 6 7 8),
            Gf8Kernel::Ssse3 => by_rows!(ssse3, 1 2 3 4 5 6 7 8),
            Gf8Kernel::Scalar => scalar_range(coefs, inputs, outputs, 0),
        }
    }
}

/// Start offsets of the vector windows covering `0..len` (`len >= w`): full steps, then one final
/// window ending exactly at `len` when `len` is not a multiple of `w`.
#[inline(always)]
fn windows(len: usize, w: usize) -> impl Iterator<Item = usize> {
    let full = len / w;
    let tail = (!len.is_multiple_of(w)).then_some(len - w);
    (0..full).map(move |k| k * w).chain(tail)
}

/// Prefetch distance for the gfni512 kernel (two 64-byte windows ahead). A 4 MiB frame as
/// 15 x (201, 41) blocks went from ~1420 to ~1170 us median with it (examples/gf8_headline, this
/// VM); cache-resident shapes are unchanged.
const PREFETCH_AHEAD: usize = 128;

#[target_feature(enable = "gfni,avx512f,avx512bw")]
fn gfni512<const G: usize>(coefs: &[u8], inputs: &[&[u8]], outputs: &mut [&mut [u8]]) {
    const W: usize = 64;
    let len = outputs[0].len();
    if len < W {
        return scalar_range(coefs, inputs, outputs, 0);
    }
    // The affine matrix of each coefficient is looked up in the 2 KiB table inside the loop (an L1
    // load folded into the broadcast). Staging them in a per-group stack array instead measured the
    // same (examples/gf8_headline, within noise) and needs a 32 KiB array.
    let mat = |c: u8| _mm512_set1_epi64(AFFINE[c as usize] as i64);
    for at in windows(len, W) {
        let mut acc = [_mm512_setzero_si512(); G];
        // Inputs in pairs: one VPTERNLOGQ (a ^ b ^ c) folds two products into the accumulator,
        // 3 vector ops per 2 multiply-adds instead of 4 (the loop is bound by vector-op throughput).
        let pairs = inputs.chunks_exact(2).zip(coefs.chunks_exact(2 * GROUP));
        for (inp, c) in pairs {
            let (s0, s1) = (&inp[0][at..at + W], &inp[1][at..at + W]);
            // Each input is its own stream (hundreds of them), too many for the hardware
            // prefetchers: ask for the line PREFETCH_AHEAD bytes on. A prefetch never faults,
            // and `wrapping_add` keeps the address computation defined past the slice end.
            _mm_prefetch::<_MM_HINT_T0>(s0.as_ptr().wrapping_add(PREFETCH_AHEAD).cast());
            _mm_prefetch::<_MM_HINT_T0>(s1.as_ptr().wrapping_add(PREFETCH_AHEAD).cast());
            // SAFETY: `s0` and `s1` are exactly 64 readable bytes; `loadu` needs no alignment.
            let (x0, x1) = unsafe {
                (
                    _mm512_loadu_si512(s0.as_ptr().cast()),
                    _mm512_loadu_si512(s1.as_ptr().cast()),
                )
            };
            for r in 0..G {
                let a0 = _mm512_gf2p8affine_epi64_epi8::<0>(x0, mat(c[r]));
                let a1 = _mm512_gf2p8affine_epi64_epi8::<0>(x1, mat(c[GROUP + r]));
                acc[r] = _mm512_ternarylogic_epi64::<0x96>(acc[r], a0, a1);
            }
        }
        if inputs.len() % 2 == 1 {
            let i = inputs.len() - 1;
            let src = &inputs[i][at..at + W];
            // SAFETY: `src` is exactly 64 readable bytes; `loadu` has no alignment requirement.
            let x = unsafe { _mm512_loadu_si512(src.as_ptr().cast()) };
            for r in 0..G {
                let a = mat(coefs[i * GROUP + r]);
                acc[r] = _mm512_xor_si512(acc[r], _mm512_gf2p8affine_epi64_epi8::<0>(x, a));
            }
        }
        for (out, v) in outputs.iter_mut().zip(acc) {
            let dst = &mut out[at..at + W];
            // SAFETY: `dst` is exactly 64 writable bytes; `storeu` has no alignment requirement.
            unsafe { _mm512_storeu_si512(dst.as_mut_ptr().cast(), v) };
        }
    }
}

#[target_feature(enable = "gfni,avx2")]
fn gfni256<const G: usize>(coefs: &[u8], inputs: &[&[u8]], outputs: &mut [&mut [u8]]) {
    const W: usize = 32;
    let len = outputs[0].len();
    if len < W {
        return scalar_range(coefs, inputs, outputs, 0);
    }
    let mut mats = [0u64; GROUP * MAX_INPUTS];
    for (i, m) in mats.chunks_exact_mut(G).take(inputs.len()).enumerate() {
        for (r, slot) in m.iter_mut().enumerate() {
            *slot = AFFINE[coefs[i * GROUP + r] as usize];
        }
    }
    for at in windows(len, W) {
        let mut acc = [_mm256_setzero_si256(); G];
        for (inp, m) in inputs.iter().zip(mats.chunks_exact(G)) {
            let src = &inp[at..at + W];
            // SAFETY: `src` is exactly 32 readable bytes; `loadu` has no alignment requirement.
            let x = unsafe { _mm256_loadu_si256(src.as_ptr().cast()) };
            for r in 0..G {
                let a = _mm256_set1_epi64x(m[r] as i64);
                acc[r] = _mm256_xor_si256(acc[r], _mm256_gf2p8affine_epi64_epi8::<0>(x, a));
            }
        }
        for (out, v) in outputs.iter_mut().zip(acc) {
            let dst = &mut out[at..at + W];
            // SAFETY: `dst` is exactly 32 writable bytes; `storeu` has no alignment requirement.
            unsafe { _mm256_storeu_si256(dst.as_mut_ptr().cast(), v) };
        }
    }
}

#[target_feature(enable = "avx2")]
fn avx2<const G: usize>(coefs: &[u8], inputs: &[&[u8]], outputs: &mut [&mut [u8]]) {
    const W: usize = 32;
    let len = outputs[0].len();
    if len < W {
        return scalar_range(coefs, inputs, outputs, 0);
    }
    let nib = _mm256_set1_epi8(0x0f);
    for at in windows(len, W) {
        let mut acc = [_mm256_setzero_si256(); G];
        for (i, inp) in inputs.iter().enumerate() {
            let src = &inp[at..at + W];
            // SAFETY: `src` is exactly 32 readable bytes; `loadu` has no alignment requirement.
            let x = unsafe { _mm256_loadu_si256(src.as_ptr().cast()) };
            let lo = _mm256_and_si256(x, nib);
            let hi = _mm256_and_si256(_mm256_srli_epi64::<4>(x), nib);
            for r in 0..G {
                let t = &NIBBLE[coefs[i * GROUP + r] as usize];
                // SAFETY: `t` is a 32-byte array: bytes 0..16 and 16..32 are both readable.
                let (tl, th) = unsafe {
                    (
                        _mm_loadu_si128(t.as_ptr().cast()),
                        _mm_loadu_si128(t[16..].as_ptr().cast()),
                    )
                };
                let p = _mm256_xor_si256(
                    _mm256_shuffle_epi8(_mm256_broadcastsi128_si256(tl), lo),
                    _mm256_shuffle_epi8(_mm256_broadcastsi128_si256(th), hi),
                );
                acc[r] = _mm256_xor_si256(acc[r], p);
            }
        }
        for (out, v) in outputs.iter_mut().zip(acc) {
            let dst = &mut out[at..at + W];
            // SAFETY: `dst` is exactly 32 writable bytes; `storeu` has no alignment requirement.
            unsafe { _mm256_storeu_si256(dst.as_mut_ptr().cast(), v) };
        }
    }
}

#[target_feature(enable = "ssse3")]
fn ssse3<const G: usize>(coefs: &[u8], inputs: &[&[u8]], outputs: &mut [&mut [u8]]) {
    const W: usize = 16;
    let len = outputs[0].len();
    if len < W {
        return scalar_range(coefs, inputs, outputs, 0);
    }
    let nib = _mm_set1_epi8(0x0f);
    for at in windows(len, W) {
        let mut acc = [_mm_setzero_si128(); G];
        for (i, inp) in inputs.iter().enumerate() {
            let src = &inp[at..at + W];
            // SAFETY: `src` is exactly 16 readable bytes; `loadu` has no alignment requirement.
            let x = unsafe { _mm_loadu_si128(src.as_ptr().cast()) };
            let lo = _mm_and_si128(x, nib);
            let hi = _mm_and_si128(_mm_srli_epi64::<4>(x), nib);
            for r in 0..G {
                let t = &NIBBLE[coefs[i * GROUP + r] as usize];
                // SAFETY: `t` is a 32-byte array: bytes 0..16 and 16..32 are both readable.
                let (tl, th) = unsafe {
                    (
                        _mm_loadu_si128(t.as_ptr().cast()),
                        _mm_loadu_si128(t[16..].as_ptr().cast()),
                    )
                };
                let p = _mm_xor_si128(_mm_shuffle_epi8(tl, lo), _mm_shuffle_epi8(th, hi));
                acc[r] = _mm_xor_si128(acc[r], p);
            }
        }
        for (out, v) in outputs.iter_mut().zip(acc) {
            let dst = &mut out[at..at + W];
            // SAFETY: `dst` is exactly 16 writable bytes; `storeu` has no alignment requirement.
            unsafe { _mm_storeu_si128(dst.as_mut_ptr().cast(), v) };
        }
    }
}
