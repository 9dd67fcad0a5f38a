//! AF_XDP receive for `strahl-client stream --xdp IFACE` (`--rx af_xdp|auto|recvmmsg`).
//!
//! Contract:
//! - [`RxChoice`] is the parsed choice (no I/O): `recvmmsg` (the default), AF_XDP on an
//!   interface, or `auto` (AF_XDP, else recvmmsg after one stderr line saying why). AF_XDP is
//!   never a silent fallback: asked for alone, every refusal is an [`XdpError`] (exit 5, local).
//! - [`preflight`] runs before anything touches the network: the build has AF_XDP (feature
//!   `xdp`), this process holds CAP_NET_ADMIN, CAP_NET_RAW and CAP_BPF (or CAP_SYS_ADMIN) in its
//!   effective set — every missing one is named — and the interface exists in this namespace
//!   with at most 64 receive queues (the redirect program's XSKMAP).
//! - [`XdpMedia::open`] (feature `xdp`) loads `bpf/redirect.bpf.c`, binds one AF_XDP socket in
//!   copy mode per receive queue of the interface (`/sys/class/net/IFACE/queues/rx-*`: the
//!   NIC's RSS may hash the media flow to any of them), registers each in the XSKMAP at its
//!   queue index, steers UDP to the media port only, and attaches the program with a bpf_link
//!   (detached when the value is dropped or the process dies). Everything else — the QUIC
//!   control connection's datagrams, ARP/NDP, other ports — passes to the kernel; the summary
//!   shows the program's `passed` count. The caller keeps its kernel UDP socket bound on the
//!   media port: it reserves the port (nothing else may take it, and the kernel sends no ICMP
//!   port-unreachable back), and sees only what the program passes (IPv4 fragments, IPv6
//!   extension headers: never our media).
//! - [`XdpMedia::recv`] waits at most the given time (one `poll` over every queue's socket, its
//!   pollfd array on the stack), copies each datagram's UDP payload into the caller's batch and
//!   hands it on: no allocation per packet.
//! - UDP checksums are not verified here: every media datagram carries an AES-GCM tag over its
//!   payload, which the receiver checks (`bad_tag`), and a kernel sender on the same host over
//!   veth leaves only a partial checksum in the field (see `XdpRx::set_verify_udp_checksum`).
//!   The IPv4 header checksum is still verified.
//! - UMEM frames are 2048 B with the kernel's 256 B headroom: an Ethernet frame of at most
//!   1792 B, so `--mtu` ≤ [`XDP_MAX_MTU`] with AF_XDP.
#![forbid(unsafe_code)]

use std::fmt;

/// Largest `--mtu` AF_XDP receive takes: 2048 B UMEM frames − 256 B XDP headroom − 14 B Ethernet.
pub const XDP_MAX_MTU: usize = 2048 - 256 - 14;
/// The redirect program's XSKMAP size (`bpf/strahl_xdp.h` `STRAHL_MAX_QUEUES`).
pub const MAX_QUEUES: u32 = 64;

/// How `stream` receives its media.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RxChoice {
    /// `recvmmsg` with UDP GRO (else one datagram per slot, else plain `recv`).
    #[default]
    Recvmmsg,
    /// AF_XDP on this interface, or an error.
    AfXdp(String),
    /// AF_XDP on this interface, else `recvmmsg` with one line saying why.
    Auto(String),
}

impl RxChoice {
    /// From `--rx` (`None`: not given) and `--xdp IFACE`: `--xdp` alone means AF_XDP.
    pub fn from_args(rx: Option<&str>, iface: Option<&str>) -> Result<Self, String> {
        let need_iface = |what: &str| {
            format!(
                "--rx {what} needs --xdp IFACE: the interface the host's media arrives on \
                 (e.g. `ip route get HOST` names it)"
            )
        };
        match (rx, iface) {
            (None | Some("recvmmsg"), None) => Ok(RxChoice::Recvmmsg),
            (Some("recvmmsg"), Some(i)) => Err(format!(
                "--rx recvmmsg and --xdp {i} contradict each other: drop one"
            )),
            (None | Some("af_xdp"), Some(i)) => Ok(RxChoice::AfXdp(check_iface(i)?)),
            (Some("auto"), Some(i)) => Ok(RxChoice::Auto(check_iface(i)?)),
            (Some(w @ ("af_xdp" | "auto")), None) => Err(need_iface(w)),
            (Some(other), _) => Err(format!("--rx is recvmmsg, af_xdp or auto, not {other:?}")),
        }
    }

