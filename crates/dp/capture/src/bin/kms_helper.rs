//! `strahl-kms-helper`: the privileged half of KMS capture (design: `strahl_capture::kms`).
//!
//! Opens the card, finds the CRTC (of `--connector` when given), listens on `--socket`
//! (SOCK_SEQPACKET, mode 0660) and streams every page-flipped framebuffer to the connected
//! data plane as a dmabuf fd, one peer at a time, until `--max-seconds` (default: forever).
//! It is the one strahl process that holds CAP_SYS_ADMIN; all it reads from its peer is the
//! session's mode request (fixed size, validated, `strahl_capture::kms_mode`): when nobody else
//! is DRM master it sets that mode for the session with an atomic modeset, holding master only
//! for the commit, and puts the previous mode back when the peer leaves
//! (`strahl_capture::kms_modeset`).
//!
//! `--peer-user NAME|UID` (the appliance's unit: `strahl-dataplane`): only a peer running as
//! that user (SO_PEERCRED, checked at accept) gets frames; any other is logged and closed, so
//! another member of the socket's group (the control plane shares `strahl` with the data
//! plane) can neither see the screen nor hold the helper's one peer slot. A name is looked up
//! in `/etc/passwd` (where systemd-sysusers puts the appliance's users) at start.
//! Under systemd (`$NOTIFY_SOCKET`, `Type=notify`) it says READY=1 once the socket listens, so
//! a data plane ordered after it finds the socket at its own start; `--wait SECONDS` first
//! retries a display that cannot be captured yet (at boot: the card before udev's permissions).
//! Exit status: 0 at the time limit, 1 when capture is not possible (reason on stderr), 2 for
//! bad arguments or an unknown `--peer-user`.

use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use strahl_capture::kms_grab::{KmsGrabber, ServeLimits, serve};
use strahl_capture::{kms, kms_wire};

const USAGE: &str = "usage: strahl-kms-helper --socket PATH [--device /dev/dri/cardN] \
                     [--connector NAME] [--max-seconds N] [--peer-user NAME|UID] \
                     [--wait SECONDS]";

/// Where `--peer-user` names are looked up.
const PASSWD: &str = "/etc/passwd";

/// Log lines to stderr (the journal under systemd).
struct StderrLog;

impl log::Log for StderrLog {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::Level::Info
    }
    fn log(&self, r: &log::Record<'_>) {
        if self.enabled(r.metadata()) {
            eprintln!("strahl-kms-helper: {}: {}", r.level(), r.args());
        }
    }
    fn flush(&self) {}
}

#[derive(Debug, PartialEq)]
struct Args {
    socket: PathBuf,
    device: Option<PathBuf>,
    connector: Option<String>,
    max_time: Option<Duration>,
    /// `--peer-user` as given (resolved to a uid in `main`).
    peer_user: Option<String>,
    /// `--wait`: how long a display that cannot be captured yet is tried again (default 0).
    wait: Duration,
}

fn parse(args: impl IntoIterator<Item = String>) -> Result<Args, String> {
    let mut a = Args {
        socket: PathBuf::new(),
        device: None,
        connector: None,
        max_time: None,
        peer_user: None,
        wait: Duration::ZERO,
    };
    let mut it = args.into_iter();
    while let Some(k) = it.next() {
        let mut v = || {
            it.next()
                .ok_or_else(|| format!("{k} needs a value\n{USAGE}"))
        };
        match k.as_str() {
            "--socket" => a.socket = PathBuf::from(v()?),
            "--device" => a.device = Some(PathBuf::from(v()?)),
            "--connector" => a.connector = Some(v()?),
            "--peer-user" => a.peer_user = Some(v()?),
            "--wait" => {
                let s: u64 = v()?.parse().map_err(|e| format!("--wait: {e}"))?;
                a.wait = Duration::from_secs(s);
            }
            "--max-seconds" => {
                let s: u64 = v()?.parse().map_err(|e| format!("--max-seconds: {e}"))?;
                a.max_time = Some(Duration::from_secs(s));
            }
            "--help" | "-h" => return Err(USAGE.into()),
            _ => return Err(format!("unknown argument {k}\n{USAGE}")),
        }
    }
    if a.socket.as_os_str().is_empty() {
        return Err(format!("--socket is required\n{USAGE}"));
    }
    Ok(a)
}

