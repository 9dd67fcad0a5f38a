//! API contract tests: authorisation of every mutation, CSRF, login rate limit, secret files,
//! read gating, health, input bounds.
mod common;

use std::os::unix::fs::PermissionsExt;

use common::Harness;
use strahl_status::StatusConfig;
use strahl_status::auth::{LOGIN_MAX_FAILURES_PER_IP, PASSWORD_FILE, TOKEN_FILE};
use strahl_status::testing::{
    FAKE_CLIENT, FAKE_SECOND_SESSION_ID, FAKE_SESSION_ID, FAKE_TRANSPORT, Recorded,
};

const JSON: (&str, &str) = ("Content-Type", "application/json");
const PW: &str = "correct horse battery";

/// Every mutation: (method, path, body).
fn mutations() -> Vec<(&'static str, String, Option<&'static str>)> {
    vec![
        ("POST", "/api/v1/pin".into(), Some(r#"{"pin":"1234"}"#)),
        ("POST", "/api/v1/pair/arm".into(), None),
        (
            "POST",
            "/api/v1/clients/rename".into(),
            Some(r#"{"id":"d4e5f6","name":"Work laptop"}"#),
        ),
        (
            "POST",
            "/api/v1/clients/unpair".into(),
            Some(r#"{"id":"d4e5f6"}"#),
        ),
        (
            "POST",
            format!("/api/v1/sessions/{FAKE_SESSION_ID}/keyframe"),
            None,
        ),
        (
            "POST",
            format!("/api/v1/sessions/{FAKE_SESSION_ID}/stop"),
            None,
        ),
    ]
}

fn expected_after_all() -> Recorded {
    Recorded {
        pins: vec!["1234".into()],
        armed: 1,
        unpaired: vec!["d4e5f6".into()],
        renamed: vec![("d4e5f6".into(), "Work laptop".into())],
        stopped: vec![FAKE_SESSION_ID],
        keyframes: vec![FAKE_SESSION_ID],
    }
}

#[test]
fn every_mutation_without_auth_is_refused() {
    let h = Harness::start(StatusConfig::default());
    h.set_password(PW);
    let mut all = mutations();
    all.push((
        "DELETE",
        format!("/api/v1/sessions/{FAKE_SESSION_ID}"),
        None,
    ));
    all.push((
        "POST",
        "/api/v1/passwd".into(),
        Some(r#"{"password":"hijacked-pw"}"#),
    ));
    all.push(("POST", "/api/v1/logout".into(), None));
    for (m, p, b) in &all {
        let r = h.req(m, p, &[JSON], *b);
        assert_eq!(r.status, 401, "{m} {p} without auth: {}", r.body);
        let r = h.req(
            m,
            p,
            &[
                JSON,
                ("Authorization", &format!("Bearer {}", "0".repeat(64))),
            ],
            *b,
        );
        assert_eq!(r.status, 401, "{m} {p} with a wrong token: {}", r.body);
    }
    assert_eq!(
        h.backend.recorded(),
        Recorded::default(),
        "nothing reached the backend"
    );
}

#[test]
fn every_mutation_with_the_token_is_accepted() {
    let h = Harness::start(StatusConfig::default());
    let bearer = format!("Bearer {}", h.token());
    for (m, p, b) in mutations() {
        let r = h.req(m, &p, &[JSON, ("Authorization", &bearer)], b);
        assert_eq!(r.status, 200, "{m} {p}: {}", r.body);
        if p.ends_with("/arm") {
            let pin = r.json()["pin"].as_str().unwrap().to_string();
            assert_eq!(pin.len(), 4);
        }
    }
    assert_eq!(h.backend.recorded(), expected_after_all());
    // The session is gone now: a second stop is a 404 from the backend, not a 200.
    let r = h.req(
        "DELETE",
        &format!("/api/v1/sessions/{FAKE_SESSION_ID}"),
        &[("Authorization", &bearer)],
        None,
    );
    assert_eq!(r.status, 404, "{}", r.body);
}

#[test]
fn login_cookie_needs_the_csrf_header_and_same_origin() {
    let h = Harness::start(StatusConfig::default());
    let (cookie, csrf) = h.set_password(PW);
    let wrong = "f".repeat(64);
    for (m, p, b) in mutations() {
        let r = h.req(m, &p, &[JSON, ("Cookie", &cookie)], b);
        assert_eq!(r.status, 403, "{m} {p} cookie without CSRF: {}", r.body);
        let r = h.req(
            m,
            &p,
            &[JSON, ("Cookie", &cookie), ("X-CSRF-Token", &wrong)],
            b,
        );
        assert_eq!(r.status, 403, "{m} {p} cookie with wrong CSRF: {}", r.body);
        let r = h.req(
            m,
            &p,
            &[
                JSON,
                ("Cookie", &cookie),
                ("X-CSRF-Token", &csrf),
                ("Origin", "http://evil.example"),
            ],
            b,
        );
        assert_eq!(r.status, 403, "{m} {p} cross-origin: {}", r.body);
    }
    assert_eq!(h.backend.recorded(), Recorded::default());
    let origin = format!("http://{}", h.addr);
    for (m, p, b) in mutations() {
        let r = h.req(
            m,
            &p,
            &[
                JSON,
                ("Cookie", &cookie),
                ("X-CSRF-Token", &csrf),
                ("Origin", &origin),
            ],
            b,
        );
        assert_eq!(r.status, 200, "{m} {p} with cookie + CSRF: {}", r.body);
    }
    assert_eq!(h.backend.recorded(), expected_after_all());
    // Logging out ends the session: the same cookie + CSRF is now anonymous.
    let r = h.req(
        "POST",
        "/api/v1/logout",
        &[("Cookie", &cookie), ("X-CSRF-Token", &csrf)],
        None,
    );
    assert_eq!(r.status, 200);
    let r = h.req(
        "POST",
        "/api/v1/pair/arm",
        &[("Cookie", &cookie), ("X-CSRF-Token", &csrf)],
        None,
    );
    assert_eq!(r.status, 401);
}

#[test]
fn session_cookie_is_httponly_samesite_strict() {
    let h = Harness::start(StatusConfig::default());
    h.set_password(PW);
    let r = h.req(
        "POST",
        "/api/v1/login",
        &[JSON],
        Some(&format!("{{\"password\":\"{PW}\"}}")),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let c = r.header("set-cookie").unwrap();
    assert!(c.starts_with("strahl_session="), "{c}");
    assert!(
        c.contains("HttpOnly") && c.contains("SameSite=Strict"),
        "{c}"
    );
    let cookie = r.cookie().unwrap();
    let s = h
        .req("GET", "/api/v1/session", &[("Cookie", &cookie)], None)
        .json();
    assert_eq!(s["logged_in"], true);
    assert_eq!(s["csrf"], r.json()["csrf"]);
    let anon = h.req("GET", "/api/v1/session", &[], None).json();
    assert_eq!(anon["logged_in"], false);
    assert!(anon["csrf"].is_null());
}

#[test]
fn login_rate_limit_kicks_in() {
    let h = Harness::start(StatusConfig::default());
    h.set_password(PW);
    for i in 0..LOGIN_MAX_FAILURES_PER_IP {
        let r = h.req(
            "POST",
            "/api/v1/login",
            &[JSON],
            Some(r#"{"password":"wrong-guess"}"#),
        );
        assert_eq!(r.status, 401, "attempt {i}: {}", r.body);
    }
    // Now even the right password is refused without being checked.
    let r = h.req(
        "POST",
        "/api/v1/login",
        &[JSON],
        Some(&format!("{{\"password\":\"{PW}\"}}")),
    );
    assert_eq!(r.status, 429, "{}", r.body);
    r.retry_after_s();
    assert!(r.cookie().is_none());
}

#[test]
fn password_is_argon2id_and_secret_files_are_0600_and_atomic() {
    let h = Harness::start(StatusConfig::default());
    let token = h.token();
    assert_eq!(token.len(), 64);
    assert!(token.bytes().all(|c| c.is_ascii_hexdigit()));
    h.set_password(PW);
    let dir = h.dir.path().to_path_buf();
    let phc = std::fs::read_to_string(dir.join(PASSWORD_FILE)).unwrap();
    let phc = phc.trim();
    // PHC string: $argon2id$v=19$m=...,t=...,p=...$<salt b64>$<hash b64>
    let parts: Vec<&str> = phc.split('$').collect();
    assert_eq!(parts.len(), 6, "{phc}");
    assert_eq!(parts[1], "argon2id", "{phc}");
    assert_eq!(parts[2], "v=19", "{phc}");
    assert!(
        parts[3].starts_with("m=") && parts[3].contains(",t=") && parts[3].contains(",p="),
        "{phc}"
    );
    assert!(
        parts[4].len() >= 22 && parts[5].len() >= 43,
        "salt/hash lengths: {phc}"
    );
    assert!(!phc.contains(PW));
    assert!(strahl_status::auth::verify_password(phc, PW));
    assert!(!strahl_status::auth::verify_password(
        phc,
        "correct horse battery!"
    ));
    for f in [PASSWORD_FILE, TOKEN_FILE] {
        let mode = std::fs::metadata(dir.join(f)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{f} mode {mode:o}");
    }
    // Atomic writes leave no temp files behind.
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        vec![PASSWORD_FILE.to_string(), TOKEN_FILE.to_string()],
        "{names:?}"
    );

    // Restart on the same dir: same token, the password persists and is required.
    let dir = h.stop();
    let h = Harness::start_in(StatusConfig::default(), dir);
    assert_eq!(h.token(), token);
    let r = h.req(
        "POST",
        "/api/v1/passwd",
        &[JSON],
        Some(r#"{"password":"takeover-pw"}"#),
    );
    assert_eq!(
        r.status, 401,
        "first-start passwd must close once set: {}",
        r.body
    );
    let r = h.req(
        "POST",
        "/api/v1/login",
        &[JSON],
        Some(&format!("{{\"password\":\"{PW}\"}}")),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    // Changing it (authorised) rewrites the hash and ends the old sessions.
    let (cookie, csrf) = (
        r.cookie().unwrap(),
        r.json()["csrf"].as_str().unwrap().to_string(),
    );
    let r = h.req(
        "POST",
        "/api/v1/passwd",
        &[JSON, ("Cookie", &cookie), ("X-CSRF-Token", &csrf)],
        Some(r#"{"password":"a new password"}"#),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = h.req(
        "POST",
        "/api/v1/pair/arm",
        &[("Cookie", &cookie), ("X-CSRF-Token", &csrf)],
        None,
    );
    assert_eq!(r.status, 401, "old session must be gone");
    let phc2 = std::fs::read_to_string(h.dir.path().join(PASSWORD_FILE)).unwrap();
    assert!(strahl_status::auth::verify_password(
        phc2.trim(),
        "a new password"
    ));
}

#[test]
fn first_start_password_refused_for_a_foreign_host_name() {
    // A DNS-rebinding page reaches us with Host = its own domain.
    let h = Harness::start(StatusConfig::default());
    let r = h.req(
        "POST",
        "/api/v1/passwd",
        &[JSON, ("Host", "rebind.attacker.example:47990")],
        Some(r#"{"password":"attacker-pw-123"}"#),
    );
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(!h.dir.path().join(PASSWORD_FILE).exists());
}

#[test]
fn short_password_and_bad_inputs_are_rejected() {
    let h = Harness::start(StatusConfig::default());
    let r = h.req(
        "POST",
        "/api/v1/passwd",
        &[JSON],
        Some(r#"{"password":"short"}"#),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    let bearer = format!("Bearer {}", h.token());
    let auth = ("Authorization", bearer.as_str());
    let r = h.req("POST", "/api/v1/pin", &[auth], Some(r#"{"pin":"1234"}"#));
    assert_eq!(r.status, 415, "JSON content type required: {}", r.body);
    let r = h.req(
        "POST",
        "/api/v1/pin",
        &[JSON, auth],
        Some(r#"{"pin":"12a4"}"#),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    let r = h.req("POST", "/api/v1/pin", &[JSON, auth], Some("{not json"));
    assert_eq!(r.status, 400, "{}", r.body);
    let big = format!(
        "{{\"pin\":\"{}\"}}",
        "1".repeat(strahl_status::MAX_BODY_BYTES)
    );
    let r = h.req("POST", "/api/v1/pin", &[JSON, auth], Some(&big));
    assert_eq!(r.status, 413, "{}", r.body);
    let r = h.req(
        "POST",
        "/api/v1/clients/rename",
        &[JSON, auth],
        Some(r#"{"id":"a1b2c3","name":"bad\u0007name"}"#),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    let r = h.req("POST", "/api/v1/sessions/xyz/stop", &[auth], None);
    assert_eq!(r.status, 400, "{}", r.body);
    let r = h.req(
        "POST",
        "/api/v1/clients/unpair",
        &[JSON, auth],
        Some(r#"{"id":"nope"}"#),
    );
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(h.backend.recorded(), Recorded::default());
}

#[test]
fn reads_are_gated_by_config_and_native_pin_is_never_public() {
    // Default: reads closed, health and metrics open.
    let h = Harness::start(StatusConfig::default());
    assert_eq!(h.req("GET", "/api/v1/status", &[], None).status, 401);
    assert_eq!(h.req("GET", "/api/v1/clients", &[], None).status, 401);
    assert_eq!(h.req("GET", "/healthz", &[], None).status, 200);
    assert_eq!(h.req("GET", "/metrics", &[], None).status, 200);
    assert_eq!(h.req("GET", "/", &[], None).status, 200);
    let bearer = format!("Bearer {}", h.token());
    let s = h.req("GET", "/api/v1/status", &[("Authorization", &bearer)], None);
    assert_eq!(s.status, 200);
    let v = s.json();
    assert_eq!(v["sessions"][0]["client_name"], FAKE_CLIENT);
    let fams = v["metrics"]
        .as_array()
        .unwrap_or_else(|| panic!("metrics array embedded: {v}"));
    let sent = fams
        .iter()
        .find(|f| f["name"] == "strahl_packets_sent_total")
        .expect("packets family in the status JSON");
    assert_eq!(sent["type"], "counter");
    let c = h
        .req(
            "GET",
            "/api/v1/clients",
            &[("Authorization", &bearer)],
            None,
        )
        .json();
    assert_eq!(c["clients"].as_array().unwrap().len(), 2);
    drop(h);

    // open_reads: anonymous readers see status, but not the native pairing PIN.
    let h = Harness::start(StatusConfig {
        open_reads: true,
        open_health_and_metrics: false,
        ..StatusConfig::default()
    });
    assert_eq!(h.req("GET", "/healthz", &[], None).status, 401);
    assert_eq!(h.req("GET", "/metrics", &[], None).status, 401);
    let bearer = format!("Bearer {}", h.token());
    let arm = h
        .req(
            "POST",
            "/api/v1/pair/arm",
            &[("Authorization", &bearer)],
            None,
        )
        .json();
    let pin = arm["pin"].as_str().unwrap().to_string();
    let anon = h.req("GET", "/api/v1/status", &[], None);
    assert_eq!(anon.status, 200);
    assert!(
        anon.json()["pairing"]["native_window"]["pin"].is_null(),
        "{}",
        anon.body
    );
    assert!(!anon.body.contains(&format!("\"{pin}\"")), "{}", anon.body);
    let authed = h
        .req("GET", "/api/v1/status", &[("Authorization", &bearer)], None)
        .json();
    assert_eq!(authed["pairing"]["native_window"]["pin"], pin.as_str());
}

#[test]
fn sessions_carry_their_own_transport_and_host_wide_figures_only_when_alone() {
    let h = Harness::start(StatusConfig::default());
    let bearer = format!("Bearer {}", h.token());
    let auth = ("Authorization", bearer.as_str());
    let status = || h.req("GET", "/api/v1/status", &[auth], None).json();
    let v = status();
    let sessions = v["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2, "{v}");
    let (one, two) = (&sessions[0], &sessions[1]);
    assert_eq!(one["id"], FAKE_SESSION_ID);
    assert_eq!(one["transport"], FAKE_TRANSPORT);
    assert!(one["transport_detail"].as_str().unwrap().contains("AF_XDP"));
    // Not reported yet: present and null.
    assert!(
        two["transport"].is_null() && two["transport_detail"].is_null(),
        "{two}"
    );
    assert_ne!(
        one["fec_percent"], two["fec_percent"],
        "FEC % is per session"
    );
    // With two sessions the data plane's host-wide figures are not repeated per row…
    for k in [
        "send_kbps",
        "pacing_rate_kbps",
        "packets_per_s",
        "packets_sent",
        "drops",
    ] {
        assert!(one[k].is_null() && two[k].is_null(), "{k}: {v}");
        assert!(v["media"][k].is_u64(), "media.{k}: {v}");
    }
    // Skipped frame slots (late encoders) are a host-wide figure only.
    assert!(v["media"]["frames_skipped"].is_u64(), "{v}");
    assert_eq!(v["media"]["audio_source"], "tone", "{v}");
    assert!(one.get("frames_skipped").is_none(), "{one}");
    // …and the host-wide transport is the start-up choice.
    assert_eq!(v["transport"]["name"], "sendmmsg");
    // The start-up choices, in order, each with why.
    let detected = v["detected"].as_array().unwrap();
    let subsystems: Vec<&str> = detected
        .iter()
        .map(|d| d["subsystem"].as_str().unwrap())
        .collect();
    assert_eq!(subsystems, ["capture", "encode", "audio", "input"]);
    assert_eq!(detected[1]["choice"], "openh264");
    assert!(
        detected[1]["reason"]
            .as_str()
            .unwrap()
            .contains("libnvidia-encode.so.1")
    );
    // One session left: the figures are exactly its own again.
    let r = h.req(
        "POST",
        &format!("/api/v1/sessions/{FAKE_SECOND_SESSION_ID}/stop"),
        &[auth],
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let v = status();
    let sessions = v["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 1);
    for k in ["send_kbps", "pacing_rate_kbps", "packets_per_s", "drops"] {
        assert!(sessions[0][k].is_u64(), "{k}: {v}");
    }
    assert!(sessions[0]["send_kbps"].as_u64().unwrap() > 0);
}

#[test]
fn healthz_is_503_with_reason_when_the_data_plane_is_disconnected() {
    let h = Harness::start(StatusConfig::default());
    let r = h.req("GET", "/healthz", &[], None);
    assert_eq!((r.status, r.json()["status"].as_str()), (200, Some("ok")));
    h.backend.set_dataplane_connected(false);
    let r = h.req("GET", "/healthz", &[], None);
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["reason"], "data plane disconnected");
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
}

#[test]
fn unknown_paths_and_methods() {
    let h = Harness::start(StatusConfig::default());
    assert_eq!(h.req("GET", "/nope", &[], None).status, 404);
    assert_eq!(h.req("PUT", "/healthz", &[], None).status, 405);
    let r = h.req("GET", "/", &[], None);
    assert!(
        r.header("content-security-policy")
            .unwrap()
            .contains("default-src 'self'")
    );
    assert!(r.body.contains("/app.js"));
}

/// Timing, not a pass/fail contract: `cargo test -p strahl-status --test api -- --ignored --nocapture`.
#[test]
#[ignore]
fn timing_medians() {
    let h = Harness::start(StatusConfig::default());
    h.set_password(PW);
    let bearer = format!("Bearer {}", h.token());
    let median = |mut v: Vec<std::time::Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let time = |n: usize, f: &dyn Fn()| {
        (0..n)
            .map(|_| {
                let t = std::time::Instant::now();
                f();
                t.elapsed()
            })
            .collect::<Vec<_>>()
    };
    let status = median(time(200, &|| {
        assert_eq!(
            h.req("GET", "/api/v1/status", &[("Authorization", &bearer)], None)
                .status,
            200
        )
    }));
    let metrics = median(time(200, &|| {
        assert_eq!(h.req("GET", "/metrics", &[], None).status, 200)
    }));
    let login = median(time(4, &|| {
        let r = h.req(
            "POST",
            "/api/v1/login",
            &[JSON],
            Some(&format!("{{\"password\":\"{PW}\"}}")),
        );
        assert_eq!(r.status, 200)
    }));
    eprintln!(
        "median GET /api/v1/status {status:?}, GET /metrics {metrics:?}, POST /api/v1/login (argon2id verify) {login:?}"
    );
}
