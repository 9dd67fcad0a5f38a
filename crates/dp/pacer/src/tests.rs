use super::*;
use proptest::prelude::*;
use std::collections::VecDeque;

const MS: u64 = 1_000_000;
const S: u64 = 1_000_000_000;

/// A frame arriving at `at_ns` with these packet sizes.
#[derive(Debug, Clone)]
struct Frame {
    at_ns: u64,
    sizes: Vec<u64>,
}

/// One sent batch.
#[derive(Debug, Clone, Copy)]
struct Sent {
    at_ns: u64,
    packets: u32,
    bytes: u64,
}

/// Drive the pacer like the tx thread would: wait for each release (or the next frame arrival,
/// whichever comes first), send, report. Checks the per-release invariants as it goes.
fn simulate(p: &mut Pacer, frames: &[Frame], frame_interval_ns: u64, until_ns: u64) -> Vec<Sent> {
    let mut queue: VecDeque<u64> = VecDeque::new();
    let mut queued_bytes = 0u64;
    let mut next_frame = 0usize;
    let mut now = frames.first().map_or(0, |f| f.at_ns);
    let mut out = Vec::new();
    // Bounded: every iteration either consumes a frame or sends at least one packet.
    let total_packets: usize = frames.iter().map(|f| f.sizes.len()).sum();
    for _ in 0..(frames.len() + total_packets + 1) {
        let backlog = Backlog {
            packets: queue.len() as u64,
            bytes: queued_bytes,
        };
        let release = p.next_release(now, backlog);
        if let Some(r) = release {
            assert!(r.at_ns >= now, "release before the time it was asked at");
            assert!(
                r.packets >= 1 && r.packets <= p.config().max_batch_packets,
                "batch {r:?}"
            );
            // Asking again is side-effect free.
            assert_eq!(p.next_release(now, backlog), Some(r));
        }
        let arrival = frames.get(next_frame).map(|f| f.at_ns);
        let send_next = match (release, arrival) {
            (None, None) => break,
            (Some(r), Some(a)) => r.at_ns < a,
            (Some(_), None) => true,
            (None, Some(_)) => false,
        };
        if let (true, Some(r)) = (send_next, release) {
            if r.at_ns > until_ns {
                break;
            }
            now = r.at_ns;
            let n = (r.packets as usize).min(queue.len());
            let bytes: u64 = queue.drain(..n).sum();
            queued_bytes -= bytes;
            p.on_sent(now, n as u32, bytes);
            out.push(Sent {
                at_ns: now,
                packets: n as u32,
                bytes,
            });
        } else if let Some(a) = arrival {
            if a > until_ns {
                break;
            }
            now = now.max(a);
            let f = &frames[next_frame];
            next_frame += 1;
            queue.extend(f.sizes.iter().copied());
            queued_bytes += f.sizes.iter().sum::<u64>();
            p.frame_queued(
                now,
                Backlog {
                    packets: queue.len() as u64,
                    bytes: queued_bytes,
                },
                frame_interval_ns,
            );
        }
    }
    out
}

fn rate_of(sent: &[Sent], from_ns: u64, to_ns: u64) -> f64 {
    let bytes: u64 = sent
        .iter()
        .filter(|s| s.at_ns >= from_ns && s.at_ns < to_ns)
        .map(|s| s.bytes)
        .sum();
    bytes as f64 * 8.0 / ((to_ns - from_ns) as f64 / 1e9)
}

/// Sizes from a small deterministic generator (xorshift), in `lo..=hi`.
fn sizes(n: usize, lo: u64, hi: u64, seed: u64) -> Vec<u64> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            lo + x % (hi - lo + 1)
        })
        .collect()
}

