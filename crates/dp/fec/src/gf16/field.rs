//! GF(2^16) arithmetic exactly as `reed-solomon-simd` represents it, and the closed form of its
//! code's parity coefficients.
//!
//! Representation: the crate stores field elements in Leopard's Cantor-basis coordinates, with
//! multiplication defined by its public exp/log tables (`engine::tables::get_exp_log`); we use
//! those very tables, so our products are the crate's products by construction. In these
//! coordinates addition is XOR and the additive-FFT evaluation point of position `p` is the
//! integer `p` itself.
//!
//! The code (derived from how the crate's encoders place shards, and checked against its encoder
//! for random shapes by `tests/gf16_fast.rs`): parity `j` over data `i` has the Cauchy-like
//! coefficient `c(j, i) = g / (x_i + y_j)` where, with `S(t)` the normalised subspace polynomial
//! of `{0 .. 2^t - 1}` (`S(x) = prod_w (x + w) / prod_{w != 0} w`, GF(2)-linear in `x`):
//! - high rate (recovery chunk first): `s = next_pow2(m)`, `y_j = j`, `x_i = s + i`, `g = S(x_i)`.
//!   The data chunks' interpolants summed at the recovery points make this a full-field RS code,
//!   so every node's Lagrange weight reduces to the subspace polynomial of the recovery chunk.
//! - low rate (data chunk first): `s = next_pow2(k)`, `x_i = i`, `y_j = s + j`, `g = S(y_j)`:
//!   the Lagrange basis over the data chunk `{0 .. s-1}` (zero-padded past `k`).
//!
//! The rate choice mirrors the crate's `DefaultRate` rule (see [`high_rate`]).

use reed_solomon_simd::engine::tables::{ExpLog, get_exp_log};

/// Multiplicative group order.
const MODULUS: u32 = 65535;

/// The crate's field plus the subspace-polynomial table, built once per decoder (microseconds,
/// after the crate's own tables exist).
pub(crate) struct Field {
    tables: &'static ExpLog,
    /// `col_nib[q][n]` = the columns of multiplication by `n << 4q`. Multiplication by `c` is
    /// GF(2)-linear in `c` too, so `columns(c)` is the XOR of four rows of this 2 KiB table: no
    /// lookups in the 128 KiB exp table. With caches cold (frame warm) a decode at 72+15 with 4
    /// lost took 58 µs with exp-table columns, 29 µs with these (docs/measurements.md §fec
    /// few-erasure decode).
    pub(crate) col_nib: [[[u16; 16]; 16]; 4],
    /// `subspace[t][b]` = `S(t)` at `1 << b` (`S` linear, so this is all of it).
    subspace: [[u16; 16]; 17],
}

impl Field {
    pub(crate) fn new() -> Field {
        let tables = get_exp_log();
        let mut f = Field {
            tables,
            col_nib: [[[0; 16]; 16]; 4],
            subspace: [[0; 16]; 17],
        };
        for q in 0..4 {
            for n in 0..16u16 {
                let c = n << (4 * q);
                let row: [u16; 16] = std::array::from_fn(|b| f.mul(c, 1 << b));
                f.col_nib[q][n as usize] = row;
            }
        }
        // Unnormalised L_t(x) = prod over w < 2^t of (x + w): L_0(x) = x and
        // L_{t+1}(x) = L_t(x) * (L_t(x) + L_t(2^t)) (the subspace doubles by the coset + 2^t).
        // The normaliser prod_{w != 0} w follows the same doubling: c_{t+1} = c_t * L_t(2^t).
        let mut l: [u16; 16] = std::array::from_fn(|b| 1 << b);
        let mut c: u16 = 1;
        for t in 0..17 {
            let inv_c = f.inv(c);
            let row: [u16; 16] = std::array::from_fn(|b| f.mul(l[b], inv_c));
            f.subspace[t] = row;
            if t < 16 {
                let at_t = l[t];
                c = f.mul(c, at_t);
                for v in l.iter_mut() {
                    *v = f.mul(*v, *v ^ at_t);
                }
            }
        }
        f
    }

    #[inline]
    pub(crate) fn log(&self, a: u16) -> u16 {
        self.tables.log[a as usize]
    }

