//! Native `strahl/1` epochs across network namespaces: strahl started the README's way in a
//! host namespace, the real `strahl-client` in a client namespace behind a veth, asking for a
//! new configuration mid-stream (`--reconfigure`). The host answers `reconfigured` only with the
//! first frame the data plane actually sent in the new epoch, and the client's summary records
//! each frame size with the frame it started at (checkable frames are bitrate / 8 / fps bytes,
//! so the size is the configuration): the size changes exactly at that frame.
//!
//! - [`stream_reconfigured_mid_stream_across_namespaces`]: bitrate and FEC (issue 10 item 6):
//!   epoch 1 opens at a real frame, the frames double in size from it, none is lost.
//! - [`stream_changes_mode_mid_stream_across_namespaces`]: a mode change (1280x720@60 →
//!   640x360@30 at the same bitrate): the frames from `first_frame` on are the new mode's size
//!   (twice the old, half as many a second), none before it, none lost or mixed.
//! - [`loss_beyond_fec_lowers_the_pacing_across_namespaces`]: the other loss-report loop — the
//!   XDP loss program drops 30 % of the media with FEC held at 20 %, so frames are lost in every
//!   report; after a second of that the control plane caps the session's pacing at 8× its wire
//!   rate (one `SessionPace`) and the data plane applies it to the session's pacer.
//!
//! Needs root (namespaces, veth); without it each case prints `SKIPPED` and counts as ignored
//! ([`strahl_e2e::harness`]). Helpers: `native_support/`.

use std::process::ExitCode;

use serde_json::Value;
use strahl_e2e::harness::{self, Case, Outcome};
use strahl_e2e::netns;
use strahl_net::bpf::LossConfig;

mod native_support;
use native_support::*;

/// The summary's `frame_sizes` as (from frame, bytes).
fn frame_sizes(v: &Value) -> Vec<(u64, u64)> {
    v["frame_sizes"]
        .as_array()
        .unwrap_or_else(|| panic!("frame_sizes in {v}"))
        .iter()
        .map(|r| (count(r, "from_frame"), count(r, "bytes")))
        .collect()
}

/// The one epoch the stream opened: its first frame, after checking that the frame sizes
/// change from `before` to `after` bytes exactly there and that frames of both epochs arrived.
fn one_epoch(v: &Value, before: u64, after: u64) -> u64 {
    let r = &v["reconfigured"];
    assert_eq!(r.as_array().map(Vec::len), Some(1), "{v}");
    let first = count(&r[0], "first_frame");
    assert!(first > 0, "a real frame id, not 0: {v}");
    assert_eq!(
        frame_sizes(v),
        [(0, before), (first, after)],
        "every frame before {first} of the old size, every one from it of the new: {v}"
    );
    assert!(
        count(v, "frames") > first + 20,
        "frames of the new epoch arrived: {v}"
    );
    first
}

/// A reconfigure 2 s into the stream doubles the bitrate and raises FEC to 35 % (issue 10
/// item 6): the host opens epoch 1 at a real frame, the frames double from it, none is lost.
fn stream_reconfigured_mid_stream_across_namespaces() -> Outcome {
    if let Some(why) = netns::root_or_skip_reason() {
        return Outcome::Skipped(why);
    }
    let (code, v, s) = stream_across(
        "",
        &[
            "--seconds",
            "4",
            "--bitrate",
            "50000",
            "--mode",
            "1280x720@60",
            "--reconfigure",
            "2,100000,35",
        ],
    );
    assert_clean(code, &v, &s, 60);
    let r = &v["reconfigured"][0];
    assert_eq!(r["epoch"], 1, "{v}");
    assert_eq!(r["bitrate_kbps"], 100_000, "{v}");
    assert_eq!(r["fec_percent"], 35, "{v}");
    assert_eq!(r["mode"], "1280x720@60", "the mode stays: {v}");
    // 50 Mbit/s at 60 fps: 104 166 B frames; 100 Mbit/s: 208 333 B.
    let first = one_epoch(&v, 104_166, 208_333);
    eprintln!("epoch 1 from frame {first}");
    Outcome::Passed
}

