//! First start of the real `strahl-control serve` as systemd runs it (`$RUNTIME_DIRECTORY` set):
//! the setup code is logged once at warn level with the status URL and written with that URL to
//! `<runtime dir>/console.issue` (what the appliance's console shows); the status API refuses
//! the first password without it and takes it with it; then the code is gone from the state
//! directory and the console, and a restart logs none.

mod support;

use std::net::SocketAddr;

use serde_json::{Value, json};
use strahl_control::commands::{Target, http};
use strahl_status::console::CONSOLE_ISSUE_FILE;
use strahl_status::setup::SETUP_CODE_FILE;
use support::*;

const WARN_LINE: &str = "no admin password yet: setup code ";

fn status_addr(dir: &Scratch) -> SocketAddr {
    let (_, base) = dir.config();
    SocketAddr::from(([127, 0, 0, 1], base + 1))
}

fn start_serve(dir: &Scratch) -> Proc {
    let sock = dir.socket();
    let run = dir.0.join("run");
    let args = [
        "--socket",
        sock.to_str().unwrap(),
        "--connect-timeout-ms",
        "120000",
    ];
    let cp = Proc::spawn_env(
        "control",
        &control_bin(),
        &dir.serve_args(&args),
        &[("RUNTIME_DIRECTORY", &run)],
    );
    cp.wait_for(&format!("status page: http://{}/", status_addr(dir)));
    cp
}

fn passwd(dir: &Scratch, body: Value) -> (u16, String) {
    let t = Target {
        addr: status_addr(dir),
        state_dir: dir.0.join("state"),
        token: None,
    };
    http(&t, "POST", "/api/v1/passwd", Some(&body)).unwrap_or_else(|e| panic!("{}", e.msg))
}

#[test]
fn serve_shows_the_setup_code_on_the_console_and_in_the_log_until_it_is_used() {
    let dir = Scratch::new("first-start");
    let mut cp = start_serve(&dir);
    let url = format!("http://{}/", status_addr(&dir));
    let log = cp.log();
    let line = log
        .lines()
        .find(|l| l.contains(WARN_LINE))
        .unwrap_or_else(|| panic!("no setup-code line in the log:\n{log}"));
    assert!(line.contains("WARN"), "at warn level: {line}");
    assert!(line.contains(&url), "with the status URL: {line}");
    assert_eq!(cp.count(WARN_LINE), 1, "logged once:\n{log}");
    let at = line.find(WARN_LINE).unwrap() + WARN_LINE.len();
    let code = &line[at..at + 9];
    let stored = std::fs::read_to_string(dir.0.join("state").join(SETUP_CODE_FILE)).unwrap();
    assert_eq!(stored.trim(), code);

    let console_path = dir.0.join("run").join(CONSOLE_ISSUE_FILE);
    let console = std::fs::read_to_string(&console_path).unwrap();
    assert!(
        console.contains(&format!("  {url}\n")) && console.contains(code),
        "{console}"
    );

    let (status, body) = passwd(&dir, json!({ "password": "a first password" }));
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("console") && body.contains("journal"),
        "{body}"
    );
    let (status, body) = passwd(
        &dir,
        json!({ "password": "a first password", "setup_code": code }),
    );
    assert_eq!(status, 200, "{body}");

    let console = std::fs::read_to_string(&console_path).unwrap();
    assert_eq!(console, format!("strahl status page:\n  {url}\n\n"));
    assert!(!dir.0.join("state").join(SETUP_CODE_FILE).exists());

    // A restart with the password set: no code anywhere.
    cp.signal("TERM");
    let (st, _) = cp.wait_exit(STEP);
    assert!(st.success(), "{st}; log:\n{}", cp.log());
    let cp = start_serve(&dir);
    assert_eq!(cp.count(WARN_LINE), 0, "{}", cp.log());
    assert!(!dir.0.join("state").join(SETUP_CODE_FILE).exists());
    let console = std::fs::read_to_string(&console_path).unwrap();
    assert!(!console.contains("setup code"), "{console}");
}