    /// The interface AF_XDP is tried on, if any.
    pub fn iface(&self) -> Option<&str> {
        match self {
            RxChoice::Recvmmsg => None,
            RxChoice::AfXdp(i) | RxChoice::Auto(i) => Some(i),
        }
    }
}

/// A Linux interface name: 1–15 bytes, no '/', whitespace or NUL.
fn check_iface(i: &str) -> Result<String, String> {
    let ok = (1..=15).contains(&i.len())
        && i.bytes()
            .all(|b| b.is_ascii_graphic() && b != b'/' && b != b':');
    if ok {
        Ok(i.to_owned())
    } else {
        Err(format!(
            "--xdp needs an interface name (1-15 bytes), not {i:?}"
        ))
    }
}

/// Why AF_XDP receive cannot run (exit code 5: a local refusal, not the host's).
#[derive(Debug)]
pub enum XdpError {
    /// Built without the `xdp` feature.
    NotBuilt,
    /// Capabilities missing from the effective set (names like `CAP_BPF`).
    MissingCaps(Vec<&'static str>),
    /// The capability set could not be read.
    CapsUnreadable(String),
    /// The interface is not in this network namespace.
    NoInterface { iface: String, why: String },
    /// More receive queues than the XSKMAP holds, or none could be counted.
    Queues { iface: String, why: String },
    /// A setup step (load, bind, register, attach) refused.
    Setup {
        iface: String,
        step: String,
        why: String,
    },
}

impl fmt::Display for XdpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            XdpError::NotBuilt => f.write_str(
                "AF_XDP receive is not in this build (strahl-client was built without its `xdp` \
                 feature, which needs clang and libbpf's build dependencies)",
            ),
            XdpError::MissingCaps(c) => write!(
                f,
                "AF_XDP receive needs CAP_NET_ADMIN, CAP_NET_RAW and CAP_BPF (or root); this \
                 process lacks {} (run as root, or `setcap cap_net_admin,cap_net_raw,cap_bpf+ep` \
                 on the binary)",
                c.join(", ")
            ),
            XdpError::CapsUnreadable(why) => {
                write!(
                    f,
                    "AF_XDP receive: cannot read this process's capabilities: {why}"
                )
            }
            XdpError::NoInterface { iface, why } => write!(
                f,
                "AF_XDP receive: no interface {iface:?} in this network namespace ({why})"
            ),
            XdpError::Queues { iface, why } => write!(f, "AF_XDP receive on {iface}: {why}"),
            XdpError::Setup { iface, step, why } => write!(
                f,
                "AF_XDP receive on {iface}: {step} refused ({why}); the driver or kernel may not \
                 support XDP/AF_XDP here — use --rx recvmmsg, or --rx auto to fall back"
            ),
        }
    }
}

/// Capability bits (linux/capability.h).
const CAP_NET_ADMIN: u32 = 12;
const CAP_NET_RAW: u32 = 13;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_BPF: u32 = 39;

/// The capabilities AF_XDP receive lacks in effective set `eff`, by name (empty: none).
pub fn missing_caps(eff: u64) -> Vec<&'static str> {
    let has = |c: u32| eff & (1u64 << c) != 0;
    let mut m = Vec::new();
    if !has(CAP_NET_ADMIN) {
        m.push("CAP_NET_ADMIN");
    }
    if !has(CAP_NET_RAW) {
        m.push("CAP_NET_RAW");
    }
    // Kernels before 5.8 have no CAP_BPF; CAP_SYS_ADMIN covers loading there and here.
    if !has(CAP_BPF) && !has(CAP_SYS_ADMIN) {
        m.push("CAP_BPF");
    }
    m
}

/// `CapEff` from the text of `/proc/self/status`.
pub fn parse_cap_eff(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
}

