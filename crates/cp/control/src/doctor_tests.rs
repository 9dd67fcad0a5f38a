//! Doctor checks driven by a fake system view: each verdict follows from the facts injected.

use std::collections::{BTreeMap, BTreeSet};

use strahl_config::{AudioSource, Config};

use super::*;

#[derive(Default, Clone)]
struct Fake {
    files: BTreeMap<String, String>,
    dirs: BTreeMap<String, Vec<String>>,
    links: BTreeMap<String, String>,
    rw: BTreeSet<String>,
    cmds: BTreeMap<String, CmdOut>,
    busy: BTreeSet<u16>,
    /// Unix sockets that accept a connection.
    sockets: BTreeSet<String>,
}

impl Fake {
    fn file(mut self, p: &str, c: &str) -> Self {
        self.files.insert(p.into(), c.into());
        self
    }
    fn dir(mut self, p: &str, names: &[&str]) -> Self {
        self.dirs
            .insert(p.into(), names.iter().map(|s| s.to_string()).collect());
        self
    }
    fn rw(mut self, p: &str) -> Self {
        self.rw.insert(p.into());
        self
    }
    fn cmd(mut self, argv: &str, status: i32, out: &str) -> Self {
        self.cmds.insert(
            argv.into(),
            CmdOut {
                status,
                stdout: out.into(),
            },
        );
        self
    }
}

impl SystemView for Fake {
    fn read(&self, path: &str) -> Option<String> {
        self.files.get(path).cloned()
    }
    fn exists(&self, path: &str) -> bool {
        self.files.contains_key(path) || self.dirs.contains_key(path) || self.rw.contains(path)
    }
    fn list_dir(&self, path: &str) -> Vec<String> {
        self.dirs.get(path).cloned().unwrap_or_default()
    }
    fn read_link(&self, path: &str) -> Option<String> {
        self.links.get(path).cloned()
    }
    fn can_read_write(&self, path: &str) -> bool {
        self.rw.contains(path)
    }
    fn run(&self, argv: &[&str]) -> Option<CmdOut> {
        self.cmds.get(&argv.join(" ")).cloned()
    }
    fn connect_unix(&self, path: &str) -> Result<(), String> {
        if self.sockets.contains(path) {
            Ok(())
        } else {
            Err("No such file or directory (os error 2)".into())
        }
    }
    fn port(&self, _proto: Proto, port: u16) -> PortState {
        if self.busy.contains(&port) {
            PortState::InUse
        } else {
            PortState::Free
        }
    }
}

fn inputs() -> Inputs {
    Inputs::from_config(&Config::default())
}

fn get<'a>(f: &'a [Finding], check: &str) -> &'a Finding {
    f.iter()
        .find(|x| x.check == check)
        .unwrap_or_else(|| panic!("no finding {check}: {f:?}"))
}

/// A fake machine from a fixture of tests/fixtures/doctor/ ("== PATH" headers, each followed
/// by that file's contents).
fn fixture(text: &str) -> Fake {
    let mut f = Fake::default();
    let mut cur: Option<(String, String)> = None;
    for line in text.lines() {
        if let Some(path) = line.strip_prefix("== ") {
            if let Some((p, c)) = cur.take() {
                f = f.file(&p, &c);
            }
            cur = Some((path.trim().to_string(), String::new()));
        } else if let Some((_, c)) = cur.as_mut() {
            c.push_str(line);
            c.push('\n');
        }
    }
    if let Some((p, c)) = cur {
        f = f.file(&p, &c);
    }
    f
}

/// A machine running strahl's image: the repository's kernel-config files where the image
/// installs them (all three profiles), and its EDID.
fn with_image(f: Fake) -> Fake {
    let mut f = f.file(kconfig::EDID_FIRMWARE, "");
    for (_, path, text) in kconfig::KARGS_FILES {
        f = f.file(path, text);
    }
    for (name, text) in kconfig::SYSCTL_FILES {
        f = f.file(&format!("/usr/lib/sysctl.d/{name}"), text);
    }
    f
}

const APPLIANCE: &str = include_str!("../tests/fixtures/doctor/appliance.sysview");
const REBASED: &str = include_str!("../tests/fixtures/doctor/rebased.sysview");
const DEV_HOST: &str = include_str!("../tests/fixtures/doctor/dev-host.sysview");

