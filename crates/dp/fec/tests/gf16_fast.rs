//! The few-erasure GF(2^16) path recovers exactly what `reed-solomon-simd`'s own decoder recovers,
//! on every kernel this CPU has, for random shapes (both of the crate's rates), shard lengths
//! (whole 64-byte chunks and a partial last chunk) and erasure patterns; and our parity is the
//! crate's parity byte for byte.

use proptest::prelude::*;
use reed_solomon_simd::{ReedSolomonDecoder, ReedSolomonEncoder};
use strahl_fec::gf16::{
    FAST_MAX_ERASURES, FAST_MAX_ERASURES_SCALAR, Gf16Decoder, Gf16Encoder, Gf16Kernel,
};

fn bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Parity straight from the crate's encoder.
fn rss_parity(data: &[Vec<u8>], p: usize) -> Vec<Vec<u8>> {
    let mut enc = ReedSolomonEncoder::new(data.len(), p, data[0].len()).unwrap();
    for s in data {
        enc.add_original_shard(s).unwrap();
    }
    enc.encode()
        .unwrap()
        .recovery_iter()
        .map(<[u8]>::to_vec)
        .collect()
}

/// What the crate's decoder restores for the missing data shards, given every present shard.
fn rss_restore(data: &[Vec<u8>], parity: &[Vec<u8>], present: &[bool]) -> Vec<Vec<u8>> {
    let (d, p, len) = (data.len(), parity.len(), data[0].len());
    let mut dec = ReedSolomonDecoder::new(d, p, len).unwrap();
    for (i, s) in data.iter().enumerate().filter(|(i, _)| present[*i]) {
        dec.add_original_shard(i, s).unwrap();
    }
    for (j, s) in parity.iter().enumerate().filter(|(j, _)| present[d + j]) {
        dec.add_recovery_shard(j, s).unwrap();
    }
    let res = dec.decode().unwrap();
    (0..d)
        .filter(|&i| !present[i])
        .map(|i| res.restored_original(i).unwrap().to_vec())
        .collect()
}

/// Decode with `dec` (shards of missing data filled with junk first); returns the restored data.
fn ours(
    dec: &mut Gf16Decoder,
    data: &[Vec<u8>],
    parity: &[Vec<u8>],
    present: &[bool],
) -> Vec<Vec<u8>> {
    let (d, p) = (data.len(), parity.len());
    let mut all: Vec<Vec<u8>> = data.iter().chain(parity).cloned().collect();
    for (s, &ok) in all.iter_mut().zip(present) {
        if !ok {
            s.fill(0xA5);
        }
    }
    let mut refs: Vec<&mut [u8]> = all.iter_mut().map(Vec::as_mut_slice).collect();
    dec.reconstruct(d, p, &mut refs, present).unwrap();
    // Present shards are never written.
    for (i, s) in all.iter().enumerate().filter(|(i, _)| present[*i]) {
        let orig = if i < d { &data[i] } else { &parity[i - d] };
        assert_eq!(s, orig, "present shard {i} was modified");
    }
    (0..d)
        .filter(|&i| !present[i])
        .map(|i| all[i].clone())
        .collect()
}

fn kernels() -> impl Iterator<Item = Gf16Kernel> {
    Gf16Kernel::ALL.into_iter().filter(|k| k.is_available())
}

