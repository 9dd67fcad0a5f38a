//! Start-up transport self-test of the real binary.
//! - As user `nobody` (via `setpriv`), with `auto`, the data plane still comes up on io_uring or
//!   sendmmsg and its one log line says why AF_XDP was refused (no privilege); its media line
//!   names the capture, encoder and audio chosen and why (no GPU here: openh264).
//! - `[video] encoder = "nvenc"` on a machine without NVENC refuses to start, saying why;
//!   `[audio] source = "pipewire"` without a reachable PipeWire likewise.
//! - The appliance's PipeWire grant (the user unit's `setfacl` commands) lets the data plane,
//!   as another user holding the group, reach a socket in a 0700 runtime directory; without
//!   it, or after its stop command, `auto` streams the tone and says why.
//! - `[audio] source = "auto"` with the data plane up before the desktop's PipeWire: the
//!   first session streams the tone; once the socket is there the next session's build takes
//!   PipeWire and says so (the status page's `Detected` entry), and the tone again, with why,
//!   when it is gone (in-process, through `Media::start`; needs no root).
//! - As `nobody` with `transport = "af_xdp"` it refuses to start (no silent fallback).
//! - As root in a namespace, on a veth, it picks AF_XDP and sends nothing while starting (the
//!   peer's receive counter does not move).
//! - `[dataplane] realtime_priority = 5`: as root the tx tile thread runs SCHED_FIFO 5 (read
//!   from /proc) and the line says what allows it; as `nobody` it is refused with the fix and
//!   the data plane comes up at normal priority.
//!
//! Skipped with a visible message when `setpriv` is missing or we are not root.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

fn skip(name: &str, why: &str) {
    let _ = std::io::stderr()
        .lock()
        .write_all(format!("SKIPPED: {name}: {why}\n").as_bytes());
}

fn can_setpriv() -> Result<(), String> {
    let ok = Command::new("setpriv")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        return Err("setpriv (util-linux) is not installed".into());
    }
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(str::to_owned))
        })
        .unwrap_or_default();
    if uid != "0" {
        return Err(format!("needs root to switch to nobody (euid {uid})"));
    }
    Ok(())
}