#[test]
fn saturated_long_run_rate_within_one_percent() {
    for &(rate, lo, hi) in &[
        (10_000_000u64, 1400u64, 1400u64),
        (1_000_000_000, 1400, 1400),
        (1_000_000_000, 64, 1500),
        (10_000_000_000, 200, 1400),
        (40_000_000_000, 8900, 8900),
    ] {
        let mut p = Pacer::new(PacerConfig::new(rate), 0);
        // Enough data for ~1.2 s at this rate, all queued at t = 0.
        let avg = (lo + hi) / 2;
        let n = (rate / 8 / avg * 12 / 10) as usize;
        let frames = [Frame {
            at_ns: 0,
            sizes: sizes(n, lo, hi, rate),
        }];
        let sent = simulate(&mut p, &frames, 16 * MS, S);
        // Skip the first 10 ms (the initial full bucket) and measure the rest of the second.
        let got = rate_of(&sent, 10 * MS, S);
        let err = (got - rate as f64).abs() / rate as f64;
        assert!(
            err < 0.01,
            "rate {rate} sizes {lo}..{hi}: got {got:.0} ({:.3} %)",
            err * 100.0
        );
    }
}

#[test]
fn conformance_never_ahead_of_the_bucket() {
    // Uniform sizes: the estimate is exact, so sent bits never exceed burst + rate·t.
    let rate = 2_000_000_000u64;
    let mut p = Pacer::new(PacerConfig::new(rate), 0);
    let burst_bits = (rate as u128 * DEFAULT_BURST_NS as u128 / 1_000_000_000) as u64;
    let frames: Vec<Frame> = (0..60)
        .map(|i| Frame {
            at_ns: i * 16_666_667,
            sizes: vec![1400; 2000],
        })
        .collect();
    let sent = simulate(&mut p, &frames, 16_666_667, S);
    let mut total_bits = 0u64;
    for s in &sent {
        total_bits += s.bytes * 8;
        let allowed = burst_bits as u128 + rate as u128 * s.at_ns as u128 / 1_000_000_000;
        assert!(
            total_bits as u128 <= allowed,
            "at {} ns sent {total_bits} > {allowed}",
            s.at_ns
        );
    }
    assert!(sent.len() > 1000);
}

#[test]
fn batch_respects_cap_and_granularity() {
    // 10 Gbit/s with 1400 B: 1.12 µs per packet, so 5 µs granularity → batches of 5.
    let mut p = Pacer::new(PacerConfig::new(10_000_000_000), 0);
    let frames = [Frame {
        at_ns: 0,
        sizes: vec![1400; 20_000],
    }];
    let sent = simulate(&mut p, &frames, 16 * MS, S);
    // After the initial bucket and before the queue runs dry (the last batch takes the rest).
    let steady = &sent[2..sent.len() - 1];
    assert!(steady.iter().all(|s| s.packets == 5), "{:?}", &sent[..10]);
    // The first release spends the full bucket: 100 µs at 10 Gbit/s = 125 kB = 89 packets, but
    // never more than the batch cap.
    assert_eq!(sent[0].packets, DEFAULT_MAX_BATCH_PACKETS);
    // A small cap holds.
    let mut cfg = PacerConfig::new(10_000_000_000);
    cfg.max_batch_packets = 3;
    let mut p = Pacer::new(cfg, 0);
    let sent = simulate(&mut p, &frames, 16 * MS, 10 * MS);
    assert!(sent.iter().all(|s| s.packets <= 3));
    // At 1 Gbit/s packets are 11.2 µs apart: one per release, evenly spaced.
    let mut p = Pacer::new(PacerConfig::new(1_000_000_000), 0);
    let sent = simulate(&mut p, &frames, 16 * MS, 10 * MS);
    let gaps: Vec<u64> = sent
        .windows(2)
        .skip(20)
        .map(|w| w[1].at_ns - w[0].at_ns)
        .collect();
    assert!(gaps.iter().all(|&g| g == 11_200), "{:?}", &gaps[..5]);
}

#[test]
fn idle_does_not_accumulate_credit() {
    let rate = 1_000_000_000u64;
    let mut p = Pacer::new(PacerConfig::new(rate), 0);
    let backlog = Backlog {
        packets: 10_000,
        bytes: 10_000 * 1400,
    };
    // After an hour idle, the credit is one bucket: 100 µs at 1 Gbit/s = 12,500 B → 8 packets.
    let r = p.next_release(3600 * S, backlog).unwrap();
    assert_eq!(r.at_ns, 3600 * S);
    assert_eq!(r.packets, 8);
    assert_eq!(p.credit_bits(3600 * S), 100_000);
    p.on_sent(3600 * S, 8, 8 * 1400);
    // The next packet waits for its own credit.
    let r = p.next_release(3600 * S, backlog).unwrap();
    assert!(r.at_ns > 3600 * S);
}

