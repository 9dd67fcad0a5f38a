//! A network namespace owned by one test: created with a unique name, deleted on drop (with
//! whatever QEMU's tap and other links it holds). Needs root and `ip` (iproute2).

use std::ffi::OsStr;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// `ip netns add` on creation, `ip netns del` on drop.
#[derive(Debug)]
pub struct NetNs {
    name: String,
}

static SEQ: AtomicU32 = AtomicU32::new(0);

impl NetNs {
    /// A fresh namespace `vmlab-<tag>-<pid>-<n>` with `lo` up.
    pub fn new(tag: &str) -> std::io::Result<NetNs> {
        let name = format!(
            "vmlab-{tag}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        ip(["netns", "add", name.as_str()])?;
        let ns = NetNs { name };
        ip(["-n", ns.name.as_str(), "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip netns exec <ns> program` — a host-side peer inside the namespace.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", self.name.as_str()]).arg(program);
        c
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = ip(["netns", "del", self.name.as_str()]);
    }
}

fn ip<const N: usize>(args: [&str; N]) -> std::io::Result<()> {
    let out = Command::new("ip").args(args).output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}