/// A directory user nobody can write its socket into; removed on drop.
struct Dir(PathBuf);
impl Dir {
    fn new(tag: &str) -> Dir {
        use std::os::unix::fs::PermissionsExt;
        let d = std::env::temp_dir().join(format!("strahl-dp-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).unwrap();
        Dir(d)
    }
}
impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Run the data plane as nobody; collect stderr lines until `until` matches or it exits
/// (bounded by 20 s), then stop it. Returns (lines, exit code if it exited by itself).
fn run_as_nobody(dir: &Dir, config: Option<&str>, until: &str) -> (Vec<String>, Option<i32>) {
    run_as_nobody_in(dir, config, until, None)
}

/// Spawns `cmd` (its stderr piped) and collects its log lines until one contains `until`, its
/// stderr closes (it exited: `true`), or 20 s pass; the child is returned as it is then.
fn start_and_read(cmd: &mut Command, until: &str) -> (Vec<String>, bool, std::process::Child) {
    let mut child = cmd.spawn().expect("spawn the data plane");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut lines = Vec::new();
    while Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(l) => {
                let hit = l.contains(until);
                lines.push(l);
                if hit {
                    break;
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(_) => return (lines, true, child),
        }
    }
    (lines, false, child)
}

/// [`run_as_nobody`] with one supplementary group (a gid), as a unit's `SupplementaryGroups=`
/// gives it; `None`: none.
fn run_as_nobody_in(
    dir: &Dir,
    config: Option<&str>,
    until: &str,
    group: Option<u32>,
) -> (Vec<String>, Option<i32>) {
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=nobody", "--regid=nogroup", "--inh-caps=-all"])
        .arg(match group {
            Some(g) => format!("--groups={g}"),
            None => "--clear-groups".into(),
        })
        .arg(env!("CARGO_BIN_EXE_strahl-dataplane"))
        .arg("--socket")
        .arg(dir.0.join("dp.sock"))
        .args(["--interface", "lo"])
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(c) = config {
        let p = dir.0.join("strahl.toml");
        std::fs::write(&p, c).unwrap();
        cmd.arg("--config").arg(p);
    }
    let (lines, closed, mut child) = start_and_read(&mut cmd, until);
    let code = if closed {
        child.wait().unwrap().code()
    } else {
        let _ = child.kill();
        let _ = child.wait();
        None
    };
    (lines, code)
}

#[test]
fn unprivileged_data_plane_comes_up_on_a_kernel_transport_and_says_why_not_af_xdp() {
    if let Err(why) = can_setpriv() {
        return skip("unprivileged_data_plane_comes_up", &why);
    }
    let dir = Dir::new("nobody");
    let (lines, code) = run_as_nobody(&dir, None, "video: encoder");
    let all = lines.join("\n");
    assert_eq!(code, None, "still running when it listened:\n{all}");
    assert!(all.contains("listening for the control plane"), "{all}");
    let line = lines
        .iter()
        .find(|l| l.contains("net: transport "))
        .unwrap_or_else(|| panic!("no transport line:\n{all}"));
    assert!(
        line.contains("transport io_uring on lo") || line.contains("transport sendmmsg on lo"),
        "{line}"
    );
    assert!(line.contains("af_xdp — no privilege"), "{line}");
    assert!(all.contains("no capabilities held"), "{all}");
    // One line: what was chosen for capture, encode and audio, and why.
    let media = lines
        .iter()
        .find(|l| l.contains("media: video source: "))
        .unwrap_or_else(|| panic!("no media line:\n{all}"));
    assert!(media.contains("video source: synthetic ("), "{media}");
    // The default source is auto; no PipeWire is reachable for this user: the tone, and why.
    assert!(
        media.contains("; audio test tone ([audio] source = \"auto\": no PipeWire at "),
        "{media}"
    );
    if strahl_encode::nvenc::detect().is_err() {
        assert!(media.contains("; encoder openh264 ("), "{media}");
        assert!(media.contains(strahl_encode::nvenc::LIBRARY), "{media}");
    }
}

#[test]
fn nvenc_asked_for_without_nvenc_is_fatal() {
    if strahl_encode::nvenc::detect().is_ok() {
        return skip(
            "nvenc_asked_for_without_nvenc_is_fatal",
            "this machine has NVENC",
        );
    }
    if let Err(why) = can_setpriv() {
        return skip("nvenc_asked_for_without_nvenc_is_fatal", &why);
    }
    let dir = Dir::new("nvenc");
    let (lines, code) = run_as_nobody(
        &dir,
        Some("[video]\nencoder = \"nvenc\"\n"),
        "listening for the control plane",
    );
    let all = lines.join("\n");
    assert_eq!(code, Some(1), "must exit 1:\n{all}");
    assert!(all.contains("[video] encoder = \"nvenc\", but"), "{all}");
    assert!(all.contains(strahl_encode::nvenc::LIBRARY), "{all}");
    assert!(!all.contains("listening for the control plane"), "{all}");
}

#[test]
fn pipewire_asked_for_without_pipewire_is_fatal() {
    if let Err(why) = can_setpriv() {
        return skip("pipewire_asked_for_without_pipewire_is_fatal", &why);
    }
    let dir = Dir::new("pipewire");
    let socket = dir.0.join("pipewire-0");
    let (lines, code) = run_as_nobody(
        &dir,
        Some(&format!(
            "[audio]\nsource = \"pipewire\"\npipewire_socket = \"{}\"\n",
            socket.display()
        )),
        "listening for the control plane",
    );
    let all = lines.join("\n");
    assert_eq!(code, Some(1), "must exit 1:\n{all}");
    assert!(
        all.contains(&format!(
            "[audio] source = \"pipewire\", but no PipeWire at {} (from [audio] \
             pipewire_socket)",
            socket.display()
        )),
        "{all}"
    );
    assert!(!all.contains("listening for the control plane"), "{all}");
}

/// The appliance's grant, run for real: the desktop user's runtime directory (0700, here
/// root's) with a listening socket standing in for PipeWire's; the data plane as another user.
/// Without the grant `auto` streams the tone and names the group; after the commands of
/// `appliance/pipewire/strahl-pipewire-access.service` (its `%t` this directory, its group a
/// gid the data plane holds as a supplementary group, as `SupplementaryGroups=` gives it) it
/// reaches the socket and picks PipeWire; after its stop command, the tone again.
#[test]
fn the_desktop_sessions_grant_lets_the_data_plane_reach_its_pipewire() {
    use std::os::unix::fs::PermissionsExt;
    if let Err(why) = can_setpriv() {
        return skip("the_desktop_sessions_grant", &why);
    }
    if Command::new("setfacl").arg("--version").output().is_err() {
        return skip(
            "the_desktop_sessions_grant",
            "setfacl (acl) is not installed",
        );
    }
    // A gid no one has: the grant must come from the ACL, not from a group that exists.
    const GID: u32 = 64_987;
    let dir = Dir::new("pw-grant");
    let runtime = dir.0.join("user");
    std::fs::create_dir(&runtime).unwrap();
    std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700)).unwrap();
    let socket = runtime.join("pipewire-0");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    // As systemd makes pipewire.socket's (SocketMode= default).
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let config = format!(
        "[audio]\nsource = \"auto\"\npipewire_socket = \"{}\"\n",
        socket.display()
    );
    let media = |what: &str| {
        let (lines, _) = run_as_nobody_in(&dir, Some(&config), "media: video source", Some(GID));
        lines
            .into_iter()
            .find(|l| l.contains("media: video source"))
            .unwrap_or_else(|| panic!("{what}: no media line"))
    };
    let refused = format!(
        "; audio test tone ([audio] source = \"auto\": no PipeWire at {} (from [audio] \
         pipewire_socket): Permission denied",
        socket.display()
    );
    let line = media("before the grant");
    assert!(line.contains(&refused), "{line}");
    assert!(line.contains("strahl-audio group"), "{line}");

