//! A rusty_enet client against the control server on loopback (ephemeral ports): connect
//! data binding, V2-encrypted messages both ways, tampering, termination. Every wait is
//! bounded by WAIT.

use std::net::{SocketAddr, UdpSocket};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rusty_enet as enet;
use strahl_enet::message::{self, FecStatus};
use strahl_enet::{
    ControlConfig, ControlEvent, ControlServer, DisconnectReason, InputEvent, SessionId,
};
use strahl_input::wire::encode;
use strahl_seal::gamestream::{ControlCipher, Role};

const WAIT: Duration = Duration::from_secs(5);
const KEY: [u8; 16] = *b"0123456789abcdef";
const CONNECT_DATA: u32 = 0x1234_5678;

fn server() -> (ControlServer, mpsc::Receiver<(SessionId, ControlEvent)>) {
    server_with(ControlConfig::default().session_timeout)
}

fn server_with(timeout: Duration) -> (ControlServer, mpsc::Receiver<(SessionId, ControlEvent)>) {
    let (tx, rx) = mpsc::channel();
    let cfg = ControlConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        session_timeout: timeout,
        ..Default::default()
    };
    (ControlServer::start(cfg, tx).unwrap(), rx)
}

struct Client {
    host: enet::Host<UdpSocket>,
    peer: enet::PeerID,
    cipher: ControlCipher,
    buf: Vec<u8>,
    /// Client-side ENet events seen while waiting for a server event; `poll` returns them first.
    stash: std::collections::VecDeque<ClientEvent>,
}

enum ClientEvent {
    Connected,
    Disconnected,
    Packet(Vec<u8>),
}

impl Client {
    fn new(server: SocketAddr, data: u32) -> Client {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut host = enet::Host::new(
            sock,
            enet::HostSettings {
                peer_limit: 1,
                channel_limit: 48,
                ..Default::default()
            },
        )
        .unwrap();
        // Moonlight: 48 channels, data = connect data (§A12, §B10).
        let peer = host.connect(server, 48, data).unwrap().id();
        Client {
            host,
            peer,
            cipher: ControlCipher::new(&KEY, Role::Client),
            buf: Vec::new(),
            stash: Default::default(),
        }
    }

    /// One service call: the next client-side ENet event, if any.
    fn step(&mut self) -> Option<ClientEvent> {
        let e = self.host.service().unwrap()?;
        Some(match e.no_ref() {
            enet::EventNoRef::Connect { .. } => ClientEvent::Connected,
            enet::EventNoRef::Disconnect { .. } => ClientEvent::Disconnected,
            enet::EventNoRef::Receive { packet, .. } => ClientEvent::Packet(packet.data().to_vec()),
        })
    }

    fn poll(&mut self, deadline: Instant) -> Option<ClientEvent> {
        if let Some(e) = self.stash.pop_front() {
            return Some(e);
        }
        while Instant::now() < deadline {
            match self.step() {
                Some(e) => return Some(e),
                None => std::thread::sleep(Duration::from_millis(1)),
            }
        }
        None
    }

    fn wait_connected(&mut self) {
        let deadline = Instant::now() + WAIT;
        assert!(matches!(self.poll(deadline), Some(ClientEvent::Connected)));
    }

    fn send(&mut self, channel: u8, msg_type: u16, payload: &[u8], reliable: bool) {
        self.cipher
            .seal_message(msg_type, payload, &mut self.buf)
            .unwrap();
        self.send_raw(channel, reliable);
    }

    fn send_raw(&mut self, channel: u8, reliable: bool) {
        let p = if reliable {
            enet::Packet::reliable(self.buf.as_slice())
        } else {
            enet::Packet::unreliable_unsequenced(self.buf.as_slice())
        };
        self.host.peer_mut(self.peer).send(channel, &p).unwrap();
        self.host.flush();
    }

    /// Service the client while waiting for a server event (keeps ENet acks flowing). The
    /// periodic [`ControlEvent::RoundTrip`] samples are skipped (`round_trip_is_reported`
    /// checks them).
    fn next_event(
        &mut self,
        rx: &mpsc::Receiver<(SessionId, ControlEvent)>,
    ) -> (SessionId, ControlEvent) {
        self.next_matching(rx, |e| !matches!(e, ControlEvent::RoundTrip { .. }))
    }