/// A well-provisioned appliance: strahl's kernel-config in effect (tests/fixtures/doctor/
/// appliance.sysview, tx core isolated), ice NIC, NVIDIA, DRM, uinput, NTP.
fn good() -> Fake {
    let mut f = fixture(APPLIANCE)
        .file(kconfig::EDID_FIRMWARE, "")
        .file(
            "/proc/net/route",
            "Iface\tDestination\tGateway\nenp1s0\t00000000\t0101A8C0\nenp1s0\t0001A8C0\t00000000\n",
        )
        .dir("/sys/class/net/enp1s0", &["device"])
        .dir("/sys/class/net/enp1s0/queues", &["rx-0", "rx-1", "tx-0", "tx-1"])
        .file("/proc/sys/kernel/osrelease", "6.1.0-18-amd64\n")
        // CapEff with NET_ADMIN(12), NET_RAW(13), IPC_LOCK(14), BPF(39).
        .file(
            "/proc/self/status",
            &format!("Name:\tx\nCapEff:\t{:016x}\n", (1u64 << 12) | (1 << 13) | (1 << 14) | (1 << 39)),
        )
        .file("/proc/sys/kernel/io_uring_disabled", "0\n")
        .file(
            "/proc/self/limits",
            "Limit  Soft Limit Hard Limit Units\nMax locked memory         unlimited            unlimited            bytes\n",
        )
        .file(
            "/proc/driver/nvidia/version",
            "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.154.05  Thu Dec 28 15:37:48 UTC 2023\n",
        )
        .rw("/dev/nvidia0")
        .rw("/dev/nvidiactl")
        .file("/usr/lib/x86_64-linux-gnu/libnvidia-encode.so.1", "")
        .file("/usr/lib/x86_64-linux-gnu/libcuda.so.1", "")
        .dir("/dev/dri", &["card0", "renderD128", "by-path"])
        .rw("/dev/dri/card0")
        .rw("/dev/dri/renderD128")
        .rw("/dev/uinput")
        .cmd("nft list ruleset", 0, "table inet filter {\n}\n")
        .cmd("timedatectl show -p NTPSynchronized --value", 0, "yes\n");
    f = with_pipewire(f);
    f.links.insert(
        "/sys/class/net/enp1s0/device/driver".into(),
        "../../../bus/pci/drivers/ice".into(),
    );
    f
}

#[test]
fn good_host_passes_everything() {
    let f = run_checks(&good(), &inputs());
    let bad: Vec<_> = f.iter().filter(|x| x.verdict != Verdict::Ok).collect();
    assert!(bad.is_empty(), "{bad:#?}");
    assert!(!required_missing(&f));
    assert!(f.iter().all(|x| x.fix.is_empty()));
    assert!(get(&f, "nic_xdp").detail.contains("native"), "{f:?}");
    assert!(get(&f, "nic_queues").detail.contains("2 TX"));
    // Every configured port is checked.
    assert_eq!(f.iter().filter(|x| x.check.starts_with("port_")).count(), 8);
}