    let unit = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../appliance/pipewire/strahl-pipewire-access.service"),
    )
    .unwrap();
    let run = |key: &str| {
        for l in unit.lines().filter_map(|l| l.strip_prefix(key)) {
            let l = l
                .trim_start_matches('-')
                .replace("%t", runtime.to_str().unwrap())
                .replace("group:strahl-audio", &format!("group:{GID}"));
            let argv: Vec<&str> = l.split_whitespace().collect();
            let o = Command::new(argv[0]).args(&argv[1..]).output().unwrap();
            assert!(o.status.success(), "{l}: {o:?}");
        }
    };
    run("ExecStart=");
    let line = media("after the grant");
    assert!(
        line.contains(
            "; audio PipeWire, the default sink's monitor ([audio] source = \"auto\": \
             reachable; "
        ) && line.contains(&format!(
            "{}, from [audio] pipewire_socket)",
            socket.display()
        )),
        "{line}"
    );
    run("ExecStop=");
    let line = media("after the stop");
    assert!(line.contains(&refused), "{line}");
}

/// See the module header. Stand-ins for `pw-record` and `stdbuf` on the probe's PATH (it only
/// looks them up; no audio ping arrives, so no capture is started).
#[test]
fn auto_audio_takes_pipewire_at_the_first_session_after_it_appears() {
    use strahl_dataplane::media::{DEFAULT_LINK_BPS, Media, MediaHost, MediaSettings, Transports};
    use strahl_ipc::{Event, Subsystem};
    use strahl_metrics::{Metric, Registry};
    let dir = Dir::new("pw-auto");
    let bin = dir.0.join("bin");
    std::fs::create_dir(&bin).unwrap();
    for p in ["pw-record", "stdbuf"] {
        std::fs::write(bin.join(p), "").unwrap();
    }
    let socket = dir.0.join("pipewire-0");
    let mut cfg = strahl_config::Config::default();
    cfg.video.source = strahl_config::VideoSource::Synthetic;
    cfg.video.encoder = strahl_config::EncoderPref::Openh264;
    cfg.audio.pipewire_socket = strahl_config::AutoPath::Path(socket.clone());
    let mut settings = MediaSettings::from_config(&cfg).unwrap();
    assert_eq!(settings.audio.label(), "tone", "{:?}", settings.audio);
    let probe = settings.audio_recheck.as_mut().expect("auto looks again");
    probe.env.path = Some(bin.clone().into_os_string());
    let reg: &'static Registry = Box::leak(Box::new(Registry::new()));
    let transports = Transports {
        xdp: None,
        kernel: strahl_net::TransportKind::SendMmsg,
        core: None,
        worker_cores: Vec::new(),
        link_rate_bps: DEFAULT_LINK_BPS,
    };
    let mut media = Media::new(settings, transports, reg).unwrap();
    let source = |reg: &Registry| {
        ["none", "tone", "pipewire"]
            .into_iter()
            .find(|l| {
                Registry::label_index(Metric::AudioSource, l)
                    .is_some_and(|i| reg.get_at(Metric::AudioSource, i) == 1)
            })
            .unwrap_or("?")
    };
    // One session: built, its audio choice read back, stopped; the events it left.
    let mut session = |id: u64| {
        let ports = (common::free_port(), common::free_port());
        let s = common::session(id, "127.0.0.1:40000".parse().unwrap(), Some([7; 16]), ports);
        media.start(&s).unwrap();
        let label = media.settings().audio.label();
        media.stop(id);
        let audio: Vec<_> = media
            .poll_events()
            .into_iter()
            .filter_map(|e| match e {
                Event::Detected(d) if d.subsystem == Subsystem::Audio => Some(d),
                _ => None,
            })
            .collect();
        (label, audio)
    };
    let gone = format!(
        "test tone ([audio] source = \"auto\": no PipeWire at {} (from [audio] \
         pipewire_socket)",
        socket.display()
    );

    let (label, events) = session(1);
    assert_eq!((label, source(reg)), ("tone", "tone"));
    assert!(events.is_empty(), "nothing changed: {events:?}");

    // The desktop user logs in: its PipeWire listens.
    let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let (label, events) = session(2);
    assert_eq!((label, source(reg)), ("pipewire", "pipewire"));
    let [d] = events.as_slice() else {
        panic!("one Detected for the change: {events:?}")
    };
    assert_eq!(d.choice, "pipewire");
    assert!(
        d.reason.starts_with(
            "PipeWire, the default sink's monitor ([audio] source = \"auto\": reachable; "
        ) && d.reason.contains(&format!(
            "{} on {}, from [audio] pipewire_socket)",
            bin.join("pw-record").display(),
            socket.display()
        )),
        "{}",
        d.reason
    );
    let (label, events) = session(3);
    assert_eq!(label, "pipewire");
    assert!(events.is_empty(), "announced once: {events:?}");

    // Logged out: the next session streams the tone again, and the status page says why.
    drop(listener);
    std::fs::remove_file(&socket).unwrap();
    let (label, events) = session(4);
    assert_eq!((label, source(reg)), ("tone", "tone"));
    let [d] = events.as_slice() else {
        panic!("one Detected for the change: {events:?}")
    };
    assert!(d.reason.starts_with(&gone), "{}", d.reason);
}

