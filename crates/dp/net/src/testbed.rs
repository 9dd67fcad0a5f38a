//! Test bed: a veth pair between two network namespaces created (and always removed) by the test.
//!
//! Contract:
//! - [`VethPair::create`] makes two namespaces with unique names (pid + counter, so tests in one
//!   process or in parallel processes never collide), one veth pair with **one TX and one RX queue
//!   per side** (AF_XDP binds one queue; docs/measurements.md §batching), addresses `10.201.0.1/24` (side
//!   A) and `10.201.0.2/24` (side B), links and `lo` up. Dropping the value deletes both
//!   namespaces (which deletes the veth), also when the test panics.
//! - [`in_netns`] runs a closure on a fresh thread that has entered a namespace with `setns`;
//!   sockets created there stay in that namespace and may be used from any thread afterwards.
//! - Without privileges (not root, no `ip`, netns creation refused) `create` returns
//!   [`Unavailable`] with the reason; tests then call [`skip`], which prints `SKIPPED: <reason>`
//!   straight to stderr (bypassing libtest's capture, so it is visible in a normal run).
//!
//! Needs root (CAP_SYS_ADMIN for `setns`/netns, CAP_NET_ADMIN for links). Used by this crate's
//! tests and by benches; never by the data plane itself.
#![allow(unsafe_code)]

use std::fmt;
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// Why the namespace test bed cannot be built here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unavailable(pub String);

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Print `SKIPPED: <reason>` for test `name` where a normal `cargo test` run shows it.
pub fn skip(name: &str, reason: &dyn fmt::Display) {
    // Direct write to fd 2: libtest captures only the print macros, so this stays visible.
    // One write call so parallel tests do not interleave mid-line.
    let line = format!("SKIPPED: {name}: {reason}\n");
    let _ = io::stderr().lock().write_all(line.as_bytes());
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Address of side A / side B inside their namespaces.
pub const ADDR_A: Ipv4Addr = Ipv4Addr::new(10, 201, 0, 1);
pub const ADDR_B: Ipv4Addr = Ipv4Addr::new(10, 201, 0, 2);

/// Two namespaces joined by a veth pair; removed on drop.
pub struct VethPair {
    pub ns_a: String,
    pub ns_b: String,
    pub if_a: String,
    pub if_b: String,
    created_a: bool,
    created_b: bool,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run `ip`: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Whether this process may build the test bed; `Err` carries the reason to print.
pub fn check_privileges() -> Result<(), Unavailable> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        return Err(Unavailable(format!(
            "needs root (euid is {euid}): namespaces, veth, BPF and AF_XDP"
        )));
    }
    match Command::new("ip")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(s) if s.success() => Ok(()),
        _ => Err(Unavailable(
            "the `ip` tool (iproute2) is not available".into(),
        )),
    }
}

impl VethPair {
    /// Build the pair; `tag` (≤ 3 chars used) only helps reading `ip netns list` while debugging.
    pub fn create(tag: &str) -> Result<Self, Unavailable> {
        check_privileges()?;
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let tag: String = tag
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(3)
            .collect();
        // Interface names must stay within 15 bytes: "s" + ≤6 hex pid + ≤4 hex counter + side.
        let base = format!("s{pid:x}{:x}", n & 0xffff);
        let mut pair = VethPair {
            ns_a: format!("strahl-{tag}-{base}a"),
            ns_b: format!("strahl-{tag}-{base}b"),
            if_a: format!("{base}a"),
            if_b: format!("{base}b"),
            created_a: false,
            created_b: false,
        };
        ip(&["netns", "add", &pair.ns_a]).map_err(Unavailable)?;
        pair.created_a = true;
        ip(&["netns", "add", &pair.ns_b]).map_err(Unavailable)?;
        pair.created_b = true;
        let (a, b) = (pair.ns_a.clone(), pair.ns_b.clone());
        let (ia, ib) = (pair.if_a.clone(), pair.if_b.clone());
        let steps: [&[&str]; 9] = [
            &[
                "link",
                "add",
                &ia,
                "netns",
                &a,
                "numtxqueues",
                "1",
                "numrxqueues",
                "1",
                "type",
                "veth",
                "peer",
                "name",
                &ib,
                "netns",
                &b,
                "numtxqueues",
                "1",
                "numrxqueues",
                "1",
            ],
            &["-n", &a, "addr", "add", "10.201.0.1/24", "dev", &ia],
            &["-n", &b, "addr", "add", "10.201.0.2/24", "dev", &ib],
            &["-n", &a, "link", "set", &ia, "up"],
            &["-n", &b, "link", "set", &ib, "up"],
            &["-n", &a, "link", "set", "lo", "up"],
            &["-n", &b, "link", "set", "lo", "up"],
            // Resolve neighbours up front so the first datagrams are not held in the ARP queue.
            &["-n", &a, "neigh", "flush", "dev", &ia],
            &["-n", &b, "neigh", "flush", "dev", &ib],
        ];
        for s in steps {
            ip(s).map_err(Unavailable)?;
        }
        Ok(pair)
    }
}

impl Drop for VethPair {
    fn drop(&mut self) {
        // Deleting a namespace destroys the veth end inside it (and with it the peer).
        if self.created_a {
            let _ = ip(&["netns", "del", &self.ns_a]);
        }
        if self.created_b {
            let _ = ip(&["netns", "del", &self.ns_b]);
        }
    }
}

/// Run `f` on a new thread that has entered network namespace `ns` (a name under /var/run/netns).
pub fn in_netns<T, F>(ns: &str, f: F) -> io::Result<T>
where
    T: Send,
    F: FnOnce() -> T + Send,
{
    let path = format!("/var/run/netns/{ns}");
    let file = std::fs::File::open(&path)?;
    std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: `file` is an open namespace file for the duration of the call; setns only
            // changes this (fresh, scoped) thread's network namespace.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            if rc != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(f())
        })
        .join()
        .map_err(|_| io::Error::other("closure in namespace panicked"))?
    })
}

/// Interface index of `name` in the calling thread's namespace.
pub fn ifindex(name: &str) -> io::Result<u32> {
    let c = std::ffi::CString::new(name).map_err(|_| io::Error::other("NUL in interface name"))?;
    // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(idx)
    }
}

/// Whether a setup error means "this kernel/sandbox does not offer the facility" (a reason to
/// skip a test) rather than a bug (which must fail it): EPERM, EACCES, ENOSYS.
pub fn is_unavailable(e: &crate::NetError) -> bool {
    match e {
        crate::NetError::Setup { source, .. } => matches!(
            source.raw_os_error(),
            Some(libc::EPERM | libc::EACCES | libc::ENOSYS)
        ),
        _ => false,
    }
}
