//! The transports the tx tile sends through, and the per-destination choice between them.
//!
//! Contract:
//! - [`Paths`] owns every transmit queue of the media plane: at most one AF_XDP socket (bound at
//!   start-up, before capabilities are dropped, to the data plane's interface and queue) that
//!   serves every session, and one kernel-socket queue per stream port (io_uring or sendmmsg,
//!   as start-up chose) bound to `0.0.0.0:<port>` — the same socket also receives the client's
//!   pings for that port, so the source port the client sees is the stream's port on every
//!   transport.
//! - [`Paths::route`] decides where one destination's packets go, from the kernel's own routing
//!   and neighbour tables over netlink: a unicast IPv4 route out of the AF_XDP interface with a
//!   resolved next hop → AF_XDP with that destination's Ethernet/IPv4/UDP template (source port
//!   = the stream's port); anything else (loopback, a local address, another interface, IPv6,
//!   a next hop not yet resolved) → the port's kernel socket. An unresolved next hop is retried
//!   on the housekeeping cadence (the kernel socket's own datagrams make the kernel resolve it)
//!   until [`NEIGH_WAIT`] has passed.
//! - Nothing was sent at start to prove AF_XDP works. The first [`VERIFY_PACKETS`] packets a
//!   real session sends through it are checked against the interface's kernel TX packet counter
//!   ([`Paths::check_verification`]); if they were not all counted within [`VERIFY_WAIT`], AF_XDP
//!   is marked failed (one log line, `strahl_media_transport_fallbacks_total{from="af_xdp"}`)
//!   and every destination moves to its kernel socket. A socket the kernel runs in zero-copy is
//!   verified on its completions alone: the driver completes a frame only once the device has
//!   taken it, and drivers need not count zero-copy frames in the interface counter (virtio-net
//!   on 7.3 counts none: found in the VM lab, where the fallback then moved a working zero-copy
//!   stream to a kernel socket). Kernel sockets report refusals through their syscalls (counted
//!   by the queues), so they need no such check.
//! - Runs on the tile thread; route lookups are netlink round trips at session set-up and on the
//!   housekeeping cadence, never per packet.

use std::net::{SocketAddr, UdpSocket};

use strahl_net::mmsg::{MmsgConfig, MmsgTx};
use strahl_net::netlink::{self, RouteKind};
use strahl_net::selftest::tx_packets;
use strahl_net::uring::{UringConfig, UringTx};
use strahl_net::xdp::XdpTx;
use strahl_net::{TransportKind, TxQueue};

use super::MediaError;

/// How long a destination may wait for its next hop's link-layer address before it stays on its
/// kernel socket for good (ARP answers in well under a millisecond on a LAN; 2 s covers a lossy
/// one and matches `strahl_net::xdp::NEIGH_TIMEOUT`).
pub const NEIGH_WAIT_NS: u64 = 2_000_000_000;
/// Packets of a real session that must be counted on the interface before AF_XDP is trusted:
/// one GameStream block's worth at least, small enough to pass within the first frame.
pub const VERIFY_PACKETS: u64 = 32;
/// How long after its first packet AF_XDP has to show them in the interface counter. Copy mode
/// transmits within a kick; 1 s leaves room for a loaded 2-core machine.
pub const VERIFY_WAIT_NS: u64 = 1_000_000_000;

/// Where one stream's packets go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// No destination yet (waiting for the client's ping).
    Unrouted,
    /// The shared AF_XDP socket.
    Xdp,
    /// The kernel socket of this stream port.
    Kernel(u16),
}

/// What the AF_XDP path is known to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XdpState {
    /// No session has used it yet.
    Unverified,
    /// Counting the first packets: TX counter and completions at the start.
    Verifying {
        counter_before: u64,
        completed_before: u64,
        deadline_ns: u64,
    },
    Verified,
    /// Its packets were not seen leaving: never used again by this process.
    Failed,
}

/// The AF_XDP socket and what we know of it.
pub struct XdpPath {
    pub q: XdpTx,
    pub ifindex: u32,
    pub ifname: String,
    pub mode: String,
    pub state: XdpState,
    /// Submitted and not yet kicked.
    pub held: usize,
}

