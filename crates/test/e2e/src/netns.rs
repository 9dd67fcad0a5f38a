//! Network-namespace test bed for the e2e harness: strahl in a "host" namespace, Moonlight
//! clients in "client" namespaces, joined by veth — the appliance and its LAN clients on one
//! machine, with nothing reachable outside the namespaces the test created.
//!
//! Contract:
//! - [`TestNet::pair`] builds a host namespace and one client namespace joined by a veth pair;
//!   [`TestNet::lan`] builds a host and N clients, each on its own veth into a bridge that lives
//!   in a third ("switch") namespace — two devices on one LAN segment, not two programs sharing
//!   one address. Every veth has one TX and one RX queue (AF_XDP binds one queue).
//! - Addresses: `10.77.<k>.0/24` (a private range nothing else on this machine uses; `k` comes
//!   from a per-process counter, but namespaces are isolated, so two test beds never see each
//!   other whatever `k` is): the host is `.1`, client i is `.(2 + i)`.
//! - Routes: the host's default route goes via client 0's address on its veth (so the data
//!   plane's `interface = "auto"` picks the veth, as it picks the uplink on an appliance); each
//!   client's default route goes via the host's address.
//! - Quiet links: IPv6 is disabled in every namespace *before* its links are created
//!   (`all`/`default`) and again per interface, so the kernel sends no router solicitation, DAD
//!   or MLD of its own; `lo` is up everywhere. A capture on a veth then sees only what
//!   processes send.
//! - Names: namespaces `strahl-e2e-<pid hex>-<n>-<role>`, unique per test bed, so tests and test
//!   processes run in parallel; interfaces `e<pid hex><n hex><role>` (≤ 15 bytes), created
//!   directly inside their namespaces, where no other name exists. Namespaces left behind by a
//!   test process that no longer exists (killed mid-test) are removed when the next test bed is
//!   built.
//! - Dropping a [`TestNet`] deletes its namespaces (which deletes the veths and the bridge),
//!   also when the test panics. Drop every process running inside first: a namespace with a
//!   process left in it lives on (unnamed) until that process exits.
//! - Needs root and `ip` (iproute2). [`root_or_skip_reason`] says whether a test may build one;
//!   a test that may not prints `SKIPPED` and reports itself as not run ([`crate::harness`]).
//!   As root, any failure to build the bed is an error, never a skip.

use std::ffi::OsStr;
use std::net::Ipv4Addr;
use std::process::{Command, Output, Stdio};
use std::sync::Once;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::Error;

/// Prefix of every namespace this module creates.
const NS_PREFIX: &str = "strahl-e2e-";
/// Test beds built by this process (names and the third address octet).
static COUNTER: AtomicU32 = AtomicU32::new(0);

/// `Some(reason)` when this process cannot build namespaces (not root, no `ip`): the only
/// reasons a namespace test may skip.
pub fn root_or_skip_reason() -> Option<String> {
    let euid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(str::to_owned))
        })
        .unwrap_or_default();
    if euid != "0" {
        return Some(format!(
            "needs root for network namespaces, veth and AF_XDP (euid is {euid:?})"
        ));
    }
    let ip_ok = Command::new("ip")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ip_ok {
        return Some("the `ip` tool (iproute2) is missing: run scripts/setup.sh".into());
    }
    None
}

