//! Start-up transport choice: which interface, which candidates, and how the outcome is
//! reported (one log line, the `strahl_transport_chosen` info gauge plus
//! `strahl_transport_refused`, and the IPC `TransportChosen` event with id 0).
//!
//! Contract:
//! - Interface: the configured one, else (`auto`) the interface of the IPv4 default route in
//!   `/proc/net/route`, else `lo` (a dev machine without a route still starts).
//! - Nothing is sent at start: [`prepare`] builds each candidate (AF_XDP socket bound to the
//!   interface, an io_uring ring, a socket) to prove privileges, kernel and driver support; the
//!   first packets of a real session are verified against the interface's TX counter by the
//!   media plane ([`crate::media::paths`]), which falls back per destination if they do not
//!   leave. An appliance on someone's LAN never probes its router.
//! - Candidates: `auto` = AF_XDP, then the best kernel socket (io_uring → sendmmsg) for
//!   destinations the AF_XDP interface does not reach (loopback, other interfaces). `af_xdp`
//!   requires AF_XDP (its refusal is fatal) and keeps a kernel socket for off-interface
//!   destinations; `io_uring` and `sendmmsg` are the only transport used (refusal fatal), so the
//!   data plane never runs on something other than what was asked for without saying so.
//!
//! The parsing and planning here are sans-IO; [`prepare`] does the I/O.

use std::net::Ipv4Addr;

use strahl_config::TransportPref;
use strahl_ipc::Transport;
use strahl_metrics::{Metric, Registry};
use strahl_net::TransportKind;
use strahl_net::selftest::{self, Prepared, SelfTestConfig};

/// Where the transports are prepared and why there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub ifname: String,
    pub why: String,
}

/// One parsed line of `/proc/net/route` (addresses in host order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Route<'a> {
    iface: &'a str,
    dest: Ipv4Addr,
    gateway: Ipv4Addr,
    mask: Ipv4Addr,
}

fn hex_addr(s: &str) -> Option<Ipv4Addr> {
    // /proc/net/route prints the address as a native-endian u32 in hex.
    let v = u32::from_str_radix(s, 16).ok()?;
    Some(Ipv4Addr::from(v.to_ne_bytes()))
}

fn routes(text: &str) -> impl Iterator<Item = Route<'_>> {
    text.lines().skip(1).filter_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() < 8 {
            return None;
        }
        Some(Route {
            iface: f[0],
            dest: hex_addr(f[1])?,
            gateway: hex_addr(f[2])?,
            mask: hex_addr(f[7])?,
        })
    })
}

/// Pick the interface. `configured` is `[dataplane] interface` (or the command line); `route`
/// is `/proc/net/route`.
pub fn plan_target(configured: &str, route: &str) -> Target {
    let default = routes(route).find(|r| r.dest.is_unspecified() && r.mask.is_unspecified());
    if configured.is_empty() || configured == "auto" {
        match default {
            Some(r) => Target {
                ifname: r.iface.to_owned(),
                why: format!("auto: default-route interface (gateway {})", r.gateway),
            },
            None => Target {
                ifname: "lo".to_owned(),
                why: "auto: no default route, loopback".to_owned(),
            },
        }
    } else {
        Target {
            ifname: configured.to_owned(),
            why: "configured".to_owned(),
        }
    }
}

/// Candidates in order for a preference (see the module contract).
pub fn candidates(pref: TransportPref) -> Vec<TransportKind> {
    match pref {
        TransportPref::Auto | TransportPref::AfXdp => vec![
            TransportKind::AfXdp,
            TransportKind::IoUring,
            TransportKind::SendMmsg,
        ],
        TransportPref::IoUring => vec![TransportKind::IoUring],
        TransportPref::Sendmmsg => vec![TransportKind::SendMmsg],
    }
}

/// The transport a named preference insists on (`None` for auto).
pub fn required(pref: TransportPref) -> Option<TransportKind> {
    match pref {
        TransportPref::Auto => None,
        TransportPref::AfXdp => Some(TransportKind::AfXdp),
        TransportPref::IoUring => Some(TransportKind::IoUring),
        TransportPref::Sendmmsg => Some(TransportKind::SendMmsg),
    }
}