#[test]
fn kernel_args_missing_names_the_exact_arguments() {
    let s = good().file("/proc/cmdline", "root=/dev/sda1 quiet\n");
    let f = run_checks(&s, &inputs());
    let k = get(&f, "kernel_args");
    assert_eq!((k.verdict, k.level), (Verdict::Fail, Level::Recommended));
    // The tx tile's core is the kernel's isolated one (CPU 1, as the shipped profile names it),
    // always by number: isolcpus reads a leading "N" as a flag.
    for arg in [
        "isolcpus=managed_irq,domain,1",
        "nohz_full=1",
        "rcu_nocbs=1",
        "irqaffinity=0",
    ] {
        assert!(k.fix.contains(arg), "{arg}: {}", k.fix);
    }
    assert!(k.detail.contains("core 1"), "{}", k.detail);
    assert!(!required_missing(&f), "recommended only");
    // Nothing isolated by the kernel: the plan's tx core is the last CPU, named by number.
    let s = good()
        .file("/proc/cmdline", "root=/dev/sda1 quiet\n")
        .file("/sys/devices/system/cpu/isolated", "\n");
    let k = kernel_args(&s, &inputs());
    assert_eq!(k.verdict, Verdict::Fail);
    assert!(k.fix.contains("isolcpus=managed_irq,domain,7"), "{}", k.fix);
    assert!(k.detail.contains("core 7"), "{}", k.detail);
    // Explicit numbers and "N" where the kernel takes it; only the tx core must be isolated.
    let s = good()
        .file(
            "/proc/cmdline",
            "isolcpus=7 nohz_full=4-N rcu_nocbs=7 irqaffinity=0-3",
        )
        .file("/sys/devices/system/cpu/isolated", "7\n");
    assert_eq!(kernel_args(&s, &inputs()).verdict, Verdict::Ok);
    // An explicit core list is checked as given: its last core, not the isolated CPU.
    let mut inp = inputs();
    inp.cores = Cores::List(vec![2, 3]);
    let s = good().file(
        "/proc/cmdline",
        "isolcpus=managed_irq,domain,1 nohz_full=3 rcu_nocbs=2-3 irqaffinity=0-3",
    );
    let k = kernel_args(&s, &inp);
    assert_eq!(k.verdict, Verdict::Fail);
    assert!(
        k.detail.contains("isolcpus=managed_irq,domain,3")
            && k.detail.contains("irqaffinity=0")
            && !k.detail.contains("nohz_full")
            && !k.detail.contains("rcu_nocbs"),
        "{k:?}"
    );
    // isolcpus without the domain flag (only nohz, say) leaves the scheduler balancing there
    // (and the kernel then lists no isolated CPU).
    let s = good()
        .file(
            "/proc/cmdline",
            "isolcpus=nohz,1 nohz_full=1 rcu_nocbs=1 irqaffinity=0",
        )
        .file("/sys/devices/system/cpu/isolated", "\n");
    assert_eq!(kernel_args(&s, &inputs()).verdict, Verdict::Fail);
    // Few cores and nothing isolated: nothing to isolate.
    let s = good()
        .file("/sys/devices/system/cpu/online", "0-1")
        .file("/sys/devices/system/cpu/isolated", "");
    assert_eq!(kernel_args(&s, &inputs()).verdict, Verdict::Ok);
    inp.cores = Cores::List(vec![3]);
    assert_eq!(kernel_args(&good(), &inp).verdict, Verdict::Ok);
}

#[test]
fn cpu_lists_parse() {
    assert_eq!(parse_cpu_list("0-3,6\n"), vec![0, 1, 2, 3, 6]);
    assert_eq!(parse_cpu_list("5,5,x,2-1"), vec![5]);
    assert!(parse_cpu_list("0-65535").len() <= strahl_config::MAX_CORE as usize + 1);
    // The kernel's "N" is the last CPU.
    assert_eq!(parse_cpu_list_last("N", Some(7)), vec![7]);
    assert_eq!(parse_cpu_list_last("0,5-N", Some(7)), vec![0, 5, 6, 7]);
    assert!(parse_cpu_list("N").is_empty());
}

#[test]
fn kernel_config_in_effect_on_the_booted_image() {
    let f = run_checks(&with_image(good()), &inputs());
    for c in ["kargs_dataplane", "kargs_headless", "sysctl", "kernel_args"] {
        let x = get(&f, c);
        assert_eq!(x.verdict, Verdict::Ok, "{x:?}");
    }
    let d = get(&f, "kargs_dataplane");
    assert!(
        d.detail.contains(
            "all 6 kernel argument(s) of /usr/lib/bootc/kargs.d/50-strahl-dataplane.toml"
        ),
        "{d:?}"
    );
    let s = get(&f, "sysctl");
    assert!(s.detail.starts_with("7 setting(s) of /usr/lib/sysctl.d/60-strahl.conf, /usr/lib/sysctl.d/61-strahl-busy-poll.conf"), "{s:?}");
    // The EDID file must be there for the headless arguments to work.
    let mut no_edid = with_image(good());
    no_edid.files.remove(kconfig::EDID_FIRMWARE);
    let h = kconfig::kargs(&no_edid).remove(1);
    assert_eq!(h.verdict, Verdict::Fail);
    assert!(h.detail.contains("strahl.bin is missing"), "{h:?}");
}

