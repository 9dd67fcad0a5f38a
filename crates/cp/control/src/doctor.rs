//! `strahl-control doctor`: checks the host against what strahl needs, each finding with how to
//! fix it.
//!
//! Contract: the checks are sans-IO. [`run_checks`] reads the machine only through a
//! [`SystemView`] (file reads, directory listings, access checks, external commands, port
//! probes), so tests drive every verdict with a fake view; [`RealSystem`] is the one
//! implementation that touches the host (used by the binary). Nothing here changes the host.
//!
//! Required vs recommended ([`Level`]): a finding is *required* when strahl cannot do its job
//! as configured without it, and the exit code is non-zero if any required finding fails:
//! - the GameStream, status and native ports are free (or already held by strahl);
//! - the capture device the configuration names (`[video] source = "kms"` → DRM devices);
//! - the encoder the configuration names (`[video] encoder = "nvenc"` → NVIDIA driver, NVENC
//!   and CUDA libraries);
//! - the transport the configuration names (`[dataplane] transport = "af_xdp"` / `"io_uring"`
//!   → that kernel facility allowed; AF_XDP also needs the memlock limit).
//! - the sound source the configuration names (`[audio] source = "pipewire"` → `pw-record`, a
//!   reachable PipeWire socket and, on the appliance, its grant to the data plane's group —
//!   `doctor_audio.rs`).
//!
//! Everything else is *recommended*: it costs performance or a feature with a working fallback
//! (an isolated tx core, strahl's kernel-config files in effect — `doctor_kconfig.rs` —, native
//! XDP, io_uring/AF_XDP under `transport = "auto"`, NVENC under `encoder = "auto"`,
//! `/dev/uinput` — the input sink falls back to recording —, the box's sound under `[audio] source =
//! "auto"` — the test tone instead —, an open firewall, time sync).

use strahl_config::{Cores, EncoderPref, TransportPref, VideoSource};

#[path = "doctor_model.rs"]
mod model;
pub use model::*;

/// Runs every check.
pub fn run_checks(sys: &dyn SystemView, inp: &Inputs) -> Vec<Finding> {
    let mut out = Vec::new();
    out.push(kernel_args(sys, inp));
    out.extend(kconfig::kargs(sys));
    out.push(kconfig::sysctl(sys));
    out.extend(nic(sys, inp));
    out.push(af_xdp(sys, inp));
    out.push(io_uring(sys, inp));
    out.push(memlock(sys, inp));
    out.extend(nvidia(sys, inp));
    out.push(drm(sys, inp));
    out.push(uinput(sys));
    out.push(audio(sys, inp));
    out.extend(ports(sys, inp));
    out.push(firewall(sys, inp));
    out.push(time_sync(sys));
    out
}

#[path = "doctor_kconfig.rs"]
pub mod kconfig;
pub use kconfig::{parse_cpu_list, parse_cpu_list_last};

#[path = "doctor_audio.rs"]
mod audio_check;
use audio_check::audio;

#[path = "doctor_host.rs"]
mod host_checks;
pub use host_checks::{COMMAND_TIMEOUT, RealSystem, render_human};
use host_checks::{firewall, ports, time_sync};

/// True when some required finding failed (→ non-zero exit).
pub fn required_missing(findings: &[Finding]) -> bool {
    findings
        .iter()
        .any(|f| f.level == Level::Required && f.verdict == Verdict::Fail)
}

