//! What one guest boot does: the command, its environment, the kernel, modules and devices, and
//! the bound on its time. Turned into `scripts/vmlab/run-guest` arguments by [`GuestSpec::args`],
//! so the runner stays the one place that knows how QEMU is started.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

/// Which guest kernel boots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kernel {
    /// bookworm-backports 6.12: DRM (virtio-gpu, bochs), uinput, XDP, AF_XDP copy mode.
    Default,
    /// trixie-backports 7.x: AF_XDP zero-copy on virtio-net (with `iommu_platform=on`).
    ZeroCopy,
    /// An installed release by name.
    Release(String),
}

/// A display device for KMS tests (its driver module is loaded before the command).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gpu {
    /// `-device virtio-gpu-pci`, module `virtio-gpu` (card0 + renderD128).
    Virtio,
    /// `-device bochs-display`, module `bochs`.
    Bochs,
}

/// The guest's network: QEMU runs inside the namespace `netns` (which the test owns) with a
/// multi-queue tap there; the guest's `eth0` gets `guest_cidr` and a default route via the
/// host side's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestNet {
    pub netns: String,
    pub tap: String,
    /// Put on the tap inside the namespace, e.g. `10.201.0.1/24`.
    pub host_cidr: String,
    /// The guest's `eth0`, e.g. `10.201.0.2/24`.
    pub guest_cidr: String,
    /// virtio-net queue pairs (≥ 2 × vCPUs for XDP_TX/REDIRECT without the locked path).
    pub queues: u32,
    /// Extra `virtio-net-pci` properties (zero-copy: `iommu_platform=on,disable-legacy=on`).
    pub nic_opts: Option<String>,
}

impl GuestNet {
    /// A tap `vmtap0` in `netns` with the two addresses and 2 queue pairs.
    pub fn new(netns: &str, host_cidr: &str, guest_cidr: &str) -> GuestNet {
        GuestNet {
            netns: netns.to_owned(),
            tap: "vmtap0".to_owned(),
            host_cidr: host_cidr.to_owned(),
            guest_cidr: guest_cidr.to_owned(),
            queues: 2,
            nic_opts: None,
        }
    }
}

/// One guest boot.
#[derive(Debug, Clone)]
pub struct GuestSpec {
    pub command: Vec<OsString>,
    pub kernel: Kernel,
    pub modules: Vec<String>,
    pub gpu: Option<Gpu>,
    pub net: Option<GuestNet>,
    /// Extra paths shared read-write (the repository and `CARGO_TARGET_DIR` always are).
    pub shares: Vec<PathBuf>,
    /// Added to the command's environment (which is otherwise this process's own).
    pub env: Vec<(String, String)>,
    /// Working directory in the guest (default: this process's).
    pub cwd: Option<PathBuf>,
    /// A bash script run as root in the guest before the command (or before systemd).
    pub setup: Option<PathBuf>,
    /// Boot systemd as PID 1; the command runs as a unit after `multi-user.target`.
    pub systemd: bool,
    pub timeout: Duration,
    pub mem: String,
    pub smp: u32,
    pub qemu_args: Vec<String>,
    /// Added to the guest kernel's command line.
    pub kernel_args: Vec<String>,
    /// Keep the job directory (console log) here.
    pub keep: Option<PathBuf>,
}

