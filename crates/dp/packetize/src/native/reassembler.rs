//! `strahl/1` receiver: hostile datagrams in, complete access units out, in frame order.
//!
//! Contract:
//! - [`Reassembler::push`] takes one datagram (decrypted in place, so `&mut`) and `now`. It
//!   authenticates first ([`RxOpener`], replay window included); only an authenticated, valid
//!   header can make it allocate, and then only within [`ReassemblerConfig::max_bytes`] (the sum of
//!   every frame buffer and shard bitmap it holds, checked before each growth; buffers are reused
//!   across frames, so the steady state allocates nothing). Every rejected datagram increments
//!   exactly one anomaly counter in [`ReassemblerStats`] and is reported as an [`Anomaly`].
//! - Shards of one frame must agree on k, m, S, frame length, flags and pts; the first accepted
//!   shard fixes them ([`Anomaly::Inconsistent`] otherwise).
//! - FEC runs only when a data shard is missing and ≥ k shards are present; a frame with all data
//!   shards is delivered without touching the decoder.
//! - [`Reassembler::poll`] delivers complete frames in increasing frame id. Frames are given up
//!   lowest-first: an incomplete frame after [`ReassemblerConfig::frame_timeout`]; any frame older
//!   than a complete one once [`ReassemblerConfig::reorder_grace`] has passed since that one
//!   completed; the oldest when more than `max_frames_in_flight` frames are open or when memory
//!   is needed for a newer frame. A shard of a frame already delivered or given up is `Late`.
//! - Delivered frames are borrowed from the reassembler's buffer (no copy); the borrow ends before
//!   the next call.

use std::time::Duration;

use strahl_fec::gf16::Gf16Decoder;
use strahl_seal::SealError;
use strahl_seal::native::RxOpener;

use super::wire::{HEADER_LEN, OVERHEAD, PN_BITS, PREFIX_LEN, Prefix, ShardHeader, TAG_LEN};
use crate::ConfigError;
use crate::recycle::recycle_mut;
use crate::stats::ReassemblerStats;

/// Default memory bound: 64 MiB holds several 4 MiB keyframes with 50 % parity in flight.
pub const DEFAULT_MAX_BYTES: usize = 64 << 20;
/// Default largest frame ((k + m) · S bytes): 16 MiB, a 10 MiB AU at 50 % parity with margin.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 16 << 20;
/// Frames open at once. At 240 fps, 16 frames are 67 ms: more than any LAN reorder, fewer than
/// the 100 ms timeout would otherwise keep.
pub const DEFAULT_MAX_FRAMES_IN_FLIGHT: usize = 16;
/// An incomplete frame is given up this long after its first shard arrived. 100 ms is several
/// frame intervals at 60 fps: beyond it, the frame is useless to a low-latency decoder.
pub const DEFAULT_FRAME_TIMEOUT: Duration = Duration::from_millis(100);
/// How long an older, incomplete frame may still complete after a newer frame did. Frames are
/// sent in order, data first, so on a LAN a newer complete frame means the older one's shards
/// are lost unless reordered by a few packets (microseconds); 2 ms covers paced bursts.
pub const DEFAULT_REORDER_GRACE: Duration = Duration::from_millis(2);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReassemblerConfig {
    pub stream: u8,
    /// The first frame id to expect. `Some(0)` for a session's receiver (every `strahl/1`
    /// session's packetizer starts at frame 0), so frames reordered at the very start are not
    /// mistaken for late ones; `None` joins a running stream at the first frame seen.
    pub first_frame_id: Option<u32>,
    pub max_bytes: usize,
    pub max_frame_bytes: usize,
    pub max_frames_in_flight: usize,
    pub frame_timeout: Duration,
    pub reorder_grace: Duration,
}

impl Default for ReassemblerConfig {
    fn default() -> Self {
        ReassemblerConfig {
            stream: 0,
            first_frame_id: Some(0),
            max_bytes: DEFAULT_MAX_BYTES,
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            max_frames_in_flight: DEFAULT_MAX_FRAMES_IN_FLIGHT,
            frame_timeout: DEFAULT_FRAME_TIMEOUT,
            reorder_grace: DEFAULT_REORDER_GRACE,
        }
    }
}

