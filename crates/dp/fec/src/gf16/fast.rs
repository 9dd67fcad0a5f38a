//! Few-erasure GF(2^16) decode: the same code as `reed-solomon-simd`, recovered by solving a small
//! linear system instead of running the crate's fixed-cost FFT decoder.
//!
//! With `e` data shards missing (set `E`) and `e` surviving parity shards chosen (set `J`, the
//! first present ones), each chosen parity satisfies `P_j = sum_{i in E} c(j,i) d_i + sum_{i
//! present} c(j,i) d_i`. Let `A = c(J, E)` (`e x e`, invertible: the code is MDS). Then
//! `d_E = A^-1 P_J + (A^-1 c(J, present)) d_present`: every missing shard is one linear
//! combination of the `k` inputs (present data + chosen parity), computed in one pass by
//! [`kernel::mul_rows`] with the combined coefficients. Coefficients come from the closed form
//! in [`field`], so nothing is cached per shape and a new frame size costs nothing extra.
//!
//! Cost: `O(e^2 k)` field operations to build the coefficients, then `e * k` multiply-adds over
//! the shard bytes. The caller only takes this path up to `FAST_MAX_ERASURES` (gf16.rs).
//!
//! A final partial chunk (shard length not a multiple of 64) is laid out by the crate with its
//! `h` low bytes first, then its `h` high bytes; it is staged into one zero-padded chunk per
//! shard (`[lo | 0 | hi | 0]`), run through the same kernel, and written back.

use super::field::{self, Field, Shape};
use super::kernel::{self, Gf16Kernel, Job, Tab};

/// Marks a zero entry in a table of logs (a log is at most 65534).
const LOG_ZERO: u16 = u16::MAX;

/// The few-erasure decoder's state: the field, the kernel, and scratch that only grows.
pub(crate) struct FastDecoder {
    field: Field,
    kernel: Gf16Kernel,
    erased: Vec<u32>,
    chosen: Vec<usize>,
    row_w: Vec<u16>,
    inputs: Vec<u32>,
    seq: Vec<u32>,
    a: Vec<u16>,
    a_inv: Vec<u16>,
    log_inv: Vec<u16>,
    log_c: Vec<u16>,
    coefs: Vec<u16>,
    tabs: Vec<Tab>,
    stage: Vec<[u8; 64]>,
}

impl FastDecoder {
    pub(crate) fn new(kernel: Gf16Kernel) -> FastDecoder {
        FastDecoder {
            field: Field::new(),
            kernel: kernel.resolve(),
            erased: Vec::new(),
            chosen: Vec::new(),
            row_w: Vec::new(),
            inputs: Vec::new(),
            seq: Vec::new(),
            a: Vec::new(),
            a_inv: Vec::new(),
            log_inv: Vec::new(),
            log_c: Vec::new(),
            coefs: Vec::new(),
            tabs: Vec::new(),
            stage: Vec::new(),
        }
    }

