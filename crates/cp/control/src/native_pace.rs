//! Adaptive pacing for a native `strahl/1` session, sans-IO: the client's loss reports, the
//! session's wire rate and `now` in, the pacing ceiling the data plane should use out.
//!
//! Why: a native frame leaves at the link rate (`native_stream::native_pacer` in the data
//! plane), a burst of a whole frame. A shallow queue on the way (a switch port, a Wi-Fi hop, a
//! receiver's socket buffer) that cannot hold the burst drops its tail — loss that more parity
//! only feeds. Spreading the frame over more of its interval is what helps there, at the cost
//! of latency, so it is the second resort after FEC ([`crate::native_fec`]) and is undone when
//! the link is clean again.
//!
//! Contract:
//! - The ceiling starts at the link rate ([`PaceChange::Link`]: the data plane's own rate, which
//!   the control plane does not know) and never goes below the **floor**: [`FLOOR_MULTIPLE`] ×
//!   the session's wire rate ([`wire_kbps`]: bitrate with its FEC parity and per-datagram
//!   overhead), i.e. a frame always fits in half its interval, whatever the frame rate.
//! - **Lower on sustained loss beyond FEC.** A report with frames lost (more shards missing than
//!   the parity restored) starts a run; reports with frames lost that keep coming for
//!   [`SUSTAIN`] (a report without lost frames ends the run) lower the ceiling: from the link
//!   rate to [`FIRST_CUT_MULTIPLE`] × the wire rate, from a ceiling to half of it — never below
//!   the floor — and start a new run. [`SUSTAIN`] is longer than FEC's reaction (it raises at
//!   once, again after `LOST_BLOCK_HOLDOFF`), so parity gets the first chance.
//! - **Raise when clean.** After [`CLEAN_HOLD`] without a lossy report (any shard loss, FEC
//!   recovery or lost frame), a clean report doubles the ceiling; a ceiling that reaches
//!   [`FIRST_CUT_MULTIPLE`] × the wire rate is lifted (back to the link rate).
//! - Changes are rate-limited: at most one per [`CHANGE_INTERVAL`], except the floor itself — a
//!   wire rate that grew (a reconfigure, more parity) above what the ceiling carries lifts it
//!   to the new floor at once. Each change is returned once, so the caller sends exactly one IPC
//!   `SessionPace` per change.
//! - Native clients report at a steady pace (every 250 ms) whether or not they lose anything,
//!   so the reports drive everything; no timer.

use std::time::{Duration, Instant};

use strahl_native::msg::LossReport;

/// The floor, as a multiple of the wire rate: a frame sent at it takes half its interval, the
/// most of an interval the pacing may take (issue 10: a frame must still fit well inside its
/// interval; the other half is left for the encoder's jitter and the reassembly).
pub const FLOOR_MULTIPLE: u64 = 2;
/// The first ceiling below the link rate, as a multiple of the wire rate: the frame in an
/// eighth of its interval (1 ms at 120 fps). A 10 Gbit/s link sending a 100 Mbit/s session's
/// frame at 800 Mbit/s is a 12× thinner burst, enough for a shallow queue; the halvings after
/// it reach the floor in two more steps.
pub const FIRST_CUT_MULTIPLE: u64 = 8;
/// How long reports must keep showing lost frames before the ceiling drops: four report
/// intervals, past FEC's first raise and its `LOST_BLOCK_HOLDOFF` (250 ms) second one.
pub const SUSTAIN: Duration = Duration::from_secs(1);
/// Clean time before the ceiling rises again: longer than FEC's `CLEAN_HOLD` (3 s), so the
/// parity decays first and the link is known to carry the thinner burst before the burst grows.
pub const CLEAN_HOLD: Duration = Duration::from_secs(5);
/// At most one change a this: a change shows in the client's reports one report interval later
/// (250 ms) at best; two seconds gives several reports per step and keeps the rate from
/// oscillating with the loss.
pub const CHANGE_INTERVAL: Duration = Duration::from_secs(2);
/// Bytes a datagram adds to its shard: the `strahl/1` overhead (44) and IPv4 + UDP (28).
const DATAGRAM_OVERHEAD: u64 = 44 + 28;

/// What a session's pacing should become.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaceChange {
    /// No ceiling below the data plane's link rate.
    Link,
    /// At most this many kbit/s.
    Kbps(u64),
}

impl PaceChange {
    /// The IPC `SessionPace::rate_kbps` (0: the link rate).
    pub fn ipc_kbps(self) -> u32 {
        match self {
            PaceChange::Link => strahl_ipc::SessionPace::LINK,
            PaceChange::Kbps(k) => u32::try_from(k).unwrap_or(u32::MAX).max(1),
        }
    }
}

