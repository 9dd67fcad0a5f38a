//! `strahl-bench fec`: encode (and decode) throughput of every FEC implementation we can use,
//! measured side by side in one process.
//!
//! - Frames of 64 KiB, 256 KiB, 1 MiB, 4 MiB cut into [`SHARD`]-byte shards (last one zero-padded),
//!   at 10 / 20 / 50 % parity (`r = ceil(k * pct / 100)`).
//! - GF(2^16): raw `reed-solomon-simd` (reset + add + encode + copy the recovery shards out, and a
//!   no-copy variant that only touches them) vs our [`Gf16Encoder`], interleaved call by call so
//!   the neighbours' noise hits both alike.
//! - GF(2^8): our nanors code on the scalar kernel and on the best SIMD kernel, and
//!   `reed-solomon-erasure` 6 (C SIMD), the frame split into blocks of at most 255 shards.
//! - Headline: GF(2^8) encode at GameStream's largest shape, (212, 43) x 1392 B, every kernel vs
//!   `reed-solomon-erasure` at the same shape.
//! - Decode (max loss, a fresh random pattern per iteration): our GF(2^16) and GF(2^8) best kernel,
//!   and `reed-solomon-erasure`. (`strahl_gf16` is `Gf16Decoder` as shipped: its few-erasure path
//!   where at most `FAST_MAX_ERASURES` data shards are lost, the crate's decoder beyond.)
//! - `gf16_few_erasures` (fec/few.rs): 720p-sized native frames with 1, 2, 4 data shards lost, our
//!   few-erasure path vs `reed-solomon-simd`'s decoder, p50/p99, per kernel, and the crossover.
//! - `gf8_vs_nanors` (fec/nanors.rs): our GF(2^8) vs Moonlight's nanors itself (every ISA build
//!   of it this CPU runs), encode and max-loss decode, in the same run.
//!
//! Throughput counts the frame's *data* bytes over the median time.

use std::hint::black_box;
use std::ops::Range;
use std::time::{Duration, Instant};

use reed_solomon_erasure::galois_8::ReedSolomon as Rse;
use reed_solomon_simd::ReedSolomonEncoder;
use serde_json::{Value, json};
use strahl_fec::gf8::{Gf8Code, Gf8Decoder, Gf8Kernel};
use strahl_fec::gf16::{Gf16Decoder, Gf16Encoder};

use crate::Options;
use crate::report::{Plot, Stats, measure};

mod few;
mod nanors;

/// Shard payload: GameStream's shard at the default 1392-byte packet size (reference A18), also
/// used for GF(2^16) so both fields code the same bytes.
const SHARD: usize = 1392;
const FRAMES: [usize; 4] = [64 << 10, 256 << 10, 1 << 20, 4 << 20];
const PARITY_PCT: [usize; 3] = [10, 20, 50];
/// Wall time spent per measured configuration (full run): enough for ~50+ samples of a 1 MiB
/// frame while keeping the whole subcommand near a minute on this 2-core VM.
const TARGET_PER_CONFIG: Duration = Duration::from_millis(300);
const MAX_ITERS: usize = 400;
const MIN_ITERS: usize = 7;

/// Deterministic pseudo-random bytes (xorshift64*; benches need reproducible, incompressible data).
pub(crate) fn fill(buf: &mut [u8], seed: u64) {
    let mut x = seed | 1;
    for chunk in buf.chunks_mut(8) {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        let v = x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
        chunk.copy_from_slice(&v[..chunk.len()]);
    }
}

/// Small seeded PRNG for loss patterns.
pub(crate) struct Rng(pub u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Mark `count` distinct indices of `mask` false (partial Fisher-Yates over `idx`).
    pub(crate) fn erase(&mut self, mask: &mut [bool], idx: &mut [usize], count: usize) {
        mask.fill(true);
        for (i, v) in idx.iter_mut().enumerate() {
            *v = i;
        }
        for i in 0..count.min(idx.len()) {
            let j = i + self.below(idx.len() - i);
            idx.swap(i, j);
            mask[idx[i]] = false;
        }
    }
}

