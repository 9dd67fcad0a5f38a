//! Our GF(2^8) code against vectors produced by Moonlight's real nanors
//! (`golden/gen_golden.py`, committed output in `tests/golden/`; no Python needed here).

use std::path::PathBuf;

use strahl_fec::gf8::{Gf8Code, Gf8Decoder, Gf8Kernel};

/// The generator's data stream: splitmix64 outputs, 8 bytes little-endian each.
fn splitmix64_bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed;
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        out.extend_from_slice(&z.to_le_bytes());
    }
    out.truncate(n);
    out
}

struct Case {
    d: usize,
    p: usize,
    len: usize,
    seed: u64,
    erased: Vec<usize>,
    parity: Vec<u8>,
    recovered: Vec<u8>,
}

fn cases() -> Vec<Case> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let manifest = std::fs::read_to_string(dir.join("cases.txt")).expect("golden manifest");
    manifest
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (d, p, len): (usize, usize, usize) = (
                f[0].parse().unwrap(),
                f[1].parse().unwrap(),
                f[2].parse().unwrap(),
            );
            let seed = u64::from_str_radix(f[3].trim_start_matches("0x"), 16).unwrap();
            let erased: Vec<usize> = f[4].split(',').map(|s| s.parse().unwrap()).collect();
            let bin = std::fs::read(dir.join(format!("d{d}_p{p}_l{len}.bin"))).expect("golden bin");
            let erased_data = erased.iter().filter(|&&i| i < d).count();
            assert_eq!(
                bin.len(),
                (p + erased_data) * len,
                "size of d{d}_p{p}_l{len}.bin"
            );
            let (parity, recovered) = bin.split_at(p * len);
            Case {
                d,
                p,
                len,
                seed,
                erased,
                parity: parity.to_vec(),
                recovered: recovered.to_vec(),
            }
        })
        .collect()
}

#[test]
fn covers_the_shapes_the_reference_verified() {
    let cases = cases();
    for shape in [(1, 2), (4, 2), (10, 2), (200, 50), (212, 43), (3, 1)] {
        assert!(
            cases.iter().any(|c| (c.d, c.p) == shape),
            "no golden case for {shape:?}"
        );
    }
}

#[test]
fn parity_is_byte_identical_to_nanors_on_every_kernel() {
    for c in cases() {
        let code = Gf8Code::new(c.d, c.p).unwrap();
        let stream = splitmix64_bytes(c.seed, c.d * c.len);
        let data: Vec<&[u8]> = stream.chunks_exact(c.len).collect();
        for k in Gf8Kernel::ALL.into_iter().filter(|k| k.is_available()) {
            let mut parity = vec![0u8; c.p * c.len];
            let mut outs: Vec<&mut [u8]> = parity.chunks_exact_mut(c.len).collect();
            code.encode_with(k, &data, &mut outs).unwrap();
            assert!(
                parity == c.parity,
                "({},{}) len {} kernel {}: parity differs",
                c.d,
                c.p,
                c.len,
                k.name()
            );
        }
    }
}

#[test]
fn decode_matches_nanors() {
    for c in cases() {
        let code = Gf8Code::new(c.d, c.p).unwrap();
        let n = c.d + c.p;
        let mut all = splitmix64_bytes(c.seed, c.d * c.len);
        all.extend_from_slice(&c.parity);
        let mut present = vec![true; n];
        for &i in &c.erased {
            present[i] = false;
            all[i * c.len..(i + 1) * c.len].fill(0);
        }
        for k in Gf8Kernel::ALL.into_iter().filter(|k| k.is_available()) {
            let mut work = all.clone();
            let mut shards: Vec<&mut [u8]> = work.chunks_exact_mut(c.len).collect();
            Gf8Decoder::with_kernel(k)
                .reconstruct(code, &mut shards, &present)
                .unwrap();
            let ours: Vec<u8> = c
                .erased
                .iter()
                .filter(|&&i| i < c.d)
                .flat_map(|&i| work[i * c.len..(i + 1) * c.len].to_vec())
                .collect();
            assert!(
                ours == c.recovered,
                "({},{}) kernel {}: decode differs from nanors",
                c.d,
                c.p,
                k.name()
            );
        }
    }
}
