use super::*;
use proptest::prelude::*;
use std::collections::HashSet;

const SECRET: [u8; 32] = [0x5a; 32];

/// A receiver that already accepted `largest` (tests start near high generations without
/// opening 2^23·k packets first).
fn rx_at(secret: &[u8; 32], direction: Direction, backend: Backend, largest: u64) -> RxOpener {
    let mut rx = RxOpener::new(secret, direction, backend);
    rx.window.largest = Some(largest);
    rx.keys = [
        Some(GenKey::derive(
            secret,
            direction,
            backend,
            generation_of(largest),
        )),
        None,
        None,
    ];
    rx
}

fn seal_one(tx: &mut TxSealer, aad: &[u8], pt: &[u8]) -> (u64, Vec<u8>, [u8; 16]) {
    let mut buf = pt.to_vec();
    let (pn, tag) = tx.seal(aad, &mut buf).unwrap();
    (pn, buf, tag)
}

#[test]
fn round_trip_in_order_both_backends_and_cross() {
    for tb in Backend::ALL {
        for rb in Backend::ALL {
            let mut tx = TxSealer::new(&SECRET, Direction::HostToClient, tb);
            let mut rx = RxOpener::new(&SECRET, Direction::HostToClient, rb);
            for i in 0..100u32 {
                let pt: Vec<u8> = (0..(i as usize * 13) % 1400)
                    .map(|j| (j as u32 ^ i) as u8)
                    .collect();
                assert_eq!(tx.next_packet_number(), u64::from(i));
                let (pn, mut ct, tag) = seal_one(&mut tx, b"hdr", &pt);
                assert_eq!(pn, u64::from(i));
                if pt.len() > 16 {
                    assert_ne!(ct, pt, "payload must be encrypted");
                }
                rx.open(pn, b"hdr", &mut ct, &tag).unwrap();
                assert_eq!(ct, pt);
                assert_eq!(rx.largest_packet_number(), Some(pn));
            }
        }
    }
}

#[test]
fn wrong_direction_or_secret_is_forged() {
    let mut tx = TxSealer::new(&SECRET, Direction::HostToClient, Backend::DEFAULT);
    let (pn, ct, tag) = seal_one(&mut tx, b"a", b"payload bytes");
    let mut rx = RxOpener::new(&SECRET, Direction::ClientToHost, Backend::DEFAULT);
    assert_eq!(
        rx.open(pn, b"a", &mut ct.clone(), &tag),
        Err(SealError::Forged)
    );
    let mut rx = RxOpener::new(&[0x5b; 32], Direction::HostToClient, Backend::DEFAULT);
    assert_eq!(
        rx.open(pn, b"a", &mut ct.clone(), &tag),
        Err(SealError::Forged)
    );
    assert_eq!(
        rx.largest_packet_number(),
        None,
        "a forgery must not advance the window"
    );
}

#[test]
fn replay_duplicate_and_too_old() {
    let mut tx = TxSealer::new(&SECRET, Direction::ClientToHost, Backend::DEFAULT);
    let mut rx = RxOpener::new(&SECRET, Direction::ClientToHost, Backend::DEFAULT);
    let pkts: Vec<_> = (0..REPLAY_WINDOW + 10)
        .map(|i| seal_one(&mut tx, b"", &i.to_le_bytes()))
        .collect();
    // Deliver packet 5 first, then skip ahead: the window holds everything within reach.
    let open = |rx: &mut RxOpener, i: usize| {
        let (pn, ct, tag) = &pkts[i];
        let mut b = ct.clone();
        rx.open(*pn, b"", &mut b, tag)
    };
    open(&mut rx, 5).unwrap();
    assert_eq!(
        open(&mut rx, 5),
        Err(SealError::Replayed { packet_number: 5 })
    );
    open(&mut rx, 3).unwrap(); // late but inside the window
    assert_eq!(
        open(&mut rx, 3),
        Err(SealError::Replayed { packet_number: 3 })
    );
    let last = pkts.len() - 1; // pn = REPLAY_WINDOW + 9
    open(&mut rx, last).unwrap();
    // pn 9 is exactly REPLAY_WINDOW behind: too old. pn 10 is the oldest still accepted.
    assert_eq!(
        open(&mut rx, 9),
        Err(SealError::Replayed { packet_number: 9 })
    );
    open(&mut rx, 10).unwrap();
    assert_eq!(
        open(&mut rx, 10),
        Err(SealError::Replayed { packet_number: 10 })
    );
    // Slots reused by the window advance must not remember old packets: pn 4 maps to the
    // same bit as pn 4 + REPLAY_WINDOW, which was never opened.
    open(&mut rx, 4 + REPLAY_WINDOW as usize).unwrap();
}

