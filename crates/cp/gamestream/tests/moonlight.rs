//! Interop with the real Moonlight core: PyPI `moonlight-python` 0.3.0 (GPL, test tool only),
//! driven by `crates/test/moonlight/driver.py`, one client process per case, against our servers on
//! 127.0.0.1 with ephemeral ports. Every wait is bounded; a missing interpreter fails loudly.
//!
//! Interpreter: `$STRAHL_MOONLIGHT_PYTHON`, else `<repo>/.venv/bin/python` (made by
//! `make test`'s setup), else `/tmp/mlvenv/bin/python`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use strahl_gamestream::handlers::UNAUTHORIZED_MESSAGE;
use strahl_gamestream::{HostEvent, RecordingSessionHost, ServerConfig, ServerHandle, SessionHost};

/// Upper bound for one client process (Python start-up + RSA key generation + requests).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(90);
/// How long the host waits for the client's stage-1 request.
const PIN_REQUEST_TIMEOUT: Duration = Duration::from_secs(45);

fn python() -> PathBuf {
    strahl_testkit::python::moonlight_python().unwrap_or_else(|e| panic!("{e}"))
}

/// Runs the driver script; returns its JSON lines (panics with stderr on a crash/timeout).
async fn run_client(mode: &str, port: u16, config: &Path, pin: &str) -> Vec<Value> {
    let script = strahl_testkit::python::moonlight_driver();
    let child = tokio::process::Command::new(python())
        .arg(script)
        .arg(mode)
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--pin",
            pin,
        ])
        .arg("--config")
        .arg(config)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn the Moonlight driver");
    let out = tokio::time::timeout(CLIENT_TIMEOUT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| {
            panic!("moonlight client `{mode}` did not finish within {CLIENT_TIMEOUT:?}")
        })
        .expect("wait for the Moonlight driver");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "client `{mode}` failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l:?}: {e}")))
        .collect()
}

fn step<'a>(lines: &'a [Value], name: &str) -> &'a Value {
    lines
        .iter()
        .find(|v| v["step"] == name)
        .unwrap_or_else(|| panic!("no step {name} in {lines:#?}"))
}

async fn start_host(state: &Path) -> (ServerHandle, Arc<RecordingSessionHost>) {
    let host = Arc::new(RecordingSessionHost::new());
    let mut cfg = ServerConfig::loopback_ephemeral(state);
    cfg.hostname = "strahl-test".into();
    let handle = strahl_gamestream::start(cfg, host.clone() as Arc<dyn SessionHost>)
        .await
        .expect("start servers");
    (handle, host)
}

