//! `strahl-client stream`'s receive-path options as the binary sees them: contradictions and
//! limits are usage errors (exit 2) before anything runs, and an AF_XDP refusal names what is
//! missing (exit 5) before any packet — or, with `--rx auto`, one line and recvmmsg.

use std::process::Command;

fn client(args: &[&str]) -> (i32, String) {
    let state = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_strahl-client"))
        .arg("--state-dir")
        .arg(state.path())
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn euid_is_root() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().nth(1))
        == Some("0")
}

#[test]
fn receive_path_options_are_checked_before_anything_runs() {
    for (args, want) in [
        (
            &["stream", "h", "--rx", "af_xdp"][..],
            "--rx af_xdp needs --xdp IFACE",
        ),
        (
            &["stream", "h", "--rx", "auto"],
            "--rx auto needs --xdp IFACE",
        ),
        (
            &["stream", "h", "--rx", "recvmmsg", "--xdp", "eth0"],
            "contradict",
        ),
        (
            &["stream", "h", "--xdp", "eth0", "--mtu", "9000"],
            "more than AF_XDP receive takes (1778",
        ),
        (
            &["stream", "h", "--rx", "fast"],
            "--rx is recvmmsg, af_xdp or auto",
        ),
        (
            &["stream", "h", "--xdp", "a/b"],
            "--xdp needs an interface name",
        ),
        (
            &["check", "h", "--xdp", "eth0"],
            "--xdp is an option of `stream`",
        ),
    ] {
        let (code, text) = client(args);
        assert_eq!(code, 2, "{args:?}: {text}");
        assert!(text.contains(want), "{args:?}: {text}");
    }
}

#[test]
fn af_xdp_refusals_name_what_is_missing() {
    // No such interface: root is told so; anyone else first hears which capabilities it lacks.
    let (code, text) = client(&["stream", "127.0.0.1:9", "--xdp", "strahl-nope0"]);
    assert_eq!(code, 5, "{text}");
    if euid_is_root() {
        assert!(
            text.contains("no interface \"strahl-nope0\" in this network namespace"),
            "{text}"
        );
    } else {
        assert!(text.contains("this process lacks CAP_NET_ADMIN"), "{text}");
    }
    // `--rx auto`: one line saying why, then the session goes on with recvmmsg (here it stops
    // at the next local check: this state directory paired with no host).
    let (code, text) = client(&[
        "stream",
        "127.0.0.1:9",
        "--xdp",
        "strahl-nope0",
        "--rx",
        "auto",
    ]);
    assert_eq!(code, 1, "{text}");
    let said: Vec<&str> = text
        .lines()
        .filter(|l| l.ends_with("receiving with recvmmsg (--rx auto)"))
        .collect();
    assert_eq!(said.len(), 1, "{text}");
    assert!(text.contains("not paired with 127.0.0.1:9"), "{text}");
}

#[test]
fn af_xdp_without_capabilities_is_refused_naming_them() {
    if !euid_is_root() {
        eprintln!("SKIPPED: af_xdp_without_capabilities_is_refused_naming_them: needs root");
        return;
    }
    let state = tempfile::tempdir().unwrap();
    // Root with an empty bounding set: execve grants no capability at all.
    let out = Command::new("setpriv")
        .args([
            "--bounding-set=-all",
            "--inh-caps=-all",
            "--ambient-caps=-all",
        ])
        .arg(env!("CARGO_BIN_EXE_strahl-client"))
        .arg("--state-dir")
        .arg(state.path())
        .args(["stream", "127.0.0.1:9", "--xdp", "lo"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{text}");
    assert!(
        text.contains("this process lacks CAP_NET_ADMIN, CAP_NET_RAW, CAP_BPF"),
        "{text}"
    );
}
