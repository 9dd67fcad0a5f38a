//! Start-up transport self-test: AF_XDP → io_uring → sendmmsg, first one whose probe leaves wins.
//!
//! Contract:
//! - Each candidate is built on the configured interface/address and sends [`PROBES`] small
//!   datagrams to `probe_dest` (default port 9, discard). It is accepted only if the transport
//!   reports them sent (and, for AF_XDP, completed) **and** the interface's kernel TX packet
//!   counter (`/proc/thread-self/net/dev`, the calling thread's namespace) grew by at least
//!   [`PROBES`] within [`PROBE_WAIT`]. Other traffic can only make the counter larger, so a pass
//!   means "at least as many packets as we sent left through this interface".
//! - Refusals are typed ([`Refusal`]: privilege, driver, kernel, probe not seen, not built) and
//!   carry the detail; the outcome has a one-line [`SelfTestOutcome::summary`] for the log and the
//!   status endpoint. Nothing is chosen silently: an empty candidate list or all refused is `Err`.
//! - Runs at start-up only (allocates freely); call it from the data plane's network namespace.
//! - [`prepare`] is the data plane's start-up check: it builds the candidates and sends nothing
//!   (the first packets of a real session are verified instead, by the media plane). The probing
//!   [`self_test`] remains for the transport tests and benches, which own both ends.

use crate::NetError;
use crate::mmsg::{MmsgConfig, MmsgTx};
use crate::tx::{TransportKind, TxQueue};
use crate::uring::{UringConfig, UringTx};
use std::fmt;
use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

/// Datagrams per probe.
pub const PROBES: u64 = 4;
/// How long to wait for the probes to show up in the interface counter and completions.
pub const PROBE_WAIT: Duration = Duration::from_millis(500);
const PROBE_PAYLOAD: &[u8] = b"strahl transport self-test probe";
/// Source port of AF_XDP probes when the configuration binds port 0 (any fixed non-zero port:
/// UDP source port 0 means "no reply port" and some middleboxes drop it).
#[cfg(feature = "xdp")]
const XDP_PROBE_SRC_PORT: u16 = 40_000;

/// What to test.
#[derive(Debug, Clone)]
pub struct SelfTestConfig {
    pub ifname: String,
    pub queue: u32,
    /// Local address for kernel sockets (port 0: any). AF_XDP uses the interface's IPv4 address.
    pub bind: SocketAddr,
    /// Where probes go; must be routed through `ifname`.
    pub probe_dest: SocketAddrV4,
    pub frames: u32,
    pub max_payload: usize,
    pub gso_segments: usize,
    /// Candidates in order of preference.
    pub candidates: Vec<TransportKind>,
}

impl SelfTestConfig {
    pub fn new(ifname: &str, bind: SocketAddr, probe_dest: SocketAddrV4) -> Self {
        Self {
            ifname: ifname.to_string(),
            queue: 0,
            bind,
            probe_dest,
            frames: 4096,
            max_payload: 1472,
            gso_segments: 0,
            candidates: vec![
                TransportKind::AfXdp,
                TransportKind::IoUring,
                TransportKind::SendMmsg,
            ],
        }
    }
}

/// Why a transport was not chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Compiled without the `xdp` feature.
    NotBuilt,
    /// Missing capability (EPERM/EACCES; AF_XDP needs CAP_NET_RAW, UMEM CAP_IPC_LOCK or memlock).
    NoPrivilege(String),
    /// The device or its driver refused (no XDP/AF_XDP support, no such device, bad queue).
    Driver(String),
    /// The kernel lacks or disables the facility (ENOSYS, io_uring disabled by sysctl, old ops).
    Kernel(String),
    /// Built, but the probe was not seen leaving the interface.
    ProbeNotSeen(String),
    Other(String),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::NotBuilt => f.write_str("not built (feature `xdp` off)"),
            Refusal::NoPrivilege(d) => write!(f, "no privilege: {d}"),
            Refusal::Driver(d) => write!(f, "driver/device: {d}"),
            Refusal::Kernel(d) => write!(f, "kernel: {d}"),
            Refusal::ProbeNotSeen(d) => write!(f, "probe not seen: {d}"),
            Refusal::Other(d) => write!(f, "{d}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub transport: TransportKind,
    pub reason: Refusal,
}