#[test]
fn debt_carries_across_frames() {
    // 8 Mbit/s = 1 byte per µs.
    let mut p = Pacer::new(PacerConfig::new(8_000_000), 0);
    // The backlog said 1000 B/packet, the caller actually sent 10,000 B (e.g. a mis-estimate).
    let r = p
        .next_release(
            0,
            Backlog {
                packets: 1,
                bytes: 1000,
            },
        )
        .unwrap();
    assert_eq!(
        r,
        Release {
            at_ns: 0,
            packets: 1
        }
    );
    p.on_sent(0, 1, 10_000);
    // Bucket was MIN_BURST_BYTES (3000 B > 100 µs · 1 B/µs): debt 7000 B.
    assert_eq!(p.credit_bits(0), -7000 * 8);
    // A new frame does not forgive the debt: its first 1000 B packet waits 8 ms.
    p.frame_queued(
        1000,
        Backlog {
            packets: 1,
            bytes: 1000,
        },
        16 * MS,
    );
    let r = p
        .next_release(
            1000,
            Backlog {
                packets: 1,
                bytes: 1000,
            },
        )
        .unwrap();
    assert_eq!(r.at_ns, 8 * MS);
}

#[test]
fn rate_change_mid_stream() {
    let mut p = Pacer::new(PacerConfig::new(1_000_000_000), 0);
    let frames = [Frame {
        at_ns: 0,
        sizes: vec![1200; 200_000],
    }];
    // Run to 500 ms, switch to 300 Mbit/s, run to 1 s.
    let first = simulate(&mut p, &frames, 16 * MS, 500 * MS);
    let sent_first: usize = first.iter().map(|s| s.packets as usize).sum();
    let rest = Frame {
        at_ns: 500 * MS,
        sizes: vec![1200; 200_000 - sent_first],
    };
    p.set_link_rate(500 * MS, 300_000_000);
    let second = simulate(&mut p, &[rest], 16 * MS, S);
    let r1 = rate_of(&first, 10 * MS, 500 * MS);
    let r2 = rate_of(&second, 510 * MS, S);
    assert!((r1 / 1e9 - 1.0).abs() < 0.01, "{r1}");
    assert!((r2 / 3e8 - 1.0).abs() < 0.01, "{r2}");
    // Lowering the rate clamps stored credit to the new (smaller) bucket.
    let mut p = Pacer::new(PacerConfig::new(10_000_000_000), 0);
    p.set_link_rate(0, 1_000_000_000);
    assert_eq!(p.credit_bits(0), 100_000); // 100 µs at 1 Gbit/s
}

#[test]
fn spread_mode_uses_the_window_and_caps_at_link_rate() {
    let interval = 16_666_667u64; // 60 fps
    let mut cfg = PacerConfig::new(10_000_000_000);
    cfg.mode = Mode::Spread { permille: 500 };
    // 200 packets of 1000 B = 1.6 Mbit per frame → 192 Mbit/s over half the interval.
    let mut p = Pacer::new(cfg, 0);
    let frames: Vec<Frame> = (0..10)
        .map(|i| Frame {
            at_ns: i * interval,
            sizes: vec![1000; 200],
        })
        .collect();
    let sent = simulate(&mut p, &frames, interval, S);
    assert_eq!(sent.iter().map(|s| s.packets).sum::<u32>(), 2000);
    for f in 1..10u64 {
        let start = f * interval;
        let in_frame: Vec<&Sent> = sent
            .iter()
            .filter(|s| s.at_ns >= start && s.at_ns < start + interval)
            .collect();
        let last = in_frame.last().unwrap().at_ns - start;
        // The bucket left from the idle half lets the first ~3 kB go at once; the rest is spread
        // evenly so the frame ends at the window's end (8.33 ms), not earlier, not later.
        assert!(last <= interval / 2 + 50_000, "frame {f} ends at {last} ns");
        assert!(
            last >= interval / 2 - 300_000,
            "frame {f} ends early at {last} ns"
        );
        assert_eq!(in_frame.iter().map(|s| s.packets).sum::<u32>(), 200);
    }
    // A frame too large for the window at the link rate goes at the link rate.
    let mut cfg = PacerConfig::new(1_000_000_000);
    cfg.mode = Mode::Spread { permille: 500 };
    let mut p = Pacer::new(cfg, 0);
    let big = [Frame {
        at_ns: 0,
        sizes: vec![1250; 8000],
    }]; // 80 Mbit: 80 ms at 1 Gbit/s
    p.frame_queued(
        0,
        Backlog {
            packets: 8000,
            bytes: 10_000_000,
        },
        interval,
    );
    assert_eq!(p.effective_rate_bps(), 1_000_000_000);
    let sent = simulate(&mut p, &big, interval, S);
    let end = sent.last().unwrap().at_ns;
    assert!((end as f64 / 80e6 - 1.0).abs() < 0.01, "ended at {end}");
}

