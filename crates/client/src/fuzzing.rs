//! Fuzz entry point `client_media` (feature `fuzzing`, off in shipped builds): the client's
//! receive path as the network sees it — prefix, seal, header, reassembler, FEC, verification,
//! loss accounting — through the sans-IO [`Receiver`] the shell (`stream.rs`) drives. Shared by
//! the cargo-fuzz target (`crates/fuzz/fuzz_targets/client_media.rs`) and the corpus replay
//! test (`tests/fuzz_corpus.rs`).
//!
//! Contract: [`fuzz_media`] accepts any bytes and never panics on its own account; it reads
//! them as a script (see the function) that mixes what an honest host sends (the real
//! packetizer and sealer, keyed with [`FUZZ_SECRET`]) with what an attacker can do: drop,
//! reorder, duplicate, replay, corrupt, inject unsealed garbage, and — holding the key, as a
//! broken host would — seal arbitrary headers and bodies. It asserts, after every step:
//! - nothing unauthenticated is ever accepted: a corrupted or replayed copy of a sealed
//!   datagram never raises `authenticated` (a bad tag or a replayed number is counted);
//! - while only the honest host holds the key, every delivered frame verifies, in order (its
//!   pts too, as the shell drains them), and no more frames or bytes are delivered than were
//!   sent;
//! - counters stay consistent (every datagram is counted once, latency samples ≤ frames) and
//!   every control message the receiver emits names its current epoch;
//! - frames in flight stay within the reassembler's window, and one second after the script
//!   nothing is left in flight.

use std::collections::VecDeque;
use std::time::Duration;

use strahl_native::msg::{Mode, Reconfigured, codec};
use strahl_packetize::native::wire::{HEADER_LEN, PREFIX_LEN, Prefix, ShardHeader, TAG_LEN};
use strahl_packetize::native::{
    CHECK_HEADER_LEN, FrameMeta, NativeConfig, NativePacketizer, OVERHEAD, Reassembler,
    ReassemblerConfig, fill_checkable,
};
use strahl_seal::aead::Backend;
use strahl_seal::native::{Direction, RxOpener, TxSealer};

use crate::recv::{Counters, Output, Receiver, RecvConfig};

/// The fixed session secret (host → client) of the harness.
pub const FUZZ_SECRET: [u8; 32] = [0xC1; 32];

/// Most steps one input runs (bounds the run time per input).
const MAX_OPS: usize = 2048;
/// Most datagrams the simulated network holds (older ones fall off).
const NET_CAP: usize = 256;
/// Sealed datagrams remembered for replay (and whether each authenticated when delivered).
const HISTORY_CAP: usize = 64;
/// Largest access unit the script makes: frames of tens of shards at the small shard sizes.
const MAX_AU: usize = 8192;
/// The honest host's pts step (60 fps): frame `seq` has pts `seq * PTS_STEP`.
const PTS_STEP: u64 = 16_667;
/// Largest frames the reassembler takes: small, so the per-frame refusal runs too.
const MAX_FRAME_BYTES: usize = 64 << 10;

/// What one input reached (the corpus test checks the seeds do what their names say).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MediaRun {
    pub counters: Counters,
    /// Frames the honest packetizer sent.
    pub frames_sent: u64,
    pub keyframe_requests: u64,
    pub loss_reports: u64,
    /// A key-holding step ran (hand-made sealed shards): verification may fail after it.
    pub forged_with_key: bool,
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

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.u8()).collect()
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Seals `d` (prefix space ‖ body ‖ tag space) in place as stream `stream` with the host's
/// next packet number: a datagram only a key holder can make.
fn seal_raw(sealer: &mut TxSealer, stream: u8, d: &mut [u8]) {
    let len = d.len();
    let mut prefix = [0u8; PREFIX_LEN];
    Prefix::new(stream, sealer.next_packet_number()).encode(&mut prefix);
    d[..PREFIX_LEN].copy_from_slice(&prefix);
    let (aad, rest) = d.split_at_mut(PREFIX_LEN);
    let (_, tag) = sealer
        .seal(aad, &mut rest[..len - PREFIX_LEN - TAG_LEN])
        .expect("a fresh key seals");
    d[len - TAG_LEN..].copy_from_slice(&tag);
}

