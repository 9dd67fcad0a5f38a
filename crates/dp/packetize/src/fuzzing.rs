//! Entry points for the cargo-fuzz targets (`crates/fuzz/fuzz_targets/{native_header,reassembler}.rs`)
//! and for `tests/fuzz_corpus.rs`, which replays the committed corpora through the same functions.
//!
//! Both panic only when an invariant of this crate breaks (that is what the fuzzer looks for);
//! hostile input itself must never panic.

use std::collections::HashMap;
use std::collections::HashSet;
use std::time::Duration;

use strahl_seal::aead::Backend;
use strahl_seal::native::{Direction, RxOpener, TxSealer};

use crate::native::wire::{HEADER_LEN, PREFIX_LEN, Prefix, ShardHeader, TAG_LEN};
use crate::native::{FrameMeta, NativeConfig, NativePacketizer, Reassembler, ReassemblerConfig};

/// The fixed session secret of the harnesses.
pub const FUZZ_SECRET: [u8; 32] = [0x5A; 32];

/// Memory bound of the fuzzed reassembler: small, so eviction and over-budget paths run.
pub const FUZZ_MAX_BYTES: usize = 64 << 10;
const FUZZ_MAX_FRAME_BYTES: usize = 32 << 10;

fn fuzz_reassembler_config(max_frames: usize, first_frame_id: Option<u32>) -> ReassemblerConfig {
    ReassemblerConfig {
        stream: 0,
        first_frame_id,
        max_bytes: FUZZ_MAX_BYTES,
        max_frame_bytes: FUZZ_MAX_FRAME_BYTES,
        max_frames_in_flight: max_frames,
        frame_timeout: Duration::from_millis(100),
        reorder_grace: Duration::from_millis(2),
    }
}

/// `data` = clear prefix ‖ sealed header ‖ shard (unsealed). Checks that the parsers never panic,
/// that every header they accept re-encodes to the same bytes and obeys its invariants, then seals
/// `data[4..]` with the harness key and feeds it to a fresh reassembler (authenticated hostile
/// header path), which must stay within its memory bound.
pub fn fuzz_native_header(data: &[u8]) {
    if let Ok(p) = Prefix::decode(data) {
        let mut out = [0u8; PREFIX_LEN];
        p.encode(&mut out);
        assert_eq!(out[..], data[..PREFIX_LEN], "prefix round trip");
    }
    let body = data.get(PREFIX_LEN..).unwrap_or(&[]);
    if let Ok(h) = ShardHeader::decode(body) {
        let mut out = [0u8; HEADER_LEN];
        h.encode(&mut out);
        assert_eq!(out[..], body[..HEADER_LEN], "header round trip");
        assert_eq!(h.validate(), Ok(()));
        let len = h.wire_shard_len();
        assert!(len >= 1 && len <= h.shard_len as usize);
        assert!((h.shard_index as usize) < h.total_shards());
    }
    if body.len() > 4096 {
        return;
    }
    let mut sealer = TxSealer::new(&FUZZ_SECRET, Direction::HostToClient, Backend::DEFAULT);
    let opener = RxOpener::new(&FUZZ_SECRET, Direction::HostToClient, Backend::DEFAULT);
    let mut rx = Reassembler::new(fuzz_reassembler_config(4, None), opener).expect("valid config");
    let mut dgram = Vec::with_capacity(PREFIX_LEN + body.len() + TAG_LEN);
    dgram.extend_from_slice(&[0u8; PREFIX_LEN]);
    dgram.extend_from_slice(body);
    dgram.extend_from_slice(&[0u8; TAG_LEN]);
    seal_raw(
        &mut sealer,
        data.first().map_or(0, |b| b & 0x0F),
        &mut dgram,
    );
    let accepted = rx.push(&mut dgram, Duration::ZERO).is_ok();
    assert!(rx.held_bytes() <= FUZZ_MAX_BYTES);
    // Authentic bytes with a valid header and the right length must be accepted.
    if let Ok(h) = ShardHeader::decode(body)
        && body.len() - HEADER_LEN == h.wire_shard_len()
        && data[0] & 0x0F == 0
        && h.total_shards() * h.shard_len as usize <= FUZZ_MAX_FRAME_BYTES
    {
        assert!(
            accepted,
            "valid authenticated shard rejected: {:?}",
            rx.stats()
        );
    }
    while let Some(f) = rx.poll(Duration::from_secs(1)) {
        assert_eq!(
            f.data.len() as u64,
            ShardHeader::decode(body).map_or(0, |h| h.frame_len as u64)
        );
    }
}