/// A mode change 2 s into the stream (1280x720@60 → 640x360@30, 50 Mbit/s throughout): the
/// data plane re-makes the pattern source at 30 fps from one frame on, the host names that
/// frame, and the client sees every frame before it at 60 fps' size and every one from it at
/// 30 fps' — none lost, none of one epoch among the other's.
fn stream_changes_mode_mid_stream_across_namespaces() -> Outcome {
    if let Some(why) = netns::root_or_skip_reason() {
        return Outcome::Skipped(why);
    }
    let (code, v, s) = stream_across(
        "",
        &[
            "--seconds",
            "4",
            "--bitrate",
            "50000",
            "--mode",
            "1280x720@60",
            "--reconfigure",
            "2,,,640x360@30",
        ],
    );
    assert_clean(code, &v, &s, 60);
    let r = &v["reconfigured"][0];
    assert_eq!(r["epoch"], 1, "{v}");
    assert_eq!(r["mode"], "640x360@30", "{v}");
    assert_eq!(r["bitrate_kbps"], 50_000, "{v}");
    let first = one_epoch(&v, 104_166, 208_333);
    // The data plane said the same frame in its log.
    assert!(
        s.log().contains(&format!("epoch 1 from frame {first}")),
        "{}",
        s.log()
    );
    eprintln!("640x360@30 from frame {first}");
    Outcome::Passed
}

/// 30 % of the media dropped for 4 s with FEC fixed at 20 % (it cannot cover it): the client's
/// reports carry lost frames throughout, and the host's pacing policy caps the session at
/// `FIRST_CUT_MULTIPLE` (8) × its wire rate — 20 Mbit/s with 20 % parity in the welcome's
/// shards plus 72 B a datagram — once, both planes saying so in the log.
fn loss_beyond_fec_lowers_the_pacing_across_namespaces() -> Outcome {
    if let Some(why) = netns::root_or_skip_reason() {
        return Outcome::Skipped(why);
    }
    let loss = LossConfig {
        probability: 0.3,
        udp_port: LOSSY_MEDIA_PORT,
        ..LossConfig::default()
    };
    let (_, v, s, st) = stream_with_loss(
        "[video]\nfec_percent_min = 20\nfec_percent_default = 20\nfec_percent_max = 20\n",
        &[
            "--seconds",
            "4",
            "--bitrate",
            "20000",
            "--mode",
            "1280x720@60",
        ],
        Some(loss),
    );
    assert!(st.expect("loss counters").dropped_random > 1000);
    assert!(count(&v, "lost") > 30, "frames lost beyond FEC: {v}");
    let shard = count(&v, "shard_len");
    let wire = (20_000 * 120 / 100 * (shard + 72)).div_ceil(shard);
    let log = s.log();
    let want = format!("paced at most {} kbit/s", 8 * wire);
    assert_eq!(log.matches(&want).count(), 1, "{want} once:\n{log}");
    assert!(
        log.contains(&format!("video paced at {} bit/s", 8 * wire * 1000)),
        "the data plane applied it:\n{log}"
    );
    eprintln!("{want} after {} frames lost", count(&v, "lost"));
    Outcome::Passed
}

fn main() -> ExitCode {
    harness::run(&[
        Case {
            name: "stream_reconfigured_mid_stream_across_namespaces",
            run: stream_reconfigured_mid_stream_across_namespaces,
        },
        Case {
            name: "stream_changes_mode_mid_stream_across_namespaces",
            run: stream_changes_mode_mid_stream_across_namespaces,
        },
        Case {
            name: "loss_beyond_fec_lowers_the_pacing_across_namespaces",
            run: loss_beyond_fec_lowers_the_pacing_across_namespaces,
        },
    ])
}