fn run(cmd: &mut Command) -> Result<Output, Error> {
    let shown = format!("{cmd:?}");
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::Setup(format!("{shown}: {e}")))?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(Error::Setup(format!(
            "{shown} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

fn ip(args: &[&str]) -> Result<(), Error> {
    run(Command::new("ip").args(args)).map(|_| ())
}

/// One named network namespace (`ip netns add`), deleted on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    fn add(name: String) -> Result<Netns, Error> {
        ip(&["netns", "add", &name])?;
        let ns = Netns { name };
        // Links created in this namespace from now on are born without IPv6 (no RS/DAD/MLD).
        ns.write_proc_sys("net/ipv6/conf/all/disable_ipv6", "1")?;
        ns.write_proc_sys("net/ipv6/conf/default/disable_ipv6", "1")?;
        ip(&["-n", &ns.name, "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The name under /var/run/netns.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip netns exec <name> <program>`: the program runs in this namespace (`ip` execs it, so
    /// the child's pid is the program's own).
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program);
        c
    }

    /// Writes `value` to `/proc/sys/<rel>` as seen from inside this namespace (the `net/` tree
    /// is per namespace).
    pub fn write_proc_sys(&self, rel: &str, value: &str) -> Result<(), Error> {
        run(self.command("sh").args([
            "-c",
            "printf '%s\\n' \"$2\" > \"/proc/sys/$1\"",
            "sh",
            rel,
            value,
        ]))
        .map(|_| ())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace destroys the interfaces in it (a veth takes its peer along).
        let _ = ip(&["netns", "del", &self.name]);
    }
}

/// One side of the test bed: a namespace, its veth and its address.
#[derive(Debug)]
pub struct Endpoint {
    pub ns: Netns,
    /// The veth inside `ns`.
    pub ifname: String,
    pub addr: Ipv4Addr,
}

/// A host namespace and its clients; see the module contract.
#[derive(Debug)]
pub struct TestNet {
    pub host: Endpoint,
    pub clients: Vec<Endpoint>,
    /// The namespace holding the bridge ([`TestNet::lan`] only).
    pub switch: Option<Netns>,
    /// Prefix length of every address.
    pub prefix: u8,
}

/// Removes namespaces that a dead test process of this harness left behind.
fn sweep_stale() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
            return;
        };
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let Some(name) = line.split_whitespace().next() else {
                continue;
            };
            let Some(rest) = name.strip_prefix(NS_PREFIX) else {
                continue;
            };
            let pid = rest
                .split('-')
                .next()
                .and_then(|p| u32::from_str_radix(p, 16).ok());
            if let Some(pid) = pid
                && !std::path::Path::new(&format!("/proc/{pid}")).exists()
            {
                let _ = ip(&["netns", "del", name]);
            }
        }
    });
}

struct Names {
    ns: String,
    ifc: String,
    octet: u8,
}

fn names() -> Names {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id();
    Names {
        ns: format!("{NS_PREFIX}{pid:x}-{n}"),
        // "e" + ≤ 6 hex (pid_max 2^22) + ≤ 4 hex + a role of ≤ 3 bytes: at most 14 bytes.
        ifc: format!("e{pid:x}{:x}", n & 0xffff),
        octet: (n % 250) as u8,
    }
}

/// Creates a veth `a` in `ns_a` whose peer `b` lives in `ns_b`, one queue per direction each.
fn veth(ns_a: &Netns, a: &str, ns_b: &Netns, b: &str) -> Result<(), Error> {
    ip(&[
        "link",
        "add",
        a,
        "netns",
        ns_a.name(),
        "numtxqueues",
        "1",
        "numrxqueues",
        "1",
        "type",
        "veth",
        "peer",
        "name",
        b,
        "netns",
        ns_b.name(),
        "numtxqueues",
        "1",
        "numrxqueues",
        "1",
    ])?;
    for (ns, ifname) in [(ns_a, a), (ns_b, b)] {
        ns.write_proc_sys(&format!("net/ipv6/conf/{ifname}/disable_ipv6"), "1")?;
    }
    Ok(())
}

fn address(ns: &Netns, ifname: &str, addr: Ipv4Addr, prefix: u8) -> Result<(), Error> {
    ip(&[
        "-n",
        ns.name(),
        "addr",
        "add",
        &format!("{addr}/{prefix}"),
        "dev",
        ifname,
    ])?;
    ip(&["-n", ns.name(), "link", "set", ifname, "up"])
}

fn default_route(ns: &Netns, via: Ipv4Addr, ifname: &str) -> Result<(), Error> {
    ip(&[
        "-n",
        ns.name(),
        "route",
        "add",
        "default",
        "via",
        &via.to_string(),
        "dev",
        ifname,
    ])
}