/// The interface's receive queues from `/sys/class/net/IFACE/queues/rx-*` names.
pub fn count_rx_queues<'a>(names: impl IntoIterator<Item = &'a str>) -> u32 {
    names
        .into_iter()
        .filter(|n| {
            n.strip_prefix("rx-")
                .is_some_and(|q| !q.is_empty() && q.bytes().all(|b| b.is_ascii_digit()))
        })
        .count() as u32
}

/// Checks before touching the network (see the module contract); the queue count on success.
pub fn preflight(iface: &str) -> Result<u32, XdpError> {
    if !cfg!(feature = "xdp") {
        return Err(XdpError::NotBuilt);
    }
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| XdpError::CapsUnreadable(e.to_string()))?;
    let eff = parse_cap_eff(&status)
        .ok_or_else(|| XdpError::CapsUnreadable("no CapEff line in /proc/self/status".into()))?;
    let missing = missing_caps(eff);
    if !missing.is_empty() {
        return Err(XdpError::MissingCaps(missing));
    }
    strahl_net::netlink::ifindex(iface).map_err(|e| XdpError::NoInterface {
        iface: iface.into(),
        why: e.to_string(),
    })?;
    let dir = format!("/sys/class/net/{iface}/queues");
    let names: Vec<String> = std::fs::read_dir(&dir)
        .map_err(|e| XdpError::Queues {
            iface: iface.into(),
            why: format!("cannot count its receive queues in {dir}: {e}"),
        })?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    let queues = count_rx_queues(names.iter().map(String::as_str));
    if queues == 0 || queues > MAX_QUEUES {
        return Err(XdpError::Queues {
            iface: iface.into(),
            why: format!(
                "{queues} receive queues; one AF_XDP socket per queue takes 1 to {MAX_QUEUES} \
                 (`ethtool -L {iface} combined N` to change it)"
            ),
        });
    }
    Ok(queues)
}

/// What AF_XDP receive saw, for the summary.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct XdpReport {
    pub iface: String,
    pub queues: u32,
    /// The redirect program's decisions: steered to a socket, passed to the kernel.
    pub redirected: u64,
    pub passed: u64,
    /// Datagrams the sockets delivered; frames that did not parse as Ethernet/IP/UDP.
    pub received: u64,
    pub malformed: u64,
    /// The kernel's per-socket drops (XDP_STATISTICS), summed over the queues.
    pub rx_dropped: u64,
    pub rx_ring_full: u64,
    pub fill_ring_empty: u64,
}

impl XdpReport {
    pub fn to_json(&self) -> String {
        format!(
            "{{\"iface\": \"{}\", \"queues\": {}, \"redirected\": {}, \"passed\": {}, \
             \"received\": {}, \"malformed\": {}, \"rx_dropped\": {}, \"rx_ring_full\": {}, \
             \"fill_ring_empty\": {}}}",
            self.iface.escape_default(),
            self.queues,
            self.redirected,
            self.passed,
            self.received,
            self.malformed,
            self.rx_dropped,
            self.rx_ring_full,
            self.fill_ring_empty
        )
    }
}

#[cfg(feature = "xdp")]
pub use io::XdpMedia;

/// The IO shell: the program, the sockets, the receive call.
#[cfg(feature = "xdp")]
mod io {
    use std::os::fd::RawFd;
    use std::time::Duration;

    use strahl_net::bpf::RedirectProgram;
    use strahl_net::xdp::rx::{XDP_RX_BATCH, XdpRx};
    use strahl_net::{NetError, RxBatch, RxQueue};

    use super::{MAX_QUEUES, XdpError, XdpReport};

    /// UMEM frames for all queues together (2048 B each: 8 MiB), at least 1024 per queue: a
    /// 1 Gbit/s frame of ~730 shards arrives as one burst.
    const TOTAL_FRAMES: u32 = 4096;
    const MIN_FRAMES_PER_QUEUE: u32 = 1024;
    /// Batch slots: one UDP payload of a 2048 B UMEM frame fits.
    pub const SLOT: usize = 2048;

    /// AF_XDP receive on every queue of one interface, for one UDP port.
    pub struct XdpMedia {
        iface: String,
        socks: Vec<XdpRx>,
        fds: Vec<RawFd>,
        ready: Vec<bool>,
        /// Dropped after the sockets' last use is fine either way: the link detaches on drop.
        program: RedirectProgram,
    }

