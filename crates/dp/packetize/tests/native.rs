//! strahl/1 end to end: packetizer → (lossy, reordering, hostile) network → reassembler.

use std::time::Duration;

use proptest::prelude::*;
use strahl_packetize::native::wire::{HEADER_LEN, OVERHEAD, PREFIX_LEN, ShardHeader};
use strahl_packetize::native::{
    Accepted, Anomaly, FrameMeta, NativeConfig, NativePacketizer, Reassembler, ReassemblerConfig,
};
use strahl_seal::aead::Backend;
use strahl_seal::native::{Direction, RxOpener, TxSealer};

const SECRET: [u8; 32] = [7; 32];

fn pair(shard_len: usize, pct: u32, rx_cfg: ReassemblerConfig) -> (NativePacketizer, Reassembler) {
    let mut cfg = NativeConfig::new(shard_len);
    cfg.fec_percent = pct;
    let tx = NativePacketizer::new(
        cfg,
        TxSealer::new(&SECRET, Direction::HostToClient, Backend::DEFAULT),
    )
    .unwrap();
    let rx = Reassembler::new(
        rx_cfg,
        RxOpener::new(&SECRET, Direction::HostToClient, Backend::DEFAULT),
    )
    .unwrap();
    (tx, rx)
}

fn au(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn packets(tx: &mut NativePacketizer, data: &[u8], meta: FrameMeta) -> Vec<Vec<u8>> {
    let mut f = tx.frame(data, meta).unwrap();
    let mut buf = vec![0u8; f.shape().max_packet_len];
    let mut out = Vec::new();
    while let Some(n) = f.next_packet(&mut buf).unwrap() {
        out.push(buf[..n].to_vec());
    }
    out
}

#[test]
fn lossless_frames_arrive_in_order_without_fec() {
    let (mut tx, mut rx) = pair(1408, 20, ReassemblerConfig::default());
    for i in 0..5u64 {
        let data = au(i, 1000 + i as usize * 7000);
        let pk = packets(
            &mut tx,
            &data,
            FrameMeta {
                pts_us: i * 16_667,
                keyframe: i == 0,
            },
        );
        let shape = tx.shape(data.len()).unwrap();
        assert_eq!(pk.len(), shape.packets());
        // Every datagram but the last data shard is S + 44 bytes; the last data one is shorter.
        for (j, p) in pk.iter().enumerate() {
            let expect = if j + 1 == shape.data_shards {
                data.len() - (shape.data_shards - 1) * 1408
            } else {
                1408
            };
            assert_eq!(p.len(), expect + OVERHEAD);
        }
        for mut p in pk {
            rx.push(&mut p, Duration::ZERO).unwrap();
        }
        let f = rx.poll(Duration::ZERO).expect("complete frame");
        assert_eq!(f.data, &data[..]);
        assert_eq!(
            (f.pts_us, f.keyframe, f.recovered),
            (i * 16_667, i == 0, false)
        );
    }
    assert_eq!(rx.stats().frames_recovered, 0);
    assert_eq!(rx.stats().anomalies(), 0);
    assert_eq!(tx.stats().frames, 5);
}

#[test]
fn the_last_data_shard_completes_a_lossless_frame() {
    let (mut tx, mut rx) = pair(1408, 20, ReassemblerConfig::default());
    let data = au(1, 50_000);
    let pk = packets(&mut tx, &data, FrameMeta::default());
    let k = tx.shape(data.len()).unwrap().data_shards;
    for (j, mut p) in pk.into_iter().enumerate() {
        let r = rx.push(&mut p, Duration::ZERO).unwrap();
        match j.cmp(&(k - 1)) {
            std::cmp::Ordering::Less => assert_eq!(r, Accepted::Stored),
            std::cmp::Ordering::Equal => assert!(matches!(
                r,
                Accepted::Completed {
                    recovered: false,
                    ..
                }
            )),
            std::cmp::Ordering::Greater => assert_eq!(r, Accepted::Surplus),
        }
    }
}

#[test]
fn tampering_replay_and_wrong_key_are_counted_not_delivered() {
    let (mut tx, mut rx) = pair(1408, 20, ReassemblerConfig::default());
    let data = au(2, 3000);
    let pk = packets(&mut tx, &data, FrameMeta::default());
    // Flip one bit in each region: prefix (AAD), header, shard, tag.
    for pos in [
        1,
        PREFIX_LEN + 2,
        PREFIX_LEN + HEADER_LEN + 5,
        pk[0].len() - 1,
    ] {
        let mut p = pk[0].clone();
        p[pos] ^= 0x10;
        assert_eq!(
            rx.push(&mut p, Duration::ZERO),
            Err(Anomaly::Forged),
            "bit flip at {pos}"
        );
    }
    let mut p = pk[0].clone();
    assert!(rx.push(&mut p, Duration::ZERO).is_ok());
    let mut p = pk[0].clone();
    assert_eq!(rx.push(&mut p, Duration::ZERO), Err(Anomaly::Replayed));
    let mut p = pk[1].clone();
    p[0] = 0x11; // stream 1
    assert_eq!(rx.push(&mut p, Duration::ZERO), Err(Anomaly::WrongStream));
    let mut p = pk[1].clone();
    p[0] = 0x40;
    assert_eq!(rx.push(&mut p, Duration::ZERO), Err(Anomaly::BadPrefix));
    assert_eq!(
        rx.push(&mut pk[1][..40].to_vec(), Duration::ZERO),
        Err(Anomaly::ShortDatagram)
    );
    // A receiver with another key rejects everything.
    let mut other = Reassembler::new(
        ReassemblerConfig::default(),
        RxOpener::new(&[8; 32], Direction::HostToClient, Backend::DEFAULT),
    )
    .unwrap();
    let mut p = pk[1].clone();
    assert_eq!(other.push(&mut p, Duration::ZERO), Err(Anomaly::Forged));
    let s = rx.stats();
    assert_eq!(
        (
            s.forged,
            s.replayed,
            s.wrong_stream,
            s.bad_prefix,
            s.short_datagram
        ),
        (4, 1, 1, 1, 1)
    );
    assert!(rx.poll(Duration::from_secs(1)).is_none());
}

/// Seal a hand-made (authenticated) shard in the packetizer's packet-number space.
fn sealed(tx: &mut NativePacketizer, h: &ShardHeader, fill: u8) -> Vec<u8> {
    sealed_len(tx, h, fill, h.wire_shard_len())
}

fn sealed_len(tx: &mut NativePacketizer, h: &ShardHeader, fill: u8, shard_bytes: usize) -> Vec<u8> {
    let mut d = vec![fill; OVERHEAD + shard_bytes];
    let mut hb = [0u8; HEADER_LEN];
    h.encode(&mut hb);
    d[PREFIX_LEN..PREFIX_LEN + HEADER_LEN].copy_from_slice(&hb);
    let s = tx.sealer_mut();
    let mut pre = [0u8; PREFIX_LEN];
    strahl_packetize::native::wire::Prefix::new(0, s.next_packet_number()).encode(&mut pre);
    d[..PREFIX_LEN].copy_from_slice(&pre);
    let len = d.len();
    let (aad, rest) = d.split_at_mut(PREFIX_LEN);
    let (_, tag) = s.seal(aad, &mut rest[..len - PREFIX_LEN - 16]).unwrap();
    d[len - 16..].copy_from_slice(&tag);
    d
}

#[test]
fn authenticated_but_inconsistent_or_oversized_frames_are_refused() {
    let cfg = ReassemblerConfig {
        max_bytes: 1 << 20,
        max_frame_bytes: 512 << 10,
        ..Default::default()
    };
    let (mut tx, mut rx) = pair(1408, 20, cfg);
    let h = ShardHeader {
        frame_id: 0,
        shard_index: 0,
        data_shards: 4,
        parity_shards: 2,
        shard_len: 1000,
        frame_len: 3500,
        flags: 0,
        pts_us: 5,
    };
    let mut d = sealed(&mut tx, &h, 1);
    assert_eq!(rx.push(&mut d, Duration::ZERO), Ok(Accepted::Stored));
    for bad in [
        ShardHeader {
            shard_index: 1,
            data_shards: 5,
            frame_len: 4500,
            ..h
        },
        ShardHeader {
            shard_index: 1,
            parity_shards: 3,
            ..h
        },
        ShardHeader {
            shard_index: 1,
            frame_len: 3501,
            ..h
        },
        ShardHeader {
            shard_index: 1,
            pts_us: 6,
            ..h
        },
        ShardHeader {
            shard_index: 1,
            flags: 1,
            ..h
        },
    ] {
        let mut d = sealed(&mut tx, &bad, 1);
        assert_eq!(
            rx.push(&mut d, Duration::ZERO),
            Err(Anomaly::Inconsistent),
            "{bad:?}"
        );
    }
    let mut d = sealed(&mut tx, &h, 1);
    assert_eq!(rx.push(&mut d, Duration::ZERO), Err(Anomaly::Duplicate));
    // Authenticated, but the shard is one byte shorter than the header implies.
    let mut d = sealed_len(
        &mut tx,
        &ShardHeader {
            shard_index: 1,
            ..h
        },
        1,
        999,
    );
    assert_eq!(rx.push(&mut d, Duration::ZERO), Err(Anomaly::BadLength));
    // The last data shard (index 3) carries exactly 3500 - 3000 bytes.
    let mut d = sealed_len(
        &mut tx,
        &ShardHeader {
            shard_index: 3,
            ..h
        },
        1,
        1000,
    );
    assert_eq!(rx.push(&mut d, Duration::ZERO), Err(Anomaly::BadLength));
    let mut d = sealed(
        &mut tx,
        &ShardHeader {
            shard_index: 3,
            ..h
        },
        1,
    );
    assert_eq!(rx.push(&mut d, Duration::ZERO), Ok(Accepted::Stored));
    let big = ShardHeader {
        frame_id: 1,
        data_shards: 600,
        parity_shards: 0,
        frame_len: 600_000,
        ..h
    };
    let mut d2 = sealed(&mut tx, &big, 1);
    assert_eq!(rx.push(&mut d2, Duration::ZERO), Err(Anomaly::OverBudget));
    assert!(rx.held_bytes() <= 1 << 20);
    let st = rx.stats();
    assert_eq!(
        (st.inconsistent, st.duplicate, st.bad_length, st.over_budget),
        (5, 1, 2, 1)
    );
}

#[test]
fn memory_bound_evicts_older_frames_and_refuses_what_cannot_fit() {
    // Budget for ~2 frames of (6 + 2) · 1408 bytes.
    let one = 8 * 1408 + 8;
    let cfg = ReassemblerConfig {
        max_bytes: 2 * one + 100,
        max_frame_bytes: 2 * one,
        ..Default::default()
    };
    let (mut tx, mut rx) = pair(1408, 20, cfg);
    let mut frames = Vec::new();
    for i in 0..4 {
        let data = au(10 + i, 6 * 1408);
        frames.push((data.clone(), packets(&mut tx, &data, FrameMeta::default())));
    }
    // Only the first shard of frames 0..3: each opens a frame; the budget holds two.
    for (_, pk) in &frames {
        let mut p = pk[0].clone();
        rx.push(&mut p, Duration::ZERO).unwrap();
        assert!(rx.held_bytes() <= 2 * one + 100);
    }
    assert_eq!(rx.stats().frames_abandoned_memory, 2);
    assert_eq!(rx.frames_in_flight(), 2);
    // Frame 3 completes by FEC (shard 1 lost, 7 of 8 present) and is delivered once the grace passes.
    for mut p in frames[3].1[2..8].iter().cloned() {
        rx.push(&mut p, Duration::ZERO).unwrap();
    }
    let f = rx.poll(Duration::from_millis(5)).unwrap();
    assert_eq!(f.data, &frames[3].0[..]);
    assert!(f.recovered);
    assert_eq!(rx.stats().frames_abandoned_superseded, 1);
    // Shards of frames given up are late now.
    let mut p = frames[1].1[1].clone();
    assert_eq!(
        rx.push(&mut p, Duration::from_millis(5)),
        Err(Anomaly::Late)
    );
}

#[test]
fn incomplete_frames_time_out_and_gaps_are_skipped() {
    let (mut tx, mut rx) = pair(1408, 20, ReassemblerConfig::default());
    let a = au(20, 10 * 1408);
    let b = au(21, 3000);
    let c = au(22, 3000);
    let pa = packets(&mut tx, &a, FrameMeta::default());
    let _pb = packets(&mut tx, &b, FrameMeta::default()); // entirely lost
    let pc = packets(&mut tx, &c, FrameMeta::default());
    for mut p in pa[..5].iter().cloned() {
        rx.push(&mut p, Duration::ZERO).unwrap();
    }
    assert!(rx.poll(Duration::from_millis(50)).is_none());
    assert_eq!(rx.next_deadline(), Some(Duration::from_millis(100)));
    for mut p in pc.iter().cloned() {
        rx.push(&mut p, Duration::from_millis(60)).unwrap();
    }
    // Frame c is complete but waits for the reorder grace before a and b are given up.
    assert!(rx.poll(Duration::from_millis(61)).is_none());
    let f = rx.poll(Duration::from_millis(62)).unwrap();
    assert_eq!(f.data, &c[..]);
    let s = rx.stats();
    assert_eq!(
        (
            s.frames_abandoned_superseded,
            s.frames_skipped,
            s.frames_delivered
        ),
        (1, 1, 1)
    );
    // Timeout path alone.
    let d = au(23, 5000);
    let pd = packets(&mut tx, &d, FrameMeta::default());
    let mut p = pd[0].clone();
    rx.push(&mut p, Duration::from_millis(70)).unwrap();
    assert!(rx.poll(Duration::from_millis(169)).is_none());
    assert!(rx.poll(Duration::from_millis(170)).is_none());
    assert_eq!(rx.stats().frames_abandoned_timeout, 1);
    assert_eq!(rx.frames_in_flight(), 0);
}

#[test]
fn window_bounds_frames_in_flight() {
    let cfg = ReassemblerConfig {
        max_frames_in_flight: 3,
        ..Default::default()
    };
    let (mut tx, mut rx) = pair(1408, 20, cfg);
    let mut all = Vec::new();
    for i in 0..6 {
        all.push(packets(&mut tx, &au(30 + i, 4000), FrameMeta::default()));
    }
    for pk in &all[1..] {
        let mut p = pk[0].clone();
        rx.push(&mut p, Duration::ZERO).unwrap();
        assert!(rx.frames_in_flight() <= 3);
    }
    assert_eq!(rx.stats().frames_abandoned_window, 2);
    // Frame 0 is older than everything in flight: refused while the window is full.
    let mut p = all[0][0].clone();
    assert_eq!(rx.push(&mut p, Duration::ZERO), Err(Anomaly::Late));
}

fn loss_case(len: usize, pct: u32, shard_len: usize, seed: u64, lost: &[usize], order: &[usize]) {
    let (mut tx, mut rx) = pair(shard_len, pct, ReassemblerConfig::default());
    let data = au(seed, len);
    let pk = packets(
        &mut tx,
        &data,
        FrameMeta {
            pts_us: 1,
            keyframe: true,
        },
    );
    let shape = tx.shape(len).unwrap();
    let mut idx: Vec<usize> = (0..pk.len()).filter(|i| !lost.contains(i)).collect();
    // Apply a permutation (reordering) to the surviving packets.
    for (i, &o) in order.iter().enumerate() {
        if idx.len() > 1 {
            let a = i % idx.len();
            let b = o % idx.len();
            idx.swap(a, b);
        }
    }
    for i in idx {
        let mut p = pk[i].clone();
        let _ = rx.push(&mut p, Duration::ZERO);
    }
    let f = rx
        .poll(Duration::ZERO)
        .expect("any loss within parity is recovered");
    assert_eq!(f.data, &data[..]);
    // A lost data shard needs FEC; with reordering, FEC may also run early (as soon as k shards
    // are in, before the last data shard arrives), which is still the exact frame.
    if lost.iter().any(|&i| i < shape.data_shards) {
        assert!(f.recovered);
    } else if order.is_empty() {
        assert!(!f.recovered);
    }
    assert_eq!(rx.stats().anomalies(), 0);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Any loss pattern of at most m shards, in any order, delivers the exact frame.
    #[test]
    fn any_loss_within_parity_delivers_the_exact_frame(
        len in 1usize..200_000,
        pct in 0u32..60,
        s in (32usize..800).prop_map(|x| x * 2),
        seed in any::<u64>(),
        lost_seed in proptest::collection::vec(any::<usize>(), 0..64),
        order in proptest::collection::vec(any::<usize>(), 0..32),
    ) {
        let mut cfg = NativeConfig::new(s);
        cfg.fec_percent = pct;
        let tx = NativePacketizer::new(cfg, TxSealer::new(&SECRET, Direction::HostToClient, Backend::DEFAULT)).unwrap();
        let shape = tx.shape(len).unwrap();
        let mut lost: Vec<usize> = lost_seed.iter().map(|x| x % shape.packets()).collect();
        lost.sort_unstable();
        lost.dedup();
        lost.truncate(shape.parity_shards);
        loss_case(len, pct, s, seed, &lost, &order);
    }

    /// Losing more than m shards never delivers that frame (and never a wrong one).
    #[test]
    fn loss_beyond_parity_never_delivers(len in 2000usize..60_000, seed in any::<u64>()) {
        let (mut tx, mut rx) = pair(1000, 10, ReassemblerConfig::default());
        let data = au(seed, len);
        let pk = packets(&mut tx, &data, FrameMeta::default());
        let m = tx.shape(len).unwrap().parity_shards;
        for mut p in pk.into_iter().skip(m + 1) {
            let _ = rx.push(&mut p, Duration::ZERO);
        }
        prop_assert!(rx.poll(Duration::from_secs(1)).is_none());
        prop_assert_eq!(rx.stats().frames_abandoned_timeout, 1);
    }

    /// Random bytes, and random *authenticated* bodies, never panic, never exceed the memory
    /// bound, and never produce a frame that was not sent.
    #[test]
    fn hostile_datagrams_are_harmless(
        junk in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..40),
        authed in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 24..200), 1..40),
    ) {
        let cfg = ReassemblerConfig { max_bytes: 200_000, max_frame_bytes: 100_000, max_frames_in_flight: 4, ..Default::default() };
        let (mut tx, mut rx) = pair(1408, 20, cfg);
        for mut j in junk {
            prop_assert!(rx.push(&mut j, Duration::ZERO).is_err());
        }
        for (t, body) in authed.into_iter().enumerate() {
            let mut d = vec![0u8; PREFIX_LEN + body.len() + 16];
            d[PREFIX_LEN..PREFIX_LEN + body.len()].copy_from_slice(&body);
            let s = tx.sealer_mut();
            let mut pre = [0u8; PREFIX_LEN];
            strahl_packetize::native::wire::Prefix::new(0, s.next_packet_number()).encode(&mut pre);
            d[..PREFIX_LEN].copy_from_slice(&pre);
            let len = d.len();
            let (aad, rest) = d.split_at_mut(PREFIX_LEN);
            let (_, tag) = s.seal(aad, &mut rest[..len - PREFIX_LEN - 16]).unwrap();
            d[len - 16..].copy_from_slice(&tag);
            let _ = rx.push(&mut d, Duration::from_millis(t as u64));
            prop_assert!(rx.held_bytes() <= 200_000);
            while let Some(f) = rx.poll(Duration::from_millis(t as u64)) {
                // Only a header that validates can yield a frame; its length is the header's.
                prop_assert!(!f.data.is_empty());
            }
        }
        prop_assert_eq!(rx.stats().datagrams, rx.stats().shards_accepted + rx.stats().anomalies());
    }
}

