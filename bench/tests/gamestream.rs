//! `strahl-bench gamestream` end to end, tiny: a few seconds at a low rate through the real
//! `strahl-dataplane` + `strahl-control` (scripts/run.sh, passthrough source) to the real
//! Moonlight core, so the wiring (stream generation, temp config, pairing through
//! `strahl-control pin`, launch, frame counting, metrics scrape, JSON + SVG) stays tested.
//!
//! It needs the two binaries next to this test's `strahl-bench` (`cargo test --workspace`, i.e.
//! `make test`, builds them) and a Python with moonlight-python (`make test` makes `.venv`).
//! It skips, printing why, only when the client could not get a stream because the host has no
//! media path yet (start failed at stage ≥ 8, ENet/video, or nothing was ever sent).

use std::path::{Path, PathBuf};
use std::process::Command;

fn bin_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_strahl-bench"))
        .parent()
        .expect("bench exe has a directory")
        .to_path_buf()
}

#[test]
fn gamestream_smoke() {
    let dir = bin_dir();
    for b in ["strahl-dataplane", "strahl-control"] {
        assert!(
            dir.join(b).exists(),
            "{} missing: build it first (`cargo build -p strahl-dataplane -p strahl-control`, \
             or run the whole workspace's tests as `make test` does)",
            dir.join(b).display()
        );
    }
    let out_dir =
        std::env::temp_dir().join(format!("strahl-bench-gs-smoke-{}", std::process::id()));
    let cache = out_dir.join("cache");
    let out = Command::new(env!("CARGO_BIN_EXE_strahl-bench"))
        .args([
            "gamestream",
            "--rates",
            "8",
            "--size",
            "640x360",
            "--fps",
            "30",
            "--warmup",
            "1",
            "--seconds",
            "3",
            "--runs",
            "1",
        ])
        .arg("--out")
        .arg(&out_dir)
        .arg("--cache")
        .arg(&cache)
        .output()
        .expect("spawn strahl-bench");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "strahl-bench gamestream failed: {}\n{stderr}",
        out.status
    );
    let json: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("stdout is one JSON value");
    let svg = std::fs::read_to_string(out_dir.join("gamestream.svg")).expect("gamestream.svg");
    let saved = std::fs::read_to_string(out_dir.join("gamestream.json")).expect("gamestream.json");
    let _ = std::fs::remove_dir_all(&out_dir);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&saved).unwrap(),
        json
    );
    let r = &json["results"][0];
    let a = &r["stream"]["analysis"];
    // The stream itself: 2 IDR periods, IDRs where expected, mean AU near 8 Mbit/s / 30 fps.
    assert_eq!(a["access_units"], 120, "{a}");
    assert_eq!(a["idr_access_units"], 2, "{a}");
    let mean = a["mean_au_bytes"].as_f64().unwrap();
    assert!((mean - 33_333.0).abs() / 33_333.0 < 0.15, "mean AU {mean}");
    let check = &r["stream"]["ffmpeg_check"];
    assert_eq!(check["frames"], 120, "{check}");
    assert_eq!(check["errors"], 0, "{check}");
    let run = &r["runs"][0];
    if let Some(e) = run.get("start_error") {
        let stage = e["stage"].as_u64().unwrap_or(0);
        assert!(stage >= 8, "the client failed before ENet/video: {run}");
        eprintln!(
            "SKIP gamestream_smoke: the host has no media path yet (client start failed at stage \
             {stage}, code {}): {}",
            e["code"], run["host_log_tail"]
        );
        return;
    }
    let received = run["frames_received"].as_u64().unwrap_or(0);
    let sent = run["host_counters_session"]["video_packets_sent"].as_f64();
    if received == 0 && sent.unwrap_or(0.0) == 0.0 {
        eprintln!("SKIP gamestream_smoke: the data plane sent no video ({run})");
        return;
    }
    // Wiring, not speed (the machine is shared; a starved data plane skips frame slots, which
    // the bench reports as frames_skipped): frames flowed, none was lost, the host sent at least
    // what the client got, and the achieved rate is what the received frames carry.
    assert!(received >= 10, "only {received} frames: {run}");
    assert_eq!(run["frames_lost"], 0, "{run}");
    assert_eq!(run["frames_in_window"].as_u64(), Some(received), "{run}");
    // The data plane's counters come from the status server's /metrics (the status page's
    // wiring into `serve`); without it the bench reports them as null with the reason.
    if run["host_metrics_note"].is_null() {
        let host_sent = run["host_counters_session"]["frames_sent"]
            .as_f64()
            .unwrap_or(0.0);
        assert!(
            host_sent >= received as f64,
            "host sent {host_sent} < received {received}"
        );
    } else {
        eprintln!("NOTE: no data-plane metrics: {}", run["host_metrics_note"]);
    }
    let achieved = run["achieved_mbps"].as_f64().unwrap();
    let window = run["window_s"].as_f64().unwrap();
    let expect = received as f64 * mean * 8.0 / window / 1e6;
    assert!(
        (achieved - expect).abs() / expect < 0.25,
        "achieved {achieved} Mbit/s vs {expect} from {received} frames of ~{mean} B: {run}"
    );
    assert!(
        achieved <= 8.0 * 1.25,
        "achieved {achieved} Mbit/s above the 8 Mbit/s stream"
    );
    assert!(run["dataplane_cpu_s"].as_f64().is_some(), "{run}");
    assert!(svg.starts_with("<svg") && svg.contains("<polyline"));
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