/// The chosen transport, ready to use, and why the ones before it were refused.
pub struct SelfTestOutcome {
    pub chosen: TransportKind,
    pub queue: Box<dyn TxQueue + Send>,
    pub refused: Vec<Refused>,
    /// Transport-specific mode (e.g. "copy mode", "SendZc + registered buffers").
    pub detail: String,
    pub summary: String,
}

/// All candidates refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoTransport {
    pub refused: Vec<Refused>,
    pub summary: String,
}

fn summary_of(chosen: Option<(TransportKind, &str)>, ifname: &str, refused: &[Refused]) -> String {
    let mut s = match chosen {
        Some((k, detail)) => format!("net: transport {k} on {ifname} ({detail})"),
        None => format!("net: no transport works on {ifname}"),
    };
    if refused.is_empty() {
        s.push_str("; nothing refused");
    } else {
        s.push_str("; refused: ");
        let parts: Vec<String> = refused
            .iter()
            .map(|r| format!("{} — {}", r.transport, r.reason))
            .collect();
        s.push_str(&parts.join("; "));
    }
    s
}

fn classify(e: &NetError, kind: TransportKind) -> Refusal {
    let (what, errno, text) = match e {
        NetError::Setup { what, source } | NetError::Broken { what, source } => {
            (*what, source.raw_os_error(), source.to_string())
        }
        NetError::Config(why) => return Refusal::Other(why.to_string()),
    };
    let detail = format!("{what}: {text}");
    match errno {
        Some(libc::EPERM | libc::EACCES) => {
            if kind == TransportKind::IoUring && io_uring_disabled() {
                Refusal::Kernel(format!("{detail} (kernel.io_uring_disabled is set)"))
            } else if kind == TransportKind::AfXdp {
                Refusal::NoPrivilege(format!("{detail} (AF_XDP sockets need CAP_NET_RAW)"))
            } else {
                Refusal::NoPrivilege(detail)
            }
        }
        Some(libc::ENOBUFS) if kind == TransportKind::AfXdp => Refusal::NoPrivilege(format!(
            "{detail} (UMEM over RLIMIT_MEMLOCK: needs CAP_IPC_LOCK or a larger limit)"
        )),
        Some(libc::EOPNOTSUPP | libc::ENODEV | libc::ENXIO | libc::EINVAL | libc::EBUSY) => {
            Refusal::Driver(detail)
        }
        Some(libc::ENOSYS | libc::EAFNOSUPPORT | libc::EPROTONOSUPPORT) => Refusal::Kernel(detail),
        _ => Refusal::Other(detail),
    }
}

fn io_uring_disabled() -> bool {
    std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .map(|s| s.trim() != "0")
        .unwrap_or(false)
}

/// TX packet counter of `ifname` from `/proc/thread-self/net/dev`.
pub fn tx_packets(ifname: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/net/dev").ok()?;
    parse_tx_packets(&text, ifname)
}

/// Parse the TX packet counter of `ifname` from `/proc/net/dev` text.
pub fn parse_tx_packets(text: &str, ifname: &str) -> Option<u64> {
    for line in text.lines().skip(2) {
        let (name, rest) = line.split_once(':')?;
        if name.trim() != ifname {
            continue;
        }
        // 8 receive fields, then transmit bytes, transmit packets.
        return rest.split_whitespace().nth(9)?.parse().ok();
    }
    None
}

