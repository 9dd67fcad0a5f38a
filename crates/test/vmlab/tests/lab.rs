//! Proves the VM lab itself: a guest boots the lab's stock kernel, loads modules on request,
//! sees the work tree read-write, and its output and exit status come back; a guest past its
//! timeout is killed and reported as such; the zero-copy kernel boots with a virtio-gpu and a
//! virtio-net NIC on a tap in a namespace, and the host side reaches it. Three boots (TCG:
//! ~10 s, ~3 s, ~15 s here).

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
            name: "zero_copy_kernel_boots_with_a_gpu_and_a_nic_in_a_namespace",
            run: zero_copy_kernel_boots_with_a_gpu_and_a_nic_in_a_namespace,
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

fn zero_copy_kernel_boots_with_a_gpu_and_a_nic_in_a_namespace(lab: &Lab) {
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
    let ns = NetNs::new("lab").expect("network namespace");
    // The guest answers one TCP connection from the host side (its peer in the namespace).
    let script = "uname -r; ls /dev/dri; ip -br -4 addr show dev eth0; \
                  ethtool -l eth0 | awk '/^Combined/ {print \"combined=\" $2}'; \
                  timeout 60 python3 -c 'import socket; s = socket.create_server((\"0.0.0.0\", 7001)); \
                  c, a = s.accept(); c.sendall(b\"hello from the guest\\n\"); print(\"peer=\" + a[0])'";
    let spec = GuestSpec::shell(script)
        .kernel(Kernel::ZeroCopy)
        .gpu(Gpu::Virtio)
        .net(GuestNet::new(ns.name(), "10.201.0.1/24", "10.201.0.2/24"))
        .timeout_secs(150);
    let lab2 = lab.clone();
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
    let out = guest.join().unwrap().unwrap_or_else(|e| panic!("{e}"));
    out.assert_success();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.first().copied(), Some(zc), "{}", out.stdout);
    assert!(lines.contains(&"card0"), "virtio-gpu: {}", out.stdout);
    assert!(out.stdout.contains("10.201.0.2/24"), "{}", out.stdout);
    // Two vCPUs, two queue pairs (GuestNet's default): XDP_TX/REDIRECT without the locked path.
    assert!(lines.contains(&"combined=2"), "{}", out.stdout);
    assert!(lines.contains(&"peer=10.201.0.1"), "{}", out.stdout);
    assert_eq!(got, "hello from the guest\n");
}
