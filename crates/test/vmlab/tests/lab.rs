//! Proves the VM lab itself: a guest boots the lab's stock kernel, loads modules on request,
//! sees the work tree read-write, and its output and exit status come back; a guest past its
//! timeout is killed and reported as such; the zero-copy kernel boots with a virtio-gpu and a
//! virtio-net NIC (`iommu_platform=on,disable-legacy=on`) on a tap in a namespace, the host side
//! reaches it, and on that boot the data plane streams a session through AF_XDP in zero-copy
//! mode to a receiver in the namespace (issue 11 item 8; the guest half is
//! `dataplane/tests/xdp_zero_copy_guest.rs`). Three boots (TCG: ~10 s, ~3 s, ~30–45 s here).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use strahl_vmlab::harness::{Case, run};
use strahl_vmlab::{Gpu, GuestNet, GuestSpec, Kernel, Lab, LabError, NetNs};

fn main() -> std::process::ExitCode {
    run(&[
        Case {
            name: "guest_runs_a_command_with_modules_and_returns_its_status",
            run: guest_runs_a_command_with_modules_and_returns_its_status,
        },
        Case {
            name: "guest_past_its_timeout_is_killed",
            run: guest_past_its_timeout_is_killed,
        },
        Case {
            name: "zero_copy_kernel_boots_and_streams_af_xdp_zero_copy_into_a_namespace",
            run: zero_copy_kernel_boots_and_streams_af_xdp_zero_copy_into_a_namespace,
        },
    ])
}

fn guest_runs_a_command_with_modules_and_returns_its_status(lab: &Lab) {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("vmlab-lab-test");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let marker = dir.join("written-by-guest");
    let script = format!(
        "uname -r; \
         test -c /dev/uinput && echo uinput=char-device; \
         grep -qw '^evdev' /proc/modules && echo evdev=loaded; \
         echo pid1=$(cat /proc/1/comm); \
         echo from-guest > {}; \
         echo to-stderr >&2; \
         exit 7",
        marker.display()
    );
    let out = lab
        .run(
            &GuestSpec::shell(&script)
                .modules(&["uinput", "evdev"])
                .timeout_secs(150),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!("guest boot + command: {:.1} s", out.elapsed.as_secs_f64());
    let lines: Vec<&str> = out.stdout.lines().collect();
    // A non-zero status comes back as it is, with both streams kept apart.
    assert_eq!(
        out.status, 7,
        "stdout:\n{}\nstderr:\n{}",
        out.stdout, out.stderr
    );
    assert_eq!(lines.first().copied(), Some(lab.kernel()), "{}", out.stdout);
    let host_release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert_ne!(
        host_release.trim(),
        lab.kernel(),
        "the guest must run its own kernel"
    );
    assert!(lines.contains(&"uinput=char-device"), "{}", out.stdout);
    assert!(lines.contains(&"evdev=loaded"), "{}", out.stdout);
    // Stage 2 ran the command (no systemd in this mode): PID 1 is bash.
    assert!(lines.contains(&"pid1=bash"), "{}", out.stdout);
    assert!(
        out.stderr.lines().any(|l| l == "to-stderr"),
        "{}",
        out.stderr
    );
    assert!(!out.stdout.contains("to-stderr"));
    // The work tree (here: the target dir under it) is shared read-write.
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "from-guest\n");
}

fn guest_past_its_timeout_is_killed(lab: &Lab) {
    let t0 = std::time::Instant::now();
    match lab.run(&GuestSpec::shell("sleep 600").timeout_secs(3)) {
        Err(LabError::TimedOut { .. }) => {}
        other => panic!("expected a timeout, got {other:?}"),
    }
    // Bounded: the runner kills QEMU at 3 s; allow for the runner's start and QEMU's exit.
    assert!(t0.elapsed() < Duration::from_secs(20), "{:?}", t0.elapsed());
}

/// Datagrams from distinct source ports the receiver sends the guest (spread over its queues).
const FLOWS: u64 = 64;