/// Seal `dgram` (prefix space ‖ body ‖ tag space) in place as stream `stream`.
fn seal_raw(sealer: &mut TxSealer, stream: u8, dgram: &mut [u8]) {
    let len = dgram.len();
    let mut prefix = [0u8; PREFIX_LEN];
    Prefix::new(stream, sealer.next_packet_number()).encode(&mut prefix);
    dgram[..PREFIX_LEN].copy_from_slice(&prefix);
    let (aad, rest) = dgram.split_at_mut(PREFIX_LEN);
    let (_, tag) = sealer
        .seal(aad, &mut rest[..len - PREFIX_LEN - TAG_LEN])
        .expect("fresh key");
    dgram[len - TAG_LEN..].copy_from_slice(&tag);
}

/// Content of generated frame `fid`, byte `i` (the checker regenerates it).
fn au_byte(fid: u32, i: usize) -> u8 {
    (fid as u8).wrapping_mul(31) ^ (i as u8).wrapping_mul(7) ^ ((i >> 8) as u8)
}

/// Bytes read from the fuzz input; zeros once exhausted.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Most datagrams the simulated network holds (older ones are dropped).
const NET_CAP: usize = 512;
/// Most ops one input may run (bounds run time per input).
const MAX_OPS: usize = 4096;