impl ReassemblerConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_frames_in_flight == 0 || self.max_frames_in_flight > 1024 {
            return Err(ConfigError("max_frames_in_flight must be 1..=1024"));
        }
        if self.max_frame_bytes > self.max_bytes {
            return Err(ConfigError("max_frame_bytes must not exceed max_bytes"));
        }
        if self.stream > 0x0F {
            return Err(ConfigError("stream id must fit 4 bits"));
        }
        Ok(())
    }
}

/// Why a datagram was dropped (each maps to one [`ReassemblerStats`] counter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anomaly {
    ShortDatagram,
    BadPrefix,
    WrongStream,
    Forged,
    Replayed,
    BadHeader,
    BadLength,
    Inconsistent,
    Duplicate,
    Late,
    OverBudget,
    WindowFull,
    DecodeFailed,
}

/// What an accepted datagram did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    /// Stored; the frame still needs more shards.
    Stored,
    /// This shard completed its frame (ready for [`Reassembler::poll`] once older frames are out).
    Completed { frame_id: u64, recovered: bool },
    /// The frame was already complete; the extra shard was not needed.
    Surplus,
}

/// A delivered access unit, borrowed from the reassembler.
#[derive(Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    /// Expanded (64-bit) frame id; the wire carries its low 32 bits.
    pub id: u64,
    pub pts_us: u64,
    pub keyframe: bool,
    /// FEC rebuilt at least one data shard.
    pub recovered: bool,
    pub data: &'a [u8],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Free,
    Filling,
    Complete,
}

struct Slot {
    state: State,
    id: u64,
    /// Geometry fixed by the first accepted shard (`shard_index` meaningless).
    hdr: ShardHeader,
    first_seen: Duration,
    complete_at: Duration,
    received: usize,
    data_received: usize,
    recovered: bool,
    present: Vec<bool>,
    buf: Vec<u8>,
}

impl Slot {
    fn empty() -> Slot {
        Slot {
            state: State::Free,
            id: 0,
            hdr: ShardHeader {
                frame_id: 0,
                shard_index: 0,
                data_shards: 1,
                parity_shards: 0,
                shard_len: 0,
                frame_len: 0,
                flags: 0,
                pts_us: 0,
            },
            first_seen: Duration::ZERO,
            complete_at: Duration::ZERO,
            received: 0,
            data_received: 0,
            recovered: false,
            present: Vec::new(),
            buf: Vec::new(),
        }
    }

    fn held(&self) -> usize {
        self.buf.capacity() + self.present.capacity()
    }

    fn release_memory(&mut self) {
        self.buf = Vec::new();
        self.present = Vec::new();
    }
}

/// Which rule gave a frame up.
#[derive(Clone, Copy)]
enum GiveUp {
    Timeout,
    Superseded,
    Window,
    Memory,
    /// Counted as [`Anomaly::DecodeFailed`] already.
    Broken,
}

/// The `strahl/1` reassembler (one per received stream).
pub struct Reassembler {
    cfg: ReassemblerConfig,
    opener: RxOpener,
    decoder: Gf16Decoder,
    slots: Vec<Slot>,
    /// Next frame id to deliver (64-bit expanded); `None` until the first authenticated shard when
    /// no first frame id is configured.
    next_deliver: Option<u64>,
    /// Slot of the last accepted shard (most shards in a row belong to one frame).
    last_slot: usize,
    shard_ptrs: Vec<&'static mut [u8]>,
    stats: ReassemblerStats,
}

/// First expanded frame id: 2^32 above zero so ids a little before the first one stay positive.
const FIRST_ID_BASE: u64 = 1 << 32;

impl Reassembler {
    pub fn new(cfg: ReassemblerConfig, opener: RxOpener) -> Result<Reassembler, ConfigError> {
        cfg.validate()?;
        let slots = (0..cfg.max_frames_in_flight)
            .map(|_| Slot::empty())
            .collect();
        let next_deliver = cfg.first_frame_id.map(|f| FIRST_ID_BASE + f as u64);
        Ok(Reassembler {
            cfg,
            opener,
            decoder: Gf16Decoder::new(),
            slots,
            next_deliver,
            last_slot: 0,
            shard_ptrs: Vec::new(),
            stats: ReassemblerStats::default(),
        })
    }

    pub fn stats(&self) -> &ReassemblerStats {
        &self.stats
    }

    pub fn config(&self) -> &ReassemblerConfig {
        &self.cfg
    }

    /// Bytes of frame buffers and bitmaps held now (always ≤ `max_bytes`).
    pub fn held_bytes(&self) -> usize {
        self.slots.iter().map(Slot::held).sum()
    }

