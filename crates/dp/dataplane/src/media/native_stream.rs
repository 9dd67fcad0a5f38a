//! Native `strahl/1` video through the tx tile: [`NativeVideoStream`] is the
//! [`StreamPacketizer`] of a native session's video, wrapping
//! [`strahl_packetize::native::NativePacketizer`].
//!
//! Contract:
//! - One unit (an access unit or a checkable pattern frame) is one `strahl/1` frame: one GF(2¹⁶)
//!   block of k data + m parity shards, every datagram AES-128-GCM sealed with the session's
//!   host→client secret (`KeyMaterial::Native`, `docs/strahl1-wire.md` §Sealing). The frame id
//!   runs +1 per unit the tile begins, from 0.
//! - `begin` computes the whole frame's parity into the packetizer's reused scratch (before the
//!   tile schedules the frame, so pacing never waits for FEC mid-frame); `next_packet` copies one
//!   shard straight from the unit into the transport frame and seals it there. Nothing
//!   allocates per packet or per unit once the scratch has grown to the largest frame.
//! - FEC % changes ([`StreamPacketizer::set_fec_percent`]) apply from the next frame; every
//!   frame carries its own k and m, so a receiver needs no notice. m never falls below
//!   [`strahl_packetize::native::packetizer::DEFAULT_MIN_PARITY`] (no frame without FEC).
//! - The presentation time is the unit's capture time in µs (host CLOCK_MONOTONIC); the keyframe
//!   flag is the unit's.
//! - Pacing ([`native_pacer`]): a native frame leaves at the session's bottleneck rate, not
//!   spread over its frame interval as GameStream video is (Moonlight's small receive buffers
//!   need the spread; a native client drains its socket on its own thread and reassembles whole
//!   frames, so spreading only adds up to half a frame interval of latency). The rate is the
//!   one link rate the data plane knows — the egress interface's speed, else
//!   [`super::DEFAULT_LINK_BPS`] — because `strahl/1`'s hello carries no receive capacity; each
//!   session gets its own pacer at that rate and the tile's link pacer caps their sum. Bursts
//!   stay at [`NATIVE_BURST_NS`] of link time. The control plane may lower a session's rate
//!   (IPC `SessionPace`, its loss-driven policy) and lift it again; it never exceeds the link
//!   rate ([`pace_rate_bps`]).
//! - Epochs ([`EpochSwitch`]): a reconfigure (IPC `SessionReconfigure`) is asked of the
//!   session's encode thread, which makes every frame from its next one on in the new
//!   configuration (source and encoder re-made at the new size and rate, the first frame a
//!   keyframe) and marks that first unit by its capture time; the stream, on beginning the
//!   marked unit, applies the epoch's FEC % and reports `(epoch, frame id)` — the epoch's
//!   first frame F. Units made before the switch are all before F (the unit ring keeps order),
//!   so no frame of one configuration is ever sent in the other's epoch. The shard size cannot
//!   change mid-session (the packetizer's packet numbers and frame ids must run on).

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use strahl_pacer::{Mode, PacerConfig};
use strahl_packetize::PacketizeError;
use strahl_packetize::native::packetizer::NativeCursor;
use strahl_packetize::native::{FrameMeta, NativeConfig, NativePacketizer, OVERHEAD};
use strahl_seal::aead::Backend;
use strahl_seal::native::{Direction, TxSealer};

use super::MediaError;
use super::ring::Slot;
use super::stream::{FecBlock, StreamPacketizer, UnitCost, WIRE_OVERHEAD};

/// Token-bucket depth of a native video stream, as link time: the most that leaves back to back
/// at a frame's start (the bucket refills between frames) and the batch one kick carries. 30 µs
/// is the release granule GameStream video measured best on the 2-core VM (one copy-mode AF_XDP
/// kick costs ~10 µs, so smaller batches spend the tile in kicks; [`super::VIDEO_RELEASE_NS`],
/// docs/measurements.md §media path); at 10 Gbit/s it is 37.5 kB — ~25 datagrams at 1500 B MTU,
/// 11 at 3500 — far below a NIC ring or a veth's 1000-packet queue, so a frame never floods it.
pub const NATIVE_BURST_NS: u64 = 30_000;

/// How a native session's video is paced (see the module contract): [`Mode::Rate`] at
/// `rate_bps` (the session's bottleneck rate), bursts and kicks of [`NATIVE_BURST_NS`], no
/// catch-up credit — at link rate a tile that woke late has nothing to catch up on that the
/// link could have carried, and a catch-up burst is exactly the flood the small bucket avoids.
pub fn native_pacer(rate_bps: u64) -> PacerConfig {
    let mut p = PacerConfig::new(rate_bps);
    p.mode = Mode::Rate;
    p.burst_ns = NATIVE_BURST_NS;
    p.min_release_interval_ns = NATIVE_BURST_NS;
    p.catch_up_ns = 0;
    p
}