/// Interprets `data` as a script: byte 0 picks the shard length and window; then ops send frames
/// from a real packetizer into a simulated network, deliver / drop / reorder / duplicate / corrupt
/// datagrams, inject authenticated hand-made shards, and advance time. After every op the
/// reassembler must hold ≤ its memory bound, deliver frame ids in increasing order, and deliver
/// only the exact bytes the packetizer sent for every frame no hand-made shard touched.
pub fn fuzz_reassembler(data: &[u8]) {
    let mut input = Input(data);
    let cfg_byte = input.u8();
    let shard_len = 64 + 2 * (cfg_byte as usize % 64);
    let max_frames = 1 + (cfg_byte as usize >> 6) * 3;
    let sealer = TxSealer::new(&FUZZ_SECRET, Direction::HostToClient, Backend::DEFAULT);
    let mut tx = NativePacketizer::new(NativeConfig::new(shard_len), sealer).expect("valid config");
    let opener = RxOpener::new(&FUZZ_SECRET, Direction::HostToClient, Backend::DEFAULT);
    let mut rx = Reassembler::new(fuzz_reassembler_config(max_frames, Some(0)), opener)
        .expect("valid config");
    let mut net: Vec<Vec<u8>> = Vec::new();
    let mut sent: HashMap<u32, usize> = HashMap::new();
    let mut touched: HashSet<u32> = HashSet::new();
    let mut now = Duration::ZERO;
    let mut last_delivered: Option<u64> = None;
    let mut pkt = vec![0u8; shard_len + crate::native::OVERHEAD];
    let mut ops = 0;
    while !input.is_empty() && ops < MAX_OPS {
        ops += 1;
        match input.u8() % 11 {
            0 => {
                let len = 1 + input.u16() as usize % 4096;
                let flags = input.u8();
                tx.set_fec_percent((flags >> 1) as u32 % 101);
                let fid = tx.next_frame_id();
                let au: Vec<u8> = (0..len).map(|i| au_byte(fid, i)).collect();
                let meta = FrameMeta {
                    pts_us: fid as u64 * 16_667,
                    keyframe: flags & 1 == 1,
                };
                let mut f = tx.frame(&au, meta).expect("frame within limits");
                while let Some(n) = f.next_packet(&mut pkt).expect("buffer fits") {
                    if net.len() >= NET_CAP {
                        net.remove(0);
                    }
                    net.push(pkt[..n].to_vec());
                }
                sent.insert(fid, len);
            }
            1 | 2 if !net.is_empty() => {
                let mut d = net.remove(0);
                let _ = rx.push(&mut d, now);
            }
            3 if !net.is_empty() => {
                net.remove(0);
            }
            4 if net.len() >= 2 => {
                let i = input.u8() as usize % net.len();
                let mut d = net.remove(i);
                let _ = rx.push(&mut d, now);
            }
            5 => now += Duration::from_micros(input.u16() as u64 * 16),
            6 if !net.is_empty() => {
                let mut d = net.remove(0);
                let i = input.u16() as usize % d.len();
                d[i] ^= 1 << (input.u8() % 8);
                let _ = rx.push(&mut d, now);
            }
            7 if !net.is_empty() => {
                let mut d = net[0].clone();
                let _ = rx.push(&mut d, now);
            }
            8 => {
                // Hand-made authenticated shard with a header derived from the input: mostly
                // valid, so consistency / window / budget logic runs behind authentication.
                let fid = tx.next_frame_id().wrapping_add((input.u8() as i8) as u32);
                let k = 1 + input.u8() as usize % 8;
                let m = input.u8() as usize % 4;
                let s = 64;
                let frame_len = (k - 1) * s + 1 + input.u8() as usize % s;
                let h = ShardHeader {
                    frame_id: fid,
                    shard_index: (input.u8() as usize % (k + m)) as u16,
                    data_shards: k as u16,
                    parity_shards: m as u16,
                    shard_len: s as u16,
                    frame_len: frame_len as u32,
                    flags: input.u8() & 1,
                    pts_us: 0,
                };
                let fill = input.u8();
                let mut d = vec![fill; PREFIX_LEN + HEADER_LEN + h.wire_shard_len() + TAG_LEN];
                let mut hb = [0u8; HEADER_LEN];
                h.encode(&mut hb);
                d[PREFIX_LEN..PREFIX_LEN + HEADER_LEN].copy_from_slice(&hb);
                seal_raw(tx.sealer_mut(), 0, &mut d);
                touched.insert(fid);
                let _ = rx.push(&mut d, now);
            }
            9 => {
                // Fully arbitrary authenticated body.
                let len = input.u8() as usize;
                let mut d = vec![0u8; PREFIX_LEN + len + TAG_LEN];
                for b in &mut d[PREFIX_LEN..PREFIX_LEN + len] {
                    *b = input.u8();
                }
                if let Ok(h) = ShardHeader::decode(&d[PREFIX_LEN..]) {
                    touched.insert(h.frame_id);
                }
                seal_raw(tx.sealer_mut(), 0, &mut d);
                let _ = rx.push(&mut d, now);
            }
            _ => {}
        }
        assert!(
            rx.held_bytes() <= FUZZ_MAX_BYTES,
            "memory bound broken: {}",
            rx.held_bytes()
        );
        assert!(rx.frames_in_flight() <= max_frames);
        drain(&mut rx, now, &sent, &touched, &mut last_delivered);
    }
    drain(
        &mut rx,
        now + Duration::from_secs(1),
        &sent,
        &touched,
        &mut last_delivered,
    );
    assert_eq!(
        rx.frames_in_flight(),
        0,
        "everything is given up or delivered after 1 s"
    );
}

fn drain(
    rx: &mut Reassembler,
    now: Duration,
    sent: &HashMap<u32, usize>,
    touched: &HashSet<u32>,
    last: &mut Option<u64>,
) {
    let mut n = 0;
    while let Some(f) = rx.poll(now) {
        n += 1;
        assert!(n <= 1024, "poll must not deliver unboundedly");
        assert!(last.is_none_or(|l| f.id > l), "frame ids must increase");
        *last = Some(f.id);
        let fid = f.id as u32;
        if touched.contains(&fid) {
            continue;
        }
        let len = *sent
            .get(&fid)
            .expect("an untouched delivered frame was sent by the packetizer");
        assert_eq!(f.data.len(), len, "frame {fid} length");
        assert!(
            f.data
                .iter()
                .enumerate()
                .all(|(i, &b)| b == au_byte(fid, i)),
            "frame {fid} content"
        );
    }
}