/// The rate a session's video takes on the wire, kbit/s: `bitrate_kbps` with `fec_percent`
/// parity, in datagrams of `shard_len` payload bytes.
pub fn wire_kbps(bitrate_kbps: u64, fec_percent: u8, shard_len: u16) -> u64 {
    let s = u64::from(shard_len.max(1));
    let with_parity = bitrate_kbps.saturating_mul(100 + u64::from(fec_percent)) / 100;
    with_parity
        .saturating_mul(s + DATAGRAM_OVERHEAD)
        .div_ceil(s)
}

/// The pacing controller of one session (see the module contract).
#[derive(Debug, Clone)]
pub struct NativePace {
    /// `None`: the link rate.
    ceiling_kbps: Option<u64>,
    /// The first report of the current run of reports with lost frames.
    lossy_since: Option<Instant>,
    /// The last report with any loss (shards, recovered or lost frames).
    last_lossy: Option<Instant>,
    last_change: Option<Instant>,
}

impl NativePace {
    pub fn new(_now: Instant) -> Self {
        NativePace {
            ceiling_kbps: None,
            lossy_since: None,
            last_lossy: None,
            last_change: None,
        }
    }

    /// The ceiling now (`None`: the link rate).
    pub fn ceiling_kbps(&self) -> Option<u64> {
        self.ceiling_kbps
    }

    /// One loss report of a session whose video takes `wire` kbit/s ([`wire_kbps`]); `Some`
    /// when the ceiling changed.
    pub fn on_report(&mut self, r: &LossReport, wire: u64, now: Instant) -> Option<PaceChange> {
        let floor = wire.saturating_mul(FLOOR_MULTIPLE).max(1);
        let release = wire.saturating_mul(FIRST_CUT_MULTIPLE).max(floor);
        if let Some(c) = self.ceiling_kbps
            && c < floor
        {
            // The session's rate grew past what the ceiling carries in half an interval.
            return self.change(Some(floor), now);
        }
        let lossy = r.shard_loss_ppm > 0 || r.frames_lost > 0 || r.frames_recovered > 0;
        if lossy {
            self.last_lossy = Some(now);
        }
        if r.frames_lost == 0 {
            self.lossy_since = None;
        } else {
            let since = *self.lossy_since.get_or_insert(now);
            if now.duration_since(since) >= SUSTAIN && self.may_change(now) {
                let lower = match self.ceiling_kbps {
                    None => release,
                    Some(c) => c / 2,
                }
                .max(floor);
                self.lossy_since = None;
                if Some(lower) != self.ceiling_kbps {
                    return self.change(Some(lower), now);
                }
            }
            return None;
        }
        let c = self.ceiling_kbps?;
        let clean_for = self
            .last_lossy
            .map_or(CLEAN_HOLD, |t| now.duration_since(t));
        if lossy || clean_for < CLEAN_HOLD || !self.may_change(now) {
            return None;
        }
        let up = c.saturating_mul(2);
        self.change((up < release).then_some(up), now)
    }

    fn may_change(&self, now: Instant) -> bool {
        self.last_change
            .is_none_or(|t| now.duration_since(t) >= CHANGE_INTERVAL)
    }

    fn change(&mut self, to: Option<u64>, now: Instant) -> Option<PaceChange> {
        self.ceiling_kbps = to;
        self.last_change = Some(now);
        Some(to.map_or(PaceChange::Link, PaceChange::Kbps))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How often the tests' client reports (the real client's interval).
    const REPORT_EVERY: Duration = Duration::from_millis(250);
    /// A 100 Mbit/s session with 20 % parity in 1428 B shards.
    const WIRE: u64 = 126_051;

    fn report(ppm: u32, recovered: u64, lost: u64) -> LossReport {
        LossReport {
            epoch: 0,
            frames_received: 30,
            frames_recovered: recovered,
            frames_lost: lost,
            shard_loss_ppm: ppm,
        }
    }

    /// Feeds `r` every [`REPORT_EVERY`] from `*now` for `d`; the changes with their times.
    fn run(
        p: &mut NativePace,
        now: &mut Instant,
        d: Duration,
        r: &LossReport,
        wire: u64,
    ) -> Vec<(Instant, PaceChange)> {
        let end = *now + d;
        let mut out = Vec::new();
        while *now < end {
            *now += REPORT_EVERY;
            if let Some(c) = p.on_report(r, wire, *now) {
                out.push((*now, c));
            }
        }
        out
    }

    #[test]
    fn the_wire_rate_counts_parity_and_datagram_overhead() {
        // 100 Mbit/s + 20 % = 120 Mbit/s, × (1428 + 72) / 1428.
        assert_eq!(wire_kbps(100_000, 20, 1428), WIRE);
        assert_eq!(wire_kbps(1_000_000, 0, 8908), 1_008_083);
        assert!(
            wire_kbps(u64::MAX, 255, 0) >= u64::MAX / 100,
            "saturates, no panic"
        );
        assert_eq!(PaceChange::Link.ipc_kbps(), 0);
        assert_eq!(PaceChange::Kbps(0).ipc_kbps(), 1, "never the link's 0");
    }

