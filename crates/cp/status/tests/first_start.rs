//! First start over HTTP: the admin password can only be set with the one-time setup code from
//! the console/journal (or the admin token); wrong codes are rate-limited with the logins; the
//! code works once and survives a restart until used; the console snippet shows the status URL
//! and the code, and loses the code once it is used.
mod common;

use std::os::unix::fs::PermissionsExt;

use common::Harness;
use serde_json::json;
use strahl_status::StatusConfig;
use strahl_status::auth::{LOGIN_MAX_FAILURES_PER_IP, PASSWORD_FILE};
use strahl_status::setup::SETUP_CODE_FILE;

const JSON: (&str, &str) = ("Content-Type", "application/json");
const PW: &str = "first-start password";

fn passwd(h: &Harness, body: serde_json::Value) -> common::Resp {
    h.req("POST", "/api/v1/passwd", &[JSON], Some(&body.to_string()))
}

/// A code of the right shape that is not `code`.
fn wrong_code(code: &str) -> String {
    let last = if code.ends_with('0') { "1" } else { "0" };
    format!("{}{last}", &code[..code.len() - 1])
}

fn with_console() -> (StatusConfig, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = StatusConfig {
        console_issue: Some(dir.path().join("run/console.issue")),
        ..StatusConfig::default()
    };
    (config, dir)
}

fn console(h: &Harness) -> String {
    std::fs::read_to_string(h.dir.path().join("run/console.issue")).unwrap()
}

#[test]
fn without_the_code_the_password_is_refused_with_where_to_find_it() {
    let h = Harness::start(StatusConfig::default());
    for body in [
        json!({ "password": PW }),
        json!({ "password": PW, "setup_code": "" }),
        json!({ "password": PW, "setup_code": null }),
    ] {
        let r = passwd(&h, body.clone());
        assert_eq!(r.status, 403, "{body}: {}", r.body);
        let msg = r.json()["error"].as_str().unwrap().to_string();
        assert!(
            msg.contains("setup code") && msg.contains("console") && msg.contains("journal"),
            "{msg}"
        );
        assert!(r.cookie().is_none());
    }
    assert!(!h.dir.path().join(PASSWORD_FILE).exists());
    // A missing code is not a guess: the right one still works right after.
    let r = passwd(&h, json!({ "password": PW, "setup_code": h.setup_code() }));
    assert_eq!(r.status, 200, "{}", r.body);
}

#[test]
fn wrong_codes_are_refused_then_rate_limited_even_for_the_right_code() {
    let h = Harness::start(StatusConfig::default());
    let code = h.setup_code();
    let wrong = wrong_code(&code);
    // A near miss, a code of the wrong length, junk: each one a counted guess.
    let guesses = [wrong.as_str(), "ZZZZ-ZZZZ-ZZZZ", "<script>"];
    for i in 0..LOGIN_MAX_FAILURES_PER_IP as usize {
        let guess = guesses[i % guesses.len()];
        let r = passwd(&h, json!({ "password": PW, "setup_code": guess }));
        assert_eq!(r.status, 403, "guess {i} {guess:?}: {}", r.body);
        assert!(r.body.contains("wrong setup code"), "{}", r.body);
    }
    let r = passwd(&h, json!({ "password": PW, "setup_code": code }));
    assert_eq!(r.status, 429, "limited: {}", r.body);
    r.retry_after_s();
    assert!(!h.dir.path().join(PASSWORD_FILE).exists());
    assert!(
        h.dir.path().join(SETUP_CODE_FILE).exists(),
        "not used up by refused requests"
    );
}