#[test]
fn an_image_reached_by_rpm_ostree_rebase_lacks_its_kargs_and_says_how_to_apply_them() {
    let f = run_checks(&with_image(fixture(REBASED)), &inputs());
    let d = get(&f, "kargs_dataplane");
    assert_eq!((d.verdict, d.level), (Verdict::Fail, Level::Recommended));
    assert!(d.detail.starts_with("6 of 6 kernel argument(s)"), "{d:?}");
    assert!(
        d.fix.contains("bootc switch") && d.fix.contains("--append-if-missing=nohz_full=1"),
        "{}",
        d.fix
    );
    assert!(
        get(&f, "kargs_headless")
            .detail
            .contains("video=HDMI-A-1:e")
    );
    assert_eq!(get(&f, "kernel_args").verdict, Verdict::Fail);
    // The /etc override is what counts for 60-strahl.conf: rmem matches it, wmem does not.
    let s = get(&f, "sysctl");
    assert_eq!(s.verdict, Verdict::Fail);
    assert!(s.detail.contains("/etc/sysctl.d/60-strahl.conf"), "{s:?}");
    assert!(
        s.detail
            .contains("net.core.wmem_max = 212992 (want 16777216)")
            && !s.detail.contains("rmem_max"),
        "{s:?}"
    );
    assert!(s.fix.contains("sysctl --system"), "{}", s.fix);
    assert!(!required_missing(&f), "recommended only");
}

#[test]
fn a_strahl_image_without_a_profile_is_not_asked_for_it() {
    let mut s = with_image(fixture(REBASED).file("/proc/cmdline", "root=/dev/sda1 rw\n"));
    s.files.remove(kconfig::KARGS_FILES[0].1);
    s.files.remove("/usr/lib/sysctl.d/61-strahl-busy-poll.conf");
    let k = kconfig::kargs(&s);
    assert_eq!(k[0].verdict, Verdict::Ok);
    assert!(k[0].detail.contains("not part of this image"), "{:?}", k[0]);
    assert_eq!(
        k[1].verdict,
        Verdict::Fail,
        "headless is installed: {:?}",
        k[1]
    );
    // Busy polling belongs to the left-out profile: not compared.
    let s = s.file("/proc/sys/net/core/busy_poll", "0\n");
    assert!(!kconfig::sysctl(&s).detail.contains("busy_poll"));
}

#[test]
fn a_development_host_is_compared_with_the_built_in_copies() {
    let f = run_checks(&fixture(DEV_HOST), &inputs());
    let d = get(&f, "kargs_dataplane");
    assert_eq!(d.verdict, Verdict::Fail);
    assert!(d.detail.contains("copy built into strahl-control"), "{d:?}");
    assert!(d.fix.contains("GRUB_CMDLINE_LINUX"), "{}", d.fix);
    let s = get(&f, "sysctl");
    assert_eq!(s.verdict, Verdict::Fail);
    assert!(s.detail.contains("60-strahl.conf (built in)"), "{s:?}");
    // Kernel 6.1 has no io_uring_disabled: the '-' entry is skipped, not reported.
    assert!(!s.detail.contains("io_uring"), "{s:?}");
    assert!(
        s.fix.contains("sysctl -w net.core.rmem_max=\"67108864\""),
        "{}",
        s.fix
    );
    assert!(
        s.detail
            .contains("net.ipv4.igmp_link_local_mcast_reports = 1 (want 0)"),
        "{s:?}"
    );
    // Below 4 cores the plan isolates nothing, and neither does doctor ask for it.
    let small = fixture(DEV_HOST).file("/sys/devices/system/cpu/online", "0-1\n");
    let d = &kconfig::kargs(&small)[0];
    assert_eq!(d.verdict, Verdict::Ok, "{d:?}");
    assert!(d.detail.contains("4 or more"), "{d:?}");
    // Unreadable /proc: unknown, not failed.
    let f = kconfig::sysctl(&Fake::default());
    assert_eq!(f.verdict, Verdict::Unknown, "{f:?}");
    assert_eq!(
        kconfig::kargs(&Fake::default())[0].verdict,
        Verdict::Unknown
    );
}

