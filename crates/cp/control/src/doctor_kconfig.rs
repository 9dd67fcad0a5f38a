//! The `doctor` checks that compare the running kernel with strahl's own kernel-config files
//! (`kernel-config/` in the repository): the bootc kargs.d profiles against `/proc/cmdline`, the
//! sysctl.d files against `/proc/sys`. Sans-IO like the rest of doctor (the contract is in
//! `doctor.rs`'s header): [`parse_kargs`], [`parse_sysctl`], [`missing_kargs`] and
//! [`sysctl_differences`] are pure; [`kargs`] and [`sysctl`] read through a [`SystemView`].
//!
//! Which file is compared: the one the image installed (`/usr/lib/bootc/kargs.d/…`; for
//! sysctl.d the highest-priority file of that name, `/etc` first, as systemd-sysctl picks it);
//! on a machine without strahl's kernel-config (no `/usr/lib/sysctl.d/60-strahl.conf`) the copy
//! built into this binary, so a developer's host is checked against the same values. A profile
//! left out of a strahl image on purpose (image/build.sh --profiles) is reported as such, not as
//! a failure.

use super::model::*;

/// A kernel-config profile's kargs.d file: (finding, installed path, built-in copy).
pub const KARGS_FILES: [(&str, &str, &str); 2] = [
    (
        "kargs_dataplane",
        "/usr/lib/bootc/kargs.d/50-strahl-dataplane.toml",
        include_str!("../../../../kernel-config/kargs.d/50-strahl-dataplane.toml"),
    ),
    (
        "kargs_headless",
        "/usr/lib/bootc/kargs.d/50-strahl-headless.toml",
        include_str!("../../../../kernel-config/kargs.d/50-strahl-headless.toml"),
    ),
];

/// strahl's sysctl.d files: (name, built-in copy).
pub const SYSCTL_FILES: [(&str, &str); 2] = [
    (
        "60-strahl.conf",
        include_str!("../../../../kernel-config/sysctl.d/60-strahl.conf"),
    ),
    (
        "61-strahl-busy-poll.conf",
        include_str!("../../../../kernel-config/sysctl.d/61-strahl-busy-poll.conf"),
    ),
];

/// sysctl.d directories, highest priority first (sysctl.d(5)).
pub const SYSCTL_DIRS: [&str; 4] = [
    "/etc/sysctl.d",
    "/run/sysctl.d",
    "/usr/local/lib/sysctl.d",
    "/usr/lib/sysctl.d",
];

/// Present on every strahl image (profile core): its absence means strahl's kernel-config is
/// not installed on this machine.
pub const IMAGE_MARKER: &str = "/usr/lib/sysctl.d/60-strahl.conf";

/// Where the headless profile's EDID is loaded from (`edid/strahl.bin` in the karg).
pub const EDID_FIRMWARE: &str = "/usr/lib/firmware/edid/strahl.bin";

/// The `kargs` of a bootc kargs.d file.
pub fn parse_kargs(text: &str) -> Result<Vec<String>, String> {
    let table: toml::Table = text.parse().map_err(|e| format!("{e}"))?;
    let list = table
        .get("kargs")
        .and_then(|v| v.as_array())
        .ok_or("no `kargs` array")?;
    list.iter()
        .map(|v| {
            v.as_str()
                .map(str::to_string)
                .ok_or_else(|| format!("karg {v} is not a string"))
        })
        .collect()
}

/// Parameter names compare with `-` and `_` alike, as the kernel does.
fn param_name(s: &str) -> String {
    s.replace('-', "_")
}

/// The kernel arguments of `expected` that `cmdline` lacks or sets otherwise, each as
/// "arg" (missing) or "arg (running: other)"; for a repeated parameter the last one counts,
/// as for the kernel's own parameters.
pub fn missing_kargs(expected: &[String], cmdline: &str) -> Vec<String> {
    let words: Vec<&str> = cmdline.split_whitespace().collect();
    let mut out = Vec::new();
    for want in expected {
        match want.split_once('=') {
            Some((key, value)) => {
                let running = words.iter().rev().find_map(|w| {
                    w.split_once('=')
                        .filter(|(k, _)| param_name(k) == param_name(key))
                        .map(|(_, v)| v)
                });
                match running {
                    Some(v) if v == value => {}
                    Some(v) => out.push(format!("{want} (running: {key}={v})")),
                    None => out.push(want.clone()),
                }
            }
            None => {
                if !words.iter().any(|w| param_name(w) == param_name(want)) {
                    out.push(want.clone());
                }
            }
        }
    }
    out
}

/// One `key = value` line of a sysctl.d file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysctlEntry {
    pub key: String,
    pub value: String,
    /// A leading `-`: a missing key is no error.
    pub optional: bool,
}

