//! The status page in headless Chromium, driven over the DevTools protocol (a websocket to the
//! page target): the page loads without console errors or exceptions, the first-start password
//! form asks for the console's setup code (a wrong one is refused with its message) and logs
//! in with the right one, the fake running sessions appear (each with its own Transport cell and
//! per-session figures; host-wide data-plane figures marked as such), a PIN typed into the form
//! (real key events) reaches the backend, arming native pairing shows its PIN, the charts draw. A screenshot is
//! saved to `target/status-page.png`. Chromium missing → the test fails with a clear message.
mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::Harness;
use serde_json::json;
use strahl_status::StatusConfig;
use strahl_status::testing::{
    FAKE_CLIENT, FAKE_SECOND_CLIENT, FAKE_SECOND_SESSION_ID, FAKE_SESSION_ID, FAKE_TRANSPORT,
};
use strahl_testkit::browser::{Browser, Cdp};

/// Any single DevTools command or page condition.
const STEP_TIMEOUT: Duration = Duration::from_secs(20);
const PASSWORD: &str = "page-test-password";
const PIN: &str = "4711";

fn screenshot_path() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../target/status-page.png"
    ))
}

#[test]
fn page_in_headless_chromium_logs_in_shows_the_session_and_submits_a_pin() {
    let browser = Browser::launch(1280, 900);
    let h = Harness::start(StatusConfig::default());
    let mut cdp = Cdp::connect(&browser, STEP_TIMEOUT);
    for d in ["Runtime.enable", "Log.enable", "Page.enable"] {
        cdp.call(d, json!({}));
    }
    cdp.call(
        "Page.navigate",
        json!({ "url": format!("http://{}/", h.addr) }),
    );
    cdp.wait_for(
        "the loaded page",
        "document.readyState === 'complete' && typeof state === 'object'",
        STEP_TIMEOUT,
    );

    // First start: the page offers to set the password; reads are closed until then.
    cdp.wait_for(
        "the first-start password form",
        "!document.getElementById('login-section').classList.contains('hidden') && \
         document.getElementById('login-title').textContent.includes('Set the admin password')",
        STEP_TIMEOUT,
    );
    assert_eq!(
        cdp.eval("document.getElementById('sessions').rows.length"),
        json!(0),
        "no data before login"
    );
    // The setup-code field is shown, required, and the hint says where the code is.
    assert_eq!(
        cdp.eval(
            "(() => { const c = document.getElementById('setup-code'); \
             return [c.offsetParent !== null, c.required]; })()"
        ),
        json!([true, true]),
        "the setup-code field on the first-start form"
    );
    let hint = cdp.eval("document.getElementById('login-hint').textContent");
    assert!(
        hint.as_str().unwrap().contains("console"),
        "the hint names the console: {hint}"
    );
    // A wrong code: refused, the page says so, no password stored.
    let code = h.setup_code();
    let wrong = if code.ends_with('0') {
        "0000-0001"
    } else {
        "0000-0000"
    };
    cdp.type_text("setup-code", wrong);
    cdp.type_text("password", PASSWORD);
    cdp.eval("document.getElementById('login-button').click()");
    cdp.wait_for(
        "the wrong-code message",
        "document.getElementById('login-error').textContent.includes('wrong setup code')",
        STEP_TIMEOUT,
    );
    assert!(
        !h.dir
            .path()
            .join(strahl_status::auth::PASSWORD_FILE)
            .exists()
    );
    // The right one, typed as a person might (lower case).
    cdp.eval("document.getElementById('setup-code').value = ''");
    cdp.type_text("setup-code", &code.to_lowercase());
    cdp.eval("document.getElementById('login-button').click()");
    cdp.wait_for(
        "the logged-in state",
        "document.getElementById('login-section').classList.contains('hidden')",
        STEP_TIMEOUT,
    );
    assert!(
        h.dir
            .path()
            .join(strahl_status::auth::PASSWORD_FILE)
            .exists()
    );
    assert!(
        !h.dir
            .path()
            .join(strahl_status::setup::SETUP_CODE_FILE)
            .exists(),
        "the setup code is used up"
    );

    // The fake running session, with its numbers.
    cdp.wait_for(
        "the fake session row",
        &format!("document.querySelector('#sessions tr[data-session=\"{FAKE_SESSION_ID}\"]')?.innerText.includes('{FAKE_CLIENT}') === true"), STEP_TIMEOUT);
    let row = cdp.eval(&format!(
        "document.querySelector('#sessions tr[data-session=\"{FAKE_SESSION_ID}\"]').innerText"
    ));
    let row = row.as_str().unwrap().to_string();
    for needle in [
        "gamestream",
        "1920x1080@60",
        "Mbit/s",
        "20 %",
        "ms",
        FAKE_TRANSPORT,
    ] {
        assert!(row.contains(needle), "session row lacks {needle:?}: {row}");
    }
    // The Transport column: a header cell, the first session's reported transport (its detail
    // as the tooltip), the second's not reported yet.
    let headers = cdp.eval(
        "Array.from(document.querySelectorAll('#sessions-section thead th')).map(t => t.textContent)",
    );
    let headers: Vec<String> = serde_json::from_value(headers).unwrap();
    let transport_col = headers
        .iter()
        .position(|h| h == "Transport")
        .unwrap_or_else(|| panic!("no Transport column: {headers:?}"));
    let cell = |cdp: &mut Cdp, id: u64, col: usize| {
        cdp.eval(&format!(
            "document.querySelector('#sessions tr[data-session=\"{id}\"]').cells[{col}].textContent"
        ))
    };
    assert_eq!(
        cell(&mut cdp, FAKE_SESSION_ID, transport_col),
        json!(FAKE_TRANSPORT)
    );
    let detail = cdp.eval(&format!(
        "document.querySelector('#sessions tr[data-session=\"{FAKE_SESSION_ID}\"]').cells[{transport_col}].title"
    ));
    assert!(
        detail.as_str().unwrap().contains("AF_XDP"),
        "transport detail as the tooltip: {detail}"
    );
    let second = cdp.eval(&format!(
        "document.querySelector('#sessions tr[data-session=\"{FAKE_SECOND_SESSION_ID}\"]').innerText"
    ));
    let second = second.as_str().unwrap().to_string();
    assert!(second.contains(FAKE_SECOND_CLIENT), "{second}");
    assert_eq!(
        cell(&mut cdp, FAKE_SECOND_SESSION_ID, transport_col),
        json!("—")
    );
    // Per-session figures differ per row; the host-wide ones say so and are totalled once.
    assert!(
        second.contains("35 %") && !second.contains("20 %"),
        "{second}"
    );
    let sending = headers.iter().position(|h| h == "Sending").unwrap();
    assert_eq!(
        cell(&mut cdp, FAKE_SECOND_SESSION_ID, sending),
        json!("host-wide")
    );
    assert_eq!(cell(&mut cdp, FAKE_SESSION_ID, sending), json!("host-wide"));
    let totals = cdp.eval("document.getElementById('media-totals').innerText");
    assert!(
        totals.as_str().unwrap().contains("All sessions together")
            && totals.as_str().unwrap().contains("Mbit/s"),
        "{totals}"
    );
    // The host-wide transport line is the start-up choice and points at the rows.
    let host = cdp.eval("document.getElementById('host').innerText");
    let host = host.as_str().unwrap();
    assert!(
        host.contains("Start-up transport") && host.contains("sendmmsg"),
        "transport shown: {host}"
    );
    assert!(
        host.contains("each session's transport is in its row"),
        "{host}"
    );
    assert!(!host.contains("media sessions send"), "{host}");
    // The start-up choices for capture, encode, audio and input, each with why.
    for (subsystem, choice, reason) in strahl_status::testing::FAKE_DETECTED {
        let shown = cdp.eval(&format!(
            "document.querySelector('#host dd[data-detected=\"{subsystem}\"]').innerText"
        ));
        let shown = shown.as_str().unwrap_or_default();
        assert_eq!(shown, format!("{choice} — {reason}"), "{subsystem}: {host}");
    }
    cdp.wait_for(
        "Steam Deck waiting for a PIN",
        "document.getElementById('pending').innerText.includes('Steam Deck')",
        STEP_TIMEOUT,
    );

    // Type the PIN with real input events and press Enter in the form.
    cdp.type_text("pin", PIN);
    cdp.press_enter();
    let deadline = Instant::now() + STEP_TIMEOUT;
    while h.backend.recorded().pins.is_empty() {
        assert!(
            Instant::now() < deadline,
            "the PIN never reached the backend"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(h.backend.recorded().pins, vec![PIN.to_string()]);
    cdp.wait_for(
        "the PIN confirmation",
        "document.getElementById('pin-result').textContent === 'PIN sent.'",
        STEP_TIMEOUT,
    );

    // Arm native pairing from the page; its PIN is shown.
    cdp.eval("document.getElementById('arm').click()");
    cdp.wait_for(
        "the native pairing PIN",
        "/^\\d{4}/.test(document.getElementById('native-pin').textContent)",
        STEP_TIMEOUT,
    );
    assert_eq!(h.backend.recorded().armed, 1);

    // Charts fill as the page polls (live polling works); a few seconds of points so the
    // screenshot shows a line, not a dot.
    cdp.wait_for(
        "six chart points",
        "state.bitrate.length >= 6 && state.pps.length >= 6",
        STEP_TIMEOUT,
    );

    let png = cdp.screenshot_png();
    let path = screenshot_path();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, &png).unwrap();
    eprintln!("screenshot: {}", path.display());

    // Drain late events with one more round trip, then check the console: nothing but the
    // browser's own network line for the one refused (wrong-code) request.
    cdp.eval("1");
    let (refused, errors): (Vec<_>, Vec<_>) = cdp.errors().into_iter().partition(|e| {
        let entry = &e["params"]["entry"];
        entry["source"] == "network"
            && entry["url"]
                .as_str()
                .is_some_and(|u| u.ends_with("/api/v1/passwd"))
            && entry["text"].as_str().is_some_and(|t| t.contains("403"))
    });
    assert!(
        errors.is_empty(),
        "console errors/exceptions on the page: {errors:#?}"
    );
    assert_eq!(refused.len(), 1, "the wrong setup code's 403: {refused:#?}");
    drop(browser);
}

#[test]
fn page_with_open_reads_shows_status_anonymously_without_console_errors() {
    let browser = Browser::launch(1280, 900);
    let h = Harness::start(StatusConfig {
        open_reads: true,
        ..StatusConfig::default()
    });
    h.set_password(PASSWORD);
    // Arm a native window: its PIN must not reach an anonymous page.
    let bearer = format!("Bearer {}", h.token());
    let pin = h
        .req(
            "POST",
            "/api/v1/pair/arm",
            &[("Authorization", &bearer)],
            None,
        )
        .json()["pin"]
        .as_str()
        .unwrap()
        .to_string();
    let mut cdp = Cdp::connect(&browser, STEP_TIMEOUT);
    for d in ["Runtime.enable", "Log.enable", "Page.enable"] {
        cdp.call(d, json!({}));
    }
    cdp.call(
        "Page.navigate",
        json!({ "url": format!("http://{}/", h.addr) }),
    );
    cdp.wait_for(
        "the loaded page",
        "document.readyState === 'complete' && typeof state === 'object'",
        STEP_TIMEOUT,
    );
    cdp.wait_for(
        "the fake session without login",
        &format!("document.getElementById('sessions').innerText.includes('{FAKE_CLIENT}')"),
        STEP_TIMEOUT,
    );
    cdp.wait_for(
        "the login form",
        "!document.getElementById('login-section').classList.contains('hidden')",
        STEP_TIMEOUT,
    );
    assert_eq!(
        cdp.eval("document.getElementById('pin-button').disabled"),
        json!(true)
    );
    assert_eq!(
        cdp.eval("document.getElementById('arm').disabled"),
        json!(true)
    );
    cdp.wait_for(
        "the masked native PIN",
        "document.getElementById('native-pin').textContent === '••••'",
        STEP_TIMEOUT,
    );
    let text = cdp.eval("document.body.innerText");
    assert!(
        !text.as_str().unwrap().contains(&pin),
        "native PIN leaked to an anonymous page"
    );
    cdp.eval("1");
    let errors = cdp.errors();
    assert!(
        errors.is_empty(),
        "console errors/exceptions on the page: {errors:#?}"
    );
}
