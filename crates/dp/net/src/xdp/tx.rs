//! AF_XDP transmit queue (xsk-rs): UMEM frames are the [`TxQueue`] frames.
//!
//! Contract (in addition to the crate's seam contract):
//! - The UMEM is sized from [`XdpPlan`]: `frames` × `frame_size` bytes; every frame is a TX frame
//!   (this socket does not receive). The payload area of a frame starts after the XDP headroom and
//!   the 42 header bytes, so the packetizer writes the UDP payload straight into UMEM.
//! - Destinations must be resolved first ([`XdpTx::add_destination`]: the kernel's route and
//!   neighbour tables over netlink, ARP / NDP triggered by one ordinary datagram when missing;
//!   one path for both families, see [`super::neigh`]). `submit` stamps Ethernet/IPv4/UDP
//!   headers from the destination's template (IP header checksum always, UDP checksum unless
//!   disabled) — there is no copy of the payload. With `XdpPlan::ipv6` the socket carries
//!   Ethernet/IPv6/UDP instead (source from if_inet6 per destination; UDP checksum always,
//!   RFC 8200 §8.1). Both families share one template type ([`super::headers`]).
//! - `flush` places descriptors on the TX ring in batches and kicks the kernel with `sendto` while
//!   the ring is not drained (copy mode transmits at most 32 descriptors per kick:
//!   docs/measurements.md §af_xdp), bounded per call. `reclaim` consumes the completion ring and
//!   returns frames to the free pool; the completion ring is sized to hold every frame, so it can
//!   never overflow. Completed descriptors come back with length 0 (the ring carries addresses
//!   only); we never reuse them: each slot's descriptor lives in our table and its length is set
//!   at `submit`, so a recycled frame always goes out with its own length.
//! - Bind mode: zero-copy is tried first when asked for, then copy; the outcome is reported by
//!   [`XdpTx::bind_mode`] (veth refuses zero-copy with EOPNOTSUPP) and, as the kernel sees it,
//!   by [`XdpTx::kernel_zero_copy`]. A zero-copy socket owns its queue's receive path too: its
//!   fill ring gets [`ZC_IDLE_FILL`] frames once, so the stack keeps receiving on that queue.
//! - Duplex: with `XdpPlan::rx_frames > 0` the same socket also receives (extra UMEM frames on
//!   the fill ring, never handed out as TX frames); [`XdpTx::receiver`] borrows the receive side
//!   and [`XdpTx::fd`] goes into the redirect program's XSKMAP. Without shared UMEM, one socket per
//!   (interface, queue) is all AF_XDP allows, so this is how the appliance takes inbound pings and
//!   loss reports on the queue it transmits from.
//! - The socket belongs to the namespace of the thread that created it; `add_destination` reads
//!   that thread's tables, so call both from the same namespace.
#![allow(unsafe_code)]

use super::headers::{DEFAULT_TTL, Family, HDR_LEN, HDR6_LEN, HeaderTemplate, Ipv4, Ipv6};
use super::neigh::{self, NeighError};
use super::rx::{RxRing, setup_err};
use crate::NetError;
use crate::bpf::RedirectProgram;
use crate::frame::{FrameArena, TxFrame};
use crate::rx::{RxBatch, RxCounters, RxQueue};
use crate::staging::{Staging, staged_tx_glue};
use crate::tx::{FlushReport, SubmitError, TransportKind, TxCounters, TxQueue};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::num::NonZeroU32;
use std::ptr::NonNull;
use std::time::Duration;
use xsk_rs::config::{
    BindFlags, FrameSize, Interface, LibxdpFlags, QueueSize, SocketConfig, UmemConfig, XdpFlags,
};
use xsk_rs::{CompQueue, FillQueue, FrameDesc, Socket, Umem};

