//! The status page of the real `strahl-control serve` (started by `scripts/run.sh` through the
//! e2e harness) in headless Chromium, driven over the DevTools protocol, with the real
//! Moonlight core (crates/test/moonlight/driver.py) as the client:
//!
//! 1. the page loads; the first-start form sets the admin password and logs in;
//! 2. a Moonlight client starts pairing with a PIN chosen here; the page lists it as waiting;
//!    the PIN is typed into the page's form (real input events, Enter) and the client pairs;
//!    the paired client appears in the page's client table;
//! 3. the client starts a stream; the page shows the running session;
//! 4. no console errors or uncaught exceptions at any point; a screenshot of the page with the
//!    session is saved to `target/status-page-live.png`.
//!
//! Chromium flags are the (`--headless --no-sandbox --disable-gpu --no-first-run
//! --disable-background-networking`) plus a private profile and a DevTools port. Every wait is
//! bounded; Chromium or the Moonlight interpreter missing fails loudly.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;
use strahl_e2e::{Driver, Options, PIN_WAIT, PIN_WAITING_LINE, Strahl};
use strahl_testkit::browser::{Browser, Cdp};

/// Any single DevTools command or page condition (the page polls every second or two).
const STEP_TIMEOUT: Duration = Duration::from_secs(30);
/// A real Moonlight pairing (Python start, RSA key generation, four round trips).
const PAIR_TIMEOUT: Duration = Duration::from_secs(120);
/// From the session on the page to its live figures: two data-plane statistics polls (5 s
/// apart by default) for a send rate, with margin for a loaded machine.
const LIVE_FIGURES_TIMEOUT: Duration = Duration::from_secs(30);
/// From the stream client's start to the session on the page (RTSP, ENet, first frames).
const SESSION_TIMEOUT: Duration = Duration::from_secs(90);
const PASSWORD: &str = "page-live-password";

fn screenshot_path() -> PathBuf {
    strahl_e2e::repo_root().join("target/status-page-live.png")
}

