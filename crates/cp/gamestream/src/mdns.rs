//! mDNS for `_nvstream._tcp` on the HTTP port (reference §A2), so Moonlight's discovery lists
//! the host. Manual add by IP works without it.
//!
//! **A responder that speaks only when spoken to.** mdns-sd (used before) announces a service
//! unsolicited when it is registered, probes for its names with queries, re-announces on every
//! address change and sends goodbyes on shutdown, and has no option to turn that off (0.21:
//! `register` always calls `send_unsolicited_response`; its `DaemonOption`s cover interfaces,
//! packet size, loopback and cache behaviour only). The appliance must put nothing on the LAN
//! until a client asks, so this is our own small responder:
//! - [`core`]: the sans-IO part (parse a query, answer PTR/SRV/TXT/A/AAAA for our names, honour
//!   the unicast-response bit and legacy unicast queries, rate-limit multicast replies). It has
//!   no way to produce a query or an announcement.
//! - this module: the tokio shell. [`MdnsResponder::start`] binds UDP `port` (5353) on IPv4 and,
//!   where available, IPv6 (SO_REUSEADDR/SO_REUSEPORT, so Avahi or another responder on the
//!   host keeps working), joins 224.0.0.251 / ff02::fb on the host's interfaces (again every
//!   [`RESCAN_INTERVAL`] for interfaces that appear later), and sends a datagram only as the
//!   reply to a query naming us: unicast to the querier, or to the group out of the interface
//!   the query came in on. The only packets the kernel emits on our behalf are the IGMP/MLD
//!   membership reports of those joins (nothing, if another responder on the host already
//!   joined the groups).
//! - [`MdnsResponder::stop`] ends the task: no goodbye (nothing was announced, so there is
//!   nothing to withdraw; clients' cached answers expire by TTL).
//!
//! Counters ([`MdnsResponder::counters`]) say what it did, for logs and tests.

pub mod core;

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use self::core::{
    Counters, Destination, GROUP_V4, GROUP_V6, HostAddr, MAX_PACKET, Responder, SERVICE,
};

/// The GameStream service type (with the trailing dot).
pub const SERVICE_TYPE: &str = "_nvstream._tcp.local.";
/// How often the interface list is read again (new interfaces join the groups).
pub const RESCAN_INTERVAL: Duration = Duration::from_secs(30);

/// Why the responder could not start.
#[derive(Debug)]
pub struct MdnsError(pub String);

impl std::fmt::Display for MdnsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "mDNS responder failed: {}", self.0)
    }
}

impl std::error::Error for MdnsError {}

/// Which interfaces the responder listens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every interface that is up, loopback excluded (production).
    AllInterfaces,
    /// IPv4 loopback only (tests: nothing leaves the machine).
    Loopback,
}

/// What to serve and where.
#[derive(Debug, Clone)]
pub struct MdnsConfig {
    /// The host's display name (instance and host name are derived from it).
    pub instance: String,
    /// The GameStream HTTP port the SRV record points at.
    pub service_port: u16,
    /// UDP port to listen on: [`core::MDNS_PORT`] (tests use another).
    pub mdns_port: u16,
    pub scope: Scope,
}

impl MdnsConfig {
    pub fn new(instance: &str, service_port: u16) -> Self {
        MdnsConfig {
            instance: instance.to_owned(),
            service_port,
            mdns_port: core::MDNS_PORT,
            scope: Scope::AllInterfaces,
        }
    }
}

/// What the responder did: the core's counters and the datagrams the shell sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MdnsStats {
    pub core: Counters,
    pub sent: u64,
}

/// The running responder.
pub struct MdnsResponder {
    fullname: String,
    counters: Arc<Mutex<MdnsStats>>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// The host's addresses in scope.
fn host_addrs(scope: Scope) -> Vec<HostAddr> {
    if scope == Scope::Loopback {
        return vec![HostAddr {
            ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            prefix_len: 8,
            if_index: 1,
        }];
    }
    let list = match if_addrs::get_if_addrs() {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!("mDNS: cannot list interfaces: {e}");
            return Vec::new();
        }
    };
    list.into_iter()
        .filter(|i| !i.is_loopback() && !i.is_p2p())
        .filter_map(|i| {
            let (ip, prefix_len) = match &i.addr {
                if_addrs::IfAddr::V4(a) => (IpAddr::V4(a.ip), a.prefixlen),
                if_addrs::IfAddr::V6(a) => (IpAddr::V6(a.ip), a.prefixlen),
            };
            Some(HostAddr {
                ip,
                prefix_len,
                if_index: i.index?,
            })
        })
        .collect()
}

