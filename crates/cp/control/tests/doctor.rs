//! The real `strahl-control doctor` on this machine: it must not crash and must print a
//! well-formed report; its verdicts are this machine's business, so only the structure and the
//! exit-code rule (non-zero exactly when a required finding fails) are asserted.

mod support;

use std::process::Command;

use serde_json::Value;
use support::*;

const CHECKS: &[&str] = &[
    "kernel_args",
    "kargs_dataplane",
    "kargs_headless",
    "sysctl",
    "nic_xdp",
    "af_xdp",
    "io_uring",
    "memlock",
    "nvidia_driver",
    "nvenc",
    "cuda",
    "drm",
    "uinput",
    "audio",
    "firewall",
    "time_sync",
];

#[test]
fn doctor_runs_here_and_reports_every_check() {
    let dir = Scratch::new("doctor");
    let (cfg, base) = dir.config();
    let out = Command::new(control_bin())
        .args(["doctor", "--json", "--config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    let code = out.status.code().expect("exited, not killed");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "doctor --json printed no JSON ({e}):\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let findings = v["findings"].as_array().unwrap();
    for c in CHECKS {
        assert!(
            findings.iter().any(|f| f["check"] == *c),
            "no {c} finding: {v:#}"
        );
    }
    // The ports of this test's configuration (free: nothing listens on them).
    for p in [base - 5, base, base + 21, base + 1] {
        let f = findings
            .iter()
            .find(|f| f["check"] == format!("port_tcp_{p}"))
            .unwrap_or_else(|| panic!("no port_tcp_{p}: {v:#}"));
        assert_eq!(f["level"], "required");
    }
    let mut required_failed = false;
    for f in findings {
        let level = f["level"].as_str().unwrap();
        let verdict = f["verdict"].as_str().unwrap();
        assert!(["required", "recommended"].contains(&level), "{f}");
        assert!(["ok", "fail", "unknown"].contains(&verdict), "{f}");
        assert!(!f["detail"].as_str().unwrap().is_empty(), "{f}");
        // Every problem says how to fix it; a pass carries no fix.
        assert_eq!(
            f["fix"].as_str().unwrap().is_empty(),
            verdict == "ok",
            "{f}"
        );
        required_failed |= level == "required" && verdict == "fail";
    }
    assert_eq!(v["required_missing"], required_failed);
    assert_eq!(
        code,
        i32::from(required_failed),
        "exit code follows the required findings"
    );

    // Human output: one line per finding plus the summary.
    let out = Command::new(control_bin())
        .args(["doctor", "--config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(code));
    assert!(
        text.contains(&format!("{} check(s):", findings.len())),
        "{text}"
    );
    for c in CHECKS {
        assert!(text.contains(c), "{c} missing in:\n{text}");
    }
}
