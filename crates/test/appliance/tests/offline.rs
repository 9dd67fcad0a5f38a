//! The appliance's offline checks (issue 12): what can be validated without the base image or a
//! boot. Each test names what it verifies:
//! - every shell script passes shellcheck; the Containerfile passes hadolint;
//! - every TOML file in the repository parses, and the kargs.d files hold only what bootc reads;
//! - `systemd-analyze verify` prints nothing for every unit; `systemd-analyze security
//!   --offline` stays within the thresholds (control ≤ 2.0, data plane ≤ 6.0, NIC tuning ≤ 3.0,
//!   KMS capture helper ≤ 2.0), and the helper's unit holds CAP_SYS_ADMIN and nothing else, has
//!   no network and hands frames only to the data plane's user;
//! - sysusers.d and tmpfiles.d do what they say when applied to a scratch root; the udev rules'
//!   syntax; the firewalld services open exactly the default configuration's ports;
//! - the desktop session's user unit opens its PipeWire socket (the one the data plane probes)
//!   to the group the data plane's unit joins, and the user preset enables it;
//! - the install manifest, install.sh, the scripts' `--help`, NIC tuning and the kernel profile:
//!   `install.rs`.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use strahl_appliance::repo::read;
use strahl_appliance::{Scratch, repo, tools};

/// Directories never searched for scripts or TOML (build output, environments, history).
const SKIP_DIRS: &[&str] = &[
    ".git",
    "target",
    ".venv",
    "node_modules",
    "out",
    "artifacts",
    "coverage",
];