#[test]
fn the_right_code_sets_the_password_once() {
    let h = Harness::start(StatusConfig::default());
    let code = h.setup_code();
    let mode = std::fs::metadata(h.dir.path().join(SETUP_CODE_FILE))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    // Typed loosely (lower case, a space for the dash): still the code.
    let typed = code.to_lowercase().replace('-', " ");
    let r = passwd(&h, json!({ "password": PW, "setup_code": typed }));
    assert_eq!(r.status, 200, "{}", r.body);
    let cookie = r.cookie().expect("logged in by setting the password");
    assert!(r.json()["csrf"].is_string());
    let s = h
        .req("GET", "/api/v1/session", &[("Cookie", &cookie)], None)
        .json();
    assert_eq!(
        (&s["password_set"], &s["logged_in"]),
        (&json!(true), &json!(true))
    );
    assert!(!h.dir.path().join(SETUP_CODE_FILE).exists(), "code used up");
    let phc = std::fs::read_to_string(h.dir.path().join(PASSWORD_FILE)).unwrap();
    assert!(strahl_status::auth::verify_password(phc.trim(), PW));
    // The same code again: first start is over, so this is a password change without login.
    let r = passwd(
        &h,
        json!({ "password": "second password", "setup_code": code }),
    );
    assert_eq!(r.status, 401, "{}", r.body);
    let phc2 = std::fs::read_to_string(h.dir.path().join(PASSWORD_FILE)).unwrap();
    assert_eq!(phc, phc2, "unchanged");
    // Still used up after a restart.
    let dir = h.stop();
    let h = Harness::start_in(StatusConfig::default(), dir);
    assert!(!h.dir.path().join(SETUP_CODE_FILE).exists());
    let r = passwd(
        &h,
        json!({ "password": "third password", "setup_code": code }),
    );
    assert_eq!(r.status, 401, "{}", r.body);
}

#[test]
fn a_restart_before_use_keeps_the_same_code() {
    let h = Harness::start(StatusConfig::default());
    let code = h.setup_code();
    let dir = h.stop();
    let h = Harness::start_in(StatusConfig::default(), dir);
    assert_eq!(h.setup_code(), code);
    let r = passwd(&h, json!({ "password": PW, "setup_code": code }));
    assert_eq!(r.status, 200, "{}", r.body);
}

#[test]
fn a_corrupt_code_file_stops_the_start_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(SETUP_CODE_FILE), "garbage\n").unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let backend = std::sync::Arc::new(strahl_status::testing::FakeBackend::new());
    let e = match rt.block_on(strahl_status::StatusServer::bind(
        "127.0.0.1:0".parse().unwrap(),
        StatusConfig::default(),
        backend,
        dir.path(),
    )) {
        Ok(_) => panic!("started over a corrupt setup code file"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains(SETUP_CODE_FILE) && e.contains("corrupt"), "{e}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join(SETUP_CODE_FILE)).unwrap(),
        "garbage\n",
        "left for the operator"
    );
}

#[test]
fn the_admin_token_sets_the_first_password_without_the_code() {
    // The operator's CLI (`strahl-control passwd`) holds the token: it needs no code, and the
    // code is used up all the same.
    let (config, dir) = with_console();
    let h = Harness::start_in(config, dir);
    let bearer = format!("Bearer {}", h.token());
    let r = h.req(
        "POST",
        "/api/v1/passwd",
        &[JSON, ("Authorization", &bearer)],
        Some(&json!({ "password": PW }).to_string()),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(h.dir.path().join(PASSWORD_FILE).exists());
    assert!(!h.dir.path().join(SETUP_CODE_FILE).exists());
    assert!(!console(&h).contains("setup code"), "{}", console(&h));
}

#[test]
fn the_console_snippet_shows_the_url_and_the_code_until_it_is_used() {
    let (config, dir) = with_console();
    let h = Harness::start_in(config.clone(), dir);
    let code = h.setup_code();
    let url = format!("http://{}/", h.addr);
    let before = console(&h);
    assert_eq!(
        before,
        format!(
            "strahl status page:\n  {url}\nFirst start: open the page and enter the setup code   \
             {code}\nto set the admin password (the code works once).\n\n"
        )
    );
    let mode = std::fs::metadata(h.dir.path().join("run/console.issue"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "it holds the code");
    // A restart before use shows the same code.
    let dir = h.stop();
    let h = Harness::start_in(config.clone(), dir);
    let url = format!("http://{}/", h.addr);
    assert!(console(&h).contains(&code) && console(&h).contains(&url));
    // A wrong code changes nothing.
    let r = passwd(
        &h,
        json!({ "password": PW, "setup_code": wrong_code(&code) }),
    );
    assert_eq!(r.status, 403);
    assert!(console(&h).contains(&code));
    h.set_password(PW);
    let after = console(&h);
    assert_eq!(after, format!("strahl status page:\n  {url}\n\n"));
    // And a restart with the password set writes it without a code too.
    let dir = h.stop();
    std::fs::remove_file(dir.path().join("run/console.issue")).unwrap();
    let h = Harness::start_in(config, dir);
    let url = format!("http://{}/", h.addr);
    assert_eq!(console(&h), format!("strahl status page:\n  {url}\n\n"));
}
