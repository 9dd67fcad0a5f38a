//! The native pacing policy, pinned without a clock: a simulated tile (sending is instant) paces
//! one 720p120 frame through the pacer configurations the data plane builds —
//! `native_stream::native_pacer` for a native session, `media::video_pacer` for GameStream — and
//! checks when its last datagram may leave and how many leave back to back. The policy and its
//! measurement: docs/measurements.md §media path, "Native video pacing".

use strahl_dataplane::media::native_stream::{NATIVE_BURST_NS, NativeVideoStream, native_pacer};
use strahl_dataplane::media::ring::{Slot, UnitMeta};
use strahl_dataplane::media::stream::{StreamPacketizer, UnitCost};
use strahl_dataplane::media::{DEFAULT_LINK_BPS, SPREAD_PERMILLE, pattern, video_pacer};
use strahl_pacer::{Pacer, PacerConfig};

const FPS: u16 = 120;
const INTERVAL_NS: u64 = 1_000_000_000 / FPS as u64;
/// The bench's latency rate (`strahl-bench native --latency-mbps` default): 104 kB frames.
const KBPS: u32 = 100_000;

/// The wire cost of one pattern frame at `KBPS`, 1428 B shards (MTU 1500), 20 % FEC.
fn frame_cost() -> UnitCost {
    let mut s = NativeVideoStream::new(&[0x42; 32], 1428, 20).unwrap();
    let bytes = vec![7u8; pattern::frame_bytes(KBPS, FPS)];
    assert_eq!(bytes.len(), 104_166);
    let unit = Slot {
        meta: UnitMeta {
            len: bytes.len(),
            ..UnitMeta::default()
        },
        bytes,
    };
    let cost = s.begin(&unit).unwrap();
    assert_eq!(
        cost.packets,
        73 + 15,
        "k = ⌈104166 / 1428⌉, m = ⌈20 % of k⌉"
    );
    cost
}

/// Paces one frame of `cost` queued after the stream sat idle, as the tile does
/// (`frame_queued`, then `next_release` / `on_sent` until the backlog is gone): (when its last
/// datagram left after the frame was queued, the largest batch).
fn pace_one_frame(cfg: PacerConfig, cost: UnitCost) -> (u64, u64) {
    let t0 = 50_000_000;
    let mut pacer = Pacer::new(cfg, 0);
    let mut left = cost.backlog();
    pacer.frame_queued(t0, left, INTERVAL_NS);
    let (mut now, mut largest) = (t0, 0u64);
    while let Some(r) = pacer.next_release(now, left) {
        now = now.max(r.at_ns);
        let n = u64::from(r.packets).min(left.packets);
        let bytes = left.bytes / left.packets * n;
        pacer.on_sent(now, r.packets, bytes);
        left.packets -= n;
        left.bytes -= bytes;
        largest = largest.max(n);
    }
    (now - t0, largest)
}

/// Datagrams of this frame's average size in `NATIVE_BURST_NS` at `rate_bps` (at least 2: the
/// pacer's `MIN_BURST_BYTES`).
fn burst_packets(cost: UnitCost, rate_bps: u64) -> u64 {
    let per_packet_bits = cost.wire_bytes / cost.packets * 8;
    (u128::from(rate_bps) * u128::from(NATIVE_BURST_NS) / 1_000_000_000) as u64 / per_packet_bits
}

#[test]
fn a_native_frame_leaves_at_the_link_rate_in_small_bursts() {
    let cost = frame_cost();
    // 130 kB on the wire at 10 Gbit/s is 104 µs, its first 30 µs at once.
    let (took, largest) = pace_one_frame(native_pacer(DEFAULT_LINK_BPS), cost);
    assert!(took <= 150_000, "native frame took {took} ns");
    assert!(
        largest <= burst_packets(cost, DEFAULT_LINK_BPS),
        "batch of {largest}"
    );
}

/// The rate is the session's (the interface's speed), not a constant: at 1 Gbit/s the same
/// frame takes its ~1.07 ms of wire time, two datagrams at a time.
#[test]
fn a_native_session_is_paced_at_its_own_rate() {
    let cost = frame_cost();
    let (took, largest) = pace_one_frame(native_pacer(1_000_000_000), cost);
    assert!((900_000..=1_100_000).contains(&took), "1 Gbit/s: {took} ns");
    assert!(
        largest <= burst_packets(cost, 1_000_000_000).max(2),
        "batch of {largest}"
    );
}

/// GameStream keeps its spread: Moonlight's receive buffers are small, so the same frame still
/// takes about half its interval.
#[test]
fn gamestream_video_stays_spread_over_half_the_interval() {
    let (took, _) = pace_one_frame(video_pacer(KBPS), frame_cost());
    let window = INTERVAL_NS * u64::from(SPREAD_PERMILLE) / 1000;
    assert!(
        (window * 9 / 10..=window).contains(&took),
        "GameStream frame took {took} ns of a {window} ns window"
    );
}