/// One stream port's kernel socket and queue.
pub struct PortPath {
    pub port: u16,
    /// The socket the queue sends on, for receiving pings (same socket, cloned fd; blocking,
    /// read with `MSG_DONTWAIT`).
    pub sock: UdpSocket,
    pub q: Box<dyn TxQueue + Send>,
    pub kind: TransportKind,
    pub held: usize,
}

/// The outcome of routing one destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routed {
    pub path: Path,
    /// For the log and the status page: interface, next hop, why not AF_XDP.
    pub detail: String,
    /// AF_XDP would serve this destination once its next hop resolves.
    pub neighbour_pending: bool,
}

/// Every queue of the media plane.
pub struct Paths {
    pub xdp: Option<XdpPath>,
    pub ports: Vec<PortPath>,
}

impl Paths {
    pub fn new(xdp: Option<XdpPath>) -> Self {
        Self {
            xdp,
            ports: Vec::new(),
        }
    }

    pub fn port_mut(&mut self, port: u16) -> Option<&mut PortPath> {
        self.ports.iter_mut().find(|p| p.port == port)
    }

    /// The queue behind `path` and its held count.
    pub fn queue(&mut self, path: Path) -> Option<(&mut dyn TxQueue, &mut usize)> {
        match path {
            Path::Unrouted => None,
            Path::Xdp => self
                .xdp
                .as_mut()
                .map(|x| (&mut x.q as &mut dyn TxQueue, &mut x.held)),
            Path::Kernel(port) => self
                .ports
                .iter_mut()
                .find(|p| p.port == port)
                .map(|p| (p.q.as_mut() as &mut dyn TxQueue, &mut p.held)),
        }
    }

    /// The transport behind `path`.
    pub fn kind(&self, path: Path) -> Option<TransportKind> {
        match path {
            Path::Unrouted => None,
            Path::Xdp => Some(TransportKind::AfXdp),
            Path::Kernel(port) => self.ports.iter().find(|p| p.port == port).map(|p| p.kind),
        }
    }

    /// Decide `dest`'s path for a stream on `port` (see the module contract).
    pub fn route(&mut self, dest: SocketAddr, port: u16) -> Routed {
        let kernel = |detail: String| Routed {
            path: Path::Kernel(port),
            detail,
            neighbour_pending: false,
        };
        let Some(x) = self.xdp.as_mut() else {
            return kernel(String::new());
        };
        if x.state == XdpState::Failed {
            return kernel(format!("af_xdp on {} failed its verification", x.ifname));
        }
        let SocketAddr::V4(d4) = dest else {
            return kernel("IPv6 destination (the AF_XDP socket is IPv4)".into());
        };
        let r = match netlink::route_get(dest.ip()) {
            Ok(r) => r,
            Err(e) => return kernel(format!("route lookup: {e}")),
        };
        if r.kind != RouteKind::Unicast || r.ifindex != x.ifindex {
            let why = if r.kind == RouteKind::Local {
                "a local address".to_string()
            } else {
                format!("routed via ifindex {} ({:?})", r.ifindex, r.kind)
            };
            return kernel(format!("{why}, not {}", x.ifname));
        }
        let hop = r.next_hop(dest.ip());
        match netlink::neighbour(x.ifindex, hop) {
            Ok(Some(mac)) => {
                x.q.add_destination_from(d4, port, mac);
                Routed {
                    path: Path::Xdp,
                    detail: format!(
                        "{} {}, next hop {hop} {}",
                        x.ifname,
                        x.mode,
                        mac.iter()
                            .map(|b| format!("{b:02x}"))
                            .collect::<Vec<_>>()
                            .join(":")
                    ),
                    neighbour_pending: false,
                }
            }
            Ok(None) => Routed {
                path: Path::Kernel(port),
                detail: format!(
                    "next hop {hop} on {} not resolved yet (AF_XDP once it is)",
                    x.ifname
                ),
                neighbour_pending: true,
            },
            Err(e) => kernel(format!("neighbour lookup on {}: {e}", x.ifname)),
        }
    }