    fn next_matching(
        &mut self,
        rx: &mpsc::Receiver<(SessionId, ControlEvent)>,
        want: impl Fn(&ControlEvent) -> bool,
    ) -> (SessionId, ControlEvent) {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if let Some(e) = self.step() {
                self.stash.push_back(e);
            }
            if let Ok(e) = rx.recv_timeout(Duration::from_millis(2))
                && want(&e.1)
            {
                return e;
            }
        }
        panic!("no matching control event within {WAIT:?}");
    }
}

/// A live session's round-trip estimate reaches the manager about once per
/// `RTT_REPORT_INTERVAL`, for that session, and is refined by real acknowledgements: ENet
/// starts from a 500 ms guess, and on loopback ~30 acks in 3 s bring it far below that.
#[test]
fn round_trip_is_reported() {
    let (srv, rx) = server();
    let id = SessionId(11);
    srv.add_session(id, CONNECT_DATA, KEY).unwrap();
    let mut c = Client::new(srv.local_addr(), CONNECT_DATA);
    c.wait_connected();
    assert!(matches!(
        c.next_event(&rx).1,
        ControlEvent::Connected { .. }
    ));
    let t0 = Instant::now();
    let mut samples = Vec::new();
    // Bounded: three samples, each within WAIT.
    while samples.len() < 3 {
        let (sid, ev) = c.next_matching(&rx, |e| matches!(e, ControlEvent::RoundTrip { .. }));
        assert_eq!(sid, id);
        let ControlEvent::RoundTrip { rtt } = ev else {
            unreachable!()
        };
        samples.push((t0.elapsed(), rtt));
    }
    let span = samples[2].0 - samples[0].0;
    assert!(
        span >= strahl_enet::RTT_REPORT_INTERVAL && span < 4 * strahl_enet::RTT_REPORT_INTERVAL,
        "three samples over {span:?}: {samples:?}"
    );
    assert!(
        samples.iter().all(|s| s.1 <= Duration::from_millis(500))
            && samples[2].1 < Duration::from_millis(250),
        "loopback RTT estimate: {samples:?}"
    );
}