fn socket(domain: Domain, port: u16) -> std::io::Result<Socket> {
    let s = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    // Share 5353 with the host's own responder (Avahi sets SO_REUSEADDR too).
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    if domain == Domain::IPV6 {
        s.set_only_v6(true)?;
        s.set_multicast_hops_v6(255)?;
        s.set_multicast_loop_v6(true)?;
        s.bind(&SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, port, 0, 0)).into())?;
    } else {
        // RFC 6762 §11: responses go out with TTL 255 (receivers may check it).
        s.set_multicast_ttl_v4(255)?;
        s.set_multicast_loop_v4(true)?;
        s.bind(&SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port)).into())?;
    }
    s.set_nonblocking(true)?;
    Ok(s)
}

/// Whether a join left the socket a member (already being one counts); a failure is retried at
/// the next rescan (an interface coming up may refuse it for a moment).
fn joined_now(r: &std::io::Result<()>, group: &str, if_index: u32) -> bool {
    match r {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => true,
        Err(e) => {
            tracing::debug!("mDNS: join {group} on interface {if_index}: {e}");
            false
        }
    }
}

/// Joins the groups on the interfaces of `addrs` not joined yet (`joined` remembers them).
fn join(
    v4: Option<&Socket>,
    v6: Option<&Socket>,
    addrs: &[HostAddr],
    joined: &mut BTreeSet<(u32, bool)>,
) {
    for a in addrs {
        match a.ip {
            IpAddr::V4(ip) => {
                if let Some(s) = v4
                    && !joined.contains(&(a.if_index, true))
                {
                    let r = s.join_multicast_v4(&GROUP_V4, &ip);
                    if joined_now(&r, "224.0.0.251", a.if_index) {
                        joined.insert((a.if_index, true));
                    }
                }
            }
            IpAddr::V6(_) => {
                if let Some(s) = v6
                    && !joined.contains(&(a.if_index, false))
                {
                    let r = s.join_multicast_v6(&GROUP_V6, a.if_index);
                    if joined_now(&r, "ff02::fb", a.if_index) {
                        joined.insert((a.if_index, false));
                    }
                }
            }
        }
    }
}

