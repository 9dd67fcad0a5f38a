//! The appliance booted for real (issue 12 item 5): one VM lab guest whose PID 1 is systemd, on
//! this machine's root with strahl's files added by `image/install.sh` from
//! `image/install.manifest` (what the Containerfile runs, so nothing can drift), the appliance's
//! kernel arguments (`kernel-config/kargs.d`) on the guest kernel's command line, and a
//! virtio-net NIC on a tap in a namespace this test makes. Checked:
//! - both services active as their own users (created by systemd-sysusers at boot), the data
//!   plane with exactly its four capabilities in the bounding set and none left in any thread
//!   after its self-drop (the journal says it dropped 4), the control plane with none at all;
//! - the data plane alone in the strahl-audio group (the desktop session's PipeWire socket);
//!   nobody is logged in, so its start-up line says `auto` streams the tone, naming the
//!   desktop user's socket it looked for;
//! - the KMS capture helper's unit (enabled as an operator would; the guest has a virtio-gpu
//!   whose console framebuffer it captures): active as its own user with CAP_SYS_ADMIN as its
//!   only capability, its socket in /run/strahl; a peer running as the control plane's user is
//!   refused without a frame, one running as the data plane's user gets the picture's dmabuf;
//! - every sysctl of `kernel-config/sysctl.d` applied; the kargs a VM can apply (nohz_full,
//!   rcu_nocbs, hugepages, isolcpus — and the data plane's plan puts its tx tile on the
//!   isolated CPU); `uinput` loaded by modules-load.d;
//! - the state directory, runtime directory and sockets where the units say, the config copied
//!   to /etc by tmpfiles.d, the console snippet linked from /etc/issue.d showing the setup code
//!   that the journal logged;
//! - from the host side: `/healthz` over the guest's network, then the real Moonlight core
//!   pairs (PIN through the real `strahl-control pin --url`) and streams a few small frames;
//! - input end to end (issue 11's proof): while streaming, the core sends Ctrl+K (the modifier
//!   only as the packet's bit), a relative move, the right button, two wheel notches and a
//!   gamepad (arrival, then two button/stick/trigger states and rest); a reader in the guest
//!   (`guest/input-reader.py`, root, as a game would) gets exactly the evdev (type, code,
//!   value)s from the `strahl keyboard and mouse` and `strahl gamepad` nodes (KEY_LEFTCTRL
//!   pressed around KEY_K, REL_X/REL_Y, BTN_RIGHT, REL_WHEEL_HI_RES + REL_WHEEL, BTN_SOUTH/
//!   BTN_EAST/BTN_TL, the d-pad as ABS_HAT0Y, sticks with Y flipped, triggers on ABS_Z/ABS_RZ),
//!   nothing from the absolute pointer; no strahl device exists before the session; while they
//!   exist the only holder of /dev/uinput (root:strahl-input 0660) is the control plane's
//!   main process, as its user with no capability, one fd per device; and every node is gone
//!   within [`GONE_WITHIN_S`] of the stream's end.
//!
//! The guest-side half is `guest/appliance-setup.sh` (before systemd) and
//! `guest/appliance-report.sh` (the job unit: writes its findings into a shared directory,
//! runs the input reader, and holds the guest up until the host side is done). One boot,
//! ~1–2 min under TCG plus the stream.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use strahl_vmlab::harness::{Case, run};
use strahl_vmlab::{Gpu, GuestNet, GuestSpec, Lab, NetNs, repo_root};

const HOST_CIDR: &str = "10.201.0.1/24";
const GUEST_CIDR: &str = "10.201.0.2/24";
const GUEST: &str = "10.201.0.2";
/// CAP_NET_ADMIN (12), CAP_NET_RAW (13), CAP_IPC_LOCK (14), CAP_BPF (39): the unit's set.
const DATAPLANE_CAPS: &str = "0000008000007000";
const NO_CAPS: &str = "0000000000000000";
/// CAP_SYS_ADMIN (21): the KMS capture helper's one capability.
const KMS_HELPER_CAPS: &str = "0000000000200000";
/// The CPU kernel-config/kargs.d isolates for the tx tile. (This boot found that the earlier
/// `isolcpus=managed_irq,domain,N` isolated nothing: the kernel reads a leading letter there as
/// another flag.)
const TX_CPU: &str = "1";
/// Small stream: TCG encodes slowly.
const FRAMES: u32 = 60;

