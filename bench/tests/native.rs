//! `strahl-bench native --quick`: strahl in a host namespace, the real `strahl-client` in a
//! client namespace across a veth (sendmmsg, 200 Mbit/s of checkable frames, 2 s a run: the
//! goodput run, the two passthrough latency runs — one through the XDP loss program — and
//! openh264), so the wiring (pairing, the client's summary, CPU sampling, loss program, JSON +
//! SVG) stays tested. Without root the bench must say in its JSON that it skipped, and why.
//!
//! It needs `strahl-dataplane`, `strahl-control` and `strahl-client` next to this test's
//! `strahl-bench` (`cargo test --workspace`, i.e. `make test`, builds them).

use std::path::Path;
use std::process::Command;

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

#[test]
fn native_quick() {
    let out_dir = std::env::temp_dir().join(format!("strahl-bench-native-{}", std::process::id()));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_strahl-bench"));
    cmd.args(["native", "--quick", "--out"]).arg(&out_dir);
    if !is_root() {
        let out = cmd.output().expect("spawn strahl-bench");
        assert!(out.status.success(), "native without root must exit 0");
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
        assert!(json["skipped"].as_str().is_some(), "no skip reason: {json}");
        return;
    }
    let dir = Path::new(env!("CARGO_BIN_EXE_strahl-bench"))
        .parent()
        .expect("bench exe has a directory");
    for b in ["strahl-dataplane", "strahl-control", "strahl-client"] {
        assert!(
            dir.join(b).exists(),
            "{} missing: build it first",
            dir.join(b).display()
        );
    }
    let out = cmd.output().expect("spawn strahl-bench");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "strahl-bench native --quick failed: {}\n{stderr}",
        out.status
    );
    let json: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("stdout is one JSON value");
    let svg = std::fs::read_to_string(out_dir.join("native.svg")).expect("native.svg");
    let saved = std::fs::read_to_string(out_dir.join("native.json")).expect("native.json");
    let _ = std::fs::remove_dir_all(&out_dir);
    assert!(svg.starts_with("<svg") && svg.contains("<polyline"));
    assert!(saved.contains("\"results\""));
    let runs: Vec<&serde_json::Value> = json["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter(|r| r["frames"].is_u64())
        .collect();
    let kinds: Vec<&str> = runs
        .iter()
        .filter_map(|r| r["bench"]["kind"].as_str())
        .collect();
    assert_eq!(
        kinds,
        [
            "goodput",
            "latency_passthrough",
            "latency_passthrough_loss5",
            "latency_h264"
        ],
        "{json}"
    );
    for r in runs {
        let kind = &r["bench"]["kind"];
        // Frames crossed the veth and every one verified; the same-machine clock gave each a
        // capture → reassembled time.
        assert!(r["frames"].as_u64() >= Some(10), "{kind}: {r}");
        assert_eq!(r["verify_failures"], 0, "{kind}: {r}");
        assert!(
            r["capture_latency"]["p50_us"].as_u64().is_some(),
            "{kind}: {r}"
        );
        assert!(
            r["bench"]["host_cpu_s_per_gbit"].as_f64() > Some(0.0),
            "{kind}: {r}"
        );
    }
}