    /// `exp` of a log sum: `l` is below `2 * MODULUS` (one conditional subtract, not a `%`).
    #[inline]
    pub(crate) fn exp(&self, l: u32) -> u16 {
        debug_assert!(l < 2 * MODULUS);
        let l = if l >= MODULUS { l - MODULUS } else { l };
        self.tables.exp[l as usize]
    }

    #[inline]
    pub(crate) fn mul(&self, a: u16, b: u16) -> u16 {
        if a == 0 || b == 0 {
            return 0;
        }
        self.exp(self.log(a) as u32 + self.log(b) as u32)
    }

    /// Inverse of a non-zero element (0 maps to 0; callers never ask).
    #[inline]
    pub(crate) fn inv(&self, a: u16) -> u16 {
        if a == 0 {
            return 0;
        }
        self.exp(MODULUS - self.log(a) as u32)
    }

    /// `log` of a product given as (log a) + (log b); `None` stands for zero.
    #[inline]
    pub(crate) fn log_mul(la: u16, lb: u16) -> u16 {
        let l = la as u32 + lb as u32;
        (if l >= MODULUS { l - MODULUS } else { l }) as u16
    }

    /// Normalised subspace polynomial of `{0 .. 2^t - 1}` at `x`.
    fn subspace(&self, t: usize, x: u16) -> u16 {
        let row = &self.subspace[t];
        (0..16)
            .filter(|b| x >> b & 1 == 1)
            .fold(0, |acc, b| acc ^ row[b])
    }

    /// `c * 2^b` for every basis bit `b`: the columns of multiplication by `c` as a 16x16 GF(2)
    /// matrix, from which every kernel's tables are built.
    pub(crate) fn columns(&self, c: u16) -> [u16; 16] {
        let mut out = [0u16; 16];
        for q in 0..4 {
            let row = &self.col_nib[q][(c >> (4 * q)) as usize & 15];
            for (o, r) in out.iter_mut().zip(row) {
                *o ^= r;
            }
        }
        out
    }
}

/// The crate's `DefaultRate` choice: high rate (recovery chunk first) unless the original count's
/// power of two is the smaller one, with ties going to high rate when `k <= m`.
pub(crate) fn high_rate(k: usize, m: usize) -> bool {
    let (kp, mp) = (k.next_power_of_two(), m.next_power_of_two());
    match kp.cmp(&mp) {
        std::cmp::Ordering::Less => false,
        std::cmp::Ordering::Greater => true,
        std::cmp::Ordering::Equal => k <= m,
    }
}

/// Parity coefficients of one `(k, m)` shape, as logs (every coefficient is non-zero).
pub(crate) struct Shape {
    high: bool,
    /// `next_pow2` of the chunk that holds the evaluation points of the Lagrange basis.
    s: usize,
    t: usize,
}

impl Shape {
    pub(crate) fn new(k: usize, m: usize) -> Shape {
        let high = high_rate(k, m);
        let s = if high { m } else { k }.next_power_of_two();
        Shape {
            high,
            s,
            t: s.trailing_zeros() as usize,
        }
    }

    fn point_data(&self, i: usize) -> u16 {
        (if self.high { self.s + i } else { i }) as u16
    }

    fn point_parity(&self, j: usize) -> u16 {
        (if self.high { j } else { self.s + j }) as u16
    }

    /// `log g` of data column `i` (high rate) or parity row `j` (low rate).
    pub(crate) fn log_weight(&self, f: &Field, j: usize, i: usize) -> u16 {
        let at = if self.high {
            self.point_data(i)
        } else {
            self.point_parity(j)
        };
        f.log(f.subspace(self.t, at))
    }

    /// `log c(j, i)` given the precomputed `log_weight` of its row/column.
    #[inline]
    pub(crate) fn log_coef(&self, f: &Field, log_weight: u16, j: usize, i: usize) -> u16 {
        let denom = self.point_data(i) ^ self.point_parity(j);
        // 1 / denom has log MODULUS - log(denom), which is MODULUS (= log 1) for denom = 1.
        Field::log_mul(
            log_weight,
            ((MODULUS - f.log(denom) as u32) % MODULUS) as u16,
        )
    }

