//! `strahl-bench pipeline`: the whole per-frame send path, packetize + FEC + seal, written into
//! caller-owned packet buffers exactly as the data plane does (one preallocated ring per
//! configuration, reused every iteration; nothing is sent).
//!
//! - `native`: `strahl/1`, S = 1408 (1500 MTU, IPv6), one GF(2^16) block per frame, AES-128-GCM
//!   per datagram with the default backend; data packets one by one, parity computed straight into
//!   its packet buffers (`parity_into`).
//! - `gamestream`: P = 1392 (the LAN packetSize), nanors GF(2^8) in ≤ 4 blocks, clear; and
//!   SS_ENC_VIDEO with P' = 1360 (what the client announces when video encryption is on).
//!   Frames beyond the 4-block capacity at the configured % are reported as `lowered_to` (sent
//!   with less parity) or `refused` (too large even at 1 %: the encoder must cap them) — never
//!   timed as if they had been sent at the configured parity.
//!
//! Frames of 64 KiB .. 4 MiB at 10/20/50 % parity, plus native at 0 % (no parity shards) to
//! isolate the per-packet cost of header + copy + AES-GCM from the FEC cost. Figures: median µs per frame, GiB/s of access
//! unit bytes at the median, ns per packet (median frame time / packets of the frame). The
//! configurations alternate round by round so the noise of this shared VM hits all alike; that
//! also means each frame starts with its access unit and packet ring out of cache, as a fresh
//! encoder output written into cold transport frames would. `warm_*` repeat each configuration
//! back to back (caches warm) to separate memory traffic from compute.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use strahl_packetize::PacketizeError;
use strahl_packetize::gamestream::{FrameType, GsFrameMeta, GsVideoConfig, GsVideoPacketizer};
use strahl_packetize::native::{FrameMeta, NativeConfig, NativePacketizer, OVERHEAD};
use strahl_seal::aead::Backend;
use strahl_seal::gamestream::VideoCipher;
use strahl_seal::native::{Direction, TxSealer};

use crate::Options;
use crate::report::{Plot, Stats};

const FRAMES: [usize; 4] = [64 << 10, 256 << 10, 1 << 20, 4 << 20];
const PCTS: [u32; 3] = [10, 20, 50];
/// 1500 MTU − 40 (IPv6) − 8 (UDP) − 44 (strahl/1 overhead).
const NATIVE_SHARD: usize = 1408;
/// ANNOUNCE packetSize on a LAN (`gamestream-host.md` §A14).
const GS_PACKET_SIZE: usize = 1392;
/// packetSize the client announces with SS_ENC_VIDEO (P − 32).
const GS_PACKET_SIZE_ENC: usize = 1360;
/// Wall time per configuration in a full run.
const TARGET_PER_CONFIG: Duration = Duration::from_millis(300);
const MIN_ITERS: usize = 7;
const MAX_ITERS: usize = 400;
const QUICK_ITERS: usize = 3;
const SECRET: [u8; 32] = [0x24; 32];
const RIKEY: [u8; 16] = [0x71; 16];