#[test]
fn jumbo_packet_larger_than_the_bucket_still_goes() {
    // 1 Mbit/s: bucket = MIN_BURST_BYTES = 3000 B, packets of 9000 B.
    let mut p = Pacer::new(PacerConfig::new(1_000_000), 0);
    let frames = [Frame {
        at_ns: 0,
        sizes: vec![9000; 20],
    }];
    let sent = simulate(&mut p, &frames, 16 * MS, 10 * S);
    assert_eq!(sent.len(), 20);
    // Each 72 kbit packet costs 72 ms of credit at 1 Mbit/s.
    let gaps: Vec<u64> = sent
        .windows(2)
        .skip(1)
        .map(|w| w[1].at_ns - w[0].at_ns)
        .collect();
    assert!(gaps.iter().all(|&g| g == 72 * MS), "{gaps:?}");
}

#[test]
fn empty_backlog_and_time_going_backwards() {
    let mut p = Pacer::new(PacerConfig::new(1_000_000_000), 10 * MS);
    assert_eq!(p.next_release(10 * MS, Backlog::default()), None);
    p.on_sent(10 * MS, 8, 8 * 1400);
    // A clock reading earlier than the last one accrues nothing and releases no earlier.
    let b = Backlog {
        packets: 1,
        bytes: 1400,
    };
    let r = p.next_release(5 * MS, b).unwrap();
    assert!(r.at_ns >= 10 * MS);
    assert_eq!(r, p.next_release(10 * MS, b).unwrap());
    // A zero rate is clamped, not a division by zero.
    p.set_link_rate(10 * MS, 0);
    assert_eq!(p.effective_rate_bps(), MIN_RATE_BPS);
    assert!(p.next_release(10 * MS, b).is_some());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Random rates, packet sizes, frame arrivals and modes: releases never precede the time they
    /// were asked at, batches respect the cap, the bucket is never overdrawn by more than one
    /// batch's mis-estimate, and everything queued is eventually sent.
    #[test]
    fn invariants_under_random_traffic(rate_mbps in 1u64..20_000, lo in 64u64..1500, span in 0u64..1500,
                                       nframes in 1usize..30, per_frame in 1usize..300,
                                       fps in prop_oneof![Just(30u64), Just(60), Just(120), Just(240)],
                                       spread in prop_oneof![Just(None), (1u32..=1000).prop_map(Some)],
                                       max_batch in 1u32..100, seed in any::<u64>()) {
        let rate = rate_mbps * 1_000_000;
        let hi = lo + span;
        let interval = S / fps;
        let mut cfg = PacerConfig::new(rate);
        cfg.max_batch_packets = max_batch;
        if let Some(permille) = spread {
            cfg.mode = Mode::Spread { permille };
        }
        let mut p = Pacer::new(cfg, 0);
        let frames: Vec<Frame> = (0..nframes)
            .map(|i| Frame { at_ns: i as u64 * interval, sizes: sizes(per_frame, lo, hi, seed ^ i as u64) })
            .collect();
        let total: u64 = frames.iter().map(|f| f.sizes.iter().sum::<u64>()).sum();
        let sent = simulate(&mut p, &frames, interval, u64::MAX);
        prop_assert_eq!(sent.iter().map(|s| s.bytes).sum::<u64>(), total);
        // In rate mode the link rate bounds the cumulative bytes at every send.
        if spread.is_none() {
            let burst_bits = (rate as u128 * DEFAULT_BURST_NS as u128 / 1_000_000_000).max(MIN_BURST_BYTES as u128 * 8);
            let slack = u128::from(max_batch) * u128::from(hi) * 8;
            let mut cum = 0u128;
            for s in &sent {
                cum += u128::from(s.bytes) * 8;
                let allowed = burst_bits + rate as u128 * u128::from(s.at_ns) / 1_000_000_000 + slack;
                prop_assert!(cum <= allowed, "at {} sent {} > {}", s.at_ns, cum, allowed);
            }
        }
    }

    /// Saturated at a random rate with random sizes: the long-run rate is within 1 %.
    #[test]
    fn long_run_rate(rate_mbps in 5u64..20_000, lo in 64u64..1500, span in 0u64..1500, seed in any::<u64>()) {
        let rate = rate_mbps * 1_000_000;
        let hi = lo + span;
        let mut p = Pacer::new(PacerConfig::new(rate), 0);
        // 200 ms of data, measured from 10 ms to 190 ms.
        let n = (rate / 8 / ((lo + hi) / 2) / 5) as usize + 10;
        let frames = [Frame { at_ns: 0, sizes: sizes(n, lo, hi, seed) }];
        let sent = simulate(&mut p, &frames, 16 * MS, 190 * MS);
        let got = rate_of(&sent, 10 * MS, 190 * MS);
        prop_assert!((got / rate as f64 - 1.0).abs() < 0.01, "rate {} got {}", rate, got);
    }
}

