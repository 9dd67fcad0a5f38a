//! Hostile shapes: whatever counts, lengths and masks the caller passes, every entry point returns
//! `Ok` or a typed error; none panics.

use proptest::prelude::*;
use strahl_fec::FecError;
use strahl_fec::gf8::{AudioFec, Gf8Code, Gf8Decoder};
use strahl_fec::gf16::{Gf16Decoder, Gf16Encoder};

/// Shard lengths: mostly equal (so deeper checks are reached), sometimes one differs.
fn lens(n: usize, base: usize, odd_one: Option<(usize, usize)>) -> Vec<usize> {
    let mut v = vec![base; n];
    if let Some((i, l)) = odd_one
        && n > 0
    {
        v[i % n] = l;
    }
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn gf8_never_panics(
        d in 0usize..300, p in 0usize..300,
        nd in 0usize..40, np in 0usize..40,
        base in 0usize..80,
        odd in proptest::option::of((0usize..80, 0usize..80)),
        mask in prop::collection::vec(any::<bool>(), 0..80),
    ) {
        let code = match Gf8Code::new(d, p) {
            Ok(c) => c,
            Err(e) => {
                let is_shape = matches!(e, FecError::InvalidShape { .. });
                prop_assert!(is_shape, "unexpected error {:?}", e);
                // Fall back to a valid small code so the shard checks still run.
                Gf8Code::new(d.clamp(1, 20), p.clamp(1, 20)).unwrap()
            }
        };
        let l = lens(nd + np, base, odd);
        let mut bufs: Vec<Vec<u8>> = l.iter().map(|&n| vec![7u8; n]).collect();
        let (data, parity) = bufs.split_at_mut(nd);
        let drefs: Vec<&[u8]> = data.iter().map(|v| v.as_slice()).collect();
        let mut prefs: Vec<&mut [u8]> = parity.iter_mut().map(|v| v.as_mut_slice()).collect();
        let _ = code.encode(&drefs, &mut prefs);
        let mut all: Vec<&mut [u8]> = bufs.iter_mut().map(|v| v.as_mut_slice()).collect();
        let _ = Gf8Decoder::new().reconstruct(code, &mut all, &mask);
    }

    #[test]
    fn gf16_never_panics(
        nd in 0usize..40, np in 0usize..40,
        base in 0usize..80,
        odd in proptest::option::of((0usize..80, 0usize..80)),
        claimed in (0usize..50, 0usize..50),
        mask in prop::collection::vec(any::<bool>(), 0..80),
    ) {
        let l = lens(nd + np, base, odd);
        let mut bufs: Vec<Vec<u8>> = l.iter().map(|&n| vec![7u8; n]).collect();
        let (data, parity) = bufs.split_at_mut(nd);
        let drefs: Vec<&[u8]> = data.iter().map(|v| v.as_slice()).collect();
        let mut prefs: Vec<&mut [u8]> = parity.iter_mut().map(|v| v.as_mut_slice()).collect();
        let _ = Gf16Encoder::new().encode(&drefs, &mut prefs);
        let mut all: Vec<&mut [u8]> = bufs.iter_mut().map(|v| v.as_mut_slice()).collect();
        let _ = Gf16Decoder::new().reconstruct(claimed.0, claimed.1, &mut all, &mask);
        let _ = Gf16Decoder::new().reconstruct(nd, np, &mut all, &mask);
    }

    #[test]
    fn audio_never_panics(base in 0usize..40, odd in proptest::option::of((0usize..6, 0usize..40)), mask in any::<[bool; 6]>()) {
        let l = lens(6, base, odd);
        let mut bufs: Vec<Vec<u8>> = l.iter().map(|&n| vec![3u8; n]).collect();
        {
            let (data, parity) = bufs.split_at_mut(4);
            let drefs: [&[u8]; 4] = std::array::from_fn(|i| data[i].as_slice());
            let (p0, p1) = parity.split_at_mut(1);
            let _ = AudioFec::encode(&drefs, &mut [&mut p0[0], &mut p1[0]]);
        }
        let mut it = bufs.iter_mut();
        let mut refs: [&mut [u8]; 6] = std::array::from_fn(|_| it.next().unwrap().as_mut_slice());
        let r = AudioFec::reconstruct(&mut refs, &mask);
        if mask.iter().filter(|&&m| m).count() < 4 {
            prop_assert!(r.is_err());
        }
    }
}
