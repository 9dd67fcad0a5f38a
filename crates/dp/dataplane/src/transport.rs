//! Start-up transport choice: which interface, which probe destination, which candidates, and
//! how the outcome is reported (one log line, the `strahl_transport_chosen` info gauge plus
//! `strahl_transport_refused`, and the IPC `TransportChosen` event).
//!
//! Contract:
//! - Interface: the configured one, else (`auto`) the interface of the IPv4 default route in
//!   `/proc/net/route`, else `lo` (a dev machine without a route still starts).
//! - Probe destination (port [`PROBE_PORT`], discard): the default gateway when the default
//!   route uses the interface; else `127.0.0.1` on loopback; else the first host of the
//!   interface's connected subnet that is not our own address (a veth peer, a LAN neighbour).
//! - Candidates: `auto` = AF_XDP → io_uring → sendmmsg (first whose probe leaves wins; the
//!   refusals are named). A named transport is the only candidate: its refusal is fatal, so the
//!   data plane never runs on something other than what was asked for without saying so.
//! - After start-up nothing falls back: a transport that breaks later is an error on the
//!   session, not a silent switch.
//!
//! The parsing and planning here are sans-IO; [`run_self_test`] does the I/O.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use strahl_config::TransportPref;
use strahl_ipc::Transport;
use strahl_metrics::{Metric, Registry};
use strahl_net::TransportKind;
use strahl_net::selftest::{self, SelfTestConfig, SelfTestOutcome};

/// UDP discard port: probes to it are harmless to any host that receives them.
pub const PROBE_PORT: u16 = 9;

/// Where the self-test runs and why there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub ifname: String,
    pub probe: SocketAddrV4,
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

/// Pick the interface and probe destination. `configured` is `[dataplane] interface` (or the
/// command line); `route` is `/proc/net/route`; `own_addr` gives an interface's IPv4 address.
pub fn plan_target(
    configured: &str,
    route: &str,
    own_addr: impl Fn(&str) -> Option<Ipv4Addr>,
) -> Result<Target, String> {
    let default = routes(route).find(|r| r.dest.is_unspecified() && r.mask.is_unspecified());
    let (ifname, why) = if configured.is_empty() || configured == "auto" {
        match default {
            Some(r) => (r.iface.to_owned(), "auto: default-route interface"),
            None => ("lo".to_owned(), "auto: no default route, loopback"),
        }
    } else {
        (configured.to_owned(), "configured")
    };
    if let Some(r) = default.filter(|r| r.iface == ifname) {
        return Ok(Target {
            probe: SocketAddrV4::new(r.gateway, PROBE_PORT),
            why: format!("{why}, probing the gateway {}", r.gateway),
            ifname,
        });
    }
    if ifname == "lo" {
        return Ok(Target {
            ifname,
            probe: SocketAddrV4::new(Ipv4Addr::LOCALHOST, PROBE_PORT),
            why: format!("{why}, probing 127.0.0.1"),
        });
    }
    let own = own_addr(&ifname);
    let subnet = routes(route)
        .find(|r| r.iface == ifname && r.gateway.is_unspecified() && !r.mask.is_unspecified());
    let Some(net) = subnet else {
        return Err(format!(
            "interface {ifname} has no IPv4 route: nothing to probe through it"
        ));
    };
    let base = u32::from(net.dest) & u32::from(net.mask);
    let hosts = !u32::from(net.mask);
    let probe = (1..hosts.min(4))
        .map(|i| Ipv4Addr::from(base + i))
        .find(|a| Some(*a) != own)
        .ok_or_else(|| {
            format!(
                "subnet {}/{} of {ifname} has no other host",
                net.dest, net.mask
            )
        })?;
    Ok(Target {
        ifname,
        probe: SocketAddrV4::new(probe, PROBE_PORT),
        why: format!("{why}, probing {probe} on the connected subnet"),
    })
}

/// Candidates in order for a preference (see the module contract).
pub fn candidates(pref: TransportPref) -> Vec<TransportKind> {
    match pref {
        TransportPref::Auto => vec![
            TransportKind::AfXdp,
            TransportKind::IoUring,
            TransportKind::SendMmsg,
        ],
        TransportPref::AfXdp => vec![TransportKind::AfXdp],
        TransportPref::IoUring => vec![TransportKind::IoUring],
        TransportPref::Sendmmsg => vec![TransportKind::SendMmsg],
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

/// What start-up decided; the queue is kept for the tx tile.
pub struct Chosen {
    pub kind: Option<TransportKind>,
    pub outcome: Option<SelfTestOutcome>,
    /// The one line logged, exported and sent to the control plane.
    pub summary: String,
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

/// Run the self-test for `pref` on `target`, export the result, and return it.
pub fn run_self_test(pref: TransportPref, target: &Target, mtu: u16, metrics: &Registry) -> Chosen {
    let mut cfg = SelfTestConfig::new(
        &target.ifname,
        SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
        target.probe,
    );
    cfg.candidates = candidates(pref);
    cfg.max_payload = usize::from(mtu).saturating_sub(28).max(64);
    match selftest::self_test(&cfg) {
        Ok(o) => {
            let refused: Vec<TransportKind> = o.refused.iter().map(|r| r.transport).collect();
            export(metrics, Some(o.chosen), &refused);
            Chosen {
                kind: Some(o.chosen),
                summary: format!("{} [{}]", o.summary, target.why),
                outcome: Some(o),
            }
        }
        Err(e) => {
            let refused: Vec<TransportKind> = e.refused.iter().map(|r| r.transport).collect();
            export(metrics, None, &refused);
            Chosen {
                kind: None,
                outcome: None,
                summary: format!("{} [{}]", e.summary, target.why),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTE: &str = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
veth1\t0000C90A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";

    fn own(ifname: &str) -> Option<Ipv4Addr> {
        match ifname {
            "veth1" => Some(Ipv4Addr::new(10, 201, 0, 1)),
            _ => None,
        }
    }

    #[test]
    fn auto_takes_the_default_route_and_probes_the_gateway() {
        let t = plan_target("auto", ROUTE, own).unwrap();
        assert_eq!(t.ifname, "eth0");
        assert_eq!(t.probe, SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 1), 9));
        assert!(t.why.contains("default-route"), "{}", t.why);
    }

    #[test]
    fn auto_without_a_route_uses_loopback() {
        let t = plan_target("auto", "Iface\tDestination\n", own).unwrap();
        assert_eq!(t.ifname, "lo");
        assert_eq!(t.probe, SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9));
    }

    #[test]
    fn configured_interface_probes_a_subnet_neighbour_not_itself() {
        let t = plan_target("veth1", ROUTE, own).unwrap();
        assert_eq!(t.probe, SocketAddrV4::new(Ipv4Addr::new(10, 201, 0, 2), 9));
        let t = plan_target("veth1", ROUTE, |_| Some(Ipv4Addr::new(10, 201, 0, 2))).unwrap();
        assert_eq!(t.probe, SocketAddrV4::new(Ipv4Addr::new(10, 201, 0, 1), 9));
        assert!(
            plan_target("wlan9", ROUTE, own)
                .unwrap_err()
                .contains("no IPv4 route")
        );
    }

    #[test]
    fn named_preference_has_no_fallback() {
        assert_eq!(
            candidates(TransportPref::IoUring),
            vec![TransportKind::IoUring]
        );
        assert_eq!(candidates(TransportPref::Auto).len(), 3);
        assert_eq!(candidates(TransportPref::Auto)[0], TransportKind::AfXdp);
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
