//! Adaptive FEC for a GameStream session, sans-IO: the client's SS_FRAME_FEC_STATUS reports
//! (gamestream-host.md §A12, message 0x5502) and `now` in, the FEC percentage the data plane
//! should use out.
//!
//! Contract:
//! - Starts at `[video] fec_percent_default` and never leaves `[fec_percent_min,
//!   fec_percent_max]`.
//! - **Raise on loss, at once.** A report's loss (packets missing below the highest received
//!   sequence number, or data packets the client had to rebuild from parity) gives a loss rate
//!   ρ over the block; the parity needed to cover it is ρ/(1−ρ) of the data, times
//!   [`LOSS_MARGIN`] because loss comes in bursts. A block the client could not rebuild (fewer
//!   packets than data shards) raises by at least [`LOST_BLOCK_STEP`], at most once per
//!   [`LOST_BLOCK_HOLDOFF`] so one burst does not run the percentage to the top before the
//!   first raise has taken effect.
//! - **Decay when clean.** After [`CLEAN_HOLD`] without a lossy report, step down by
//!   [`DECAY_STEP`] every [`DECAY_INTERVAL`] (driven by [`FecController::tick`]) until `min`.
//!   Moonlight only reports after FEC use or a loss, so silence is the clean signal.
//! - Every change is returned once, so the caller sends exactly one `SessionUpdate` per change.
//!
//! The tunables are first choices, not yet measured against a lossy link: the FEC test with the
//! data plane's drop knob (3 % loss) needs ρ/(1−ρ)·2 ≈ 7 %, well inside the default 20 %.

use std::time::{Duration, Instant};

use strahl_enet::FecStatus;

/// Observed loss is multiplied by this before it becomes a parity target: loss is bursty, and
/// one block's rate underestimates the next burst.
pub const LOSS_MARGIN: u32 = 2;
/// Minimum raise after a block the client could not rebuild (a lost frame).
pub const LOST_BLOCK_STEP: u8 = 10;
/// Lost blocks within this long after a lost-block raise do not raise again: the new
/// percentage needs an IPC round trip plus a frame or two to show in the client's reports.
pub const LOST_BLOCK_HOLDOFF: Duration = Duration::from_millis(250);
/// How long without a lossy report before the percentage starts to decay.
pub const CLEAN_HOLD: Duration = Duration::from_secs(3);
/// Decay step and pace: from the default 20 % to the minimum 5 % in 15 s of clean link.
pub const DECAY_STEP: u8 = 1;
pub const DECAY_INTERVAL: Duration = Duration::from_secs(1);

/// `[video] fec_percent_*` (validated by strahl-config: min ≤ default ≤ max ≤ 100).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FecBounds {
    pub min: u8,
    pub default: u8,
    pub max: u8,
}

impl FecBounds {
    /// Puts `default` inside `[min, max]` even if the caller did not validate.
    pub fn sane(self) -> Self {
        let max = self.max.min(100);
        let min = self.min.min(max);
        FecBounds {
            min,
            default: self.default.clamp(min, max),
            max,
        }
    }
}

/// What the reported block went through (the `result` label of the report counter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportClass {
    /// Nothing missing.
    Clean,
    /// Packets were missing but the block was rebuilt from parity.
    Recovered,
    /// Fewer packets arrived than the block has data shards: the frame is lost.
    Lost,
}

impl ReportClass {
    pub fn label(self) -> &'static str {
        match self {
            ReportClass::Clean => "clean",
            ReportClass::Recovered => "recovered",
            ReportClass::Lost => "lost",
        }
    }
}

/// Classifies a report and returns the packets it counts as lost.
pub fn classify(r: &FecStatus) -> (ReportClass, u32) {
    let data = u32::from(r.total_data);
    let received = u32::from(r.recv_data) + u32::from(r.recv_parity);
    // Data shards the client had to rebuild were lost on the way; packets missing below the
    // highest sequence number seen are lost too. The larger of the two is the better estimate
    // (the client may report before late parity arrives, so "total − received" overcounts).
    let rebuilt = data.saturating_sub(u32::from(r.recv_data));
    let lost = rebuilt.max(u32::from(r.missing_before_highest));
    let class = if received < data {
        ReportClass::Lost
    } else if lost > 0 {
        ReportClass::Recovered
    } else {
        ReportClass::Clean
    };
    (class, lost)
}

/// The percentage that covers `lost` of `total` shards: parity/data ≥ ρ/(1−ρ) =
/// lost/(total−lost), as a percentage rounded up, times [`LOSS_MARGIN`]. Both protocols'
/// controllers measure loss this way (GameStream in packets of a block, native in parts per
/// million); every shard lost is unbounded parity (the caller's range caps it).
pub fn parity_percent(lost: u64, total: u64) -> u32 {
    if lost == 0 || total == 0 {
        return 0;
    }
    let lost = lost.min(total);
    let kept = (total - lost).max(1);
    let pct = (lost * 100 * u64::from(LOSS_MARGIN)).div_ceil(kept);
    u32::try_from(pct).unwrap_or(u32::MAX)
}

