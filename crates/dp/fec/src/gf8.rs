//! GF(2^8) Reed-Solomon byte-identical to Moonlight's nanors (GameStream video and audio).
//!
//! Contract:
//! - Field GF(2^8)/0x11D, generator 2. Systematic Cauchy code: parity row `j < p`, data column
//!   `i < d` has coefficient `inv((p + i) ^ j)`; `1 <= d`, `1 <= p`, `d + p <= 255`. Parity matches
//!   nanors' `reed_solomon_encode` byte for byte (golden vectors in `tests/golden/`).
//! - Any `d` of the `d + p` shards recover the data; only missing *data* shards are written.
//! - Encode and decode never allocate: coefficients come from compile-time tables, decode scratch is
//!   owned by [`Gf8Decoder`] (sized once for the worst shape) or on the stack (audio).
//! - The bulk multiply runs on the fastest [`Gf8Kernel`] the CPU has (GFNI / AVX2 / SSSE3 /
//!   scalar), chosen at run time; every kernel gives identical bytes.
//! - Bad shapes, unequal lengths and too few shards are typed [`FecError`]s, never panics.

use crate::FecError;

mod kernel;
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod simd_x86;
pub mod tables;

pub use kernel::Gf8Kernel;
use kernel::{MAX_INPUTS, mul_rows};

/// Most data shards that can be missing at once in any valid code: `e <= min(d, p)` and
/// `d + p <= 255`, so `e <= 127`.
const MAX_MISSING: usize = 127;
/// Decode scratch per matrix: `e` rows of at most `2 * e` or `d - e` columns (both `<= 254`).
const SCRATCH: usize = MAX_MISSING * 254;

/// A (data, parity) shape of the nanors Cauchy code. Cheap to construct, `Copy`, no allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gf8Code {
    data: u8,
    parity: u8,
}

impl Gf8Code {
    /// `1 <= data`, `1 <= parity`, `data + parity <= 255` (nanors refuses otherwise).
    pub fn new(data: usize, parity: usize) -> Result<Self, FecError> {
        let bad = |reason| {
            Err(FecError::InvalidShape {
                data,
                parity,
                reason,
            })
        };
        if data == 0 {
            return bad("GF(2^8) code needs at least one data shard");
        }
        if parity == 0 {
            return bad("GF(2^8) code needs at least one parity shard");
        }
        if data.saturating_add(parity) > 255 {
            return bad("GF(2^8) code is limited to 255 shards in total");
        }
        Ok(Gf8Code {
            data: data as u8,
            parity: parity as u8,
        })
    }

    pub fn data_shards(&self) -> usize {
        self.data as usize
    }

    pub fn parity_shards(&self) -> usize {
        self.parity as usize
    }

    /// The nanors parity coefficient of row `j`, column `i` (`j < p`, `i < d`).
    pub fn coefficient(&self, j: usize, i: usize) -> u8 {
        tables::cauchy(self.parity_shards(), j, i)
    }

    /// Parity over the full shards (all the same length), into the caller's buffers.
    pub fn encode(&self, data: &[&[u8]], parity: &mut [&mut [u8]]) -> Result<(), FecError> {
        self.encode_with(Gf8Kernel::best(), data, parity)
    }

    /// [`Gf8Code::encode`] on a chosen kernel (an unavailable one runs scalar). For tests and
    /// benches.
    pub fn encode_with(
        &self,
        kernel: Gf8Kernel,
        data: &[&[u8]],
        parity: &mut [&mut [u8]],
    ) -> Result<(), FecError> {
        let (d, p) = (self.data_shards(), self.parity_shards());
        if data.len() != d || parity.len() != p {
            return Err(FecError::InvalidShape {
                data: data.len(),
                parity: parity.len(),
                reason: "shard counts differ from the code's shape",
            });
        }
        check_lengths(
            data.iter()
                .map(|s| s.len())
                .chain(parity.iter().map(|s| s.len())),
        )?;
        mul_rows(kernel, |j, i| tables::cauchy(p, j, i), data, parity);
        Ok(())
    }
}

/// Decoder with its scratch space (matrix inversion) owned, so decoding does not allocate.
pub struct Gf8Decoder {
    kernel: Gf8Kernel,
    aug: Box<[u8]>,
    bmat: Box<[u8]>,
    dmat: Box<[u8]>,
}

impl Gf8Decoder {
    pub fn new() -> Self {
        Self::with_kernel(Gf8Kernel::best())
    }

    /// A decoder pinned to one kernel (an unavailable one runs scalar). For tests and benches.
    pub fn with_kernel(kernel: Gf8Kernel) -> Self {
        Gf8Decoder {
            kernel,
            aug: vec![0; SCRATCH].into_boxed_slice(),
            bmat: vec![0; SCRATCH].into_boxed_slice(),
            dmat: vec![0; SCRATCH].into_boxed_slice(),
        }
    }

