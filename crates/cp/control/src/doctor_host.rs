//! The `doctor` checks that look at the host's services (ports, firewall, time sync), the
//! human rendering, and [`RealSystem`], the one [`SystemView`] that touches the machine.
//! Split from `doctor.rs` for size; the contract is in that module's header.

use std::path::Path;

use super::model::*;

/// Running strahl processes (by /proc/*/comm).
fn strahl_running(sys: &dyn SystemView) -> Vec<String> {
    let mut out: Vec<String> = sys
        .list_dir("/proc")
        .into_iter()
        .filter(|p| p.bytes().all(|b| b.is_ascii_digit()))
        .filter_map(|p| sys.read(&format!("/proc/{p}/comm")))
        .map(|c| c.trim().to_string())
        .filter(|c| {
            STRAHL_PROCESSES
                .iter()
                .any(|s| c.starts_with(&s[..15.min(s.len())]))
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

pub(super) fn ports(sys: &dyn SystemView, inp: &Inputs) -> Vec<Finding> {
    let strahl = strahl_running(sys);
    inp.ports
        .iter()
        .map(|(what, proto, port)| {
            let check = format!("port_{}_{port}", proto.as_str());
            let desc = format!("{what} {}/{port}", proto.as_str());
            match sys.port(*proto, *port) {
                PortState::Free => finding(
                    &check,
                    Level::Required,
                    Verdict::Ok,
                    format!("{desc} free"),
                    "",
                ),
                PortState::InUse if !strahl.is_empty() => finding(
                    &check,
                    Level::Required,
                    Verdict::Ok,
                    format!("{desc} in use, strahl is running ({})", strahl.join(", ")),
                    "",
                ),
                PortState::InUse => finding(
                    &check,
                    Level::Required,
                    Verdict::Fail,
                    format!("{desc} is held by another program"),
                    &format!(
                        "find it with `ss -lpn 'sport = :{port}'` and stop it (Sunshine uses the \
                         same ports), or change the port in /etc/strahl/strahl.toml"
                    ),
                ),
                PortState::Denied => finding(
                    &check,
                    Level::Required,
                    Verdict::Fail,
                    format!("{desc}: binding not permitted"),
                    "ports below net.ipv4.ip_unprivileged_port_start need CAP_NET_BIND_SERVICE",
                ),
            }
        })
        .collect()
}

/// strahl's firewalld service, installed by the image (appliance/firewalld/strahl.xml).
const FIREWALLD_SERVICE: &str = "/usr/lib/firewalld/services/strahl.xml";

pub(super) fn firewall(sys: &dyn SystemView, inp: &Inputs) -> Finding {
    const C: &str = "firewall";
    let wanted: Vec<String> = inp
        .ports
        .iter()
        .map(|(_, p, n)| format!("{n}/{}", p.as_str()))
        .collect();
    if let Some(o) = sys.run(&["firewall-cmd", "--state"])
        && o.status == 0
        && o.stdout.trim() == "running"
    {
        let open = sys
            .run(&["firewall-cmd", "--list-ports"])
            .map(|o| o.stdout)
            .unwrap_or_default();
        let services = sys
            .run(&["firewall-cmd", "--list-services"])
            .map(|o| o.stdout)
            .unwrap_or_default();
        let closed: Vec<&String> = wanted
            .iter()
            .filter(|w| !open.split_whitespace().any(|o| o == w.as_str()))
            .collect();
        let has = |name: &str| services.split_whitespace().any(|s| s == name);
        // strahl's firewalld services (appliance/firewalld/): all of it, or its three parts.
        let by_service = has("strahl")
            || ["strahl-gamestream", "strahl-native", "strahl-status"]
                .iter()
                .all(|s| has(s));
        if closed.is_empty() || by_service {
            return finding(
                C,
                Level::Recommended,
                Verdict::Ok,
                "firewalld: strahl's ports are open".into(),
                "",
            );
        }
        return finding(
            C,
            Level::Recommended,
            Verdict::Fail,
            format!(
                "firewalld running; closed: {}",
                closed
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            &if sys.exists(FIREWALLD_SERVICE) {
                "firewall-cmd --permanent --add-service=strahl && firewall-cmd --reload".into()
            } else {
                format!(
                    "firewall-cmd --permanent {} && firewall-cmd --reload",
                    closed
                        .iter()
                        .map(|p| format!("--add-port={p}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                )
            },
        );
    }
    match sys.run(&["nft", "list", "ruleset"]) {
        Some(o) if o.status == 0 => {
            let drops = o
                .stdout
                .lines()
                .any(|l| l.contains("hook input") && l.contains("policy drop"));
            if !drops {
                return finding(
                    C,
                    Level::Recommended,
                    Verdict::Ok,
                    "nftables: no input chain with a drop policy (nothing filtered)".into(),
                    "",
                );
            }
            let missing: Vec<&String> = inp
                .ports
                .iter()
                .zip(&wanted)
                .filter(|((_, _, n), _)| !o.stdout.contains(&n.to_string()))
                .map(|(_, w)| w)
                .collect();
            if missing.is_empty() {
                finding(
                    C,
                    Level::Recommended,
                    Verdict::Ok,
                    "nftables: input drops by default; every strahl port appears in the ruleset"
                        .into(),
                    "",
                )
            } else {
                finding(
                    C,
                    Level::Recommended,
                    Verdict::Fail,
                    format!(
                        "nftables input policy drop; no rule mentions {}",
                        missing
                            .iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(" ")
                    ),
                    "accept strahl's ports in the input chain, e.g. `nft add rule inet filter input \
                     tcp dport { 47984, 47989, 47990, 48010 } accept` and `... udp dport { 47900, \
                     47998, 47999, 48000 } accept`",
                )
            }
        }
        Some(_) => finding(
            C,
            Level::Recommended,
            Verdict::Unknown,
            "`nft list ruleset` failed (needs root/CAP_NET_ADMIN)".into(),
            "run doctor as root to inspect the firewall",
        ),
        None => finding(
            C,
            Level::Recommended,
            Verdict::Ok,
            "neither firewalld nor nft present: no host firewall".into(),
            "",
        ),
    }
}

pub(super) fn time_sync(sys: &dyn SystemView) -> Finding {
    const C: &str = "time_sync";
    let fix = "enable NTP: `timedatectl set-ntp true` (systemd-timesyncd) or install chrony";
    if let Some(o) = sys.run(&["timedatectl", "show", "-p", "NTPSynchronized", "--value"])
        && o.status == 0
    {
        return if o.stdout.trim() == "yes" {
            finding(
                C,
                Level::Recommended,
                Verdict::Ok,
                "timedatectl: NTP synchronized".into(),
                "",
            )
        } else {
            finding(
                C,
                Level::Recommended,
                Verdict::Fail,
                "timedatectl: clock not NTP-synchronized".into(),
                fix,
            )
        };
    }
    if let Some(o) = sys.run(&["chronyc", "tracking"])
        && o.status == 0
    {
        return if o.stdout.contains("Normal") {
            finding(
                C,
                Level::Recommended,
                Verdict::Ok,
                "chrony: tracking (leap status normal)".into(),
                "",
            )
        } else {
            finding(
                C,
                Level::Recommended,
                Verdict::Fail,
                "chrony: not synchronised".into(),
                fix,
            )
        };
    }
    if sys.exists("/run/systemd/timesync/synchronized") {
        return finding(
            C,
            Level::Recommended,
            Verdict::Ok,
            "systemd-timesyncd: synchronized".into(),
            "",
        );
    }
    finding(
        C,
        Level::Recommended,
        Verdict::Unknown,
        "no time-sync service found (no timedatectl, chronyc, or /run/systemd/timesync)".into(),
        fix,
    )
}

/// Human output: one block per finding.
pub fn render_human(findings: &[Finding], out: &mut String) {
    use std::fmt::Write as _;
    for f in findings {
        let tag = match f.verdict {
            Verdict::Ok => "  ok ",
            Verdict::Fail => match f.level {
                Level::Required => "FAIL ",
                Level::Recommended => "warn ",
            },
            Verdict::Unknown => "  ?  ",
        };
        let lvl = match f.level {
            Level::Required => "required",
            Level::Recommended => "recommended",
        };
        let _ = writeln!(out, "[{tag}] {:<22} ({lvl}) {}", f.check, f.detail);
        if !f.fix.is_empty() {
            let _ = writeln!(out, "         fix: {}", f.fix);
        }
    }
    let failed_req = findings
        .iter()
        .filter(|f| f.level == Level::Required && f.verdict == Verdict::Fail)
        .count();
    let failed_rec = findings
        .iter()
        .filter(|f| f.level == Level::Recommended && f.verdict != Verdict::Ok)
        .count();
    let _ = writeln!(
        out,
        "\n{} check(s): {failed_req} required missing, {failed_rec} recommended not met or unknown",
        findings.len()
    );
}

/// The host itself.
pub struct RealSystem;

/// Longest an external command may run (timedatectl may wait on D-Bus).
pub const COMMAND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// Largest file the checks read (sysfs/procfs files are tiny; /proc/self/status ~1.5 KiB).
const MAX_READ: u64 = 256 * 1024;

impl SystemView for RealSystem {
    fn read(&self, path: &str) -> Option<String> {
        use std::io::Read;
        let f = std::fs::File::open(path).ok()?;
        let mut s = String::new();
        f.take(MAX_READ).read_to_string(&mut s).ok()?;
        Some(s)
    }

    fn exists(&self, path: &str) -> bool {
        Path::new(path).exists()
    }

    fn list_dir(&self, path: &str) -> Vec<String> {
        std::fs::read_dir(path)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .take(1 << 16)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn read_link(&self, path: &str) -> Option<String> {
        std::fs::read_link(path)
            .ok()
            .map(|p| p.to_string_lossy().into_owned())
    }

    fn can_read_write(&self, path: &str) -> bool {
        // Opening a device node for read+write is the access check itself (no side effects for
        // DRM, uinput or nvidia nodes until an ioctl is issued).
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .is_ok()
    }

    fn run(&self, argv: &[&str]) -> Option<CmdOut> {
        let (cmd, args) = argv.split_first()?;
        let mut child = std::process::Command::new(cmd)
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .ok()?;
        // Drained on a thread so a large output (an nft ruleset) cannot fill the pipe and stall
        // the child until the timeout.
        let mut stdout = child.stdout.take()?;
        let reader = std::thread::spawn(move || {
            use std::io::Read;
            let mut buf = Vec::new();
            let _ = (&mut stdout).take(MAX_READ).read_to_end(&mut buf);
            buf
        });
        let deadline = std::time::Instant::now() + COMMAND_TIMEOUT;
        loop {
            match child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(20))
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return None;
                }
            }
        }
        let status = child.wait().ok()?;
        let out = reader.join().unwrap_or_default();
        Some(CmdOut {
            status: status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out).into_owned(),
        })
    }

    fn port(&self, proto: Proto, port: u16) -> PortState {
        let addr = std::net::SocketAddr::from(([0, 0, 0, 0], port));
        let r = match proto {
            Proto::Tcp => std::net::TcpListener::bind(addr).map(drop),
            Proto::Udp => std::net::UdpSocket::bind(addr).map(drop),
        };
        match r {
            Ok(()) => PortState::Free,
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => PortState::Denied,
            Err(_) => PortState::InUse,
        }
    }

    fn connect_unix(&self, path: &str) -> Result<(), String> {
        std::os::unix::net::UnixStream::connect(path)
            .map(drop)
            .map_err(|e| e.to_string())
    }
}
