//! The VM lab: real kernel drivers for the hardware-facing tests. A QEMU guest boots a stock
//! Debian kernel (bookworm-backports 6.12 by default; trixie-backports 7.x for AF_XDP
//! zero-copy on virtio-net) with this machine's `/` as its root — read-only over 9p, under a
//! throw-away tmpfs layer — and the repository (and `CARGO_TARGET_DIR`) shared read-write at
//! their own paths, so a test binary built on the host runs unchanged in the guest. The guest
//! runs one command and powers off; its stdout, stderr and exit status come back over
//! virtio-serial. Recipe and measurements: `../shared/reference/vm-lab.md`.
//!
//! Pieces: `scripts/vmlab/setup.sh` installs it (QEMU from bookworm-backports, kernels
//! downloaded and extracted into `/var/cache/strahl-vmlab`, busybox initramfs; called by
//! `scripts/setup.sh`), `scripts/vmlab/run-guest` boots one guest (also usable as a cargo
//! runner, `--help`), and this crate drives the runner from tests.
//!
//! ```ignore
//! use strahl_vmlab::{GuestSpec, Gpu, Lab};
//! let lab = Lab::require("my_test")?;             // None: SKIPPED printed (a failure under CI)
//! let out = lab.run(
//!     &GuestSpec::shell("modprobe -a uinput evdev && test -c /dev/uinput")
//!         .modules(&["virtio-gpu"])               // loaded before the command
//!         .gpu(Gpu::Virtio)                       // -device virtio-gpu-pci → /dev/dri/card0
//!         .timeout_secs(120),
//! )?;
//! out.assert_success();                            // panics with both streams otherwise
//! ```
//! Running a test binary inside: `GuestSpec::new([exe, "--exact", "name"])` with the binary's
//! path under the shared target directory. Networking: [`NetNs`] makes a namespace the test owns;
//! [`GuestNet`] puts QEMU in it with a multi-queue tap (host side address in the namespace, guest
//! `eth0` configured before the command); host-side peers run in the same namespace
//! ([`NetNs::command`]). `.systemd()` boots systemd as PID 1 and runs the command as a unit once
//! `multi-user.target` is reached; `.setup(file)` runs a bash script as root first (e.g. to
//! install files into the guest's root); `.kernel_arg(a)` adds to the kernel command line.
//! `tests/appliance_boot.rs` uses all of these. Under systemd the guest's /tmp is its own
//! tmpfs; otherwise the host's /tmp is visible read-only (writes stay in the guest).
//!
//! Contract:
//! - [`Lab::detect`] checks what the runner needs (the lab installed by setup, its QEMU and
//!   kernels) and says why not in [`NotAvailable`]; [`Lab::require`] turns that into a loud
//!   SKIPPED line, or a panic when `CI` is set (`CI=true`): on the CI machine kind the lab must
//!   run, so a missing lab is a failure there, never a silent pass.
//! - [`Lab::run`] is bounded: the runner kills QEMU at the spec's timeout, and this side kills
//!   the runner's whole process group 30 s later if it has not returned.
//! - Exit status: the command's own; 124 = timed out ([`LabError::TimedOut`]); 125 = the lab
//!   failed before the command ran ([`LabError::Failed`], with the guest's console tail).
//! - TCG is slow (a boot ≈ 5–10 s, Python start-up 1–6 s): group checks into few boots.
//!
//! The [`harness`] module runs `harness = false` test files whose cases need the lab, counting
//! them as ignored (not passed) when it is missing; [`harness::skip`] does the same for a case
//! that cannot run here for another reason (no root). Both are failures under CI.
#![forbid(unsafe_code)]

pub mod harness;
mod netns;
mod run;
mod spec;

use std::fmt;
use std::path::{Path, PathBuf};

pub use netns::NetNs;
pub use run::{GuestOutput, LabError};
pub use spec::{Gpu, GuestNet, GuestSpec, Kernel};

/// Where setup installs the lab unless `STRAHL_VMLAB_DIR` says otherwise.
pub const DEFAULT_LAB_DIR: &str = "/var/cache/strahl-vmlab";