/// Deterministic incompressible-looking bytes.
fn fill(buf: &mut [u8], seed: u64) {
    let mut x = seed | 1;
    for b in buf {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
}

/// One measured configuration: a closure that packetizes one frame and returns its duration.
struct Case {
    protocol: &'static str,
    frame: usize,
    pct: u32,
    encrypted: bool,
    packets: usize,
    wire_bytes: usize,
    extra: Value,
    run: Box<dyn FnMut() -> Duration>,
}

/// `pct == 0` also drops the parity floor: packetize + seal only, the per-packet cost without FEC.
fn native_case(au: &[u8], pct: u32) -> Result<Case, String> {
    let mut cfg = NativeConfig::new(NATIVE_SHARD);
    cfg.fec_percent = pct;
    if pct == 0 {
        cfg.min_parity = 0;
    }
    let sealer = TxSealer::new(&SECRET, Direction::HostToClient, Backend::DEFAULT);
    let mut p = NativePacketizer::new(cfg, sealer).map_err(|e| e.to_string())?;
    let shape = p.shape(au.len()).map_err(|e| e.to_string())?;
    let stride = NATIVE_SHARD + OVERHEAD;
    let mut ring = vec![0u8; shape.packets() * stride];
    let k = shape.data_shards;
    let au = au.to_vec();
    let mut pts = 0u64;
    let wire = shape.packets() * stride - (shape.data_shards * NATIVE_SHARD - au.len());
    Ok(Case {
        protocol: "native",
        frame: au.len(),
        pct,
        encrypted: true,
        packets: shape.packets(),
        wire_bytes: wire,
        extra: json!({"data_shards": shape.data_shards, "parity_shards": shape.parity_shards, "shard_len": NATIVE_SHARD}),
        run: Box::new(move || {
            pts += 16_667;
            let t = Instant::now();
            let mut f = p
                .frame(
                    &au,
                    FrameMeta {
                        pts_us: pts,
                        keyframe: false,
                    },
                )
                .expect("frame fits");
            // Data packets one by one, parity computed straight into its packet buffers.
            let (data, parity) = ring.split_at_mut(k * stride);
            for buf in data.chunks_exact_mut(stride) {
                f.next_packet(buf).expect("buffer fits");
            }
            let mut refs: Vec<&mut [u8]> = parity.chunks_exact_mut(stride).collect();
            f.parity_into(&mut refs).expect("parity buffers fit");
            let d = t.elapsed();
            std::hint::black_box(&ring);
            d
        }),
    })
}

/// `Ok(Err(report))`: the frame is refused (reported, not timed).
fn gamestream_case(au: &[u8], pct: u32, encrypted: bool) -> Result<Result<Case, Value>, String> {
    let size = if encrypted {
        GS_PACKET_SIZE_ENC
    } else {
        GS_PACKET_SIZE
    };
    let cfg = GsVideoConfig {
        fec_percent: pct as u8,
        ..GsVideoConfig::new(size)
    };
    let cipher = encrypted.then(|| VideoCipher::new(&RIKEY));
    let mut p = GsVideoPacketizer::new(cfg, cipher).map_err(|e| e.to_string())?;
    let plan = match p.plan(au.len()) {
        Ok(plan) => plan,
        Err(PacketizeError::FrameTooLarge { max, .. }) => {
            return Ok(Err(json!({
                "protocol": "gamestream", "frame_bytes": au.len(), "fec_pct": pct, "encrypted": encrypted,
                "refused": true, "max_access_unit_bytes": max,
            })));
        }
        Err(e) => return Err(e.to_string()),
    };
    let stride = p.packet_len();
    let mut ring = vec![0u8; plan.packets() * stride];
    let au = au.to_vec();
    let mut secs = 0u64;
    let blocks: Vec<Value> = plan.block[..plan.blocks]
        .iter()
        .map(|b| json!({"data": b.data, "parity": b.parity, "fec_pct": b.fec_pct}))
        .collect();
    Ok(Ok(Case {
        protocol: "gamestream",
        frame: au.len(),
        pct,
        encrypted,
        packets: plan.packets(),
        wire_bytes: plan.packets() * stride,
        extra: json!({"blocks": blocks, "lowered_to": plan.lowered_to, "packet_size": size}),
        run: Box::new(move || {
            secs += 1;
            let meta = GsFrameMeta {
                frame_type: FrameType::P,
                capture_time: Duration::from_millis(secs * 16),
                host_latency_tenth_ms: 0,
            };
            let t = Instant::now();
            let mut f = p.frame(&au, meta).expect("planned frame fits");
            for buf in ring.chunks_exact_mut(stride) {
                f.next_packet(buf).expect("buffer fits");
            }
            let d = t.elapsed();
            std::hint::black_box(&ring);
            d
        }),
    }))
}

pub fn run(opts: &Options) -> Result<Value, String> {
    let mut au = vec![0u8; *FRAMES.iter().max().expect("frames")];
    fill(&mut au, 0x5EED);
    let mut cases = Vec::new();
    let mut refused = Vec::new();
    for &frame in &FRAMES {
        cases.push(native_case(&au[..frame], 0)?);
        for &pct in &PCTS {
            cases.push(native_case(&au[..frame], pct)?);
            for enc in [false, true] {
                match gamestream_case(&au[..frame], pct, enc)? {
                    Ok(c) => cases.push(c),
                    Err(r) => refused.push(r),
                }
            }
        }
    }
    // Size the run from the slowest case (one probe each, after a warm-up call).
    let mut slowest = Duration::ZERO;
    for c in cases.iter_mut() {
        (c.run)();
        slowest = slowest.max((c.run)());
    }
    let iters = if opts.quick {
        QUICK_ITERS
    } else {
        let per_round = slowest.max(Duration::from_micros(1)) * cases.len() as u32;
        let budget = TARGET_PER_CONFIG * cases.len() as u32;
        ((budget.as_nanos() / per_round.as_nanos()) as usize).clamp(MIN_ITERS, MAX_ITERS)
    };
    let mut samples: Vec<Vec<Duration>> = cases.iter().map(|_| Vec::with_capacity(iters)).collect();
    for _ in 0..iters {
        for (c, s) in cases.iter_mut().zip(samples.iter_mut()) {
            s.push((c.run)());
        }
    }
    // Warm figures: each case again, back to back, so its access unit and packet ring stay in
    // cache. The interleaved figures above are the realistic ones (a fresh encoder output into
    // cold transport frames); the gap between the two is memory traffic, not compute.
    let mut warm: Vec<Stats> = Vec::with_capacity(cases.len());
    for c in cases.iter_mut() {
        (c.run)();
        let s: Vec<Duration> = (0..iters).map(|_| (c.run)()).collect();
        warm.push(Stats::of(&s));
    }
    let mut results = Vec::new();
    let mut plot = Plot::new(
        "packetize + FEC + seal per frame",
        "frame bytes",
        "GiB/s (access-unit bytes)",
    );
    plot.log_x = true;
    let mut series: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    let mut native_ns_per_packet = Vec::new();
    for ((c, s), w) in cases.iter().zip(&samples).zip(&warm) {
        let st = Stats::of(s);
        let gib = st.gib_per_s(c.frame);
        let ns_pkt = st.median_us * 1000.0 / c.packets as f64;
        let warm_ns_pkt = w.median_us * 1000.0 / c.packets as f64;
        if c.protocol == "native" {
            native_ns_per_packet.push(json!({
                "frame_bytes": c.frame, "fec_pct": c.pct, "ns_per_packet": ns_pkt, "warm_ns_per_packet": warm_ns_pkt,
            }));
        }
        results.push(json!({
            "protocol": c.protocol,
            "frame_bytes": c.frame,
            "fec_pct": c.pct,
            "encrypted": c.encrypted,
            "packets": c.packets,
            "wire_bytes": c.wire_bytes,
            "median_us": st.median_us,
            "p99_us": st.p99_us,
            "min_us": st.min_us,
            "samples": st.samples,
            "gib_per_s": gib,
            "ns_per_packet": ns_pkt,
            "warm_median_us": w.median_us,
            "warm_gib_per_s": w.gib_per_s(c.frame),
            "warm_ns_per_packet": warm_ns_pkt,
            "shape": c.extra,
        }));
        let name = match (c.protocol, c.encrypted) {
            ("native", _) if c.pct == 0 => "native GCM only, no FEC".to_string(),
            ("native", _) => format!("native GF16+GCM {}%", c.pct),
            (_, false) => format!("GameStream {}%", c.pct),
            (_, true) => format!("GameStream+enc {}%", c.pct),
        };
        if c.protocol == "native" || c.pct == 20 || (!c.encrypted && c.pct == 50) {
            match series.iter_mut().find(|(n, _)| *n == name) {
                Some((_, pts)) => pts.push((c.frame as f64, gib)),
                None => series.push((name, vec![(c.frame as f64, gib)])),
            }
        }
    }
    for (name, pts) in series {
        plot.series(&name, pts);
    }
    if let Some(path) = &opts.plot {
        plot.write(path)?;
    }
    Ok(json!({
        "bench": "pipeline",
        "quick": opts.quick,
        "iterations": iters,
        "native_shard_len": NATIVE_SHARD,
        "gamestream_packet_size": {"clear": GS_PACKET_SIZE, "encrypted": GS_PACKET_SIZE_ENC},
        "results": results,
        "gamestream_refused": refused,
        "native_ns_per_packet": native_ns_per_packet,
    }))
}