/// Sends one spread frame with a sender that wakes `late_ns` after every `every`-th release;
/// returns (end of the frame relative to its start, packets in the frame's first release).
fn late_sender_frame(cfg: PacerConfig, late_ns: u64, every: usize) -> (u64, u32) {
    let interval = 8_333_333u64; // 120 fps
    let mut p = Pacer::new(cfg, 0);
    // Idle before the frame: credit saved up to the depth must not become the frame's start.
    let start = 5 * MS;
    let mut left = 700u64; // 700 × 1400 B ≈ 7.8 Mbit → 1.9 Gbit/s over half the interval
    p.frame_queued(
        start,
        Backlog {
            packets: left,
            bytes: left * 1400,
        },
        interval,
    );
    let (mut now, mut first, mut end) = (start, None, start);
    for k in 0..10_000usize {
        let Some(r) = p.next_release(
            now,
            Backlog {
                packets: left,
                bytes: left * 1400,
            },
        ) else {
            break;
        };
        now = r.at_ns + if k % every == every - 1 { late_ns } else { 0 };
        // A late sender sends what the bucket allows by the time it woke.
        let r = p
            .next_release(
                now,
                Backlog {
                    packets: left,
                    bytes: left * 1400,
                },
            )
            .unwrap();
        let n = u64::from(r.packets).min(left);
        first.get_or_insert(n as u32);
        p.on_sent(now, n as u32, n * 1400);
        left -= n;
        end = now;
    }
    assert_eq!(left, 0, "frame not sent");
    (end - start, first.unwrap())
}

#[test]
fn catch_up_depth_keeps_the_rate_of_a_late_sender_and_the_frame_start_short() {
    let mut cfg = PacerConfig::new(2_000_000_000);
    cfg.mode = Mode::Spread { permille: 500 };
    cfg.burst_ns = 10_000;
    cfg.min_release_interval_ns = 15_000;
    let window = 8_333_333 / 2;
    // On time, the frame fills its window with or without catch-up.
    let (end, first) = late_sender_frame(cfg, 0, 1);
    assert!(end <= window && end > window * 95 / 100, "on time: {end}");
    assert!(first <= 2, "start burst {first} packets");
    // Late by 30 µs every 4th release: without catch-up the credit missed is lost for good.
    let (slow, _) = late_sender_frame(cfg, 30_000, 4);
    assert!(slow > window * 115 / 100, "no catch-up ended at {slow}");
    cfg.catch_up_ns = 250_000;
    let (end, first) = late_sender_frame(cfg, 30_000, 4);
    assert!(end <= window + 30_000, "catch-up ended at {end}");
    // Idle credit before the frame is still cut to the burst: the first release is one release
    // granule (15 µs at 1.9 Gbit/s = 3 packets), not the ~40 packets 250 µs of credit would be.
    assert!(first <= 3, "start burst {first} packets");
}