/// The honest host's access unit `seq` of `len` bytes for `codec`: a checkable frame for
/// passthrough, an Annex-B start code and filler for H.264, filler otherwise.
fn honest_au(codec_bit: u64, seq: u64, len: usize) -> Vec<u8> {
    let mut au = vec![0u8; len];
    match codec_bit {
        codec::PASSTHROUGH => {
            fill_checkable(seq, &mut au).expect("len ≥ CHECK_HEADER_LEN");
        }
        codec::H264 => {
            for (i, b) in au.iter_mut().enumerate() {
                *b = ((seq as u8).wrapping_mul(31) ^ (i as u8).wrapping_mul(7)) | 0x80;
            }
            au[..4].copy_from_slice(&[0, 0, 0, 1]);
        }
        _ => au.fill(seq as u8),
    }
    au
}

/// The simulated run: host packetizer, network, receiver and the bookkeeping the checks need.
struct Sim {
    tx: NativePacketizer,
    rx: Receiver,
    codec: u64,
    shard_len: usize,
    max_frames: usize,
    now: Duration,
    net: VecDeque<Vec<u8>>,
    /// Sealed datagrams as sent (before the receiver opened them in place).
    history: VecDeque<Vec<u8>>,
    run: MediaRun,
    bytes_sent: u64,
    /// The last delivered frame's pts.
    last_pts: Option<u64>,
    out: Vec<Output>,
}

impl Sim {
    fn new(cfg_byte: u8) -> Sim {
        let codec_bit = [codec::PASSTHROUGH, codec::H264, codec::AV1][cfg_byte as usize % 3];
        let shard_len = 64 + 64 * ((cfg_byte as usize >> 2) % 8);
        let max_frames = [2, 4, 16, 64][(cfg_byte as usize >> 5) % 4];
        let mut ncfg = NativeConfig::new(shard_len);
        ncfg.fec_percent = 20;
        let sealer = TxSealer::new(&FUZZ_SECRET, Direction::HostToClient, Backend::DEFAULT);
        let tx = NativePacketizer::new(ncfg, sealer).expect("valid packetizer config");
        // The shell's configuration (stream.rs), with a smaller window and frame bound so the
        // refusal paths run.
        let rcfg = ReassemblerConfig {
            max_frames_in_flight: max_frames,
            max_frame_bytes: MAX_FRAME_BYTES,
            ..ReassemblerConfig::default()
        };
        let opener = RxOpener::new(&FUZZ_SECRET, Direction::HostToClient, Backend::DEFAULT);
        let reasm = Reassembler::new(rcfg, opener).expect("valid reassembler config");
        let rx = Receiver::new(RecvConfig::new(codec_bit, 0), reasm, Duration::ZERO);
        Sim {
            tx,
            rx,
            codec: codec_bit,
            shard_len,
            max_frames,
            now: Duration::ZERO,
            net: VecDeque::new(),
            history: VecDeque::new(),
            run: MediaRun::default(),
            bytes_sent: 0,
            last_pts: None,
            out: Vec::new(),
        }
    }

    fn send_frame(&mut self, len: usize, flags: u8) {
        self.tx.set_fec_percent(u32::from(flags >> 1) % 101);
        let seq = u64::from(self.tx.next_frame_id());
        let au = honest_au(self.codec, seq, len);
        let meta = FrameMeta {
            pts_us: seq * PTS_STEP,
            keyframe: flags & 1 == 1,
        };
        let mut pkt = vec![0u8; self.shard_len + OVERHEAD];
        let mut f = self.tx.frame(&au, meta).expect("frame within limits");
        while let Some(n) = f.next_packet(&mut pkt).expect("buffer fits a shard") {
            if self.net.len() >= NET_CAP {
                self.net.pop_front();
            }
            self.net.push_back(pkt[..n].to_vec());
        }
        self.run.frames_sent += 1;
        self.bytes_sent += len as u64;
    }