#[test]
fn connect_messages_and_termination() {
    let (srv, rx) = server();
    let id = SessionId(7);
    srv.add_session(id, CONNECT_DATA, KEY).unwrap();
    let mut c = Client::new(srv.local_addr(), CONNECT_DATA);
    c.wait_connected();
    let (sid, ev) = c.next_event(&rx);
    assert_eq!(sid, id);
    assert!(matches!(ev, ControlEvent::Connected { .. }));

    c.send(1, message::MSG_IDR_REQUEST, &[0, 0], true);
    assert_eq!(c.next_event(&rx), (id, ControlEvent::IdrRequested));

    // A ping produces no event; the next message still arrives in order.
    c.send(0, message::MSG_PING, &[0; 4], true);
    let fec = FecStatus {
        frame_index: 42,
        highest_recv_seq: 17,
        next_contiguous_seq: 9,
        missing_before_highest: 3,
        total_data: 20,
        total_parity: 4,
        recv_data: 18,
        recv_parity: 4,
        fec_pct: 20,
        block_index: 1,
        block_count: 2,
    };
    c.send(0, message::MSG_FEC_STATUS, &fec.encode(), false);
    assert_eq!(c.next_event(&rx), (id, ControlEvent::FecStatus(fec)));

    c.send(2, message::MSG_INPUT, &encode::key(true, 0x41, 1), true);
    assert_eq!(
        c.next_event(&rx),
        (
            id,
            ControlEvent::Input(InputEvent::Key {
                down: true,
                key_code: 0x41,
                modifiers: 1,
                flags: 0
            })
        )
    );
    c.send(3, message::MSG_INPUT, &encode::mouse_move(-10, 10), true);
    assert_eq!(
        c.next_event(&rx),
        (
            id,
            ControlEvent::Input(InputEvent::MouseMove { dx: -10, dy: 10 })
        )
    );
    let mut rfi = [0u8; 24];
    rfi[..4].copy_from_slice(&100u32.to_le_bytes());
    rfi[8..12].copy_from_slice(&104u32.to_le_bytes());
    c.send(1, message::MSG_RFI, &rfi, true);
    assert_eq!(
        c.next_event(&rx),
        (
            id,
            ControlEvent::RefInvalidated {
                first_frame: 100,
                last_frame: 104
            }
        )
    );

    // Plaintext is dropped without ending the session.
    c.buf = vec![0x02, 0x03, 0x02, 0x00, 0, 0];
    c.send_raw(1, true);
    c.send(0, message::MSG_START_B, &[0], true);
    assert_eq!(c.next_event(&rx), (id, ControlEvent::StartB));

    // A host message (rumble) reaches the client sealed with the host's IV.
    srv.send_message(
        id,
        message::MSG_RUMBLE,
        &message::host::rumble(0, 0x1111, 0x2222),
    )
    .unwrap();
    let deadline = Instant::now() + WAIT;
    match c.poll(deadline) {
        Some(ClientEvent::Packet(p)) => {
            let mut pt = Vec::new();
            assert_eq!(c.cipher.open(&p, &mut pt), Ok(0), "host seq starts at 0");
            let (ty, payload) = ControlCipher::parse_v2(&pt).unwrap();
            assert_eq!(ty, message::MSG_RUMBLE);
            assert_eq!(&payload[4..], &[0, 0, 0x11, 0x11, 0x22, 0x22]);
        }
        _ => panic!("rumble not received"),
    }

    // /cancel: termination reaches the client and decrypts to the graceful HRESULT.
    srv.terminate(id, message::TERMINATION_GRACEFUL).unwrap();
    assert_eq!(
        c.next_event(&rx),
        (
            id,
            ControlEvent::Disconnected {
                reason: DisconnectReason::Terminated(message::TERMINATION_GRACEFUL)
            }
        )
    );
    let deadline = Instant::now() + WAIT;
    let mut got_termination = false;
    let mut disconnected = false;
    while let Some(e) = c.poll(deadline) {
        match e {
            ClientEvent::Packet(p) => {
                let mut host_cipher_view = Vec::new();
                c.cipher.open(&p, &mut host_cipher_view).unwrap();
                let (ty, payload) = ControlCipher::parse_v2(&host_cipher_view).unwrap();
                assert_eq!(ty, message::MSG_TERMINATION);
                assert_eq!(u32::from_be_bytes(payload.try_into().unwrap()), 0x8003_0023);
                got_termination = true;
            }
            ClientEvent::Disconnected => {
                disconnected = true;
                break;
            }
            ClientEvent::Connected => panic!("second connect"),
        }
    }
    assert!(got_termination, "termination message not received");
    assert!(disconnected, "server did not disconnect after termination");
    srv.shutdown();
}

/// Apollo's set-clipboard (0x3001) crosses real ENet whole, also at the largest size the V2
/// framing carries (ENet fragments it), and the session goes on afterwards.
#[test]
fn set_clipboard_arrives_whole() {
    let (srv, rx) = server();
    let id = SessionId(5);
    srv.add_session(id, CONNECT_DATA, KEY).unwrap();
    let mut c = Client::new(srv.local_addr(), CONNECT_DATA);
    c.wait_connected();
    assert!(matches!(
        c.next_event(&rx).1,
        ControlEvent::Connected { .. }
    ));
    c.send(0, message::MSG_SET_CLIPBOARD, "grüß dich".as_bytes(), true);
    assert_eq!(
        c.next_event(&rx),
        (
            id,
            ControlEvent::SetClipboard {
                text: "grüß dich".as_bytes().to_vec()
            }
        )
    );
    let max = ControlCipher::MAX_PLAINTEXT_LEN - ControlCipher::V2_HEADER_LEN;
    let big: Vec<u8> = (0..max).map(|i| b'a' + (i % 26) as u8).collect();
    c.send(0, message::MSG_SET_CLIPBOARD, &big, true);
    assert_eq!(
        c.next_event(&rx),
        (id, ControlEvent::SetClipboard { text: big })
    );
    c.send(1, message::MSG_IDR_REQUEST, &[0, 0], true);
    assert_eq!(c.next_event(&rx), (id, ControlEvent::IdrRequested));
    srv.shutdown();
}

/// A sink whose `outgoing` hands the service thread a rumble for its session once connected
/// (as the control plane's input sink does with the games' force feedback); events go on to
/// the test's channel.
struct RumblingSink {
    tx: mpsc::Sender<(SessionId, ControlEvent)>,
    connected: Option<SessionId>,
    sent: bool,
}