#[test]
fn jumbo_and_single_shard_frames() {
    loss_case(1, 20, 8908, 1, &[0], &[]);
    loss_case(8908 * 3, 20, 8908, 2, &[1, 2], &[1, 0]);
    loss_case(
        1_000_000,
        10,
        1408,
        3,
        &(0..72).collect::<Vec<_>>(),
        &[5, 9, 100],
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// A stream of frames with loss within parity, packets reordered across frame boundaries
    /// (within a sliding window), interleaved with junk and tampered copies of real datagrams:
    /// every frame arrives, exact and in order, and nothing else does.
    #[test]
    fn lossy_reordered_stream_with_junk_delivers_every_frame_exactly(
        lens in proptest::collection::vec(1usize..40_000, 1..12),
        window in 1usize..24,
        seed in any::<u64>(),
    ) {
        let (mut tx, mut rx) = pair(700, 25, ReassemblerConfig::default());
        let mut rng = seed | 1;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut frames = Vec::new();
        let mut wire: Vec<Vec<u8>> = Vec::new();
        for (i, &len) in lens.iter().enumerate() {
            let data = au(seed ^ i as u64, len);
            let pk = packets(&mut tx, &data, FrameMeta { pts_us: i as u64, keyframe: i == 0 });
            let m = tx.shape(len).unwrap().parity_shards;
            // Lose up to m shards of this frame at random positions.
            let lose = next() as usize % (m + 1);
            let mut keep: Vec<Vec<u8>> = pk;
            for _ in 0..lose {
                let j = next() as usize % keep.len();
                keep.remove(j);
            }
            wire.extend(keep);
            frames.push(data);
        }
        // Reorder: each packet moves back by at most `window` places.
        for i in 0..wire.len() {
            let j = i.saturating_sub(next() as usize % window);
            wire.swap(i, j);
        }
        let mut delivered = Vec::new();
        for (n, d) in wire.iter().enumerate() {
            // Junk and a tampered copy of a real datagram before every real one.
            let mut junk: Vec<u8> = (0..(next() % 200) as usize).map(|_| next() as u8).collect();
            prop_assert!(rx.push(&mut junk, Duration::ZERO).is_err());
            let mut bad = d.clone();
            let pos = next() as usize % bad.len();
            bad[pos] ^= 1 << (next() % 8);
            prop_assert!(rx.push(&mut bad, Duration::ZERO).is_err());
            let mut good = d.clone();
            let _ = rx.push(&mut good, Duration::ZERO);
            while let Some(f) = rx.poll(Duration::ZERO) {
                delivered.push((f.id, f.data.to_vec()));
            }
            prop_assert!(n < 100_000);
        }
        prop_assert_eq!(delivered.len(), frames.len());
        for (i, ((id, data), expect)) in delivered.iter().zip(&frames).enumerate() {
            prop_assert_eq!(data, expect, "frame {}", i);
            prop_assert_eq!(*id, delivered[0].0 + i as u64);
        }
    }
}

#[test]
fn joining_a_running_stream_vs_expecting_frame_zero() {
    for first in [None, Some(0)] {
        let cfg = ReassemblerConfig {
            first_frame_id: first,
            ..Default::default()
        };
        let (mut tx, mut rx) = pair(1408, 20, cfg);
        let _missed = (
            packets(&mut tx, &au(1, 5000), FrameMeta::default()),
            packets(&mut tx, &au(2, 5000), FrameMeta::default()),
        );
        let data = au(3, 5000);
        for mut p in packets(&mut tx, &data, FrameMeta::default()) {
            rx.push(&mut p, Duration::ZERO).unwrap();
        }
        match first {
            // Joining: frame 2 is the first frame, delivered at once.
            None => assert_eq!(
                rx.poll(Duration::ZERO).map(|f| f.data.to_vec()),
                Some(data.clone())
            ),
            // Expecting frame 0: frames 0 and 1 may still arrive (reordering); after the grace
            // they count as skipped and frame 2 is delivered.
            Some(_) => {
                assert!(rx.poll(Duration::from_millis(1)).is_none());
                assert_eq!(
                    rx.poll(Duration::from_millis(2)).map(|f| f.data.to_vec()),
                    Some(data.clone())
                );
                assert_eq!(rx.stats().frames_skipped, 2);
            }
        }
    }
}

#[test]
fn parity_into_caller_buffers_matches_next_packet_byte_for_byte() {
    for len in [1usize, 1408, 50_000, 300_001] {
        let data = au(77, len);
        let (mut a, _) = pair(1408, 30, ReassemblerConfig::default());
        let (mut b, mut rx) = pair(1408, 30, ReassemblerConfig::default());
        let one_by_one = packets(
            &mut a,
            &data,
            FrameMeta {
                pts_us: 9,
                keyframe: true,
            },
        );
        let mut f = b
            .frame(
                &data,
                FrameMeta {
                    pts_us: 9,
                    keyframe: true,
                },
            )
            .unwrap();
        let shape = f.shape();
        let mut batch = Vec::new();
        let mut buf = vec![0u8; shape.max_packet_len];
        // Parity before the data packets is refused.
        assert_eq!(
            f.parity_into(&mut []),
            Err(strahl_packetize::PacketizeError::OutOfOrder)
        );
        for _ in 0..shape.data_shards {
            let n = f.next_packet(&mut buf).unwrap().unwrap();
            batch.push(buf[..n].to_vec());
        }
        let mut pbufs = vec![vec![0xAAu8; shape.max_packet_len]; shape.parity_shards];
        let mut refs: Vec<&mut [u8]> = pbufs.iter_mut().map(|v| &mut v[..]).collect();
        assert_eq!(f.parity_into(&mut refs).unwrap(), shape.parity_shards);
        assert_eq!(f.remaining(), 0);
        assert_eq!(f.next_packet(&mut buf).unwrap(), None);
        batch.extend(pbufs);
        assert_eq!(batch, one_by_one, "len {len}");
        // And the batch-parity datagrams reassemble with the data shards lost.
        for mut p in batch
            .into_iter()
            .skip(shape.parity_shards.min(shape.data_shards))
        {
            let _ = rx.push(&mut p, Duration::ZERO);
        }
        assert_eq!(rx.poll(Duration::ZERO).map(|f| f.data.to_vec()), Some(data));
    }
}
