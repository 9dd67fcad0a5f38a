//! Sans-IO packet pacer for the tx tile.
//!
//! Contract:
//! - Time is a `u64` of nanoseconds on a monotonic clock chosen by the caller (the tx thread's
//!   TSC/`CLOCK_MONOTONIC` reading; tests simulate it). The pacer never reads a clock, sleeps or
//!   allocates.
//! - The caller describes what is queued with a [`Backlog`] (packets and bytes) and asks
//!   [`Pacer::next_release`] when the next batch may go and how many packets it holds. The answer
//!   is a pure function of the pacer state, `now` and the backlog: asking again changes nothing.
//!   The caller waits until [`Release::at_ns`] (busy-waits for short gaps, sleeps for long ones),
//!   sends up to [`Release::packets`] packets, then reports what it actually sent with
//!   [`Pacer::on_sent`] (actual byte counts, which may differ from the backlog's average).
//! - Token bucket, in exact integer arithmetic (nano-bits, so no rounding drift over hours):
//!   credit accrues at the effective rate, is capped at the bucket depth (idle time never builds
//!   unbounded credit), and may go negative: a batch that turned out larger than estimated leaves
//!   a debt that delays the next release, across frames. The depth is the burst, or the longer
//!   catch-up depth ([`PacerConfig::catch_up_ns`]) when one is set: then a sender that woke late
//!   mid-frame gets the missed credit back instead of losing rate, while
//!   [`Pacer::frame_queued`] still cuts the credit to the burst, so a frame starts with at most
//!   the burst whatever the idle time before it. In Spread mode a frame starts with half a
//!   release granule ([`PacerConfig::min_release_interval_ns`] at the frame's rate, in whole
//!   packets: (g + 1) / 2 of a granule of g, so one packet at low rates), sent at once as its
//!   first release; every later release waits for a full granule of credit, so each batch is
//!   centred on its packets' places on the frame's evenly spaced line.
//! - Release times are never earlier than the bucket allows: at `at_ns` the credit covers the
//!   whole batch at the backlog's average packet size, and `at_ns >= now`.
//! - No batch exceeds [`PacerConfig::max_batch_packets`], nor what the burst allows (at least one
//!   packet, so a packet larger than the burst still goes, on debt).
//! - [`Mode::Rate`] paces at the link rate. [`Mode::Spread`] paces each frame over a fraction of
//!   its frame interval: on [`Pacer::frame_queued`] the effective rate becomes
//!   backlog / (fraction × interval), capped at the link rate. [`Pacer::set_link_rate`] changes the
//!   rate mid-stream; credit accrued so far is kept (clamped to the new burst).
//! - Rates are bits per second of whatever the caller counts in `bytes` (the caller decides
//!   whether that includes UDP/IP/Ethernet overhead; the tx tile counts wire bytes).
//!
//! The tx loop, with simulated time (the real one spins on the TSC for short waits):
//!
//! ```
//! use strahl_pacer::{Backlog, Pacer, PacerConfig};
//!
//! let mut now = 0u64;
//! let mut pacer = Pacer::new(PacerConfig::new(1_000_000_000), now); // 1 Gbit/s
//! let mut queue = vec![1400u64; 100]; // packet sizes
//! while !queue.is_empty() {
//!     let backlog = Backlog { packets: queue.len() as u64, bytes: queue.iter().sum() };
//!     let release = pacer.next_release(now, backlog).expect("backlog is not empty");
//!     now = now.max(release.at_ns); // wait (busy-wait or sleep) until then
//!     let n = (release.packets as usize).min(queue.len());
//!     let bytes: u64 = queue.drain(..n).sum(); // send these n packets
//!     pacer.on_sent(now, n as u32, bytes);
//! }
//! // 100 × 1400 B at 1 Gbit/s is 1.12 ms; the first 100 µs bucket went at once.
//! assert!(now > 1_000_000 && now < 1_120_000);
//! ```
#![forbid(unsafe_code)]

/// Default cap on packets per released batch: sendmmsg / io_uring batches of 64 reached the
/// measured maximum on this VM, and 256 gained nothing (docs/measurements.md §batching: sendmmsg(64) 308k
/// pps vs batch 256 251k); UDP GSO also tops out at 64 segments.
pub const DEFAULT_MAX_BATCH_PACKETS: u32 = 64;