fn cmdline_arg<'a>(cmdline: &'a str, key: &str) -> Option<&'a str> {
    cmdline
        .split_whitespace()
        .filter_map(|w| w.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

/// The tx tile's core is isolated: the plan puts the tx tile alone on one of its cores (the
/// one thread pinned to a single core, waiting for µs-precise releases), so that core should be
/// out of the scheduler's balancing (`isolcpus`, with the domain flag or none), tickless
/// (`nohz_full`), free of RCU callbacks (`rcu_nocbs`) and of default IRQ affinity
/// (`irqaffinity`). The tx core is the plan's (the kernel's isolated core with `cores = "auto"`,
/// CPU 1 in kernel-config/kargs.d/50-strahl-dataplane.toml); lists on the command line may use
/// the kernel's "N" for the last CPU where the kernel accepts it (not in `isolcpus`).
fn kernel_args(sys: &dyn SystemView, inp: &Inputs) -> Finding {
    const C: &str = "kernel_args";
    let online = sys
        .read("/sys/devices/system/cpu/online")
        .map(|s| parse_cpu_list(&s))
        .unwrap_or_default();
    let isolated = sys
        .read("/sys/devices/system/cpu/isolated")
        .map(|s| parse_cpu_list(&s))
        .unwrap_or_default();
    if matches!(inp.cores, Cores::Auto) && online.len() < 4 && isolated.is_empty() {
        return finding(
            C,
            Level::Recommended,
            Verdict::Ok,
            format!(
                "{} online core(s): the data plane shares all cores (nothing to isolate)",
                online.len()
            ),
            "",
        );
    }
    // The data plane's own rule (Plan::derive_isolated): with `cores = "auto"` the tx tile goes
    // to the kernel's isolated core when there is one.
    let mut cfg = strahl_config::Config::default();
    cfg.dataplane.cores = inp.cores.clone();
    let online_count = online.last().map_or(1, |l| usize::from(*l) + 1);
    let plan = match strahl_config::Plan::derive_isolated(&cfg, online_count, &isolated) {
        Ok(p) => p,
        Err(e) => {
            return finding(
                C,
                Level::Recommended,
                Verdict::Fail,
                format!("the data-plane plan does not fit this machine: {e}"),
                "fix [dataplane] cores in the configuration",
            );
        }
    };
    let tx = plan.core_of(strahl_config::Tile::Tx);
    if !plan.tx_dedicated {
        return finding(
            C,
            Level::Recommended,
            Verdict::Ok,
            "one data-plane core: the tx tile shares it (nothing to isolate)".into(),
            "",
        );
    }
    let Some(cmdline) = sys.read("/proc/cmdline") else {
        return finding(
            C,
            Level::Recommended,
            Verdict::Unknown,
            "cannot read /proc/cmdline".into(),
            "run doctor on the host itself (not in a restricted container)",
        );
    };
    let last = online.last().copied();
    let list = |key: &str| {
        cmdline_arg(&cmdline, key).map(|v| {
            // isolcpus may carry flags before the list: "managed_irq,domain,2-3".
            let (flags, list): (Vec<&str>, Vec<&str>) = v
                .split(',')
                .partition(|p| p.chars().any(|c| c.is_ascii_lowercase()));
            (flags, parse_cpu_list_last(&list.join(","), last))
        })
    };
    // A number, never "N": isolcpus reads a leading letter as a flag and isolates nothing.
    let name = tx.to_string();
    let mut missing = Vec::new();
    match list("isolcpus") {
        Some((flags, set))
            if set.contains(&tx) && (flags.is_empty() || flags.contains(&"domain")) => {}
        _ => missing.push(format!("isolcpus=managed_irq,domain,{name}")),
    }
    for key in ["nohz_full", "rcu_nocbs"] {
        if !list(key).is_some_and(|(_, set)| set.contains(&tx)) {
            missing.push(format!("{key}={name}"));
        }
    }
    if !list("irqaffinity").is_some_and(|(_, irq)| !irq.is_empty() && !irq.contains(&tx)) {
        let house = online
            .iter()
            .find(|c| **c != tx)
            .map_or("0".into(), u16::to_string);
        missing.push(format!("irqaffinity={house}"));
    }
    if missing.is_empty() {
        finding(
            C,
            Level::Recommended,
            Verdict::Ok,
            format!(
                "the tx tile's core {tx} is isolated (isolcpus, nohz_full, rcu_nocbs, irqaffinity)"
            ),
            "",
        )
    } else {
        finding(
            C,
            Level::Recommended,
            Verdict::Fail,
            format!(
                "the tx tile's core {tx} is not isolated; missing: {}",
                missing.join(" ")
            ),
            &format!(
                "add `{}` to the kernel command line (strahl's image carries them: \
                 kernel-config/kargs.d/50-strahl-dataplane.toml; elsewhere GRUB_CMDLINE_LINUX in \
                 /etc/default/grub, then update-grub) and reboot",
                missing.join(" ")
            ),
        )
    }
}

/// The interface the data plane uses: the configured name, or the IPv4 default route's.
pub fn resolve_interface(sys: &dyn SystemView, configured: &str) -> Option<String> {
    if configured != "auto" {
        return Some(configured.to_string());
    }
    let route = sys.read("/proc/net/route")?;
    route
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.len() > 2 && f[1] == "00000000")
        .map(|f| f[0].to_string())
        .or_else(|| Some("lo".into()))
}