/// The pacing rate of a native session the control plane capped at `rate_kbps` (IPC
/// `SessionPace`; 0 = no cap) on a link of `link_bps`: never above the link.
pub fn pace_rate_bps(rate_kbps: u32, link_bps: u64) -> u64 {
    match rate_kbps {
        0 => link_bps,
        k => (u64::from(k) * 1000).min(link_bps),
    }
}

/// A new epoch's configuration, as the encode thread and the stream apply it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewEpoch {
    pub epoch: u32,
    pub width: u16,
    pub height: u16,
    pub fps: u16,
    pub bitrate_kbps: u32,
    pub fec_percent: u8,
}

/// The hand-offs of one session's epoch switch (see the module contract): server thread →
/// encode thread ([`Self::ask`], [`Self::take_wanted`]), encode thread → tx tile
/// ([`Self::mark`]), tx tile → server thread (the first frame, [`Self::take_reported`]). Each
/// side checks an atomic flag first, so a session without a switch in flight takes no lock.
#[derive(Debug, Default)]
pub struct EpochSwitch {
    wanted: AtomicBool,
    marked: AtomicBool,
    reported: AtomicBool,
    state: Mutex<EpochState>,
}

#[derive(Debug, Default)]
struct EpochState {
    wanted: Option<NewEpoch>,
    /// The epoch whose first unit has this capture time (ns).
    mark: Option<(NewEpoch, u64)>,
    /// (epoch, first frame id) not yet taken by the server thread.
    reported: Vec<(u32, u64)>,
}

impl EpochSwitch {
    fn state(&self) -> std::sync::MutexGuard<'_, EpochState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Asks for epoch `e` (a newer ask before the encode thread took this one replaces it).
    pub fn ask(&self, e: NewEpoch) {
        self.state().wanted = Some(e);
        self.wanted.store(true, Ordering::Release);
    }

    /// The epoch the encode thread should switch to before its next frame.
    pub fn take_wanted(&self) -> Option<NewEpoch> {
        if !self.wanted.swap(false, Ordering::Acquire) {
            return None;
        }
        self.state().wanted.take()
    }

    /// Epoch `e` starts with the unit captured at `capture_ns` (called before it is published).
    pub fn mark(&self, e: NewEpoch, capture_ns: u64) {
        self.state().mark = Some((e, capture_ns));
        self.marked.store(true, Ordering::Release);
    }

    /// The epoch a unit captured at `capture_ns` opens, if it is the first at or after the mark.
    fn opens(&self, capture_ns: u64) -> Option<NewEpoch> {
        if !self.marked.load(Ordering::Acquire) {
            return None;
        }
        let mut st = self.state();
        match st.mark {
            Some((e, at)) if capture_ns >= at => {
                st.mark = None;
                self.marked.store(false, Ordering::Release);
                Some(e)
            }
            _ => None,
        }
    }

    fn report(&self, epoch: u32, first_frame: u64) {
        self.state().reported.push((epoch, first_frame));
        self.reported.store(true, Ordering::Release);
    }

    /// The epochs opened since the last call: (epoch, first frame id).
    pub fn take_reported(&self) -> Vec<(u32, u64)> {
        if !self.reported.swap(false, Ordering::Acquire) {
            return Vec::new();
        }
        std::mem::take(&mut self.state().reported)
    }
}

/// Validates IPC `SessionReconfigure` `r` for a session sharing `shared` and asks its encode
/// thread for the epoch; why not, when it cannot be applied (the control plane's wait for the
/// first frame then fails and ends the session).
pub fn ask_epoch(
    shared: &super::Shared,
    r: &strahl_ipc::SessionReconfigure,
    max_payload: usize,
) -> Result<(), String> {
    if r.width == 0 || r.height == 0 || r.fps == 0 {
        return Err(format!(
            "session {}: epoch {} has a zero size or frame rate",
            r.id, r.epoch
        ));
    }
    if usize::from(r.shard_len) + OVERHEAD > max_payload {
        return Err(format!(
            "session {}: epoch {}: {} B shards exceed the {max_payload} B datagram",
            r.id, r.epoch, r.shard_len
        ));
    }
    log::info!(
        "session {}: epoch {} asked: {}x{}@{}, {} kbit/s, FEC {} %",
        r.id,
        r.epoch,
        r.width,
        r.height,
        r.fps,
        r.bitrate_kbps,
        r.fec_percent
    );
    shared.epoch.ask(NewEpoch {
        epoch: r.epoch,
        width: r.width,
        height: r.height,
        fps: r.fps,
        bitrate_kbps: r.bitrate_kbps.max(1),
        fec_percent: r.fec_percent,
    });
    Ok(())
}

