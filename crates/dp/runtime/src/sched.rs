//! Sans-IO scheduling decisions of the tx tile: how to wait for a release and when to kick.
//!
//! Contract:
//! - [`wait_plan`] maps (`now`, release time) to [`Wait`]: send now, busy-wait (spin) until the
//!   release, or sleep for part of the gap and ask again. Gaps shorter than
//!   [`SPIN_THRESHOLD_NS`] are spun; longer ones sleep until [`SLEEP_MARGIN_NS`] before the
//!   release, so the final approach is always a spin (the sleep's wake-up error never reaches
//!   the wire).
//! - [`should_kick`] decides whether submitted frames are flushed now (one syscall / ring kick)
//!   or held because the next release is so close that one kick for both is cheaper than the
//!   delay it adds ([`KICK_COALESCE_NS`]), bounded by [`MAX_HELD_PACKETS`].
//! - Pure functions of their arguments: no clock, no thread; the tile shell ([`crate::tile`])
//!   reads the clock and acts. Tests drive them with simulated time.

/// Gaps below this are busy-waited. A sleep–wake cycle costs 13–17 µs at minimum on the dev VM
/// and overshoots by up to ~60 µs with default timer slack (docs/measurements.md §pacing), so sleeping
/// for less than ~50 µs cannot be accurate: spinning is.
pub const SPIN_THRESHOLD_NS: u64 = 50_000;

/// A long wait sleeps until this long before the release, then spins. The hybrid "sleep until
/// deadline − 60 µs, then spin" kept p99 |t − schedule| at 0.07 µs (docs/measurements.md §pacing).
pub const SLEEP_MARGIN_NS: u64 = 60_000;

/// Submitted frames are held (no kick) when the next release is at most this far away: one
/// sendmmsg/io_uring submit costs a few µs (≈4 µs p50 for a blocking send, §5), so kicking
/// twice within 2 µs costs more than the delay of kicking once.
pub const KICK_COALESCE_NS: u64 = 2_000;

/// Never hold more than this many packets unkicked (one sendmmsg / io_uring batch, §3).
pub const MAX_HELD_PACKETS: usize = 64;

/// How to wait for a release at `release_ns`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// The release time has come: send.
    Now,
    /// Busy-wait on the clock until `until_ns`, then send.
    Spin { until_ns: u64 },
    /// Sleep this long, then read the clock and ask again.
    Sleep { for_ns: u64 },
}

/// The wait for a release at `release_ns` seen at `now_ns`.
pub fn wait_plan(now_ns: u64, release_ns: u64) -> Wait {
    if release_ns <= now_ns {
        return Wait::Now;
    }
    let gap = release_ns - now_ns;
    // Gaps up to the sleep margin are spun too: sleeping would leave nothing to sleep.
    if gap <= SPIN_THRESHOLD_NS.max(SLEEP_MARGIN_NS) {
        Wait::Spin {
            until_ns: release_ns,
        }
    } else {
        Wait::Sleep {
            for_ns: gap - SLEEP_MARGIN_NS,
        }
    }
}