/// The guest half of the zero-copy stream: the data plane's test binary
/// `xdp_zero_copy_guest`, built (or found up to date) with this test's cargo, profile and target
/// directory — the guest sees that directory at the same path.
fn zero_copy_guest_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap().to_path_buf();
    let target = profile_dir.parent().unwrap();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut c = Command::new(cargo);
    c.current_dir(strahl_vmlab::repo_root())
        .args(["test", "--locked", "--no-run", "--message-format=json"])
        .args(["-p", "strahl-dataplane", "--test", "xdp_zero_copy_guest"])
        .arg("--target-dir")
        .arg(target)
        .stderr(Stdio::inherit());
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        c.arg("--release");
    }
    let out = c.output().expect("cargo test --no-run");
    assert!(out.status.success(), "building xdp_zero_copy_guest failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["target"]["name"] == "xdp_zero_copy_guest")
        .find_map(|v| v["executable"].as_str().map(PathBuf::from))
        .expect("cargo named no xdp_zero_copy_guest executable")
}

/// `key=value` lines of the guest's report (the first of each key).
fn value<'a>(stdout: &'a str, key: &str) -> Option<&'a str> {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
}

/// The text between `<tag>_begin` and `<tag>_end` lines.
fn section<'a>(stdout: &'a str, tag: &str) -> &'a str {
    let begin = format!("{tag}_begin\n");
    let Some(start) = stdout.find(&begin) else {
        return "";
    };
    let rest = &stdout[start + begin.len()..];
    rest.find(&format!("{tag}_end"))
        .map_or(rest, |e| &rest[..e])
}