#[test]
fn a_slow_spread_frame_starts_with_one_packet_then_keeps_the_spacing() {
    // 270 × 1434 B over half of 16.7 ms ≈ 372 Mbit/s: 10 µs of burst is a third of a packet, so
    // the frame starts with one packet (not the two MIN_BURST_BYTES allows) after any idle time.
    let mut cfg = PacerConfig::new(4_000_000_000);
    cfg.mode = Mode::Spread { permille: 500 };
    cfg.burst_ns = 10_000;
    cfg.catch_up_ns = 250_000;
    cfg.min_release_interval_ns = 15_000;
    let mut p = Pacer::new(cfg, 0);
    let interval = 16_666_667u64;
    let backlog = |n: u64| Backlog {
        packets: n,
        bytes: n * 1434,
    };
    let start = 20 * MS;
    p.frame_queued(start, backlog(270), interval);
    let spacing = 1434.0 * 8.0 * 1e9 / p.effective_rate_bps() as f64;
    let r0 = p.next_release(start, backlog(270)).unwrap();
    assert_eq!((r0.at_ns, r0.packets), (start, 1));
    p.on_sent(start, 1, 1434);
    let r1 = p.next_release(start, backlog(269)).unwrap();
    assert_eq!(r1.packets, 1);
    let gap = (r1.at_ns - start) as f64;
    assert!(
        (gap / spacing - 1.0).abs() < 0.01,
        "second packet {gap} ns after the first, spacing {spacing}"
    );
}

#[test]
fn a_fast_spread_frames_batches_are_centred_on_the_even_line() {
    // 1 Gbit/s GameStream at 120 fps: ~750 packets of 1464 B spread over half of 8.33 ms
    // (≈ 2.1 Gbit/s, a packet every ~5.6 µs), released in 30 µs granules (6 packets a kick).
    // A punctual sender: each packet's time against the frame's evenly spaced line anchored at
    // its first packet stays within half a granule, early and late alike — not up to a whole
    // granule early.
    let mut cfg = PacerConfig::new(10_000_000_000);
    cfg.mode = Mode::Spread { permille: 500 };
    cfg.burst_ns = 10_000;
    cfg.catch_up_ns = 250_000;
    cfg.min_release_interval_ns = 30_000;
    let mut p = Pacer::new(cfg, 0);
    let (n, size) = (750u64, 1464u64);
    let start = 5 * MS;
    p.frame_queued(
        start,
        Backlog {
            packets: n,
            bytes: n * size,
        },
        8_333_333,
    );
    let spacing = size as f64 * 8.0 * 1e9 / p.effective_rate_bps() as f64;
    let (mut now, mut left, mut k) = (start, n, 0u64);
    let (mut errors, mut first) = (Vec::new(), None);
    while left > 0 {
        let r = p
            .next_release(
                now,
                Backlog {
                    packets: left,
                    bytes: left * size,
                },
            )
            .unwrap();
        now = now.max(r.at_ns);
        let sent = u64::from(r.packets).min(left);
        // The line is anchored at the first packet, as a receiver sees it.
        let t0 = *first.get_or_insert(now);
        for _ in 0..sent {
            errors.push((now - t0) as f64 - k as f64 * spacing);
            k += 1;
        }
        p.on_sent(now, sent as u32, sent * size);
        left -= sent;
    }
    let worst = errors.iter().fold(0.0f64, |m, e| m.max(e.abs()));
    assert!(
        worst <= 15_000.0 + spacing,
        "worst {worst} ns, spacing {spacing}"
    );
    // Centred: the mean offset is within one spacing of the line (released when a granule's
    // credit is complete, without the half-granule start, it would be ~half a granule early).
    let mean = errors.iter().sum::<f64>() / errors.len() as f64;
    assert!(mean.abs() <= spacing, "mean {mean} ns, spacing {spacing}");
}
