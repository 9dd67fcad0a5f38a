//! The control link (`control_link::ControlLink`) over real ENet on loopback, with a rusty_enet
//! client per session speaking the encrypted V2 framing as Moonlight/Artemis do: what the unit
//! tests check piecewise, end to end through the server thread.
//! - set-clipboard (0x3001) from a client holding `clipboard-set` lands in the host clipboard
//!   `/actions/clipboard` serves; from a client without it, nothing changes;
//! - the games' rumble (the input sink's `poll_rumble`) reaches, as 0x010b, the client that
//!   drove that pad and no other.
//!
//! Ordering trick: a client's reliable messages on one channel arrive in order, so an IDR
//! request sent after a message and seen on the manager's channel means the server thread has
//! handled that message. Every wait is bounded by [`WAIT`].

use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusty_enet as enet;
use strahl_control::control_link::{ControlEvents, ControlLink};
use strahl_control::input_sink::CountedSink;
use strahl_control::session::ControlAction;
use strahl_enet::ControlEvent;
use strahl_enet::message::{MSG_IDR_REQUEST, MSG_INPUT, MSG_RUMBLE, MSG_SET_CLIPBOARD};
use strahl_gamestream::Permissions;
use strahl_gamestream::clipboard::Clipboard;
use strahl_input::wire::encode;
use strahl_input::{InputEvent, InputSink, Rumble, SinkError};
use strahl_metrics::Registry;
use strahl_seal::gamestream::{ControlCipher, Role};

const WAIT: Duration = Duration::from_secs(5);

/// An input sink whose games rumble what the test queues.
struct Games(Arc<Mutex<Vec<Rumble>>>);

impl InputSink for Games {
    fn apply(&mut self, _: &InputEvent) -> Result<(), SinkError> {
        Ok(())
    }
    fn release_all(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
    fn poll_rumble(&mut self) -> Result<Vec<Rumble>, SinkError> {
        Ok(std::mem::take(&mut *self.0.lock().unwrap()))
    }
}

struct Client {
    host: enet::Host<UdpSocket>,
    peer: enet::PeerID,
    cipher: ControlCipher,
    buf: Vec<u8>,
}

impl Client {
    fn connect(server: SocketAddr, data: u32, key: &[u8; 16]) -> Client {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let settings = enet::HostSettings {
            peer_limit: 1,
            channel_limit: 48,
            ..Default::default()
        };
        let mut host = enet::Host::new(sock, settings).unwrap();
        let peer = host.connect(server, 48, data).unwrap().id();
        let mut c = Client {
            host,
            peer,
            cipher: ControlCipher::new(key, Role::Client),
            buf: Vec::new(),
        };
        let deadline = Instant::now() + WAIT;
        loop {
            assert!(Instant::now() < deadline, "no ENet connect");
            if let Some(e) = c.host.service().unwrap()
                && matches!(e.no_ref(), enet::EventNoRef::Connect { .. })
            {
                return c;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn send(&mut self, msg_type: u16, payload: &[u8]) {
        self.cipher
            .seal_message(msg_type, payload, &mut self.buf)
            .unwrap();
        let p = enet::Packet::reliable(self.buf.as_slice());
        self.host.peer_mut(self.peer).send(0, &p).unwrap();
        self.host.flush();
    }

    /// The host messages (type, payload) received within `within`.
    fn receive(&mut self, within: Duration) -> Vec<(u16, Vec<u8>)> {
        let mut got = Vec::new();
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            match self.host.service().unwrap().map(|e| e.no_ref()) {
                Some(enet::EventNoRef::Receive { packet, .. }) => {
                    let mut pt = Vec::new();
                    self.cipher.open(packet.data(), &mut pt).unwrap();
                    let (ty, payload) = ControlCipher::parse_v2(&pt).unwrap();
                    got.push((ty, payload.to_vec()));
                }
                Some(_) => {}
                None => std::thread::sleep(Duration::from_millis(1)),
            }
        }
        got
    }

    /// Keeps this client's ENet serviced until the manager's channel shows `session`'s IDR
    /// request (sent after everything before it on the same channel).
    fn sync(&mut self, session: u64, events: &mut ControlEvents) {
        self.send(MSG_IDR_REQUEST, &[0, 0]);
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            let _ = self.host.service();
            while let Ok((s, ev)) = events.try_recv() {
                if s == session && ev == ControlEvent::IdrRequested {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        panic!("session {session}: IDR request not seen within {WAIT:?}");
    }
}

#[test]
fn clipboard_and_rumble_through_the_control_link_follow_each_clients_permissions() {
    static M: Registry = Registry::new();
    let games = Arc::new(Mutex::new(Vec::new()));
    let sink = CountedSink::with_registry(Box::new(Games(games.clone())), &M);
    let (link, mut events) = ControlLink::start("127.0.0.1:0".parse().unwrap(), sink).unwrap();
    let clipboard = Arc::new(Clipboard::new());
    link.attach_clipboard(clipboard.clone());
    // Session 1: controller + clipboard-set. Session 2: what a later-paired client gets.
    let (key1, key2) = ([1u8; 16], [2u8; 16]);
    link.execute(&[
        ControlAction::Register {
            session: 1,
            connect_data: 0x1111,
            rikey: key1,
            permissions: Permissions(
                Permissions::VIEW | Permissions::CONTROLLER | Permissions::CLIPBOARD_SET,
            ),
        },
        ControlAction::Register {
            session: 2,
            connect_data: 0x2222,
            rikey: key2,
            permissions: Permissions::DEFAULT_LATER,
        },
    ]);
    let mut a = Client::connect(link.local_addr(), 0x1111, &key1);
    let mut b = Client::connect(link.local_addr(), 0x2222, &key2);

    a.send(MSG_SET_CLIPBOARD, "von A: grüß".as_bytes());
    a.sync(1, &mut events);
    assert_eq!(clipboard.get().as_deref(), Some("von A: grüß"));
    b.send(MSG_SET_CLIPBOARD, b"from B");
    b.sync(2, &mut events);
    assert_eq!(
        clipboard.get().as_deref(),
        Some("von A: grüß"),
        "a client without clipboard-set changed the clipboard"
    );

    // Both announce pad 0; only session 1 may use controllers, so only it drove the pad.
    for (c, s) in [(&mut a, 1), (&mut b, 2)] {
        c.send(MSG_INPUT, &encode::controller_arrival(0, 1, 0x1, 0xFFFF));
        c.sync(s, &mut events);
    }
    games.lock().unwrap().push(Rumble {
        pad: 0,
        low_freq: 0xA0A0,
        high_freq: 0x0B0B,
    });
    let got = a.receive(Duration::from_millis(500));
    assert_eq!(
        got,
        [(
            MSG_RUMBLE,
            vec![0xEE, 0xFF, 0xC0, 0, 0, 0, 0xA0, 0xA0, 0x0B, 0x0B]
        )]
    );
    assert_eq!(b.receive(Duration::from_millis(300)), []);
    link.shutdown();
}
