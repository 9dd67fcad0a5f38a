//! Deterministic tests of the session manager: simulated time, a client-role `RtspCipher`, the
//! §B10 request sequence with the Appendix A SDP captured from the real client.
//!
//! Contract: this file holds what the test files share (configuration, test clients and their
//! launch requests, the §B10 requests, driving a whole RTSP sequence, control-event builders);
//! the tests are in [`rtsp`] (one client: launch → RTSP → PLAY, hostile input), [`control`]
//! (ENet control events of a streaming session) and [`clients`] (several clients at once). Each
//! imports this file with `use super::*`; this file imports only the module under test.

mod caps;
mod clients;
mod control;
mod rtsp;

use super::*;
use std::net::SocketAddr;
use std::time::Instant;
use strahl_enet::ControlEvent;
use strahl_gamestream::LaunchRequest;
use strahl_gamestream::launch::LaunchParams;
use strahl_ipc::{Message, SessionUpdate};
use strahl_seal::gamestream::{RtspCipher, RtspRead};

const SDP: &[u8] = include_bytes!("../../../rtsp/fuzz_corpus/sdp/moonlight_h264_720p60_20M.sdp");
const KEY: [u8; 16] = [0x42; 16];
const PEER: &str = "10.0.0.7:50123";

fn cfg() -> ManagerConfig {
    ManagerConfig {
        video_port: 40998,
        audio_port: 41000,
        control_port: 40999,
        fec_percent: 20,
        fec_percent_min: 5,
        fec_percent_max: 50,
        max_bitrate_kbps: 1_000_000,
        max_sessions: 2,
        video_encryption: strahl_rtsp::VideoEncryption::Preferred,
    }
}

/// The certificates (DER stand-ins) of the test clients.
const CERT_A: &[u8] = b"client A certificate";
const CERT_B: &[u8] = b"client B certificate";
const CERT_C: &[u8] = b"client C certificate";

fn key(cert: &[u8]) -> ClientKey {
    ClientKey::of_cert(cert)
}

fn ka() -> ClientKey {
    key(CERT_A)
}

fn req(app_id: u32, corever: u32) -> LaunchRequest {
    req_from(CERT_A, KEY, "10.0.0.7", app_id, corever)
}

/// A launch (or resume: `app_id` 0) of the client with `cert` from `ip`, keyed `rikey`.
fn req_from(cert: &[u8], rikey: [u8; 16], ip: &str, app_id: u32, corever: u32) -> LaunchRequest {
    LaunchRequest {
        params: LaunchParams {
            app_id,
            rikey,
            rikeyid: (-556_323_120i32) as u32,
            mode: None,
            sops: true,
            local_audio_play_mode: false,
            surround_audio_info: 196_610,
            gcmap: 0,
            hdr_mode: false,
            corever,
        },
        client_cert_der: cert.to_vec(),
        permissions: strahl_gamestream::Permissions::ALL,
        client_ip: ip.parse().unwrap(),
        local_ip: "10.0.0.1".parse().unwrap(),
    }
}

const RAND: LaunchRandom = LaunchRandom {
    ping_payload: 0x0123_4567_89AB_CDEF,
    connect_data: 0x8BAD_F00D,
};