/// GameStream-style split of `k` data shards into blocks of at most 255 shards at `pct` parity:
/// as few blocks as fit, data spread evenly. Returns (data range, parity range) per block.
pub(crate) fn gf8_blocks(k: usize, pct: usize) -> Vec<(Range<usize>, Range<usize>)> {
    let parity_of = |d: usize| (d * pct).div_ceil(100).max(1);
    let dmax = (1..=254)
        .rev()
        .find(|&d| d + parity_of(d) <= 255)
        .unwrap_or(1);
    let nblocks = k.div_ceil(dmax);
    let (mut out, mut d0, mut p0) = (Vec::new(), 0, 0);
    for b in 0..nblocks {
        let d = k / nblocks + usize::from(b < k % nblocks);
        let p = parity_of(d);
        out.push((d0..d0 + d, p0..p0 + p));
        d0 += d;
        p0 += p;
    }
    out
}

fn iters_for(opts: &Options, one: Duration) -> usize {
    if opts.quick {
        return 1;
    }
    let n = TARGET_PER_CONFIG.as_secs_f64() / one.as_secs_f64().max(1e-9);
    (n as usize).clamp(MIN_ITERS, MAX_ITERS)
}

/// Time `f` once to size the run, then measure it.
fn timed(opts: &Options, mut f: impl FnMut()) -> Stats {
    let t = Instant::now();
    f();
    let iters = iters_for(opts, t.elapsed());
    Stats::of(&measure(if opts.quick { 0 } else { 2 }, iters, f))
}

/// Measure `a` and `b` call by call, interleaved, so drift and neighbours affect both equally.
fn timed_pair(opts: &Options, mut a: impl FnMut(), mut b: impl FnMut()) -> (Stats, Stats) {
    let t = Instant::now();
    a();
    b();
    let iters = iters_for(opts, t.elapsed() / 2);
    let (mut sa, mut sb) = (Vec::with_capacity(iters), Vec::with_capacity(iters));
    for _ in 0..if opts.quick { 0 } else { 2 } {
        a();
        b();
    }
    // Swap the order every other round so neither side always runs on the other's cache leftovers.
    for round in 0..iters {
        let mut time_a = || {
            let t = Instant::now();
            a();
            sa.push(t.elapsed());
        };
        let mut time_b = || {
            let t = Instant::now();
            b();
            sb.push(t.elapsed());
        };
        if round % 2 == 0 {
            time_a();
            time_b();
        } else {
            time_b();
            time_a();
        }
    }
    (Stats::of(&sa), Stats::of(&sb))
}

fn entry(impl_name: &str, frame: usize, pct: usize, shape: Value, s: &Stats) -> Value {
    json!({
        "impl": impl_name,
        "frame_bytes": frame,
        "parity_pct": pct,
        "shape": shape,
        "median_us": s.median_us,
        "p99_us": s.p99_us,
        "gib_s": s.gib_per_s(frame),
    })
}

