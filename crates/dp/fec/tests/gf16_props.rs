//! GF(2^16): any erasure pattern within budget recovers; shapes and lengths give typed errors.

use proptest::prelude::*;
use strahl_fec::FecError;
use strahl_fec::gf16::{Gf16Decoder, Gf16Encoder};

fn shards(n: usize, len: usize, seed: u64) -> Vec<Vec<u8>> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            (0..len)
                .map(|_| {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    (x >> 56) as u8
                })
                .collect()
        })
        .collect()
}

fn encode(enc: &mut Gf16Encoder, data: &[Vec<u8>], p: usize) -> Vec<Vec<u8>> {
    let len = data[0].len();
    let ins: Vec<&[u8]> = data.iter().map(|s| s.as_slice()).collect();
    let mut parity = vec![vec![0u8; len]; p];
    let mut outs: Vec<&mut [u8]> = parity.iter_mut().map(|s| s.as_mut_slice()).collect();
    enc.encode(&ins, &mut outs).unwrap();
    parity
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// One encoder/decoder pair reused across cases of different shapes (exercises `reset`).
    #[test]
    fn any_erasure_pattern_within_budget_recovers(
        d in 1usize..300,
        p in 1usize..80,
        half_len in 1usize..200,
        seed in any::<u64>(),
        lose in prop::collection::vec(any::<prop::sample::Index>(), 0..100),
    ) {
        let len = half_len * 2;
        let mut enc = Gf16Encoder::new();
        let mut dec = Gf16Decoder::new();
        for round in 0..2u64 {
            let data = shards(d, len, seed ^ round);
            let parity = encode(&mut enc, &data, p);
            let n = d + p;
            let mut present = vec![true; n];
            for ix in lose.iter().take(p) {
                present[ix.index(n)] = false;
            }
            let mut all: Vec<Vec<u8>> = data.iter().chain(&parity).cloned().collect();
            for (s, &ok) in all.iter_mut().zip(&present) {
                if !ok {
                    s.fill(0xEE);
                }
            }
            let mut refs: Vec<&mut [u8]> = all.iter_mut().map(|s| s.as_mut_slice()).collect();
            dec.reconstruct(d, p, &mut refs, &present).unwrap();
            prop_assert_eq!(&all[..d], &data[..]);
        }
    }
}

#[test]
fn too_few_shards_is_typed() {
    let data = shards(10, 64, 9);
    let mut enc = Gf16Encoder::new();
    let parity = encode(&mut enc, &data, 3);
    let mut all: Vec<Vec<u8>> = data.iter().chain(&parity).cloned().collect();
    let mut present = vec![true; 13];
    present[..4].iter_mut().for_each(|b| *b = false);
    let mut refs: Vec<&mut [u8]> = all.iter_mut().map(|s| s.as_mut_slice()).collect();
    assert_eq!(
        Gf16Decoder::new()
            .reconstruct(10, 3, &mut refs, &present)
            .unwrap_err(),
        FecError::TooFewShards {
            present: 9,
            needed: 10
        }
    );
}

#[test]
fn bad_shapes_and_lengths_are_typed() {
    let mut enc = Gf16Encoder::new();
    let a = [1u8; 10];
    let odd = [1u8; 9];
    let mut p = [0u8; 10];
    assert_eq!(
        enc.encode(&[&odd, &odd], &mut [&mut [0u8; 9]]).unwrap_err(),
        FecError::ShardLength {
            expected: 10,
            got: 9
        }
    );
    assert_eq!(
        enc.encode(&[&a, &odd], &mut [&mut p]).unwrap_err(),
        FecError::ShardLength {
            expected: 10,
            got: 9
        }
    );
    assert_eq!(
        enc.encode(&[&[], &[]], &mut [&mut []]).unwrap_err(),
        FecError::ShardLength {
            expected: 2,
            got: 0
        }
    );
    assert!(matches!(
        enc.encode(&[], &mut [&mut p]).unwrap_err(),
        FecError::InvalidShape { .. }
    ));
    // Too many shards for one block, and a combination the crate does not support.
    let many: Vec<&[u8]> = vec![&a[..]; 65535];
    assert!(matches!(
        enc.encode(&many, &mut [&mut p]).unwrap_err(),
        FecError::InvalidShape { .. }
    ));
    let big: Vec<&[u8]> = vec![&a[..]; 60000];
    let mut par = vec![[0u8; 10]; 5000];
    let mut par_refs: Vec<&mut [u8]> = par.iter_mut().map(|s| s.as_mut_slice()).collect();
    assert!(matches!(
        enc.encode(&big, &mut par_refs).unwrap_err(),
        FecError::InvalidShape { .. }
    ));
    // The encoder still works after errors.
    let data = shards(3, 10, 1);
    assert_eq!(encode(&mut enc, &data, 2).len(), 2);

    let mut dec = Gf16Decoder::new();
    let mut bufs = vec![vec![0u8; 10]; 4];
    let mut refs: Vec<&mut [u8]> = bufs.iter_mut().map(|s| s.as_mut_slice()).collect();
    assert!(matches!(
        dec.reconstruct(3, 2, &mut refs, &[true; 4]).unwrap_err(),
        FecError::InvalidShape { .. }
    ));
    assert!(matches!(
        dec.reconstruct(3, 1, &mut refs, &[true; 3]).unwrap_err(),
        FecError::InvalidShape { .. }
    ));
}

#[test]
fn no_parity_is_fec_off() {
    let data = shards(4, 8, 3);
    let mut enc = Gf16Encoder::new();
    assert!(encode(&mut enc, &data, 0).is_empty());
    let mut all = data.clone();
    let mut refs: Vec<&mut [u8]> = all.iter_mut().map(|s| s.as_mut_slice()).collect();
    let mut dec = Gf16Decoder::new();
    dec.reconstruct(4, 0, &mut refs, &[true; 4]).unwrap();
    assert_eq!(
        dec.reconstruct(4, 0, &mut refs, &[true, false, true, true])
            .unwrap_err(),
        FecError::TooFewShards {
            present: 3,
            needed: 4
        }
    );
}