fn nic(sys: &dyn SystemView, inp: &Inputs) -> Vec<Finding> {
    let required = inp.transport == TransportPref::AfXdp;
    let level = level_if(required);
    let Some(ifname) = resolve_interface(sys, &inp.interface) else {
        return vec![finding(
            "nic_xdp",
            level,
            Verdict::Unknown,
            "cannot determine the media interface (/proc/net/route unreadable)".into(),
            "set [dataplane] interface to the NIC's name",
        )];
    };
    let base = format!("/sys/class/net/{ifname}");
    if !sys.exists(&base) {
        return vec![finding(
            "nic_xdp",
            level,
            Verdict::Fail,
            format!("interface {ifname} does not exist"),
            "set [dataplane] interface (and [network] interface) to an existing NIC (ip link)",
        )];
    }
    let driver = sys
        .read_link(&format!("{base}/device/driver"))
        .and_then(|p| p.rsplit('/').next().map(str::to_string));
    let attached = sys
        .run(&["ip", "-d", "link", "show", "dev", &ifname])
        .map(|o| o.stdout)
        .unwrap_or_default();
    let attached_mode = if attached.contains("xdpdrv") || attached.contains("xdpoffload") {
        Some("native")
    } else if attached.contains("xdpgeneric") {
        Some("generic")
    } else {
        None
    };
    let mode = match (&driver, ifname.as_str()) {
        (Some(d), _) if NATIVE_XDP_DRIVERS.contains(&d.as_str()) => "native",
        (_, "lo") | (None, _) => "generic",
        (Some(_), _) => "generic",
    };
    let detail = format!(
        "{ifname}: driver {}, XDP mode available: {mode}{}",
        driver.as_deref().unwrap_or("none (virtual)"),
        attached_mode
            .map(|m| format!(", program attached ({m})"))
            .unwrap_or_default()
    );
    let xdp = if mode == "native" {
        finding("nic_xdp", level, Verdict::Ok, detail, "")
    } else {
        finding(
            "nic_xdp",
            level,
            Verdict::Fail,
            detail,
            "AF_XDP runs in generic (copy) mode here: use a NIC whose driver has native XDP \
             (e.g. ice, i40e, mlx5_core, ixgbe, igc) for zero-copy; strahl falls back to \
             io_uring/sendmmsg meanwhile",
        )
    };
    let queues = sys.list_dir(&format!("{base}/queues"));
    let tx = queues.iter().filter(|q| q.starts_with("tx-")).count();
    let rx = queues.iter().filter(|q| q.starts_with("rx-")).count();
    let q = if tx >= 2 {
        finding(
            "nic_queues",
            Level::Recommended,
            Verdict::Ok,
            format!("{ifname}: {tx} TX / {rx} RX queues"),
            "",
        )
    } else {
        finding(
            "nic_queues",
            Level::Recommended,
            Verdict::Fail,
            format!("{ifname}: {tx} TX / {rx} RX queue(s)"),
            &format!(
                "a dedicated TX queue per data-plane core needs a multi-queue NIC: \
                 `ethtool -L {ifname} combined N` where supported"
            ),
        )
    };
    vec![xdp, q]
}

/// Effective capabilities of this process (bit set), from /proc/self/status.
fn cap_eff(sys: &dyn SystemView) -> Option<u64> {
    let s = sys.read("/proc/self/status")?;
    let v = s.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    u64::from_str_radix(v.trim(), 16).ok()
}