impl strahl_enet::ControlEventSink for RumblingSink {
    fn event(&mut self, session: SessionId, ev: ControlEvent) {
        if matches!(ev, ControlEvent::Connected { .. }) {
            self.connected = Some(session);
        }
        let _ = self.tx.send((session, ev));
    }

    fn outgoing(&mut self, out: &mut Vec<strahl_enet::Outgoing>) {
        if let (Some(s), false) = (self.connected, self.sent) {
            self.sent = true;
            let r = strahl_input::Rumble {
                pad: 1,
                low_freq: 0x8000,
                high_freq: 0x4000,
            };
            out.push(strahl_enet::input_bridge::rumble_message(s, &r));
            // A session nobody is connected for: dropped, never sent to another peer.
            out.push(strahl_enet::input_bridge::rumble_message(
                SessionId(999),
                &r,
            ));
        }
    }
}

#[test]
fn a_sinks_outgoing_rumble_reaches_its_client_sealed() {
    let (tx, rx) = mpsc::channel();
    let cfg = ControlConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        ..Default::default()
    };
    let sink = RumblingSink {
        tx,
        connected: None,
        sent: false,
    };
    let srv = ControlServer::start(cfg, sink).unwrap();
    let id = SessionId(3);
    srv.add_session(id, CONNECT_DATA, KEY).unwrap();
    let mut c = Client::new(srv.local_addr(), CONNECT_DATA);
    c.wait_connected();
    assert!(matches!(
        c.next_event(&rx),
        (s, ControlEvent::Connected { .. }) if s == id
    ));
    let deadline = Instant::now() + WAIT;
    let mut got = Vec::new();
    while let Some(e) = c.poll(deadline) {
        if let ClientEvent::Packet(p) = e {
            let mut pt = Vec::new();
            c.cipher.open(&p, &mut pt).unwrap();
            let (ty, payload) = ControlCipher::parse_v2(&pt).unwrap();
            got.push((ty, payload.to_vec()));
            break;
        }
    }
    assert_eq!(
        got,
        [(
            message::MSG_RUMBLE,
            vec![0xEE, 0xFF, 0xC0, 0, 1, 0, 0x00, 0x80, 0x00, 0x40]
        )]
    );
    srv.shutdown();
}

#[test]
fn unknown_connect_data_is_refused() {
    let (srv, rx) = server();
    srv.add_session(SessionId(1), CONNECT_DATA, KEY).unwrap();
    let mut c = Client::new(srv.local_addr(), CONNECT_DATA ^ 1);
    let deadline = Instant::now() + WAIT;
    // ENet reports the connect (the VERIFY_CONNECT arrives) and then the host's disconnect,
    // or only the disconnect; either way it must end disconnected, with no session event.
    let mut ended = false;
    while let Some(e) = c.poll(deadline) {
        if matches!(e, ClientEvent::Disconnected) {
            ended = true;
            break;
        }
    }
    assert!(ended, "wrong connect data was not disconnected");
    assert!(rx.try_recv().is_err(), "a session event for a refused peer");
    // The pending session is still there for the right client.
    let mut good = Client::new(srv.local_addr(), CONNECT_DATA);
    good.wait_connected();
    assert!(matches!(
        good.next_event(&rx),
        (SessionId(1), ControlEvent::Connected { .. })
    ));
}

#[test]
fn tampered_packet_ends_the_session() {
    let (srv, rx) = server();
    let id = SessionId(3);
    srv.add_session(id, CONNECT_DATA, KEY).unwrap();
    let mut c = Client::new(srv.local_addr(), CONNECT_DATA);
    c.wait_connected();
    assert!(matches!(
        c.next_event(&rx).1,
        ControlEvent::Connected { .. }
    ));
    c.cipher
        .seal_message(message::MSG_IDR_REQUEST, &[0, 0], &mut c.buf)
        .unwrap();
    let n = c.buf.len();
    c.buf[n - 1] ^= 0x40;
    c.send_raw(1, true);
    assert_eq!(
        c.next_event(&rx),
        (
            id,
            ControlEvent::Disconnected {
                reason: DisconnectReason::DecryptFailed
            }
        )
    );
    let deadline = Instant::now() + WAIT;
    let mut disconnected = false;
    while let Some(e) = c.poll(deadline) {
        if matches!(e, ClientEvent::Disconnected) {
            disconnected = true;
            break;
        }
    }
    // disconnect_now sends one unreliable DISCONNECT; on loopback it arrives.
    assert!(disconnected);
}