/// Parses a sysctl.d file (sysctl.d(5)): `#` and `;` comments, `key = value`, an optional
/// leading `-`. Glob keys are skipped (strahl ships none); malformed lines are errors.
pub fn parse_sysctl(text: &str) -> Result<Vec<SysctlEntry>, String> {
    let mut out = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| format!("line {}: no '=' in {line:?}", n + 1))?;
        let key = key.trim();
        let (optional, key) = match key.strip_prefix('-') {
            Some(k) => (true, k.trim()),
            None => (false, key),
        };
        if key.is_empty() {
            return Err(format!("line {}: empty key", n + 1));
        }
        if key.contains('*') {
            continue;
        }
        out.push(SysctlEntry {
            key: key.to_string(),
            value: value.trim().to_string(),
            optional,
        });
    }
    Ok(out)
}

/// The `/proc/sys` file of a sysctl key: dots separate unless the first separator is a slash
/// (then slashes do, and dots belong to the names, e.g. an interface called "eth0.10").
pub fn proc_sys_path(key: &str) -> String {
    let slash_first = key
        .find('/')
        .is_some_and(|s| key.find('.').is_none_or(|d| s < d));
    let path = if slash_first {
        key.to_string()
    } else {
        key.chars()
            .map(|c| match c {
                '.' => '/',
                '/' => '.',
                c => c,
            })
            .collect()
    };
    format!("/proc/sys/{}", path.trim_start_matches('/'))
}

/// What [`sysctl_differences`] found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SysctlReport {
    /// Keys whose running value matches.
    pub matching: usize,
    /// "key = running (want value)".
    pub different: Vec<String>,
    /// Keys that are not optional but could not be read.
    pub unreadable: Vec<String>,
}

/// Compares each entry with the running value `read` returns for its `/proc/sys` path
/// (whitespace-separated fields compare one by one, so "4096 87380" matches "4096\t87380").
pub fn sysctl_differences(
    entries: &[SysctlEntry],
    read: &dyn Fn(&str) -> Option<String>,
) -> SysctlReport {
    let mut r = SysctlReport::default();
    for e in entries {
        match read(&proc_sys_path(&e.key)) {
            Some(v) => {
                let running: Vec<&str> = v.split_whitespace().collect();
                if running == e.value.split_whitespace().collect::<Vec<_>>() {
                    r.matching += 1;
                } else {
                    r.different.push(format!(
                        "{} = {} (want {})",
                        e.key,
                        running.join(" "),
                        e.value
                    ));
                }
            }
            None if e.optional => {}
            None => r.unreadable.push(e.key.clone()),
        }
    }
    r
}

/// Where a kernel-config file comes from.
enum Source {
    /// Installed at this path.
    Installed(String),
    /// The copy built into strahl-control (strahl's kernel-config is not installed here).
    BuiltIn,
    /// A strahl image that leaves this profile out.
    LeftOut,
}

fn source_note(src: &Source) -> String {
    match src {
        Source::Installed(p) => p.clone(),
        Source::BuiltIn => {
            "strahl's kernel-config (not installed on this machine; the copy built into \
             strahl-control)"
                .into()
        }
        Source::LeftOut => String::new(),
    }
}

/// One finding per kargs.d profile.
pub fn kargs(sys: &dyn SystemView) -> Vec<Finding> {
    let image = sys.exists(IMAGE_MARKER);
    let cmdline = sys.read("/proc/cmdline");
    let online = sys
        .read("/sys/devices/system/cpu/online")
        .map(|s| parse_cpu_list(&s).len())
        .unwrap_or(0);
    KARGS_FILES
        .iter()
        .map(|(check, path, builtin)| {
            let (src, text) = match sys.read(path) {
                Some(t) => (Source::Installed(path.to_string()), t),
                None if image => (Source::LeftOut, String::new()),
                // Like the plan, which keeps every core shared below 4 (kernel_args says so).
                None if *check == "kargs_dataplane" && (1..4).contains(&online) => {
                    return finding(
                        check,
                        Level::Recommended,
                        Verdict::Ok,
                        format!(
                            "{online} online core(s): the data-plane profile (an isolated tx core) \
                             is for machines with 4 or more"
                        ),
                        "",
                    );
                }
                None => (Source::BuiltIn, builtin.to_string()),
            };
            kargs_one(sys, check, &src, &text, cmdline.as_deref())
        })
        .collect()
}