const CAP_NET_ADMIN: u32 = 12;
const CAP_NET_RAW: u32 = 13;
const CAP_IPC_LOCK: u32 = 14;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_BPF: u32 = 39;

fn has_cap(caps: Option<u64>, cap: u32) -> bool {
    caps.is_some_and(|c| c & (1u64 << cap) != 0)
}

fn af_xdp(sys: &dyn SystemView, inp: &Inputs) -> Finding {
    const C: &str = "af_xdp";
    let level = level_if(inp.transport == TransportPref::AfXdp);
    let kernel = sys.read("/proc/sys/kernel/osrelease").unwrap_or_default();
    let (maj, min) = kernel_version(&kernel);
    if (maj, min) < (5, 10) {
        return finding(
            C,
            level,
            Verdict::Fail,
            format!(
                "kernel {} is older than 5.10 (AF_XDP need-wakeup, BPF_F_XDP_*)",
                kernel.trim()
            ),
            "upgrade to a 6.x kernel (Debian 12: linux-image-amd64 6.1)",
        );
    }
    let caps = cap_eff(sys);
    let bpf = has_cap(caps, CAP_BPF) || has_cap(caps, CAP_SYS_ADMIN);
    let raw = has_cap(caps, CAP_NET_RAW);
    let admin = has_cap(caps, CAP_NET_ADMIN);
    if bpf && raw && admin {
        finding(
            C,
            level,
            Verdict::Ok,
            format!(
                "kernel {}, this process has CAP_NET_RAW, CAP_NET_ADMIN and CAP_BPF",
                kernel.trim()
            ),
            "",
        )
    } else {
        finding(
            C,
            level,
            Verdict::Fail,
            format!(
                "kernel {} supports AF_XDP, but this process lacks{}{}{}",
                kernel.trim(),
                if raw { "" } else { " CAP_NET_RAW" },
                if admin { "" } else { " CAP_NET_ADMIN" },
                if bpf { "" } else { " CAP_BPF" }
            ),
            "run the data plane with the appliance unit (appliance/strahl-dataplane.service grants \
             CAP_NET_RAW CAP_NET_ADMIN CAP_BPF CAP_IPC_LOCK) or `setcap \
             cap_net_raw,cap_net_admin,cap_bpf,cap_ipc_lock+ep strahl-dataplane`; run doctor as that \
             user to verify",
        )
    }
}

fn kernel_version(s: &str) -> (u32, u32) {
    let mut it = s.trim().split(['.', '-']);
    let maj = it.next().and_then(|v| v.parse().ok()).unwrap_or(0);
    let min = it.next().and_then(|v| v.parse().ok()).unwrap_or(0);
    (maj, min)
}

fn io_uring(sys: &dyn SystemView, inp: &Inputs) -> Finding {
    const C: &str = "io_uring";
    let level = level_if(inp.transport == TransportPref::IoUring);
    match sys.read("/proc/sys/kernel/io_uring_disabled").map(|s| s.trim().to_string()) {
        None => finding(
            C,
            level,
            Verdict::Ok,
            "no kernel.io_uring_disabled sysctl (kernel < 6.6): io_uring is allowed".into(),
            "",
        ),
        Some(v) if v == "0" => finding(
            C,
            level,
            Verdict::Ok,
            "kernel.io_uring_disabled = 0: allowed".into(),
            "",
        ),
        Some(v) if v == "1" => finding(
            C,
            level,
            Verdict::Fail,
            "kernel.io_uring_disabled = 1: only members of kernel.io_uring_group (or CAP_SYS_ADMIN)"
                .into(),
            "add the strahl user to the group in kernel.io_uring_group, or `sysctl -w \
             kernel.io_uring_disabled=0` (persist in /etc/sysctl.d/)",
        ),
        Some(v) => finding(
            C,
            level,
            Verdict::Fail,
            format!("kernel.io_uring_disabled = {v}: io_uring is disabled"),
            "`sysctl -w kernel.io_uring_disabled=0` (persist in /etc/sysctl.d/)",
        ),
    }
}