impl MdnsResponder {
    /// Binds and joins; sends nothing. Fails only when no socket could be bound.
    pub async fn start(cfg: MdnsConfig) -> Result<Self, MdnsError> {
        let responder = Responder::new(&cfg.instance, cfg.service_port, cfg.mdns_port);
        let fullname = responder.instance_name();
        let addrs = host_addrs(cfg.scope);
        let v4 = socket(Domain::IPV4, cfg.mdns_port)
            .map_err(|e| MdnsError(format!("UDP {} (IPv4): {e}", cfg.mdns_port)))?;
        let v6 = match cfg.scope {
            Scope::Loopback => None,
            Scope::AllInterfaces => match socket(Domain::IPV6, cfg.mdns_port) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::info!("mDNS: IPv6 not served: {e}");
                    None
                }
            },
        };
        if cfg.scope == Scope::Loopback {
            // Whatever this socket multicasts stays on the machine.
            v4.set_multicast_if_v4(&Ipv4Addr::LOCALHOST)
                .map_err(|e| MdnsError(format!("multicast interface lo: {e}")))?;
        }
        let mut joined = BTreeSet::new();
        join(Some(&v4), v6.as_ref(), &addrs, &mut joined);
        let v4 = UdpSocket::from_std(v4.into()).map_err(|e| MdnsError(e.to_string()))?;
        let v6 = match v6 {
            Some(s) => Some(UdpSocket::from_std(s.into()).map_err(|e| MdnsError(e.to_string()))?),
            None => None,
        };
        let counters = Arc::new(Mutex::new(MdnsStats::default()));
        let (stop, stop_rx) = watch::channel(false);
        tracing::info!(
            %fullname,
            port = cfg.service_port,
            interfaces = joined.len(),
            "mDNS: answering queries for {SERVICE} (no announcements)"
        );
        let task = tokio::spawn(run(
            responder,
            cfg.scope,
            v4,
            v6,
            joined,
            counters.clone(),
            stop_rx,
        ));
        Ok(MdnsResponder {
            fullname,
            counters,
            stop,
            task,
        })
    }

    /// The instance's full name (`<instance>._nvstream._tcp.local.`).
    pub fn fullname(&self) -> &str {
        &self.fullname
    }

    /// What the core has seen and answered, and how many datagrams were sent.
    pub fn counters(&self) -> MdnsStats {
        *self.counters.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stops the task (bounded by its next turn; it sends nothing on the way out).
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// The interface address to send multicast from for the link of `src` (IPv4), or its index
/// (IPv6).
fn outgoing(link: &core::Link, addrs: &[HostAddr]) -> (Option<Ipv4Addr>, Option<u32>) {
    let first = link.if_indexes.first().copied();
    let v4 = addrs.iter().find_map(|a| match a.ip {
        IpAddr::V4(ip) if Some(a.if_index) == first => Some(ip),
        _ => None,
    });
    (v4, first)
}

async fn run(
    mut responder: Responder,
    scope: Scope,
    v4: UdpSocket,
    v6: Option<UdpSocket>,
    mut joined: BTreeSet<(u32, bool)>,
    counters: Arc<Mutex<MdnsStats>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut addrs = host_addrs(scope);
    let mut buf4 = vec![0u8; MAX_PACKET];
    let mut buf6 = vec![0u8; MAX_PACKET];
    let mut rescan = tokio::time::interval(RESCAN_INTERVAL);
    rescan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    rescan.tick().await;
    let mut sent = 0u64;
    loop {
        let (n, src, from_v6) = tokio::select! {
            _ = stop.changed() => return,
            _ = rescan.tick() => {
                addrs = host_addrs(scope);
                let s4 = socket2::SockRef::from(&v4);
                let s6 = v6.as_ref().map(socket2::SockRef::from);
                join(Some(&s4), s6.as_deref(), &addrs, &mut joined);
                continue;
            }
            r = v4.recv_from(&mut buf4) => match r {
                Ok((n, src)) => (n, src, false),
                Err(e) => {
                    tracing::debug!("mDNS: receive: {e}");
                    continue;
                }
            },
            r = async {
                match &v6 {
                    Some(s) => s.recv_from(&mut buf6).await,
                    None => std::future::pending().await,
                }
            } => match r {
                Ok((n, src)) => (n, src, true),
                Err(e) => {
                    tracing::debug!("mDNS: receive: {e}");
                    continue;
                }
            },
        };
        if scope == Scope::Loopback && !src.ip().is_loopback() {
            // A test responder answers nothing that came from off the machine.
            continue;
        }
        let packet = if from_v6 { &buf6[..n] } else { &buf4[..n] };
        let link = core::link_for(src, &addrs);
        let reply = responder.handle(packet, src, &link, Instant::now());
        if let Some(reply) = reply {
            let sock = if from_v6 {
                v6.as_ref().unwrap_or(&v4)
            } else {
                &v4
            };
            let dest = match reply.to {
                Destination::Unicast(to) => Some(to),
                Destination::Multicast => {
                    let (if_v4, if_index) = outgoing(&link, &addrs);
                    let r = socket2::SockRef::from(sock);
                    if from_v6 {
                        if let Some(i) = if_index {
                            let _ = r.set_multicast_if_v6(i);
                        }
                        Some(SocketAddr::V6(SocketAddrV6::new(
                            GROUP_V6,
                            sock.local_addr().map_or(core::MDNS_PORT, |a| a.port()),
                            0,
                            if_index.unwrap_or(0),
                        )))
                    } else {
                        if let Some(ip) =
                            if_v4.or((scope == Scope::Loopback).then_some(Ipv4Addr::LOCALHOST))
                        {
                            let _ = r.set_multicast_if_v4(&ip);
                        }
                        Some(SocketAddr::V4(SocketAddrV4::new(
                            GROUP_V4,
                            sock.local_addr().map_or(core::MDNS_PORT, |a| a.port()),
                        )))
                    }
                }
            };
            if let Some(to) = dest {
                match sock.send_to(&reply.bytes, to).await {
                    Ok(_) => {
                        sent += 1;
                        tracing::debug!(%src, %to, "mDNS: answered");
                    }
                    Err(e) => tracing::debug!(%to, "mDNS: send: {e}"),
                }
            }
        }
        *counters.lock().unwrap_or_else(|p| p.into_inner()) = MdnsStats {
            core: responder.counters(),
            sent,
        };
    }
}
