//! GF(2^8) arithmetic tables for polynomial 0x11D with generator 2 (the field nanors and the older
//! common-c `rs.c` use), all computed at compile time so nothing is built or allocated at run time.
//!
//! - [`EXP`]/[`LOG`]: discrete exp/log; `EXP` is doubled (510 entries) so `EXP[LOG[a] + LOG[b]]` needs
//!   no reduction.
//! - [`INV`]: multiplicative inverse (`INV[0] = 0`, never used as a coefficient: the Cauchy
//!   denominators `(p + i) ^ j` are never zero because `p + i >= p > j`).
//! - [`MUL`]: full 64 KiB product table for the scalar path (one load per byte).
//! - [`NIBBLE`]: per-constant 16+16 byte tables for the PSHUFB nibble method
//!   (`c*x = lo[x & 15] ^ hi[x >> 4]`).
//! - [`AFFINE`]: per-constant 8x8 bit matrices for GFNI `gf2p8affineqb`, which multiplies by a
//!   constant in *any* field since multiplication by `c` is GF(2)-linear. (GFNI's own `gf2p8mulb`
//!   hard-codes polynomial 0x11B and so cannot be used for 0x11D.)

/// The field polynomial x^8 + x^4 + x^3 + x^2 + 1.
pub const POLY: u16 = 0x11D;

const fn build_exp_log() -> ([u8; 510], [u8; 256]) {
    let mut exp = [0u8; 510];
    let mut log = [0u8; 256];
    let mut x: u16 = 1;
    let mut i = 0;
    while i < 255 {
        exp[i] = x as u8;
        exp[i + 255] = x as u8;
        log[x as usize] = i as u8;
        x <<= 1;
        if x & 0x100 != 0 {
            x ^= POLY;
        }
        i += 1;
    }
    (exp, log)
}

const EXP_LOG: ([u8; 510], [u8; 256]) = build_exp_log();
/// `EXP[k] = 2^k`, for `k` in `0..510`.
pub const EXP: [u8; 510] = EXP_LOG.0;
/// `LOG[a]` for `a != 0` (`LOG[0]` is meaningless and 0).
pub const LOG: [u8; 256] = EXP_LOG.1;

/// Product in GF(2^8)/0x11D.
pub const fn mul(a: u8, b: u8) -> u8 {
    if a == 0 || b == 0 {
        0
    } else {
        EXP[LOG[a as usize] as usize + LOG[b as usize] as usize]
    }
}

const fn build_inv() -> [u8; 256] {
    let mut inv = [0u8; 256];
    let mut a = 1;
    while a < 256 {
        inv[a] = EXP[(255 - LOG[a] as usize) % 255];
        a += 1;
    }
    inv
}

/// `INV[a] * a == 1` for `a != 0`; `INV[0] == 0`.
pub const INV: [u8; 256] = build_inv();

const fn build_mul() -> [[u8; 256]; 256] {
    let mut t = [[0u8; 256]; 256];
    let mut a = 1;
    while a < 256 {
        let mut b = 1;
        while b < 256 {
            t[a][b] = mul(a as u8, b as u8);
            b += 1;
        }
        a += 1;
    }
    t
}

/// `MUL[a][b] = a * b`.
pub static MUL: [[u8; 256]; 256] = build_mul();

const fn build_nibble() -> [[u8; 32]; 256] {
    let mut t = [[0u8; 32]; 256];
    let mut c = 0;
    while c < 256 {
        let mut x = 0;
        while x < 16 {
            t[c][x] = mul(c as u8, x as u8);
            t[c][16 + x] = mul(c as u8, (x << 4) as u8);
            x += 1;
        }
        c += 1;
    }
    t
}

/// `NIBBLE[c][0..16] = c * x`, `NIBBLE[c][16..32] = c * (x << 4)`, for `x` in `0..16`.
pub static NIBBLE: [[u8; 32]; 256] = build_nibble();

const fn build_affine() -> [u64; 256] {
    let mut t = [0u64; 256];
    let mut c = 0;
    while c < 256 {
        // Output bit i of c*x is the XOR over the set input bits k of bit i of c*2^k; GFNI reads the
        // mask for output bit i from byte 7 - i of the matrix qword.
        let mut m = 0u64;
        let mut i = 0;
        while i < 8 {
            let mut row = 0u8;
            let mut k = 0;
            while k < 8 {
                if (mul(c as u8, 1 << k) >> i) & 1 != 0 {
                    row |= 1 << k;
                }
                k += 1;
            }
            m |= (row as u64) << (8 * (7 - i));
            i += 1;
        }
        t[c] = m;
        c += 1;
    }
    t
}

/// GFNI affine matrix for multiplication by `c` in GF(2^8)/0x11D.
pub static AFFINE: [u64; 256] = build_affine();

/// nanors parity coefficient for parity row `j` and data column `i` of a code with `p` parity rows:
/// `inv((p + i) ^ j)`, a Cauchy matrix with `x_j = j`, `y_i = p + i`.
#[inline]
pub fn cauchy(p: usize, j: usize, i: usize) -> u8 {
    INV[((p + i) ^ j) & 0xff]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Schoolbook carry-less multiply then reduction: an independent definition of the product.
    fn slow_mul(a: u8, b: u8) -> u8 {
        let mut acc: u16 = 0;
        for k in 0..8 {
            if (b >> k) & 1 != 0 {
                acc ^= (a as u16) << k;
            }
        }
        for bit in (8..16).rev() {
            if acc & (1 << bit) != 0 {
                acc ^= POLY << (bit - 8);
            }
        }
        acc as u8
    }

    #[test]
    fn tables_agree_with_schoolbook_product() {
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                assert_eq!(MUL[a as usize][b as usize], slow_mul(a, b), "{a}*{b}");
                assert_eq!(mul(a, b), slow_mul(a, b));
            }
            if a != 0 {
                assert_eq!(slow_mul(a, INV[a as usize]), 1, "inverse of {a}");
            }
            for x in 0..16u8 {
                assert_eq!(NIBBLE[a as usize][x as usize], slow_mul(a, x));
                assert_eq!(NIBBLE[a as usize][16 + x as usize], slow_mul(a, x << 4));
            }
        }
    }

    #[test]
    fn generator_two_has_order_255() {
        let mut seen = [false; 256];
        for k in 0..255 {
            assert!(!seen[EXP[k] as usize], "2^{k} repeats");
            seen[EXP[k] as usize] = true;
        }
        assert!(!seen[0]);
    }

    /// Emulates `gf2p8affineqb` bit by bit from Intel's definition and checks every matrix.
    #[test]
    fn affine_matrices_multiply() {
        for c in 0..=255u8 {
            let m = AFFINE[c as usize];
            for x in 0..=255u8 {
                let mut out = 0u8;
                for i in 0..8 {
                    let row = (m >> (8 * (7 - i))) as u8;
                    out |= (((row & x).count_ones() & 1) as u8) << i;
                }
                assert_eq!(out, slow_mul(c, x), "{c}*{x}");
            }
        }
    }
}