    /// Lost frames for 10 s: nothing before SUSTAIN, then the first cut to 8× the wire rate,
    /// halvings a CHANGE_INTERVAL apart, and never below the floor (the frame in half its
    /// interval).
    #[test]
    fn sustained_loss_lowers_the_ceiling_to_the_floor_and_no_further() {
        let t0 = Instant::now();
        let mut now = t0;
        let mut p = NativePace::new(t0);
        let changes = run(
            &mut p,
            &mut now,
            Duration::from_secs(10),
            &report(80_000, 2, 3),
            WIRE,
        );
        let rates: Vec<PaceChange> = changes.iter().map(|c| c.1).collect();
        assert_eq!(
            rates,
            [
                PaceChange::Kbps(8 * WIRE),
                PaceChange::Kbps(4 * WIRE),
                PaceChange::Kbps(2 * WIRE),
            ]
        );
        assert!(changes[0].0 - t0 >= SUSTAIN);
        for w in changes.windows(2) {
            assert!(w[1].0 - w[0].0 >= CHANGE_INTERVAL);
        }
        assert_eq!(p.ceiling_kbps(), Some(FLOOR_MULTIPLE * WIRE));
    }

    /// Loss FEC recovers, or lost frames that stop before SUSTAIN, change nothing.
    #[test]
    fn loss_within_fec_or_short_bursts_leave_the_link_rate() {
        let t0 = Instant::now();
        let mut now = t0;
        let mut p = NativePace::new(t0);
        let recovered = report(50_000, 10, 0);
        assert!(run(&mut p, &mut now, Duration::from_secs(10), &recovered, WIRE).is_empty());
        // Three lossy reports (750 ms), one without lost frames, three again: never sustained.
        for _ in 0..5 {
            assert!(run(&mut p, &mut now, SUSTAIN * 3 / 4, &report(0, 0, 1), WIRE).is_empty());
            assert!(run(&mut p, &mut now, REPORT_EVERY, &recovered, WIRE).is_empty());
        }
        assert_eq!(p.ceiling_kbps(), None);
    }

    /// After the loss stops: nothing for CLEAN_HOLD, then doublings a CHANGE_INTERVAL apart
    /// until the ceiling is lifted; a lossy report in between restarts the hold.
    #[test]
    fn clean_reports_raise_the_ceiling_back_to_the_link_rate() {
        let t0 = Instant::now();
        let mut now = t0;
        let mut p = NativePace::new(t0);
        run(
            &mut p,
            &mut now,
            Duration::from_secs(8),
            &report(80_000, 0, 2),
            WIRE,
        );
        assert_eq!(p.ceiling_kbps(), Some(2 * WIRE));
        let lossy_end = now;
        // Recovered-by-FEC reports are not clean: the hold has not started.
        assert!(run(&mut p, &mut now, CLEAN_HOLD * 2, &report(1_000, 1, 0), WIRE).is_empty());
        let clean_start = now;
        let changes = run(
            &mut p,
            &mut now,
            Duration::from_secs(20),
            &report(0, 0, 0),
            WIRE,
        );
        assert!(lossy_end < clean_start);
        let rates: Vec<PaceChange> = changes.iter().map(|c| c.1).collect();
        assert_eq!(rates, [PaceChange::Kbps(4 * WIRE), PaceChange::Link]);
        assert!(changes[0].0 - clean_start >= CLEAN_HOLD);
        assert!(changes[1].0 - changes[0].0 >= CHANGE_INTERVAL);
        assert_eq!(p.ceiling_kbps(), None);
    }

    /// A wire rate that grows past the ceiling's floor (a reconfigure doubling the bitrate)
    /// lifts the ceiling to the new floor at the next report, even inside CHANGE_INTERVAL.
    #[test]
    fn the_floor_follows_the_wire_rate_at_once() {
        let t0 = Instant::now();
        let mut now = t0;
        let mut p = NativePace::new(t0);
        run(
            &mut p,
            &mut now,
            Duration::from_secs(8),
            &report(0, 0, 2),
            WIRE,
        );
        assert_eq!(p.ceiling_kbps(), Some(2 * WIRE));
        now += REPORT_EVERY;
        assert_eq!(
            p.on_report(&report(0, 0, 2), 3 * WIRE, now),
            Some(PaceChange::Kbps(6 * WIRE))
        );
        // At the floor already: more loss changes nothing.
        assert!(
            run(
                &mut p,
                &mut now,
                Duration::from_secs(5),
                &report(0, 0, 2),
                3 * WIRE
            )
            .is_empty()
        );
    }
}