#[test]
fn two_sessions_are_kept_apart() {
    let (srv, rx) = server();
    srv.add_session(SessionId(1), 1, KEY).unwrap();
    let key2 = [9u8; 16];
    srv.add_session(SessionId(2), 2, key2).unwrap();
    let mut a = Client::new(srv.local_addr(), 1);
    let mut b = Client::new(srv.local_addr(), 2);
    b.cipher = ControlCipher::new(&key2, Role::Client);
    a.wait_connected();
    b.wait_connected();
    let mut connected = vec![b.next_event(&rx).0, a.next_event(&rx).0];
    connected.sort();
    assert_eq!(connected, [SessionId(1), SessionId(2)]);
    b.send(1, message::MSG_IDR_REQUEST, &[0, 0], true);
    assert_eq!(
        b.next_event(&rx),
        (SessionId(2), ControlEvent::IdrRequested)
    );
    a.send(0, message::MSG_LTR_ACK, &[5, 0, 0, 0, 0, 0, 0, 0], true);
    assert_eq!(
        a.next_event(&rx),
        (SessionId(1), ControlEvent::LtrAck { frame_index: 5 })
    );
}

#[test]
fn silent_session_times_out_while_pings_keep_it_alive() {
    const SHORT: Duration = Duration::from_millis(400);
    let (srv, rx) = server_with(SHORT);
    srv.add_session(SessionId(5), CONNECT_DATA, KEY).unwrap();
    let mut c = Client::new(srv.local_addr(), CONNECT_DATA);
    c.wait_connected();
    let connected_at = Instant::now();
    assert!(matches!(
        c.next_event(&rx).1,
        ControlEvent::Connected { .. }
    ));
    // Ping every 100 ms (as Moonlight does) for 3x the timeout: no disconnect.
    while connected_at.elapsed() < SHORT * 3 {
        c.send(0, message::MSG_PING, &[0; 4], true);
        let until = Instant::now() + Duration::from_millis(100);
        while Instant::now() < until {
            let _ = c.step();
            std::thread::sleep(Duration::from_millis(2));
        }
        while let Ok((_, e)) = rx.try_recv() {
            assert!(
                matches!(e, ControlEvent::RoundTrip { .. }),
                "session ended while pinging: {e:?}"
            );
        }
    }
    // Go quiet (ENet itself keeps acking): the control timeout ends it.
    let quiet = Instant::now();
    assert_eq!(
        c.next_event(&rx),
        (
            SessionId(5),
            ControlEvent::Disconnected {
                reason: DisconnectReason::Timeout
            }
        )
    );
    let waited = quiet.elapsed();
    assert!(waited < SHORT + Duration::from_millis(300), "{waited:?}");
}

/// Loopback latency from the client's ENet send to the typed event at the session manager.
/// Timing only: `cargo test -p strahl-enet --release -- --ignored --nocapture latency`.
#[test]
#[ignore]
fn latency_idr_request_to_event() {
    let (srv, rx) = server();
    srv.add_session(SessionId(1), CONNECT_DATA, KEY).unwrap();
    let mut c = Client::new(srv.local_addr(), CONNECT_DATA);
    c.wait_connected();
    let _ = c.next_event(&rx);
    let mut us = Vec::new();
    for _ in 0..500 {
        let t = Instant::now();
        c.send(1, message::MSG_IDR_REQUEST, &[0, 0], true);
        assert_eq!(c.next_event(&rx).1, ControlEvent::IdrRequested);
        us.push(t.elapsed().as_secs_f64() * 1e6);
    }
    us.sort_by(|a, b| a.partial_cmp(b).unwrap());
    eprintln!(
        "IDR request -> event: median {:.0} us, p90 {:.0} us, p99 {:.0} us (n={})",
        us[us.len() / 2],
        us[us.len() * 9 / 10],
        us[us.len() * 99 / 100],
        us.len()
    );
}