pub fn ipc_transport(k: Option<TransportKind>) -> Transport {
    match k {
        None => Transport::None,
        Some(TransportKind::AfXdp) => Transport::AfXdp,
        Some(TransportKind::IoUring) => Transport::IoUring,
        Some(TransportKind::SendMmsg) => Transport::Sendmmsg,
    }
}

/// Set the info gauge and the refusal gauges.
pub fn export(metrics: &Registry, chosen: Option<TransportKind>, refused: &[TransportKind]) {
    let name = ipc_transport(chosen).name();
    if let Some(i) = Registry::label_index(Metric::TransportChosen, name) {
        metrics.set_info(Metric::TransportChosen, i);
    }
    for k in refused {
        if let Some(i) = Registry::label_index(Metric::TransportRefused, &k.to_string()) {
            metrics.set_at(Metric::TransportRefused, i, 1);
        }
    }
}

/// Prepare the transports for `pref` on `target` (sending nothing), export the result, and
/// return it. `frames` sizes the AF_XDP UMEM.
pub fn prepare(
    pref: TransportPref,
    target: &Target,
    mtu: u16,
    frames: u32,
    metrics: &Registry,
) -> Prepared {
    let mut cfg = SelfTestConfig::new(
        &target.ifname,
        std::net::SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
        std::net::SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0),
    );
    cfg.candidates = candidates(pref);
    cfg.max_payload = crate::media::max_payload_for_mtu(mtu);
    cfg.frames = frames;
    let mut p = selftest::prepare(&cfg);
    p.summary = format!("{} [{}]", p.summary, target.why);
    let refused: Vec<TransportKind> = p.refused.iter().map(|r| r.transport).collect();
    export(metrics, p.chosen, &refused);
    p
}

/// Link rate of `ifname` from sysfs (Mbit/s → bit/s); `None` when the driver does not say
/// (virtio-net, loopback).
pub fn link_rate_bps(ifname: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/sys/class/net/{ifname}/speed")).ok()?;
    let mbps: i64 = text.trim().parse().ok()?;
    (mbps > 0).then(|| mbps as u64 * 1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTE: &str = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
veth1\t0000C90A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";

    #[test]
    fn auto_takes_the_default_route_interface() {
        let t = plan_target("auto", ROUTE);
        assert_eq!(t.ifname, "eth0");
        assert!(t.why.contains("default-route"), "{}", t.why);
        assert!(t.why.contains("192.0.2.1"), "{}", t.why);
    }

    #[test]
    fn auto_without_a_route_uses_loopback() {
        let t = plan_target("auto", "Iface\tDestination\n");
        assert_eq!(t.ifname, "lo");
    }

    #[test]
    fn a_configured_interface_is_taken_as_it_is() {
        let t = plan_target("veth1", ROUTE);
        assert_eq!((t.ifname.as_str(), t.why.as_str()), ("veth1", "configured"));
    }

    #[test]
    fn named_preference_has_no_fallback() {
        assert_eq!(
            candidates(TransportPref::IoUring),
            vec![TransportKind::IoUring]
        );
        assert_eq!(
            required(TransportPref::IoUring),
            Some(TransportKind::IoUring)
        );
        assert_eq!(candidates(TransportPref::Auto).len(), 3);
        assert_eq!(candidates(TransportPref::Auto)[0], TransportKind::AfXdp);
        assert_eq!(required(TransportPref::Auto), None);
        // af_xdp keeps a kernel socket for destinations off its interface.
        assert_eq!(candidates(TransportPref::AfXdp)[1], TransportKind::IoUring);
    }

    #[test]
    fn export_sets_info_and_refusals() {
        let r = Registry::new();
        export(&r, Some(TransportKind::IoUring), &[TransportKind::AfXdp]);
        let at = |m, v| r.get_at(m, Registry::label_index(m, v).unwrap());
        assert_eq!(at(Metric::TransportChosen, "io_uring"), 1);
        assert_eq!(at(Metric::TransportChosen, "none"), 0);
        assert_eq!(at(Metric::TransportRefused, "af_xdp"), 1);
        assert_eq!(at(Metric::TransportRefused, "sendmmsg"), 0);
    }
}