    /// A stream starts sending through AF_XDP: begin counting if nothing was verified yet.
    pub fn start_verification(&mut self, now_ns: u64) {
        if let Some(x) = self.xdp.as_mut()
            && x.state == XdpState::Unverified
            && let Some(before) = tx_packets(&x.ifname)
        {
            x.state = XdpState::Verifying {
                counter_before: before,
                completed_before: x.q.counters().completed,
                deadline_ns: now_ns + VERIFY_WAIT_NS,
            };
        }
    }

    /// Housekeeping: settle a running verification. Returns `Some(true)` when AF_XDP just passed,
    /// `Some(false)` when it just failed (the caller moves its destinations), `None` otherwise.
    pub fn check_verification(&mut self, now_ns: u64) -> Option<bool> {
        let x = self.xdp.as_mut()?;
        let XdpState::Verifying {
            counter_before,
            completed_before,
            deadline_ns,
        } = x.state
        else {
            return None;
        };
        let completed = x.q.counters().completed - completed_before;
        let counted = tx_packets(&x.ifname)
            .unwrap_or(counter_before)
            .saturating_sub(counter_before);
        let submitted = x.q.counters().submitted;
        let zero_copy = x.q.bind_mode() == strahl_net::xdp::BindMode::ZeroCopy;
        match verdict(
            completed,
            counted,
            submitted,
            zero_copy,
            now_ns,
            deadline_ns,
        ) {
            Verdict::Pass => {
                x.state = XdpState::Verified;
                log::info!(
                    "af_xdp on {} verified: {completed} packets of a real session completed{}, {counted} counted by the kernel's TX counter",
                    x.ifname,
                    if zero_copy {
                        " by the device (zero-copy)"
                    } else {
                        ""
                    }
                );
                Some(true)
            }
            Verdict::Wait => None,
            Verdict::Extend => {
                x.state = XdpState::Verifying {
                    counter_before,
                    completed_before,
                    deadline_ns: now_ns + VERIFY_WAIT_NS,
                };
                None
            }
            Verdict::Fail => {
                x.state = XdpState::Failed;
                log::warn!(
                    "af_xdp on {}: {completed} packets completed but only {counted} counted on the interface within {} ms: falling back to kernel sockets for every session",
                    x.ifname,
                    VERIFY_WAIT_NS / 1_000_000
                );
                Some(false)
            }
        }
    }

    /// Flush and reclaim every queue with held frames (or all, with `all`).
    pub fn kick(&mut self, all: bool) {
        if let Some(x) = self.xdp.as_mut()
            && (all || x.held > 0)
        {
            kick_one(&mut x.q, "af_xdp");
            x.held = 0;
        }
        for p in &mut self.ports {
            if all || p.held > 0 {
                kick_one(p.q.as_mut(), "kernel socket");
                p.held = 0;
            }
        }
    }

    /// Submitted and not yet kicked, over every queue.
    pub fn held(&self) -> usize {
        self.xdp.as_ref().map_or(0, |x| x.held) + self.ports.iter().map(|p| p.held).sum::<usize>()
    }
}

/// What a verification round concludes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Enough packets completed and the interface counted at least as many.
    Pass,
    /// Not yet decided.
    Wait,
    /// The deadline passed before anything was submitted: start the window again.
    Extend,
    /// The deadline passed and the interface did not count what AF_XDP completed.
    Fail,
}

/// Pure decision of [`Paths::check_verification`]: `completed` AF_XDP packets since the window
/// opened, `counted` by the interface's TX counter over the same window (other traffic only
/// adds, so a pass means at least our packets left), `submitted` ever on the socket. In
/// `zero_copy` a completion is the device's own report (the counter is not needed).
pub fn verdict(
    completed: u64,
    counted: u64,
    submitted: u64,
    zero_copy: bool,
    now_ns: u64,
    deadline_ns: u64,
) -> Verdict {
    if completed >= VERIFY_PACKETS && (zero_copy || counted >= completed) {
        Verdict::Pass
    } else if now_ns < deadline_ns {
        Verdict::Wait
    } else if submitted == 0 {
        Verdict::Extend
    } else {
        Verdict::Fail
    }
}

/// Flush + reclaim; a broken queue is logged (steady-state anomalies stay counters, and the
/// session's packets then count as not sent).
fn kick_one(q: &mut dyn TxQueue, what: &str) {
    if let Err(e) = q.flush().and_then(|_| q.reclaim()) {
        log::warn!("{what} queue: {e}");
    }
}