impl GuestSpec {
    /// Runs `argv` exactly (the first element is the program).
    pub fn new<I, S>(argv: I) -> GuestSpec
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        GuestSpec {
            command: argv.into_iter().map(Into::into).collect(),
            kernel: Kernel::Default,
            modules: Vec::new(),
            gpu: None,
            net: None,
            shares: Vec::new(),
            env: Vec::new(),
            cwd: None,
            setup: None,
            systemd: false,
            timeout: Duration::from_secs(180),
            mem: "2G".to_owned(),
            smp: 2,
            qemu_args: Vec::new(),
            kernel_args: Vec::new(),
            keep: None,
        }
    }

    /// Runs `script` with `bash -c` (with `set -e` off; use `&&` or `set -e;`).
    pub fn shell(script: &str) -> GuestSpec {
        GuestSpec::new(["/bin/bash", "-c", script])
    }

    pub fn kernel(mut self, k: Kernel) -> Self {
        self.kernel = k;
        self
    }

    pub fn modules(mut self, m: &[&str]) -> Self {
        self.modules.extend(m.iter().map(|s| (*s).to_owned()));
        self
    }

    pub fn gpu(mut self, g: Gpu) -> Self {
        self.gpu = Some(g);
        self
    }

    pub fn net(mut self, n: GuestNet) -> Self {
        self.net = Some(n);
        self
    }

    pub fn share(mut self, p: impl Into<PathBuf>) -> Self {
        self.shares.push(p.into());
        self
    }

    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.to_owned(), v.to_owned()));
        self
    }

    pub fn cwd(mut self, p: impl Into<PathBuf>) -> Self {
        self.cwd = Some(p.into());
        self
    }

    pub fn setup(mut self, p: impl Into<PathBuf>) -> Self {
        self.setup = Some(p.into());
        self
    }

    pub fn systemd(mut self) -> Self {
        self.systemd = true;
        self
    }

    pub fn timeout_secs(mut self, s: u64) -> Self {
        self.timeout = Duration::from_secs(s);
        self
    }

    pub fn qemu_arg(mut self, a: &str) -> Self {
        self.qemu_args.push(a.to_owned());
        self
    }

    pub fn kernel_arg(mut self, a: &str) -> Self {
        self.kernel_args.push(a.to_owned());
        self
    }

    pub fn keep(mut self, p: impl Into<PathBuf>) -> Self {
        self.keep = Some(p.into());
        self
    }

    /// The runner's command line for this spec (options, `--`, the command).
    pub fn args(&self) -> Vec<OsString> {
        let mut a: Vec<OsString> = Vec::new();
        let mut opt = |k: &str, v: OsString| {
            a.push(k.into());
            a.push(v);
        };
        match &self.kernel {
            Kernel::Default => {}
            Kernel::ZeroCopy => opt("--kernel", "zc".into()),
            Kernel::Release(r) => opt("--kernel", r.into()),
        }
        if !self.modules.is_empty() {
            opt("--modules", self.modules.join(",").into());
        }
        match self.gpu {
            Some(Gpu::Virtio) => opt("--gpu", "virtio".into()),
            Some(Gpu::Bochs) => opt("--gpu", "bochs".into()),
            None => {}
        }
        if let Some(n) = &self.net {
            opt("--netns", (&n.netns).into());
            opt("--tap", (&n.tap).into());
            opt("--host-ip", (&n.host_cidr).into());
            opt("--guest-ip", (&n.guest_cidr).into());
            opt("--queues", n.queues.to_string().into());
            if let Some(o) = &n.nic_opts {
                opt("--nic-opts", o.into());
            }
        }
        for s in &self.shares {
            opt("--share", s.into());
        }
        for (k, v) in &self.env {
            opt("--env", format!("{k}={v}").into());
        }
        if let Some(c) = &self.cwd {
            opt("--cwd", c.into());
        }
        if let Some(s) = &self.setup {
            opt("--setup", s.into());
        }
        opt(
            "--timeout",
            self.timeout.as_secs().max(1).to_string().into(),
        );
        opt("--mem", (&self.mem).into());
        opt("--smp", self.smp.to_string().into());
        for q in &self.qemu_args {
            opt("--qemu-arg", q.into());
        }
        for k in &self.kernel_args {
            opt("--append", k.into());
        }
        if let Some(k) = &self.keep {
            opt("--keep", k.into());
        }
        if self.systemd {
            a.push("--systemd".into());
        }
        a.push("--".into());
        a.extend(self.command.iter().cloned());
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_carry_every_option_and_end_with_the_command() {
        let s = GuestSpec::shell("true")
            .kernel(Kernel::ZeroCopy)
            .modules(&["uinput", "evdev"])
            .gpu(Gpu::Bochs)
            .env("A", "b c")
            .systemd()
            .timeout_secs(7);
        let a: Vec<String> = s
            .args()
            .into_iter()
            .map(|o| o.into_string().unwrap())
            .collect();
        let pos = |k: &str| a.iter().position(|x| x == k).unwrap();
        assert_eq!(a[pos("--kernel") + 1], "zc");
        assert_eq!(a[pos("--modules") + 1], "uinput,evdev");
        assert_eq!(a[pos("--gpu") + 1], "bochs");
        assert_eq!(a[pos("--env") + 1], "A=b c");
        assert_eq!(a[pos("--timeout") + 1], "7");
        assert!(a.contains(&"--systemd".to_owned()));
        assert_eq!(&a[pos("--")..], ["--", "/bin/bash", "-c", "true"]);
    }
}