    impl XdpMedia {
        /// Opens the sockets and attaches the program (see the module contract); `queues`
        /// from [`super::preflight`]. Call from the namespace the interface lives in.
        pub fn open(iface: &str, queues: u32, port: u16) -> Result<Self, XdpError> {
            let step = |step: &str| {
                let iface = iface.to_owned();
                let step = step.to_owned();
                move |e: NetError| XdpError::Setup {
                    iface,
                    step,
                    why: e.to_string(),
                }
            };
            if queues == 0 || queues > MAX_QUEUES {
                return Err(XdpError::Queues {
                    iface: iface.into(),
                    why: format!("{queues} receive queues (1 to {MAX_QUEUES})"),
                });
            }
            let ifindex =
                strahl_net::netlink::ifindex(iface).map_err(|e| XdpError::NoInterface {
                    iface: iface.into(),
                    why: e.to_string(),
                })?;
            let mut program =
                RedirectProgram::load().map_err(step("loading the XDP redirect program"))?;
            let frames = (TOTAL_FRAMES / queues)
                .max(MIN_FRAMES_PER_QUEUE)
                .next_power_of_two();
            let mut socks = Vec::with_capacity(queues as usize);
            for q in 0..queues {
                let mut s = XdpRx::new(iface, q, frames, frames)
                    .map_err(step(&format!("binding an AF_XDP socket to queue {q}")))?;
                s.set_verify_udp_checksum(false);
                program
                    .register_xsk(q, s.fd())
                    .map_err(step(&format!("registering queue {q}'s socket")))?;
                socks.push(s);
            }
            program
                .add_port(port)
                .map_err(step(&format!("steering UDP port {port}")))?;
            // Last: until now nothing was steered, so no media datagram can have been lost.
            program
                .attach(ifindex)
                .map_err(step("attaching the XDP program"))?;
            let fds = socks.iter().map(XdpRx::fd).collect();
            Ok(XdpMedia {
                iface: iface.into(),
                ready: vec![false; socks.len()],
                socks,
                fds,
                program,
            })
        }

        /// A batch sized for [`XdpMedia::recv`].
        pub fn batch() -> RxBatch {
            RxBatch::new(XDP_RX_BATCH, SLOT)
        }

        /// Waits at most `wait` for any queue, then hands every datagram to `each`; returns how
        /// many. One queue: its socket's own bounded wait; several: one `poll` over all.
        pub fn recv(
            &mut self,
            batch: &mut RxBatch,
            wait: Duration,
            each: &mut impl FnMut(&mut [u8]),
        ) -> Result<usize, NetError> {
            if let [one] = self.socks.as_mut_slice() {
                return Self::drain_one(one, batch, wait, each);
            }
            let n = strahl_net::sys::poll_readable_any(&self.fds, &mut self.ready, wait).map_err(
                |e| NetError::Broken {
                    what: "AF_XDP poll",
                    source: e,
                },
            )?;
            if n == 0 {
                return Ok(0);
            }
            let mut got = 0;
            for (s, ready) in self.socks.iter_mut().zip(&self.ready) {
                if *ready {
                    got += Self::drain_one(s, batch, Duration::ZERO, each)?;
                }
            }
            Ok(got)
        }

        fn drain_one(
            s: &mut XdpRx,
            batch: &mut RxBatch,
            wait: Duration,
            each: &mut impl FnMut(&mut [u8]),
        ) -> Result<usize, NetError> {
            let n = s.recv(batch, wait)?;
            for i in 0..n {
                if let Some((d, _)) = batch.get_mut(i) {
                    each(d);
                }
            }
            Ok(n)
        }

        /// Datagrams one [`XdpMedia::recv`] can return before the sockets may hold more: a
        /// full batch from every queue.
        pub fn capacity(&self) -> usize {
            XDP_RX_BATCH * self.socks.len()
        }