#[test]
fn kernel_config_parsers() {
    use kconfig::*;
    let e = parse_sysctl(
        "# c\n; c\n net.core.rmem_max=1 \n-kernel.io_uring_disabled = 0\nnet.ipv4.udp_mem = 1 2  3\nnet.ipv4.conf.*.rp_filter = 2\n",
    )
    .unwrap();
    assert_eq!(e.len(), 3);
    assert_eq!(
        (e[0].key.as_str(), e[0].value.as_str(), e[0].optional),
        ("net.core.rmem_max", "1", false)
    );
    assert!(e[1].optional);
    assert!(parse_sysctl("net.core.rmem_max\n").is_err());
    assert_eq!(
        proc_sys_path("net.core.rmem_max"),
        "/proc/sys/net/core/rmem_max"
    );
    assert_eq!(
        proc_sys_path("net/ipv4/conf/eth0.10/rp_filter"),
        "/proc/sys/net/ipv4/conf/eth0.10/rp_filter"
    );
    assert_eq!(
        proc_sys_path("net.ipv4.conf.eth0/10.rp_filter"),
        "/proc/sys/net/ipv4/conf/eth0.10/rp_filter"
    );
    let r = sysctl_differences(&e, &|p| {
        (p == "/proc/sys/net/ipv4/udp_mem").then(|| "1\t2\t3\n".to_string())
    });
    assert_eq!(
        (r.matching, r.unreadable.clone()),
        (1, vec!["net.core.rmem_max".to_string()])
    );
    // kargs: the last occurrence of a parameter counts; '-' and '_' are one; flags by presence.
    let want: Vec<String> = ["nohz_full=N", "rcu-nocbs=N", "nowatchdog"]
        .map(String::from)
        .to_vec();
    assert!(missing_kargs(&want, "nohz_full=3 nohz_full=N rcu_nocbs=N nowatchdog").is_empty());
    assert_eq!(
        missing_kargs(&want, "nohz_full=N nohz_full=3 quiet"),
        [
            "nohz_full=N (running: nohz_full=3)",
            "rcu-nocbs=N",
            "nowatchdog"
        ]
    );
    assert_eq!(
        parse_kargs("kargs = [\"a=1\", \"b\"]\n").unwrap(),
        ["a=1", "b"]
    );
    assert!(parse_kargs("kargs = 1").is_err());
    // The shipped files parse.
    for (_, _, text) in KARGS_FILES {
        assert!(!parse_kargs(text).unwrap().is_empty());
    }
    for (_, text) in SYSCTL_FILES {
        assert!(!parse_sysctl(text).unwrap().is_empty());
    }
}

#[test]
fn generic_xdp_single_queue_and_missing_interface() {
    let mut s = good();
    s.links.insert(
        "/sys/class/net/enp1s0/device/driver".into(),
        "../../r8169".into(),
    );
    s = s.dir("/sys/class/net/enp1s0/queues", &["rx-0", "tx-0"]);
    let f = run_checks(&s, &inputs());
    let x = get(&f, "nic_xdp");
    assert_eq!(x.verdict, Verdict::Fail);
    assert!(x.detail.contains("r8169") && x.detail.contains("generic"));
    assert_eq!(get(&f, "nic_queues").verdict, Verdict::Fail);
    assert!(
        !required_missing(&f),
        "AF_XDP is optional under transport=auto"
    );
    let mut inp = inputs();
    inp.transport = TransportPref::AfXdp;
    assert!(
        required_missing(&run_checks(&s, &inp)),
        "required when forced"
    );
    inp.interface = "eth9".into();
    let x = nic(&s, &inp);
    assert_eq!(x[0].verdict, Verdict::Fail);
    assert!(x[0].detail.contains("eth9 does not exist"));
}

#[test]
fn io_uring_and_af_xdp_permissions() {
    let s = good().file("/proc/sys/kernel/io_uring_disabled", "2");
    let f = io_uring(&s, &inputs());
    assert_eq!((f.verdict, f.level), (Verdict::Fail, Level::Recommended));
    let mut inp = inputs();
    inp.transport = TransportPref::IoUring;
    assert_eq!(io_uring(&s, &inp).level, Level::Required);
    let s = good().file("/proc/sys/kernel/io_uring_disabled", "1");
    assert!(io_uring(&s, &inputs()).detail.contains("io_uring_group"));
    // No capabilities: AF_XDP refused and memlock applies.
    let s = good()
        .file("/proc/self/status", "CapEff:\t0000000000000000\n")
        .file(
            "/proc/self/limits",
            "Max locked memory         8388608              8388608              bytes\n",
        );
    let a = af_xdp(&s, &inputs());
    assert_eq!(a.verdict, Verdict::Fail);
    assert!(a.detail.contains("CAP_NET_RAW") && a.detail.contains("CAP_BPF"));
    let m = memlock(&s, &inputs());
    assert_eq!(m.verdict, Verdict::Fail);
    assert!(m.detail.contains("8192 KiB"), "{m:?}");
    let old = good().file("/proc/sys/kernel/osrelease", "4.19.0");
    assert!(af_xdp(&old, &inputs()).detail.contains("older than 5.10"));
}