/// Kernel-socket queue slots per stream port: more than one frame's 4 × 255 packets, so a frame
/// never waits for slots.
const PORT_FRAMES: u32 = 2048;
/// Send buffer of a stream port's kernel socket: a few frames at 1 Gbit/s (Sunshine: 1 MiB).
const SOCKET_BUFFER: usize = 4 << 20;
/// A stream port's kernel socket (bound `0.0.0.0:port`, non-blocking, for pings and sending)
/// and its queue of the start-up's kernel transport.
pub(super) fn open_port(
    port: u16,
    kind: TransportKind,
    max_payload: usize,
) -> Result<PortPath, MediaError> {
    let env = |what: &str, e: &dyn std::fmt::Display| {
        MediaError::Environment(format!("stream port 0.0.0.0:{port}: {what}: {e}"))
    };
    // Blocking on purpose: io_uring waits for socket space itself on a blocking socket (on an
    // O_NONBLOCK one its sends complete with EAGAIN and are lost: whole frames went missing),
    // sendmmsg passes MSG_DONTWAIT per call, and pings are read with MSG_DONTWAIT too.
    let sock = UdpSocket::bind(("0.0.0.0", port)).map_err(|e| env("bind", &e))?;
    let rx = sock.try_clone().map_err(|e| env("clone", &e))?;
    let q: Box<dyn TxQueue + Send> = match kind {
        TransportKind::IoUring => Box::new(
            UringTx::new(
                sock,
                UringConfig {
                    frames: PORT_FRAMES,
                    frame_payload: max_payload,
                    socket_buffer: SOCKET_BUFFER,
                    ..UringConfig::default()
                },
            )
            .map_err(|e| env("io_uring", &e))?,
        ),
        _ => Box::new(
            MmsgTx::new(
                sock,
                MmsgConfig {
                    frames: PORT_FRAMES,
                    frame_payload: max_payload,
                    gso_segments: 0,
                    socket_buffer: SOCKET_BUFFER,
                },
            )
            .map_err(|e| env("sendmmsg queue", &e))?,
        ),
    };
    let kind = if kind == TransportKind::IoUring {
        kind
    } else {
        TransportKind::SendMmsg
    };
    Ok(PortPath {
        port,
        sock: rx,
        q,
        kind,
        held: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verification_passes_only_when_the_interface_counted_what_af_xdp_completed() {
        let d = VERIFY_WAIT_NS;
        assert_eq!(
            verdict(VERIFY_PACKETS, VERIFY_PACKETS, 40, false, 0, d),
            Verdict::Pass
        );
        assert_eq!(
            verdict(100, 250, 100, false, 0, d),
            Verdict::Pass,
            "other traffic only adds"
        );
        assert_eq!(
            verdict(VERIFY_PACKETS - 1, 99, 40, false, 0, d),
            Verdict::Wait,
            "too few yet"
        );
        assert_eq!(
            verdict(100, 10, 100, false, 0, d),
            Verdict::Wait,
            "before the deadline"
        );
        assert_eq!(
            verdict(100, 10, 100, false, d, d),
            Verdict::Fail,
            "not seen leaving"
        );
        assert_eq!(
            verdict(0, 0, 0, false, d, d),
            Verdict::Extend,
            "nothing sent yet"
        );
        assert_eq!(
            verdict(5, 5, 5, false, d, d),
            Verdict::Fail,
            "too few ever completed"
        );
    }

    #[test]
    fn zero_copy_passes_on_the_devices_completions() {
        let d = VERIFY_WAIT_NS;
        // virtio-net counts no zero-copy frame in the interface counter (VM lab, 7.3).
        assert_eq!(verdict(VERIFY_PACKETS, 0, 40, true, 0, d), Verdict::Pass);
        assert_eq!(
            verdict(VERIFY_PACKETS - 1, 0, 40, true, 0, d),
            Verdict::Wait,
            "too few completed yet"
        );
        assert_eq!(
            verdict(3, 0, 40, true, d, d),
            Verdict::Fail,
            "submitted, never completed by the device"
        );
        // Copy mode still needs the counter.
        assert_eq!(verdict(VERIFY_PACKETS, 0, 40, false, d, d), Verdict::Fail);
    }
}