/// The video stream of one native session (see the module contract).
pub struct NativeVideoStream {
    pk: NativePacketizer,
    cursor: Option<NativeCursor>,
    epochs: Option<std::sync::Arc<super::Shared>>,
}

impl NativeVideoStream {
    /// A stream sealing with `secret` (the host→client direction secret) in shards of
    /// `shard_len` bytes (the welcome's shard size) and `fec_percent` parity.
    pub fn new(secret: &[u8; 32], shard_len: usize, fec_percent: u8) -> Result<Self, MediaError> {
        let mut cfg = NativeConfig::new(shard_len);
        cfg.fec_percent = u32::from(fec_percent);
        let sealer = TxSealer::new(secret, Direction::HostToClient, Backend::DEFAULT);
        let pk = NativePacketizer::new(cfg, sealer)
            .map_err(|e| MediaError::Session(format!("strahl/1 packetizer: {e}")))?;
        Ok(Self {
            pk,
            cursor: None,
            epochs: None,
        })
    }

    /// Opens the epochs `shared`'s [`EpochSwitch`] marks (see the module contract).
    pub fn follow_epochs(mut self, shared: std::sync::Arc<super::Shared>) -> Self {
        self.epochs = Some(shared);
        self
    }

    /// Largest unit one frame carries (k ≤ 32768 shards at the floor parity).
    pub fn max_unit_bytes(&self) -> usize {
        self.pk.config().max_access_unit_bytes()
    }

    /// The packetizer's counters (frames, packets, parity lowered, refused).
    pub fn stats(&self) -> &strahl_packetize::stats::NativeTxStats {
        self.pk.stats()
    }
}

impl StreamPacketizer for NativeVideoStream {
    fn max_packet_len(&self) -> usize {
        self.pk.config().shard_len + OVERHEAD
    }

    fn begin(&mut self, unit: &Slot) -> Result<UnitCost, PacketizeError> {
        let lowered_before = self.pk.stats().parity_lowered;
        let meta = FrameMeta {
            pts_us: unit.meta.capture_ns / 1000,
            keyframe: unit.meta.keyframe,
        };
        let opens = self
            .epochs
            .as_ref()
            .and_then(|s| s.epoch.opens(unit.meta.capture_ns));
        if let Some(e) = opens {
            self.pk.set_fec_percent(u32::from(e.fec_percent));
        }
        let c = self.pk.begin(unit.unit(), meta)?;
        if let (Some(e), Some(s)) = (opens, &self.epochs) {
            s.epoch.report(e.epoch, u64::from(c.frame_id()));
        }
        let shape = c.shape();
        let packets = shape.packets() as u64;
        // Every datagram is S + 44 bytes except the last data shard, which carries only the
        // frame's remaining bytes (the padding up to S is implied, not sent).
        let full = (shape.shard_len + OVERHEAD) as u64;
        let last =
            (unit.unit().len() - (shape.data_shards - 1) * shape.shard_len + OVERHEAD) as u64;
        let wire_bytes = (packets - 1) * full + last + packets * WIRE_OVERHEAD;
        self.cursor = Some(c);
        Ok(UnitCost {
            packets,
            wire_bytes,
            parity_lowered: self.pk.stats().parity_lowered > lowered_before,
        })
    }

    fn next_packet(
        &mut self,
        unit: &Slot,
        buf: &mut [u8],
    ) -> Result<Option<usize>, PacketizeError> {
        let Some(c) = self.cursor.as_mut() else {
            return Ok(None);
        };
        let r = self.pk.write_next(c, unit.unit(), buf);
        if !matches!(r, Ok(Some(_))) {
            self.cursor = None;
        }
        r
    }

    fn set_fec_percent(&mut self, pct: u8) {
        self.pk.set_fec_percent(u32::from(pct));
    }