#[test]
fn nvidia_required_only_when_configured() {
    let s = Fake::default();
    let f = nvidia(&s, &inputs());
    assert!(
        f.iter()
            .all(|x| x.verdict == Verdict::Fail && x.level == Level::Recommended)
    );
    assert!(f[0].detail.contains("openh264"));
    let mut inp = inputs();
    inp.encoder = EncoderPref::Nvenc;
    let f = nvidia(&s, &inp);
    assert!(f.iter().all(|x| x.level == Level::Required));
    assert!(required_missing(&f));
    // Driver present but device nodes not accessible.
    let s = good();
    let mut s2 = Fake {
        rw: BTreeSet::new(),
        ..s
    };
    s2 = s2.file("/dev/nvidia0", "");
    let d = &nvidia(&s2, &inp)[0];
    assert_eq!(d.verdict, Verdict::Fail);
    assert!(d.detail.contains("535.154.05"), "{d:?}");
}

#[test]
fn drm_uinput_and_ports() {
    let s = good().dir("/dev/dri", &[]);
    let mut inp = inputs();
    assert_eq!(drm(&s, &inp).level, Level::Recommended);
    inp.source = VideoSource::Kms;
    let d = drm(&s, &inp);
    assert_eq!((d.verdict, d.level), (Verdict::Fail, Level::Required));
    // Devices there, but the capture helper (the one CAP_SYS_ADMIN process) is not listening.
    let d = drm(&good(), &inp);
    assert_eq!((d.verdict, d.level), (Verdict::Fail, Level::Required));
    assert!(
        d.fix.contains("strahl-kms-helper") && d.fix.contains("CAP_SYS_ADMIN"),
        "{d:?}"
    );
    let d = drm(&good().file("/run/strahl/kms.sock", ""), &inp);
    assert_eq!(d.verdict, Verdict::Ok, "{d:?}");
    let mut s = good();
    s.rw.remove("/dev/dri/renderD128");
    let d = drm(&s, &inp);
    assert!(
        d.detail.contains("renderD128") && !d.detail.contains("by-path"),
        "{d:?}"
    );
    s.rw.remove("/dev/uinput");
    let s = s.file("/dev/uinput", "");
    assert!(uinput(&s).detail.contains("not read-write"));
    let empty = Fake::default();
    assert!(uinput(&empty).fix.contains("modprobe uinput"));
    // A port held by someone else is a required failure; held while strahl runs is fine.
    let mut s = good();
    s.busy.insert(47989);
    let f = run_checks(&s, &inputs());
    let p = get(&f, "port_tcp_47989");
    assert_eq!((p.verdict, p.level), (Verdict::Fail, Level::Required));
    assert!(required_missing(&f));
    let s = s
        .dir("/proc", &["1", "4242", "self"])
        .file("/proc/1/comm", "systemd\n")
        .file("/proc/4242/comm", "strahl-control\n");
    let f = run_checks(&s, &inputs());
    assert_eq!(get(&f, "port_tcp_47989").verdict, Verdict::Ok);
    assert!(get(&f, "port_tcp_47989").detail.contains("strahl-control"));
}

