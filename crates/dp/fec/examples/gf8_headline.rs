//! Quick A/B timing of every GF(2^8) kernel at GameStream's largest block, (212, 43) x 1392 B,
//! and a small one (48, 5) (a 64 KiB frame at 10 %).
//! `cargo run --release -p strahl-fec --example gf8_headline [ITERS]` prints median and min per
//! kernel. (The full comparison with other crates is `strahl-bench fec`.)

use std::time::Instant;

use strahl_fec::gf8::{Gf8Code, Gf8Kernel};

fn main() {
    for (d, p) in [(212, 43), (48, 5)] {
        shape(d, p);
    }
    frame_4mib(100);
    for (d, p) in [(212, 43), (170, 85)] {
        decode(d, p, 300);
    }
}

/// Decode with `p` data shards lost (the most the block can repair).
fn decode(d: usize, p: usize, iters: usize) {
    const LEN: usize = 1392;
    let code = Gf8Code::new(d, p).expect("valid shape");
    let mut all: Vec<u8> = (0..(d + p) * LEN).map(|i| (i * 13 + i / 5) as u8).collect();
    {
        let (data, parity) = all.split_at_mut(d * LEN);
        let drefs: Vec<&[u8]> = data.chunks_exact(LEN).collect();
        let mut prefs: Vec<&mut [u8]> = parity.chunks_exact_mut(LEN).collect();
        code.encode(&drefs, &mut prefs).expect("encode");
    }
    let mut present = vec![true; d + p];
    for k in 0..p.min(d) {
        present[k * d / p.min(d)] = false;
    }
    let mut dec = strahl_fec::gf8::Gf8Decoder::new();
    let mut shards: Vec<&mut [u8]> = all.chunks_exact_mut(LEN).collect();
    let mut t: Vec<f64> = (0..iters)
        .map(|_| {
            let s = Instant::now();
            dec.reconstruct(code, &mut shards, &present)
                .expect("decode");
            s.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    t.sort_by(|a, b| a.total_cmp(b));
    let lost = present.iter().filter(|&&m| !m).count();
    println!(
        "decode ({d}, {p}) x {LEN} B, {lost} lost: median {:.1} us, min {:.1} us",
        t[t.len() / 2],
        t[0]
    );
}

fn shape(d: usize, p: usize) {
    const LEN: usize = 1392;
    println!("({d}, {p}) x {LEN} B");
    #[allow(non_snake_case)]
    let (D, P) = (d, p);
    let iters: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(300)
        .clamp(1, 100_000);
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let data: Vec<u8> = (0..D * LEN)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let drefs: Vec<&[u8]> = data.chunks_exact(LEN).collect();
    let mut parity = vec![0u8; P * LEN];
    let code = Gf8Code::new(D, P).expect("valid shape");
    for k in Gf8Kernel::ALL
        .into_iter()
        .filter(|k| k.is_available() && *k != Gf8Kernel::Scalar)
    {
        let mut prefs: Vec<&mut [u8]> = parity.chunks_exact_mut(LEN).collect();
        let mut t: Vec<f64> = (0..iters)
            .map(|_| {
                let s = Instant::now();
                code.encode_with(k, &drefs, &mut prefs).expect("encode");
                s.elapsed().as_secs_f64() * 1e6
            })
            .collect();
        t.sort_by(|a, b| a.total_cmp(b));
        let gib = |us: f64| (D * LEN) as f64 / (1u64 << 30) as f64 / (us / 1e6);
        println!(
            "{:8} median {:8.1} us ({:.2} GiB/s)  min {:8.1} us ({:.2} GiB/s)",
            k.name(),
            t[t.len() / 2],
            gib(t[t.len() / 2]),
            t[0],
            gib(t[0])
        );
    }
}

/// A 4 MiB frame as 15 GameStream blocks of (201, 41): the same per-block work as the headline
/// shape, but the data no longer fits in cache (shows the memory-hierarchy cost).
fn frame_4mib(iters: usize) {
    const LEN: usize = 1392;
    let (blocks, d, p) = (15, 201, 41);
    let data: Vec<u8> = (0..blocks * d * LEN)
        .map(|i| (i * 7 + i / 13) as u8)
        .collect();
    let mut parity = vec![0u8; blocks * p * LEN];
    let code = Gf8Code::new(d, p).expect("valid shape");
    let drefs: Vec<&[u8]> = data.chunks_exact(LEN).collect();
    let mut prefs: Vec<&mut [u8]> = parity.chunks_exact_mut(LEN).collect();
    let mut t: Vec<f64> = (0..iters)
        .map(|_| {
            let s = Instant::now();
            for (db, pb) in drefs.chunks_exact(d).zip(prefs.chunks_exact_mut(p)) {
                code.encode(db, pb).expect("encode");
            }
            s.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    t.sort_by(|a, b| a.total_cmp(b));
    println!(
        "4 MiB frame, 15 x (201, 41): median {:.1} us, min {:.1} us",
        t[t.len() / 2],
        t[0]
    );
}
