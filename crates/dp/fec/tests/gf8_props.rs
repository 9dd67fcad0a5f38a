//! GF(2^8): erasure recovery within budget, every SIMD kernel equal to scalar, audio 4+2 code.

use proptest::prelude::*;
use strahl_fec::FecError;
use strahl_fec::gf8::{AudioFec, Gf8Code, Gf8Decoder, Gf8Kernel, tables};

fn shards(n: usize, len: usize, seed: u64) -> Vec<Vec<u8>> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    (x >> 24) as u8
                })
                .collect()
        })
        .collect()
}

/// Independent definition of the parity: straight from the coefficient formula, byte by byte.
fn naive_parity(d: usize, p: usize, data: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let len = data[0].len();
    (0..p)
        .map(|j| {
            (0..len)
                .map(|b| {
                    (0..d).fold(0u8, |acc, i| {
                        acc ^ tables::mul(tables::INV[(p + i) ^ j], data[i][b])
                    })
                })
                .collect()
        })
        .collect()
}

fn encode(code: Gf8Code, kernel: Gf8Kernel, data: &[Vec<u8>], len: usize) -> Vec<Vec<u8>> {
    let ins: Vec<&[u8]> = data.iter().map(|s| s.as_slice()).collect();
    let mut parity = vec![vec![0xAAu8; len]; code.parity_shards()];
    let mut outs: Vec<&mut [u8]> = parity.iter_mut().map(|s| s.as_mut_slice()).collect();
    code.encode_with(kernel, &ins, &mut outs).unwrap();
    parity
}

/// (d, p) with d + p <= 255 and a shard length that hits every tail case of 16/32/64-byte vectors.
fn shape() -> impl Strategy<Value = (usize, usize, usize)> {
    (1usize..=200, 1usize..=55, 0usize..300).prop_map(|(d, p, len)| (d, p, len))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn every_kernel_equals_scalar_and_formula((d, p, len) in shape(), seed in any::<u64>()) {
        let code = Gf8Code::new(d, p).unwrap();
        let data = shards(d, len, seed);
        let reference = encode(code, Gf8Kernel::Scalar, &data, len);
        prop_assert_eq!(&reference, &naive_parity(d, p, &data));
        for k in Gf8Kernel::ALL.into_iter().filter(|k| k.is_available()) {
            prop_assert_eq!(&encode(code, k, &data, len), &reference, "kernel {}", k.name());
        }
    }

    #[test]
    fn any_erasure_pattern_within_budget_recovers(
        (d, p, len) in shape(),
        seed in any::<u64>(),
        lose in prop::collection::vec(any::<prop::sample::Index>(), 0..40),
        kernel in prop::sample::select(Gf8Kernel::ALL.to_vec()),
    ) {
        let code = Gf8Code::new(d, p).unwrap();
        let data = shards(d, len, seed);
        let parity = encode(code, Gf8Kernel::Scalar, &data, len);
        let n = d + p;
        let mut present = vec![true; n];
        for ix in lose.iter().take(p) {
            present[ix.index(n)] = false;
        }
        let mut all: Vec<Vec<u8>> = data.iter().chain(&parity).cloned().collect();
        for (s, &ok) in all.iter_mut().zip(&present) {
            if !ok {
                s.fill(0x5A);
            }
        }
        let mut refs: Vec<&mut [u8]> = all.iter_mut().map(|s| s.as_mut_slice()).collect();
        Gf8Decoder::with_kernel(kernel).reconstruct(code, &mut refs, &present).unwrap();
        prop_assert_eq!(&all[..d], &data[..]);
    }

    #[test]
    fn beyond_budget_is_a_typed_error(d in 1usize..40, p in 1usize..20, extra in 1usize..5) {
        let code = Gf8Code::new(d, p).unwrap();
        let n = d + p;
        let lost = (p + extra).min(n);
        let mut present = vec![true; n];
        present[..lost].iter_mut().for_each(|b| *b = false);
        let mut bufs = vec![vec![0u8; 8]; n];
        let mut refs: Vec<&mut [u8]> = bufs.iter_mut().map(|s| s.as_mut_slice()).collect();
        let err = Gf8Decoder::new().reconstruct(code, &mut refs, &present).unwrap_err();
        prop_assert_eq!(err, FecError::TooFewShards { present: n - lost, needed: d });
    }
}