#[test]
fn firewall_and_time_sync() {
    let drop = "table inet filter {\n chain input {\n  type filter hook input priority 0; policy drop;\n  tcp dport 22 accept\n }\n}\n";
    let s = good().cmd("nft list ruleset", 0, drop);
    let f = firewall(&s, &inputs());
    assert_eq!(f.verdict, Verdict::Fail);
    assert!(
        f.detail.contains("47989/tcp") && f.detail.contains("48000/udp"),
        "{f:?}"
    );
    let s = good()
        .cmd("firewall-cmd --state", 0, "running\n")
        .cmd("firewall-cmd --list-ports", 0, "47989/tcp\n")
        .cmd("firewall-cmd --list-services", 0, "ssh\n");
    let f = firewall(&s, &inputs());
    assert_eq!(f.verdict, Verdict::Fail);
    assert!(f.fix.contains("--add-port=47984/tcp") && !f.fix.contains("--add-port=47989/tcp"));
    // strahl's firewalld services: installed → the fix names them; enabled → open.
    let s = s.file("/usr/lib/firewalld/services/strahl.xml", "");
    let f = firewall(&s, &inputs());
    assert_eq!(
        f.fix,
        "firewall-cmd --permanent --add-service=strahl && firewall-cmd --reload"
    );
    for services in [
        "ssh strahl\n",
        "strahl-gamestream strahl-native strahl-status\n",
    ] {
        let s = s.clone().cmd("firewall-cmd --list-services", 0, services);
        assert_eq!(firewall(&s, &inputs()).verdict, Verdict::Ok, "{services}");
    }
    let s = s.cmd("firewall-cmd --list-services", 0, "strahl-gamestream\n");
    assert_eq!(firewall(&s, &inputs()).verdict, Verdict::Fail);
    let s = good().cmd("nft list ruleset", 1, "");
    assert_eq!(firewall(&s, &inputs()).verdict, Verdict::Unknown);
    // Time sync fallbacks.
    let s = good().cmd("timedatectl show -p NTPSynchronized --value", 0, "no\n");
    assert_eq!(time_sync(&s).verdict, Verdict::Fail);
    let s = Fake::default().cmd("chronyc tracking", 0, "Leap status     : Normal\n");
    assert_eq!(time_sync(&s).verdict, Verdict::Ok);
    let s = Fake::default().file("/run/systemd/timesync/synchronized", "");
    assert_eq!(time_sync(&s).verdict, Verdict::Ok);
    assert_eq!(time_sync(&Fake::default()).verdict, Verdict::Unknown);
}

#[test]
fn human_output_lists_fixes_and_counts() {
    let mut s = good();
    s.busy.insert(47990);
    let f = run_checks(&s, &inputs());
    let mut out = String::new();
    render_human(&f, &mut out);
    assert!(out.contains("[FAIL ] port_tcp_47990"), "{out}");
    assert!(out.contains("fix: find it with `ss -lpn"));
    assert!(out.contains("1 required missing"));
}

/// The appliance's desktop PipeWire as its session's grant leaves it: pw-record, the socket
/// listening, the strahl-audio group, the ACLs strahl-pipewire-access.service sets.
fn with_pipewire(mut f: Fake) -> Fake {
    f.sockets.insert("/run/user/1000/pipewire-0".into());
    f.cmd(
        "pw-record --version",
        0,
        "pw-record\nCompiled with libpipewire 1.2.7\n",
    )
    .file("/etc/group", "wheel:x:10:\nstrahl-audio:x:971:\n")
    .cmd(
        "getfacl --omit-header --absolute-names /run/user/1000",
        0,
        "user::rwx\ngroup::---\ngroup:strahl-audio:--x\nmask::--x\nother::---\n",
    )
    .cmd(
        "getfacl --omit-header --absolute-names /run/user/1000/pipewire-0",
        0,
        "user::rw-\ngroup::rw-\ngroup:strahl-audio:rw-\nmask::rw-\nother::rw-\n",
    )
}

#[test]
fn audio_tone_and_none_say_how_to_stream_the_box_sound() {
    let mut inp = inputs();
    for src in [AudioSource::Tone, AudioSource::None] {
        inp.audio = src;
        // Nothing is looked at: a machine without PipeWire passes.
        let a = audio(&Fake::default(), &inp);
        assert_eq!((a.verdict, a.level), (Verdict::Ok, Level::Recommended));
        assert!(
            a.detail
                .starts_with(&format!("[audio] source = \"{}\": ", src.name())),
            "{a:?}"
        );
        assert!(a.detail.contains("source = \"auto\""), "{a:?}");
    }
}

