//! Native pairing end to end on loopback: the real `strahl-control serve` (scratch state, its
//! own ports, no data plane needed for the control plane) and the real `strahl-client` binary.
//! The operator arms with `strahl-control pair` (the status API underneath), the client pairs
//! over QUIC with SPAKE2, later connects with pinned mutual TLS, the status lists it as a
//! native client, and unpair locks it out again. Every wait is bounded.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use support::*;

struct Out {
    code: i32,
    text: String,
}

fn client(state: &Path, args: &[&str]) -> Out {
    let o = Command::new(workspace_bin("strahl-client"))
        .arg("--state-dir")
        .arg(state)
        .args(args)
        .output()
        .expect("run strahl-client");
    Out {
        code: o.status.code().unwrap_or(-1),
        text: format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    }
}

fn control(dir: &Scratch, status: SocketAddr, args: &[&str]) -> Out {
    let url = status.to_string();
    let state = dir.0.join("state");
    let o = Command::new(control_bin())
        .args(args)
        .args(["--url", &url, "--state-dir"])
        .arg(&state)
        .output()
        .expect("run strahl-control");
    Out {
        code: o.status.code().unwrap_or(-1),
        text: format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    }
}

/// `strahl-control pair` → the PIN it printed.
fn arm(dir: &Scratch, status: SocketAddr) -> String {
    let o = control(dir, status, &["pair"]);
    assert_eq!(o.code, 0, "{}", o.text);
    let at = o.text.find("enter PIN ").expect("a PIN line") + "enter PIN ".len();
    let pin = o.text[at..at + 4].to_string();
    assert!(pin.bytes().all(|b| b.is_ascii_digit()), "{}", o.text);
    assert!(
        o.text.contains("120 s"),
        "how long the PIN is valid: {}",
        o.text
    );
    pin
}

#[test]
fn strahl_client_pairs_then_connects_pinned_and_unpair_locks_it_out() {
    let dir = Scratch::new("native-pair");
    let base = free_base_port();
    // The native port inside this base's reserved window (parallel tests never share it).
    let native = SocketAddr::from(([127, 0, 0, 1], base + 2));
    let status = SocketAddr::from(([127, 0, 0, 1], base + 1));
    std::fs::write(
        dir.0.join("strahl.toml"),
        format!(
            "[host]\nstate_dir = \"{}\"\n[network]\naddresses = [\"127.0.0.1\"]\n\
             gamestream_base_port = {base}\nstatus_port = {}\nnative_port = {}\n",
            dir.0.join("state").display(),
            status.port(),
            native.port()
        ),
    )
    .unwrap();
    // Built before serve starts: a cold build must not eat serve's patience.
    let _ = workspace_bin("strahl-client");
    let sock = dir.socket();
    let cp = Proc::spawn(
        "control",
        &control_bin(),
        &dir.serve_args(&[
            "--socket",
            sock.to_str().unwrap(),
            "--connect-timeout-ms",
            "120000",
        ]),
    );
    cp.wait_for(&format!("native strahl/1 host listening on UDP {native}"));
    cp.wait_for(&format!("status page: http://{status}/"));
    let host = native.to_string();
    let me = dir.0.join("client");

    // Nothing armed: refused with the reason, exit 1.
    let o = client(&me, &["pair", &host, "1234"]);
    assert_eq!(o.code, 1, "{}", o.text);
    assert!(o.text.contains("no pairing window"), "{}", o.text);

    // Wrong PIN, then the right one on the same arm: both fail.
    let pin = arm(&dir, status);
    let wrong = format!("{:04}", (pin.parse::<u32>().unwrap() + 1) % 10_000);
    let o = client(&me, &["pair", &host, &wrong]);
    assert_eq!(o.code, 1, "{}", o.text);
    assert!(o.text.contains("wrong PIN"), "{}", o.text);
    let o = client(&me, &["pair", &host, &pin]);
    assert_eq!(o.code, 1, "{}", o.text);
    assert!(o.text.contains("no pairing window"), "{}", o.text);
    let o = client(&me, &["check", &host]);
    assert_eq!(o.code, 1, "not paired yet: {}", o.text);

    // A fresh arm and the right PIN: paired, and the next connection is pinned mutual TLS.
    let pin = arm(&dir, status);
    let o = client(&me, &["pair", &host, &pin, "--name", "deck"]);
    assert_eq!(o.code, 0, "{}", o.text);
    assert!(o.text.contains("paired with"), "{}", o.text);
    let o = client(&me, &["check", &host]);
    assert_eq!(o.code, 0, "{}\n{}", o.text, cp.log());
    assert!(o.text.contains("pinned TLS"), "{}", o.text);

    // The store is on disk (atomic write) and the status lists it beside Moonlight clients.
    let stored =
        std::fs::read_to_string(dir.0.join("state").join(strahl_native::store::PAIRED_FILE))
            .unwrap();
    assert!(stored.contains("\"deck\""), "{stored}");
    let o = control(&dir, status, &["clients", "--json"]);
    assert_eq!(o.code, 0, "{}", o.text);
    let v: serde_json::Value = serde_json::from_str(o.text.trim()).unwrap();
    let natives: Vec<&serde_json::Value> = v["clients"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["protocol"] == "native")
        .collect();
    assert_eq!(natives.len(), 1, "{v}");
    assert_eq!(natives[0]["name"], "deck");
    let id = natives[0]["id"].as_str().unwrap().to_string();

    // Another certificate with the same host pin: an unpaired fingerprint, refused.
    let other = dir.0.join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::copy(
        me.join(strahl_native::store::HOSTS_FILE),
        other.join(strahl_native::store::HOSTS_FILE),
    )
    .unwrap();
    let o = client(&other, &["check", &host]);
    assert_eq!(o.code, 1, "{}", o.text);
    assert!(o.text.contains("not paired"), "{}", o.text);

    // Unpair through the operator CLI: the client is refused from then on.
    let o = control(&dir, status, &["clients", "unpair", &id]);
    assert_eq!(o.code, 0, "{}", o.text);
    let o = client(&me, &["check", &host]);
    assert_eq!(o.code, 1, "{}", o.text);
    assert!(o.text.contains("not paired"), "{}", o.text);
    drop(cp);
}

#[test]
fn an_unreachable_host_is_reported_as_such() {
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let dir = Scratch::new("native-unreachable");
    let o = client(
        &dir.0.join("client"),
        &["pair", &silent.local_addr().unwrap().to_string(), "1234"],
    );
    assert_eq!(o.code, 3, "{}", o.text);
    assert!(o.text.contains("unreachable"), "{}", o.text);
}