    /// Hands `d` to the receiver as it arrived; remembers the sealed original for replays.
    fn deliver(&mut self, d: Vec<u8>) {
        if self.history.len() >= HISTORY_CAP {
            self.history.pop_front();
        }
        self.history.push_back(d.clone());
        let mut d = d;
        self.rx.on_datagram(&mut d, self.now);
    }

    /// Delivers `d` and asserts it did not authenticate.
    fn deliver_forged(&mut self, mut d: Vec<u8>, what: &str) {
        let before = self.rx.counters().authenticated;
        self.rx.on_datagram(&mut d, self.now);
        assert_eq!(
            self.rx.counters().authenticated,
            before,
            "a {what} datagram authenticated"
        );
    }

    /// A sealed shard with a header made from the input (mostly valid, so the consistency,
    /// window and budget checks behind authentication run).
    fn forge_header(&mut self, input: &mut Input) {
        let fid = self
            .tx
            .next_frame_id()
            .wrapping_add((input.u8() as i8) as u32);
        let k = 1 + usize::from(input.u8()) % 12;
        let m = usize::from(input.u8()) % 4;
        let s = 64;
        let frame_len = (k - 1) * s + 1 + usize::from(input.u8()) % s;
        let h = ShardHeader {
            frame_id: fid,
            shard_index: (usize::from(input.u8()) % (k + m)) as u16,
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
        seal_raw(self.tx.sealer_mut(), 0, &mut d);
        self.run.forged_with_key = true;
        self.deliver(d);
    }

    fn poll(&mut self) {
        self.out.clear();
        self.rx.poll(self.now, &mut self.out);
        // As the shell does after every poll; an honest host's frames come out in order, each
        // with the pts it was sent with.
        let (mut last, honest, sent) = (
            self.last_pts,
            !self.run.forged_with_key,
            self.run.frames_sent,
        );
        self.rx.drain_delivered_pts(|pts| {
            if honest {
                assert!(last.is_none_or(|l| pts > l), "pts {pts} after {last:?}");
                assert!(
                    pts % PTS_STEP == 0 && pts / PTS_STEP < sent,
                    "pts {pts} never sent"
                );
            }
            last = Some(pts);
        });
        self.last_pts = last;
        let epoch = self.rx.epoch();
        for o in &self.out {
            match o {
                Output::Loss(r) => {
                    assert_eq!(r.epoch, epoch, "loss report of another epoch");
                    assert!(r.shard_loss_ppm <= 1_000_000);
                    assert!(r.frames_recovered <= r.frames_received);
                    self.run.loss_reports += 1;
                }
                Output::Keyframe(k) => {
                    assert_eq!(k.epoch, epoch, "keyframe request of another epoch");
                    self.run.keyframe_requests += 1;
                }
            }
        }
        self.check();
    }

    fn check(&self) {
        let c = self.rx.counters();
        assert!(
            c.authenticated + c.bad_tag + c.replayed <= c.datagrams,
            "a datagram counted twice: {c:?}"
        );
        assert!(c.recovered <= c.frames && c.keyframes <= c.frames);
        assert!(
            self.rx
                .latency()
                .is_none_or(|l| l.samples as u64 <= c.frames)
        );
        assert!(self.rx.frames_in_flight() <= self.max_frames);
        if !self.run.forged_with_key {
            assert_eq!(
                (c.verify_failures, c.seq_out_of_order),
                (0, 0),
                "an honest frame failed verification: {:?}",
                self.rx.first_failure()
            );
            assert!(
                c.frames <= self.run.frames_sent,
                "more frames delivered than sent: {c:?}"
            );
            assert!(c.bytes <= self.bytes_sent, "more bytes delivered than sent");
        }
    }
}

/// `client_media`: byte 0 picks the codec (passthrough, H.264, other), the shard length
/// (64..=512) and the reassembler's window; then each op byte (mod 12) is one step:
/// 0 the host sends a frame (len u16 → 1..=8192, flags: bit 0 keyframe, rest FEC %);
/// 1, 2 deliver the oldest datagram; 3 drop it; 4 deliver one chosen by index;
/// 5 time passes (u16 × 16 µs) and the receiver polls; 6 deliver the oldest with one bit
/// flipped (must not authenticate); 7 replay a delivered datagram (must not authenticate);
/// 8 unsealed garbage (len u8, bytes); 9 a prefix of the right stream and a near packet number
/// around garbage (a forged tag); 10 a key holder's hand-made header; 11 the host opens a new
/// epoch (`reconfigured`) at its next frame, or, with the key-holder flag, anywhere.
pub fn fuzz_media(data: &[u8]) -> MediaRun {
    let mut input = Input(data);
    let mut sim = Sim::new(input.u8());
    let mut ops = 0;
    while !input.is_empty() && ops < MAX_OPS {
        ops += 1;
        match input.u8() % 12 {
            0 => {
                let len = CHECK_HEADER_LEN.max(1 + usize::from(input.u16()) % MAX_AU);
                let flags = input.u8();
                sim.send_frame(len, flags);
            }
            1 | 2 => {
                if let Some(d) = sim.net.pop_front() {
                    sim.deliver(d);
                }
            }
            3 => {
                sim.net.pop_front();
            }
            4 if !sim.net.is_empty() => {
                let i = usize::from(input.u8()) % sim.net.len();
                if let Some(d) = sim.net.remove(i) {
                    sim.deliver(d);
                }
            }
            5 => {
                sim.now += Duration::from_micros(u64::from(input.u16()) * 16);
                sim.poll();
            }
            6 => {
                if let Some(mut d) = sim.net.pop_front() {
                    let i = usize::from(input.u16()) % d.len();
                    d[i] ^= 1 << (input.u8() % 8);
                    sim.deliver_forged(d, "corrupted");
                }
            }
            7 if !sim.history.is_empty() => {
                let i = usize::from(input.u8()) % sim.history.len();
                let d = sim.history[i].clone();
                sim.deliver_forged(d, "replayed");
            }
            8 => {
                let len = usize::from(input.u8());
                let d = input.bytes(len);
                sim.deliver_forged(d, "garbage");
            }
            9 => {
                let len = usize::from(input.u8());
                let mut d = vec![0u8; PREFIX_LEN];
                let pn = sim
                    .tx
                    .sealer_mut()
                    .next_packet_number()
                    .saturating_add(u64::from(input.u8()))
                    .saturating_sub(128);
                let mut p = [0u8; PREFIX_LEN];
                Prefix::new(0, pn).encode(&mut p);
                d.copy_from_slice(&p);
                d.extend(input.bytes(len));
                sim.deliver_forged(d, "forged-tag");
            }
            10 => sim.forge_header(&mut input),
            11 => {
                let any = input.u8();
                let next = u64::from(sim.tx.next_frame_id());
                let first_frame = if any & 1 == 1 {
                    sim.run.forged_with_key = true;
                    next.wrapping_add(u64::from(input.u16()))
                        .wrapping_sub(1 << 15)
                } else {
                    next
                };
                sim.rx.on_reconfigured(&Reconfigured {
                    epoch: sim.rx.epoch().wrapping_add(1),
                    first_frame,
                    bitrate_kbps: 20_000,
                    fec_percent: 20,
                    mode: Mode {
                        width: 1280,
                        height: 720,
                        fps: 60,
                    },
                    shard_len: 512,
                });
            }
            _ => {}
        }
        sim.check();
        // As the shell does between datagrams: poll when the receiver's deadline is due.
        if sim.rx.next_deadline() <= sim.now {
            sim.poll();
        }
    }
    // One second later every frame is delivered or given up; the deadline keeps moving on.
    sim.now += Duration::from_secs(1);
    sim.poll();
    assert_eq!(sim.rx.frames_in_flight(), 0, "frames in flight after 1 s");
    assert!(sim.rx.next_deadline() > sim.now, "a deadline in the past");
    sim.run.counters = sim.rx.counters().clone();
    sim.run
}