#[test]
fn audio_auto_on_the_appliance_checks_the_socket_and_its_grant() {
    let inp = inputs();
    assert_eq!(inp.audio, AudioSource::Auto, "the default");
    let a = audio(&good(), &inp);
    assert_eq!(
        (a.verdict, a.level),
        (Verdict::Ok, Level::Recommended),
        "{a:?}"
    );
    assert!(
        a.detail
            .contains("/run/user/1000/pipewire-0 (from the appliance's desktop user)"),
        "{a:?}"
    );
    assert!(a.detail.contains("captures the box's sound"), "{a:?}");

    // Nobody logged in: the tone, and how to get the sound.
    let mut s = good();
    s.sockets.clear();
    let a = audio(&s, &inp);
    assert_eq!((a.verdict, a.level), (Verdict::Fail, Level::Recommended));
    assert!(
        a.detail
            .starts_with("no PipeWire at /run/user/1000/pipewire-0"),
        "{a:?}"
    );
    assert!(
        a.detail
            .ends_with("streams the test tone ([audio] source = \"auto\")"),
        "{a:?}"
    );
    assert!(a.fix.contains("pipewire_socket"), "{a:?}");

    // No pw-record: that is what is missing.
    let mut s = good();
    s.cmds.remove("pw-record --version");
    let a = audio(&s, &inp);
    assert_eq!(a.verdict, Verdict::Fail);
    assert!(a.fix.contains("pipewire-utils"), "{a:?}");

    // Reachable for root, but the session never granted the group: the data plane's user
    // would be refused — the directory's x, then the socket's w, each named.
    let s = good().cmd(
        "getfacl --omit-header --absolute-names /run/user/1000",
        0,
        "user::rwx\ngroup::---\nother::---\n",
    );
    let a = audio(&s, &inp);
    assert_eq!(a.verdict, Verdict::Fail);
    assert!(
        a.detail
            .starts_with("/run/user/1000 grants the strahl-audio group \"\""),
        "{a:?}"
    );
    assert!(
        a.fix
            .contains("systemctl --user enable --now strahl-pipewire-access.service")
    );
    let s = good().cmd(
        "getfacl --omit-header --absolute-names /run/user/1000/pipewire-0",
        0,
        "user::rw-\ngroup::rw-\ngroup:strahl-audio:rw-\t#effective:r--\nmask::r--\nother::rw-\n",
    );
    let a = audio(&s, &inp);
    assert_eq!(a.verdict, Verdict::Fail);
    assert!(
        a.detail
            .contains("pipewire-0 grants the strahl-audio group \"r\""),
        "{a:?}"
    );
    // Without getfacl the grant cannot be told.
    let mut s = good();
    s.cmds.retain(|k, _| !k.starts_with("getfacl"));
    assert_eq!(audio(&s, &inp).verdict, Verdict::Unknown);
    // Not the appliance (no strahl-audio group): the data plane runs as a user, no grant needed.
    let mut s = good();
    s.cmds.retain(|k, _| !k.starts_with("getfacl"));
    s.files.remove("/etc/group");
    let a = audio(&s, &inp);
    assert_eq!(a.verdict, Verdict::Ok, "{a:?}");
    assert!(a.detail.contains("not the appliance"), "{a:?}");
}

#[test]
fn audio_pipewire_is_required_and_a_configured_socket_is_the_one_checked() {
    let mut inp = inputs();
    inp.audio = AudioSource::Pipewire;
    assert_eq!(audio(&good(), &inp).level, Level::Required);
    inp.pipewire_socket = Some("/run/user/1001/pipewire-0".into());
    let a = audio(&good(), &inp);
    assert_eq!((a.verdict, a.level), (Verdict::Fail, Level::Required));
    assert!(
        a.detail
            .starts_with("no PipeWire at /run/user/1001/pipewire-0 (from [audio] pipewire_socket)"),
        "{a:?}"
    );
    assert!(a.detail.contains("refuses to start"), "{a:?}");
    assert!(required_missing(&run_checks(&good(), &inp)));
}

#[test]
fn getfacl_effective_perms_respect_the_mask() {
    let acl = "user::rwx\ngroup::---\ngroup:strahl-audio:rwx\t#effective:--x\nmask::--x\n";
    assert_eq!(audio_check::effective_group_perms(acl, "strahl-audio"), "x");
    assert_eq!(audio_check::effective_group_perms(acl, "other"), "");
    // Without a mask line the entry counts as written.
    assert_eq!(
        audio_check::effective_group_perms("group:strahl-audio:rw-\n", "strahl-audio"),
        "rw"
    );
}
