//! Port plan of one strahl instance under test.
//!
//! Contract: [`PortPlan::pick`] returns a GameStream base port whose every derived port is free
//! on loopback at the time of the call, below Linux's ephemeral range (32768..) so that other
//! tests' port-0 binds never land on it. Bases lie on a 32-port grid: an instance uses
//! base − 5 ..= base + 25, so two bases never overlap. Candidates are drawn from the pid and a
//! per-process counter, so parallel tests (threads) and test binaries (processes) spread out.

use std::net::{TcpListener, UdpSocket};
use std::sync::atomic::{AtomicU32, Ordering};

/// Grid step between two bases: wider than one instance's span (−5 ..= +25 = 31 ports).
const GRID: u16 = 32;
/// First base of the grid (base − 5 stays above the well-known/registered low ports).
const GRID_START: u16 = 20_016;
/// Bases on the grid below 32768 − 26 (the ephemeral range starts at 32768).
const GRID_SLOTS: u32 = 395;
/// Candidates tried before giving up (each costs a few binds).
const ATTEMPTS: u32 = 300;

/// Every port one instance listens on (gamestream-host.md §A1 offsets from the base).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortPlan {
    /// HTTP nvhttp (the base).
    pub http: u16,
    /// HTTPS nvhttp (base − 5).
    pub https: u16,
    /// RTSP (base + 21, TCP).
    pub rtsp: u16,
    /// Video (base + 9, UDP).
    pub video: u16,
    /// ENet control (base + 10, UDP).
    pub control: u16,
    /// Audio (base + 11, UDP).
    pub audio: u16,
    /// Status page, JSON API and /metrics (TCP): base + 24, inside this instance's slot.
    pub status: u16,
    /// Native protocol QUIC control (UDP): base + 25, inside this instance's slot.
    pub native: u16,
}

impl PortPlan {
    /// The plan for `base`.
    pub fn for_base(base: u16) -> PortPlan {
        PortPlan {
            http: base,
            https: base - 5,
            rtsp: base + 21,
            video: base + 9,
            control: base + 10,
            audio: base + 11,
            status: base + 24,
            native: base + 25,
        }
    }

    /// The appliance's defaults (`appliance/strahl.toml`: base 47989, status 47990, native
    /// 47900), for a fresh network namespace where every port is free.
    pub fn defaults() -> PortPlan {
        PortPlan {
            status: 47_990,
            native: 47_900,
            ..PortPlan::for_base(47_989)
        }
    }

    /// A plan whose ports are all free now, or `None` after [`ATTEMPTS`] candidates.
    pub fn pick() -> Option<PortPlan> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        for _ in 0..ATTEMPTS {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let slot = std::process::id()
                .wrapping_mul(2_654_435_761)
                .wrapping_add(n.wrapping_mul(40_503))
                % GRID_SLOTS;
            let plan = PortPlan::for_base(GRID_START + slot as u16 * GRID);
            if plan.all_free() {
                return Some(plan);
            }
        }
        None
    }

    fn all_free(&self) -> bool {
        let tcp = [self.https, self.http, self.rtsp, self.status];
        let udp = [self.video, self.control, self.audio, self.native];
        tcp.iter()
            .all(|p| TcpListener::bind(("127.0.0.1", *p)).is_ok())
            && udp
                .iter()
                .all(|p| UdpSocket::bind(("127.0.0.1", *p)).is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_do_not_overlap_and_stay_below_the_ephemeral_range() {
        let last = PortPlan::for_base(GRID_START + (GRID_SLOTS as u16 - 1) * GRID);
        assert!(last.native < 32_768, "{last:?}");
        let a = PortPlan::for_base(GRID_START);
        let b = PortPlan::for_base(GRID_START + GRID);
        let a_max = [a.http, a.rtsp, a.status, a.native].into_iter().max();
        assert!(a_max < Some(b.https), "{a:?} overlaps {b:?}");
    }

    #[test]
    fn picked_plans_differ_and_are_free() {
        let a = PortPlan::pick().expect("a free plan");
        let b = PortPlan::pick().expect("a second free plan");
        assert_ne!(a.http, b.http);
        assert!(TcpListener::bind(("127.0.0.1", a.http)).is_ok());
    }
}
