//! Adaptive FEC for a native `strahl/1` session, sans-IO: the client's loss reports
//! (`loss-report`, `docs/strahl1-wire.md`) and `now` in, the FEC percentage the data plane
//! should use out.
//!
//! Contract:
//! - Starts at the session's welcome FEC % and never leaves the host policy's `fec_range`
//!   (`[video] fec_percent_min..=fec_percent_max`).
//! - **Raise on loss, at once.** A report's shard loss ρ (`shard_loss_ppm` / 10⁶) needs parity
//!   of ρ/(1−ρ) of the data; the target is that, as a percentage rounded up, times
//!   [`LOSS_MARGIN`] (loss comes in bursts). Frames the client lost (more shards missing than
//!   the parity restored) raise by at least [`LOST_BLOCK_STEP`], at most once per
//!   [`LOST_BLOCK_HOLDOFF`], so one burst does not run the percentage to the top before the
//!   first raise shows in the client's reports. Frames FEC recovered without any shard loss in
//!   the report (ρ rounded to 0 ppm) raise by one point: parity is being used.
//! - **Decay when clean.** Native clients report at a steady pace whether or not they lose
//!   anything, so the reports themselves drive the decay: after [`CLEAN_HOLD`] without a lossy
//!   report, a clean report steps down by [`DECAY_STEP`], at most once per [`DECAY_INTERVAL`],
//!   until the minimum. No timer is needed.
//! - Every change is returned once, so the caller sends exactly one IPC `SessionUpdate` per
//!   change. A client's explicit reconfigure ([`NativeFec::set`]) moves the current value
//!   (bounded) and restarts the clocks.
//! - The report's epoch is not checked: FEC % is per frame on the wire (every shard carries its
//!   frame's k and m), so a report from just before an epoch change is still a measure of the
//!   link.
//!
//! The tunables and the raise/decay state are GameStream's ([`crate::fec_adapt::FecCore`]):
//! the same link, the same first choices; only how a report measures loss differs.

use std::time::Instant;

use strahl_native::msg::LossReport;

pub use crate::fec_adapt::{
    CLEAN_HOLD, DECAY_INTERVAL, DECAY_STEP, LOSS_MARGIN, LOST_BLOCK_HOLDOFF, LOST_BLOCK_STEP,
};
use crate::fec_adapt::{FecCore, parity_percent};

/// One part per million: the unit of `shard_loss_ppm`.
const PPM: u64 = 1_000_000;

/// The FEC % a loss of `ppm` shards per million needs (with [`LOSS_MARGIN`]), rounded up.
pub fn needed_percent(ppm: u32) -> u32 {
    parity_percent(u64::from(ppm), PPM)
}

/// The controller of one session (see the module contract).
#[derive(Debug, Clone)]
pub struct NativeFec {
    core: FecCore,
}

impl NativeFec {
    /// Starts at `start` within `range` (`(min, max)`; a reversed range is read as its ends).
    pub fn new(start: u8, range: (u8, u8), now: Instant) -> Self {
        let (lo, hi) = (range.0.min(range.1), range.0.max(range.1));
        NativeFec {
            core: FecCore::new(start, lo, hi, now),
        }
    }

    pub fn current(&self) -> u8 {
        self.core.current()
    }

    /// One loss report; `Some(new %)` when the percentage changed.
    pub fn on_report(&mut self, r: &LossReport, now: Instant) -> Option<u8> {
        let lossy = r.shard_loss_ppm > 0 || r.frames_lost > 0 || r.frames_recovered > 0;
        if !lossy {
            return self.core.decay(now);
        }
        let mut target = needed_percent(r.shard_loss_ppm);
        if r.shard_loss_ppm == 0 && r.frames_recovered > 0 {
            // Parity is being used though the loss rounds to 0 ppm: one point more.
            target = target.max(u32::from(self.core.current()) + 1);
        }
        self.core.raise(target, r.frames_lost > 0, now)
    }

