//! Inter-packet gap error at the receiver, against the pacer's schedule (sans-IO: the input is a
//! list of timestamped video packets from [`super::rxstamp`]).
//!
//! Definition (what `ipg_error_us` in the JSON means):
//! - Frames: GameStream video packets grouped by `frameIndex`. Packet k of a frame is the one
//!   with RTP sequence number `seq_first + k` (mod 2^16), where `seq_first` is the frame's first
//!   packet (block 0, shard 0: data shards of block 0, its parity, block 1, … in sequence
//!   order). The frame's packet count N is the next frame's `seq_first − seq_first`, so a frame
//!   is *complete* when the next frame follows directly (`frameIndex + 1`), both first packets
//!   were captured and N distinct packets of it were; only complete frames are scored (the
//!   others are counted).
//! - The pacer's schedule (strahl-pacer, spread mode, `DEFAULT_SPREAD_PERMILLE` = 500): on
//!   `frame_queued` the rate becomes frame wire bits / (0.5 × frame interval), capped at the
//!   link rate; the tx tile releases the frame at that rate in batches covering its release
//!   granule (`VIDEO_RELEASE_NS` of link time), each centred on its packets' ideal times, so a
//!   perfect sender is off by up to half a granule either way — the batching is part of the
//!   error measured here, not excused by it. The ideal
//!   arrival of packet k is `t_first + k × wire_bits / rate`, the rate taken from the pacer
//!   itself (`Pacer::frame_queued` with the frame's N packets of its wire size, the stream's
//!   frame interval and the link cap), `t_first` the arrival of packet 0.
//! - Wire bits per packet: the captured IPv4 datagram + the 14-byte Ethernet header, × 8 (what a
//!   tx tile counting wire bytes paces; without the cap the unit cancels out: the ideal spacing
//!   is the spread window / N either way).
//! - Error of packet k (k ≥ 1; packet 0 is the anchor, error 0 by definition) = |actual −
//!   ideal|, in µs; the report gives p50/p99/p99.9 over every scored packet of every complete
//!   frame in the measurement window. `offset_removed` is the same after subtracting each
//!   frame's median signed error (how far packets stray from an evenly spaced line through the
//!   frame, whatever the frame's start did — e.g. a first batch released on saved-up credit).
//! - Timestamps are the kernel's receive time of each packet on the client's veth (AF_PACKET,
//!   SO_TIMESTAMPNS). A veth has no serialisation delay, so arrival = the sender's hand-off
//!   plus the kernel path; batched packets arrive back to back.
//! - A frame with no parity packet at all (every shard index < its block's data count) is
//!   counted as `frames_without_fec`: measured at the receiver, not taken from the host.

use strahl_pacer::{Backlog, Mode, Pacer, PacerConfig};

/// One captured GameStream video packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VideoPacket {
    /// Kernel receive time, ns (CLOCK_REALTIME).
    pub t_ns: i64,
    pub frame: u32,
    pub seq: u16,
    /// FEC block of the frame (0..=3).
    pub block: u8,
    /// Shard index within the block: < `data_shards` for data, ≥ for parity.
    pub shard: u16,
    pub data_shards: u16,
    /// IPv4 datagram + Ethernet header, bytes.
    pub wire_len: u16,
}

/// How the pacer was configured on the host (the schedule packets are compared to).
#[derive(Clone, Copy, Debug)]
pub struct Schedule {
    pub frame_interval_ns: u64,
    pub spread_permille: u32,
    pub link_bps: u64,
}

/// Quantiles of |actual − ideal|, µs.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Quantiles {
    pub p50_us: Option<f64>,
    pub p99_us: Option<f64>,
    pub p999_us: Option<f64>,
    pub max_us: Option<f64>,
}

impl Quantiles {
    fn of(mut v: Vec<f64>) -> Quantiles {
        if v.is_empty() {
            return Quantiles::default();
        }
        v.sort_by(f64::total_cmp);
        let pick = |q: f64| Some(v[((v.len() - 1) as f64 * q).round() as usize]);
        Quantiles {
            p50_us: pick(0.5),
            p99_us: pick(0.99),
            p999_us: pick(0.999),
            max_us: v.last().copied(),
        }
    }
}