/// Send the probes through `q` and check that they leave `ifname`.
fn probe(q: &mut dyn TxQueue, ifname: &str, dest: SocketAddrV4) -> Result<(), Refusal> {
    let before = tx_packets(ifname)
        .ok_or_else(|| Refusal::Driver(format!("{ifname} not in /proc/net/dev")))?;
    for _ in 0..PROBES {
        let f = q
            .alloc()
            .ok_or_else(|| Refusal::Other("no free frame for the probe".into()))?;
        q.payload_mut(&f)[..PROBE_PAYLOAD.len()].copy_from_slice(PROBE_PAYLOAD);
        q.submit(f, PROBE_PAYLOAD.len(), SocketAddr::V4(dest))
            .map_err(|e| Refusal::Other(format!("probe submit: {e}")))?;
    }
    let start = Instant::now();
    let total = q.free_frames() + q.pending(); // free frames once every probe completed
    let mut after = before;
    while start.elapsed() < PROBE_WAIT {
        q.flush()
            .map_err(|e| Refusal::ProbeNotSeen(format!("flush: {e}")))?;
        q.reclaim()
            .map_err(|e| Refusal::ProbeNotSeen(format!("reclaim: {e}")))?;
        after = tx_packets(ifname).unwrap_or(before);
        let c = q.counters();
        if c.dropped > 0 {
            let e = std::io::Error::from_raw_os_error(c.last_errno);
            return Err(Refusal::ProbeNotSeen(format!(
                "kernel refused the probe: {e}"
            )));
        }
        if q.pending() == 0 && q.free_frames() >= total && after >= before + PROBES {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Err(Refusal::ProbeNotSeen(format!(
        "{} of {PROBES} probes counted on {ifname} within {PROBE_WAIT:?} (transport sent {})",
        after.saturating_sub(before),
        q.counters().sent_packets
    )))
}

fn kernel_socket(cfg: &SelfTestConfig) -> Result<UdpSocket, NetError> {
    UdpSocket::bind(cfg.bind).map_err(|e| NetError::setup("bind UDP socket", e))
}

type Built = (Box<dyn TxQueue + Send>, String);

fn build(kind: TransportKind, cfg: &SelfTestConfig) -> Result<Built, Refusal> {
    match kind {
        TransportKind::AfXdp => build_xdp(cfg),
        TransportKind::IoUring => {
            let sock = kernel_socket(cfg).map_err(|e| classify(&e, kind))?;
            let ucfg = UringConfig {
                frames: cfg.frames,
                frame_payload: cfg.max_payload,
                gso_segments: cfg.gso_segments,
                ..Default::default()
            };
            let q = UringTx::new(sock, ucfg).map_err(|e| classify(&e, kind))?;
            let m = q.mode();
            let detail = format!(
                "{}{}, gso {}",
                if m.zero_copy { "SendZc" } else { "Send" },
                if m.registered_buffers {
                    " + registered buffers"
                } else {
                    ""
                },
                m.gso_segments
            );
            Ok((Box::new(q), detail))
        }
        TransportKind::SendMmsg => {
            let sock = kernel_socket(cfg).map_err(|e| classify(&e, kind))?;
            let mcfg = MmsgConfig {
                frames: cfg.frames,
                frame_payload: cfg.max_payload,
                gso_segments: cfg.gso_segments,
                ..Default::default()
            };
            let q = MmsgTx::new(sock, mcfg).map_err(|e| classify(&e, kind))?;
            let detail = format!(
                "batch {}, gso {}",
                crate::mmsg::MMSG_BATCH,
                q.gso_segments()
            );
            Ok((Box::new(q), detail))
        }
    }
}

#[cfg(feature = "xdp")]
fn build_xdp(cfg: &SelfTestConfig) -> Result<Built, Refusal> {
    use crate::xdp::{XdpPlan, XdpTx};
    let kind = TransportKind::AfXdp;
    // AF_XDP has no socket to take an ephemeral port from: use the bind port, or a fixed one.
    let port = if cfg.bind.port() == 0 {
        XDP_PROBE_SRC_PORT
    } else {
        cfg.bind.port()
    };
    let plan = XdpPlan::new(&cfg.ifname, cfg.queue, cfg.frames, cfg.max_payload, port);
    let mut q = XdpTx::new(plan).map_err(|e| classify(&e, kind))?;
    q.add_destination(cfg.probe_dest)
        .map_err(|e| Refusal::ProbeNotSeen(format!("next hop for {}: {e}", cfg.probe_dest)))?;
    let detail = xdp_mode_detail(&q);
    Ok((Box::new(q), detail))
}

#[cfg(not(feature = "xdp"))]
fn build_xdp(_cfg: &SelfTestConfig) -> Result<Built, Refusal> {
    Err(Refusal::NotBuilt)
}

/// Try the candidates in order; return the first whose probe leaves the interface.
pub fn self_test(cfg: &SelfTestConfig) -> Result<SelfTestOutcome, NoTransport> {
    let mut refused = Vec::new();
    for &kind in &cfg.candidates {
        let result = build(kind, cfg).and_then(|(mut q, detail)| {
            probe(q.as_mut(), &cfg.ifname, cfg.probe_dest).map(|()| (q, detail))
        });
        match result {
            Ok((queue, detail)) => {
                let summary = summary_of(Some((kind, &detail)), &cfg.ifname, &refused);
                return Ok(SelfTestOutcome {
                    chosen: kind,
                    queue,
                    refused,
                    detail,
                    summary,
                });
            }
            Err(reason) => refused.push(Refused {
                transport: kind,
                reason,
            }),
        }
    }
    let summary = summary_of(None, &cfg.ifname, &refused);
    Err(NoTransport { refused, summary })
}

/// What [`prepare`] built, without sending a packet: the AF_XDP socket (when a candidate and it
/// binds) and the best kernel-socket transport for destinations the AF_XDP interface does not
/// reach (loopback, other interfaces) — or for every destination when AF_XDP is not a candidate.
pub struct Prepared {
    /// The bound AF_XDP socket, ready for per-destination templates.
    #[cfg(feature = "xdp")]
    pub xdp: Option<crate::xdp::XdpTx>,
    /// How AF_XDP bound (copy / zero-copy), empty when it did not.
    pub xdp_detail: String,
    /// io_uring or sendmmsg: the first kernel-socket candidate that works here.
    pub kernel: Option<TransportKind>,
    pub kernel_detail: String,
    /// The first candidate that works, in preference order (the headline choice).
    pub chosen: Option<TransportKind>,
    pub refused: Vec<Refused>,
    /// One line for the log and the status endpoint.
    pub summary: String,
}

/// Frames of the throw-away kernel-socket queues [`prepare`] builds to check the facility.
const CHECK_FRAMES: u32 = 64;

/// Start-up check that sends nothing: each candidate is built (AF_XDP: UMEM + socket bound to
/// `cfg.ifname`/`cfg.queue`; io_uring: a ring with its registered buffers on an unbound-port
/// socket; sendmmsg: a socket), which proves privileges, kernel support and driver support. That
/// packets really leave is verified later on a real session's first packets (kernel TX counter),
/// so an appliance never sprays its LAN at start. `cfg.probe_dest` is not used.
/// AF_XDP is refused on `lo`: loopback has no NIC queue, and loopback clients are served by a
/// kernel socket anyway.
pub fn prepare(cfg: &SelfTestConfig) -> Prepared {
    let mut refused = Vec::new();
    #[cfg(feature = "xdp")]
    let mut xdp = None;
    let mut xdp_detail = String::new();
    let mut kernel = None;
    let mut kernel_detail = String::new();
    let mut chosen = None;
    for &kind in &cfg.candidates {
        let outcome = match kind {
            // Built first even on lo, so a missing privilege is named as such.
            TransportKind::AfXdp => prepare_xdp(cfg).and_then(|(_q, d)| {
                if cfg.ifname == "lo" {
                    return Err(Refusal::Driver(
                        "lo has no NIC queue (loopback clients use a kernel socket)".into(),
                    ));
                }
                #[cfg(feature = "xdp")]
                {
                    xdp = Some(_q);
                }
                Ok(d)
            }),
            TransportKind::IoUring | TransportKind::SendMmsg if kernel.is_some() => continue,
            TransportKind::IoUring | TransportKind::SendMmsg => {
                let mut check = cfg.clone();
                check.frames = CHECK_FRAMES;
                check.bind = SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, 0));
                build(kind, &check).map(|(_, d)| d)
            }
        };
        match outcome {
            Ok(detail) => {
                chosen.get_or_insert(kind);
                if kind == TransportKind::AfXdp {
                    xdp_detail = detail;
                } else {
                    kernel = Some(kind);
                    kernel_detail = detail;
                }
            }
            Err(reason) => refused.push(Refused {
                transport: kind,
                reason,
            }),
        }
    }
    let summary = match chosen {
        Some(TransportKind::AfXdp) => {
            let mut s = summary_of(
                Some((TransportKind::AfXdp, &xdp_detail)),
                &cfg.ifname,
                &refused,
            );
            if let Some(k) = kernel {
                s.push_str(&format!(
                    "; destinations off {} use {k} ({kernel_detail})",
                    cfg.ifname
                ));
            }
            s
        }
        Some(k) => summary_of(Some((k, &kernel_detail)), &cfg.ifname, &refused),
        None => summary_of(None, &cfg.ifname, &refused),
    };
    Prepared {
        #[cfg(feature = "xdp")]
        xdp,
        xdp_detail,
        kernel,
        kernel_detail,
        chosen,
        refused,
        summary: format!("{summary}; nothing sent at start (first session packets are verified)"),
    }
}