fn main() -> std::process::ExitCode {
    run(&[Case {
        name: "appliance_boots_under_systemd_and_streams_to_moonlight",
        run: appliance_boots_under_systemd_and_streams_to_moonlight,
    }])
}

/// strahl's binaries (the install manifest's `@bin/`s): `$STRAHL_BIN_DIR` (as the e2e suite
/// reads it), else built with this test's cargo and profile (the test profile has already built
/// them for their own tests, so CI compiles nothing twice).
fn bin_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("STRAHL_BIN_DIR") {
        return PathBuf::from(d);
    }
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap().to_path_buf();
    let target = profile_dir.parent().unwrap();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut c = Command::new(cargo);
    c.current_dir(repo_root())
        .args([
            "build",
            "--locked",
            "-p",
            "strahl-dataplane",
            "-p",
            "strahl-control",
            "-p",
            "strahl-capture",
        ])
        .args(["--bin", "strahl-dataplane", "--bin", "strahl-control"])
        // install.sh installs every @bin/ of the manifest, the (disabled) KMS helper too.
        .args(["--bin", "strahl-kms-helper"])
        .arg("--target-dir")
        .arg(target)
        .stdout(Stdio::null());
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        c.arg("--release");
    } else {
        c.args(["--profile", "test"]);
    }
    let st = c.status().expect("cargo build");
    assert!(st.success(), "building strahl's binaries failed");
    profile_dir
}

/// Every `"..."` string of each kargs.d file's `kargs = [...]`.
fn appliance_kargs() -> Vec<String> {
    let dir = repo_root().join("kernel-config/kargs.d");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let t: toml::Table = std::fs::read_to_string(&f).unwrap().parse().unwrap();
        for k in t["kargs"].as_array().unwrap() {
            out.push(k.as_str().unwrap().to_owned());
        }
    }
    out
}

/// `key = value` lines of the appliance's sysctl.d files (a leading `-` dropped).
fn appliance_sysctls() -> Vec<(String, String)> {
    let dir = repo_root().join("kernel-config/sysctl.d");
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        for l in std::fs::read_to_string(e.unwrap().path()).unwrap().lines() {
            let l = l.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            let (k, v) = l.split_once('=').unwrap();
            out.push((
                k.trim().trim_start_matches('-').to_owned(),
                v.trim().to_owned(),
            ));
        }
    }
    out
}

fn report(path: &Path) -> BTreeMap<String, String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Runs `cmd` to completion within `limit` (killed after); returns (status, stdout, stderr).
fn run_bounded(mut cmd: Command, limit: Duration) -> (Option<i32>, String, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s.code();
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut out = String::new();
    let mut err = String::new();
    use std::io::Read;
    let _ = child.stdout.take().unwrap().read_to_string(&mut out);
    let _ = child.stderr.take().unwrap().read_to_string(&mut err);
    (status, out, err)
}

/// The driver's JSON line for `step`.
fn step(out: &str, name: &str) -> Option<serde_json::Value> {
    out.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["step"] == name)
}