/// Descriptors produced per batch before a kick. Copy mode sends ≤32 per `sendto`, and batches of
/// 32–64 gave ≈510k pps on veth; 256/1024 gave no gain (docs/measurements.md §batching).
pub const XDP_BATCH: usize = 64;
/// Kernel copy-mode TX budget per `sendto` (net/xdp/xsk.c `MAX_PER_SOCKET_BUDGET`).
const COPY_MODE_BUDGET: usize = 32;
/// XDP_PACKET_HEADROOM: xsk-rs always reserves it in front of the data.
const XDP_HEADROOM: usize = 256;
/// Most destinations one queue keeps templates for (sessions × streams; linear lookup).
pub const MAX_DESTINATIONS: usize = 32;
/// How long `add_destination` waits for ARP / NDP.
pub const NEIGH_TIMEOUT: Duration = Duration::from_secs(2);
/// UMEM frames a transmit-only socket bound in zero-copy puts on its fill ring, once. In
/// zero-copy the driver receives *every* packet of the bound queue into the socket's UMEM (the
/// fill ring is that queue's only source of receive buffers); what no XDP program redirects to
/// the socket is copied into an skb for the stack and its buffer goes back to the driver's pool,
/// so one fill keeps the queue receiving. With an empty fill ring the queue drops everything —
/// found in the VM lab on virtio-net: the client's pings hashed to that queue never arrived.
/// 256: virtio-net's default receive ring.
pub const ZC_IDLE_FILL: u32 = 256;

/// UMEM and ring sizes for one AF_XDP transmit queue.
#[derive(Debug, Clone)]
pub struct XdpPlan {
    pub ifname: String,
    pub queue: u32,
    /// UMEM frames (all usable for TX).
    pub frames: u32,
    /// Bytes per UMEM frame (power of two, 2048 or 4096).
    pub frame_size: u32,
    /// TX ring descriptors (power of two).
    pub tx_ring: u32,
    /// Extra UMEM frames for receiving on the same socket (0: transmit only). With RX frames,
    /// [`XdpTx::receiver`] reads what the redirect program steers to [`XdpTx::fd`]: one socket
    /// per (interface, queue) serves both directions, as AF_XDP requires without shared UMEM.
    pub rx_frames: u32,
    /// RX ring descriptors (power of two) when `rx_frames > 0`.
    pub rx_ring: u32,
    /// Try zero-copy first (needs driver support; veth has none).
    pub zero_copy: bool,
    /// Compute the UDP checksum (else 0, allowed on IPv4; IPv6 always carries it).
    pub udp_checksum: bool,
    /// Source UDP port stamped into headers.
    pub src_port: u16,
    /// IPv4 TTL / IPv6 hop limit.
    pub ttl: u8,
    pub dscp: u8,
    /// IPv6 socket: frames carry Ethernet/IPv6/UDP (62 header bytes, so the payload area starts
    /// 20 bytes later than IPv4's) and only IPv6 destinations are accepted. One family per
    /// socket keeps the payload offset fixed per arena.
    pub ipv6: bool,
}

impl XdpPlan {
    /// Plan for `in_flight` frames of up to `max_payload` UDP payload bytes on `ifname`/`queue`.
    pub fn new(
        ifname: &str,
        queue: u32,
        in_flight: u32,
        max_payload: usize,
        src_port: u16,
    ) -> Self {
        // Sized for the larger (IPv6) header so either family fits the same plan.
        let need = XDP_HEADROOM + HDR6_LEN + max_payload;
        let frame_size = if need <= 2048 { 2048 } else { 4096 };
        let frames = in_flight.max(64).next_power_of_two();
        Self {
            ifname: ifname.to_string(),
            queue,
            frames,
            frame_size,
            tx_ring: frames.min(2048),
            rx_frames: 0,
            rx_ring: 2048,
            zero_copy: true,
            udp_checksum: true,
            src_port,
            ttl: DEFAULT_TTL,
            dscp: 0,
            ipv6: false,
        }
    }

    /// Bytes in front of the UDP payload for this plan's address family.
    pub fn header_len(&self) -> usize {
        if self.ipv6 { HDR6_LEN } else { HDR_LEN }
    }