fn requests() -> Vec<Vec<u8>> {
    let h = "X-GS-ClientVersion: 14\r\nHost: 10.0.0.1\r\n";
    let mut v: Vec<Vec<u8>> = [
        format!("OPTIONS rtsp://10.0.0.1:48010 RTSP/1.0\r\nCSeq: 1\r\n{h}\r\n"),
        format!("DESCRIBE rtsp://10.0.0.1:48010 RTSP/1.0\r\nCSeq: 2\r\n{h}Accept: application/sdp\r\n\r\n"),
        format!("SETUP streamid=audio/0/0 RTSP/1.0\r\nCSeq: 3\r\n{h}Transport: unicast;X-GS-ClientPort=50000-50001\r\n\r\n"),
        format!("SETUP streamid=video/0/0 RTSP/1.0\r\nCSeq: 4\r\n{h}Session: DEADBEEFCAFE\r\n\r\n"),
        format!("SETUP streamid=control/13/0 RTSP/1.0\r\nCSeq: 5\r\n{h}Session: DEADBEEFCAFE\r\n\r\n"),
    ]
    .into_iter()
    .map(String::into_bytes)
    .collect();
    let mut announce = format!(
        "ANNOUNCE streamid=control/13/0 RTSP/1.0\r\nCSeq: 6\r\n{h}Session: DEADBEEFCAFE\r\nContent-type: application/sdp\r\nContent-length: {}\r\n\r\n",
        SDP.len()
    )
    .into_bytes();
    announce.extend_from_slice(SDP);
    v.push(announce);
    v.push(format!("PLAY / RTSP/1.0\r\nCSeq: 7\r\n{h}Session: DEADBEEFCAFE\r\n\r\n").into_bytes());
    v
}

fn reply(step: RtspStep) -> (Vec<u8>, Vec<Message>) {
    let (bytes, control, ipc) = reply_all(step);
    assert!(control.is_empty(), "{control:?}");
    (bytes, ipc)
}

fn reply_all(step: RtspStep) -> (Vec<u8>, Vec<ControlAction>, Vec<Message>) {
    match step {
        RtspStep::Reply {
            bytes,
            control,
            ipc,
            ..
        } => (bytes, control, ipc),
        other => panic!("expected a reply, got {other:?}"),
    }
}

/// Runs the §B10 sequence (encrypted when `client` is given), each request fed in two pieces to
/// exercise NeedMore. Returns the plaintext replies and all IPC messages.
fn run(
    m: &mut SessionManager,
    client: Option<&mut RtspCipher>,
    now: Instant,
) -> (Vec<String>, Vec<Message>) {
    let (replies, control, ipc) = run_all(m, client, now);
    assert!(
        matches!(control.as_slice(), [ControlAction::Register { .. }]),
        "PLAY registers the control stream: {control:?}"
    );
    (replies, ipc)
}

/// [`run`], also returning the control actions.
fn run_all(
    m: &mut SessionManager,
    mut client: Option<&mut RtspCipher>,
    now: Instant,
) -> (Vec<String>, Vec<ControlAction>, Vec<Message>) {
    let peer: SocketAddr = PEER.parse().unwrap();
    let mut replies = Vec::new();
    let mut ipc = Vec::new();
    let mut control = Vec::new();
    for r in requests() {
        let wire = match client.as_deref_mut() {
            Some(c) => {
                let mut out = Vec::new();
                c.seal(&r, &mut out).unwrap();
                out
            }
            None => r,
        };
        let half = wire.len() / 2;
        assert!(matches!(
            m.rtsp_input(&wire[..half], false, peer, now),
            RtspStep::NeedMore { .. }
        ));
        let (bytes, ctl, msgs) = reply_all(m.rtsp_input(&wire, false, peer, now));
        control.extend(ctl);
        let text = match client.as_deref_mut() {
            Some(c) => {
                let mut plain = Vec::new();
                assert!(matches!(
                    c.open(&bytes, &mut plain).unwrap(),
                    RtspRead::Message { .. }
                ));
                plain
            }
            None => bytes,
        };
        replies.push(String::from_utf8(text).unwrap());
        ipc.extend(msgs);
    }
    (replies, control, ipc)
}

fn fec_report(total_data: u16, recv_data: u16) -> ControlEvent {
    ControlEvent::FecStatus(strahl_enet::FecStatus {
        frame_index: 9,
        highest_recv_seq: 0,
        next_contiguous_seq: 0,
        missing_before_highest: 0,
        total_data,
        total_parity: total_data / 5,
        recv_data,
        recv_parity: total_data / 5,
        fec_pct: 20,
        block_index: 0,
        block_count: 1,
    })
}

fn update(id: u64, fec: Option<u8>, keyframe: bool) -> Message {
    Message::SessionUpdate(SessionUpdate {
        id,
        bitrate_kbps: None,
        fec_percent: fec,
        request_keyframe: keyframe,
    })
}