        /// The program's and the sockets' counters now.
        pub fn report(&self) -> XdpReport {
            let mut r = XdpReport {
                iface: self.iface.clone(),
                queues: self.socks.len() as u32,
                ..XdpReport::default()
            };
            if let Ok(st) = self.program.stats() {
                r.redirected = st.redirected;
                r.passed = st.passed;
            }
            for s in &self.socks {
                let c = s.counters();
                r.received += c.received_packets;
                r.malformed += c.malformed;
                if let Some(x) = s.xdp_statistics() {
                    r.rx_dropped += x.rx_dropped();
                    r.rx_ring_full += x.rx_ring_full();
                    r.fill_ring_empty += x.rx_fill_ring_empty_descs();
                }
            }
            r
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rx_choice_from_arguments() {
        let c = |rx: Option<&str>, i: Option<&str>| RxChoice::from_args(rx, i);
        assert_eq!(c(None, None), Ok(RxChoice::Recvmmsg));
        assert_eq!(c(Some("recvmmsg"), None), Ok(RxChoice::Recvmmsg));
        assert_eq!(c(None, Some("veth0")), Ok(RxChoice::AfXdp("veth0".into())));
        assert_eq!(
            c(Some("af_xdp"), Some("eth0")),
            Ok(RxChoice::AfXdp("eth0".into()))
        );
        assert_eq!(
            c(Some("auto"), Some("eth0")),
            Ok(RxChoice::Auto("eth0".into()))
        );
        assert_eq!(c(Some("auto"), Some("eth0")).unwrap().iface(), Some("eth0"));
        let e = c(Some("af_xdp"), None).unwrap_err();
        assert!(e.contains("needs --xdp IFACE"), "{e}");
        assert!(c(Some("auto"), None).is_err());
        assert!(
            c(Some("recvmmsg"), Some("eth0"))
                .unwrap_err()
                .contains("contradict")
        );
        assert!(
            c(Some("xdp"), Some("eth0"))
                .unwrap_err()
                .contains("not \"xdp\"")
        );
        for bad in ["", "a/b", "sixteen-bytes-xx", "a b", "eth0:1"] {
            assert!(c(None, Some(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn missing_capabilities_are_named() {
        let bit = |c: u32| 1u64 << c;
        assert_eq!(
            missing_caps(0),
            vec!["CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_BPF"]
        );
        assert!(missing_caps(u64::MAX).is_empty());
        assert!(missing_caps(bit(CAP_NET_ADMIN) | bit(CAP_NET_RAW) | bit(CAP_BPF)).is_empty());
        // CAP_SYS_ADMIN stands in for CAP_BPF (kernels before 5.8).
        assert!(
            missing_caps(bit(CAP_NET_ADMIN) | bit(CAP_NET_RAW) | bit(CAP_SYS_ADMIN)).is_empty()
        );
        assert_eq!(
            missing_caps(bit(CAP_NET_ADMIN) | bit(CAP_BPF)),
            vec!["CAP_NET_RAW"]
        );
        let msg = XdpError::MissingCaps(missing_caps(bit(CAP_NET_RAW))).to_string();
        assert!(msg.contains("lacks CAP_NET_ADMIN, CAP_BPF"), "{msg}");
    }

    #[test]
    fn capability_and_queue_parsing() {
        let status = "Name:\tx\nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\n";
        assert_eq!(parse_cap_eff(status), Some(0x1ff_ffff_ffff));
        assert_eq!(parse_cap_eff("Name: x\n"), None);
        assert_eq!(count_rx_queues(["rx-0", "tx-0", "rx-1", "rx-", "rx-x"]), 2);
        assert_eq!(count_rx_queues([]), 0);
    }

    #[test]
    fn the_report_is_json() {
        let r = XdpReport {
            iface: "veth\"0".into(),
            queues: 1,
            redirected: 5,
            passed: 7,
            ..XdpReport::default()
        };
        let j = r.to_json();
        for k in [
            "\"iface\": \"veth\\\"0\"",
            "\"queues\": 1",
            "\"redirected\": 5",
            "\"passed\": 7",
            "\"rx_dropped\": 0",
        ] {
            assert!(j.contains(k), "{k} in {j}");
        }
    }

    #[test]
    fn preflight_refuses_a_missing_interface_or_capabilities() {
        // Whichever check fails first here, it must fail: no interface has this name.
        let e = preflight("strahl-nope0").unwrap_err();
        match e {
            XdpError::NotBuilt
            | XdpError::MissingCaps(_)
            | XdpError::NoInterface { .. }
            | XdpError::CapsUnreadable(_) => {}
            other => panic!("{other}"),
        }
    }
}
