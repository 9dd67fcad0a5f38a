//! Proves the VM lab itself: a guest boots the lab's stock kernel, loads modules on request,
//! sees the work tree read-write, and its output and exit status come back; a guest past its
//! timeout is killed and reported as such. Two boots (TCG: ~10 s and ~5 s here).

use std::time::Duration;

use strahl_vmlab::harness::{Case, run};
use strahl_vmlab::{GuestSpec, Lab, LabError};

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