#[test]
fn named_transport_that_is_refused_is_fatal() {
    if let Err(why) = can_setpriv() {
        return skip("named_transport_that_is_refused_is_fatal", &why);
    }
    let dir = Dir::new("named");
    let (lines, code) = run_as_nobody(
        &dir,
        Some("[dataplane]\ntransport = \"af_xdp\"\n"),
        "listening for the control plane",
    );
    let all = lines.join("\n");
    assert_eq!(code, Some(1), "must exit 1:\n{all}");
    assert!(all.contains("not falling back"), "{all}");
    assert!(!all.contains("listening for the control plane"), "{all}");
}

/// As root inside a namespace with a veth pair, `auto` on the veth picks AF_XDP (copy mode on
/// veth) and says so in its one transport line — without sending a packet: the peer side's
/// receive counter is the same before and after start-up (IPv6 is off on the pair so the
/// kernel's own neighbour discovery does not count).
#[test]
fn privileged_data_plane_in_a_namespace_picks_af_xdp_on_veth() {
    use strahl_net::testbed::{VethPair, skip as net_skip};
    let pair = match VethPair::create("dps") {
        Ok(p) => p,
        Err(r) => return net_skip("privileged_data_plane_in_a_namespace_picks_af_xdp", &r),
    };
    let dir = Dir::new("root");
    for (ns, ifname) in [(&pair.ns_a, &pair.if_a), (&pair.ns_b, &pair.if_b)] {
        let st = Command::new("ip")
            .args(["netns", "exec", ns, "sysctl", "-qw"])
            .arg(format!("net.ipv6.conf.{ifname}.disable_ipv6=1"))
            .status()
            .expect("sysctl");
        assert!(st.success(), "disable IPv6 on {ifname}");
    }
    let rx_b = || {
        let ifname = pair.if_b.clone();
        strahl_net::testbed::in_netns(&pair.ns_b, move || {
            let text = std::fs::read_to_string("/proc/thread-self/net/dev").unwrap();
            text.lines()
                .find_map(|l| {
                    let (name, rest) = l.split_once(':')?;
                    (name.trim() == ifname)
                        .then(|| rest.split_whitespace().nth(1)?.parse::<u64>().ok())?
                })
                .expect("peer interface in /proc/net/dev")
        })
        .expect("read the peer's counters")
    };
    let rx_before = rx_b();
    let (lines, _, mut child) = start_and_read(
        Command::new("ip")
            .args(["netns", "exec", &pair.ns_a])
            .arg(env!("CARGO_BIN_EXE_strahl-dataplane"))
            .arg("--socket")
            .arg(dir.0.join("dp.sock"))
            .args(["--interface", &pair.if_a])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
        "listening for the control plane",
    );
    let _ = child.kill();
    let _ = child.wait();
    let all = lines.join("\n");
    let line = lines
        .iter()
        .find(|l| l.contains("net: transport "))
        .unwrap_or_else(|| panic!("no transport line:\n{all}"));
    assert!(
        line.contains(&format!("transport af_xdp on {}", pair.if_a)),
        "{line}"
    );
    assert!(line.contains("nothing sent at start"), "{line}");
    assert!(all.contains("privileges: dropped"), "{all}");
    assert_eq!(
        rx_b(),
        rx_before,
        "the data plane sent packets while starting:\n{all}"
    );
}