    /// Frames open (filling or complete, not yet delivered).
    pub fn frames_in_flight(&self) -> usize {
        self.slots.iter().filter(|s| s.state != State::Free).count()
    }

    /// Process one datagram.
    pub fn push(&mut self, dgram: &mut [u8], now: Duration) -> Result<Accepted, Anomaly> {
        self.stats.datagrams += 1;
        let r = self.push_inner(dgram, now);
        let st = &mut self.stats;
        match r {
            Ok(_) => st.shards_accepted += 1,
            Err(a) => {
                *match a {
                    Anomaly::ShortDatagram => &mut st.short_datagram,
                    Anomaly::BadPrefix => &mut st.bad_prefix,
                    Anomaly::WrongStream => &mut st.wrong_stream,
                    Anomaly::Forged => &mut st.forged,
                    Anomaly::Replayed => &mut st.replayed,
                    Anomaly::BadHeader => &mut st.bad_header,
                    Anomaly::BadLength => &mut st.bad_length,
                    Anomaly::Inconsistent => &mut st.inconsistent,
                    Anomaly::Duplicate => &mut st.duplicate,
                    Anomaly::Late => &mut st.late,
                    Anomaly::OverBudget => &mut st.over_budget,
                    Anomaly::WindowFull => &mut st.window_full,
                    Anomaly::DecodeFailed => &mut st.decode_failed,
                } += 1
            }
        }
        r
    }

