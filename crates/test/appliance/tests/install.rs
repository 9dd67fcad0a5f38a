//! The appliance's install checks (issue 12), offline: the install manifest covers appliance/
//! and kernel-config/ and every source exists; install.sh installs exactly it into a scratch root
//! and the presets enable the units (the user preset the PipeWire grant; also for a core-only
//! image); the scripts answer `--help`;
//! the NIC tuning script's decisions on a fake machine; the data-plane kernel profile isolates the
//! core the plan gives the tx tile. (The unit, user and firewall checks are in `offline.rs`.)

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use strahl_appliance::repo::read;
use strahl_appliance::{Scratch, manifest, repo, tools};

/// Files under appliance/ and kernel-config/ that the image does not install, and why.
const NOT_INSTALLED: &[&str] = &[
    // Regenerates firmware/edid/strahl.bin from the generator; a build-time tool.
    "kernel-config/firmware/edid/generate.sh",
    // Documentation of the profiles, for the repository reader.
    "kernel-config/README.md",
];

fn entries() -> Vec<manifest::Entry> {
    manifest::parse(&read("image/install.manifest"))
        .unwrap_or_else(|e| panic!("install.manifest: {e}"))
}

#[test]
fn install_manifest_covers_appliance_and_kernel_config_and_every_source_exists() {
    let e = entries();
    let sources: BTreeSet<&str> = e.iter().map(|x| x.source.as_str()).collect();
    for f in repo::files_under("appliance")
        .into_iter()
        .chain(repo::files_under("kernel-config"))
    {
        assert!(
            sources.contains(f.as_str()) || NOT_INSTALLED.contains(&f.as_str()),
            "{f} is neither in image/install.manifest nor in NOT_INSTALLED"
        );
    }
    let mut dests = BTreeSet::new();
    for x in &e {
        assert!(
            dests.insert(&x.dest),
            "line {}: {} installed twice",
            x.line,
            x.dest
        );
        assert!(
            x.dest.starts_with("/usr/"),
            "line {}: {} is outside /usr (bootc: /etc and /var are the machine's)",
            x.line,
            x.dest
        );
        if let Some(b) = x.source.strip_prefix("@bin/") {
            assert!(
                ["strahl-dataplane", "strahl-control", "strahl-kms-helper"].contains(&b),
                "line {}",
                x.line
            );
            assert_eq!(x.mode, 0o755);
        } else {
            assert!(
                repo::root().join(&x.source).is_file(),
                "line {}: {} missing",
                x.line,
                x.source
            );
            let exec = std::fs::metadata(repo::root().join(&x.source))
                .unwrap()
                .permissions()
                .mode()
                & 0o111
                != 0;
            assert_eq!(
                x.mode & 0o111 != 0,
                exec,
                "line {}: mode {:o} vs the file's x bit",
                x.line,
                x.mode
            );
        }
    }
    // Every installed unit's programs are installed too, by the same profile or core.
    for x in e
        .iter()
        .filter(|x| x.dest.starts_with("/usr/lib/systemd/system/"))
    {
        for line in read(&x.source)
            .lines()
            .filter(|l| l.starts_with("ExecStart="))
        {
            let prog = line["ExecStart=".len()..]
                .split_whitespace()
                .next()
                .unwrap();
            let by = e
                .iter()
                .find(|y| y.dest == prog)
                .unwrap_or_else(|| panic!("{}: {prog} not installed", x.source));
            assert!(
                by.profile == "core" || by.profile == x.profile,
                "{}: {prog} in profile {}",
                x.source,
                by.profile
            );
        }
    }
}

/// Installs the manifest into a scratch root with stub binaries and the preset applied.
fn install(profiles: &str) -> (Scratch, String) {
    let tmp = Scratch::new(&format!("install-{}", profiles.replace(',', "-")));
    let bin = tmp.0.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for b in ["strahl-dataplane", "strahl-control", "strahl-kms-helper"] {
        std::fs::write(bin.join(b), "#!/bin/sh\n").unwrap();
    }
    let root = tmp.0.join("root");
    let o = tools::run(
        Command::new("bash")
            .arg(repo::root().join("image/install.sh"))
            .arg("--root")
            .arg(&root)
            .arg("--bin")
            .arg(&bin)
            .args(["--profiles", profiles, "--preset"]),
    );
    let out = tools::text(&o);
    assert!(o.status.success(), "install.sh:\n{out}");
    (tmp, out)
}