#[test]
fn live_page_pairs_moonlight_with_a_typed_pin_and_shows_its_stream() {
    let strahl = Strahl::start(Options::default()).unwrap_or_else(|e| panic!("{e}"));
    let status = strahl.ports.status;
    let browser = Browser::launch(1280, 1000);
    let mut cdp = Cdp::connect(&browser, STEP_TIMEOUT);
    for d in ["Runtime.enable", "Log.enable", "Page.enable"] {
        cdp.call(d, json!({}));
    }
    cdp.call(
        "Page.navigate",
        json!({ "url": format!("http://127.0.0.1:{status}/") }),
    );
    cdp.wait_for(
        "the loaded page",
        "document.readyState === 'complete' && typeof state === 'object'",
        STEP_TIMEOUT,
    );

    // 1. First start: set the admin password through the page; it logs in.
    cdp.wait_for(
        "the first-start password form",
        "!document.getElementById('login-section').classList.contains('hidden') && \
         document.getElementById('login-title').textContent.includes('Set the admin password')",
        STEP_TIMEOUT,
    );
    // The one-time setup code the appliance shows on its console (kept in the state directory
    // until used: strahl_status::setup::SETUP_CODE_FILE).
    let code = std::fs::read_to_string(strahl.state_dir().join("status-setup-code"))
        .expect("the first-start setup code");
    cdp.type_text("setup-code", code.trim());
    cdp.type_text("password", PASSWORD);
    cdp.eval("document.getElementById('login-button').click()");
    cdp.wait_for(
        "the logged-in state",
        "document.getElementById('login-section').classList.contains('hidden')",
        STEP_TIMEOUT,
    );

    // 2. A real Moonlight client waits for its PIN; the operator types it into the page.
    let pin = format!("{:04}", (std::process::id() ^ status as u32) % 10_000);
    let client_dir = strahl.dir.join("moonlight-client");
    std::fs::create_dir_all(&client_dir).unwrap();
    let mut args = vec!["pair".to_string()];
    args.extend(strahl.client_args());
    args.extend([
        "--config".into(),
        client_dir.display().to_string(),
        "--pin".into(),
        pin.clone(),
    ]);
    let pairing = Driver::spawn(&args).unwrap_or_else(|e| panic!("{e}"));
    strahl
        .wait_log(PIN_WAITING_LINE, PIN_WAIT)
        .unwrap_or_else(|e| panic!("{e}"));
    cdp.wait_for(
        "the client waiting for a PIN",
        "document.getElementById('pending').textContent.startsWith('Waiting for a PIN')",
        STEP_TIMEOUT,
    );
    cdp.type_text("pin", &pin);
    cdp.press_enter();
    cdp.wait_for(
        "the PIN confirmation",
        "document.getElementById('pin-result').textContent === 'PIN sent.'",
        STEP_TIMEOUT,
    );
    let out = pairing
        .finish(PAIR_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}\n--- strahl log ---\n{}", strahl.log()));
    assert!(
        out.step("pair").is_some_and(|p| p["ok"] == true),
        "Moonlight did not pair with the PIN typed into the page: {out}"
    );
    cdp.wait_for(
        "the paired client in the table",
        "document.getElementById('clients').rows.length >= 1",
        STEP_TIMEOUT,
    );

    // 3. The paired client streams; the page shows the running session.
    let mut args = vec!["stream".to_string()];
    args.extend(strahl.client_args());
    args.extend(
        [
            "--config",
            &client_dir.display().to_string(),
            "--width",
            "1280",
            "--height",
            "720",
            "--frames",
            "1800",
            "--no-decode",
            "--timeout",
            "80",
        ]
        .map(String::from),
    );
    let stream = Driver::spawn(&args).unwrap_or_else(|e| panic!("{e}"));
    cdp.wait_for(
        "the running session",
        "document.querySelector('#sessions tr[data-session]') !== null",
        SESSION_TIMEOUT,
    );
    // The live figures: the measured send rate and the pacer's rate (from the data plane's
    // statistics, polled every few seconds) and the ENet round-trip time (reported every
    // second). Cells: client, protocol, mode, video, target, sending, FEC, recovered/failed,
    // pacing, packets/s, drops, RTT. The waits also give the charts a line for the screenshot.
    let cell = |i: usize| {
        format!("document.querySelector('#sessions tr[data-session]').cells[{i}].textContent")
    };
    cdp.wait_for(
        "a measured send rate, pacing rate and RTT in the session row",
        &format!(
            "parseFloat({}) > 0 && parseFloat({}) > 0 && / ms$/.test({})",
            cell(5),
            cell(8),
            cell(11)
        ),
        LIVE_FIGURES_TIMEOUT,
    );
    let row = cdp.eval("document.querySelector('#sessions tr[data-session]').innerText");
    let row = row.as_str().unwrap_or_default().to_string();
    assert!(row.contains("1280x720"), "session row: {row}");
    // The negotiated video: the synthetic source's OpenH264 stream, encrypted (the core turns
    // on SS_ENC_VIDEO, which the default "preferred" policy requests).
    let video = cdp.eval(&cell(3));
    assert_eq!(
        video.as_str(),
        Some("H.264 8-bit, encrypted"),
        "video cell; session row: {row}"
    );
    // The host block: what the appliance chose at start for capture, encode, audio and input,
    // each with why (the data plane's `Detected` events and the control plane's input sink).
    for sub in ["capture", "encode", "audio", "input"] {
        let shown = cdp.eval(&format!(
            "document.querySelector('#host dd[data-detected=\"{sub}\"]').textContent"
        ));
        let shown = shown.as_str().unwrap_or_default();
        assert!(
            shown.contains(" — ") && !shown.contains("not reported"),
            "{sub}: {shown}"
        );
    }
    let png = cdp.screenshot_png();
    let path = screenshot_path();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, &png).unwrap();
    eprintln!(
        "page_live: screenshot {} ({} bytes); session row: {row}",
        path.display(),
        png.len()
    );
    drop(stream); // killed: the session ends with the client

    // 4. No console errors at any point (one more round trip drains late events).
    cdp.eval("1");
    let errors = cdp.errors();
    assert!(
        errors.is_empty(),
        "console errors/exceptions on the live page: {errors:#?}"
    );
}