/// The raise/decay state both protocols' controllers share (see the module contract): a
/// lossy observation raises at once ([`FecCore::raise`]), a clean link decays
/// ([`FecCore::decay`]); every change is returned once.
#[derive(Debug, Clone)]
pub struct FecCore {
    min: u8,
    max: u8,
    current: u8,
    /// Last observation with any loss (decay waits [`CLEAN_HOLD`] after it).
    last_loss: Option<Instant>,
    last_lost_raise: Option<Instant>,
    last_decay: Instant,
}

impl FecCore {
    /// Starts at `start`, clamped into `min..=max` (the caller orders them).
    pub fn new(start: u8, min: u8, max: u8, now: Instant) -> Self {
        FecCore {
            min,
            max,
            current: start.clamp(min, max),
            last_loss: None,
            last_lost_raise: None,
            last_decay: now,
        }
    }

    pub fn current(&self) -> u8 {
        self.current
    }

    /// A lossy observation: the percentage becomes at least `target` (bounded), and at least
    /// [`LOST_BLOCK_STEP`] more when `lost_frame` (once per [`LOST_BLOCK_HOLDOFF`]).
    pub fn raise(&mut self, target: u32, lost_frame: bool, now: Instant) -> Option<u8> {
        self.last_loss = Some(now);
        let mut target = u32::from(self.current).max(target);
        if lost_frame
            && self
                .last_lost_raise
                .is_none_or(|t| now.saturating_duration_since(t) >= LOST_BLOCK_HOLDOFF)
        {
            self.last_lost_raise = Some(now);
            target = target.max(u32::from(self.current) + u32::from(LOST_BLOCK_STEP));
        }
        let new = u8::try_from(target.min(u32::from(self.max)))
            .unwrap_or(self.max)
            .max(self.min);
        self.change(new, now)
    }

    /// An explicit choice (bounded); holds off the decay like a loss does.
    pub fn set(&mut self, pct: u8, now: Instant) -> Option<u8> {
        self.last_loss = Some(now);
        self.change(pct.clamp(self.min, self.max), now)
    }

    /// One step down on a clean link: not before [`CLEAN_HOLD`] after the last loss, at most
    /// once per [`DECAY_INTERVAL`], never below the minimum.
    pub fn decay(&mut self, now: Instant) -> Option<u8> {
        let clean_since = self.last_loss.unwrap_or(self.last_decay);
        if now.saturating_duration_since(clean_since) < CLEAN_HOLD
            || now.saturating_duration_since(self.last_decay) < DECAY_INTERVAL
            || self.current <= self.min
        {
            return None;
        }
        let new = self.current.saturating_sub(DECAY_STEP).max(self.min);
        self.change(new, now)
    }

    fn change(&mut self, new: u8, now: Instant) -> Option<u8> {
        // Any change restarts the decay clock: a raise must hold for CLEAN_HOLD, a decay step
        // for DECAY_INTERVAL.
        self.last_decay = now;
        if new == self.current {
            return None;
        }
        self.current = new;
        Some(new)
    }
}

/// The controller of one GameStream session.
#[derive(Debug, Clone)]
pub struct FecController {
    bounds: FecBounds,
    core: FecCore,
}

impl FecController {
    pub fn new(bounds: FecBounds, now: Instant) -> Self {
        let bounds = bounds.sane();
        FecController {
            bounds,
            core: FecCore::new(bounds.default, bounds.min, bounds.max, now),
        }
    }

    pub fn current(&self) -> u8 {
        self.core.current()
    }

    pub fn bounds(&self) -> FecBounds {
        self.bounds
    }

    /// One SS_FRAME_FEC_STATUS report; `Some(new %)` when the percentage changed.
    pub fn on_report(&mut self, r: &FecStatus, now: Instant) -> (ReportClass, Option<u8>) {
        let (class, lost) = classify(r);
        if class == ReportClass::Clean {
            return (class, None);
        }
        let total = u64::from(r.total_data) + u64::from(r.total_parity);
        let target = parity_percent(u64::from(lost), total);
        let change = self.core.raise(target, class == ReportClass::Lost, now);
        (class, change)
    }