#[test]
fn replay_window_matches_a_set_model() {
    // Deterministic pseudo-random arrival order over a span wider than the window.
    let mut w = ReplayWindow::new();
    let mut seen = HashSet::new();
    let mut largest: Option<u64> = None;
    let mut x = 0x1234_5678_9abc_def0u64;
    for step in 0..200_000u64 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let base = step / 2;
        let pn = base + x % (2 * REPLAY_WINDOW);
        let pn = pn.saturating_sub(REPLAY_WINDOW / 2 + (x >> 40) % 3000);
        let model_ok = match largest {
            None => true,
            Some(l) => pn > l || (l - pn < REPLAY_WINDOW && !seen.contains(&pn)),
        };
        assert_eq!(w.check(pn).is_ok(), model_ok, "pn {pn} largest {largest:?}");
        if model_ok {
            w.record(pn);
            seen.insert(pn);
            largest = Some(largest.map_or(pn, |l| l.max(pn)));
        }
    }
}

#[test]
fn expansion_rfc9000_example_and_edges() {
    // RFC 9000 §A.3: largest 0xa82f30ea, 16-bit truncated 0x9b32 → 0xa82f9b32.
    let rx = rx_at(
        &SECRET,
        Direction::HostToClient,
        Backend::DEFAULT,
        0xa82f_30ea,
    );
    assert_eq!(rx.expand_packet_number(0x9b32, 16), 0xa82f_9b32);
    // Before any packet the expected pn is 0.
    let fresh = RxOpener::new(&SECRET, Direction::HostToClient, Backend::DEFAULT);
    assert_eq!(fresh.expand_packet_number(5, 8), 5);
    assert_eq!(fresh.expand_packet_number(0xff, 8), 0xff);
    // Wrap forward across a 2^16 boundary.
    let rx = rx_at(&SECRET, Direction::HostToClient, Backend::DEFAULT, 0x1_fff0);
    assert_eq!(rx.expand_packet_number(0x0005, 16), 0x2_0005);
    // Late packet just behind a boundary.
    let rx = rx_at(&SECRET, Direction::HostToClient, Backend::DEFAULT, 0x2_0003);
    assert_eq!(rx.expand_packet_number(0xfffe, 16), 0x1_fffe);
    // Never expands at or past PN_LIMIT.
    let rx = rx_at(
        &SECRET,
        Direction::HostToClient,
        Backend::DEFAULT,
        PN_LIMIT - 2,
    );
    assert!(rx.expand_packet_number(0, 8) < PN_LIMIT);
}

#[test]
fn key_exhausted_at_pn_limit() {
    let mut tx = TxSealer::with_first_packet_number(
        &SECRET,
        Direction::HostToClient,
        Backend::DEFAULT,
        PN_LIMIT - 1,
    );
    let mut b = [0u8; 8];
    assert_eq!(tx.seal(b"", &mut b).unwrap().0, PN_LIMIT - 1);
    assert_eq!(tx.seal(b"", &mut b), Err(SealError::KeyExhausted));
    assert_eq!(tx.seal(b"", &mut b), Err(SealError::KeyExhausted));
    let mut rx = RxOpener::new(&SECRET, Direction::HostToClient, Backend::DEFAULT);
    assert_eq!(
        rx.open(PN_LIMIT, b"", &mut b, &[0; 16]),
        Err(SealError::Forged)
    );
}

#[test]
fn rotation_boundary_opens_and_reorders() {
    for k in [1u64, 2, 1000, (1 << 30) + 7] {
        let start = k * MAX_PACKETS_PER_KEY - 50;
        let mut tx = TxSealer::with_first_packet_number(
            &SECRET,
            Direction::HostToClient,
            Backend::DEFAULT,
            start,
        );
        let pkts: Vec<_> = (0..100u32)
            .map(|i| seal_one(&mut tx, b"x", &i.to_be_bytes()))
            .collect();
        let mut rx = rx_at(
            &SECRET,
            Direction::HostToClient,
            Backend::DEFAULT,
            start - 1,
        );
        // Deliver the new generation first, then the late packets of the old one.
        for idx in (50..100).chain(0..50) {
            let (pn, ct, tag) = &pkts[idx];
            let mut b = ct.clone();
            // Truncate to 16 bits and expand, as a real receiver would.
            let pn2 = rx.expand_packet_number(pn & 0xffff, 16);
            assert_eq!(pn2, *pn);
            rx.open(pn2, b"x", &mut b, tag).unwrap();
            assert_eq!(b, (idx as u32).to_be_bytes());
        }
        assert!(rx.cached_generations() <= 3);
        // Keys of adjacent generations differ.
        let (k0, iv0) = derive_generation(&SECRET, Direction::HostToClient, k - 1);
        let (k1, iv1) = derive_generation(&SECRET, Direction::HostToClient, k);
        assert_ne!(k0, k1);
        assert_ne!(iv0, iv1);
    }
}