    /// UDP payload bytes per frame.
    pub fn payload_capacity(&self) -> usize {
        self.frame_size as usize - XDP_HEADROOM - self.header_len()
    }
}

/// Header templates of one address family, found by destination address and port (flow info and
/// scope id are not on the wire). At most [`MAX_DESTINATIONS`]; linear lookup.
struct Destinations<F: Family>(Vec<HeaderTemplate<F>>);

impl<F: Family> Default for Destinations<F> {
    fn default() -> Self {
        Self(Vec::with_capacity(MAX_DESTINATIONS))
    }
}

impl<F: Family> Destinations<F> {
    fn same(a: F::Sock, b: F::Sock) -> bool {
        let (a, b): (SocketAddr, SocketAddr) = (a.into(), b.into());
        a.ip() == b.ip() && a.port() == b.port()
    }

    fn find(&self, dest: F::Sock) -> Option<&HeaderTemplate<F>> {
        self.0.iter().find(|t| Self::same(t.dest, dest))
    }

    /// Add or replace `t`'s destination; past the cap the first slot is overwritten (sessions
    /// beyond the cap are a config error).
    fn put(&mut self, t: HeaderTemplate<F>) {
        if let Some(slot) = self.0.iter_mut().find(|x| Self::same(x.dest, t.dest)) {
            *slot = t;
        } else if self.0.len() < MAX_DESTINATIONS {
            self.0.push(t);
        } else {
            self.0[0] = t;
        }
    }

    fn remove(&mut self, dest: F::Sock) {
        self.0.retain(|t| !Self::same(t.dest, dest));
    }
}

/// How the socket ended up bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindMode {
    ZeroCopy,
    /// Copy mode; carries the errno that refused zero-copy (0 if it was not tried).
    Copy {
        zero_copy_errno: i32,
    },
}

enum RxHalf {
    Active(RxRing),
    /// Transmit-only socket: the rings exist (libxdp creates them); nothing arrives on the RX
    /// ring (no program redirects to the socket), and in zero-copy the fill ring holds the
    /// bound queue's receive buffers ([`ZC_IDLE_FILL`]); held so they live as long as the socket.
    #[allow(dead_code)]
    Idle(xsk_rs::RxQueue, FillQueue),
}

/// AF_XDP transmit queue (and, with `rx_frames`, the receive side of the same socket).
pub struct XdpTx {
    tx_q: xsk_rs::TxQueue,
    comp_q: CompQueue,
    /// Receive half: `Some` with `rx_frames > 0`, else the unused rings kept alive.
    rx: RxHalf,
    /// TX frames (adopted from the UMEM, which `umem` keeps alive) and pending datagrams.
    stage: Staging,
    umem: Umem,
    descs: Box<[FrameDesc]>,
    scratch: Box<[FrameDesc]>,
    /// Header templates; only the plan's family is ever filled.
    v4: Destinations<Ipv4>,
    v6: Destinations<Ipv6>,
    src_mac: [u8; 6],
    src_ip: Ipv4Addr,
    plan: XdpPlan,
    bind_mode: BindMode,
    /// Zero-copy only: strahl's XDP program attached to the interface in native (driver) mode,
    /// or why not. Declared after the rings, so the socket goes before the program detaches.
    native_xdp: Option<Result<RedirectProgram, String>>,
    ip_id: u16,
    on_ring: usize,
    unreclaimed: usize,
    counters: TxCounters,
}

// SAFETY: xsk-rs queues wrap the socket/ring pointers behind Arc<Mutex<..>> handles and are used
// only through `&mut self`; the arena's raw pointers point into the UMEM that `umem` keeps alive.
unsafe impl Send for XdpTx {}

fn neigh_err(what: &'static str, e: NeighError) -> NetError {
    match e {
        NeighError::Io(_, io) => NetError::setup(what, io),
        other => NetError::setup(what, std::io::Error::other(other.to_string())),
    }
}

