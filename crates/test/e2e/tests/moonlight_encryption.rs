//! Video encryption (`[gamestream] encryption`, issue 13 item 4) with the real Moonlight core
//! (moonlight-python 0.3.0, its own process per client, driven by
//! `crates/test/moonlight/driver.py`) against strahl started as the README starts it, on
//! loopback:
//!
//! - `required_gives_even_a_clear_preferring_core_encrypted_video`: with
//!   `encryption = "required"` (DESCRIBE supports and requests SS_ENC_VIDEO|AUDIO), a core told
//!   to prefer clear video (`--client-encryption none`, encryptionFlags 0) still negotiates
//!   encrypted video — the core turns on what the host requests — and decodes it; the host's
//!   ANNOUNCE line says "video encrypted" and its packet size is P − 32. Stock cores therefore
//!   never meet the 403 that "required" answers a client without SS_ENC (tested with a crafted
//!   ANNOUNCE in `strahl-rtsp`'s `tests/encryption.rs`); "preferred" requests the same, so every
//!   such client gets encrypted video there too.
//!
//! That "preferred" (the default) gives the standard client encrypted video, and that nothing
//! on the wire then carries a clear H.264 start code, is checked where the media crosses a real
//! link: `netns_media.rs` (with "off" as its positive control).
//! Every wait is bounded (driver timeouts, log waits).

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use strahl_e2e::{Driver, DriverOutput, Options, Strahl};

/// A short stream client: start-up plus a few seconds of frames and /cancel.
const SESSION_CLIENT_TIMEOUT: Duration = Duration::from_secs(90);
/// How long the host's log line may take to appear after the client's step.
const LOG_WAIT: Duration = Duration::from_secs(10);

fn client(s: &Strahl, dir: &Path, extra: &[&str]) -> DriverOutput {
    let mut args: Vec<String> = vec!["session".into()];
    args.extend(s.client_args());
    args.extend(["--config".into(), dir.display().to_string()]);
    args.extend(["--frame-wait".into(), "1.5".into()]);
    args.extend(extra.iter().map(|x| x.to_string()));
    let out = Driver::spawn(&args)
        .and_then(|d| d.finish(SESSION_CLIENT_TIMEOUT))
        .unwrap_or_else(|e| panic!("{e}\n--- strahl log ---\n{}", s.log()));
    assert_eq!(
        out.code,
        Some(0),
        "driver failed:\n{out}\n--- strahl log ---\n{}",
        s.log()
    );
    out
}

fn step<'a>(out: &'a DriverOutput, s: &Strahl, name: &str) -> &'a Value {
    out.step(name)
        .unwrap_or_else(|| panic!("no step {name}:\n{out}\n--- strahl log ---\n{}", s.log()))
}

#[test]
fn required_gives_even_a_clear_preferring_core_encrypted_video() {
    let s = Strahl::start(Options::default().toml("[gamestream]\nencryption = \"required\"\n"))
        .unwrap_or_else(|e| panic!("{e}"));
    let dir = s.dir.join("client");
    s.pair(&dir).unwrap_or_else(|e| panic!("{e}"));

    let out = client(&s, &dir, &["--client-encryption", "none"]);
    let ctx = || format!("{out}\n--- strahl log ---\n{}", s.log());
    assert_eq!(step(&out, &s, "stream_start")["ok"], true, "{}", ctx());
    let frames = step(&out, &s, "frames");
    assert!(frames["count"].as_u64() > Some(10), "{}", ctx());
    assert_eq!(frames["gaps"], 0, "{}", ctx());
    s.wait_log("packet 1360 B", LOG_WAIT).unwrap_or_else(|e| {
        panic!(
            "the core did not shrink its packets for encryption: {e}\n{}",
            ctx()
        )
    });
    s.wait_log("video encrypted", LOG_WAIT)
        .unwrap_or_else(|e| panic!("no encrypted-video session in the log: {e}\n{}", ctx()));
    assert_eq!(s.log_count("video in clear"), 0, "{}", ctx());
    assert_eq!(s.log_count("requires encrypted video"), 0, "{}", ctx());
}