/// Why the lab cannot run here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotAvailable {
    pub why: String,
}

impl fmt::Display for NotAvailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VM lab not available: {}", self.why)
    }
}

impl std::error::Error for NotAvailable {}

/// An installed lab (what `scripts/vmlab/setup.sh` recorded in `lab.env`).
#[derive(Debug, Clone)]
pub struct Lab {
    runner: PathBuf,
    dir: PathBuf,
    kernel: String,
    zc_kernel: Option<String>,
    qemu_version: String,
}

impl Lab {
    /// The lab if it can run here, else why not.
    pub fn detect() -> Result<Lab, NotAvailable> {
        let no = |why: String| Err(NotAvailable { why });
        let repo = repo_root();
        let runner = repo.join("scripts/vmlab/run-guest");
        if !runner.is_file() {
            return no(format!("no runner at {}", runner.display()));
        }
        let dir = std::env::var_os("STRAHL_VMLAB_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_LAB_DIR));
        let env_file = dir.join("lab.env");
        let text = match std::fs::read_to_string(&env_file) {
            Ok(t) => t,
            Err(e) => {
                return no(format!(
                    "{}: {e} (install it: scripts/vmlab/setup.sh, as root)",
                    env_file.display()
                ));
            }
        };
        let get = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
                .map(|v| v.trim().trim_matches('"').to_owned())
                .filter(|v| !v.is_empty())
        };
        let Some(kernel) = get("KVER") else {
            return no(format!("{} names no kernel (KVER)", env_file.display()));
        };
        let qemu = get("QEMU").unwrap_or_default();
        if !Path::new(&qemu).is_file() {
            return no(format!(
                "QEMU {qemu:?} from {} is missing",
                env_file.display()
            ));
        }
        let vmlinuz = dir.join(format!("kernels/{kernel}/boot/vmlinuz-{kernel}"));
        if !vmlinuz.exists() {
            return no(format!("{} is missing", vmlinuz.display()));
        }
        let zc_kernel = get("ZC_KVER").filter(|k| {
            dir.join(format!("kernels/{k}/boot/vmlinuz-{k}")).exists()
                && dir.join(format!("initramfs-{k}.cpio.gz")).exists()
        });
        Ok(Lab {
            runner,
            dir,
            kernel,
            zc_kernel,
            qemu_version: get("QEMU_VERSION").unwrap_or_default(),
        })
    }

    /// [`Lab::detect`] for a test: `None` after printing `SKIPPED <test>: <why>` when the lab is
    /// missing; panics instead when `CI` is set, where the lab must run.
    pub fn require(test: &str) -> Option<Lab> {
        match Lab::detect() {
            Ok(lab) => Some(lab),
            Err(e) if in_ci() => panic!("{test}: {e} — required under CI"),
            Err(e) => {
                eprintln!("SKIPPED {test}: {e}");
                None
            }
        }
    }

    /// The default guest kernel's release (`uname -r` in the guest).
    pub fn kernel(&self) -> &str {
        &self.kernel
    }

    /// The zero-copy kernel's release, when setup installed it.
    pub fn zc_kernel(&self) -> Option<&str> {
        self.zc_kernel.as_deref()
    }

    /// The installed QEMU package version.
    pub fn qemu_version(&self) -> &str {
        &self.qemu_version
    }

    /// The lab directory (kernels, initramfs, `lab.env`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `scripts/vmlab/run-guest`.
    pub fn runner(&self) -> &Path {
        &self.runner
    }

    /// Boots a guest, runs `spec`'s command, returns its output and status (bounded by the
    /// spec's timeout).
    pub fn run(&self, spec: &GuestSpec) -> Result<GuestOutput, LabError> {
        run::run(self, spec)
    }
}

/// True under CI (`CI` set to anything but `false`/`0`/empty).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !matches!(v.as_str(), "" | "0" | "false"))
}

/// The repository root (this crate sits at `crates/test/vmlab`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../..")
}