#[test]
fn install_sh_installs_the_manifest_and_the_preset_enables_the_appliance() {
    let (tmp, _) = install("core,dataplane,headless");
    let root = tmp.0.join("root");
    for x in entries() {
        let p = root.join(x.dest.trim_start_matches('/'));
        let m = std::fs::metadata(&p).unwrap_or_else(|_| panic!("{} not installed", x.dest));
        assert_eq!(m.permissions().mode() & 0o7777, x.mode, "{}", x.dest);
    }
    let wants = root.join("etc/systemd/system");
    for link in [
        "multi-user.target.wants/strahl.target",
        "strahl.target.wants/strahl-dataplane.service",
        "strahl.target.wants/strahl-control.service",
        "strahl.target.wants/strahl-nic-tune.service",
    ] {
        let l = wants.join(link);
        let target = std::fs::read_link(&l).unwrap_or_else(|_| panic!("{link} not enabled"));
        assert!(
            target.ends_with(Path::new(link).file_name().unwrap()),
            "{link} → {target:?}"
        );
    }
    // Every user's session runs the PipeWire grant, by the user preset.
    let l = root.join("etc/systemd/user/pipewire.socket.wants/strahl-pipewire-access.service");
    assert_eq!(
        std::fs::read_link(&l).unwrap_or_else(|_| panic!("{l:?}: the user unit is not enabled")),
        Path::new("/usr/lib/systemd/user/strahl-pipewire-access.service")
    );
    // The KMS capture helper (CAP_SYS_ADMIN) is installed but off until the operator enables it.
    assert!(
        root.join("usr/lib/systemd/system/strahl-kms-helper.service")
            .is_file()
    );
    assert!(
        std::fs::symlink_metadata(wants.join("strahl.target.wants/strahl-kms-helper.service"))
            .is_err(),
        "the KMS helper is enabled by the preset"
    );
    // Nothing but the preset's symlinks outside /usr.
    let top: BTreeSet<String> = std::fs::read_dir(&root)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(top, BTreeSet::from(["etc".to_string(), "usr".to_string()]));
    // --list prints the same files.
    let o = tools::run(
        Command::new("bash")
            .arg(repo::root().join("image/install.sh"))
            .arg("--list"),
    );
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).lines().count(),
        entries().len()
    );
}

#[test]
fn a_core_only_image_has_no_kernel_profile_and_still_enables_both_planes() {
    let (tmp, _) = install("core");
    let root = tmp.0.join("root");
    assert!(root.join("usr/bin/strahl-dataplane").exists());
    assert!(root.join("usr/lib/sysctl.d/60-strahl.conf").exists());
    for gone in [
        "usr/lib/bootc/kargs.d/50-strahl-dataplane.toml",
        "usr/lib/bootc/kargs.d/50-strahl-headless.toml",
        "usr/lib/systemd/system/strahl-nic-tune.service",
        "usr/lib/firmware/edid/strahl.bin",
    ] {
        assert!(
            !root.join(gone).exists(),
            "{gone} installed without its profile"
        );
    }
    let link = root.join("etc/systemd/system/strahl.target.wants/strahl-control.service");
    assert!(std::fs::symlink_metadata(&link).is_ok(), "{link:?} missing");
}

