//! The one GF(2^8) bulk operation everything is built on, and its run-time kernel choice:
//!
//! `outputs[r] = XOR over i of coef(r, i) * inputs[i]` (byte by byte over equal-length shards).
//!
//! Encode is this with the Cauchy rows; decode is this with rows of an inverted matrix, and even the
//! decode-matrix product uses it. Outputs are *overwritten*, never accumulated, so a kernel may
//! recompute an overlapping final window (how the SIMD paths handle lengths that are not a multiple
//! of their width) and get identical bytes.
//!
//! Rows are processed in groups of [`GROUP`] so each input chunk is loaded once per group while the
//! group's accumulators stay in registers.

use super::tables::MUL;

/// Most rows computed per pass over the inputs (the stride of the per-group coefficient layout).
/// Each input chunk is loaded once per group, so bigger groups mean fewer loads per multiply; the
/// group must still fit in registers (see [`Gf8Kernel::group_rows`]).
pub(crate) const GROUP: usize = 16;

/// Most inputs one call takes: a code has at most 254 data shards (`d + p <= 255`, `p >= 1`), and
/// decode feeds exactly `d` shards.
pub(crate) const MAX_INPUTS: usize = 255;

/// A GF(2^8) implementation the crate can run. All produce identical bytes; they differ in speed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive] // more ISAs (NEON, AVX-512 without GFNI) may come
pub enum Gf8Kernel {
    /// Portable table lookups (the reference the others are tested against).
    Scalar,
    /// 16-byte nibble tables through PSHUFB.
    Ssse3,
    /// 32-byte nibble tables through VPSHUFB.
    Avx2,
    /// GFNI affine transform on 32-byte vectors (VEX encoding).
    Gfni256,
    /// GFNI affine transform on 64-byte vectors (AVX-512).
    Gfni512,
}

impl Gf8Kernel {
    /// Every kernel, slowest first.
    pub const ALL: [Gf8Kernel; 5] = [
        Gf8Kernel::Scalar,
        Gf8Kernel::Ssse3,
        Gf8Kernel::Avx2,
        Gf8Kernel::Gfni256,
        Gf8Kernel::Gfni512,
    ];