/// Default bucket depth, as time at the effective rate. 100 µs is the shortest slot a
/// sleep-based fallback loop can keep (docs/measurements.md §pacing: sleep–wake 13–17 µs, "sleep-based
/// pacing needs ≥100 µs slots with bursts"); a busy-waiting loop rarely uses the full depth, and
/// at 1 Gbit/s it is ~9 packets of 1400 B, small against switch buffers.
pub const DEFAULT_BURST_NS: u64 = 100_000;

/// The bucket always holds at least this many bytes, so low rates (audio-only, spread mode on a
/// tiny frame) can still release a full 1500-byte-MTU packet, and two back to back.
pub const MIN_BURST_BYTES: u64 = 2 * 1500;

/// Batching granularity: when packets would be spaced closer than this, they are released in
/// batches covering at least this much link time. One blocking send() costs ~4 µs (p50) on this
/// VM (docs/measurements.md §pacing), so waking more often than every 5 µs buys no smoothness.
pub const DEFAULT_MIN_RELEASE_INTERVAL_NS: u64 = 5_000;

/// Default spread window: half the frame interval (8.3 ms at 60 fps). The last packet of a frame
/// leaves at most half an interval after the first, bounding the added latency, while the peak
/// rate is only twice the frame's average rate instead of a link-rate burst.
pub const DEFAULT_SPREAD_PERMILLE: u32 = 500;

/// Lowest effective rate: 1 kbit/s. Guards the arithmetic (no division by zero) and keeps a
/// mis-set rate from stalling the stream forever.
pub const MIN_RATE_BPS: u64 = 1_000;

const NS_PER_S: i128 = 1_000_000_000;

/// What is queued for sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Backlog {
    pub packets: u64,
    pub bytes: u64,
}

/// When to send and how much.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Release {
    /// Send no earlier than this (ns, caller's clock). Never before the `now` it was asked at.
    pub at_ns: u64,
    /// Send at most this many packets from the head of the queue (1..=max_batch_packets).
    pub packets: u32,
}