    /// Recover the missing data shards of a `(d, p)` block whose shape, lengths (`len`, even) and
    /// counts the caller has validated: at least one data shard is missing and at least as many
    /// parity shards are present. Returns false (nothing written) only if the system is singular,
    /// which the MDS property rules out; the caller then falls back to the crate's decoder.
    pub(crate) fn reconstruct(
        &mut self,
        d: usize,
        p: usize,
        shards: &mut [&mut [u8]],
        present: &[bool],
        len: usize,
    ) -> bool {
        let f = &self.field;
        self.erased.clear();
        self.erased
            .extend((0..d).filter(|&i| !present[i]).map(|i| i as u32));
        let e = self.erased.len();
        self.chosen.clear();
        self.chosen
            .extend((0..p).filter(|&j| present[d + j]).take(e));
        if e == 0 || self.chosen.len() < e {
            return false;
        }
        let shape = Shape::new(d, p);
        // Weights: per chosen parity row (low rate) or per data column (high rate).
        self.row_w.clear();
        self.row_w.extend(self.chosen.iter().map(|&j| {
            if shape.is_high() {
                0
            } else {
                shape.log_weight(f, j, 0)
            }
        }));
        let col_w = |i: usize| {
            if shape.is_high() {
                shape.log_weight(f, 0, i)
            } else {
                0
            }
        };
        // log c(J_a, i) for every chosen row a, into `out`.
        let fill_log_c = |out: &mut [u16], row_w: &[u16], chosen: &[usize], i: usize| {
            let cw = col_w(i);
            for ((o, &rw), &j) in out.iter_mut().zip(row_w).zip(chosen) {
                let w = if shape.is_high() { cw } else { rw };
                *o = shape.log_coef(f, w, j, i);
            }
        };

        // A = c(J, E), inverted.
        self.a.resize(e * e, 0);
        self.a_inv.resize(e * e, 0);
        self.log_c.resize(e, 0);
        for (c, &i) in self.erased.iter().enumerate() {
            fill_log_c(&mut self.log_c, &self.row_w, &self.chosen, i as usize);
            for r in 0..e {
                self.a[r * e + c] = f.exp(self.log_c[r] as u32);
            }
        }
        if !field::invert(f, &mut self.a, &mut self.a_inv, e) {
            return false;
        }
        self.log_inv.clear();
        self.log_inv.extend(
            self.a_inv
                .iter()
                .map(|&v| if v == 0 { LOG_ZERO } else { f.log(v) }),
        );
        // Inputs: present data shards, then the chosen parity shards.
        self.inputs.clear();
        self.inputs
            .extend((0..d).filter(|&i| present[i]).map(|i| i as u32));
        let n_data = self.inputs.len();
        self.inputs
            .extend(self.chosen.iter().map(|&j| (d + j) as u32));
        let n_in = self.inputs.len();

        // Combined coefficients: D(r, i) = sum_a A^-1(r, a) c(J_a, i) for present data i, and
        // D(r, J_a) = A^-1(r, a) for the chosen parity.
        self.coefs.resize(n_in * e, 0);
        self.tabs.resize(n_in * e, Tab::default());
        for n in 0..n_data {
            let i = self.inputs[n] as usize;
            fill_log_c(&mut self.log_c, &self.row_w, &self.chosen, i);
            for r in 0..e {
                let mut v = 0u16;
                for a in 0..e {
                    let li = self.log_inv[r * e + a];
                    if li != LOG_ZERO {
                        v ^= f.exp(li as u32 + self.log_c[a] as u32);
                    }
                }
                self.coefs[n * e + r] = v;
            }
        }
        for a in 0..e {
            for r in 0..e {
                self.coefs[(n_data + a) * e + r] = self.a_inv[r * e + a];
            }
        }

        kernel::prepare(f, self.kernel, &self.coefs, &mut self.tabs);

        // Whole chunks straight from the shards.
        let full = len / 64;
        if full > 0 {
            let job = Job {
                tabs: &self.tabs,
                rows: e,
                ins: &self.inputs,
                outs: &self.erased,
                chunks: full,
            };
            kernel::mul_rows(self.kernel, &job, shards);
        }
        // The final partial chunk, staged.
        let tail = len % 64;
        if tail > 0 {
            let (at, h) = (full * 64, tail / 2);
            self.stage.resize(n_in + e, [0; 64]);
            for (st, &s) in self.stage.iter_mut().zip(&self.inputs) {
                let src = &shards[s as usize][at..at + tail];
                st.fill(0);
                st[..h].copy_from_slice(&src[..h]);
                st[32..32 + h].copy_from_slice(&src[h..]);
            }
            self.seq.clear();
            self.seq.extend(0..(n_in + e) as u32);
            let job = Job {
                tabs: &self.tabs,
                rows: e,
                ins: &self.seq[..n_in],
                outs: &self.seq[n_in..],
                chunks: 1,
            };
            kernel::mul_rows(self.kernel, &job, self.stage.as_mut_slice());
            for (st, &s) in self.stage[n_in..].iter().zip(&self.erased) {
                let dst = &mut shards[s as usize][at..at + tail];
                dst[..h].copy_from_slice(&st[..h]);
                dst[h..].copy_from_slice(&st[32..32 + h]);
            }
        }
        true
    }
}