/// Pairs a client in `config` using `client_pin`, with the operator typing `host_pin`.
async fn pair(
    server: &ServerHandle,
    config: &Path,
    client_pin: &str,
    host_pin: &str,
) -> Vec<Value> {
    let port = server.http_addr().port();
    let (lines, ()) = tokio::join!(run_client("pair", port, config, client_pin), async {
        let req = server
            .wait_pin_request(PIN_REQUEST_TIMEOUT)
            .await
            .expect("client reached stage 1");
        assert_eq!(req.uniqueid, "0123456789ABCDEF");
        assert_eq!(req.device_name, "roth");
        assert_eq!(
            server.submit_pin(host_pin).as_deref(),
            Ok("0123456789ABCDEF")
        );
    });
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moonlight_pairs_lists_launches_resumes_and_cancels() {
    let state = tempfile::tempdir().unwrap();
    let client_cfg = tempfile::tempdir().unwrap();
    let (server, host) = start_host(state.path()).await;
    let port = server.http_addr().port();

    let lines = pair(&server, client_cfg.path(), "4821", "4821").await;
    let info = step(&lines, "serverinfo");
    assert_eq!(info["app_version"], "7.1.431.-1");
    assert_eq!(info["gfe_version"], "3.23.0.74");
    assert_eq!(info["https_port"], server.https_addr().port());
    assert_eq!(info["codec"], 1);
    assert_eq!(info["state"], "SUNSHINE_SERVER_FREE");
    assert_eq!(info["paired"], false, "PairStatus is 0 over HTTP");
    assert_eq!(info["unique_id"], server.unique_id());
    assert_eq!(step(&lines, "pair")["ok"], true, "{lines:#?}");
    eprintln!(
        "moonlight timings: pair() {} ms (incl. PIN hand-off), apps() {} ms",
        step(&lines, "pair")["ms"],
        step(&lines, "apps")["ms"]
    );
    assert_eq!(
        step(&lines, "apps")["names"],
        serde_json::json!(["Desktop"])
    );
    assert_eq!(step(&lines, "apps")["ids"], serde_json::json!([1]));
    let paired = server.paired_clients();
    assert_eq!(paired.len(), 1);
    let client_cert = std::fs::read_to_string(client_cfg.path().join("cert.pem")).unwrap();
    assert_eq!(
        paired[0].cert_pem.trim(),
        client_cert.trim(),
        "the stored cert is the client's"
    );

    // The pairing survives a host restart (state dir) and a fresh client process.
    server.shutdown().await;
    let (server, host2) = start_host(state.path()).await;
    drop(host);
    let port2 = server.http_addr().port();
    assert_ne!(port, 0);
    let lines = run_client("applist", port2, client_cfg.path(), "0000").await;
    assert_eq!(step(&lines, "applist")["ok"], true, "{lines:#?}");
    assert_eq!(
        step(&lines, "applist")["names"],
        serde_json::json!(["Desktop"])
    );

    // Launch → busy → resume → cancel, through the client's own calls.
    let lines = run_client("launch", port2, client_cfg.path(), "0000").await;
    let keys = step(&lines, "keys");
    assert_eq!(
        keys["query"], "&corever=1",
        "the core's launch query params"
    );
    assert_eq!(step(&lines, "launch")["url"], "rtspenc://127.0.0.1:48010");
    let launch2 = step(&lines, "launch_busy");
    assert_eq!(launch2["ok"], false);
    assert_eq!(launch2["code"], 400);
    assert_eq!(
        launch2["status_message"],
        "An app is already running on this host"
    );
    let busy = step(&lines, "serverinfo_busy");
    assert_eq!(busy["state"], "SUNSHINE_SERVER_BUSY");
    assert_eq!(busy["current_game"], 1);
    assert_eq!(
        busy["paired"], true,
        "PairStatus is 1 over HTTPS with the paired cert"
    );
    assert_eq!(step(&lines, "resume")["url"], "rtspenc://127.0.0.1:48010");
    assert_eq!(step(&lines, "cancel")["ok"], true);
    let free = step(&lines, "serverinfo_free");
    assert_eq!(free["state"], "SUNSHINE_SERVER_FREE");
    assert_eq!(free["current_game"], 0);
    assert_eq!(host2.running(), 0);

    let events = host2.events();
    assert_eq!(events.len(), 3, "{events:#?}");
    let HostEvent::Launch(l) = &events[0] else {
        panic!("first event {:?}", events[0])
    };
    assert_eq!(
        strahl_gamestream::query::encode_hex(&l.params.rikey),
        keys["rikey"].as_str().unwrap()
    );
    assert_eq!(
        l.params.rikeyid,
        keys["rikeyid"].as_i64().unwrap() as i32 as u32
    );
    assert_eq!(l.params.rikeyid, (-556_323_120i32) as u32);
    assert_eq!(l.params.app_id, 1);
    assert_eq!(l.params.corever, 1);
    assert_eq!(l.params.surround_audio_info, 196_610);
    let mode = l.params.mode.expect("mode sent");
    assert_eq!((mode.width, mode.height, mode.fps), (1280, 720, 60));
    assert_eq!(
        l.client_cert_der,
        strahl_gamestream::crypto::CertInfo::from_pem(client_cert.as_bytes())
            .unwrap()
            .der
    );
    let HostEvent::Resume(r) = &events[1] else {
        panic!("second event {:?}", events[1])
    };
    let resume = step(&lines, "resume");
    assert_eq!(
        strahl_gamestream::query::encode_hex(&r.params.rikey),
        resume["rikey"].as_str().unwrap()
    );
    assert_eq!(r.params.rikeyid, 123_456_789);
    assert_eq!(events[2], HostEvent::Cancel(l.client_cert_der.clone()));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moonlight_wrong_pin_does_not_pair() {
    let state = tempfile::tempdir().unwrap();
    let client_cfg = tempfile::tempdir().unwrap();
    let (server, _host) = start_host(state.path()).await;
    let lines = pair(&server, client_cfg.path(), "1111", "2222").await;
    let p = step(&lines, "pair");
    assert_eq!(p["ok"], false);
    assert_eq!(p["error"], "WrongPinError", "{lines:#?}");
    assert!(server.paired_clients().is_empty());
    assert!(
        !state
            .path()
            .join(strahl_gamestream::paired::PAIRED_FILE)
            .exists()
    );
    // The same client is still unauthorised on HTTPS.
    let lines = run_client(
        "applist",
        server.http_addr().port(),
        client_cfg.path(),
        "0000",
    )
    .await;
    assert_eq!(step(&lines, "applist")["code"], 401);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moonlight_unpaired_client_gets_401() {
    let state = tempfile::tempdir().unwrap();
    let client_cfg = tempfile::tempdir().unwrap();
    let (server, host) = start_host(state.path()).await;
    let lines = run_client(
        "applist",
        server.http_addr().port(),
        client_cfg.path(),
        "0000",
    )
    .await;
    let a = step(&lines, "applist");
    assert_eq!(a["ok"], false);
    assert_eq!(a["error"], "HttpResponseError");
    assert_eq!(a["code"], 401);
    assert_eq!(a["status_message"], UNAUTHORIZED_MESSAGE);
    assert!(host.events().is_empty());
    server.shutdown().await;
}