fn main() -> ExitCode {
    let _ = log::set_logger(&StderrLog).map(|()| log::set_max_level(log::LevelFilter::Info));
    let args = match parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let peer_uid = match &args.peer_user {
        None => None,
        Some(u) => {
            let passwd = std::fs::read_to_string(PASSWD).unwrap_or_default();
            match resolve_uid(u, &passwd) {
                Some(uid) => Some(uid),
                None => {
                    eprintln!("--peer-user {u}: no such user in {PASSWD}");
                    return ExitCode::from(2);
                }
            }
        }
    };
    match run(&args, peer_uid) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// `user` as a uid: a number as it is, else its `/etc/passwd` entry (`text`).
fn resolve_uid(user: &str, text: &str) -> Option<u32> {
    if let Ok(uid) = user.parse() {
        return Some(uid);
    }
    text.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next() == Some(user))
            .then(|| f.nth(1).and_then(|uid| uid.parse().ok()))
            .flatten()
    })
}

/// Whether a peer with credentials `peer` may have frames (`allowed`: `--peer-user`'s uid).
fn peer_allowed(peer: Option<u32>, allowed: Option<u32>) -> bool {
    match allowed {
        None => true,
        // Credentials that cannot be read are not the data plane's.
        Some(want) => peer == Some(want),
    }
}

/// systemd's readiness notification: READY=1 to `$NOTIFY_SOCKET`, when set. Failing to send
/// is logged, not fatal: the unit's start then times out and is retried, as systemd would do
/// for a helper that never got ready.
fn notify_ready() {
    if let Some(path) = std::env::var_os("NOTIFY_SOCKET")
        && let Err(e) = notify(&path, b"READY=1")
    {
        log::warn!("readiness notification to {}: {e}", path.display());
    }
}

/// Sends `msg` to the datagram socket at `path` (a file path, or `@name` for an abstract one).
fn notify(path: &std::ffi::OsStr, msg: &[u8]) -> rustix::io::Result<usize> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_bytes();
    let addr = match bytes.strip_prefix(b"@") {
        Some(name) => rustix::net::SocketAddrUnix::new_abstract_name(name)?,
        None => rustix::net::SocketAddrUnix::new(bytes)?,
    };
    let fd = rustix::net::socket_with(
        rustix::net::AddressFamily::UNIX,
        rustix::net::SocketType::DGRAM,
        rustix::net::SocketFlags::CLOEXEC,
        None,
    )?;
    rustix::net::sendto(&fd, msg, rustix::net::SendFlags::empty(), &addr)
}

/// How often a display that is not capturable yet is tried again during `--wait`.
const WAIT_RETRY: Duration = Duration::from_millis(500);

/// The card's grabber, tried again for up to `--wait` while it fails: at boot the card node may
/// exist before udev has given it its group (the lab's booted appliance saw EACCES for ~10 s),
/// and a helper that gave up at once would leave the data plane, ordered after it, on the
/// synthetic source.
fn open_when_ready(args: &Args) -> Result<KmsGrabber, String> {
    let deadline = Instant::now() + args.wait;
    let mut waiting = false;
    loop {
        let device = match &args.device {
            Some(d) => Ok(d.clone()),
            None => kms::probe().map(|t| t.device).map_err(|e| e.to_string()),
        };
        let opened = device.and_then(|d| {
            KmsGrabber::open(&d, args.connector.as_deref()).map_err(|e| e.to_string())
        });
        match opened {
            Ok(g) => {
                if waiting {
                    log::info!("the display is capturable now");
                }
                return Ok(g);
            }
            Err(e) if Instant::now() + WAIT_RETRY <= deadline => {
                if !waiting {
                    log::info!(
                        "waiting up to {} s for a capturable display: {e}",
                        args.wait.as_secs()
                    );
                    waiting = true;
                }
                std::thread::sleep(WAIT_RETRY);
            }
            Err(e) => return Err(e),
        }
    }
}