/// strahl's redirect program (`bpf/redirect.bpf.c`), attached with a bpf_link to `ifname`:
/// native (driver) mode where the driver has XDP. With no port registered it passes every
/// packet to the stack and counts it. Attached when a socket binds in zero-copy: virtio-net
/// (VM lab, 7.3) drops every packet of the zero-copy queue meant for the stack as an
/// `rx_frame_errors` while the host offloads receive checksums; a native XDP program makes the
/// driver turn those guest offloads off (as it must for XDP), and the queue delivers again.
fn attach_native(ifname: &str) -> Result<RedirectProgram, NetError> {
    let ifindex =
        crate::netlink::ifindex(ifname).map_err(|e| NetError::setup("interface index", e))?;
    let mut p = RedirectProgram::load()?;
    p.attach(ifindex)?;
    Ok(p)
}

fn errno_of(e: &xsk_rs::socket::SocketCreateError) -> i32 {
    use std::error::Error;
    e.source()
        .and_then(|s| s.downcast_ref::<std::io::Error>())
        .and_then(|io| io.raw_os_error())
        .unwrap_or(0)
}

type Rings = (xsk_rs::TxQueue, xsk_rs::RxQueue, FillQueue, CompQueue);

fn open(plan: &XdpPlan, zero_copy: bool) -> Result<(Umem, Vec<FrameDesc>, Rings), (i32, NetError)> {
    let q = |n: u32| QueueSize::new(n).map_err(|e| (0, setup_err("ring size", e)));
    // Receive frames: the duplex plan's, or in zero-copy the idle fill (see ZC_IDLE_FILL).
    let rx_frames = if zero_copy && plan.rx_frames == 0 {
        ZC_IDLE_FILL
    } else {
        plan.rx_frames
    };
    let umem_cfg = UmemConfig::builder()
        .frame_size(FrameSize::new(plan.frame_size).map_err(|e| (0, setup_err("frame size", e)))?)
        // Completion ring holds every frame: it can never overflow (contract).
        .comp_queue_size(q(plan.frames.next_power_of_two())?)
        .fill_queue_size(q(rx_frames.max(64).next_power_of_two())?)
        .build()
        .map_err(|e| (0, setup_err("UMEM config", e)))?;
    let total = plan.frames.checked_add(rx_frames);
    let frames = total
        .and_then(NonZeroU32::new)
        .ok_or((0, NetError::Config("0 < frames + rx_frames < 2^32")))?;
    let (umem, descs) =
        Umem::new(umem_cfg, frames, false).map_err(|e| (0, setup_err("UMEM create", e)))?;
    let mode = if zero_copy {
        BindFlags::XDP_ZEROCOPY
    } else {
        BindFlags::XDP_COPY
    };
    let sock_cfg = SocketConfig::builder()
        .tx_queue_size(q(plan.tx_ring)?)
        .rx_queue_size(q(if plan.rx_frames > 0 { plan.rx_ring } else { 64 })?)
        .libxdp_flags(LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD)
        .xdp_flags(XdpFlags::empty())
        .bind_flags(mode | BindFlags::XDP_USE_NEED_WAKEUP)
        .build();
    let ifname: Interface = plan
        .ifname
        .parse()
        .map_err(|_| (0, NetError::Config("interface name contains NUL")))?;
    // SAFETY: a fresh UMEM bound once to (ifname, queue); no other socket shares it, so the
    // INHIBIT_PROG_LOAD requirement for shared UMEMs does not arise (we set it anyway: we own
    // the XDP program through libbpf-rs).
    let (tx_q, rx_q, rings) = unsafe { Socket::new(sock_cfg, &umem, &ifname, plan.queue) }
        .map_err(|e| (errno_of(&e), setup_err("AF_XDP socket bind", e)))?;
    let (fill_q, comp_q) = rings.ok_or((0, NetError::Config("UMEM already bound elsewhere")))?;
    Ok((umem, descs, (tx_q, rx_q, fill_q, comp_q)))
}