#[test]
fn scripts_answer_help() {
    for s in [
        "image/build.sh",
        "image/install.sh",
        "kernel-config/nic/strahl-nic-tune",
    ] {
        let o = tools::run(Command::new("bash").arg(repo::root().join(s)).arg("--help"));
        assert!(o.status.success(), "{s} --help:\n{}", tools::text(&o));
        assert!(
            String::from_utf8_lossy(&o.stdout).starts_with("usage: "),
            "{s}"
        );
    }
    let o = tools::run(
        Command::new("bash")
            .arg(repo::root().join("image/build.sh"))
            .args([
                "--dry-run",
                "--engine",
                "podman",
                "--base",
                "quay.io/fedora/fedora-bootc:43",
                "--push",
                "ghcr.io/x/strahl:1",
            ]),
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", tools::text(&o));
    assert!(
        out.contains("podman build -f") && out.contains("BASE=quay.io/fedora/fedora-bootc:43"),
        "{out}"
    );
    assert!(out.contains("podman push ghcr.io/x/strahl:1"), "{out}");
}

/// A fake machine for the NIC tuning script: 8 CPUs, `isolated` as given, enp1s0 with two MSI
/// vectors, and an `ethtool` that reports 16 channels and 4096-entry rings.
fn nic_tune(isolated: &str, env: &[(&str, &str)]) -> String {
    let tmp = Scratch::new(&format!("nic-{}", isolated.replace(['-', ','], "_")));
    let r = &tmp.0;
    let mk = |rel: &str, text: &str| {
        let p = r.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    mk(
        "proc/net/route",
        "Iface\tDestination\tGateway\nenp1s0\t00000000\t0101A8C0\n",
    );
    mk("sys/devices/system/cpu/online", "0-7\n");
    mk("sys/devices/system/cpu/isolated", &format!("{isolated}\n"));
    mk("sys/class/net/enp1s0/device/msi_irqs/40", "msix\n");
    mk("sys/class/net/enp1s0/device/msi_irqs/41", "msix\n");
    mk(
        "etc/strahl.toml",
        "[network]\ninterface = \"wlan0\"\n[dataplane]\ninterface = \"auto\"\n",
    );
    mk(
        "bin/ethtool",
        "#!/bin/sh\ncase $1 in\n-l) printf 'Channel parameters for enp1s0:\\nPre-set maximums:\\nRX:\\t\\tn/a\\nTX:\\t\\tn/a\\nOther:\\t\\t1\\nCombined:\\t16\\nCurrent hardware settings:\\nCombined:\\t2\\n' ;;\n-g) printf 'Ring parameters for enp1s0:\\nPre-set maximums:\\nRX:\\t\\t4096\\nRX Mini:\\tn/a\\nTX:\\t\\t4096\\nCurrent hardware settings:\\nRX:\\t\\t256\\nTX:\\t\\t256\\n' ;;\nesac\n",
    );
    std::fs::set_permissions(
        r.join("bin/ethtool"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        r.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = Command::new("bash");
    cmd.arg(repo::root().join("kernel-config/nic/strahl-nic-tune"))
        .arg("--config")
        .arg(r.join("etc/strahl.toml"))
        .arg("--dry-run")
        .env("PATH", path)
        .env("STRAHL_NIC_ROOT", r);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let o = tools::run(&mut cmd);
    assert!(o.status.success(), "strahl-nic-tune:\n{}", tools::text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn nic_tuning_takes_the_configured_interface_and_keeps_irqs_off_isolated_cores() {
    // [dataplane] interface = "auto" → the default route's enp1s0 (not [network]'s wlan0).
    let out = nic_tune("7", &[]);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "ethtool -L enp1s0 combined 8",
            "ethtool -G enp1s0 rx 4096 tx 4096",
            "echo 0,1,2,3,4,5,6 > /proc/irq/40/smp_affinity_list",
            "echo 0,1,2,3,4,5,6 > /proc/irq/41/smp_affinity_list",
        ]
    );
    // Nothing isolated: IRQs are irqbalance's; explicit settings are honoured and capped.
    let out = nic_tune(
        "",
        &[("STRAHL_NIC_CHANNELS", "32"), ("STRAHL_NIC_RINGS", "1024")],
    );
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "ethtool -L enp1s0 combined 16",
            "ethtool -G enp1s0 rx 1024 tx 1024"
        ]
    );
    let out = nic_tune(
        "4-7",
        &[
            ("STRAHL_NIC_CHANNELS", "keep"),
            ("STRAHL_NIC_RINGS", "keep"),
        ],
    );
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "echo 0,1,2,3 > /proc/irq/40/smp_affinity_list",
            "echo 0,1,2,3 > /proc/irq/41/smp_affinity_list"
        ]
    );
}

#[test]
fn the_data_plane_profile_isolates_the_core_the_plan_gives_the_tx_tile() {
    let t: toml::Table = read("kernel-config/kargs.d/50-strahl-dataplane.toml")
        .parse()
        .unwrap();
    let kargs: Vec<&str> = t["kargs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for want in [
        "isolcpus=managed_irq,domain,1",
        "nohz_full=1",
        "rcu_nocbs=1",
        "irqaffinity=0",
    ] {
        assert!(kargs.contains(&want), "{want} not in {kargs:?}");
    }
    // The kernel then lists CPU 1 in /sys/devices/system/cpu/isolated; with the default
    // `cores = "auto"` the plan puts the tx tile there (alone) and never there any other tile,
    // on every machine size the profile is for.
    let cfg = strahl_config::Config::default();
    for cpus in [2usize, 4, 8, 16, 64] {
        let plan = strahl_config::Plan::derive_isolated(&cfg, cpus, &[1]).unwrap();
        assert_eq!(plan.core_of(strahl_config::Tile::Tx), 1, "{cpus} CPUs");
        assert!(plan.tx_dedicated);
        assert!(!plan.worker_cores().contains(&1), "{cpus} CPUs");
        // irqaffinity=0 names a core the plan leaves to the OS (from 4 CPUs up).
        if cpus >= 4 {
            assert!(plan.placement.iter().all(|(_, c)| *c != 0), "{cpus} CPUs");
        }
    }
}