    /// Decay on a clean link; call at least every [`DECAY_INTERVAL`].
    pub fn tick(&mut self, now: Instant) -> Option<u8> {
        self.core.decay(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: FecBounds = FecBounds {
        min: 5,
        default: 20,
        max: 50,
    };

    fn report(total_data: u16, total_parity: u16, recv_data: u16, recv_parity: u16) -> FecStatus {
        FecStatus {
            frame_index: 1,
            highest_recv_seq: 0,
            next_contiguous_seq: 0,
            missing_before_highest: 0,
            total_data,
            total_parity,
            recv_data,
            recv_parity,
            fec_pct: 20,
            block_index: 0,
            block_count: 1,
        }
    }

    #[test]
    fn classifies_clean_recovered_and_lost() {
        assert_eq!(classify(&report(100, 20, 100, 20)), (ReportClass::Clean, 0));
        assert_eq!(
            classify(&report(100, 20, 97, 20)),
            (ReportClass::Recovered, 3)
        );
        assert_eq!(classify(&report(100, 20, 80, 10)), (ReportClass::Lost, 20));
        let mut r = report(100, 20, 100, 20);
        r.missing_before_highest = 4;
        assert_eq!(classify(&r), (ReportClass::Recovered, 4));
        // Hostile zeros: no division, no panic, nothing lost.
        assert_eq!(classify(&report(0, 0, 0, 0)), (ReportClass::Clean, 0));
    }

    #[test]
    fn starts_at_default_and_ignores_clean_reports() {
        let t0 = Instant::now();
        let mut c = FecController::new(B, t0);
        assert_eq!(c.current(), 20);
        assert_eq!(
            c.on_report(&report(100, 20, 100, 20), t0),
            (ReportClass::Clean, None)
        );
        assert_eq!(c.current(), 20);
    }

    #[test]
    fn heavy_recovered_loss_raises_to_cover_it_with_margin() {
        let t0 = Instant::now();
        let mut c = FecController::new(B, t0);
        // 12 of 120 lost: 12/108 · 2 = 22.2 % → 23 %.
        let (class, new) = c.on_report(&report(100, 20, 88, 20), t0);
        assert_eq!((class, new), (ReportClass::Recovered, Some(23)));
        // Light loss below the current percentage does not lower or raise it.
        assert_eq!(c.on_report(&report(100, 20, 99, 20), t0).1, None);
        assert_eq!(c.current(), 23);
    }

    #[test]
    fn lost_block_steps_up_once_per_holdoff_and_caps_at_max() {
        let t0 = Instant::now();
        let mut c = FecController::new(B, t0);
        let lost = report(100, 20, 90, 5); // 95 < 100 data shards
        assert_eq!(c.on_report(&lost, t0).1, Some(30));
        // Same burst: a small lost block inside the holdoff does not step again.
        let small = report(100, 20, 99, 0); // 99 < 100: lost, 1 rebuilt → 2 % target
        assert_eq!(c.on_report(&small, t0 + Duration::from_millis(10)).1, None);
        assert_eq!(c.current(), 30);
        assert_eq!(c.on_report(&small, t0 + LOST_BLOCK_HOLDOFF).1, Some(40));
        assert_eq!(c.on_report(&small, t0 + LOST_BLOCK_HOLDOFF * 2).1, Some(50));
        assert_eq!(c.on_report(&small, t0 + LOST_BLOCK_HOLDOFF * 3).1, None);
        assert_eq!(c.current(), 50);
    }

    #[test]
    fn decays_to_min_only_after_a_clean_hold() {
        let t0 = Instant::now();
        let mut c = FecController::new(B, t0);
        c.on_report(&report(100, 20, 88, 20), t0); // → 23
        let mut t = t0;
        let mut changes = Vec::new();
        // Simulated minute in 100 ms ticks (bounded loop).
        for _ in 0..600 {
            t += Duration::from_millis(100);
            if let Some(p) = c.tick(t) {
                changes.push((t - t0, p));
            }
        }
        assert_eq!(changes.first(), Some(&(CLEAN_HOLD, 22)));
        assert_eq!(changes.last().map(|c| c.1), Some(5));
        assert_eq!(changes.len(), 18, "one change per step 23 → 5");
        for w in changes.windows(2) {
            assert_eq!(w[1].0 - w[0].0, DECAY_INTERVAL);
            assert_eq!(w[0].1 - 1, w[1].1);
        }
        assert_eq!(c.current(), 5);
    }

    #[test]
    fn loss_during_decay_stops_it_and_raises_again() {
        let t0 = Instant::now();
        let mut c = FecController::new(B, t0);
        let t1 = t0 + CLEAN_HOLD + DECAY_INTERVAL * 4;
        let mut t = t0;
        while t < t1 {
            t += Duration::from_millis(100);
            c.tick(t);
        }
        let before = c.current();
        assert!(
            before < 20,
            "decayed from the default on a clean link: {before}"
        );
        assert_eq!(c.on_report(&report(100, 20, 88, 20), t).1, Some(23));
        // Within the hold after the loss: no decay.
        assert_eq!(c.tick(t + CLEAN_HOLD - Duration::from_millis(1)), None);
        assert_eq!(c.tick(t + CLEAN_HOLD), Some(22));
    }

    #[test]
    fn unsane_bounds_are_clamped() {
        let c = FecController::new(
            FecBounds {
                min: 60,
                default: 10,
                max: 200,
            },
            Instant::now(),
        );
        assert_eq!(
            c.bounds(),
            FecBounds {
                min: 60,
                default: 60,
                max: 100
            }
        );
        assert_eq!(c.current(), 60);
    }
}