impl XdpTx {
    /// Create the UMEM and socket on `plan.ifname`/`plan.queue` (calling thread's namespace).
    pub fn new(plan: XdpPlan) -> Result<Self, NetError> {
        if plan.frame_size as usize <= XDP_HEADROOM + plan.header_len() {
            return Err(NetError::Config("frame_size too small for headers"));
        }
        let mut zc_errno = 0;
        let opened = if plan.zero_copy {
            match open(&plan, true) {
                Ok(o) => Some(o),
                Err((errno, _)) => {
                    zc_errno = errno;
                    None
                }
            }
        } else {
            None
        };
        let (bind_mode, (umem, mut descs, (tx_q, rx_q, mut fill_q, comp_q))) = match opened {
            Some(o) => (BindMode::ZeroCopy, o),
            None => (
                BindMode::Copy {
                    zero_copy_errno: zc_errno,
                },
                open(&plan, false).map_err(|(_, e)| e)?,
            ),
        };
        // Zero-copy: the driver runs strahl's XDP program natively (see `native_xdp`).
        let native_xdp = match bind_mode {
            BindMode::ZeroCopy => Some(attach_native(&plan.ifname).map_err(|e| e.to_string())),
            BindMode::Copy { .. } => None,
        };
        let src_mac =
            neigh::interface_mac(&plan.ifname).map_err(|e| neigh_err("interface MAC", e))?;
        let src_ip = if plan.ipv6 {
            Ipv4Addr::UNSPECIFIED // IPv6 sources are picked per destination
        } else {
            neigh::interface_ipv4(&plan.ifname).map_err(|e| neigh_err("interface IPv4", e))?
        };
        // UMEM base: frame 0's data starts XDP_HEADROOM bytes into the region (xsk-rs layout with
        // zero frame headroom).
        let d0_addr = descs[0].addr();
        // SAFETY: descs[0] belongs to this UMEM and no other reference to its frame exists yet.
        let p0 = unsafe { umem.data_mut(&mut descs[0]) }
            .contents_mut()
            .as_mut_ptr();
        // SAFETY: p0 = region base + d0_addr by xsk-rs construction, so subtracting stays inside
        // the mapping.
        let base = unsafe { p0.sub(d0_addr) };
        let base = NonNull::new(base).ok_or(NetError::Config("UMEM base is null"))?;
        let len = plan.frames as usize * plan.frame_size as usize;
        // SAFETY: the mapping (kept alive by `umem`, a field of the returned struct) covers
        // frames × frame_size bytes; user space touches it only through this arena, and the
        // kernel only reads frames while they are on the TX ring (owned by the transport).
        let arena = unsafe {
            FrameArena::adopt(
                base,
                len,
                plan.frames,
                plan.frame_size as usize,
                XDP_HEADROOM + plan.header_len(),
            )
        };
        debug_assert!(
            descs
                .iter()
                .enumerate()
                .all(|(i, d)| d.addr() == i * plan.frame_size as usize + XDP_HEADROOM)
        );
        // Frames [0, frames) are the TX arena; the rest (`rx_frames`, or the zero-copy idle
        // fill) belong to the fill ring from here on (the arena never hands them out: its slot
        // count is `frames`).
        let rx_descs = descs.split_off(plan.frames as usize);
        let rx = if plan.rx_frames > 0 {
            RxHalf::Active(RxRing::new(rx_q, fill_q, &rx_descs)?)
        } else {
            // Zero-copy: the bound queue's receive buffers, given once (ZC_IDLE_FILL); copy
            // mode: none (the driver receives into its own buffers). XDP_USE_NEED_WAKEUP: a driver
            // that found the fill ring empty at bind may wait for a wake-up before it looks again,
            // so the fill is followed by one (a poll, as the AF_XDP protocol has it).
            let mut rx_q = rx_q;
            // SAFETY: fresh frames of this UMEM beyond the TX arena, used by nothing else; each
            // goes on the fill ring once and user space never touches it again.
            let filled = unsafe { fill_q.produce_and_wakeup(&rx_descs, rx_q.fd_mut(), 0) }
                .map_err(|e| NetError::setup("AF_XDP fill-ring wake-up", e))?;
            if filled != rx_descs.len() {
                return Err(NetError::Config(
                    "fill ring smaller than the zero-copy idle fill",
                ));
            }
            RxHalf::Idle(rx_q, fill_q)
        };
        Ok(Self {
            tx_q,
            comp_q,
            rx,
            stage: Staging::new(arena),
            umem,
            scratch: descs[..XDP_BATCH.min(descs.len())]
                .to_vec()
                .into_boxed_slice(),
            descs: descs.into_boxed_slice(),
            v4: Destinations::default(),
            v6: Destinations::default(),
            src_mac,
            src_ip,
            bind_mode,
            native_xdp,
            ip_id: 0,
            on_ring: 0,
            unreclaimed: 0,
            counters: TxCounters::default(),
            plan,
        })
    }