impl TestNet {
    /// A host namespace and one client namespace joined by one veth pair.
    pub fn pair() -> Result<TestNet, Error> {
        sweep_stale();
        let n = names();
        let host_addr = Ipv4Addr::new(10, 77, n.octet, 1);
        let client_addr = Ipv4Addr::new(10, 77, n.octet, 2);
        let host_ns = Netns::add(format!("{}-h", n.ns))?;
        let client_ns = Netns::add(format!("{}-c0", n.ns))?;
        let (hif, cif) = (format!("{}h", n.ifc), format!("{}c0", n.ifc));
        veth(&host_ns, &hif, &client_ns, &cif)?;
        address(&host_ns, &hif, host_addr, 24)?;
        address(&client_ns, &cif, client_addr, 24)?;
        default_route(&host_ns, client_addr, &hif)?;
        default_route(&client_ns, host_addr, &cif)?;
        Ok(TestNet {
            host: Endpoint {
                ns: host_ns,
                ifname: hif,
                addr: host_addr,
            },
            clients: vec![Endpoint {
                ns: client_ns,
                ifname: cif,
                addr: client_addr,
            }],
            switch: None,
            prefix: 24,
        })
    }

    /// A host and `clients` client namespaces, each on its own veth into one bridge (in a
    /// switch namespace): one LAN segment with several devices.
    pub fn lan(clients: usize) -> Result<TestNet, Error> {
        if clients == 0 || clients > 8 {
            return Err(Error::Setup(format!("1..=8 clients, not {clients}")));
        }
        sweep_stale();
        let n = names();
        let switch = Netns::add(format!("{}-sw", n.ns))?;
        let br = "br0";
        ip(&["-n", switch.name(), "link", "add", br, "type", "bridge"])?;
        switch.write_proc_sys(&format!("net/ipv6/conf/{br}/disable_ipv6"), "1")?;
        ip(&["-n", switch.name(), "link", "set", br, "up"])?;
        // One port of the bridge: `inner` in `ns` with `addr`, its peer enslaved in the switch.
        let port = |ns: &Netns, inner: &str, outer: &str, addr: Ipv4Addr| -> Result<(), Error> {
            veth(ns, inner, &switch, outer)?;
            ip(&["-n", switch.name(), "link", "set", outer, "master", br])?;
            ip(&["-n", switch.name(), "link", "set", outer, "up"])?;
            address(ns, inner, addr, 24)
        };
        let host_addr = Ipv4Addr::new(10, 77, n.octet, 1);
        let host_ns = Netns::add(format!("{}-h", n.ns))?;
        let hif = format!("{}h", n.ifc);
        port(&host_ns, &hif, &format!("{}hs", n.ifc), host_addr)?;
        let mut eps = Vec::new();
        for i in 0..clients {
            let addr = Ipv4Addr::new(10, 77, n.octet, 2 + i as u8);
            let ns = Netns::add(format!("{}-c{i}", n.ns))?;
            let cif = format!("{}c{i}", n.ifc);
            port(&ns, &cif, &format!("{}s{i}", n.ifc), addr)?;
            default_route(&ns, host_addr, &cif)?;
            eps.push(Endpoint {
                ns,
                ifname: cif,
                addr,
            });
        }
        default_route(&host_ns, eps[0].addr, &hif)?;
        Ok(TestNet {
            host: Endpoint {
                ns: host_ns,
                ifname: hif,
                addr: host_addr,
            },
            clients: eps,
            switch: Some(switch),
            prefix: 24,
        })
    }

    /// The first client.
    pub fn client(&self) -> &Endpoint {
        &self.clients[0]
    }

    /// Where strahl runs and listens: the host namespace and its address.
    pub fn host_placement(&self) -> crate::HostNetns {
        crate::HostNetns {
            ns: self.host.ns.name().to_owned(),
            addr: self.host.addr,
        }
    }
}