    /// The client asked for `pct` (reconfigure): taken, bounded; `Some` when it changed.
    pub fn set(&mut self, pct: u8, now: Instant) -> Option<u8> {
        self.core.set(pct, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// How often the tests' client reports.
    const REPORT_EVERY: Duration = Duration::from_millis(250);

    fn report(ppm: u32, recovered: u64, lost: u64) -> LossReport {
        LossReport {
            epoch: 0,
            frames_received: 60,
            frames_recovered: recovered,
            frames_lost: lost,
            shard_loss_ppm: ppm,
        }
    }

    #[test]
    fn shard_loss_maps_to_parity_with_margin() {
        assert_eq!(needed_percent(0), 0);
        // 1 % loss: 1/99 · 2 → 2.02… % → 3.
        assert_eq!(needed_percent(10_000), 3);
        // 5 % loss: 5/95 · 2 = 10.5… % → 11.
        assert_eq!(needed_percent(50_000), 11);
        // 20 %: 25 % · 2 = 50.
        assert_eq!(needed_percent(200_000), 50);
        // Everything lost: no parity helps; the range caps it.
        assert!(needed_percent(1_000_000) > 1000);
        assert!(needed_percent(u32::MAX) > 1000);
    }

    #[test]
    fn loss_raises_at_once_within_the_range() {
        let t0 = Instant::now();
        let mut f = NativeFec::new(20, (5, 50), t0);
        assert_eq!(f.on_report(&report(0, 0, 0), t0), None, "clean: stays");
        // 5 % shard loss needs 11 %: below the current 20, no change.
        assert_eq!(f.on_report(&report(50_000, 3, 0), t0), None);
        // 15 % needs 36 %.
        assert_eq!(f.on_report(&report(150_000, 10, 0), t0), Some(36));
        // 40 % would need 134 %: capped at the maximum.
        assert_eq!(f.on_report(&report(400_000, 10, 0), t0), Some(50));
        assert_eq!(f.current(), 50);
    }

    #[test]
    fn lost_frames_raise_by_a_step_once_per_holdoff() {
        let t0 = Instant::now();
        let mut f = NativeFec::new(20, (5, 80), t0);
        assert_eq!(f.on_report(&report(1_000, 0, 2), t0), Some(30));
        // The same burst reported again within the holdoff: no second step.
        let t1 = t0 + LOST_BLOCK_HOLDOFF / 2;
        assert_eq!(f.on_report(&report(1_000, 0, 1), t1), None);
        let t2 = t0 + LOST_BLOCK_HOLDOFF;
        assert_eq!(f.on_report(&report(1_000, 0, 1), t2), Some(40));
        // Recovered frames with loss too small to show in ppm: one point.
        assert_eq!(f.on_report(&report(0, 1, 0), t2), Some(41));
    }

    #[test]
    fn clean_reports_decay_to_the_minimum_after_the_hold() {
        let t0 = Instant::now();
        let mut f = NativeFec::new(20, (17, 50), t0);
        assert_eq!(f.on_report(&report(10_000, 1, 0), t0), None);
        let mut now = t0;
        let mut changes = Vec::new();
        // Clean reports every 250 ms for 10 s.
        while now < t0 + Duration::from_secs(10) {
            now += REPORT_EVERY;
            if let Some(p) = f.on_report(&report(0, 0, 0), now) {
                changes.push((now - t0, p));
            }
        }
        // Nothing before CLEAN_HOLD after the loss, then one step a DECAY_INTERVAL to 17.
        assert_eq!(
            changes.iter().map(|c| c.1).collect::<Vec<_>>(),
            [19, 18, 17]
        );
        assert!(changes[0].0 >= CLEAN_HOLD);
        assert!(changes[1].0 - changes[0].0 >= DECAY_INTERVAL);
        assert_eq!(f.current(), 17);
    }

    #[test]
    fn a_reconfigure_is_bounded_and_holds_off_the_decay() {
        let t0 = Instant::now();
        let mut f = NativeFec::new(20, (5, 50), t0);
        assert_eq!(f.set(90, t0), Some(50));
        assert_eq!(f.set(50, t0), None);
        assert_eq!(f.set(0, t0), Some(5));
        assert_eq!(f.set(30, t0), Some(30));
        assert_eq!(f.on_report(&report(0, 0, 0), t0 + CLEAN_HOLD / 2), None);
        // A reversed range is read as its ends; the start is clamped into it.
        assert_eq!(NativeFec::new(99, (40, 10), t0).current(), 40);
    }
}