fn zero_copy_kernel_boots_and_streams_af_xdp_zero_copy_into_a_namespace(lab: &Lab) {
    let Some(zc) = lab.zc_kernel() else {
        panic!("setup installed no zero-copy (trixie-backports) kernel");
    };
    if !std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
    {
        strahl_vmlab::harness::skip("needs root (network namespace and tap for the guest)");
    }
    let guest_test = zero_copy_guest_binary();
    let ns = NetNs::new("lab").expect("network namespace");
    // The guest answers one TCP connection from the host side (its peer in the namespace), then
    // runs the data plane's zero-copy stream to that peer.
    let script = format!(
        "uname -r; ls /dev/dri; ip -br -4 addr show dev eth0; \
         ethtool -l eth0 | awk '/^Combined/ {{print \"combined=\" $2}}'; \
         timeout 60 python3 -c 'import socket; s = socket.create_server((\"0.0.0.0\", 7001)); \
         c, a = s.accept(); c.sendall(b\"hello from the guest\\n\"); print(\"peer=\" + a[0])' \
         && exec {} --ignored --exact af_xdp_zero_copy_streams_a_session_to_the_host_side \
         --nocapture --test-threads 1",
        guest_test.display()
    );
    let mut net = GuestNet::new(ns.name(), "10.201.0.1/24", "10.201.0.2/24");
    // virtio-net's AF_XDP zero-copy needs VIRTIO_F_ACCESS_PLATFORM (vm-lab.md §5).
    net.nic_opts = Some("iommu_platform=on,disable-legacy=on".to_owned());
    let spec = GuestSpec::new(["/bin/bash", "-c", script.as_str()])
        .kernel(Kernel::ZeroCopy)
        .gpu(Gpu::Virtio)
        .net(net)
        .env("STRAHL_ZC_IF", "eth0")
        .env("STRAHL_ZC_PEER", "10.201.0.1")
        .env("STRAHL_ZC_STREAM_MS", "4000")
        .env("RUST_LOG", "info")
        .timeout_secs(300);
    let lab2 = lab.clone();
    let t_boot = std::time::Instant::now();
    let guest = std::thread::spawn(move || lab2.run(&spec));
    // Bounded: connect attempts from the namespace until the guest listens.
    let t0 = std::time::Instant::now();
    let got = loop {
        let out = ns
            .command("python3")
            .args([
                "-c",
                "import socket; s = socket.create_connection(('10.201.0.2', 7001), 2); \
                 print(s.recv(100).decode(), end='')",
            ])
            .output()
            .unwrap();
        if out.status.success() {
            break String::from_utf8_lossy(&out.stdout).into_owned();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(120) && !guest.is_finished(),
            "the guest never listened"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    // The receiver pings the guest's stream ports (routing the session to itself) and counts
    // what arrives; bounded by its own limits and by `timeout` around it.
    let receiver = strahl_vmlab::repo_root().join("crates/test/vmlab/tests/zc-receiver.py");
    let rx = ns
        .command("timeout")
        .args(["180", "python3"])
        .arg(&receiver)
        .args([
            "10.201.0.2",
            "47998",
            "48000",
            "ZEROCOPYCLIENT01",
            "150",
            "3",
            "7002",
        ])
        .arg(FLOWS.to_string())
        .output()
        .unwrap();
    let rx_out = String::from_utf8_lossy(&rx.stdout).into_owned();
    let out = guest.join().unwrap().unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "zero-copy boot + stream: {:.1} s (guest {:.1} s)\nguest stdout:\n{}\nreceiver: {rx_out}",
        t_boot.elapsed().as_secs_f64(),
        out.elapsed.as_secs_f64(),
        out.stdout
    );
    out.assert_success();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.first().copied(), Some(zc), "{}", out.stdout);
    assert!(lines.contains(&"card0"), "virtio-gpu: {}", out.stdout);
    assert!(out.stdout.contains("10.201.0.2/24"), "{}", out.stdout);
    // Two vCPUs, two queue pairs (GuestNet's default): XDP_TX/REDIRECT without the locked path.
    assert!(lines.contains(&"combined=2"), "{}", out.stdout);
    assert!(lines.contains(&"peer=10.201.0.1"), "{}", out.stdout);
    assert_eq!(got, "hello from the guest\n");

    // The data plane's start-up line: AF_XDP on eth0 in zero-copy; the kernel agrees.
    let startup = value(&out.stdout, "startup").unwrap_or_default();
    assert!(
        startup.starts_with("net: transport af_xdp on eth0 (zero-copy, native XDP)"),
        "{startup}"
    );
    assert_eq!(value(&out.stdout, "xdp_options_zerocopy"), Some("true"));
    let session = value(&out.stdout, "session_transport_end").unwrap_or_default();
    assert!(
        session.starts_with("af_xdp (") && session.contains("zero-copy"),
        "{session}"
    );
    assert_eq!(value(&out.stdout, "af_xdp_fallbacks"), Some("0"));
    // The kernel's view from outside the process: ss shows the socket's UMEM in zero-copy, ip
    // the program attached in driver mode (`xdp`, not `xdpgeneric`).
    let ss = section(&out.stdout, "ss");
    assert!(ss.contains("zc:1"), "ss: {ss}");
    let link = section(&out.stdout, "ip_link");
    assert!(
        link.contains(" xdp qdisc") && link.contains("prog/xdp id "),
        "ip link: {link}"
    );

    // What the host side received through the tap.
    let r: serde_json::Value = serde_json::from_str(rx_out.trim())
        .unwrap_or_else(|e| panic!("receiver: {e}: {rx_out:?} {:?}", rx.stderr));
    let sent: u64 = value(&out.stdout, "af_xdp_packets")
        .and_then(|v| v.parse().ok())
        .unwrap();
    let got = r["video_packets"].as_u64().unwrap() + r["audio_packets"].as_u64().unwrap();
    assert!(r["frames"].as_u64() >= Some(30), "{r}");
    assert_eq!(r["first_frame"], 1, "{r}");
    assert_eq!(r["frame_gaps"], serde_json::json!([]), "{r}");
    assert_eq!(r["video_src_ports"], serde_json::json!([47998]), "{r}");
    assert_eq!(r["audio_src_ports"], serde_json::json!([48000]), "{r}");
    assert_eq!(r["rtp_versions"], serde_json::json!([2]), "{r}");
    assert!(r["audio_packets"].as_u64() >= Some(100), "{r}");
    assert!(
        got <= sent && got * 100 >= sent * 99,
        "sent {sent}, received {got}: {r}"
    );
    // The queue the zero-copy socket owns still delivers to the stack: every flow arrived.
    assert_eq!(r["flows_sent"], FLOWS, "{r}");
    assert_eq!(
        value(&out.stdout, "flows_received"),
        Some(FLOWS.to_string().as_str()),
        "flows hashed to the zero-copy queue were lost"
    );
}