fn kargs_one(
    sys: &dyn SystemView,
    check: &str,
    src: &Source,
    text: &str,
    cmdline: Option<&str>,
) -> Finding {
    let lvl = Level::Recommended;
    if let Source::LeftOut = src {
        return finding(
            check,
            lvl,
            Verdict::Ok,
            "profile not part of this image (left out at build time)".into(),
            "",
        );
    }
    let from = source_note(src);
    let expected = match parse_kargs(text) {
        Ok(k) => k,
        Err(e) => {
            return finding(
                check,
                lvl,
                Verdict::Fail,
                format!("{from}: unreadable kargs.d file: {e}"),
                "reinstall the image (bootc upgrade) or repair the file",
            );
        }
    };
    let Some(cmdline) = cmdline else {
        return finding(
            check,
            lvl,
            Verdict::Unknown,
            "cannot read /proc/cmdline".into(),
            "run doctor on the host itself (not in a restricted container)",
        );
    };
    let missing = missing_kargs(&expected, cmdline);
    if !missing.is_empty() {
        let args: Vec<&str> = missing
            .iter()
            .map(|m| m.split(" (running").next().unwrap_or(m))
            .collect();
        let fix = match src {
            Source::Installed(_) => format!(
                "bootc applies kargs.d when it installs or switches to an image (`sudo bootc \
                 upgrade` or `sudo bootc switch IMAGE`, then reboot; `rpm-ostree rebase` does \
                 not); on this machine alone: `sudo rpm-ostree kargs {}` and reboot",
                args.iter()
                    .map(|a| format!("--append-if-missing={a}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            _ => format!(
                "boot strahl's image (README, Appliance image), or add `{}` to the kernel command \
                 line (GRUB_CMDLINE_LINUX in /etc/default/grub, then update-grub, or `grubby \
                 --update-kernel=ALL --args=...`) and reboot",
                args.join(" ")
            ),
        };
        return finding(
            check,
            lvl,
            Verdict::Fail,
            format!(
                "{} of {} kernel argument(s) of {from} not active: {}",
                missing.len(),
                expected.len(),
                missing.join(", ")
            ),
            &fix,
        );
    }
    let edid = expected.iter().any(|k| k.ends_with("edid/strahl.bin"));
    if edid && !sys.exists(EDID_FIRMWARE) {
        return finding(
            check,
            lvl,
            Verdict::Fail,
            format!("the kernel arguments of {from} are active, but {EDID_FIRMWARE} is missing"),
            "reinstall the image with the headless profile (image/build.sh --profiles \
             core,headless)",
        );
    }
    finding(
        check,
        lvl,
        Verdict::Ok,
        format!("all {} kernel argument(s) of {from} active", expected.len()),
        "",
    )
}

/// The effective copy of each of strahl's sysctl.d files, compared with `/proc/sys`.
pub fn sysctl(sys: &dyn SystemView) -> Finding {
    const C: &str = "sysctl";
    let image = sys.exists(IMAGE_MARKER);
    let mut report = SysctlReport::default();
    let mut files = Vec::new();
    for (name, builtin) in SYSCTL_FILES {
        let installed = SYSCTL_DIRS
            .iter()
            .map(|d| format!("{d}/{name}"))
            .find_map(|p| sys.read(&p).map(|t| (p, t)));
        let (from, text) = match installed {
            Some((p, t)) => (p, t),
            None if image => continue,
            None => (format!("{name} (built in)"), builtin.to_string()),
        };
        let entries = match parse_sysctl(&text) {
            Ok(e) => e,
            Err(e) => {
                return finding(
                    C,
                    Level::Recommended,
                    Verdict::Fail,
                    format!("{from}: {e}"),
                    "repair the file (sysctl.d(5) syntax)",
                );
            }
        };
        let r = sysctl_differences(&entries, &|p| sys.read(p));
        report.matching += r.matching;
        report.different.extend(r.different);
        report.unreadable.extend(r.unreadable);
        files.push(from);
    }
    let from = files.join(", ");
    if !report.different.is_empty() {
        let sets: Vec<String> = report
            .different
            .iter()
            .filter_map(|d| {
                let (key, rest) = d.split_once(" = ")?;
                let want = rest.rsplit_once("(want ")?.1.trim_end_matches(')');
                Some(format!("{key}=\"{want}\""))
            })
            .collect();
        let fix = if image {
            "`sudo sysctl --system` applies the image's sysctl.d files now (they apply at every \
             boot); a different value in /etc/sysctl.d overrides them"
                .to_string()
        } else {
            format!(
                "`sudo sysctl -w {}`; to keep them, copy strahl's kernel-config/sysctl.d files to \
                 /etc/sysctl.d/",
                sets.join(" ")
            )
        };
        return finding(
            C,
            Level::Recommended,
            Verdict::Fail,
            format!(
                "{} setting(s) of {from} differ: {}",
                report.different.len(),
                report.different.join("; ")
            ),
            &fix,
        );
    }
    if !report.unreadable.is_empty() {
        return finding(
            C,
            Level::Recommended,
            Verdict::Unknown,
            format!("cannot read {} (from {from})", report.unreadable.join(", ")),
            "run doctor on the host itself (not in a restricted container)",
        );
    }
    finding(
        C,
        Level::Recommended,
        Verdict::Ok,
        format!("{} setting(s) of {from} in effect", report.matching),
        "",
    )
}

pub use strahl_config::{parse_cpu_list, parse_cpu_list_last};