#[cfg(feature = "xdp")]
fn prepare_xdp(cfg: &SelfTestConfig) -> Result<(crate::xdp::XdpTx, String), Refusal> {
    use crate::xdp::{XdpPlan, XdpTx};
    let port = if cfg.bind.port() == 0 {
        XDP_PROBE_SRC_PORT
    } else {
        cfg.bind.port()
    };
    let plan = XdpPlan::new(&cfg.ifname, cfg.queue, cfg.frames, cfg.max_payload, port);
    let q = XdpTx::new(plan).map_err(|e| classify(&e, TransportKind::AfXdp))?;
    let detail = xdp_mode_detail(&q);
    Ok((q, detail))
}

#[cfg(not(feature = "xdp"))]
fn prepare_xdp(_cfg: &SelfTestConfig) -> Result<((), String), Refusal> {
    Err(Refusal::NotBuilt)
}

#[cfg(feature = "xdp")]
fn xdp_mode_detail(q: &crate::xdp::XdpTx) -> String {
    use crate::xdp::BindMode;
    match q.bind_mode() {
        // The kernel's report, not only the accepted bind flag: what the status line says is
        // what the driver runs.
        BindMode::ZeroCopy => match q.kernel_zero_copy() {
            Ok(true) => match q.native_xdp() {
                Some(Ok(_)) => "zero-copy, native XDP".to_string(),
                Some(Err(e)) => format!(
                    "zero-copy; native XDP not attached ({e}): the stack may lose this queue's \
                     receive traffic"
                ),
                None => "zero-copy".to_string(),
            },
            Ok(false) => "copy mode; bound with XDP_ZEROCOPY, yet the kernel reports copy".into(),
            Err(e) => format!("zero-copy (XDP_OPTIONS unreadable: {e})"),
        },
        BindMode::Copy { zero_copy_errno: 0 } => "copy mode".to_string(),
        BindMode::Copy { zero_copy_errno: e } => {
            format!(
                "copy mode; zero-copy refused: {}",
                std::io::Error::from_raw_os_error(e)
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_net_dev() {
        let text = "Inter-|   Receive                                                |  Transmit\n \
face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
lo:    1000      10    0    0    0     0          0         0     2000      20    0    0    0     0       0          0\n  \
vA1a: 5 6 0 0 0 0 0 0 7 8 0 0 0 0 0 0\n";
        assert_eq!(parse_tx_packets(text, "lo"), Some(20));
        assert_eq!(parse_tx_packets(text, "vA1a"), Some(8));
        assert_eq!(parse_tx_packets(text, "eth0"), None);
    }

    #[test]
    fn summary_names_choice_and_refusals() {
        let r = vec![Refused {
            transport: TransportKind::AfXdp,
            reason: Refusal::NoPrivilege("AF_XDP socket bind: Operation not permitted".into()),
        }];
        let s = summary_of(Some((TransportKind::IoUring, "Send, gso 1")), "eth0", &r);
        assert_eq!(
            s,
            "net: transport io_uring on eth0 (Send, gso 1); refused: af_xdp — no privilege: \
             AF_XDP socket bind: Operation not permitted"
        );
        assert!(!s.contains('\n'), "one line");
    }

    #[test]
    fn errno_classification() {
        let e = |n| NetError::setup("x", std::io::Error::from_raw_os_error(n));
        assert!(matches!(
            classify(&e(libc::EPERM), TransportKind::AfXdp),
            Refusal::NoPrivilege(_)
        ));
        assert!(matches!(
            classify(&e(libc::EOPNOTSUPP), TransportKind::AfXdp),
            Refusal::Driver(_)
        ));
        assert!(matches!(
            classify(&e(libc::ENOSYS), TransportKind::IoUring),
            Refusal::Kernel(_)
        ));
        assert!(matches!(
            classify(&e(libc::ENOBUFS), TransportKind::AfXdp),
            Refusal::NoPrivilege(_)
        ));
    }
}