    /// Zero-copy: whether strahl's XDP program runs natively on the interface (`Err`: why
    /// not); `None` in copy mode, where none is attached.
    pub fn native_xdp(&self) -> Option<Result<&RedirectProgram, &str>> {
        self.native_xdp
            .as_ref()
            .map(|r| r.as_ref().map_err(String::as_str))
    }

    pub fn bind_mode(&self) -> BindMode {
        self.bind_mode
    }

    /// Whether the kernel reports this socket in zero-copy mode (`XDP_OPTIONS`); what
    /// [`XdpTx::bind_mode`] says was asked for and accepted, this is what the driver runs.
    pub fn kernel_zero_copy(&self) -> std::io::Result<bool> {
        crate::sys::xdp_zero_copy(self.fd())
    }

    /// The socket fd, for the redirect program's XSKMAP (duplex use).
    pub fn fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        self.tx_q.fd().as_raw_fd()
    }

    /// The receive side of this socket, or `None` for a transmit-only plan (`rx_frames == 0`).
    pub fn receiver(&mut self) -> Option<XdpDuplexRx<'_>> {
        match &mut self.rx {
            RxHalf::Active(ring) => Some(XdpDuplexRx {
                ring,
                umem: &self.umem,
            }),
            RxHalf::Idle(..) => None,
        }
    }

    /// The interface the socket is bound to.
    pub fn ifname(&self) -> &str {
        &self.plan.ifname
    }

    /// Whether `dest` has a header template.
    pub fn has_destination(&self, dest: impl Into<SocketAddr>) -> bool {
        match dest.into() {
            SocketAddr::V4(d) => self.v4.find(d).is_some(),
            SocketAddr::V6(d) => self.v6.find(d).is_some(),
        }
    }

    /// The IPv4 source address and port (IPv6 sources are picked per destination).
    pub fn source(&self) -> SocketAddrV4 {
        SocketAddrV4::new(self.src_ip, self.plan.src_port)
    }

    /// Resolve `dest`'s next-hop MAC and build its header template (session setup, not per
    /// packet). The family must be the plan's (`XdpPlan::ipv6`); an IPv6 destination also needs a
    /// global/ULA source address on the interface (longest prefix match).
    pub fn add_destination(&mut self, dest: impl Into<SocketAddr>) -> Result<(), NeighError> {
        let dest = dest.into();
        if dest.is_ipv6() != self.plan.ipv6 {
            return Err(NeighError::OtherFamily { dest: dest.ip() });
        }
        let ifname = &self.plan.ifname;
        match dest {
            SocketAddr::V4(d) => {
                let mac = neigh::resolve(ifname, dest.ip(), NEIGH_TIMEOUT)?;
                self.add_destination_with_mac(d, mac);
            }
            SocketAddr::V6(d) => {
                let src = neigh::interface_ipv6(ifname, *d.ip())
                    .map_err(|e| NeighError::Io("read if_inet6", e))?
                    .ok_or_else(|| NeighError::NoSource {
                        dest: dest.ip(),
                        ifname: ifname.clone(),
                    })?;
                let mac = neigh::resolve(ifname, dest.ip(), NEIGH_TIMEOUT)?;
                let src = SocketAddrV6::new(src, self.plan.src_port, 0, 0);
                let (ttl, dscp) = (self.plan.ttl, self.plan.dscp);
                self.v6
                    .put(HeaderTemplate::new(self.src_mac, mac, src, d, ttl, dscp));
            }
        }
        Ok(())
    }

    /// Add an IPv4 destination whose next-hop MAC is already known. Replaces an existing template.
    pub fn add_destination_with_mac(&mut self, dest: SocketAddrV4, next_hop_mac: [u8; 6]) {
        self.add_destination_from(dest, self.plan.src_port, next_hop_mac);
    }

    /// Add (or replace) an IPv4 destination whose datagrams leave from UDP port `src_port` (one
    /// socket serves several streams, e.g. GameStream video 47998 and audio 48000, each to its own
    /// client port: the template, found by destination, carries the stream's source port).
    pub fn add_destination_from(
        &mut self,
        dest: SocketAddrV4,
        src_port: u16,
        next_hop_mac: [u8; 6],
    ) {
        let src = SocketAddrV4::new(self.src_ip, src_port);
        let t = HeaderTemplate::new(
            self.src_mac,
            next_hop_mac,
            src,
            dest,
            self.plan.ttl,
            self.plan.dscp,
        );
        self.v4.put(t);
    }

    pub fn remove_destination(&mut self, dest: impl Into<SocketAddr>) {
        match dest.into() {
            SocketAddr::V4(d) => self.v4.remove(d),
            SocketAddr::V6(d) => self.v6.remove(d),
        }
    }

    /// Kernel-side socket statistics (invalid descriptors, ring-empty events).
    pub fn xdp_statistics(&self) -> Option<xsk_rs::socket::XdpStatistics> {
        self.tx_q.fd().xdp_statistics().ok()
    }

    fn kick(&mut self, report: &mut FlushReport) -> Result<(), NetError> {
        // Copy mode sends ≤32 descriptors per kick, so kick until the ring is consumed.
        let ring = self.plan.tx_ring;
        let max_kicks = ring as usize / COPY_MODE_BUDGET + 2;
        for _ in 0..max_kicks {
            if self.tx_q.nb_free(ring) >= ring {
                break;
            }
            if !self.tx_q.needs_wakeup() {
                break; // zero-copy driver is polling the ring itself
            }
            self.tx_q.wakeup().map_err(|e| NetError::Broken {
                what: "AF_XDP sendto",
                source: e,
            })?;
            report.syscalls += 1;
            self.counters.syscalls += 1;
        }
        Ok(())
    }
}

