//! Interop with the real Moonlight core (moonlight-python 0.3.0, GPL, test tool only): our
//! RTSP + ENet control host in this process, the driver's `control` subcommand
//! (`crates/test/moonlight/driver.py`) as the client in a subprocess (common-c is process-global: one process per case). Every wait is bounded; a
//! missing interpreter fails loudly.
//!
//! Interpreter: `$STRAHL_MOONLIGHT_PYTHON`, else `<repo>/.venv/bin/python` (made by
//! `make test`'s setup), else `/tmp/mlvenv/bin/python`.

#[path = "../interop/host.rs"]
mod host;

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use strahl_enet::message::TERMINATION_GRACEFUL;
use strahl_enet::{ControlEvent, DisconnectReason, InputEvent};

/// Python start-up plus the client's start and hold (≤ 8 s in terminate mode).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);
const RIKEY: [u8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];

fn python() -> PathBuf {
    strahl_testkit::python::moonlight_python().unwrap_or_else(|e| panic!("{e}"))
}

/// Run one case: returns the client's `result` step and the host's log.
fn run_case(mode: &str) -> (serde_json::Value, host::HostLog) {
    run_case_with(mode, Vec::new())
}

/// As [`run_case`], the host sending `rumbles` (controller, low, high) once connected.
fn run_case_with(mode: &str, rumbles: Vec<(u16, u16, u16)>) -> (serde_json::Value, host::HostLog) {
    let terminate = mode == "terminate";
    let mut h = host::Host::bind(RIKEY).unwrap();
    h.rumble_on_connect = rumbles;
    let port = h.rtsp_port;
    let key_hex: String = RIKEY.iter().map(|b| format!("{b:02x}")).collect();
    let script = strahl_testkit::python::moonlight_driver();
    let mut cmd = Command::new(python());
    cmd.arg(script)
        .arg("control")
        .args(["--port", &port.to_string(), "--rikey", &key_hex]);
    if !mode.is_empty() {
        cmd.arg(mode);
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the Moonlight driver");
    let host_thread = std::thread::spawn(move || {
        h.run(terminate.then_some(Duration::from_millis(500)), |l| {
            eprintln!("host: {l}")
        })
    });
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > CLIENT_TIMEOUT {
            let _ = child.kill();
            panic!("Moonlight driver did not finish within {CLIENT_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(status.success(), "driver failed: {stdout}\n{stderr}");
    let log = host_thread.join().unwrap();
    let result = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["step"] == "result")
        .unwrap_or_else(|| panic!("no result step: {stdout}\n{stderr}"));
    (result, log)
}

fn assert_started_and_decoded(result: &serde_json::Value, log: &host::HostLog) {
    assert_eq!(
        result["started"], true,
        "client did not start (stage {} code {}): {log:?}",
        result["stage"], result["code"]
    );
    assert!(log.refused.is_empty(), "{:?}", log.refused);
    assert!(log.played);
    assert!(matches!(
        log.control.first(),
        Some(ControlEvent::Connected { .. })
    ));
    assert!(
        log.control.contains(&ControlEvent::IdrRequested),
        "{:?}",
        log.control
    );
    assert!(
        log.control.contains(&ControlEvent::StartB),
        "{:?}",
        log.control
    );
    // common-c wiggles the mouse by ±1 px at connect (§B8).
    assert!(
        log.control
            .iter()
            .any(|e| matches!(e, ControlEvent::Input(InputEvent::MouseMove { .. }))),
        "{:?}",
        log.control
    );
}

#[test]
fn real_client_passes_the_control_stream_stage_and_disconnects() {
    let (result, log) = run_case("");
    eprintln!("client: {result}");
    assert_started_and_decoded(&result, &log);
    assert_eq!(
        log.control.last(),
        Some(&ControlEvent::Disconnected {
            reason: DisconnectReason::PeerDisconnected
        })
    );
}

#[test]
fn real_client_receives_the_graceful_termination() {
    let (result, log) = run_case("terminate");
    eprintln!("client: {result}");
    assert_started_and_decoded(&result, &log);
    assert_eq!(
        log.control.last(),
        Some(&ControlEvent::Disconnected {
            reason: DisconnectReason::Terminated(TERMINATION_GRACEFUL)
        })
    );
    assert_eq!(result["terminated"], true);
    // 0x80030023 before any video frame → -102 in the client (§B9).
    assert_eq!(result["term_error"], -102);
}

/// The rumble message (0x010b) as strahl encodes it, decoded by moonlight-common-c itself: its
/// rumble callback gets each controller number and both motors, in order (a stop included).
#[test]
fn real_client_decodes_the_rumble_message() {
    let sent = vec![(0, 0x8000, 0x4000), (3, 0xffff, 0x0101), (0, 0, 0)];
    let (result, log) = run_case_with("rumble", sent.clone());
    eprintln!("client: {result}");
    assert_started_and_decoded(&result, &log);
    let got: Vec<(u16, u16, u16)> = result["rumbles"]
        .as_array()
        .unwrap_or_else(|| panic!("no rumbles in {result}"))
        .iter()
        .map(|r| {
            let n = |i: usize| r[i].as_u64().unwrap() as u16;
            (n(0), n(1), n(2))
        })
        .collect();
    assert_eq!(got, sent);
}

/// Every LiSend* input call the real client accepts, decoded by our side in order: this checks
/// the §A13 layouts against moonlight-common-c itself rather than against our own encoders.
#[test]
fn real_client_input_decodes_to_the_expected_events() {
    use strahl_input::GamepadState;
    use strahl_input::MouseButton;
    let (result, log) = run_case("input");
    eprintln!("client: {result}");
    assert_started_and_decoded(&result, &log);
    let rc = &result["input_rc"];
    let expected: Vec<(&str, Vec<InputEvent>)> = vec![
        (
            "key_down",
            vec![InputEvent::Key {
                down: true,
                key_code: 0x41,
                modifiers: 1,
                flags: 0,
            }],
        ),
        (
            "key_up",
            vec![InputEvent::Key {
                down: false,
                key_code: 0x41,
                modifiers: 0,
                flags: 0,
            }],
        ),
        (
            "button_down",
            vec![InputEvent::MouseButton {
                down: true,
                button: MouseButton::Right,
            }],
        ),
        (
            "button_up",
            vec![InputEvent::MouseButton {
                down: false,
                button: MouseButton::Right,
            }],
        ),
        ("scroll", vec![InputEvent::Scroll { amount: 240 }]),
        ("hscroll", vec![InputEvent::HScroll { amount: -120 }]),
        (
            "position",
            vec![InputEvent::MousePosition {
                x: 100,
                y: 200,
                width: 1920,
                height: 1080,
            }],
        ),
        ("move", vec![InputEvent::MouseMove { dx: -300, dy: 250 }]),
        (
            "gamepad",
            vec![InputEvent::Gamepad(GamepadState {
                number: 1,
                active_mask: 3,
                buttons: 0x1000,
                left_trigger: 10,
                right_trigger: 200,
                ls_x: 1000,
                ls_y: -1000,
                rs_x: 32767,
                rs_y: -32768,
            })],
        ),
        // common-c sends UTF-8 text one code point per packet.
        (
            "text",
            ["h", "é", "l", "l", "o"]
                .iter()
                .map(|t| InputEvent::Text {
                    text: t.to_string(),
                })
                .collect(),
        ),
        (
            "arrival",
            vec![InputEvent::ControllerArrival {
                number: 2,
                controller_type: 2,
                capabilities: 3,
                supported_buttons: 0xFFFF,
            }],
        ),
        (
            "battery",
            vec![InputEvent::ControllerBattery {
                number: 2,
                state: 3,
                percentage: 77,
            }],
        ),
    ];
    let got: Vec<&InputEvent> = log
        .control
        .iter()
        .filter_map(|e| match e {
            ControlEvent::Input(i) => Some(i),
            _ => None,
        })
        .collect();
    // Walk the received events in order; each expected group must appear after the previous.
    let mut at = 0;
    for (name, evs) in &expected {
        assert_eq!(rc[name], 0, "LiSend for {name} returned {}", rc[name]);
        for want in evs {
            let pos = got[at..]
                .iter()
                .position(|g| *g == want)
                .unwrap_or_else(|| panic!("{name}: {want:?} not decoded in order; got {got:?}"));
            at += pos + 1;
        }
    }
}
