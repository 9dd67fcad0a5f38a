//! A/B of our GF(2^16) wrapper against raw `reed-solomon-simd` on one shape, alternating call by
//! call: `cargo run --release -p strahl-fec --example gf16_ab [FRAME_BYTES] [PARITY_PCT] [ITERS]
//! [PAD]` (PAD small allocations made before our encoder allocates, to move its work buffer).

use std::time::Instant;

use reed_solomon_simd::ReedSolomonEncoder;
use strahl_fec::gf16::Gf16Encoder;

fn main() {
    let arg = |i: usize, default: usize| {
        std::env::args()
            .nth(i)
            .and_then(|a| a.parse().ok())
            .unwrap_or(default)
    };
    let (frame, pct, iters) = (arg(1, 4 << 20), arg(2, 50), arg(3, 60).clamp(1, 10_000));
    const SHARD: usize = 1392;
    let k = frame.div_ceil(SHARD);
    let r = (k * pct).div_ceil(100);
    let data: Vec<u8> = (0..k * SHARD).map(|i| (i * 31 + i / 7) as u8).collect();
    let drefs: Vec<&[u8]> = data.chunks_exact(SHARD).collect();
    let mut par_raw = vec![0u8; r * SHARD];
    let mut par_ours = vec![0u8; r * SHARD];
    let mut raw = ReedSolomonEncoder::new(k, r, SHARD).expect("shape");
    let mut ours = Gf16Encoder::new();
    // Optional heap perturbation before `ours` allocates its work buffer on first use: the crate
    // keeps shards in a Vec<[u8; 64]> (byte alignment), so where malloc places it sets how many
    // vector loads straddle cache lines.
    let pad: Vec<Vec<u8>> = (0..arg(4, 0)).map(|i| vec![i as u8; 16]).collect();
    ours.encode(
        &drefs,
        &mut par_ours.chunks_exact_mut(SHARD).collect::<Vec<_>>(),
    )
    .expect("warm");
    let mut oref: Vec<&mut [u8]> = par_ours.chunks_exact_mut(SHARD).collect();
    let (mut ta, mut tb) = (Vec::new(), Vec::new());
    for _ in 0..iters {
        let t = Instant::now();
        raw.reset(k, r, SHARD).expect("reset");
        for s in &drefs {
            raw.add_original_shard(s).expect("add");
        }
        let res = raw.encode().expect("encode");
        for (dst, src) in par_raw.chunks_exact_mut(SHARD).zip(res.recovery_iter()) {
            dst.copy_from_slice(src);
        }
        drop(res);
        ta.push(t.elapsed().as_secs_f64() * 1e6);
        let t = Instant::now();
        ours.encode(&drefs, &mut oref).expect("ours");
        tb.push(t.elapsed().as_secs_f64() * 1e6);
    }
    drop(oref);
    drop(pad);
    assert!(par_raw == par_ours, "parity differs");
    for v in [&mut ta, &mut tb] {
        v.sort_by(|a, b| a.total_cmp(b));
    }
    let med = |v: &[f64]| v[v.len() / 2];
    println!(
        "{k}+{r} x {SHARD} B: raw median {:.1} us (min {:.1}), ours median {:.1} us (min {:.1}), ours/raw {:.3}",
        med(&ta),
        ta[0],
        med(&tb),
        tb[0],
        med(&tb) / med(&ta)
    );
}