impl TxQueue for XdpTx {
    fn kind(&self) -> TransportKind {
        TransportKind::AfXdp
    }

    staged_tx_glue!(stage);

    fn submit(&mut self, frame: TxFrame, len: usize, dest: SocketAddr) -> Result<(), SubmitError> {
        let slot = self.stage.redeem(frame, len, &mut self.counters)?;
        let refuse =
            |me: &mut Self, e: SubmitError| Err(me.stage.refuse(slot, &mut me.counters, e));
        let (v6, csum) = (self.plan.ipv6, self.plan.udp_checksum);
        let frame_bytes = &mut self.stage.arena.slot_mut(slot)[XDP_HEADROOM..];
        let written = match dest {
            SocketAddr::V4(d) if !v6 => self.v4.find(d).map(|t| {
                self.ip_id = self.ip_id.wrapping_add(1);
                t.write(frame_bytes, len, self.ip_id, csum)
            }),
            SocketAddr::V6(d) if v6 => self.v6.find(d).map(|t| t.write(frame_bytes, len, 0, csum)),
            _ => return refuse(self, SubmitError::AddressFamily),
        };
        let Some(total) = written else {
            return refuse(self, SubmitError::UnknownDestination);
        };
        let desc = &mut self.descs[slot as usize];
        // SAFETY: the descriptor belongs to this UMEM and its frame is owned by the transport
        // (redeemed, not on any ring); the length write only touches the descriptor.
        unsafe { self.umem.data_mut(desc) }.cursor().set_pos(total);
        self.stage.enqueue(slot, len, dest, &mut self.counters);
        Ok(())
    }