/// The scored result.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct IpgReport {
    pub frames_scored: usize,
    pub packets_scored: usize,
    /// Frames in the window not scored (a packet missing in the capture, or no next frame).
    pub frames_incomplete: usize,
    pub frames_without_fec: usize,
    pub ipg_error_us: Quantiles,
    pub offset_removed: Quantiles,
    /// Median over scored frames of the pacer's rate for the frame, Mbit/s.
    pub median_frame_rate_mbps: Option<f64>,
    /// Median over scored frames of (last arrival − first) / ideal (N − 1) spacing: 1.0 is a
    /// frame spread exactly as scheduled, below 1 faster.
    pub median_spread_ratio: Option<f64>,
}

/// The pacer's rate for a frame of `packets` × `wire_bytes`, bits/s.
pub fn frame_rate_bps(s: &Schedule, packets: u64, wire_bytes: u64) -> u64 {
    let mut cfg = PacerConfig::new(s.link_bps);
    cfg.mode = Mode::Spread {
        permille: s.spread_permille,
    };
    let mut p = Pacer::new(cfg, 0);
    p.frame_queued(
        0,
        Backlog {
            packets,
            bytes: packets * wire_bytes,
        },
        s.frame_interval_ns,
    );
    p.effective_rate_bps()
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}

