//! Every bench subcommand still runs: `--quick` prints one JSON object and `--plot` writes an SVG
//! with at least one data series. (Timings are not asserted: these machines are noisy; the bench is
//! where speed is reported, not the test suite.)

use std::process::Command;

fn run_quick(sub: &str) -> (serde_json::Value, String) {
    let dir = std::env::temp_dir().join(format!("strahl-bench-smoke-{}-{sub}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let svg = dir.join(format!("{sub}.svg"));
    let out = Command::new(env!("CARGO_BIN_EXE_strahl-bench"))
        .args([sub, "--quick", "--plot"])
        .arg(&svg)
        .output()
        .expect("spawn strahl-bench");
    assert!(
        out.status.success(),
        "strahl-bench {sub} --quick failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).expect("utf-8 stdout");
    let json: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!("strahl-bench {sub}: stdout is not one JSON value ({e}): {stdout}")
    });
    let svg_text =
        std::fs::read_to_string(&svg).unwrap_or_else(|e| panic!("{}: {e}", svg.display()));
    let _ = std::fs::remove_dir_all(&dir);
    (json, svg_text)
}

fn check(sub: &str) {
    let (json, svg) = run_quick(sub);
    let obj = json
        .as_object()
        .unwrap_or_else(|| panic!("{sub}: JSON is not an object: {json}"));
    assert!(!obj.is_empty(), "{sub}: empty JSON object");
    assert!(
        svg.starts_with("<svg") && svg.contains("<polyline"),
        "{sub}: SVG has no series"
    );
}

#[test]
fn fec_runs() {
    check("fec");
}

#[test]
fn seal_runs() {
    check("seal");
}

#[test]
fn pipeline_runs() {
    check("pipeline");
}

#[test]
fn loss_runs() {
    check("loss");
}

/// `emit` needs root for its namespaces: without it the quick run must still exit 0 and say in
/// its JSON what was skipped and why (then there is nothing to plot).
#[test]
fn emit_runs() {
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false);
    if root {
        check("emit");
        let (json, _) = run_quick("emit");
        let results = json["results"].as_array().expect("results array");
        let cases: Vec<&str> = results.iter().filter_map(|r| r["case"].as_str()).collect();
        for c in ["sendmmsg", "sendmmsg+gso", "send"] {
            assert!(cases.contains(&c), "emit: case {c} missing: {json}");
        }
        for r in results {
            assert!(r["pps_median"].as_f64().unwrap_or(0.0) > 0.0, "{r}");
            assert!(
                r["cpu_ns_per_packet_median"].as_f64().unwrap_or(0.0) > 0.0,
                "{r}"
            );
        }
    } else {
        let out = Command::new(env!("CARGO_BIN_EXE_strahl-bench"))
            .args(["emit", "--quick"])
            .output()
            .expect("spawn strahl-bench");
        assert!(
            out.status.success(),
            "emit --quick without root must exit 0"
        );
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
        assert!(
            json["skipped"].as_str().is_some_and(|s| s.contains("root")),
            "emit: no skip reason: {json}"
        );
    }
}

#[test]
fn pacing_runs() {
    check("pacing");
    let (json, _) = run_quick("pacing");
    for k in ["tx_tile", "sleep_16_burst"] {
        assert_eq!(json[k]["packets"].as_u64(), Some(20_000), "{k}: {json}");
        assert!(json[k]["p99_us"].as_f64().is_some(), "{k}: {json}");
    }
}

#[test]
fn unknown_subcommand_is_a_usage_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_strahl-bench"))
        .arg("nope")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown subcommand"));
}