    fn push_inner(&mut self, dgram: &mut [u8], now: Duration) -> Result<Accepted, Anomaly> {
        // The smallest datagram carries one shard byte (a 1-byte last data shard).
        if dgram.len() < OVERHEAD + 1 {
            return Err(Anomaly::ShortDatagram);
        }
        let prefix = Prefix::decode(dgram).map_err(|_| Anomaly::BadPrefix)?;
        if prefix.stream != self.cfg.stream {
            return Err(Anomaly::WrongStream);
        }
        let pn = self
            .opener
            .expand_packet_number(prefix.pn_low as u64, PN_BITS);
        let len = dgram.len();
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&dgram[len - TAG_LEN..]);
        let (aad, rest) = dgram.split_at_mut(PREFIX_LEN);
        let sealed = &mut rest[..len - PREFIX_LEN - TAG_LEN];
        self.opener
            .open(pn, aad, sealed, &tag)
            .map_err(|e| match e {
                SealError::Replayed { .. } => Anomaly::Replayed,
                _ => Anomaly::Forged,
            })?;
        let hdr = ShardHeader::decode(sealed).map_err(|_| Anomaly::BadHeader)?;
        let shard = &sealed[HEADER_LEN..];
        if shard.len() != hdr.wire_shard_len() {
            return Err(Anomaly::BadLength);
        }
        let (k, s) = (hdr.data_shards as usize, hdr.shard_len as usize);
        if hdr.total_shards() * s > self.cfg.max_frame_bytes {
            return Err(Anomaly::OverBudget);
        }
        let next = *self
            .next_deliver
            .get_or_insert(FIRST_ID_BASE + hdr.frame_id as u64);
        let id = expand_frame_id(hdr.frame_id, next);
        if id < next {
            return Err(Anomaly::Late);
        }
        let si = match self.find_slot(id) {
            Some(i) => {
                let g = &self.slots[i].hdr;
                if (
                    g.data_shards,
                    g.parity_shards,
                    g.shard_len,
                    g.frame_len,
                    g.flags,
                    g.pts_us,
                ) != (
                    hdr.data_shards,
                    hdr.parity_shards,
                    hdr.shard_len,
                    hdr.frame_len,
                    hdr.flags,
                    hdr.pts_us,
                ) {
                    return Err(Anomaly::Inconsistent);
                }
                i
            }
            None => self.open_frame(id, &hdr, now)?,
        };
        self.last_slot = si;
        let slot = &mut self.slots[si];
        let idx = hdr.shard_index as usize;
        if slot.present[idx] {
            return Err(Anomaly::Duplicate);
        }
        slot.present[idx] = true;
        slot.received += 1;
        if slot.state == State::Complete {
            return Ok(Accepted::Surplus);
        }
        let dst = &mut slot.buf[idx * s..(idx + 1) * s];
        dst[..shard.len()].copy_from_slice(shard);
        dst[shard.len()..].fill(0);
        if idx < k {
            slot.data_received += 1;
        }
        if slot.data_received == k {
            slot.state = State::Complete;
            slot.complete_at = now;
            return Ok(Accepted::Completed {
                frame_id: id,
                recovered: false,
            });
        }
        if slot.received < k {
            return Ok(Accepted::Stored);
        }
        // ≥ k shards, some data missing: rebuild the data shards.
        let m = hdr.parity_shards as usize;
        let missing = k - slot.data_received;
        let mut shards: Vec<&mut [u8]> = recycle_mut(std::mem::take(&mut self.shard_ptrs));
        shards.extend(slot.buf[..(k + m) * s].chunks_exact_mut(s));
        let r = self
            .decoder
            .reconstruct(k, m, &mut shards, &slot.present[..k + m]);
        self.shard_ptrs = recycle_mut(shards);
        if r.is_err() {
            // Cannot happen with ≥ k present shards of one consistent frame; drop the frame
            // rather than deliver something wrong.
            self.give_up(si, GiveUp::Broken);
            return Err(Anomaly::DecodeFailed);
        }
        slot.data_received = k;
        slot.recovered = true;
        slot.state = State::Complete;
        slot.complete_at = now;
        self.stats.shards_recovered += missing as u64;
        Ok(Accepted::Completed {
            frame_id: id,
            recovered: true,
        })
    }

    fn find_slot(&self, id: u64) -> Option<usize> {
        let hit = |s: &Slot| s.state != State::Free && s.id == id;
        if self.slots.get(self.last_slot).is_some_and(hit) {
            return Some(self.last_slot);
        }
        self.slots.iter().position(hit)
    }

    /// Lowest open frame (slot index).
    fn lowest_open(&self) -> Option<usize> {
        (0..self.slots.len())
            .filter(|&i| self.slots[i].state != State::Free)
            .min_by_key(|&i| self.slots[i].id)
    }

    /// Give up slot `i`'s frame and everything before it.
    fn give_up(&mut self, i: usize, why: GiveUp) {
        let id = self.slots[i].id;
        self.slots[i].state = State::Free;
        let st = &mut self.stats;
        match why {
            GiveUp::Timeout => st.frames_abandoned_timeout += 1,
            GiveUp::Superseded => st.frames_abandoned_superseded += 1,
            GiveUp::Window => st.frames_abandoned_window += 1,
            GiveUp::Memory => st.frames_abandoned_memory += 1,
            GiveUp::Broken => {}
        }
        self.advance_past(id);
    }

    /// Move `next_deliver` to `id + 1`, counting frame ids never seen in between.
    fn advance_past(&mut self, id: u64) {
        if let Some(next) = self.next_deliver
            && id >= next
        {
            self.stats.frames_skipped += id - next;
            self.next_deliver = Some(id + 1);
        }
    }

    /// Claim a slot and memory for a new frame `id`.
    fn open_frame(&mut self, id: u64, hdr: &ShardHeader, now: Duration) -> Result<usize, Anomaly> {
        let n = hdr.total_shards();
        let need_buf = n * hdr.shard_len as usize;
        if need_buf + n > self.cfg.max_bytes {
            return Err(Anomaly::OverBudget);
        }
        if self.frames_in_flight() == self.slots.len() {
            let lo = self.lowest_open().expect("all slots are open");
            if id < self.slots[lo].id {
                return Err(Anomaly::WindowFull);
            }
            self.give_up(lo, GiveUp::Window);
        }
        // Best fit among free slots: the smallest that needs no growth, else the largest.
        let free = |s: &Slot| s.state == State::Free;
        let fits = |s: &Slot| s.buf.capacity() >= need_buf && s.present.capacity() >= n;
        let chosen = (0..self.slots.len())
            .filter(|&i| free(&self.slots[i]) && fits(&self.slots[i]))
            .min_by_key(|&i| self.slots[i].held())
            .or_else(|| {
                (0..self.slots.len())
                    .filter(|&i| free(&self.slots[i]))
                    .max_by_key(|&i| self.slots[i].held())
            })
            .expect("a slot was freed above");
        let grow = |s: &Slot| {
            need_buf.saturating_sub(s.buf.capacity()) + n.saturating_sub(s.present.capacity())
        };
        while self.held_bytes() + grow(&self.slots[chosen]) > self.cfg.max_bytes {
            // Release idle buffers first, then the oldest open frames older than this one.
            let idle = (0..self.slots.len())
                .filter(|&i| i != chosen && free(&self.slots[i]) && self.slots[i].held() > 0)
                .max_by_key(|&i| self.slots[i].held());
            if let Some(i) = idle {
                self.slots[i].release_memory();
                continue;
            }
            match self.lowest_open() {
                Some(lo) if self.slots[lo].id < id => {
                    self.give_up(lo, GiveUp::Memory);
                    self.slots[lo].release_memory();
                }
                _ => return Err(Anomaly::OverBudget),
            }
        }
        let slot = &mut self.slots[chosen];
        if slot.buf.len() < need_buf {
            slot.buf.reserve_exact(need_buf - slot.buf.len());
            slot.buf.resize(need_buf, 0);
        }
        if slot.present.len() < n {
            slot.present.reserve_exact(n - slot.present.len());
            slot.present.resize(n, false);
        }
        slot.present[..n].fill(false);
        slot.state = State::Filling;
        slot.id = id;
        slot.hdr = *hdr;
        slot.first_seen = now;
        slot.received = 0;
        slot.data_received = 0;
        slot.recovered = false;
        Ok(chosen)
    }

    /// Deliver the next frame if one is ready, giving up frames as the rules in the module doc say.
    pub fn poll(&mut self, now: Duration) -> Option<Frame<'_>> {
        let deliver = loop {
            let lo = self.lowest_open()?;
            let (state, id, first_seen, complete_at) = {
                let s = &self.slots[lo];
                (s.state, s.id, s.first_seen, s.complete_at)
            };
            let next = self.next_deliver.unwrap_or(id);
            match state {
                State::Complete if id == next || now >= complete_at + self.cfg.reorder_grace => {
                    break lo;
                }
                State::Complete => return None,
                _ => {
                    if now >= first_seen + self.cfg.frame_timeout {
                        self.give_up(lo, GiveUp::Timeout);
                        continue;
                    }
                    let newer_done = self
                        .slots
                        .iter()
                        .filter(|s| s.state == State::Complete)
                        .map(|s| s.complete_at)
                        .min()
                        .is_some_and(|t| now >= t + self.cfg.reorder_grace);
                    if newer_done {
                        self.give_up(lo, GiveUp::Superseded);
                        continue;
                    }
                    return None;
                }
            }
        };
        let id = self.slots[deliver].id;
        self.advance_past(id);
        let slot = &mut self.slots[deliver];
        slot.state = State::Free;
        self.stats.frames_delivered += 1;
        self.stats.keyframes_delivered += slot.hdr.keyframe() as u64;
        self.stats.frames_recovered += slot.recovered as u64;
        let slot = &self.slots[deliver];
        Some(Frame {
            id,
            pts_us: slot.hdr.pts_us,
            keyframe: slot.hdr.keyframe(),
            recovered: slot.recovered,
            data: &slot.buf[..slot.hdr.frame_len as usize],
        })
    }

    /// The earliest `now` at which [`Self::poll`] could give up or deliver something that it
    /// cannot at the current state (for the caller's timer). `None` when nothing is open.
    pub fn next_deadline(&self) -> Option<Duration> {
        let timeout = self
            .slots
            .iter()
            .filter(|s| s.state == State::Filling)
            .map(|s| s.first_seen + self.cfg.frame_timeout)
            .min();
        let grace = self
            .slots
            .iter()
            .filter(|s| s.state == State::Complete)
            .map(|s| s.complete_at + self.cfg.reorder_grace)
            .min();
        match (timeout, grace) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// The 64-bit id closest to `base` whose low 32 bits are `wire`.
fn expand_frame_id(wire: u32, base: u64) -> u64 {
    const WIN: u64 = 1 << 32;
    let candidate = (base & !(WIN - 1)) | wire as u64;
    if candidate + WIN / 2 <= base {
        candidate + WIN
    } else if candidate > base + WIN / 2 && candidate >= WIN {
        candidate - WIN
    } else {
        candidate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_ids_expand_across_wrap() {
        let base = FIRST_ID_BASE + 0xFFFF_FFF0;
        assert_eq!(expand_frame_id(0xFFFF_FFF5, base), base + 5);
        assert_eq!(expand_frame_id(3, base), base + 0x13);
        assert_eq!(expand_frame_id(0xFFFF_FFE0, base), base - 0x10);
        let base = FIRST_ID_BASE + 5;
        assert_eq!(expand_frame_id(0xFFFF_FFFE, base), FIRST_ID_BASE - 2);
        assert_eq!(expand_frame_id(7, base), base + 2);
    }
}