/// Scores the packets whose time lies in `[from_ns, to_ns]` (see the module header).
pub fn score(packets: &[VideoPacket], from_ns: i64, to_ns: i64, s: &Schedule) -> IpgReport {
    use std::collections::BTreeMap;
    let mut frames: BTreeMap<u32, Vec<VideoPacket>> = BTreeMap::new();
    for p in packets
        .iter()
        .filter(|p| p.t_ns >= from_ns && p.t_ns <= to_ns)
    {
        frames.entry(p.frame).or_default().push(*p);
    }
    let first_seq = |ps: &[VideoPacket]| {
        ps.iter()
            .find(|p| p.block == 0 && p.shard == 0)
            .map(|p| p.seq)
    };
    let mut r = IpgReport::default();
    let (mut errs, mut centred, mut rates, mut spreads) = (vec![], vec![], vec![], vec![]);
    for (&f, ps) in &frames {
        let next = frames.get(&f.wrapping_add(1));
        let (Some(s0), Some(s1)) = (first_seq(ps), next.and_then(|n| first_seq(n))) else {
            r.frames_incomplete += 1;
            continue;
        };
        let n = usize::from(s1.wrapping_sub(s0));
        let mut by_k: Vec<Option<VideoPacket>> = vec![None; n];
        for p in ps {
            let k = usize::from(p.seq.wrapping_sub(s0));
            if k < n {
                by_k[k] = Some(*p);
            }
        }
        if n < 2 || by_k.iter().any(Option::is_none) {
            r.frames_incomplete += 1;
            continue;
        }
        let got: Vec<VideoPacket> = by_k.into_iter().flatten().collect();
        if got.iter().all(|p| p.shard < p.data_shards) {
            r.frames_without_fec += 1;
        }
        let wire = got.iter().map(|p| u64::from(p.wire_len)).sum::<u64>() / n as u64;
        let rate = frame_rate_bps(s, n as u64, wire);
        let spacing_ns = (wire * 8) as f64 * 1e9 / rate as f64;
        let t0 = got[0].t_ns;
        let signed: Vec<f64> = got
            .iter()
            .enumerate()
            .skip(1)
            .map(|(k, p)| ((p.t_ns - t0) as f64 - k as f64 * spacing_ns) / 1e3)
            .collect();
        let mid = median(signed.clone()).unwrap_or(0.0);
        errs.extend(signed.iter().map(|e| e.abs()));
        centred.extend(signed.iter().map(|e| (e - mid).abs()));
        rates.push(rate as f64 / 1e6);
        spreads.push((got[n - 1].t_ns - t0) as f64 / ((n - 1) as f64 * spacing_ns));
        r.frames_scored += 1;
        r.packets_scored += n - 1;
    }
    r.ipg_error_us = Quantiles::of(errs);
    r.offset_removed = Quantiles::of(centred);
    r.median_frame_rate_mbps = median(rates);
    r.median_spread_ratio = median(spreads);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Schedule = Schedule {
        frame_interval_ns: 16_666_667,
        spread_permille: 500,
        link_bps: 2_000_000_000,
    };

    /// Frame `f` of `n` packets starting at seq `s0`, one block, `d` data shards, packet k at
    /// `t(k)`.
    fn frame(f: u32, s0: u16, n: u16, d: u16, t: impl Fn(u16) -> i64) -> Vec<VideoPacket> {
        (0..n)
            .map(|k| VideoPacket {
                t_ns: t(k),
                frame: f,
                seq: s0.wrapping_add(k),
                block: 0,
                shard: k,
                data_shards: d,
                wire_len: 1450,
            })
            .collect()
    }

    #[test]
    fn rate_is_the_spread_rate_capped_at_the_link() {
        // 100 packets of 1450 B over 8.33 ms: 139.2 Mbit/s.
        let r = frame_rate_bps(&S, 100, 1450);
        assert!((r as f64 - 139.2e6).abs() < 0.1e6, "{r}");
        // 1000 packets would need 1.392 Gbit/s; 2000 would need 2.78: capped at 2.
        assert_eq!(frame_rate_bps(&S, 2000, 1450), 2_000_000_000);
    }

    #[test]
    fn a_frame_on_schedule_scores_zero_and_a_late_packet_shows() {
        let spacing = 1450.0 * 8.0 * 1e9 / frame_rate_bps(&S, 100, 1450) as f64;
        let on = |k: u16| 1_000_000 + (k as f64 * spacing).round() as i64;
        let mut ps = frame(7, 65_500, 100, 80, on);
        // The next frame starts 100 seqs later, across the u16 wrap; its own successor is
        // missing, so it is not scored.
        ps.extend(frame(8, 65_500u16.wrapping_add(100), 100, 80, |k| {
            20_000_000 + i64::from(k) * 80_000
        }));
        let r = score(&ps, 0, i64::MAX, &S);
        assert_eq!(
            (r.frames_scored, r.packets_scored, r.frames_incomplete),
            (1, 99, 1)
        );
        assert!(r.ipg_error_us.p99_us.unwrap() < 0.01, "{r:?}");
        assert!((r.median_spread_ratio.unwrap() - 1.0).abs() < 1e-3);
        assert_eq!(r.frames_without_fec, 0);
        // Packet 50 arrives 30 µs late: the max shows it, the median does not.
        ps[50].t_ns += 30_000;
        let r = score(&ps, 0, i64::MAX, &S);
        assert!(
            (r.ipg_error_us.max_us.unwrap() - 30.0).abs() < 0.01,
            "{r:?}"
        );
        assert!(r.ipg_error_us.p50_us.unwrap() < 0.01);
    }

    #[test]
    fn a_burst_is_an_error_offset_removal_keeps_only_the_shape() {
        // All 100 packets at once (an unpaced burst): packet k is k × spacing early.
        let mut ps = frame(1, 0, 100, 80, |_| 5_000_000);
        ps.extend(frame(2, 100, 10, 8, |k| 30_000_000 + i64::from(k)));
        let r = score(&ps, 0, i64::MAX, &S);
        let spacing_us = 1450.0 * 8.0 * 1e6 / frame_rate_bps(&S, 100, 1450) as f64;
        assert!((r.ipg_error_us.max_us.unwrap() - 99.0 * spacing_us).abs() < 0.01);
        assert!(r.median_spread_ratio.unwrap() < 1e-6);
        // A frame uniformly 40 µs late stays at 0 once its offset is removed.
        let mut ps = frame(1, 0, 100, 80, |k| 5_000_000 + i64::from(k) * 83_333);
        for p in ps.iter_mut().skip(1) {
            p.t_ns += 40_000;
        }
        ps.extend(frame(2, 100, 10, 8, |k| 30_000_000 + i64::from(k)));
        let r = score(&ps, 0, i64::MAX, &S);
        assert!(r.ipg_error_us.p50_us.unwrap() > 39.0);
        assert!(r.offset_removed.p99_us.unwrap() < 0.5, "{r:?}");
    }

    #[test]
    fn missing_packets_window_and_fec_accounting() {
        let mut ps = frame(1, 0, 20, 20, |k| 1_000 + i64::from(k) * 1_000);
        ps.extend(frame(2, 20, 20, 16, |k| 100_000 + i64::from(k) * 1_000));
        ps.extend(frame(3, 40, 5, 4, |k| 200_000 + i64::from(k)));
        // Frame 1 has no parity (20 of 20 shards are data); frame 2 is complete with parity.
        let r = score(&ps, 0, i64::MAX, &S);
        assert_eq!((r.frames_scored, r.frames_without_fec), (2, 1));
        // A packet of frame 2 lost in the capture: only frame 1 is scored.
        let mut lossy = ps.clone();
        lossy.remove(25);
        assert_eq!(score(&lossy, 0, i64::MAX, &S).frames_scored, 1);
        // The window keeps frames 2 and 3 only: frame 2 is scored (3 follows it).
        let r = score(&ps, 100_000, i64::MAX, &S);
        assert_eq!((r.frames_scored, r.frames_incomplete), (1, 1));
    }
}