/// Soft RLIMIT_MEMLOCK in bytes from /proc/self/limits (`None` = unlimited).
fn memlock_limit(limits: &str) -> Option<Option<u64>> {
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max locked memory"))?;
    let soft = line
        .trim_start_matches("Max locked memory")
        .split_whitespace()
        .next()?;
    if soft == "unlimited" {
        Some(None)
    } else {
        soft.parse().ok().map(Some)
    }
}

fn memlock(sys: &dyn SystemView, inp: &Inputs) -> Finding {
    const C: &str = "memlock";
    let level = level_if(inp.transport == TransportPref::AfXdp);
    let ipc_lock = has_cap(cap_eff(sys), CAP_IPC_LOCK);
    match sys
        .read("/proc/self/limits")
        .and_then(|l| memlock_limit(&l))
    {
        None => finding(
            C,
            level,
            Verdict::Unknown,
            "cannot read the memlock limit".into(),
            "check `ulimit -l`",
        ),
        Some(None) => finding(C, level, Verdict::Ok, "memlock unlimited".into(), ""),
        Some(Some(_)) if ipc_lock => finding(
            C,
            level,
            Verdict::Ok,
            "CAP_IPC_LOCK held: memlock limit does not apply".into(),
            "",
        ),
        Some(Some(n)) if n >= MEMLOCK_RECOMMENDED => finding(
            C,
            level,
            Verdict::Ok,
            format!("memlock {} KiB", n / 1024),
            "",
        ),
        Some(Some(n)) => finding(
            C,
            level,
            Verdict::Fail,
            format!(
                "memlock {} KiB < {} KiB: AF_XDP UMEM registration may fail",
                n / 1024,
                MEMLOCK_RECOMMENDED / 1024
            ),
            "the appliance unit sets LimitMEMLOCK=infinity and grants CAP_IPC_LOCK; elsewhere raise \
             `memlock` in /etc/security/limits.conf",
        ),
    }
}

fn find_lib(sys: &dyn SystemView, name: &str) -> Option<String> {
    LIB_DIRS
        .iter()
        .map(|d| format!("{d}/{name}"))
        .find(|p| sys.exists(p))
}

fn nvidia(sys: &dyn SystemView, inp: &Inputs) -> Vec<Finding> {
    let level = level_if(inp.encoder == EncoderPref::Nvenc);
    let driver = sys.read("/proc/driver/nvidia/version").and_then(|v| {
        v.lines().next().map(|l| {
            l.split("  ")
                .find(|p| p.contains('.'))
                .unwrap_or(l)
                .trim()
                .to_string()
        })
    });
    let dev_ok = sys.can_read_write("/dev/nvidia0") && sys.can_read_write("/dev/nvidiactl");
    let fallback = if inp.encoder == EncoderPref::Nvenc {
        ""
    } else {
        " (strahl uses openh264 meanwhile)"
    };
    let drv = match (&driver, dev_ok) {
        (Some(v), true) => finding(
            "nvidia_driver",
            level,
            Verdict::Ok,
            format!("NVIDIA driver {v}, /dev/nvidia0 accessible"),
            "",
        ),
        (Some(v), false) => finding(
            "nvidia_driver",
            level,
            Verdict::Fail,
            format!(
                "NVIDIA driver {v} loaded, but /dev/nvidia0 or /dev/nvidiactl is not read-write for this user"
            ),
            "add the strahl user to the group owning /dev/nvidia* (usually video)",
        ),
        (None, _) => finding(
            "nvidia_driver",
            level,
            Verdict::Fail,
            format!("no NVIDIA kernel driver (/proc/driver/nvidia/version absent){fallback}"),
            "install the NVIDIA driver (Debian: nvidia-driver from non-free) on a host with an NVIDIA GPU",
        ),
    };
    let lib = |check: &str, name: &str, pkg: &str| match find_lib(sys, name) {
        Some(p) => finding(check, level, Verdict::Ok, format!("{name} at {p}"), ""),
        None => finding(
            check,
            level,
            Verdict::Fail,
            format!("{name} not found in {}{fallback}", LIB_DIRS.join(", ")),
            &format!("install {pkg}"),
        ),
    };
    vec![
        drv,
        lib(
            "nvenc",
            "libnvidia-encode.so.1",
            "libnvidia-encode1 (Debian non-free)",
        ),
        lib(
            "cuda",
            "libcuda.so.1",
            "libcuda1 (Debian non-free) / the NVIDIA driver's CUDA library",
        ),
    ]
}