/// Pacing mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Pace at the link rate.
    Rate,
    /// Spread each frame over `permille`/1000 of its frame interval, capped at the link rate.
    Spread { permille: u32 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacerConfig {
    /// Link (bottleneck) rate in bits per second: the cap in every mode.
    pub link_rate_bps: u64,
    pub mode: Mode,
    pub max_batch_packets: u32,
    /// Bucket depth as time at the effective rate (at least [`MIN_BURST_BYTES`]).
    pub burst_ns: u64,
    pub min_release_interval_ns: u64,
    /// Bucket depth while sending, as time at the effective rate; 0 (the default) or anything
    /// below `burst_ns` means `burst_ns`. Meant for [`Mode::Spread`], where each
    /// [`Pacer::frame_queued`] cuts the credit back to `burst_ns`: a short burst keeps a frame's
    /// start smooth, a longer catch-up depth keeps a late wake-up from costing rate (with a
    /// bucket of 10 µs, every µs a tile woke past the bucket was lost, and frames took 1.24× their
    /// window at 1 Gbit/s; docs/measurements.md §media path).
    pub catch_up_ns: u64,
}

impl PacerConfig {
    /// Defaults for a link of `link_rate_bps`, in [`Mode::Rate`].
    pub fn new(link_rate_bps: u64) -> Self {
        PacerConfig {
            link_rate_bps,
            mode: Mode::Rate,
            max_batch_packets: DEFAULT_MAX_BATCH_PACKETS,
            burst_ns: DEFAULT_BURST_NS,
            min_release_interval_ns: DEFAULT_MIN_RELEASE_INTERVAL_NS,
            catch_up_ns: 0,
        }
    }
}

/// Token-bucket pacer; see the module header for the contract.
#[derive(Debug, Clone)]
pub struct Pacer {
    cfg: PacerConfig,
    /// The rate credit accrues at now: the link rate, or the current frame's spread rate.
    rate_bps: u64,
    /// Credit in nano-bits (bits × 10^9); negative is debt.
    tokens: i128,
    /// The time `tokens` is valid at.
    last_ns: u64,
    /// A Spread frame was queued and nothing has been sent since: its first release goes as
    /// soon as the starting credit covers one packet, without waiting for a full granule.
    frame_start: bool,
}

impl Pacer {
    /// A pacer whose bucket starts full at `now_ns` (as if the link had been idle).
    pub fn new(cfg: PacerConfig, now_ns: u64) -> Self {
        let mut cfg = cfg;
        cfg.link_rate_bps = cfg.link_rate_bps.max(MIN_RATE_BPS);
        cfg.max_batch_packets = cfg.max_batch_packets.max(1);
        let rate_bps = cfg.link_rate_bps;
        let mut p = Pacer {
            cfg,
            rate_bps,
            tokens: 0,
            last_ns: now_ns,
            frame_start: false,
        };
        p.tokens = p.burst_tokens();
        p
    }

    pub fn config(&self) -> &PacerConfig {
        &self.cfg
    }

    /// The rate credit accrues at now (bits/s).
    pub fn effective_rate_bps(&self) -> u64 {
        self.rate_bps
    }

    /// Credit at `now_ns` in bits (negative: debt). For metrics and tests.
    pub fn credit_bits(&self, now_ns: u64) -> i128 {
        self.tokens_at(now_ns) / NS_PER_S
    }

    /// Bucket depth in nano-bits at the effective rate.
    fn burst_tokens(&self) -> i128 {
        let by_time = i128::from(self.rate_bps) * i128::from(self.cfg.burst_ns);
        by_time.max(bits_of(MIN_BURST_BYTES))
    }

    /// Bucket depth in nano-bits while sending: the catch-up depth, at least the burst.
    fn depth_tokens(&self) -> i128 {
        let by_time = i128::from(self.rate_bps) * i128::from(self.cfg.catch_up_ns);
        by_time.max(self.burst_tokens())
    }

    /// Credit at `now_ns` without changing state (time going backwards accrues nothing).
    fn tokens_at(&self, now_ns: u64) -> i128 {
        let dt = now_ns.saturating_sub(self.last_ns);
        let accrued = self.tokens + i128::from(self.rate_bps) * i128::from(dt);
        accrued.min(self.depth_tokens().max(self.tokens))
    }

    fn advance(&mut self, now_ns: u64) {
        self.tokens = self.tokens_at(now_ns);
        self.last_ns = self.last_ns.max(now_ns);
    }

    /// Change the link rate at `now_ns` (credit so far accrues at the old rate).
    pub fn set_link_rate(&mut self, now_ns: u64, link_rate_bps: u64) {
        self.advance(now_ns);
        self.cfg.link_rate_bps = link_rate_bps.max(MIN_RATE_BPS);
        self.rate_bps = match self.cfg.mode {
            Mode::Rate => self.cfg.link_rate_bps,
            // Keep the frame's spread rate, under the new cap.
            Mode::Spread { .. } => self.rate_bps.min(self.cfg.link_rate_bps),
        };
        self.tokens = self.tokens.min(self.burst_tokens());
    }

    /// Switch mode at `now_ns`. Entering [`Mode::Rate`] restores the link rate; entering
    /// [`Mode::Spread`] keeps the current rate until the next [`Self::frame_queued`].
    pub fn set_mode(&mut self, now_ns: u64, mode: Mode) {
        self.advance(now_ns);
        self.cfg.mode = mode;
        if mode == Mode::Rate {
            self.rate_bps = self.cfg.link_rate_bps;
        }
        self.tokens = self.tokens.min(self.burst_tokens());
    }

    /// A frame was queued; `backlog` is everything queued now (the new frame plus what is left
    /// of earlier ones). In [`Mode::Spread`] this sets the rate that sends the whole backlog in
    /// `permille`/1000 of `frame_interval_ns`, capped at the link rate. In [`Mode::Rate`] it only
    /// brings the bucket up to date.
    pub fn frame_queued(&mut self, now_ns: u64, backlog: Backlog, frame_interval_ns: u64) {
        self.advance(now_ns);
        if let Mode::Spread { permille } = self.cfg.mode {
            let window_ns =
                (u128::from(frame_interval_ns) * u128::from(permille.clamp(1, 1000)) / 1000).max(1);
            let bits = u128::from(backlog.bytes) * 8;
            let want = (bits * NS_PER_S as u128).div_ceil(window_ns);
            let cap = u128::from(self.cfg.link_rate_bps);
            self.rate_bps = (want.min(cap) as u64).max(MIN_RATE_BPS);
            // A frame starts with half a release granule of credit, sent at once as its first
            // release: (g + 1) / 2 packets for a granule of g packets. Every later release (a
            // granule, when its credit is there) is then centred on its packets' places on the
            // frame's evenly spaced line — off by at most half a granule either way, instead of
            // up to a whole granule early (a frame started with a 10 µs burst and then waited
            // for a full granule: receiver gap error p99 36–38 µs at 500/1000 Mbit/s;
            // docs/measurements.md §media path, "Centred release batches"). A slow frame
            // (g = 1) starts with one packet: the MIN_BURST_BYTES floor (two) would send the
            // second a whole spacing early and shift every later packet by ~30 µs.
            let per_packet = bits_of(backlog.bytes.div_ceil(backlog.packets.max(1))).max(1);
            let start = per_packet * i128::from(self.granule_packets(per_packet) + 1) / 2;
            self.tokens = self.tokens.min(start);
            self.frame_start = true;
        }
    }

    /// Batch granularity: the packets (of `per_packet` nano-bits) covering
    /// `min_release_interval_ns` at the effective rate, at least one.
    fn granule_packets(&self, per_packet: i128) -> u64 {
        let interval_bits =
            i128::from(self.rate_bps) * i128::from(self.cfg.min_release_interval_ns);
        ((interval_bits + per_packet - 1) / per_packet.max(1)).max(1) as u64
    }

    /// When the next batch may go and how many packets it holds; `None` when nothing is queued.
    pub fn next_release(&self, now_ns: u64, backlog: Backlog) -> Option<Release> {
        if backlog.packets == 0 {
            return None;
        }
        let now_ns = now_ns.max(self.last_ns);
        let tokens = self.tokens_at(now_ns);
        let avg_bytes = backlog.bytes.div_ceil(backlog.packets).max(1);
        let per_packet = bits_of(avg_bytes);
        let cap = u64::from(self.cfg.max_batch_packets).min(backlog.packets);
        // What the bucket allows at once (at least one packet, which may then run on debt).
        let burst_packets = (self.depth_tokens() / per_packet).max(1) as u64;
        let cap = cap.min(burst_packets);
        let target = self.granule_packets(per_packet).min(cap);
        // A batch larger than the bucket (a jumbo packet at a low rate) waits for a full bucket
        // and then runs on debt, instead of waiting for credit the cap never lets accrue.
        let mut need = (per_packet * i128::from(target)).min(self.depth_tokens());
        if self.frame_start {
            // A frame's first release is its starting credit (see `frame_queued`), at once.
            need = need.min(per_packet);
        }
        if tokens >= need {
            // Enough credit: send as much of it as the caps allow, now.
            let least = if self.frame_start { 1 } else { target.min(cap) };
            let n = ((tokens / per_packet) as u64).clamp(least, cap);
            return Some(Release {
                at_ns: now_ns,
                packets: n as u32,
            });
        }
        let wait_ns = (need - tokens + i128::from(self.rate_bps) - 1) / i128::from(self.rate_bps);
        let at_ns = u64::try_from(i128::from(now_ns) + wait_ns).unwrap_or(u64::MAX);
        Some(Release {
            at_ns,
            packets: target as u32,
        })
    }

    /// Report what was actually sent at `now_ns`: `bytes` are debited (debt is allowed).
    pub fn on_sent(&mut self, now_ns: u64, _packets: u32, bytes: u64) {
        self.advance(now_ns);
        self.frame_start = false;
        self.tokens -= bits_of(bytes);
    }
}

/// Bytes as nano-bits.
fn bits_of(bytes: u64) -> i128 {
    i128::from(bytes) * 8 * NS_PER_S
}

#[cfg(test)]
mod tests;
