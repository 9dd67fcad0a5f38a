//! Shared by `examples/moonlight_control_host.rs` and `tests/moonlight.rs`: a plain-RTSP
//! (through `strahl_rtsp::RtspSession`) + ENet control host on loopback with ephemeral ports,
//! serving one launch session to a real moonlight-common-c client. A test shell, not library
//! code. Every loop is bounded by [`DEADLINE`].

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream, UdpSocket};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use strahl_enet::message::TERMINATION_GRACEFUL;
use strahl_enet::{ControlConfig, ControlEvent, ControlServer, SessionId};
use strahl_rtsp::{Event, LaunchContext, Parsed, PingPayload, RtspSession, parse_request};

/// Whole-run bound; the client's start-up takes well under a second on loopback.
pub const DEADLINE: Duration = Duration::from_secs(40);
const READ_TIMEOUT: Duration = Duration::from_secs(5);
const PING_PAYLOAD: &str = "A1B2C3D4E5F60718";
pub const CONNECT_DATA: u32 = 0x8BAD_F00D;

/// What the host saw.
#[derive(Debug, Default)]
pub struct HostLog {
    pub requests: Vec<String>,
    pub refused: Vec<String>,
    pub played: bool,
    pub control: Vec<ControlEvent>,
}

pub struct Host {
    listener: TcpListener,
    session: RtspSession,
    server: ControlServer,
    rx: mpsc::Receiver<(SessionId, ControlEvent)>,
    _audio: UdpSocket,
    _video: UdpSocket,
    pub rtsp_port: u16,
    /// Rumble messages (controller, low, high) sent once the control stream is up.
    pub rumble_on_connect: Vec<(u16, u16, u16)>,
}

impl Host {
    pub fn bind(rikey: [u8; 16]) -> std::io::Result<Host> {
        let audio = UdpSocket::bind("127.0.0.1:0")?;
        let video = UdpSocket::bind("127.0.0.1:0")?;
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let (tx, rx) = mpsc::channel();
        let server = ControlServer::start(
            ControlConfig {
                bind: ([127, 0, 0, 1], 0).into(),
                ..Default::default()
            },
            tx,
        )?;
        server.add_session(SessionId(1), CONNECT_DATA, rikey)?;
        let mut ctx = LaunchContext::new(PingPayload::new(PING_PAYLOAD).unwrap(), CONNECT_DATA);
        ctx.audio_port = audio.local_addr()?.port();
        ctx.video_port = video.local_addr()?.port();
        ctx.control_port = server.local_addr().port();
        Ok(Host {
            rtsp_port: listener.local_addr()?.port(),
            listener,
            session: RtspSession::new(ctx),
            server,
            rx,
            _audio: audio,
            _video: video,
            rumble_on_connect: Vec::new(),
        })
    }

    /// Serve until the control session ends or the deadline. With `terminate_after`, send the
    /// graceful termination that long after the control connect.
    pub fn run(mut self, terminate_after: Option<Duration>, mut line: impl FnMut(&str)) -> HostLog {
        let mut log = HostLog::default();
        let start = Instant::now();
        let mut connected_at = None;
        let mut terminated = false;
        'run: while start.elapsed() < DEADLINE {
            match self.listener.accept() {
                Ok((conn, _)) => {
                    let _ = conn.set_nonblocking(false);
                    if let Some(Event::Play) = answer(&mut self.session, conn, &mut log, &mut line)
                    {
                        log.played = true;
                        line("PLAY");
                    }
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
            while let Ok((_, ev)) = self.rx.try_recv() {
                line(&format!("CONTROL {ev:?}"));
                let end = matches!(ev, ControlEvent::Disconnected { .. });
                if matches!(ev, ControlEvent::Connected { .. }) {
                    connected_at = Some(Instant::now());
                    for &(id, low, high) in &self.rumble_on_connect {
                        let _ = self.server.send_message(
                            SessionId(1),
                            strahl_enet::message::MSG_RUMBLE,
                            &strahl_enet::message::host::rumble(id, low, high),
                        );
                    }
                }
                log.control.push(ev);
                if end {
                    break 'run;
                }
            }
            if let (Some(t), Some(after)) = (connected_at, terminate_after)
                && !terminated
                && t.elapsed() >= after
            {
                let _ = self.server.terminate(SessionId(1), TERMINATION_GRACEFUL);
                terminated = true;
            }
        }
        // Let a queued termination/disconnect leave before the socket closes.
        std::thread::sleep(Duration::from_millis(300));
        self.server.shutdown();
        log
    }
}

/// One request per TCP connection (§B10): read until it parses, answer, close.
fn answer(
    session: &mut RtspSession,
    mut conn: TcpStream,
    log: &mut HostLog,
    line: &mut impl FnMut(&str),
) -> Option<Event> {
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
    let first = buf.split(|&b| b == b'\r').next().unwrap_or(&[]);
    let req = String::from_utf8_lossy(first).into_owned();
    line(&format!("REQUEST {req}"));
    log.requests.push(req);
    if let Some(e) = &outcome.error {
        line(&format!("REFUSED {e}"));
        log.refused.push(e.to_string());
    }
    let _ = conn.write_all(&outcome.response.to_bytes());
    let _ = conn.shutdown(Shutdown::Both);
    outcome.event
}