#[test]
fn shapes_outside_nanors_limits_are_refused() {
    for (d, p) in [(0, 1), (1, 0), (250, 6), (255, 1), (usize::MAX, 1)] {
        assert!(
            matches!(Gf8Code::new(d, p), Err(FecError::InvalidShape { .. })),
            "({d},{p}) accepted"
        );
    }
    assert!(Gf8Code::new(254, 1).is_ok() && Gf8Code::new(1, 254).is_ok());
}

#[test]
fn wrong_counts_and_lengths_are_typed_errors() {
    let code = Gf8Code::new(3, 2).unwrap();
    let a = [0u8; 10];
    let short = [0u8; 9];
    let (mut p0, mut p1) = ([0u8; 10], [0u8; 10]);
    let err = code.encode(&[&a, &a], &mut [&mut p0, &mut p1]).unwrap_err();
    assert!(matches!(
        err,
        FecError::InvalidShape {
            data: 2,
            parity: 2,
            ..
        }
    ));
    let err = code
        .encode(&[&a, &short, &a], &mut [&mut p0, &mut p1])
        .unwrap_err();
    assert_eq!(
        err,
        FecError::ShardLength {
            expected: 10,
            got: 9
        }
    );
    let mut p2 = [0u8; 11];
    let err = code
        .encode(&[&a, &a, &a], &mut [&mut p0, &mut p2])
        .unwrap_err();
    assert_eq!(
        err,
        FecError::ShardLength {
            expected: 10,
            got: 11
        }
    );

    let mut bufs = vec![vec![0u8; 10]; 5];
    bufs[4].push(0);
    let mut refs: Vec<&mut [u8]> = bufs.iter_mut().map(|s| s.as_mut_slice()).collect();
    let mut dec = Gf8Decoder::new();
    let present = [false, true, true, true, true];
    assert_eq!(
        dec.reconstruct(code, &mut refs, &present).unwrap_err(),
        FecError::ShardLength {
            expected: 10,
            got: 11
        }
    );
    refs.pop();
    assert!(matches!(
        dec.reconstruct(code, &mut refs, &present[..4]).unwrap_err(),
        FecError::InvalidShape { .. }
    ));
}

fn audio_parity(data: &[Vec<u8>]) -> Vec<Vec<u8>> {
    const ROWS: [[u8; 4]; 2] = [[0x77, 0x40, 0x38, 0x0e], [0xc7, 0xa7, 0x0d, 0x6c]];
    ROWS.iter()
        .map(|row| {
            (0..data[0].len())
                .map(|b| (0..4).fold(0, |acc, i| acc ^ tables::mul(row[i], data[i][b])))
                .collect()
        })
        .collect()
}

#[test]
fn audio_code_uses_the_fixed_rows_and_recovers_every_double_loss() {
    for len in [1usize, 16, 63, 64, 336, 1400] {
        let data = shards(4, len, len as u64 * 77 + 5);
        let mut parity = vec![vec![0u8; len]; 2];
        {
            let ins: [&[u8]; 4] = std::array::from_fn(|i| data[i].as_slice());
            let (a, b) = parity.split_at_mut(1);
            AudioFec::encode(&ins, &mut [&mut a[0], &mut b[0]]).unwrap();
        }
        assert_eq!(parity, audio_parity(&data), "len {len}");
        // The fixed rows differ from what nanors' Cauchy formula would give for 4+2.
        if len >= 16 {
            assert_ne!(parity, naive_parity(4, 2, &data));
        }
        for x in 0..6 {
            for y in x..6 {
                let mut present = [true; 6];
                present[x] = false;
                present[y] = false;
                let mut all: Vec<Vec<u8>> = data.iter().chain(&parity).cloned().collect();
                all[x].fill(0);
                all[y].fill(0);
                let mut it = all.iter_mut();
                let mut refs: [&mut [u8]; 6] =
                    std::array::from_fn(|_| it.next().unwrap().as_mut_slice());
                AudioFec::reconstruct(&mut refs, &present).unwrap();
                assert_eq!(&all[..4], &data[..], "lost {x},{y} len {len}");
            }
        }
    }
    let mut bufs = vec![vec![0u8; 4]; 6];
    let mut it = bufs.iter_mut();
    let mut refs: [&mut [u8]; 6] = std::array::from_fn(|_| it.next().unwrap().as_mut_slice());
    assert_eq!(
        AudioFec::reconstruct(&mut refs, &[false, false, false, true, true, true]).unwrap_err(),
        FecError::TooFewShards {
            present: 3,
            needed: 4
        }
    );
}