pub fn run(opts: &Options) -> Result<Value, String> {
    let best = Gf8Kernel::best();
    let mut encode = Vec::new();
    let mut decode = Vec::new();
    let mut gf16_vs_raw = Vec::new();
    let mut plot_pts: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    let mut add_pt =
        |name: &str, x: usize, y: f64| match plot_pts.iter_mut().find(|(n, _)| n == name) {
            Some((_, v)) => v.push((x as f64, y)),
            None => plot_pts.push((name.to_string(), vec![(x as f64, y)])),
        };
    let mut rng = Rng(0xFEC);

    for &frame in &FRAMES {
        let k = frame.div_ceil(SHARD);
        let mut data = vec![0u8; k * SHARD];
        fill(&mut data[..frame], frame as u64);
        let data_refs: Vec<&[u8]> = data.chunks_exact(SHARD).collect();
        for &pct in &PARITY_PCT {
            // ---- GF(2^16): raw reed-solomon-simd vs our wrapper ----
            let r = (k * pct).div_ceil(100);
            let mut par16 = vec![0u8; r * SHARD];
            let mut raw =
                ReedSolomonEncoder::new(k, r, SHARD).map_err(|e| format!("rss new: {e}"))?;
            let mut ours = Gf16Encoder::new();
            let mut raw_copy = |par: &mut [u8]| {
                raw.reset(k, r, SHARD).expect("rss reset");
                for s in &data_refs {
                    raw.add_original_shard(s).expect("rss add");
                }
                let res = raw.encode().expect("rss encode");
                for (dst, src) in par.chunks_exact_mut(SHARD).zip(res.recovery_iter()) {
                    dst.copy_from_slice(src);
                }
            };
            let mut par_ours = vec![0u8; r * SHARD];
            let (s_raw, s_ours) = {
                let mut ours_refs: Vec<&mut [u8]> = par_ours.chunks_exact_mut(SHARD).collect();
                timed_pair(
                    opts,
                    || raw_copy(&mut par16),
                    || ours.encode(&data_refs, &mut ours_refs).expect("gf16"),
                )
            };
            if par16 != par_ours {
                return Err(format!(
                    "GF(2^16) wrapper parity differs from raw at {frame} B {pct} %"
                ));
            }
            let mut raw2 =
                ReedSolomonEncoder::new(k, r, SHARD).map_err(|e| format!("rss new: {e}"))?;
            let s_raw_nocopy = timed(opts, || {
                raw2.reset(k, r, SHARD).expect("rss reset");
                for s in &data_refs {
                    raw2.add_original_shard(s).expect("rss add");
                }
                let res = raw2.encode().expect("rss encode");
                for rec in res.recovery_iter() {
                    black_box(rec[0]);
                }
            });
            let shape16 = json!({"data": k, "parity": r, "blocks": 1});
            encode.push(entry("rss_raw_copy", frame, pct, shape16.clone(), &s_raw));
            encode.push(entry(
                "rss_raw_nocopy",
                frame,
                pct,
                shape16.clone(),
                &s_raw_nocopy,
            ));
            encode.push(entry("strahl_gf16", frame, pct, shape16.clone(), &s_ours));
            gf16_vs_raw.push(json!({
                "frame_bytes": frame, "parity_pct": pct,
                "raw_copy_us": s_raw.median_us, "raw_nocopy_us": s_raw_nocopy.median_us,
                "ours_us": s_ours.median_us,
                "ours_over_raw_copy": s_ours.median_us / s_raw.median_us,
                "ours_over_raw_nocopy": s_ours.median_us / s_raw_nocopy.median_us,
                // Minimum-based ratio: less sensitive to neighbours preempting one side.
                "ours_over_raw_copy_min": s_ours.min_us / s_raw.min_us,
            }));
            if pct == 20 {
                add_pt(
                    "GF(2^16) reed-solomon-simd raw",
                    frame,
                    s_raw.gib_per_s(frame),
                );
                add_pt("GF(2^16) strahl wrapper", frame, s_ours.gib_per_s(frame));
            }

            // GF(2^16) decode at max loss (r data shards lost, new pattern each time).
            {
                let mut all: Vec<u8> = data.iter().chain(&par_ours).copied().collect();
                let mut shards: Vec<&mut [u8]> = all.chunks_exact_mut(SHARD).collect();
                let mut mask = vec![true; k + r];
                let mut idx = vec![0usize; k];
                let mut dec = Gf16Decoder::new();
                let s = timed(opts, || {
                    rng.erase(&mut mask[..k], &mut idx, r);
                    dec.reconstruct(k, r, &mut shards, &mask)
                        .expect("gf16 decode");
                });
                decode.push(entry("strahl_gf16", frame, pct, shape16, &s));
            }

            // ---- GF(2^8): ours (scalar, best SIMD) and reed-solomon-erasure, <= 255-shard blocks ----
            let blocks = gf8_blocks(k, pct);
            let ptotal = blocks.last().map_or(0, |b| b.1.end);
            let shape8 = json!({
                "blocks": blocks.len(),
                "per_block": blocks.iter().map(|(d, p)| [d.len(), p.len()]).collect::<Vec<_>>(),
            });
            let codes: Vec<Gf8Code> = blocks
                .iter()
                .map(|(d, p)| Gf8Code::new(d.len(), p.len()))
                .collect::<Result<_, _>>()
                .map_err(|e| e.to_string())?;
            let mut par8 = vec![0u8; ptotal * SHARD];
            let mut par8_ref = vec![0u8; ptotal * SHARD];
            for (kernel, name) in [
                (Gf8Kernel::Scalar, "strahl_gf8_scalar"),
                (best, "strahl_gf8_simd"),
            ] {
                let buf = if kernel == Gf8Kernel::Scalar {
                    &mut par8_ref
                } else {
                    &mut par8
                };
                let mut prefs: Vec<&mut [u8]> = buf.chunks_exact_mut(SHARD).collect();
                let s = timed(opts, || {
                    for ((d, p), code) in blocks.iter().zip(&codes) {
                        code.encode_with(kernel, &data_refs[d.clone()], &mut prefs[p.clone()])
                            .expect("gf8");
                    }
                });
                encode.push(entry(name, frame, pct, shape8.clone(), &s));
                if pct == 20 {
                    add_pt(
                        &format!("GF(2^8) strahl {}", kernel.name()),
                        frame,
                        s.gib_per_s(frame),
                    );
                }
            }
            if par8 != par8_ref {
                return Err(format!(
                    "GF(2^8) {} differs from scalar at {frame} B {pct} %",
                    best.name()
                ));
            }
            let rses: Vec<Rse> = blocks
                .iter()
                .map(|(d, p)| Rse::new(d.len(), p.len()))
                .collect::<Result<_, _>>()
                .map_err(|e| format!("{e:?}"))?;
            let mut par_rse = vec![0u8; ptotal * SHARD];
            {
                let mut prefs: Vec<&mut [u8]> = par_rse.chunks_exact_mut(SHARD).collect();
                let s = timed(opts, || {
                    for ((d, p), rs) in blocks.iter().zip(&rses) {
                        rs.encode_sep(&data_refs[d.clone()], &mut prefs[p.clone()])
                            .expect("rse");
                    }
                });
                encode.push(entry(
                    "reed_solomon_erasure",
                    frame,
                    pct,
                    shape8.clone(),
                    &s,
                ));
                if pct == 20 {
                    add_pt("GF(2^8) reed-solomon-erasure", frame, s.gib_per_s(frame));
                }
            }

            // GF(2^8) decode at max loss per block (each block loses `p` data shards, or all it has).
            {
                let mut all: Vec<u8> = data.iter().chain(&par8).copied().collect();
                let mut dec = Gf8Decoder::with_kernel(best);
                let mut mask = vec![true; 255];
                let mut idx = vec![0usize; 255];
                let s = timed(opts, || {
                    decode_blocks(
                        &mut all,
                        k,
                        &blocks,
                        &mut rng,
                        &mut mask,
                        &mut idx,
                        |code_i, shards, mask| {
                            dec.reconstruct(codes[code_i], shards, mask)
                                .expect("gf8 decode");
                        },
                    );
                });
                decode.push(entry("strahl_gf8_simd", frame, pct, shape8.clone(), &s));
                let mut all: Vec<u8> = data.iter().chain(&par_rse).copied().collect();
                let s = timed(opts, || {
                    decode_blocks(
                        &mut all,
                        k,
                        &blocks,
                        &mut rng,
                        &mut mask,
                        &mut idx,
                        |code_i, shards, mask| {
                            let mut v: Vec<(&mut [u8], bool)> = shards
                                .iter_mut()
                                .zip(mask)
                                .map(|(s, &m)| (&mut **s, m))
                                .collect();
                            rses[code_i].reconstruct_data(&mut v).expect("rse decode");
                        },
                    );
                });
                decode.push(entry("reed_solomon_erasure", frame, pct, shape8, &s));
            }
        }
    }

    let headline = headline(opts)?;
    let few_erasures = few::run(opts)?;
    let vs_nanors = nanors::run(opts)?;
    let geomean = |key: &str| {
        let v: Vec<f64> = gf16_vs_raw.iter().filter_map(|g| g[key].as_f64()).collect();
        (v.iter().map(|x| x.ln()).sum::<f64>() / v.len().max(1) as f64).exp()
    };
    let gf16_summary = json!({
        "geomean_ours_over_raw_copy": geomean("ours_over_raw_copy"),
        "geomean_ours_over_raw_nocopy": geomean("ours_over_raw_nocopy"),
        "geomean_ours_over_raw_copy_min": geomean("ours_over_raw_copy_min"),
        "target_max": 1.10,
        "note": "identical code paths; per-config ratios move by up to ~10 % with where malloc places \
                 reed-solomon-simd's byte-aligned work buffer (strahl-fec examples/gf16_ab PAD: \
                 ours/raw 1.00 vs 1.09 by heap placement alone)",
    });
    if let Some(path) = &opts.plot {
        let mut plot = Plot::new(
            &format!("FEC encode, {SHARD} B shards, 20 % parity (median)"),
            "frame bytes",
            "GiB/s of data",
        );
        plot.log_x = true;
        for (name, pts) in plot_pts {
            plot.series(&name, pts);
        }
        plot.write(path)?;
    }
    Ok(json!({
        "bench": "fec",
        "shard_bytes": SHARD,
        "gf8_best_kernel": best.name(),
        "gf8_kernels_available": Gf8Kernel::ALL.iter().filter(|k| k.is_available()).map(|k| k.name()).collect::<Vec<_>>(),
        "quick": opts.quick,
        "headline": headline,
        "gf16_few_erasures": few_erasures,
        "gf8_vs_nanors": vs_nanors,
        "gf16_wrapper_summary": gf16_summary,
        "gf16_wrapper_vs_raw": gf16_vs_raw,
        "encode": encode,
        "decode": decode,
    }))
}