/// Check one case on every kernel, against the crate's decoder and the original data.
fn check(d: usize, p: usize, len: usize, seed: u64, present: &[bool], limit: usize) {
    let data: Vec<Vec<u8>> = (0..d)
        .map(|i| bytes(len, seed ^ (i as u64) << 20))
        .collect();
    let parity = rss_parity(&data, p);
    let want = rss_restore(&data, &parity, present);
    let lost: Vec<usize> = (0..d).filter(|&i| !present[i]).collect();
    for (w, &i) in want.iter().zip(&lost) {
        assert_eq!(w, &data[i], "the crate itself failed ({d},{p}) len {len}");
    }
    for k in kernels() {
        let mut dec = Gf16Decoder::with_kernel(k);
        dec.set_fast_limit(limit);
        let got = ours(&mut dec, &data, &parity, present);
        assert_eq!(
            got,
            want,
            "kernel {} ({d},{p}) len {len} lost {lost:?}",
            k.name()
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Up to FAST_MAX_ERASURES data shards lost (and some parity), random shape and length.
    #[test]
    fn few_erasures_match_the_crates_decoder(
        d in 1usize..200,
        p in 1usize..64,
        half_len in 1usize..200,
        seed in any::<u64>(),
        lose in prop::collection::vec(any::<prop::sample::Index>(), 1..24),
        lose_parity in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let n = d + p;
        let mut present = vec![true; n];
        let budget = p.min(FAST_MAX_ERASURES);
        for ix in lose.iter().take(budget) {
            present[ix.index(d)] = false;
        }
        let lost = present[..d].iter().filter(|&&b| !b).count();
        for ix in lose_parity.iter().take(p - lost) {
            present[d + ix.index(p)] = false;
        }
        check(d, p, half_len * 2, seed, &present, FAST_MAX_ERASURES);
    }

    /// Forced past the default limit: the closed form holds for any number of erasures.
    #[test]
    fn forced_fast_path_matches_at_max_loss(
        d in 1usize..80,
        p in 1usize..80,
        half_len in 1usize..100,
        seed in any::<u64>(),
    ) {
        let mut present = vec![true; d + p];
        let mut x = seed | 1;
        let e = p.min(d);
        let mut lost = 0;
        while lost < e {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let i = (x >> 33) as usize % d;
            if present[i] {
                present[i] = false;
                lost += 1;
            }
        }
        check(d, p, half_len * 2, seed, &present, usize::MAX);
    }
}

/// Shapes at the edges of both rates and of the chunk layout, every data shard lost in turn.
#[test]
fn edge_shapes_each_single_loss() {
    // (d, p): high rate, low rate (p's power of two larger), equal powers both ways, one shard.
    let shapes = [
        (1, 1),
        (1, 5),
        (2, 30),
        (5, 7),
        (7, 5),
        (16, 16),
        (17, 17),
        (60, 12),
        (64, 64),
    ];
    for &(d, p) in &shapes {
        for len in [2, 62, 64, 66, 128, 1344, 1398] {
            for lost in 0..d {
                let mut present = vec![true; d + p];
                present[lost] = false;
                check(
                    d,
                    p,
                    len,
                    (d * 1000 + len) as u64,
                    &present,
                    FAST_MAX_ERASURES,
                );
            }
        }
    }
}

/// A 720p-sized frame (tens of shards) with 1..=8 shards lost, the bench's shape.
#[test]
fn frame_720p_sized() {
    let (d, p, len) = (60, 12, 1344);
    for e in 1..=8 {
        let mut present = vec![true; d + p];
        for k in 0..e {
            present[(k * 7 + 3) % d] = false;
        }
        // Lose the first parity shard as well: the chosen set starts further in.
        present[d] = false;
        check(d, p, len, e as u64, &present, FAST_MAX_ERASURES);
    }
}

/// Our encoder's parity is the crate's parity, byte for byte (what goes on the wire).
#[test]
fn parity_is_the_crates_parity() {
    for &(d, p, len) in &[(60, 12, 1344), (3, 9, 66), (200, 40, 130), (1, 1, 2)] {
        let data: Vec<Vec<u8>> = (0..d).map(|i| bytes(len, i as u64 + 7)).collect();
        let want = rss_parity(&data, p);
        let ins: Vec<&[u8]> = data.iter().map(Vec::as_slice).collect();
        let mut got = vec![vec![0u8; len]; p];
        let mut outs: Vec<&mut [u8]> = got.iter_mut().map(Vec::as_mut_slice).collect();
        Gf16Encoder::new().encode(&ins, &mut outs).unwrap();
        assert_eq!(got, want, "({d},{p}) len {len}");
    }
}

/// The default limits: SIMD kernels take up to FAST_MAX_ERASURES lost shards, the scalar kernel
/// up to FAST_MAX_ERASURES_SCALAR; beyond them the crate decodes (and still recovers).
#[test]
fn default_limits_pick_the_path() {
    let (d, p, len) = (40, 20, 130);
    let data: Vec<Vec<u8>> = (0..d).map(|i| bytes(len, i as u64 + 99)).collect();
    let parity = rss_parity(&data, p);
    let lose = |e: usize| {
        let mut present = vec![true; d + p];
        present[..e].fill(false);
        present
    };
    let mut cases = vec![
        (Gf16Kernel::Scalar, FAST_MAX_ERASURES_SCALAR),
        (Gf16Kernel::best(), FAST_MAX_ERASURES),
    ];
    if Gf16Kernel::best().resolve() == Gf16Kernel::Scalar {
        cases.truncate(1);
    }
    for (kernel, limit) in cases {
        for (e, fast) in [(1, 1), (limit, 1), (limit + 1, 0)] {
            let mut dec = Gf16Decoder::with_kernel(kernel);
            let present = lose(e);
            let got = ours(&mut dec, &data, &parity, &present);
            assert_eq!(got, data[..e].to_vec(), "{} with {e} lost", kernel.name());
            assert_eq!(dec.fast_decodes(), fast, "{} with {e} lost", kernel.name());
        }
    }
}

/// The largest shapes the crate takes, both rates: evaluation points reach the top of the field
/// (the subspace polynomial of a 2^15- or 2^16-point chunk).
#[test]
fn extreme_shapes_single_and_double_loss() {
    for &(d, p) in &[
        (65534, 1),
        (1, 65534),
        (32768, 32767),
        (40000, 3),
        (3, 40000),
    ] {
        for lost in [vec![0], vec![d - 1], vec![0, d / 2 + 1]] {
            if lost.len() > p.min(d) || (lost.len() == 2 && lost[0] == lost[1]) {
                continue;
            }
            let mut present = vec![true; d + p];
            for &i in &lost {
                present[i] = false;
            }
            check(d, p, 66, (d + 3 * p) as u64, &present, FAST_MAX_ERASURES);
        }
    }
}