/// The scheduling policy and real-time priority of `pid`'s thread named `name` (/proc stat
/// fields 41 and 40, counted after the command's closing parenthesis).
fn thread_sched(pid: u32, name: &str) -> Option<(u32, u32)> {
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let dir = task.ok()?.path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if comm.trim() != name {
            continue;
        }
        let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
        let after = &stat[stat.rfind(')')? + 2..];
        let f: Vec<&str> = after.split_whitespace().collect();
        // `after` starts at field 3 (state): field n is f[n - 3].
        let rt_priority = f.get(40 - 3)?.parse().ok()?;
        let policy = f.get(41 - 3)?.parse().ok()?;
        return Some((policy, rt_priority));
    }
    None
}

#[test]
fn realtime_priority_reaches_the_tx_tile_or_is_refused_with_the_fix() {
    const CONFIG: &str = "[dataplane]\nrealtime_priority = 5\n";
    if let Err(why) = can_setpriv() {
        return skip("realtime_priority_reaches_the_tx_tile", &why);
    }
    // As root: allowed (RLIMIT_RTPRIO raised, or CAP_SYS_NICE kept where it cannot be).
    let dir = Dir::new("rt-root");
    let p = dir.0.join("strahl.toml");
    std::fs::write(&p, CONFIG).unwrap();
    let (lines, _, mut child) = start_and_read(
        Command::new(env!("CARGO_BIN_EXE_strahl-dataplane"))
            .arg("--socket")
            .arg(dir.0.join("dp.sock"))
            .args(["--interface", "lo"])
            .arg("--config")
            .arg(&p)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
        "listening for the control plane",
    );
    // The tile thread takes its priority as it starts: look for up to 3 s.
    let mut sched = None;
    for _ in 0..30 {
        sched = thread_sched(child.id(), "strahl-tx");
        if sched == Some((1, 5)) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    let all = lines.join("\n");
    assert!(all.contains("listening for the control plane"), "{all}");
    let line = lines
        .iter()
        .find(|l| l.contains("realtime: "))
        .unwrap_or_else(|| panic!("no realtime line:\n{all}"));
    assert!(
        line.contains("media threads at SCHED_FIFO 5 ([dataplane] realtime_priority; "),
        "{line}"
    );
    if line.contains("CAP_SYS_NICE kept") {
        assert!(all.contains("kept [CAP_SYS_NICE]"), "{all}");
    }
    assert_eq!(
        sched,
        Some((1, 5)),
        "the tx tile's policy and priority:\n{all}"
    );

    // As nobody without `ulimit -r`: refused, with the fix; the data plane still comes up.
    let dir = Dir::new("rt-nobody");
    let (lines, code) = run_as_nobody(&dir, Some(CONFIG), "listening for the control plane");
    let all = lines.join("\n");
    assert_eq!(code, None, "still running when it listened:\n{all}");
    let line = lines
        .iter()
        .find(|l| l.contains("realtime: "))
        .unwrap_or_else(|| panic!("no realtime line:\n{all}"));
    assert!(line.contains("SCHED_FIFO 5 refused ("), "{line}");
    assert!(line.contains("LimitRTPRIO=10"), "{line}");
    assert!(line.contains("media threads at normal priority"), "{line}");
}