/// Erase up to `p` data shards per block (new random pattern) and run `dec` on each block.
fn decode_blocks(
    all: &mut [u8],
    k: usize,
    blocks: &[(Range<usize>, Range<usize>)],
    rng: &mut Rng,
    mask: &mut [bool],
    idx: &mut [usize],
    mut dec: impl FnMut(usize, &mut [&mut [u8]], &[bool]),
) {
    let (data, parity) = all.split_at_mut(k * SHARD);
    // Blocks are consecutive ranges: hand each one its shards by consuming two iterators.
    let mut dshards = data.chunks_exact_mut(SHARD);
    let mut pshards = parity.chunks_exact_mut(SHARD);
    for (b, (d, p)) in blocks.iter().enumerate() {
        let n = d.len() + p.len();
        rng.erase(&mut mask[..d.len()], &mut idx[..d.len()], p.len());
        mask[d.len()..n].fill(true);
        let mut shards: Vec<&mut [u8]> = dshards
            .by_ref()
            .take(d.len())
            .chain(pshards.by_ref().take(p.len()))
            .collect();
        dec(b, &mut shards, &mask[..n]);
    }
}

/// GF(2^8) encode at GameStream's largest block, (212, 43) x 1392 B, on every kernel, vs
/// reed-solomon-erasure at the same shape.
fn headline(opts: &Options) -> Result<Value, String> {
    const D: usize = 212;
    const P: usize = 43;
    let mut data = vec![0u8; D * SHARD];
    fill(&mut data, 0x212_043);
    let drefs: Vec<&[u8]> = data.chunks_exact(SHARD).collect();
    let code = Gf8Code::new(D, P).map_err(|e| e.to_string())?;
    let rs = Rse::new(D, P).map_err(|e| format!("{e:?}"))?;
    let mut par = vec![0u8; P * SHARD];
    let mut par_rse = vec![0u8; P * SHARD];
    let bytes = D * SHARD;
    let mut kernels = serde_json::Map::new();
    let mut best_gib = 0.0;
    // Alternate ours-best and rse call by call for the ratio; then each kernel on its own.
    let best = Gf8Kernel::best();
    let (s_best, s_rse) = {
        let mut prefs: Vec<&mut [u8]> = par.chunks_exact_mut(SHARD).collect();
        let mut rrefs: Vec<&mut [u8]> = par_rse.chunks_exact_mut(SHARD).collect();
        timed_pair(
            opts,
            || code.encode_with(best, &drefs, &mut prefs).expect("gf8"),
            || rs.encode_sep(&drefs, &mut rrefs).expect("rse"),
        )
    };
    for k in Gf8Kernel::ALL.into_iter().filter(|k| k.is_available()) {
        let s = if k == best {
            s_best
        } else {
            let mut prefs: Vec<&mut [u8]> = par.chunks_exact_mut(SHARD).collect();
            timed(opts, || {
                code.encode_with(k, &drefs, &mut prefs).expect("gf8")
            })
        };
        if k == best {
            best_gib = s.gib_per_s(bytes);
        }
        kernels.insert(
            k.name().into(),
            json!({"median_us": s.median_us, "p99_us": s.p99_us, "gib_s": s.gib_per_s(bytes)}),
        );
    }
    let rse_gib = s_rse.gib_per_s(bytes);
    Ok(json!({
        "shape": "212+43 x 1392 B (GF(2^8) encode, GameStream max block)",
        "strahl_gf8": kernels,
        "best_kernel": best.name(),
        "reed_solomon_erasure": {"median_us": s_rse.median_us, "p99_us": s_rse.p99_us, "gib_s": rse_gib},
        "ratio_best_over_rse": best_gib / rse_gib,
        "targets": {"best_gib_s_min": 2.0, "ratio_min": 2.0},
    }))
}