/// `gamestream --netns --quick`: strahl in a host namespace, the Moonlight core in a client
/// namespace across a veth, once per transport (af_xdp, io_uring, sendmmsg), 8 Mbit/s for 3 s
/// each, with the receive-side capture scored against the pacer's schedule (≈ 40 s). Without
/// root the bench must say in its JSON that it skipped, and why.
#[test]
fn gamestream_netns_quick() {
    let dir = bin_dir();
    let out_dir =
        std::env::temp_dir().join(format!("strahl-bench-gs-netns-{}", std::process::id()));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_strahl-bench"));
    cmd.args(["gamestream", "--netns", "--quick"])
        .arg("--out")
        .arg(out_dir.join("out"))
        .arg("--cache")
        .arg(out_dir.join("cache"));
    if !is_root() {
        let out = cmd.output().expect("spawn strahl-bench");
        let _ = std::fs::remove_dir_all(&out_dir);
        assert!(out.status.success(), "--netns without root must exit 0");
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
        assert!(
            json["skipped"].as_str().is_some_and(|s| s.contains("root")),
            "no skip reason: {json}"
        );
        return;
    }
    for b in ["strahl-dataplane", "strahl-control"] {
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
        "strahl-bench gamestream --netns --quick failed: {}\n{stderr}",
        out.status
    );
    let json: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("stdout is one JSON value");
    let svgs: Vec<String> = ["gamestream-netns.svg", "gamestream-netns-pacing.svg"]
        .iter()
        .map(|f| std::fs::read_to_string(out_dir.join("out").join(f)).expect(f))
        .collect();
    let _ = std::fs::remove_dir_all(&out_dir);
    assert!(
        svgs.iter()
            .all(|s| s.starts_with("<svg") && s.contains("<polyline"))
    );
    let results = json["results"].as_array().expect("results");
    let transports: Vec<&str> = results
        .iter()
        .filter_map(|r| r["transport"].as_str())
        .collect();
    assert_eq!(transports, ["af_xdp", "io_uring", "sendmmsg"], "{json}");
    for r in results {
        let t = r["transport"].as_str().unwrap_or("?");
        let run = &r["runs"][0];
        // The stream crossed the veth: frames flowed and none was lost.
        let received = run["frames_received"].as_u64().unwrap_or(0);
        assert!(received >= 10, "{t}: only {received} frames: {run}");
        assert_eq!(run["frames_lost"], 0, "{t}: {run}");
        // The receive-side capture saw the window's packets and scored whole frames.
        let rx = &run["receiver"];
        assert!(rx["packets_in_window"].as_u64() > Some(0), "{t}: {rx}");
        let pacing = &rx["pacing"];
        assert!(pacing["frames_scored"].as_u64() >= Some(10), "{t}: {rx}");
        for q in ["p50_us", "p99_us", "p999_us"] {
            let v = pacing["ipg_error_us"][q].as_f64();
            assert!(
                v.is_some_and(|v| v.is_finite() && v >= 0.0),
                "{t} {q}: {rx}"
            );
        }
        // Measured at the receiver: every frame carried parity.
        assert_eq!(pacing["frames_without_fec"], 0, "{t}: {rx}");
        assert!(
            r["median"]["dataplane_cpu_s_per_gbit"].as_f64().is_some(),
            "{t}: {r}"
        );
        // Which transport carried the media, once the data plane counts it per transport.
        let by: Vec<(&str, Option<f64>)> = ["af_xdp", "io_uring", "sendmmsg"]
            .iter()
            .map(|x| {
                let k = format!("media_packets_{x}");
                (*x, run["host_counters_session"][k.as_str()].as_f64())
            })
            .collect();
        if by.iter().any(|(_, v)| v.is_some()) {
            for (x, v) in &by {
                let v = v.unwrap_or(0.0);
                if *x == t {
                    assert!(v > 0.0, "{t}: no media packets through {t}: {by:?}");
                } else {
                    assert_eq!(v, 0.0, "{t}: media packets through {x}: {by:?}");
                }
            }
        } else {
            eprintln!("NOTE {t}: no strahl_media_packets_sent_total series yet: {by:?}");
        }
    }
}