    fn next_fec_block(&self) -> Option<FecBlock> {
        let c = self.cursor.as_ref()?;
        if c.remaining() == 0 {
            return None;
        }
        // One block per frame: the knob may drop up to m of its packets.
        Some(FecBlock {
            index: 0,
            parity: u32::try_from(c.shape().parity_shards).unwrap_or(u32::MAX),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::ring::UnitMeta;
    use std::time::Duration;
    use strahl_packetize::native::{Reassembler, ReassemblerConfig};
    use strahl_seal::native::RxOpener;

    const SECRET: [u8; 32] = [0x42; 32];

    fn slot(bytes: Vec<u8>, keyframe: bool, capture_ns: u64) -> Slot {
        Slot {
            meta: UnitMeta {
                len: bytes.len(),
                keyframe,
                capture_ns,
                host_latency_tenth_ms: 0,
            },
            bytes,
        }
    }

    /// Units of several sizes (one shard, a short last shard, many shards) come out of a
    /// reassembler with the matching opener byte for byte, the cost announced at `begin` is what
    /// was written, and a FEC change applies from the next frame.
    #[test]
    fn units_arrive_through_the_reassembler_and_cost_what_begin_said() {
        let mut s = NativeVideoStream::new(&SECRET, 1408, 20).unwrap();
        let mut rx = Reassembler::new(
            ReassemblerConfig::default(),
            RxOpener::new(&SECRET, Direction::HostToClient, Backend::DEFAULT),
        )
        .unwrap();
        let mut buf = vec![0u8; s.max_packet_len()];
        for (i, len) in [1usize, 1408, 3000, 200_000].into_iter().enumerate() {
            if i == 2 {
                s.set_fec_percent(50);
            }
            let au: Vec<u8> = (0..len).map(|j| (j * 13 + i) as u8).collect();
            let unit = slot(au.clone(), i == 0, i as u64 * 8_333_333);
            let cost = s.begin(&unit).unwrap();
            let (mut n, mut wire) = (0u64, 0u64);
            let mut parity = None;
            while let Some(b) = s.next_fec_block() {
                parity = Some(b.parity);
                let len = s.next_packet(&unit, &mut buf).unwrap().unwrap();
                n += 1;
                wire += len as u64 + WIRE_OVERHEAD;
                rx.push(&mut buf[..len], Duration::ZERO).unwrap();
            }
            assert_eq!(s.next_packet(&unit, &mut buf).unwrap(), None);
            assert_eq!((cost.packets, cost.wire_bytes), (n, wire), "AU of {len} B");
            let k = len.div_ceil(1408) as u32;
            let want_m = (k * if i >= 2 { 50 } else { 20 }).div_ceil(100).max(2);
            assert_eq!(parity, Some(want_m), "AU of {len} B");
            let f = rx.poll(Duration::ZERO).expect("complete frame");
            // Expanded ids start 2³² above the wire's 0 (the reassembler's base).
            assert_eq!(f.id - (1 << 32), i as u64);
            assert_eq!(f.data, &au[..]);
            assert_eq!(f.keyframe, i == 0);
            assert_eq!(f.pts_us, i as u64 * 8_333);
        }
    }

    /// An epoch marked at capture time T opens at the first unit begun at or after T: units
    /// before it (already in the ring) keep the old FEC and no report; the opening unit gets
    /// the epoch's FEC % and its frame id is reported once.
    #[test]
    fn an_epoch_opens_at_the_marked_unit_with_its_fec_and_reports_its_frame_id() {
        let shared = std::sync::Arc::new(crate::media::Shared::new(1000));
        let mut s = NativeVideoStream::new(&SECRET, 1408, 20)
            .unwrap()
            .follow_epochs(shared.clone());
        let e = NewEpoch {
            epoch: 3,
            width: 640,
            height: 360,
            fps: 30,
            bitrate_kbps: 1000,
            fec_percent: 50,
        };
        shared.epoch.ask(e);
        assert_eq!(shared.epoch.take_wanted(), Some(e));
        assert_eq!(shared.epoch.take_wanted(), None, "taken once");
        shared.epoch.mark(e, 5_000);
        let mut buf = vec![0u8; s.max_packet_len()];
        let au = vec![7u8; 14_080]; // k = 10
        let mut parity = Vec::new();
        for (i, t) in [3_000u64, 4_000, 5_000, 6_000].into_iter().enumerate() {
            s.begin(&slot(au.clone(), false, t)).unwrap();
            parity.push(s.next_fec_block().unwrap().parity);
            while s
                .next_packet(&slot(au.clone(), false, t), &mut buf)
                .unwrap()
                .is_some()
            {}
            let reported = shared.epoch.take_reported();
            if i == 2 {
                assert_eq!(reported, [(3, 2)], "frame 2 opens epoch 3");
            } else {
                assert!(reported.is_empty(), "unit {i}: {reported:?}");
            }
        }
        assert_eq!(parity, [2, 2, 5, 5], "20 % of 10 (floor 2), then 50 %");
    }

    #[test]
    fn the_pace_rate_never_exceeds_the_link() {
        assert_eq!(pace_rate_bps(0, 10_000_000_000), 10_000_000_000);
        assert_eq!(pace_rate_bps(2_400_000, 10_000_000_000), 2_400_000_000);
        assert_eq!(pace_rate_bps(u32::MAX, 1_000_000_000), 1_000_000_000);
    }

    #[test]
    fn an_empty_unit_is_refused_and_a_bad_shard_size_refuses_the_session() {
        let mut s = NativeVideoStream::new(&SECRET, 1408, 20).unwrap();
        assert_eq!(
            s.begin(&slot(Vec::new(), false, 0)),
            Err(PacketizeError::EmptyAccessUnit)
        );
        assert!(s.next_fec_block().is_none());
        assert!(NativeVideoStream::new(&SECRET, 1407, 20).is_err());
    }
}