    fn flush(&mut self) -> Result<FlushReport, NetError> {
        let mut report = FlushReport::default();
        let max_iterations = self.stage.pending.len() / XDP_BATCH + 2;
        for _ in 0..max_iterations {
            if self.stage.pending.is_empty() {
                break;
            }
            let want = self.stage.pending.len().min(XDP_BATCH);
            let room = self.tx_q.nb_free(want as u32) as usize;
            let n = want.min(room);
            if n == 0 {
                // Ring full: kick so the kernel drains it, retry on the next flush.
                self.kick(&mut report)?;
                self.counters.stalls += 1;
                report.stalled = true;
                break;
            }
            for (k, p) in self.stage.pending.iter().take(n).enumerate() {
                self.scratch[k] = self.descs[p.slot as usize];
            }
            // SAFETY: every descriptor is a frame of this UMEM owned by the transport (pending),
            // not on the fill ring (this socket never fills) nor already on the TX ring.
            let produced = unsafe { self.tx_q.produce(&self.scratch[..n]) };
            for _ in 0..produced {
                if let Some(p) = self.stage.pending.pop_front() {
                    self.counters.sent_packets += 1;
                    self.counters.sent_bytes += p.len as u64;
                }
            }
            self.on_ring += produced;
            report.sent += produced;
            self.kick(&mut report)?;
            if produced < n {
                self.counters.stalls += 1;
                report.stalled = true;
                break;
            }
        }
        Ok(report)
    }

    fn reclaim(&mut self) -> Result<usize, NetError> {
        let fs = self.plan.frame_size as usize;
        // Bound: at most every frame once.
        for _ in 0..(self.plan.frames as usize / XDP_BATCH + 1) {
            // SAFETY: the completion ring only returns descriptors of frames we put on the TX
            // ring, which are ours again once completed.
            let n = unsafe { self.comp_q.consume(&mut self.scratch) };
            for d in &self.scratch[..n] {
                let slot = (d.addr() / fs) as u32;
                self.stage.arena.release(slot);
            }
            self.on_ring -= n.min(self.on_ring);
            self.unreclaimed += n;
            self.counters.completed += n as u64;
            if n < self.scratch.len() {
                break;
            }
        }
        Ok(std::mem::take(&mut self.unreclaimed))
    }

    fn counters(&self) -> &TxCounters {
        &self.counters
    }
}

/// Receive view of a duplex [`XdpTx`] (see [`XdpPlan::rx_frames`]). Borrowing keeps one owner per
/// socket: the tile that transmits also drains the (small) inbound traffic.
pub struct XdpDuplexRx<'a> {
    ring: &'a mut RxRing,
    umem: &'a Umem,
}

impl XdpDuplexRx<'_> {
    /// See `XdpRx::set_verify_udp_checksum`.
    pub fn set_verify_udp_checksum(&mut self, on: bool) {
        self.ring.verify_udp_checksum = on;
    }
}

impl RxQueue for XdpDuplexRx<'_> {
    fn recv(&mut self, batch: &mut RxBatch, timeout: Duration) -> Result<usize, NetError> {
        self.ring.recv(self.umem, batch, timeout)
    }

    fn counters(&self) -> &RxCounters {
        &self.ring.counters
    }
}
