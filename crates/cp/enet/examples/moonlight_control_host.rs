//! Interop harness: plain RTSP (through `strahl_rtsp::RtspSession`) plus our ENet control
//! server on loopback, so a real moonlight-common-c client can get past stage 8 (control
//! stream) — see `interop/moonlight_control.py`. A test shell, not part of the library.
//!
//! Prints `KEY value` lines: `READY`, `REQUEST <line>`, `PLAY`, `CONTROL <event>`. After
//! `terminate_ms` (optional 6th arg) from the control connect it sends the graceful
//! termination (0x0109, 0x80030023). Exits when the control session ends or at the deadline.
//!
//! Usage: moonlight_control_host RTSP_PORT AUDIO_PORT VIDEO_PORT CONTROL_PORT RIKEY_HEX [TERMINATE_MS]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream, UdpSocket};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use strahl_enet::message::TERMINATION_GRACEFUL;
use strahl_enet::{ControlConfig, ControlEvent, ControlServer, SessionId};
use strahl_rtsp::{Event, LaunchContext, Parsed, PingPayload, RtspSession, parse_request};

/// Whole-run bound; the client's start-up takes a few seconds at most.
const DEADLINE: Duration = Duration::from_secs(40);
const READ_TIMEOUT: Duration = Duration::from_secs(5);
const PING_PAYLOAD: &str = "A1B2C3D4E5F60718";
const CONNECT_DATA: u32 = 0x8BAD_F00D;

/// One request per TCP connection (§B10): read until it parses, answer, close.
fn answer(session: &mut RtspSession, mut conn: TcpStream) -> Option<Event> {
    conn.set_read_timeout(Some(READ_TIMEOUT)).ok()?;
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    let outcome = loop {
        match parse_request(&buf) {
            Ok(Parsed::Complete { request, .. }) => break session.handle(&request),
            Err(e) => break RtspSession::malformed(&e),
            Ok(Parsed::NeedMore) => {}
        }
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => break session.handle_message(&buf),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if buf.len() > 64 * 1024 {
            return None;
        }
    };
    let line = buf.split(|&b| b == b'\r').next().unwrap_or(&[]);
    println!("REQUEST {}", String::from_utf8_lossy(line));
    if let Some(e) = &outcome.error {
        println!("REFUSED {e}");
    }
    let _ = conn.write_all(&outcome.response.to_bytes());
    let _ = conn.shutdown(Shutdown::Both);
    outcome.event
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let port = |i: usize| -> u16 { args[i].parse().expect("port") };
    let (rtsp, audio, video, control) = (port(1), port(2), port(3), port(4));
    let key_hex = &args[5];
    let mut rikey = [0u8; 16];
    for (i, b) in rikey.iter_mut().enumerate() {
        *b = u8::from_str_radix(&key_hex[2 * i..2 * i + 2], 16).expect("rikey hex");
    }
    let terminate_after = args.get(6).map(|s| Duration::from_millis(s.parse().expect("ms")));

    let mut ctx = LaunchContext::new(PingPayload::new(PING_PAYLOAD).unwrap(), CONNECT_DATA);
    ctx.audio_port = audio;
    ctx.video_port = video;
    ctx.control_port = control;
    let mut session = RtspSession::new(ctx);

    let (tx, rx) = mpsc::channel();
    let server = ControlServer::start(
        ControlConfig {
            bind: ([127, 0, 0, 1], control).into(),
            ..Default::default()
        },
        tx,
    )
    .expect("control server");
    let id = SessionId(1);
    server.add_session(id, CONNECT_DATA, rikey).unwrap();
    // Audio and video pings land here; nothing is streamed back.
    let _audio = UdpSocket::bind(("127.0.0.1", audio)).expect("bind audio");
    let _video = UdpSocket::bind(("127.0.0.1", video)).expect("bind video");
    let listener = TcpListener::bind(("127.0.0.1", rtsp)).expect("bind rtsp");
    listener.set_nonblocking(true).expect("nonblocking");
    println!("READY {rtsp}");
    std::io::stdout().flush().ok();

    let start = Instant::now();
    let mut connected_at = None;
    let mut terminated = false;
    'run: while start.elapsed() < DEADLINE {
        match listener.accept() {
            Ok((conn, _)) => {
                conn.set_nonblocking(false).ok();
                match answer(&mut session, conn) {
                    Some(Event::Play) => println!("PLAY"),
                    Some(e) => println!("EVENT {e:?}"),
                    None => {}
                }
            }
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
        while let Ok((_, ev)) = rx.try_recv() {
            println!("CONTROL {ev:?}");
            match ev {
                ControlEvent::Connected { .. } => connected_at = Some(Instant::now()),
                ControlEvent::Disconnected { .. } => break 'run,
                _ => {}
            }
        }
        if let (Some(t), Some(after)) = (connected_at, terminate_after)
            && !terminated
            && t.elapsed() >= after
        {
            server.terminate(id, TERMINATION_GRACEFUL).unwrap();
            terminated = true;
        }
        std::io::stdout().flush().ok();
    }
    // Let the queued termination/disconnect leave before the socket closes.
    std::thread::sleep(Duration::from_millis(300));
    server.shutdown();
    println!("DONE");
}