/// Whether to flush now. `held` frames are submitted and unflushed; `next_release_ns` is when
/// the next batch may go (`None`: nothing queued, so flush).
pub fn should_kick(now_ns: u64, held: usize, next_release_ns: Option<u64>) -> bool {
    if held == 0 {
        return false;
    }
    if held >= MAX_HELD_PACKETS {
        return true;
    }
    match next_release_ns {
        None => true,
        Some(at) => at.saturating_sub(now_ns) > KICK_COALESCE_NS,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use strahl_pacer::{Backlog, Pacer, PacerConfig};

    #[test]
    fn short_gaps_spin_long_gaps_sleep_then_spin() {
        assert_eq!(wait_plan(100, 100), Wait::Now);
        assert_eq!(wait_plan(200, 100), Wait::Now, "late: send at once");
        assert_eq!(wait_plan(0, 10_000), Wait::Spin { until_ns: 10_000 });
        assert_eq!(
            wait_plan(0, SPIN_THRESHOLD_NS - 1),
            Wait::Spin {
                until_ns: SPIN_THRESHOLD_NS - 1
            }
        );
        assert_eq!(
            wait_plan(0, 1_000_000),
            Wait::Sleep {
                for_ns: 1_000_000 - SLEEP_MARGIN_NS
            }
        );
        // After sleeping exactly as asked, the remaining gap is spun.
        let Wait::Sleep { for_ns } = wait_plan(0, 1_000_000) else {
            unreachable!()
        };
        assert_eq!(
            wait_plan(for_ns, 1_000_000),
            Wait::Spin {
                until_ns: 1_000_000
            }
        );
    }

    #[test]
    fn kicks_coalesce_only_when_the_next_release_is_close() {
        assert!(!should_kick(0, 0, None), "nothing held");
        assert!(should_kick(0, 1, None), "nothing queued: flush");
        assert!(!should_kick(0, 1, Some(KICK_COALESCE_NS)), "close: hold");
        assert!(should_kick(0, 1, Some(KICK_COALESCE_NS + 1)), "far: kick");
        assert!(should_kick(0, MAX_HELD_PACKETS, Some(0)), "full batch");
    }

    /// What the tile loop does, in simulated time: (sleeps, spins, kicks, max lateness).
    fn simulate(rate_bps: u64, packets: u64, size: u64, oversleep_ns: u64) -> (u32, u32, u32, u64) {
        let mut now = 0u64;
        let mut pacer = Pacer::new(PacerConfig::new(rate_bps), now);
        let mut left = packets;
        let (mut sleeps, mut spins, mut kicks, mut held, mut late) = (0, 0, 0, 0usize, 0u64);
        for _ in 0..packets * 8 + 100 {
            if left == 0 {
                break;
            }
            let backlog = Backlog {
                packets: left,
                bytes: left * size,
            };
            let rel = pacer.next_release(now, backlog).unwrap();
            match wait_plan(now, rel.at_ns) {
                Wait::Now => {}
                Wait::Spin { until_ns } => {
                    spins += 1;
                    now = until_ns;
                }
                Wait::Sleep { for_ns } => {
                    sleeps += 1;
                    now += for_ns + oversleep_ns; // the kernel wakes us late
                    continue;
                }
            }
            late = late.max(now - rel.at_ns);
            let n = u64::from(rel.packets).min(left);
            left -= n;
            held += n as usize;
            pacer.on_sent(now, n as u32, n * size);
            let next = pacer
                .next_release(
                    now,
                    Backlog {
                        packets: left,
                        bytes: left * size,
                    },
                )
                .map(|r| r.at_ns);
            if should_kick(now, held, next) {
                kicks += 1;
                held = 0;
            }
        }
        assert_eq!(left, 0, "all sent within the loop bound");
        assert_eq!(held, 0, "everything kicked at the end");
        (sleeps, spins, kicks, late)
    }

    #[test]
    fn at_100k_pps_every_packet_is_spun_and_kicked_alone() {
        // 1400 B at 100k pkt/s = 1.12 Gbit/s: 10 µs apart, below the spin threshold.
        let (sleeps, spins, kicks, late) = simulate(1_120_000_000, 1000, 1400, 0);
        assert_eq!(sleeps, 0);
        assert!(spins > 900, "spins {spins}");
        assert!(kicks >= 990, "one kick per release: {kicks}");
        assert_eq!(late, 0);
    }

    #[test]
    fn at_low_rate_waits_sleep_then_spin_and_absorb_oversleep() {
        // 1400 B at 1 Mbit/s: 11.2 ms apart.
        let (sleeps, spins, kicks, late) = simulate(1_000_000, 20, 1400, 40_000);
        assert!(sleeps >= 17, "sleeps {sleeps}");
        assert!(spins >= 17, "final approach spun: {spins}");
        // The bucket starts full (MIN_BURST_BYTES = 3000 B): the first release carries 2 packets.
        assert_eq!(kicks, 19);
        assert_eq!(late, 0, "a 40 µs oversleep stays inside the 60 µs margin");
    }

    #[test]
    fn at_link_rate_releases_are_batched_into_few_kicks() {
        // 10 Gbit/s, 1400 B: 1.1 µs apart, so the pacer batches and kicks coalesce.
        let (_, _, kicks, late) = simulate(10_000_000_000, 6400, 1400, 0);
        assert!(kicks <= 6400 / 4, "kicks {kicks}");
        assert_eq!(late, 0);
    }

    proptest! {
        #[test]
        fn never_sends_early_and_never_sleeps_past_the_margin(now in 0u64..1u64 << 50, gap in 0u64..1u64 << 32) {
            let rel = now + gap;
            match wait_plan(now, rel) {
                Wait::Now => prop_assert_eq!(gap, 0),
                Wait::Spin { until_ns } => {
                    prop_assert_eq!(until_ns, rel);
                    prop_assert!(gap <= SPIN_THRESHOLD_NS.max(SLEEP_MARGIN_NS));
                }
                Wait::Sleep { for_ns } => {
                    prop_assert!(for_ns > 0);
                    prop_assert!(gap >= SPIN_THRESHOLD_NS);
                    prop_assert_eq!(now + for_ns + SLEEP_MARGIN_NS, rel);
                }
            }
        }
    }
}