    /// `shards`: `data + parity` equal-length buffers in index order; `present[i]` whether shard `i`
    /// arrived. Missing data shards are rewritten in place.
    pub fn reconstruct(
        &mut self,
        code: Gf8Code,
        shards: &mut [&mut [u8]],
        present: &[bool],
    ) -> Result<(), FecError> {
        let p = code.parity_shards();
        reconstruct_core(
            self.kernel,
            code.data_shards(),
            p,
            Some(p),
            |j, i| tables::cauchy(p, j, i),
            shards,
            present,
            Scratch {
                aug: &mut self.aug,
                bmat: &mut self.bmat,
                dmat: &mut self.dmat,
            },
        )
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

/// The replacement parity matrix Sunshine and moonlight-common-c install for audio (reference A15).
const AUDIO_ROWS: [[u8; 4]; 2] = [[0x77, 0x40, 0x38, 0x0e], [0xc7, 0xa7, 0x0d, 0x6c]];

impl AudioFec {
    pub const DATA: usize = 4;
    pub const PARITY: usize = 2;

    pub fn encode(data: &[&[u8]; 4], parity: &mut [&mut [u8]; 2]) -> Result<(), FecError> {
        check_lengths(
            data.iter()
                .map(|s| s.len())
                .chain(parity.iter().map(|s| s.len())),
        )?;
        mul_rows(Gf8Kernel::best(), |j, i| AUDIO_ROWS[j][i], data, parity);
        Ok(())
    }

    /// Recover missing data shards among the 6 (index order: 4 data, 2 parity).
    pub fn reconstruct(shards: &mut [&mut [u8]; 6], present: &[bool; 6]) -> Result<(), FecError> {
        // e <= 2 missing, d - e <= 4 columns: tiny stack scratch.
        let (mut aug, mut bmat, mut dmat) = ([0u8; 8], [0u8; 8], [0u8; 8]);
        reconstruct_core(
            Gf8Kernel::best(),
            Self::DATA,
            Self::PARITY,
            None,
            |j, i| AUDIO_ROWS[j][i],
            shards,
            present,
            Scratch {
                aug: &mut aug,
                bmat: &mut bmat,
                dmat: &mut dmat,
            },
        )
    }
}

/// All lengths equal (the first is the expected one).
fn check_lengths(mut lens: impl Iterator<Item = usize>) -> Result<usize, FecError> {
    let expected = lens.next().unwrap_or(0);
    match lens.find(|&l| l != expected) {
        Some(got) => Err(FecError::ShardLength { expected, got }),
        None => Ok(expected),
    }
}

/// Decode scratch: `aug` holds `[M | I]` (e x 2e) and ends as `[I | M^-1]`; `bmat` the parity
/// coefficients over the present data columns (e x (d - e)); `dmat` = `M^-1 * bmat`.
struct Scratch<'a> {
    aug: &'a mut [u8],
    bmat: &'a mut [u8],
    dmat: &'a mut [u8],
}

/// Decode for any systematic code whose parity row `j`, column `i` coefficient is `pcoef(j, i)`.
///
/// With `E` the `e` missing data columns, `J` the first `e` present parity rows and `P` the present
/// data columns: `M x = s` where `M = pcoef[J][E]`, `x` the missing data and
/// `s = parity[J] ^ pcoef[J][P] * data[P]`. So `x = M^-1 * parity[J] ^ (M^-1 * pcoef[J][P]) * data[P]`:
/// one [`mul_rows`] over the `d` chosen shards with the `e x d` matrix `[M^-1 pcoef[J][P] | M^-1]`,
/// written straight into the missing buffers.
///
/// `cauchy_p`: `Some(p)` when `pcoef(j, i) = inv((p + i) ^ j)`, so `M^-1` has a closed form in
/// O(e^2) instead of O(e^3) Gauss-Jordan (at e = 85 the cubic inversion cost ~1.8 ms per block).
#[allow(clippy::too_many_arguments)]
fn reconstruct_core(
    kernel: Gf8Kernel,
    d: usize,
    p: usize,
    cauchy_p: Option<usize>,
    pcoef: impl Fn(usize, usize) -> u8,
    shards: &mut [&mut [u8]],
    present: &[bool],
    s: Scratch<'_>,
) -> Result<(), FecError> {
    let n = d + p;
    if shards.len() != n || present.len() != n {
        return Err(FecError::InvalidShape {
            data: d,
            parity: p,
            reason: "shard or present-mask count differs from data + parity",
        });
    }
    check_lengths(shards.iter().map(|s| s.len()))?;
    let have = present.iter().filter(|&&b| b).count();
    if have < d {
        return Err(FecError::TooFewShards {
            present: have,
            needed: d,
        });
    }
    let mut missing = [0u8; MAX_MISSING];
    let mut e = 0;
    for i in (0..d).filter(|&i| !present[i]) {
        missing[e] = i as u8;
        e += 1;
    }
    if e == 0 {
        return Ok(());
    }
    let missing = &missing[..e];
    let mut rows = [0u8; MAX_MISSING];
    for (slot, j) in rows.iter_mut().zip((0..p).filter(|&j| present[d + j])) {
        *slot = j as u8;
    }
    let rows = &rows[..e];
    let w = d - e;

    // M^-1 lands in the right half of `aug` (e x 2e), columns e..2e.
    let cols = 2 * e;
    let aug = &mut s.aug[..e * cols];
    match cauchy_p {
        Some(p) => cauchy_inverse(aug, rows, missing, p),
        None => {
            // [M | I] -> [I | M^-1] by Gauss-Jordan with pivot search (the fixed audio rows are
            // not a Cauchy matrix).
            aug.fill(0);
            for k in 0..e {
                for m in 0..e {
                    aug[k * cols + m] = pcoef(rows[k] as usize, missing[m] as usize);
                }
                aug[k * cols + e + k] = 1;
            }
            invert_in_place(aug, e)?;
        }
    }
    let minv = |m: usize, k: usize| aug[m * cols + e + k];

    // dmat = M^-1 * pcoef[J][P], itself one mul_rows over the e rows of bmat.
    let (bmat, dmat) = (&mut s.bmat[..e * w], &mut s.dmat[..e * w]);
    if w > 0 {
        for (k, row) in bmat.chunks_exact_mut(w).enumerate() {
            for (slot, i) in row.iter_mut().zip((0..d).filter(|&i| present[i])) {
                *slot = pcoef(rows[k] as usize, i);
            }
        }
        let mut brows: [&[u8]; MAX_MISSING] = [&[]; MAX_MISSING];
        for (slot, row) in brows.iter_mut().zip(bmat.chunks_exact(w)) {
            *slot = row;
        }
        let mut drows: [&mut [u8]; MAX_MISSING] = std::array::from_fn(|_| Default::default());
        for (slot, row) in drows.iter_mut().zip(dmat.chunks_exact_mut(w)) {
            *slot = row;
        }
        mul_rows(kernel, minv, &brows[..e], &mut drows[..e]);
    }

    // Inputs: present data in index order, then the chosen parity rows; outputs: the missing data.
    let mut ins: [&[u8]; MAX_INPUTS] = [&[]; MAX_INPUTS];
    let mut outs: [&mut [u8]; MAX_MISSING] = std::array::from_fn(|_| Default::default());
    let (mut ni, mut no, mut taken) = (0, 0, 0);
    for (i, shard) in shards.iter_mut().enumerate() {
        if i < d && !present[i] {
            outs[no] = &mut **shard;
            no += 1;
        } else if i < d || (present[i] && taken < e) {
            taken += usize::from(i >= d);
            ins[ni] = &**shard;
            ni += 1;
        }
    }
    debug_assert_eq!((ni, no), (d, e));
    let dmat = &*dmat;
    let coef = |m: usize, src: usize| {
        if src < w {
            dmat[m * w + src]
        } else {
            minv(m, src - w)
        }
    };
    mul_rows(kernel, coef, &ins[..d], &mut outs[..e]);
    Ok(())
}

/// Inverse of the Cauchy matrix `M[k][m] = 1 / (x_k + y_m)` with `x_k = rows[k]` (parity rows) and
/// `y_m = p + missing[m]` (data columns), written to columns `e..2e` of the `e x 2e` `aug`.
///
/// Closed form (char 2, so signs vanish): with `A(z) = prod_l (z + x_l)`, `B(z) = prod_l (z + y_l)`,
/// `M^-1[m][k] = A(y_m) B(x_k) / (A'(x_k) B'(y_m) (x_k + y_m))`, where `A'(x_k) = prod_{l != k}
/// (x_k + x_l)` and likewise `B'`. So `M^-1[m][k] = u_m v_k / (x_k + y_m)` with
/// `u_m = A(y_m) / B'(y_m)`, `v_k = B(x_k) / A'(x_k)`: O(e^2). The x's are distinct, the y's are
/// distinct and every `x < p <= y`, so no factor is zero.
fn cauchy_inverse(aug: &mut [u8], rows: &[u8], missing: &[u8], p: usize) {
    use tables::{EXP, LOG};
    let e = rows.len();
    let cols = 2 * e;
    let mut ys = [0u8; MAX_MISSING];
    for (slot, &i) in ys.iter_mut().zip(missing) {
        *slot = (p + i as usize) as u8;
    }
    let ys = &ys[..e];
    // Everything in the log domain (all factors are non-zero): a product is a sum of logs, kept
    // below 255 so that EXP (510 entries) never needs a modulo. Measured (examples/gf8_headline):
    // a branchy `mul` per factor instead made a (212, 43) decode of 43 shards ~125 us, this ~99 us.
    let sum_logs = |z: u8, set: &[u8], skip: usize| {
        set.iter()
            .enumerate()
            .filter(|&(l, _)| l != skip)
            .fold(0usize, |acc, (_, &s)| {
                let t = acc + LOG[(z ^ s) as usize] as usize;
                if t >= 255 { t - 255 } else { t }
            })
    };
    let sub = |a: usize, b: usize| if a >= b { a - b } else { a + 255 - b };
    // log u_m = log A(y_m) - log B'(y_m); log v_k = log B(x_k) - log A'(x_k).
    let mut lu = [0usize; MAX_MISSING];
    for (m, slot) in lu[..e].iter_mut().enumerate() {
        *slot = sub(sum_logs(ys[m], rows, usize::MAX), sum_logs(ys[m], ys, m));
    }
    let mut lv = [0usize; MAX_MISSING];
    for (k, slot) in lv[..e].iter_mut().enumerate() {
        *slot = sub(
            sum_logs(rows[k], ys, usize::MAX),
            sum_logs(rows[k], rows, k),
        );
    }
    for (m, row) in aug.chunks_exact_mut(cols).enumerate() {
        let (um, ym) = (lu[m], ys[m]);
        for ((slot, &vk), &xk) in row[e..].iter_mut().zip(&lv[..e]).zip(rows) {
            let t = um + vk; // < 510
            let t = if t >= 255 { t - 255 } else { t };
            *slot = EXP[sub(t, LOG[(xk ^ ym) as usize] as usize)];
        }
    }
}

/// Gauss-Jordan on an `e x 2e` row-major matrix `[M | I]`, leaving `[I | M^-1]`.
fn invert_in_place(aug: &mut [u8], e: usize) -> Result<(), FecError> {
    use tables::{INV, MUL};
    let cols = 2 * e;
    for c in 0..e {
        let Some(piv) = (c..e).find(|&r| aug[r * cols + c] != 0) else {
            return Err(FecError::InvalidShape {
                data: e,
                parity: e,
                reason: "erasure pattern gives a singular decode matrix",
            });
        };
        if piv != c {
            for k in 0..cols {
                aug.swap(piv * cols + k, c * cols + k);
            }
        }
        let scale = &MUL[INV[aug[c * cols + c] as usize] as usize];
        for k in 0..cols {
            aug[c * cols + k] = scale[aug[c * cols + k] as usize];
        }
        for r in (0..e).filter(|&r| r != c) {
            let f = aug[r * cols + c];
            if f != 0 {
                let fm = &MUL[f as usize];
                for k in 0..cols {
                    aug[r * cols + k] ^= fm[aug[c * cols + k] as usize];
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The closed-form Cauchy inverse equals Gauss-Jordan on the same matrix, for assorted shapes
    /// and erasure patterns (including the largest e = 127).
    #[test]
    fn cauchy_closed_form_equals_gauss_jordan() {
        let mut seed = 0x1234_5678u32;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed as usize % n
        };
        for (d, p) in [
            (1, 1),
            (4, 2),
            (10, 2),
            (212, 43),
            (128, 127),
            (127, 128),
            (3, 100),
            (200, 55),
        ] {
            for _ in 0..4 {
                let e = 1 + next(d.min(p));
                // e distinct parity rows and e distinct data columns.
                let mut rows: Vec<u8> = (0..p as u8).collect();
                let mut cols: Vec<u8> = (0..d as u8).collect();
                for i in 0..e {
                    let a = i + next(p - i);
                    rows.swap(i, a);
                    let b = i + next(d - i);
                    cols.swap(i, b);
                }
                let (rows, cols) = (&rows[..e], &cols[..e]);
                let mut closed = vec![0u8; e * 2 * e];
                cauchy_inverse(&mut closed, rows, cols, p);
                let mut gj = vec![0u8; e * 2 * e];
                for k in 0..e {
                    for m in 0..e {
                        gj[k * 2 * e + m] = tables::cauchy(p, rows[k] as usize, cols[m] as usize);
                    }
                    gj[k * 2 * e + e + k] = 1;
                }
                invert_in_place(&mut gj, e).unwrap();
                for r in 0..e {
                    assert_eq!(
                        &closed[r * 2 * e + e..(r + 1) * 2 * e],
                        &gj[r * 2 * e + e..(r + 1) * 2 * e],
                        "({d},{p}) e={e} row {r}"
                    );
                }
            }
        }
    }
}