    pub(crate) fn is_high(&self) -> bool {
        self.high
    }
}

/// Invert the `e x e` matrix `a` (row-major) in place by Gauss-Jordan into `inv`. Returns false
/// when it is singular (cannot happen for an MDS code's square submatrix; the caller then falls
/// back to the crate's decoder instead of trusting the math).
pub(crate) fn invert(f: &Field, a: &mut [u16], inv: &mut [u16], e: usize) -> bool {
    inv.fill(0);
    for r in 0..e {
        inv[r * e + r] = 1;
    }
    for col in 0..e {
        let Some(piv) = (col..e).find(|&r| a[r * e + col] != 0) else {
            return false;
        };
        if piv != col {
            for c in 0..e {
                a.swap(piv * e + c, col * e + c);
                inv.swap(piv * e + c, col * e + c);
            }
        }
        let scale = f.inv(a[col * e + col]);
        for c in 0..e {
            a[col * e + c] = f.mul(a[col * e + c], scale);
            inv[col * e + c] = f.mul(inv[col * e + c], scale);
        }
        for r in (0..e).filter(|&r| r != col) {
            let factor = a[r * e + col];
            if factor == 0 {
                continue;
            }
            for c in 0..e {
                a[r * e + c] ^= f.mul(factor, a[col * e + c]);
                inv[r * e + c] ^= f.mul(factor, inv[col * e + c]);
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_axioms_hold_on_samples() {
        let f = Field::new();
        for a in [1u16, 2, 3, 0x1234, 0xFFFF, 0x8000] {
            assert_eq!(f.mul(a, f.inv(a)), 1, "a * a^-1 for {a:#x}");
            assert_eq!(f.mul(a, 1), a);
            for b in [5u16, 0xACCA, 0x0F0F] {
                assert_eq!(f.mul(a, b), f.mul(b, a));
                // Distributive over XOR: multiplication by a constant is GF(2)-linear, which the
                // column/nibble tables rely on.
                assert_eq!(f.mul(a, b ^ 7), f.mul(a, b) ^ f.mul(a, 7));
            }
        }
    }

    #[test]
    fn subspace_polynomial_vanishes_on_its_subspace_and_is_one_at_the_next_point() {
        let f = Field::new();
        for t in 0..=8usize {
            let s = 1usize << t;
            for w in 0..s {
                assert_eq!(f.subspace(t, w as u16), 0, "S_{t}({w})");
            }
            // Direct product for a point outside: S(x) = prod (x + w) / prod_{w != 0} w.
            let x = (s + 3) as u16;
            let (mut num, mut den) = (1u16, 1u16);
            for w in 0..s as u16 {
                num = f.mul(num, x ^ w);
                if w != 0 {
                    den = f.mul(den, w);
                }
            }
            assert_eq!(f.subspace(t, x), f.mul(num, f.inv(den)), "t = {t}");
        }
    }

    #[test]
    fn columns_are_products_with_the_basis() {
        let f = Field::new();
        for c in (0..=u16::MAX).step_by(251).chain([0, 1, 0xFFFF]) {
            let col = f.columns(c);
            for (b, &v) in col.iter().enumerate() {
                assert_eq!(v, f.mul(c, 1 << b), "c = {c:#x}, b = {b}");
            }
        }
    }

    #[test]
    fn inversion_gives_the_identity() {
        let f = Field::new();
        let e = 5;
        // A Cauchy matrix (never singular): 1 / (r + (e + c)).
        let m: Vec<u16> = (0..e * e)
            .map(|i| f.inv(((i / e) ^ (e + i % e)) as u16))
            .collect();
        let (mut a, mut inv) = (m.clone(), vec![0u16; e * e]);
        assert!(invert(&f, &mut a, &mut inv, e));
        for r in 0..e {
            for c in 0..e {
                let v = (0..e).fold(0, |acc, x| acc ^ f.mul(m[r * e + x], inv[x * e + c]));
                assert_eq!(v, u16::from(r == c), "({r}, {c})");
            }
        }
        let mut singular = vec![1u16; 4];
        assert!(!invert(&f, &mut singular, &mut inv[..4], 2));
    }
}