fn run(args: &Args, peer_uid: Option<u32>) -> Result<(), String> {
    let mut grabber = open_when_ready(args)?;
    let listener = kms_wire::listen(&args.socket).map_err(|e| e.to_string())?;
    log::info!(
        "capturing {} for peers on {}{}",
        grabber.describe(),
        args.socket.display(),
        peer_uid.map_or(String::new(), |u| format!(" (uid {u} only)"))
    );
    notify_ready();
    let t0 = Instant::now();
    let stop = AtomicBool::new(false);
    let left = |t0: Instant| args.max_time.map(|m| m.saturating_sub(t0.elapsed()));
    while left(t0).is_none_or(|l| !l.is_zero()) {
        let wait = left(t0)
            .unwrap_or(Duration::from_secs(1))
            .min(Duration::from_secs(1));
        let Some(peer) = kms_wire::accept(listener.as_fd(), wait).map_err(|e| e.to_string())?
        else {
            continue;
        };
        let cred = rustix::net::sockopt::socket_peercred(&peer)
            .ok()
            .map(|c| c.uid.as_raw());
        if !peer_allowed(cred, peer_uid) {
            // Closed unanswered: frames go to the data plane's user only.
            log::warn!(
                "refused a peer running as uid {} (only {} may capture)",
                cred.map_or("unknown".into(), |u| u.to_string()),
                peer_uid.map_or(String::new(), |u| u.to_string())
            );
            continue;
        }
        let limits = ServeLimits {
            max_frames: None,
            max_time: left(t0),
        };
        let st = serve(&mut grabber, &peer, limits, &stop).map_err(|e| e.to_string())?;
        log::info!(
            "peer done: {} frames in {} refresh ticks (peer left: {})",
            st.frames,
            st.ticks,
            st.peer_left
        );
    }
    let _ = std::fs::remove_file(&args.socket);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Result<Args, String> {
        parse(v.iter().map(|s| s.to_string()))
    }

    #[test]
    fn arguments_parse_and_socket_is_required() {
        let a = args(&[
            "--socket",
            "/run/strahl/kms.sock",
            "--peer-user",
            "strahl-dataplane",
        ])
        .unwrap();
        assert_eq!(a.socket, PathBuf::from("/run/strahl/kms.sock"));
        assert_eq!(a.peer_user.as_deref(), Some("strahl-dataplane"));
        assert_eq!(a.wait, Duration::ZERO, "no waiting unless asked");
        let a = args(&["--socket", "s", "--wait", "25"]).unwrap();
        assert_eq!(a.wait, Duration::from_secs(25));
        assert!(
            args(&["--socket", "s", "--wait", "x"])
                .unwrap_err()
                .contains("--wait")
        );
        assert!(
            args(&["--peer-user", "x"])
                .unwrap_err()
                .contains("--socket")
        );
        assert!(args(&["--socket"]).unwrap_err().contains("needs a value"));
        assert!(args(&["--bogus"]).unwrap_err().contains("unknown argument"));
    }

    #[test]
    fn peer_user_resolves_from_passwd_or_as_a_number() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\n\
                      strahl-control:x:988:987:strahl control plane:/:/usr/sbin/nologin\n\
                      strahl-dataplane:x:989:987:strahl data plane:/:/usr/sbin/nologin\n";
        assert_eq!(resolve_uid("strahl-dataplane", passwd), Some(989));
        assert_eq!(resolve_uid("strahl", passwd), None, "no prefix matches");
        assert_eq!(resolve_uid("nobody", passwd), None);
        assert_eq!(resolve_uid("1234", ""), Some(1234));
    }

    #[test]
    fn readiness_reaches_a_notify_socket() {
        let dir = std::env::temp_dir().join(format!("strahl-kms-notify-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify");
        let rx = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert_eq!(notify(path.as_os_str(), b"READY=1").unwrap(), 7);
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
        assert!(notify(dir.join("nobody").as_os_str(), b"READY=1").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn only_the_named_user_gets_frames() {
        assert!(peer_allowed(Some(989), Some(989)));
        assert!(!peer_allowed(Some(988), Some(989)), "the control plane");
        assert!(!peer_allowed(None, Some(989)), "unreadable credentials");
        assert!(peer_allowed(Some(5), None), "no --peer-user: any peer");
    }
}
