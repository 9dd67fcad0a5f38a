//! Fuzz entry points, shared by the cargo-fuzz targets and the corpus-replay test.
//!
//! Contract: each function accepts any bytes and never panics on its own account; it asserts
//! the codec's invariants (a decoded message re-encodes to something that decodes to itself;
//! the stream reader never holds more than one frame's bound). An assertion failure here is a
//! bug found.

use crate::msg::{Message, decode, decode_body, encode};
use crate::wire::{FrameReader, MAX_BODY};

/// `native_control`: the input is a control stream, delivered in chunks whose sizes the first
/// byte picks; every frame read from it is decoded and round-tripped.
pub fn fuzz_control(data: &[u8]) {
    let Some((&chunk, rest)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(chunk).max(1);
    let mut reader = FrameReader::new();
    for piece in rest.chunks(chunk) {
        reader.push(piece);
        loop {
            match reader.next_frame() {
                Ok(Some((t, body))) => check(t, &body),
                Ok(None) => break,
                // A framing error ends the stream (the shell closes the connection).
                Err(_) => return,
            }
        }
        assert!(reader.pending() <= MAX_BODY + 16 + chunk);
    }
}

fn check(t: u64, body: &[u8]) {
    let Ok(m) = decode_body(t, body) else {
        return;
    };
    if matches!(m, Message::Unknown(_)) {
        return;
    }
    let again = decode(&encode(&m)).expect("a decoded message re-encodes validly");
    assert_eq!(again, m);
}

/// `native_host`: the host's connection state machine fed whatever messages the input decodes
/// to (first byte: bit 0 = the client is paired, bit 1 = a pairing window is armed). Asserts
/// what no peer may achieve without the PIN: a pairing (nobody can forge the confirmation), a
/// second session on one connection, or any action after the connection closed.
pub fn fuzz_host(data: &[u8]) -> HostRun {
    use std::time::{Duration, Instant};

    use crate::arm::ArmWindow;
    use crate::host::{Action, HostConn, HostPolicy};
    use crate::pairing::Binding;

    let mut run = HostRun::default();
    let Some((&flags, rest)) = data.split_first() else {
        return run;
    };
    let t0 = Instant::now();
    let mut arm = ArmWindow::default();
    if flags & 2 != 0 {
        arm.arm("1234".into(), t0, Duration::from_secs(60));
    }
    let policy = HostPolicy {
        codecs: crate::msg::codec::H264 | crate::msg::codec::PASSTHROUGH,
        max_bitrate_kbps: 1_000_000,
        max_shard_len: 1408,
        fec_percent: 20,
        fec_range: (5, 50),
    };
    let bind = Binding {
        client_fp: [1; 32],
        host_fp: [2; 32],
        channel: [3; 32],
    };
    let mut conn = HostConn::new(bind, flags & 1 != 0, policy, t0);
    let mut reader = FrameReader::new();
    reader.push(rest);
    for step in 0..64u64 {
        let Ok(Some((t, body))) = reader.next_frame() else {
            break;
        };
        let Ok(m) = decode_body(t, &body) else {
            continue;
        };
        let was_closed = conn.is_closed();
        let now = t0 + Duration::from_millis(step * 100);
        let out = conn.on_message(m, &mut arm, now, [step as u8; 16], step);
        if was_closed {
            assert!(
                out.iter().all(|a| matches!(a, Action::Close(..))),
                "acted after close: {out:?}"
            );
        }
        for a in &out {
            assert!(!matches!(a, Action::Paired(_)), "paired without the PIN");
            match a {
                Action::StartSession(_) => run.sessions += 1,
                Action::Close(r, _) => run.refusals.push(*r),
                Action::Reconfigure(_) | Action::Loss(..) | Action::Keyframe(..) => {
                    run.session_messages += 1
                }
                _ => {}
            }
        }
        assert!(run.sessions <= 1, "two sessions on one connection");
    }
    run.closed = conn.is_closed();
    run
}

/// What one [`fuzz_host`] input did (the replay test checks the seeds against it).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct HostRun {
    pub sessions: usize,
    pub session_messages: usize,
    pub refusals: Vec<crate::msg::Reason>,
    pub closed: bool,
}