    /// Whether this CPU can run the kernel (checked at run time; std caches the CPUID answer).
    pub fn is_available(self) -> bool {
        match self {
            Gf8Kernel::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Gf8Kernel::Ssse3 => std::arch::is_x86_feature_detected!("ssse3"),
            #[cfg(target_arch = "x86_64")]
            Gf8Kernel::Avx2 => std::arch::is_x86_feature_detected!("avx2"),
            #[cfg(target_arch = "x86_64")]
            Gf8Kernel::Gfni256 => {
                std::arch::is_x86_feature_detected!("gfni")
                    && std::arch::is_x86_feature_detected!("avx2")
            }
            #[cfg(target_arch = "x86_64")]
            Gf8Kernel::Gfni512 => {
                std::arch::is_x86_feature_detected!("gfni")
                    && std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512bw")
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// The fastest kernel this CPU runs.
    pub fn best() -> Gf8Kernel {
        Gf8Kernel::ALL
            .into_iter()
            .rev()
            .find(|k| k.is_available())
            .unwrap_or(Gf8Kernel::Scalar)
    }

    /// Rows per group: 16 accumulators fit the 32 ZMM registers of AVX-512 (GFNI needs no table
    /// registers, the matrix is a broadcast memory operand); the 16-register SSE/AVX2 kernels keep 8
    /// accumulators plus their nibble temporaries. (At (212, 43) x 1392 B, 16 rows measured
    /// faster than 8 for gfni512: see `strahl-bench fec` headline.)
    pub(crate) fn group_rows(self) -> usize {
        match self {
            Gf8Kernel::Gfni512 => 16,
            _ => 8,
        }
    }

    /// Bytes one vector of this kernel covers; shards shorter than it cannot use it.
    pub(crate) fn width(self) -> usize {
        match self {
            Gf8Kernel::Scalar => 1,
            Gf8Kernel::Ssse3 => 16,
            Gf8Kernel::Avx2 | Gf8Kernel::Gfni256 => 32,
            Gf8Kernel::Gfni512 => 64,
        }
    }

    /// The fastest available kernel, no faster than `self`, whose vector fits a `len`-byte
    /// shard. The GameStream packetizer encodes its 32-byte shard headers as a separate shape:
    /// gfni512 sent them to the scalar code, which then cost twice the whole payload encode
    /// (perf over the tx tile at 1 Gbit/s, 212+43 blocks); gfni256 takes them instead.
    pub(crate) fn for_len(self, len: usize) -> Gf8Kernel {
        if len >= self.width() {
            return self;
        }
        let me = Gf8Kernel::ALL.iter().position(|k| *k == self).unwrap_or(0);
        Gf8Kernel::ALL[..=me]
            .iter()
            .rev()
            .copied()
            .find(|k| k.width() <= len && k.is_available())
            .unwrap_or(Gf8Kernel::Scalar)
    }

    pub fn name(self) -> &'static str {
        match self {
            Gf8Kernel::Scalar => "scalar",
            Gf8Kernel::Ssse3 => "ssse3",
            Gf8Kernel::Avx2 => "avx2",
            Gf8Kernel::Gfni256 => "gfni256",
            Gf8Kernel::Gfni512 => "gfni512",
        }
    }
}

/// `outputs[r] = sum_i coef(r, i) * inputs[i]`.
///
/// Preconditions (checked by the public entry points, asserted here because a violation would be a
/// bug in this crate, not bad input): every input and output has the same length,
/// `inputs.len() <= MAX_INPUTS`. An unavailable `kernel` falls back to scalar.
pub(crate) fn mul_rows(
    kernel: Gf8Kernel,
    coef: impl Fn(usize, usize) -> u8,
    inputs: &[&[u8]],
    outputs: &mut [&mut [u8]],
) {
    let Some(len) = outputs.first().map(|o| o.len()) else {
        return;
    };
    assert!(inputs.len() <= MAX_INPUTS, "mul_rows: too many inputs");
    assert!(
        inputs.iter().all(|s| s.len() == len) && outputs.iter().all(|s| s.len() == len),
        "mul_rows: unequal shard lengths"
    );
    let kernel = if kernel.is_available() {
        kernel.for_len(len)
    } else {
        Gf8Kernel::Scalar
    };
    let n = inputs.len();
    let mut coefs = [0u8; GROUP * MAX_INPUTS];
    let rows = kernel.group_rows();
    for (g, group) in outputs.chunks_mut(rows).enumerate() {
        let r0 = g * rows;
        for i in 0..n {
            for r in 0..group.len() {
                coefs[i * GROUP + r] = coef(r0 + r, i);
            }
        }
        match kernel {
            Gf8Kernel::Scalar => scalar_group(&coefs, inputs, group),
            #[cfg(target_arch = "x86_64")]
            _ => super::simd_x86::group(kernel, &coefs, inputs, group),
            #[cfg(not(target_arch = "x86_64"))]
            _ => scalar_group(&coefs, inputs, group),
        }
    }
}

/// Scalar reference: one 256-byte product row per coefficient.
pub(crate) fn scalar_group(coefs: &[u8], inputs: &[&[u8]], outputs: &mut [&mut [u8]]) {
    scalar_range(coefs, inputs, outputs, 0);
}

/// Scalar over bytes `start..` only (the SIMD kernels use it for shards shorter than a vector).
pub(crate) fn scalar_range(
    coefs: &[u8],
    inputs: &[&[u8]],
    outputs: &mut [&mut [u8]],
    start: usize,
) {
    for (r, out) in outputs.iter_mut().enumerate() {
        let out = &mut out[start..];
        out.fill(0);
        for (i, inp) in inputs.iter().enumerate() {
            let c = coefs[i * GROUP + r];
            match c {
                0 => {}
                1 => out.iter_mut().zip(&inp[start..]).for_each(|(o, x)| *o ^= x),
                _ => {
                    let row = &MUL[c as usize];
                    out.iter_mut()
                        .zip(&inp[start..])
                        .for_each(|(o, x)| *o ^= row[*x as usize]);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_shards_take_the_widest_kernel_that_fits_not_the_scalar_code() {
        for k in Gf8Kernel::ALL.into_iter().filter(|k| k.is_available()) {
            assert_eq!(k.for_len(4096), k, "long shards keep {}", k.name());
            let short = k.for_len(32);
            assert!(short.width() <= 32, "{} → {}", k.name(), short.name());
            assert!(short.is_available());
            assert_eq!(k.for_len(8), Gf8Kernel::Scalar, "below every vector");
        }
        if Gf8Kernel::Gfni512.is_available() && Gf8Kernel::Gfni256.is_available() {
            assert_eq!(Gf8Kernel::Gfni512.for_len(32), Gf8Kernel::Gfni256);
            assert_eq!(Gf8Kernel::Gfni512.for_len(63), Gf8Kernel::Gfni256);
            assert_eq!(Gf8Kernel::Gfni512.for_len(16), Gf8Kernel::Ssse3);
        }
        // Never a faster kernel than asked for.
        assert_eq!(Gf8Kernel::Ssse3.for_len(4096), Gf8Kernel::Ssse3);
        assert_eq!(Gf8Kernel::Scalar.for_len(4096), Gf8Kernel::Scalar);
    }
}