#[test]
fn far_generations_are_rejected_without_derivation() {
    let mut rx = RxOpener::new(&SECRET, Direction::HostToClient, Backend::DEFAULT);
    for g in 2..50u64 {
        let mut b = [0u8; 32];
        assert_eq!(
            rx.open(g * MAX_PACKETS_PER_KEY, b"", &mut b, &[0; 16]),
            Err(SealError::Forged)
        );
    }
    // Forged packets claiming the next generation derive it at most once.
    for i in 0..1000 {
        let mut b = [0u8; 32];
        assert_eq!(
            rx.open(MAX_PACKETS_PER_KEY + i, b"", &mut b, &[0; 16]),
            Err(SealError::Forged)
        );
    }
    assert_eq!(rx.cached_generations(), 2);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// No two packets under one key share a nonce, across rotation boundaries. Checked white-box
    /// (the (generation, nonce) pairs) and black-box: with an all-zero plaintext the ciphertext
    /// is the GCM keystream for (key, nonce), so a repeated (key, nonce) shows as two equal
    /// ciphertexts.
    #[test]
    fn nonces_never_repeat_under_a_key(k in 1u64..(1 << 38), before in 0u64..3000, n in 1usize..6000,
                                       backend in prop_oneof![Just(Backend::AwsLc), Just(Backend::RustCrypto)]) {
        let start = k * MAX_PACKETS_PER_KEY - before.min(k * MAX_PACKETS_PER_KEY);
        let mut tx = TxSealer::with_first_packet_number(&SECRET, Direction::HostToClient, backend, start);
        let mut pairs = HashSet::new();
        let mut streams = HashSet::new();
        for i in 0..n as u64 {
            let pn = tx.next_packet_number();
            prop_assert_eq!(pn, start + i);
            let mut buf = [0u8; 16];
            let (used, _tag) = tx.seal(b"", &mut buf).unwrap();
            prop_assert_eq!(used, pn);
            prop_assert_eq!(tx.key.generation, generation_of(pn));
            prop_assert!(pairs.insert((tx.key.generation, nonce_for(&tx.key.iv, pn))));
            prop_assert!(streams.insert(buf));
        }
    }

    /// Tampering any byte of the AAD, payload or tag gives `Forged`, leaves the window alone,
    /// and the untampered packet still opens afterwards.
    #[test]
    fn tampering_is_forged(aad in proptest::collection::vec(any::<u8>(), 1..40),
                           pt in proptest::collection::vec(any::<u8>(), 1..1500),
                           region in 0u8..3, idx in any::<usize>(), flip in 1u8..=255,
                           backend in prop_oneof![Just(Backend::AwsLc), Just(Backend::RustCrypto)]) {
        let mut tx = TxSealer::new(&SECRET, Direction::ClientToHost, backend);
        let mut rx = RxOpener::new(&SECRET, Direction::ClientToHost, backend);
        let (pn, ct, tag) = seal_one(&mut tx, &aad, &pt);
        let (mut a2, mut c2, mut t2) = (aad.clone(), ct.clone(), tag);
        match region {
            0 => { let i = idx % a2.len(); a2[i] ^= flip; }
            1 => { let i = idx % c2.len(); c2[i] ^= flip; }
            _ => { t2[idx % 16] ^= flip; }
        }
        prop_assert_eq!(rx.open(pn, &a2, &mut c2, &t2), Err(SealError::Forged));
        prop_assert_eq!(rx.largest_packet_number(), None);
        let mut ok = ct.clone();
        rx.open(pn, &aad, &mut ok, &tag).unwrap();
        prop_assert_eq!(ok, pt);
    }

    /// Expansion inverts truncation for every pn within half a window of the expected one.
    #[test]
    fn expansion_inverts_truncation(largest in 0u64..(1 << 40), bits in 8u32..33, delta in any::<i64>()) {
        let rx = rx_at(&SECRET, Direction::HostToClient, Backend::DEFAULT, largest);
        let hwin = 1i128 << (bits - 1);
        let expected = i128::from(largest) + 1;
        let pn = expected + i128::from(delta) % hwin;
        prop_assume!(pn >= 0);
        let pn = pn as u64;
        let mask = (1u64 << bits) - 1;
        prop_assert_eq!(rx.expand_packet_number(pn & mask, bits), pn);
    }
}
