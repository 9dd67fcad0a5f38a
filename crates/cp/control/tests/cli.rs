//! The operator CLI as a user runs it: every subcommand's `--help`, the clear error when no
//! `serve` runs, `status`/`clients --json` against a running serve, `token`, and `passwd`
//! followed by a working login. Real binary, loopback, scratch state directory.

mod support;

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use strahl_control::commands::{Target, http};
use support::*;

/// (exit code, stdout, stderr) of one CLI run with `stdin` fed in; bounded.
fn cli(args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut child = Command::new(control_bin())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(start.elapsed() < Duration::from_secs(60), "{args:?} hangs");
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_subcommand_has_help() {
    for (sub, needle) in [
        ("serve", "strahl-control serve"),
        ("pin", "strahl-control pin"),
        ("status", "strahl-control status"),
        ("clients", "clients [COMMON] unpair"),
        ("pair", "native pairing window"),
        ("passwd", "argon2id"),
        ("token", "--rotate"),
        ("doctor", "REQUIRED"),
    ] {
        let (code, out, err) = cli(&[sub, "--help"], "");
        assert_eq!(code, 0, "{sub} --help: {err}");
        assert!(
            out.contains(needle),
            "{sub} --help lacks {needle:?}:\n{out}"
        );
    }
    let (code, out, _) = cli(&["--help"], "");
    assert_eq!(code, 0);
    for sub in [
        "serve", "pin", "status", "clients", "pair", "passwd", "token", "doctor",
    ] {
        assert!(
            out.contains(&format!("strahl-control {sub}")),
            "{sub}:\n{out}"
        );
    }
    let (code, _, err) = cli(&["clients", "frobnicate"], "");
    assert_eq!(code, 2, "{err}");
}

#[test]
fn reads_say_clearly_when_serve_is_not_running() {
    let dir = Scratch::new("cli-down");
    let (cfg, base) = dir.config();
    let cfg = cfg.to_str().unwrap();
    for args in [
        vec!["status", "--config", cfg],
        vec!["clients", "--json", "--config", cfg],
        vec!["pair", "--config", cfg],
    ] {
        let (code, out, err) = cli(&args, "");
        assert_eq!(code, 1, "{args:?}: {out} {err}");
        assert!(
            err.contains(&format!("127.0.0.1:{}", base + 1))
                && err.contains("is `strahl-control serve` running?"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn passwd_then_login_and_reads_against_a_running_serve() {
    let dir = Scratch::new("cli-live");
    let (cfg, base) = dir.config();
    let cfg = cfg.to_str().unwrap().to_string();
    let state = dir.0.join("state");

    // passwd while serve is down: the hash lands in the state dir, atomically, mode 0600.
    let (code, out, err) = cli(&["passwd", "--config", &cfg], "correct horse\n");
    assert_eq!(code, 0, "{out} {err}");
    let pw_file = state.join(strahl_status::auth::PASSWORD_FILE);
    let phc = std::fs::read_to_string(&pw_file).unwrap();
    assert!(phc.starts_with("$argon2id$"), "{phc}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&pw_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let (code, _, err) = cli(&["passwd", "--config", &cfg], "short\n");
    assert_eq!(code, 2, "{err}");

    // token creates (or prints) the admin token; rotate works while serve is down.
    let (code, tok1, _) = cli(&["token", "--config", &cfg], "");
    assert_eq!(code, 0);
    let (code, tok2, _) = cli(&["token", "--rotate", "--config", &cfg], "");
    assert_eq!(code, 0);
    assert_ne!(tok1, tok2);
    assert_eq!(tok2.trim().len(), 64);

    let sock = dir.socket();
    let mut cp = Proc::spawn(
        "control",
        &control_bin(),
        &dir.serve_args(&[
            "--socket",
            sock.to_str().unwrap(),
            "--connect-timeout-ms",
            "120000",
        ]),
    );
    let addr = SocketAddr::from(([127, 0, 0, 1], base + 1));
    cp.wait_for(&format!("status page: http://{addr}/"));
    let (code, tok3, _) = cli(&["token", "--config", &cfg], "");
    assert_eq!(
        (code, tok3.as_str()),
        (0, tok2.as_str()),
        "serve kept the rotated token"
    );
    let (code, _, err) = cli(&["token", "--rotate", "--config", &cfg], "");
    assert_eq!(code, 1);
    assert!(err.contains("stop it, rotate, start it"), "{err}");

    // The password stored by the CLI logs in; a wrong one does not.
    let anon = Target {
        addr,
        state_dir: state.clone(),
        token: None,
    };
    let login = |pw: &str| {
        http(
            &anon,
            "POST",
            "/api/v1/login",
            Some(&json!({ "password": pw })),
        )
        .unwrap_or_else(|e| panic!("{}", e.msg))
    };
    assert_eq!(login("wrong password").0, 401);
    let (code, body) = login("correct horse");
    assert_eq!(code, 200, "{body}");
    // passwd with serve running goes through the API (token) and the new one logs in.
    let (code, out, err) = cli(&["passwd", "--config", &cfg], "battery staple\n");
    assert_eq!(code, 0, "{out} {err}");
    assert!(out.contains("through the running serve"), "{out}");
    assert_eq!(login("correct horse").0, 401);
    assert_eq!(login("battery staple").0, 200);

    // status: human and JSON.
    let (code, out, err) = cli(&["status", "--config", &cfg], "");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("data plane: NOT connected"), "{out}");
    assert!(out.contains("paired clients: 0"), "{out}");
    let (code, out, _) = cli(&["status", "--json", "--config", &cfg], "");
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["host"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(v["dataplane_connected"], false);
    assert!(v["sessions"].as_array().unwrap().is_empty());
    assert!(v["metrics"].is_array() && v["dataplane_metrics"].is_array());

    // clients: JSON list, unpair of an unknown name.
    let (code, out, _) = cli(&["clients", "--json", "--config", &cfg], "");
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v, json!({ "clients": [] }));
    let (code, _, err) = cli(&["clients", "--config", &cfg, "unpair", "roth"], "");
    assert_eq!(code, 1);
    assert!(err.contains("no paired client named"), "{err}");

    // pair arms a native window and prints its PIN; status shows it to the token holder.
    let (code, out, err) = cli(&["pair", "--config", &cfg], "");
    assert_eq!(code, 0, "{err}");
    let pin: String = out
        .split("enter PIN ")
        .nth(1)
        .unwrap()
        .chars()
        .take(4)
        .collect();
    assert!(pin.bytes().all(|b| b.is_ascii_digit()), "{out}");
    let (_, out, _) = cli(&["status", "--config", &cfg], "");
    assert!(out.contains(&format!("PIN {pin}")), "{out}");

    cp.signal("TERM");
    let (st, _) = cp.wait_exit(STEP);
    assert!(st.success(), "{}", cp.log());
}
