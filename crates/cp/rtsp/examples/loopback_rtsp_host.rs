//! Interop harness: a throw-away plain-RTSP (`rtsp://`, corever 0) host on loopback that serves
//! ONE launch session through `RtspSession`, so a real moonlight-common-c client can be pointed at
//! it (see `interop/README.md`). Not part of the library: this is the I/O shell the
//! sans-IO core leaves to its caller, reduced to what a test needs.
//!
//! It also binds the audio and control UDP ports from the SETUP replies and reports the first
//! datagram on each: the audio ping must start with X-SS-Ping-Payload (§A11), the ENet CONNECT
//! must carry X-SS-Connect-Data (§B10). Every line it prints is `KEY value`; it exits after PLAY
//! plus both datagrams, or at the deadline.
//!
//! Usage: loopback_rtsp_host RTSP_PORT AUDIO_PORT VIDEO_PORT CONTROL_PORT [hevc] [av1]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream, UdpSocket};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use strahl_rtsp::{Event, LaunchContext, Parsed, PingPayload, RtspSession, parse_request};

/// Whole-run deadline: the client's RTSP phase takes < 1 s; its ENet attempt gives up after
/// about 8 s (§B10), so 30 s bounds a run with ample slack.
const DEADLINE: Duration = Duration::from_secs(30);
/// Per-read timeout on an RTSP connection (the client waits up to 15 s for a reply, §A8).
const READ_TIMEOUT: Duration = Duration::from_secs(5);
const PING_PAYLOAD: &str = "A1B2C3D4E5F60718";
const CONNECT_DATA: u32 = 0x8BAD_F00D;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn first_datagram(port: u16, tag: &'static str, tx: mpsc::Sender<(&'static str, Vec<u8>)>) {
    let sock = UdpSocket::bind(("127.0.0.1", port)).expect("bind udp");
    sock.set_read_timeout(Some(DEADLINE)).expect("timeout");
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            let _ = tx.send((tag, buf[..n].to_vec()));
        }
    });
}

/// Read one request (or up to EOF), answer it, close. Returns the outcome's event.
fn serve(session: &mut RtspSession, mut conn: TcpStream, start: Instant) -> Option<Event> {
    conn.set_read_timeout(Some(READ_TIMEOUT)).ok()?;
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    let outcome = loop {
        if start.elapsed() > DEADLINE {
            return None;
        }
        match parse_request(&buf) {
            Ok(Parsed::Complete { request, .. }) => break session.handle(&request),
            Err(e) => break RtspSession::malformed(&e),
            Ok(Parsed::NeedMore) => {}
        }
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => break session.handle_message(&buf),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let first_line = buf.split(|&b| b == b'\r').next().unwrap_or(&[]);
    println!("REQUEST {}", String::from_utf8_lossy(first_line));
    println!("RAW_HEX {}", hex(&buf));
    if let Ok(Parsed::Complete { request, .. }) = parse_request(&buf) {
        for h in &request.headers {
            println!("HEADER {}: {}", h.name, h.value);
        }
        if !request.body.is_empty() {
            println!("BODY_LEN {}", request.body.len());
            println!("BODY_HEX {}", hex(request.body));
        }
    }
    let bytes = outcome.response.to_bytes();
    println!("RESPONSE_HEX {}", hex(&bytes));
    if let Some(e) = &outcome.error {
        println!("REFUSED {e}");
    }
    let _ = conn.write_all(&bytes);
    let _ = conn.shutdown(Shutdown::Both);
    outcome.event
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let port = |i: usize| -> u16 { args[i].parse().expect("port") };
    let (rtsp, audio, video, control) = (port(1), port(2), port(3), port(4));
    let mut ctx = LaunchContext::new(PingPayload::new(PING_PAYLOAD).unwrap(), CONNECT_DATA);
    ctx.audio_port = audio;
    ctx.video_port = video;
    ctx.control_port = control;
    ctx.codecs.hevc = args.iter().any(|a| a == "hevc");
    ctx.codecs.av1 = args.iter().any(|a| a == "av1");
    let mut session = RtspSession::new(ctx);

    let (tx, rx) = mpsc::channel();
    first_datagram(audio, "AUDIO_PING", tx.clone());
    first_datagram(control, "ENET", tx);
    let _video = UdpSocket::bind(("127.0.0.1", video)).expect("bind video");
    let listener = TcpListener::bind(("127.0.0.1", rtsp)).expect("bind rtsp");
    listener.set_nonblocking(true).expect("nonblocking");
    println!("READY {rtsp}");
    std::io::stdout().flush().ok();

    let start = Instant::now();
    let mut played = false;
    let mut seen: Vec<&str> = Vec::new();
    while start.elapsed() < DEADLINE && !(played && seen.len() == 2) {
        match listener.accept() {
            Ok((conn, _)) => {
                conn.set_nonblocking(false).ok();
                match serve(&mut session, conn, start) {
                    Some(Event::Configured(n)) => println!("CONFIGURED {n:?}"),
                    Some(Event::Play) => {
                        played = true;
                        println!("PLAY");
                    }
                    Some(e) => println!("EVENT {e:?}"),
                    None => {}
                }
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
        while let Ok((tag, data)) = rx.try_recv() {
            println!("{tag} {}", hex(&data));
            seen.push(tag);
        }
        std::io::stdout().flush().ok();
    }
    println!("DONE played={played} datagrams={}", seen.len());
}