/// Every file of the repository (relative paths), build output and environments excluded.
fn repo_files() -> Vec<String> {
    fn walk(root: &Path, at: &Path, out: &mut Vec<String>) {
        let Ok(rd) = std::fs::read_dir(at) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                if !SKIP_DIRS.contains(&name.as_str()) && !name.starts_with("target-") {
                    walk(root, &p, out);
                }
            } else if ft.is_file() {
                out.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    let root = repo::root();
    let mut out = Vec::new();
    walk(&root, &root, &mut out);
    out.sort();
    out
}

/// Shell scripts: a `#!` line naming sh or bash, or a `.sh` name.
fn shell_scripts() -> Vec<String> {
    repo_files()
        .into_iter()
        .filter(|f| {
            let first = std::fs::read(repo::root().join(f))
                .ok()
                .and_then(|b| {
                    b.split(|c| *c == b'\n')
                        .next()
                        .map(|l| String::from_utf8_lossy(l).into_owned())
                })
                .unwrap_or_default();
            f.ends_with(".sh")
                || (first.starts_with("#!")
                    && (first.ends_with("bash")
                        || first.ends_with("/sh")
                        || first.ends_with(" sh")))
        })
        .collect()
}

#[test]
fn every_shell_script_passes_shellcheck() {
    let scripts = shell_scripts();
    for must in [
        "scripts/setup.sh",
        "scripts/run.sh",
        ".ci/run",
        "image/build.sh",
        "image/install.sh",
        "kernel-config/nic/strahl-nic-tune",
        "kernel-config/firmware/edid/generate.sh",
    ] {
        assert!(
            scripts.iter().any(|s| s == must),
            "{must} not found among {scripts:?}"
        );
    }
    let o = tools::run(
        Command::new(tools::find("shellcheck"))
            .current_dir(repo::root())
            .arg("--external-sources")
            .args(&scripts),
    );
    assert!(o.status.success(), "shellcheck:\n{}", tools::text(&o));
}

#[test]
fn containerfile_passes_hadolint() {
    tools::assert_silent(
        Command::new(tools::find("hadolint"))
            .current_dir(repo::root())
            .args(["--failure-threshold", "style", "image/Containerfile"]),
        "hadolint",
    );
}

#[test]
fn every_toml_file_parses_and_kargs_files_hold_only_what_bootc_reads() {
    let tomls: Vec<String> = repo_files()
        .into_iter()
        .filter(|f| f.ends_with(".toml"))
        .collect();
    assert!(
        tomls.iter().any(|f| f == "appliance/strahl.toml"),
        "{tomls:?}"
    );
    for f in &tomls {
        if let Err(e) = read(f).parse::<toml::Table>() {
            panic!("{f}: {e}");
        }
    }
    let kargs: Vec<&String> = tomls
        .iter()
        .filter(|f| f.starts_with("kernel-config/kargs.d/"))
        .collect();
    assert_eq!(kargs.len(), 2, "{kargs:?}");
    for f in kargs {
        let t: toml::Table = read(f).parse().unwrap();
        for (k, v) in &t {
            match (k.as_str(), v) {
                ("kargs", toml::Value::Array(a)) => {
                    assert!(!a.is_empty(), "{f}: empty kargs");
                    for x in a {
                        let s = x
                            .as_str()
                            .unwrap_or_else(|| panic!("{f}: {x} is not a string"));
                        assert!(
                            !s.is_empty() && !s.contains(char::is_whitespace),
                            "{f}: karg {s:?} must be one word"
                        );
                    }
                }
                ("match-architectures", toml::Value::Array(a)) => {
                    assert!(a.iter().all(|x| x.is_str()), "{f}: {a:?}");
                }
                _ => panic!("{f}: bootc reads only kargs and match-architectures, not {k}"),
            }
        }
        assert!(t.contains_key("kargs"), "{f}: no kargs");
    }
    // And the shipped default configuration is what the binaries embed.
    assert_eq!(read("appliance/strahl.toml"), strahl_config::DEFAULT_TOML);
}

/// The units the appliance ships: (repository path, security threshold).
const UNITS: &[(&str, Option<f32>)] = &[
    ("appliance/strahl-dataplane.service", Some(6.0)),
    ("appliance/strahl-control.service", Some(2.0)),
    ("appliance/strahl-kms-helper.service", Some(2.0)),
    ("appliance/strahl.target", None),
    ("kernel-config/nic/strahl-nic-tune.service", Some(3.0)),
    // A user unit: runs as the desktop user, with that user's rights, only setfacl; the
    // system-service exposure score does not apply.
    ("appliance/pipewire/strahl-pipewire-access.service", None),
];

/// Copies the units into a scratch directory with their ExecStart= programs pointed at stub
/// executables there (`systemd-analyze verify` needs the program to exist); nothing else changes.
fn staged_units(dir: &Path) -> Vec<PathBuf> {
    let stub_dir = dir.join("bin");
    std::fs::create_dir_all(&stub_dir).unwrap();
    let mut out = Vec::new();
    for (rel, _) in UNITS {
        let mut text = read(rel);
        for prog in [
            "/usr/bin/strahl-dataplane",
            "/usr/bin/strahl-control",
            "/usr/bin/strahl-kms-helper",
            "/usr/libexec/strahl/strahl-nic-tune",
            // From the base image's acl package (not a build-machine dependency).
            "/usr/bin/setfacl",
        ] {
            let stub = stub_dir.join(Path::new(prog).file_name().unwrap());
            std::fs::write(&stub, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(&stub, std::fs::Permissions::from_mode(0o755)).unwrap();
            text = text.replace(prog, stub.to_str().unwrap());
        }
        let p = dir.join(Path::new(rel).file_name().unwrap());
        std::fs::write(&p, text).unwrap();
        out.push(p);
    }
    out
}

#[test]
fn every_unit_verifies_without_a_single_message() {
    let tmp = Scratch::new("verify");
    let units = staged_units(&tmp.0);
    // Every unit file in the repository is in UNITS.
    let shipped: BTreeSet<String> = repo_files()
        .into_iter()
        .filter(|f| {
            f.ends_with(".service")
                || f.ends_with(".target")
                || f.ends_with(".socket")
                || f.ends_with(".timer")
        })
        .collect();
    let listed: BTreeSet<String> = UNITS.iter().map(|(u, _)| u.to_string()).collect();
    assert_eq!(shipped, listed, "unit files vs UNITS");
    tools::assert_silent(
        Command::new(tools::find("systemd-analyze"))
            .arg("verify")
            .args(&units),
        "systemd-analyze verify",
    );
}

#[test]
fn unit_hardening_scores_stay_within_the_thresholds() {
    let tmp = Scratch::new("security");
    let units = staged_units(&tmp.0);
    for ((rel, threshold), path) in UNITS.iter().zip(&units) {
        let Some(threshold) = threshold else { continue };
        let o = tools::run(
            Command::new(tools::find("systemd-analyze"))
                .args([
                    "security",
                    "--offline=yes",
                    &format!("--threshold={}", threshold * 10.0),
                ])
                .arg(path),
        );
        let out = tools::text(&o);
        let score: f32 = out
            .lines()
            .find_map(|l| l.split("Overall exposure level for ").nth(1))
            .and_then(|l| l.split(": ").nth(1))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{rel}: no score in:\n{out}"));
        assert!(
            score <= *threshold,
            "{rel}: exposure {score} > {threshold}:\n{out}"
        );
        assert!(o.status.success(), "{rel}:\n{out}");
    }
}

/// `key=value` settings of a unit (every occurrence, in order).
fn unit_settings(rel: &str, key: &str) -> Vec<String> {
    read(rel)
        .lines()
        .filter_map(|l| l.strip_prefix(&format!("{key}=")))
        .map(str::to_string)
        .collect()
}

#[test]
fn the_kms_helper_holds_cap_sys_admin_alone_without_network_for_the_data_plane_only() {
    const U: &str = "appliance/strahl-kms-helper.service";
    let one = |key: &str| {
        let v = unit_settings(U, key);
        assert_eq!(v.len(), 1, "{key}= in {U}: {v:?}");
        v[0].clone()
    };
    assert_eq!(one("CapabilityBoundingSet"), "CAP_SYS_ADMIN");
    assert_eq!(one("AmbientCapabilities"), "CAP_SYS_ADMIN");
    assert_eq!(one("PrivateNetwork"), "yes");
    assert_eq!(one("RestrictAddressFamilies"), "AF_UNIX");
    assert_eq!(one("NoNewPrivileges"), "yes");
    assert_eq!(one("DevicePolicy"), "closed");
    assert_eq!(unit_settings(U, "DeviceAllow"), ["char-drm rw"]);
    assert_eq!(
        one("Type"),
        "notify",
        "the data plane must find the socket at its start"
    );
    assert_eq!(one("Before"), "strahl-dataplane.service");
    assert_eq!(one("After"), "systemd-udev-trigger.service");
    // Its own user, in the planes' group for /run/strahl (the socket's directory, same mode).
    assert_eq!(one("User"), "strahl-capture");
    assert_eq!(one("Group"), "strahl");
    for key in ["RuntimeDirectory", "RuntimeDirectoryMode"] {
        assert_eq!(
            one(key),
            unit_settings("appliance/strahl-dataplane.service", key)[0],
            "{key}"
        );
    }
    // It listens where the data plane looks by default (strahl_capture::kms_video::
    // DEFAULT_SOCKET, written out: this crate does not build the capture crate), for the data
    // plane's user only.
    let exec = one("ExecStart");
    let args: Vec<&str> = exec.split_whitespace().collect();
    let arg = |flag: &str| {
        args.windows(2)
            .find(|w| w[0] == flag)
            .map(|w| w[1])
            .unwrap_or_else(|| panic!("{flag} not in {exec}"))
    };
    assert_eq!(arg("--socket"), "/run/strahl/kms.sock");
    assert_eq!(
        arg("--peer-user"),
        unit_settings("appliance/strahl-dataplane.service", "User")[0]
    );
    // Its wait for a capturable display ends before systemd's start timeout does.
    let wait: u64 = arg("--wait").parse().unwrap();
    let timeout: u64 = one("TimeoutStartSec")
        .trim_end_matches('s')
        .parse()
        .unwrap();
    assert!(
        wait + 5 <= timeout,
        "--wait {wait} vs TimeoutStartSec={timeout}s"
    );
    // The data plane itself still holds no CAP_SYS_ADMIN.
    assert!(
        !unit_settings(
            "appliance/strahl-dataplane.service",
            "CapabilityBoundingSet"
        )[0]
        .contains("CAP_SYS_ADMIN")
    );
}

#[test]
fn sysusers_creates_both_users_in_the_shared_group_with_their_device_groups() {
    let tmp = Scratch::new("sysusers");
    let etc = tmp.0.join("etc");
    std::fs::create_dir_all(&etc).unwrap();
    for f in ["passwd", "shadow", "gshadow"] {
        std::fs::write(etc.join(f), "").unwrap();
    }
    std::fs::write(etc.join("group"), "video:x:39:\nrender:x:105:\n").unwrap();
    let conf = repo::root().join("appliance/sysusers.d/strahl.conf");
    let o = tools::run(
        Command::new(tools::find("systemd-sysusers"))
            .arg(format!("--root={}", tmp.0.display()))
            .arg(&conf),
    );
    assert!(o.status.success(), "systemd-sysusers:\n{}", tools::text(&o));
    let passwd = std::fs::read_to_string(etc.join("passwd")).unwrap();
    let group = std::fs::read_to_string(etc.join("group")).unwrap();
    let gid = |name: &str| {
        group
            .lines()
            .find(|l| l.starts_with(&format!("{name}:")))
            .and_then(|l| l.split(':').nth(2))
            .unwrap_or_else(|| panic!("no group {name}:\n{group}"))
            .to_string()
    };
    let members = |name: &str| {
        group
            .lines()
            .find(|l| l.starts_with(&format!("{name}:")))
            .map(|l| {
                l.rsplit(':')
                    .next()
                    .unwrap()
                    .split(',')
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    };
    for user in ["strahl-dataplane", "strahl-control", "strahl-capture"] {
        let line = passwd
            .lines()
            .find(|l| l.starts_with(&format!("{user}:")))
            .unwrap_or_else(|| panic!("no user {user}:\n{passwd}"));
        assert_eq!(
            line.split(':').nth(3).unwrap(),
            gid("strahl"),
            "{user}'s primary group"
        );
        assert!(line.ends_with("nologin"), "{line}");
    }
    assert_eq!(members("strahl-input"), ["strahl-control"]);
    let mut video = members("video");
    video.sort();
    assert_eq!(video, ["strahl-capture", "strahl-dataplane"]);
    assert_eq!(members("render"), ["strahl-dataplane"]);
    // The PipeWire group exists with no member: only the data plane's unit joins it.
    gid(strahl_config::AUDIO_GROUP);
    assert_eq!(members(strahl_config::AUDIO_GROUP), [""]);
}

#[test]
fn the_desktop_session_opens_its_pipewire_socket_to_the_group_the_data_plane_joins() {
    const U: &str = "appliance/pipewire/strahl-pipewire-access.service";
    let group = strahl_config::AUDIO_GROUP;
    assert_eq!(
        unit_settings("appliance/strahl-dataplane.service", "SupplementaryGroups"),
        [group]
    );
    // /run/user must be visible to the data plane ("yes" would hide it).
    assert_eq!(
        unit_settings("appliance/strahl-dataplane.service", "ProtectHome"),
        ["read-only"]
    );
    // The session's grant: x on the runtime directory, rw on the socket the data plane probes
    // by default (the desktop user's %t/pipewire-0), and nothing else.
    let socket = std::path::Path::new(strahl_config::APPLIANCE_PIPEWIRE_SOCKET);
    let name = socket.file_name().unwrap().to_str().unwrap();
    assert_eq!(
        unit_settings(U, "ExecStart"),
        [
            format!("/usr/bin/setfacl --modify=group:{group}:x %t"),
            format!("/usr/bin/setfacl --modify=group:{group}:rw %t/{name}"),
        ]
    );
    assert_eq!(
        unit_settings(U, "ExecStop"),
        [format!("-/usr/bin/setfacl --remove=group:{group} %t")]
    );
    // After each start of pipewire.socket (which makes the socket anew), stopped with it.
    for key in ["After", "PartOf", "WantedBy"] {
        assert_eq!(unit_settings(U, key), ["pipewire.socket"], "{key}");
    }
    assert_eq!(unit_settings(U, "RemainAfterExit"), ["yes"]);
    // Enabled for every user by the user preset.
    let preset = read("appliance/pipewire/50-strahl.preset");
    let rules: Vec<&str> = preset
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .collect();
    assert_eq!(rules, ["enable strahl-pipewire-access.service"]);
}

#[test]
fn tmpfiles_copies_the_default_configuration_once() {
    let tmp = Scratch::new("tmpfiles");
    let share = tmp.0.join("usr/share/strahl");
    std::fs::create_dir_all(&share).unwrap();
    std::fs::write(share.join("strahl.toml"), read("appliance/strahl.toml")).unwrap();
    let conf = repo::root().join("appliance/tmpfiles.d/strahl.conf");
    let apply = || {
        let o = tools::run(
            Command::new(tools::find("systemd-tmpfiles"))
                .arg(format!("--root={}", tmp.0.display()))
                .arg("--create")
                .arg(&conf),
        );
        assert!(o.status.success(), "systemd-tmpfiles:\n{}", tools::text(&o));
    };
    apply();
    let etc = tmp.0.join("etc/strahl/strahl.toml");
    assert_eq!(
        std::fs::read_to_string(&etc).unwrap(),
        read("appliance/strahl.toml")
    );
    // An edited copy survives the next boot.
    std::fs::write(&etc, "# mine\n").unwrap();
    apply();
    assert_eq!(std::fs::read_to_string(&etc).unwrap(), "# mine\n");
}

#[test]
fn udev_rules_are_well_formed_and_grant_uinput_to_strahl_input() {
    let text = read("appliance/udev/70-strahl.rules");
    const OPS: [&str; 6] = ["==", "!=", "+=", "-=", ":=", "="];
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'))
    {
        for pair in line.split(", ") {
            let op = OPS
                .iter()
                .filter_map(|op| pair.find(op).map(|i| (i, *op)))
                .min_by_key(|(i, op)| (*i, std::cmp::Reverse(op.len())))
                .unwrap_or_else(|| panic!("line {}: no operator in {pair:?}", n + 1));
            let (key, value) = (&pair[..op.0], &pair[op.0 + op.1.len()..]);
            assert!(
                !key.is_empty()
                    && key.chars().all(|c| c.is_ascii_uppercase()
                        || c == '_'
                        || c == '{'
                        || c == '}'
                        || c.is_ascii_lowercase()),
                "line {}: bad key {key:?}",
                n + 1
            );
            assert!(
                value.len() >= 2
                    && value.starts_with('"')
                    && value.ends_with('"')
                    && !value[1..value.len() - 1].contains('"'),
                "line {}: value {value:?} must be one quoted string",
                n + 1
            );
        }
    }
    assert!(text.contains(r#"KERNEL=="uinput", SUBSYSTEM=="misc", OPTIONS+="static_node=uinput", GROUP="strahl-input", MODE="0660""#));
    // The group the rules name is one sysusers.d creates.
    let sysusers = read("appliance/sysusers.d/strahl.conf");
    assert!(
        sysusers
            .lines()
            .any(|l| l.split_whitespace().take(2).eq(["g", "strahl-input"]))
    );
}

/// (protocol, port) of a firewalld service file, with its includes resolved among ours;
/// external includes are returned by name.
fn firewalld_ports(name: &str, external: &mut BTreeSet<String>) -> BTreeSet<(String, u16)> {
    let rel = format!("appliance/firewalld/{name}.xml");
    let path = repo::root().join(&rel);
    if !path.exists() {
        external.insert(name.to_string());
        return BTreeSet::new();
    }
    let text = read(&rel);
    assert!(
        text.starts_with("<?xml version=\"1.0\" encoding=\"utf-8\"?>"),
        "{rel}"
    );
    well_formed(&text).unwrap_or_else(|e| panic!("{rel}: {e}"));
    let attr = |tag: &str, key: &str| -> Option<String> {
        tag.split(&format!("{key}=\""))
            .nth(1)
            .and_then(|r| r.split('"').next())
            .map(str::to_string)
    };
    let mut out = BTreeSet::new();
    for tag in text
        .split('<')
        .skip(1)
        .map(|t| t.split('>').next().unwrap())
    {
        if tag.starts_with("port ") {
            let proto = attr(tag, "protocol").unwrap();
            let port: u16 = attr(tag, "port")
                .unwrap()
                .parse()
                .expect("one port per element");
            out.insert((proto, port));
        } else if tag.starts_with("include ") {
            out.extend(firewalld_ports(&attr(tag, "service").unwrap(), external));
        }
    }
    out
}

/// Balanced elements, comments skipped (the files use no CDATA or entities).
fn well_formed(text: &str) -> Result<(), String> {
    let mut stack: Vec<String> = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find('<') {
        rest = &rest[i + 1..];
        if let Some(r) = rest.strip_prefix("!--") {
            rest = &r[r.find("-->").ok_or("unterminated comment")? + 3..];
            continue;
        }
        let end = rest.find('>').ok_or("unterminated tag")?;
        let tag = &rest[..end];
        rest = &rest[end + 1..];
        if tag.starts_with('?') {
            continue;
        }
        if let Some(name) = tag.strip_prefix('/') {
            if stack.pop().as_deref() != Some(name.trim()) {
                return Err(format!("</{name}> closes nothing open"));
            }
        } else if !tag.ends_with('/') {
            stack.push(tag.split_whitespace().next().unwrap_or("").to_string());
        }
    }
    if stack.is_empty() {
        Ok(())
    } else {
        Err(format!("unclosed {stack:?}"))
    }
}

#[test]
fn firewalld_services_open_exactly_the_default_configurations_ports() {
    let cfg = strahl_config::Config::default();
    let gs = cfg.network.gamestream_ports();
    let tcp = |p: u16| ("tcp".to_string(), p);
    let udp = |p: u16| ("udp".to_string(), p);
    let gamestream: BTreeSet<_> = [
        tcp(gs.https),
        tcp(gs.http),
        tcp(gs.rtsp),
        udp(gs.video),
        udp(gs.control),
        udp(gs.audio),
    ]
    .into();
    let mut ext = BTreeSet::new();
    assert_eq!(firewalld_ports("strahl-gamestream", &mut ext), gamestream);
    assert_eq!(
        ext,
        BTreeSet::from(["mdns".to_string()]),
        "mDNS through firewalld's own service"
    );
    assert_eq!(
        firewalld_ports("strahl-native", &mut ext),
        [udp(cfg.network.native_port.0)].into()
    );
    assert_eq!(
        firewalld_ports("strahl-status", &mut ext),
        [tcp(cfg.network.status_port.0)].into()
    );
    let mut all = gamestream.clone();
    all.insert(udp(cfg.network.native_port.0));
    all.insert(tcp(cfg.network.status_port.0));
    let mut ext = BTreeSet::new();
    assert_eq!(firewalld_ports("strahl", &mut ext), all);
    assert_eq!(ext, BTreeSet::from(["mdns".to_string()]));
}