fn appliance_boots_under_systemd_and_streams_to_moonlight(lab: &Lab) {
    // The guest's NIC lives in a namespace this test makes: root only.
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().next().map(str::to_owned))
        })
        .unwrap_or_default();
    if uid != "0" {
        strahl_vmlab::harness::skip("needs root (network namespace and tap for the guest)");
    }
    let bin = bin_dir();
    let python = strahl_testkit::python::moonlight_python().unwrap_or_else(|e| panic!("{e}"));
    let repo = repo_root().canonicalize().unwrap();
    // The same checkout as the guest's scripts (strahl-testkit's copy of this path is fixed
    // wherever its library was compiled).
    let driver = repo.join("crates/test/moonlight/driver.py");
    // Shared with the guest: under the target directory, which the lab shares read-write.
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("vmlab-appliance");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let dir = dir.canonicalize().unwrap();
    let setup = dir.join("setup.sh");
    std::fs::write(
        &setup,
        format!(
            "exec bash {} {} {}\n",
            repo.join("crates/test/vmlab/guest/appliance-setup.sh")
                .display(),
            repo.display(),
            bin.canonicalize().unwrap().display()
        ),
    )
    .unwrap();
    let ns = NetNs::new("appl").expect("network namespace (root and iproute2 needed)");
    let kargs = appliance_kargs();
    let mut spec = GuestSpec::new([
        "/bin/bash".into(),
        repo.join("crates/test/vmlab/guest/appliance-report.sh"),
        dir.clone(),
    ])
    .systemd()
    .setup(&setup)
    .net(GuestNet::new(ns.name(), HOST_CIDR, GUEST_CIDR))
    // A display for the KMS capture helper (its console framebuffer is the picture).
    .gpu(Gpu::Virtio)
    .keep(dir.join("job"))
    .timeout_secs(900);
    for k in &kargs {
        spec = spec.kernel_arg(k);
    }
    let lab2 = lab.clone();
    let guest = std::thread::spawn(move || lab2.run(&spec));

    // The guest's findings, once strahl is up (bounded: boot + start-up under TCG).
    let report_path = dir.join("report.txt");
    let t0 = Instant::now();
    while !report_path.exists() {
        assert!(
            !guest.is_finished(),
            "the guest ended before reporting: {:?}",
            guest.join().unwrap()
        );
        assert!(
            t0.elapsed() < Duration::from_secs(600),
            "no report after 600 s"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    eprintln!(
        "appliance up and reported after {:.0} s",
        t0.elapsed().as_secs_f64()
    );
    let r = report(&report_path);
    let journal = std::fs::read_to_string(dir.join("journal.txt")).unwrap_or_default();
    let ctx = format!("report:\n{r:#?}\njournal:\n{journal}");

    // From the host side, over the guest's network: /healthz, then the real Moonlight core.
    let mut curl = ns.command("curl");
    curl.args(["-sS", "--max-time", "20", "-w", "\n%{http_code}"])
        .arg(format!("http://{GUEST}:47990/healthz"));
    let (_, health, health_err) = run_bounded(curl, Duration::from_secs(30));
    // First boot over the LAN: the setup code from the console sets the admin password.
    let code = journal
        .lines()
        .find_map(|l| l.split("setup code ").nth(1))
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or_else(|| panic!("no setup code in the journal: {ctx}"))
        .to_owned();
    let mut passwd = ns.command("curl");
    passwd
        .args([
            "-sS",
            "--max-time",
            "60",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ])
        .args(["-H", "Content-Type: application/json", "--data"])
        .arg(format!(
            r#"{{"password":"vmlab-appliance-password","setup_code":"{code}"}}"#
        ))
        .arg(format!("http://{GUEST}:47990/api/v1/passwd"));
    let (_, passwd_code, passwd_err) = run_bounded(passwd, Duration::from_secs(90));
    // Pairing: the operator's PIN through the status API with the admin token (read from the
    // guest's state directory), as an operator on the LAN would.
    let client = dir.join("client");
    std::fs::create_dir_all(&client).unwrap();
    let pin_script = dir.join("pin.sh");
    std::fs::write(
        &pin_script,
        format!(
            "#!/bin/sh\nexec curl -fsS --max-time 20 -H \"Authorization: Bearer $(cat {tok})\" \\\n  \
             -H 'Content-Type: application/json' --data \"{{\\\"pin\\\":\\\"$1\\\"}}\" \\\n  \
             http://{GUEST}:47990/api/v1/pin\n",
            tok = dir.join("state/status-token").display()
        ),
    )
    .unwrap();
    let pin_cmd =
        serde_json::to_string(&["/bin/sh".to_owned(), pin_script.display().to_string()]).unwrap();
    let mut pair = ns.command(&python);
    pair.arg(&driver)
        .args(["pair", "--host", GUEST, "--port", "47989", "--pin", "4711"])
        .arg("--config")
        .arg(&client)
        .args(["--pin-cmd", &pin_cmd]);
    let (pair_status, pair_out, pair_err) = run_bounded(pair, Duration::from_secs(240));
    let mut stream = ns.command(&python);
    stream
        .arg(&driver)
        .args(["stream", "--host", GUEST, "--port", "47989"])
        .arg("--config")
        .arg(&client)
        .args([
            "--width",
            "640",
            "--height",
            "360",
            "--fps",
            "30",
            "--bitrate",
            "2000",
        ])
        .args(["--frames", &FRAMES.to_string(), "--timeout", "120"])
        // Keyboard, mouse and a gamepad through the core's LiSend*, each once the guest's
        // reader (guest/input-reader.py) has the device open.
        .args(["--input", "--input-pad", "--ready-dir"])
        .arg(&dir);
    let (stream_status, stream_out, stream_err) = run_bounded(stream, Duration::from_secs(200));
    // The session is over (the driver stopped it and sent /cancel): the reader notes when it
    // sees this and ends once strahl's devices are gone (bounded by its own wait).
    std::fs::write(dir.join("stream-ended"), b"").unwrap();
    let input_path = dir.join("input-events.jsonl");
    let t_end = Instant::now();
    while !input_path.exists() && !guest.is_finished() && t_end.elapsed() < READER_WAIT {
        std::thread::sleep(Duration::from_millis(500));
    }
    std::fs::write(dir.join("host-done"), b"").unwrap();
    let out = guest
        .join()
        .unwrap()
        .unwrap_or_else(|e| panic!("guest: {e}\n{ctx}"));
    eprintln!(
        "guest boot + checks + stream: {:.0} s",
        out.elapsed.as_secs_f64()
    );
    out.assert_success();
    let journal_end = std::fs::read_to_string(dir.join("journal-end.txt")).unwrap_or_default();

    // systemd is PID 1 and brought the appliance up from the preset's enablement.
    assert_eq!(r["pid1"], "systemd", "{ctx}");
    assert_eq!(r["kernel"], lab.kernel(), "{ctx}");
    assert_eq!(r["target"], "active", "{ctx}");
    assert_eq!(r["enabled"], "enabled,enabled,enabled", "{ctx}");
    // No unit failed (strahl-nic-tune included: it tunes the guest's virtio-net NIC).
    assert_eq!(r["failed_units"], "", "{ctx}");
    // The data plane: its own user, the unit's four capabilities as the bounding set, and none
    // left in any thread once its sockets are open (it started with them: the journal says 4).
    assert_eq!(r["dataplane.active"], "active", "{ctx}");
    assert_eq!(r["dataplane.user"], "strahl-dataplane", "{ctx}");
    assert_eq!(r["dataplane.CapBnd"], DATAPLANE_CAPS, "{ctx}");
    for set in ["CapEff", "CapPrm", "CapAmb", "CapInh"] {
        assert_eq!(r[&format!("dataplane.{set}")], NO_CAPS, "{set}: {ctx}");
        assert_eq!(r[&format!("control.{set}")], NO_CAPS, "{set}: {ctx}");
    }
    assert!(
        journal.contains("privileges: dropped 4 capabilities; kept []"),
        "{ctx}"
    );
    // The box's sound: the data plane (and only it) is in the group the desktop session
    // opens its PipeWire socket to; with nobody logged in, `auto` streams the tone and names
    // the desktop user's socket it looked for.
    let groups = |k: &str| r[k].split(',').map(str::to_owned).collect::<Vec<_>>();
    assert!(
        groups("dataplane.groups").contains(&"strahl-audio".to_owned()),
        "{ctx}"
    );
    assert!(
        !groups("control.groups").contains(&"strahl-audio".to_owned()),
        "{ctx}"
    );
    assert!(
        journal.contains(
            "audio test tone ([audio] source = \"auto\": no PipeWire at \
             /run/user/1000/pipewire-0 (from the appliance's desktop user"
        ),
        "{ctx}"
    );
    // The control plane: its own user, no capability at all.
    assert_eq!(r["control.active"], "active", "{ctx}");
    assert_eq!(r["control.user"], "strahl-control", "{ctx}");
    assert_eq!(r["control.CapBnd"], NO_CAPS, "{ctx}");
    // The KMS capture helper: its own user, CAP_SYS_ADMIN alone (ambient, so held as a
    // non-root user), its socket for the planes' group; frames for the data plane's user only.
    assert_eq!(r["kms.active"], "active", "{ctx}");
    assert_eq!(r["kms.user"], "strahl-capture", "{ctx}");
    for set in ["CapBnd", "CapEff", "CapPrm", "CapAmb"] {
        assert_eq!(r[&format!("kms.{set}")], KMS_HELPER_CAPS, "{set}: {ctx}");
    }
    // The owner is whichever unit sharing RuntimeDirectory=strahl systemd set up last (it
    // re-owns the directory's tree to that unit's user); access goes by group and mode.
    assert!(
        r["path./run/strahl/kms.sock"].ends_with(":strahl 660 socket"),
        "{ctx}"
    );
    assert_eq!(r["kms.peer.strahl-control"], "msgs=0 fds=0", "{ctx}");
    let dp_peer = &r["kms.peer.strahl-dataplane"];
    assert!(
        dp_peer.starts_with("msgs=1 fds=") && !dp_peer.ends_with("fds=0"),
        "the data plane's user got no frame: {ctx}"
    );
    assert!(journal.contains("refused a peer running as uid"), "{ctx}");
    // It got ready once, without failing first (udev's late permissions on the card are
    // waited out), and before the data plane started (Type=notify + Before=).
    assert!(
        !journal.contains("Failed to start strahl-kms-helper"),
        "{ctx}"
    );
    let at = |needle: &str| {
        journal
            .find(needle)
            .unwrap_or_else(|| panic!("{needle:?} not in the journal: {ctx}"))
    };
    assert!(
        at("strahl-kms-helper: INFO: capturing ") < at("Started strahl-dataplane.service"),
        "the data plane started before the helper was ready: {ctx}"
    );

    // kernel-config: every sysctl; the kargs this VM can apply; uinput from modules-load.d.
    for (k, v) in appliance_sysctls() {
        assert_eq!(r[&format!("sysctl.{k}")], v, "sysctl {k}: {ctx}");
    }
    let cmdline = &r["cmdline"];
    for k in &kargs {
        assert!(
            cmdline.split(' ').any(|a| a == k),
            "karg {k} not passed: {ctx}"
        );
    }
    assert_eq!(r["cpu.isolated"], TX_CPU, "isolcpus: {ctx}");
    assert_eq!(r["cpu.nohz_full"], TX_CPU, "{ctx}");
    // The data plane follows the kernel: its tx tile alone on the isolated CPU (its own
    // affinity mask no longer contains that CPU, so it reads sysfs, not available_parallelism).
    assert!(
        journal.contains(&format!("kernel-isolated: [{TX_CPU}]"))
            && journal.contains(&format!("(Tx, {TX_CPU})")),
        "the plan does not put the tx tile on CPU {TX_CPU}: {ctx}"
    );
    assert_eq!(r["hugepages"], "32", "{ctx}");
    assert_eq!(r["module.uinput"], "1", "{ctx}");
    // The control plane's sandbox (PrivateDevices= + BindPaths=-/dev/uinput) lets it open uinput.
    assert!(journal.contains("input sink: uinput"), "{ctx}");

    // Where the units say: state (0700, the control plane's), runtime directory shared by the
    // group, the IPC socket 0660, the admin socket, the config copied once by tmpfiles.d.
    assert_eq!(
        r["path./var/lib/strahl"], "strahl-control:strahl 700 directory",
        "{ctx}"
    );
    assert_eq!(
        r["path./run/strahl"].split(' ').nth(1),
        Some("770"),
        "{ctx}"
    );
    assert!(r["path./run/strahl"].contains(":strahl "), "{ctx}");
    assert_eq!(
        r["path./run/strahl/dataplane.sock"], "strahl-dataplane:strahl 660 socket",
        "{ctx}"
    );
    assert!(
        r["path./run/strahl/control.sock"].ends_with(" socket"),
        "{ctx}"
    );
    assert_eq!(
        r["path./etc/strahl/strahl.toml"], "root:root 644 regular file",
        "{ctx}"
    );
    assert!(r["state_files"].contains("status-token"), "{ctx}");

    // The console: /etc/issue.d links the snippet, which shows the URL and the setup code the
    // journal logged.
    assert_eq!(
        r["path./etc/issue.d/strahl.issue"], "/run/strahl/console.issue",
        "{ctx}"
    );
    let issue = std::fs::read_to_string(dir.join("console.issue")).unwrap();
    assert!(issue.contains(&format!("http://{GUEST}:47990/")), "{issue}");
    assert_eq!(code.len(), 9, "{code}");
    assert!(
        issue.contains(&code),
        "console shows {issue:?}, journal {code}"
    );
    // The code set the password over the network and is used up: the console drops it.
    assert_eq!(
        passwd_code, "200",
        "POST /api/v1/passwd with the console's code: {passwd_err}"
    );
    let issue_end = std::fs::read_to_string(dir.join("console-end.issue")).unwrap();
    assert!(!issue_end.contains(&code), "{issue_end}");
    assert!(
        issue_end.contains(&format!("http://{GUEST}:47990/")),
        "{issue_end}"
    );

    // The host side reached it.
    assert!(
        health.ends_with("\n200"),
        "/healthz: {health:?} {health_err}"
    );
    let ctx_pair = format!("pair {pair_status:?}:\n{pair_out}\n{pair_err}\n{journal_end}");
    assert_eq!(
        step(&pair_out, "pair").map(|p| p["ok"] == true),
        Some(true),
        "{ctx_pair}"
    );
    let ctx_stream =
        format!("stream {stream_status:?}:\n{stream_out}\n{stream_err}\n{journal_end}");
    let v = step(&stream_out, "video").unwrap_or_else(|| panic!("no video step: {ctx_stream}"));
    eprintln!("stream from the guest: {v}");
    assert!(
        v["frames"].as_u64() >= Some(u64::from(FRAMES)),
        "{ctx_stream}"
    );
    assert_eq!(v["decoded"], v["frames"], "{ctx_stream}");
    assert_eq!(v["gap_count"], 0, "{ctx_stream}");
    assert_eq!(v["lost"], 0, "{ctx_stream}");
    assert_eq!(v["shapes"], serde_json::json!([[640, 360]]), "{ctx_stream}");
    // The synthetic source's frame counter, read back from the decoded pixels.
    assert_eq!(v["pixel_unreadable"], 0, "{ctx_stream}");
    assert_eq!(v["pixel_non_increasing"], 0, "{ctx_stream}");

    check_input(&dir, &r, &stream_out, &ctx_stream);
}

// Linux codes, written out from linux/input-event-codes.h (not from the sink's tables, so a
// wrong table entry fails here).
const EV_KEY: u16 = 1;
const EV_REL: u16 = 2;
const EV_ABS: u16 = 3;
const KEY_LEFTCTRL: u16 = 29;
const KEY_K: u16 = 37;
const BTN_RIGHT: u16 = 0x111;
const BTN_SOUTH: u16 = 0x130;
const BTN_EAST: u16 = 0x131;
const BTN_TL: u16 = 0x136;
const REL_X: u16 = 0x00;
const REL_Y: u16 = 0x01;
const REL_WHEEL: u16 = 0x08;
const REL_WHEEL_HI_RES: u16 = 0x0b;
const ABS_X: u16 = 0x00;
const ABS_Y: u16 = 0x01;
const ABS_Z: u16 = 0x02;
const ABS_RX: u16 = 0x03;
const ABS_RY: u16 = 0x04;
const ABS_RZ: u16 = 0x05;
const ABS_HAT0Y: u16 = 0x11;
/// The devices strahl-input's uinput sink makes for this client (crates/cp/input/src/uinput.rs).
const KBD: &str = "strahl keyboard and mouse";
const ABS_POINTER: &str = "strahl absolute pointer";
const PAD: &str = "strahl gamepad";
/// How long the host waits, after the stream process ended, for the guest's reader to see every
/// strahl device gone and write its record (its own wait is 60 s; TCG is slow).
const READER_WAIT: Duration = Duration::from_secs(120);
/// The bound on a device's removal after the session ended (guest clock: from the reader
/// noticing the host's stream-ended file, which is written after the client stopped, so the
/// removal may well come first).
const GONE_WITHIN_S: f64 = 20.0;

/// The reader's records (guest/input-reader.py's contract).
fn input_records(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("input-events.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Device `name`'s events as (type, code, value), SYN_REPORTs left out.
fn device_events(recs: &[serde_json::Value], name: &str) -> Vec<(u16, u16, i32)> {
    recs.iter()
        .filter(|r| r["ev"] == "event" && r["name"] == name && r["type"] != 0)
        .map(|r| {
            let n = |k: &str| r[k].as_i64().unwrap();
            (n("type") as u16, n("code") as u16, n("value") as i32)
        })
        .collect()
}

/// The join of the two input halves: what the real Moonlight core sent (`stream --input
/// --input-pad`) came out of the guest's /dev/input/event* as the right evdev codes, from
/// devices the unprivileged control plane made, and every device went when the session ended.
fn check_input(dir: &Path, r: &BTreeMap<String, String>, stream_out: &str, ctx_stream: &str) {
    let recs = input_records(dir);
    let reader_err = std::fs::read_to_string(dir.join("input-reader.err")).unwrap_or_default();
    let ctx = format!("{ctx_stream}\ninput-reader.err: {reader_err}\nrecords:\n{recs:#?}");
    assert!(
        !recs.is_empty(),
        "no input-events.jsonl from the guest: {ctx}"
    );
    let input = step(stream_out, "input").unwrap_or_else(|| panic!("no input step: {ctx}"));
    for (name, rc) in input["rcs"].as_object().unwrap() {
        assert_eq!(rc, 0, "LiSend {name}: {ctx}");
    }
    // The reader had each device open before its input was sent.
    assert_eq!(
        input["ready"],
        serde_json::json!({"input": true, "pad": true}),
        "{ctx}"
    );
    // uinput's node for the control plane's group only (udev/70-strahl.rules).
    assert_eq!(
        r["path./dev/uinput"], "root:strahl-input 660 character special file",
        "{ctx}"
    );
    // No device before a session; each of ours made once.
    let first = &recs[0];
    assert_eq!(first["ev"], "start", "{ctx}");
    assert_eq!(first["present"], serde_json::json!([]), "{ctx}");
    let appeared: Vec<&str> = recs
        .iter()
        .filter(|r| r["ev"] == "appeared")
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    let mut sorted = appeared.clone();
    sorted.sort();
    assert_eq!(sorted, [ABS_POINTER, PAD, KBD], "{ctx}");

    // Keyboard and mouse. First, when the reader had the node open in time, the core's own
    // wake-up wiggle at the stream's start (LiStartConnection moves +1,+1 then -1,-1: seen in
    // this boot). Then ours: Ctrl+K (the packet's modifier bit, no Ctrl key sent: Ctrl pressed
    // around the K), the relative move, the right button, two wheel notches (hi-res, then whole).
    let kbd = device_events(&recs, KBD);
    let wiggle = [
        (EV_REL, REL_X, 1),
        (EV_REL, REL_Y, 1),
        (EV_REL, REL_X, -1),
        (EV_REL, REL_Y, -1),
    ];
    let ours = [&wiggle[..], &wiggle[2..]]
        .into_iter()
        .find_map(|w| kbd.strip_prefix(w))
        .unwrap_or(&kbd);
    assert_eq!(
        ours,
        [
            (EV_KEY, KEY_LEFTCTRL, 1),
            (EV_KEY, KEY_K, 1),
            (EV_KEY, KEY_LEFTCTRL, 0),
            (EV_KEY, KEY_K, 0),
            (EV_REL, REL_X, 123),
            (EV_REL, REL_Y, -77),
            (EV_KEY, BTN_RIGHT, 1),
            (EV_KEY, BTN_RIGHT, 0),
            (EV_REL, REL_WHEEL_HI_RES, 240),
            (EV_REL, REL_WHEEL, 2),
        ],
        "{ctx}"
    );
    assert_eq!(device_events(&recs, ABS_POINTER), [], "{ctx}");
    // The gamepad (Xbox layout): A+LB, sticks (Y flipped: up is negative; -32768 clamps to
    // 32767), triggers; then B + d-pad up as the hat; then rest. Unchanged axes are not
    // reported (the kernel drops repeats).
    assert_eq!(
        device_events(&recs, PAD),
        [
            (EV_KEY, BTN_SOUTH, 1),
            (EV_KEY, BTN_TL, 1),
            (EV_ABS, ABS_X, 1000),
            (EV_ABS, ABS_Y, -20000),
            (EV_ABS, ABS_RX, -32768),
            (EV_ABS, ABS_RY, 32767),
            (EV_ABS, ABS_Z, 100),
            (EV_ABS, ABS_RZ, 200),
            (EV_KEY, BTN_SOUTH, 0),
            (EV_KEY, BTN_EAST, 1),
            (EV_KEY, BTN_TL, 0),
            (EV_ABS, ABS_HAT0Y, -1),
            (EV_ABS, ABS_X, -1000),
            (EV_ABS, ABS_Y, 0),
            (EV_ABS, ABS_RX, 0),
            (EV_ABS, ABS_RY, -32767),
            (EV_ABS, ABS_Z, 0),
            (EV_ABS, ABS_RZ, 255),
            (EV_KEY, BTN_EAST, 0),
            (EV_ABS, ABS_HAT0Y, 0),
            (EV_ABS, ABS_X, 0),
            (EV_ABS, ABS_RY, 0),
            (EV_ABS, ABS_RZ, 0),
        ],
        "{ctx}"
    );

    // Made by the unprivileged control plane: while the pad existed, the only process with
    // /dev/uinput open was the unit's main process, as its own user with no capability, one fd
    // per device.
    let holders = recs
        .iter()
        .find(|r| r["ev"] == "holders")
        .unwrap_or_else(|| panic!("no holders record: {ctx}"));
    assert_eq!(
        holders["devices"],
        serde_json::json!([ABS_POINTER, PAD, KBD]),
        "{ctx}"
    );
    eprintln!("strahl's nodes while the pad existed: {}", holders["stat"]);
    let pid: u64 = r["control.pid"].parse().unwrap();
    assert_eq!(
        holders["holders"],
        serde_json::json!([{
            "pid": pid,
            "comm": "strahl-control",
            "user": "strahl-control",
            "cap_eff": NO_CAPS,
            "fds": 3,
        }]),
        "{ctx}"
    );

    // Gone when the session ended: every device's node left, within the bound.
    let ended = recs
        .iter()
        .find(|r| r["ev"] == "ended_seen")
        .and_then(|r| r["t"].as_f64())
        .unwrap_or_else(|| panic!("the reader never saw the stream end: {ctx}"));
    for name in [KBD, ABS_POINTER, PAD] {
        let gone = recs
            .iter()
            .find(|r| r["ev"] == "gone" && r["name"] == name)
            .and_then(|r| r["t"].as_f64())
            .unwrap_or_else(|| panic!("{name} never went: {ctx}"));
        eprintln!("{name}: gone {:+.2} s from the stream's end", gone - ended);
        assert!(gone - ended <= GONE_WITHIN_S, "{name}: {ctx}");
    }
    let done = recs.last().unwrap();
    assert_eq!(done["ev"], "done", "{ctx}");
    assert_eq!(done["why"], "all gone", "{ctx}");
    assert_eq!(done["left"], serde_json::json!([]), "{ctx}");
}