/// Where `strahl-kms-helper` listens (`strahl_capture::kms_video::DEFAULT_SOCKET`; a cp crate
/// cannot name the dp constant).
const KMS_HELPER_SOCKET: &str = "/run/strahl/kms.sock";

fn drm(sys: &dyn SystemView, inp: &Inputs) -> Finding {
    const C: &str = "drm";
    let level = level_if(inp.source == VideoSource::Kms);
    let mut nodes: Vec<String> = sys
        .list_dir("/dev/dri")
        .into_iter()
        .filter(|n| n.starts_with("card") || n.starts_with("renderD"))
        .collect();
    nodes.sort();
    if nodes.is_empty() {
        return finding(
            C,
            level,
            Verdict::Fail,
            "no DRM devices in /dev/dri".into(),
            "KMS capture needs a GPU with a DRM driver loaded (check `lsmod | grep drm`); \
             [video] source = \"synthetic\" works without one",
        );
    }
    let denied: Vec<&String> = nodes
        .iter()
        .filter(|n| !sys.can_read_write(&format!("/dev/dri/{n}")))
        .collect();
    if denied.is_empty() {
        // The capture itself runs in strahl-kms-helper (strahl_capture::kms): only it may hold
        // CAP_SYS_ADMIN, which GETFB2 needs to hand out buffer handles.
        if inp.source == VideoSource::Kms && !sys.exists(KMS_HELPER_SOCKET) {
            return finding(
                C,
                level,
                Verdict::Fail,
                format!(
                    "{} accessible, but no KMS capture helper listens at {KMS_HELPER_SOCKET} \
                     (the data plane streams the synthetic pattern instead)",
                    nodes.join(", ")
                ),
                "start the capture helper: `systemctl enable --now strahl-kms-helper.service`, \
                 then restart strahl-dataplane (by hand: `strahl-kms-helper --socket \
                 /run/strahl/kms.sock --peer-user <the data plane's user>` as root or with \
                 CAP_SYS_ADMIN — GETFB2 gives buffer handles only to the DRM master or \
                 CAP_SYS_ADMIN); the data plane only receives dmabufs from it",
            );
        }
        finding(
            C,
            level,
            Verdict::Ok,
            format!("{} accessible", nodes.join(", ")),
            "",
        )
    } else {
        finding(
            C,
            level,
            Verdict::Fail,
            format!(
                "{} present; not read-write for this user: {}",
                nodes.join(", "),
                denied
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            "add the strahl user to the `video` and `render` groups (KMS capture of the primary \
             plane also needs CAP_SYS_ADMIN or DRM master)",
        )
    }
}

fn uinput(sys: &dyn SystemView) -> Finding {
    const C: &str = "uinput";
    if !sys.exists("/dev/uinput") {
        finding(
            C,
            Level::Recommended,
            Verdict::Fail,
            "/dev/uinput absent: client input cannot reach games (the recording sink is used)"
                .into(),
            "`modprobe uinput` and add `uinput` to /etc/modules-load.d/",
        )
    } else if !sys.can_read_write("/dev/uinput") {
        finding(
            C,
            Level::Recommended,
            Verdict::Fail,
            "/dev/uinput present but not read-write for this user".into(),
            "a udev rule: KERNEL==\"uinput\", GROUP=\"input\", MODE=\"0660\", and add the strahl \
             user to `input`",
        )
    } else {
        finding(
            C,
            Level::Recommended,
            Verdict::Ok,
            "/dev/uinput read-write".into(),
            "",
        )
    }
}

#[cfg(test)]
#[path = "doctor_tests.rs"]
mod tests;
