//! The I/O shell: one `rusty_enet` host on a UDP socket, serviced by a dedicated thread.
//!
//! `rusty_enet::Host` is not `Send` (it wraps the transpiled C structures), so it lives on
//! its own std thread; the session manager talks to it through [`ControlServer`] (commands over
//! a std channel) and receives [`ControlEvent`]s through a [`ControlEventSink`] (a std
//! `mpsc::Sender`, a tokio `UnboundedSender` wrapped in a closure, or any closure).
//!
//! Peer binding (§A11): a CONNECT whose `data` equals a registered session's connect data
//! binds that peer to the session and retires the pending entry; anything else is
//! disconnected at once. All protocol rules live in [`ControlSession`].

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusty_enet as enet;

use crate::message::{MSG_TERMINATION, host};
use crate::session::{CONTROL_TIMEOUT, ControlEvent, ControlSession, DisconnectReason, SessionEnd};

/// GameStream control port (§A1/§A12).
pub const DEFAULT_CONTROL_PORT: u16 = 47999;
/// Moonlight opens 48 channels (§A12, §B10); we accept ENet's maximum like Sunshine (255).
pub const CHANNEL_LIMIT: usize = enet::consts::PROTOCOL_MAXIMUM_CHANNEL_COUNT as usize;
/// Concurrent peers (streaming sessions plus stray connects). Sunshine allows 128; an appliance
/// streams to a handful of clients at once.
pub const DEFAULT_PEER_LIMIT: usize = 32;
/// The service thread blocks on the socket (waking at once when a datagram arrives) for at
/// most this long per turn, so commands and timeouts are looked at within ~1 ms. Measured on
/// loopback (`latency_idr_request_to_event`, 500 requests, this 2-core VM): a fixed 1 ms sleep
/// gave a 1.1 ms median client-send→event latency, the readiness wait 8 µs.
pub const POLL_INTERVAL: Duration = Duration::from_millis(1);
/// How often each live session's round-trip estimate is reported ([`ControlEvent::RoundTrip`]):
/// the status page polls every second, and ENet re-estimates with every acknowledged packet
/// (the client pings every 100 ms, §A12).
pub const RTT_REPORT_INTERVAL: Duration = Duration::from_secs(1);
/// ENet ping interval for a bound peer (ms). ENet refines its RTT estimate by 1/8 of the error
/// per acknowledged reliable packet, starting from a 500 ms guess, and the host otherwise sends
/// few reliable packets: at ENet's default 500 ms the estimate needs ~20 s to reach a LAN's
/// value, at 100 ms (the client's own ping cadence, §A12) ~4 s. Cost: one 4-byte ENet ping
/// command and its ack per 100 ms.
const RTT_PING_INTERVAL_MS: u32 = 100;
/// Events taken from ENet per loop turn before commands and timeouts get a look-in.
const MAX_EVENTS_PER_TURN: usize = 256;
/// The host sends on channel 0 (§A12).
const HOST_CHANNEL: u8 = 0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u64);

#[derive(Debug, Clone)]
pub struct ControlConfig {
    pub bind: SocketAddr,
    pub peer_limit: usize,
    /// Idle timeout per session; [`CONTROL_TIMEOUT`] unless a test shortens it.
    pub session_timeout: Duration,
}

impl Default for ControlConfig {
    fn default() -> Self {
        ControlConfig {
            bind: SocketAddr::from(([0, 0, 0, 0], DEFAULT_CONTROL_PORT)),
            peer_limit: DEFAULT_PEER_LIMIT,
            session_timeout: CONTROL_TIMEOUT,
        }
    }
}

/// A host → client message a [`ControlEventSink`] gives the service thread to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub session: SessionId,
    pub msg_type: u16,
    pub payload: Vec<u8>,
}

/// Receives control events; called on the service thread, so keep it short.
pub trait ControlEventSink: Send + 'static {
    fn event(&mut self, session: SessionId, ev: ControlEvent);

    /// Called on the service thread every turn (at most [`POLL_INTERVAL`] apart, more often
    /// under traffic): messages the sink has for sessions, sent reliably on channel 0 like
    /// [`ControlServer::send_message`]'s (the games' rumble: the input sink lives on this
    /// thread, and the games' force-feedback uploads wait for it to be polled). A message for a
    /// session without a connected peer is dropped. Default: none.
    fn outgoing(&mut self, _out: &mut Vec<Outgoing>) {}
}

impl<F: FnMut(SessionId, ControlEvent) + Send + 'static> ControlEventSink for F {
    fn event(&mut self, session: SessionId, ev: ControlEvent) {
        self(session, ev)
    }
}

impl ControlEventSink for mpsc::Sender<(SessionId, ControlEvent)> {
    fn event(&mut self, session: SessionId, ev: ControlEvent) {
        // A dropped receiver means nobody listens any more; events have nowhere to go.
        let _ = self.send((session, ev));
    }
}

enum Command {
    Add {
        id: SessionId,
        connect_data: u32,
        rikey: [u8; 16],
    },
    RemovePending(SessionId),
    Terminate {
        id: SessionId,
        hresult: u32,
    },
    Send {
        id: SessionId,
        msg_type: u16,
        payload: Vec<u8>,
    },
    Shutdown,
}

/// Handle to the control stream service thread. Dropping it shuts the thread down.
pub struct ControlServer {
    cmd: mpsc::Sender<Command>,
    thread: Option<JoinHandle<()>>,
    local_addr: SocketAddr,
}

impl ControlServer {
    pub fn start(cfg: ControlConfig, sink: impl ControlEventSink) -> io::Result<Self> {
        let socket = UdpSocket::bind(cfg.bind)?;
        let local_addr = socket.local_addr()?;
        let (cmd_tx, cmd_rx) = mpsc::channel();
        let (ready_tx, ready_rx) = mpsc::channel();
        let peer_limit = cfg.peer_limit.max(1);
        let timeout = cfg.session_timeout;
        let thread = std::thread::Builder::new()
            .name("strahl-enet".into())
            .spawn(move || {
                let settings = enet::HostSettings {
                    peer_limit,
                    channel_limit: CHANNEL_LIMIT,
                    ..Default::default()
                };
                match enet::Host::new(WakeSocket(socket), settings) {
                    Ok(host) => {
                        let _ = ready_tx.send(Ok(()));
                        Service::new(host, sink, timeout).run(cmd_rx);
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(io::Error::other(format!("enet host: {e:?}"))));
                    }
                }
            })?;
        ready_rx
            .recv()
            .map_err(|_| io::Error::other("enet thread died during start"))??;
        Ok(ControlServer {
            cmd: cmd_tx,
            thread: Some(thread),
            local_addr,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    fn send_cmd(&self, c: Command) -> io::Result<()> {
        self.cmd
            .send(c)
            .map_err(|_| io::Error::other("enet service thread has stopped"))
    }

    /// Expect a CONNECT carrying `connect_data` (from the RTSP SETUP) for this session.
    pub fn add_session(&self, id: SessionId, connect_data: u32, rikey: [u8; 16]) -> io::Result<()> {
        self.send_cmd(Command::Add {
            id,
            connect_data,
            rikey,
        })
    }

    /// Forget a pending session that never connected (launch cancelled).
    pub fn remove_pending(&self, id: SessionId) -> io::Result<()> {
        self.send_cmd(Command::RemovePending(id))
    }

    /// Send the termination message (0x0109, `hresult` BE) and then disconnect.
    pub fn terminate(&self, id: SessionId, hresult: u32) -> io::Result<()> {
        self.send_cmd(Command::Terminate { id, hresult })
    }

    /// Send any host → client message (rumble, HDR mode, ...), reliably on channel 0.
    pub fn send_message(&self, id: SessionId, msg_type: u16, payload: &[u8]) -> io::Result<()> {
        self.send_cmd(Command::Send {
            id,
            msg_type,
            payload: payload.to_vec(),
        })
    }

    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let _ = self.cmd.send(Command::Shutdown);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The UDP socket as ENet sees it (non-blocking), plus a bounded blocking wait for
/// readability used between service turns.
struct WakeSocket(UdpSocket);

impl WakeSocket {
    /// Block until a datagram is queued or `timeout` passes. Peeking does not consume it.
    fn wait_readable(&self, timeout: Duration) {
        // A timeout is the normal idle outcome; any result ends the wait.
        let blocking =
            self.0.set_nonblocking(false).is_ok() && self.0.set_read_timeout(Some(timeout)).is_ok();
        if blocking {
            let _ = self.0.peek_from(&mut [0u8; 1]);
        }
        // ENet's receive path must never block; if the socket cannot be switched back (or could
        // not be switched at all), sleep instead of spinning.
        if self.0.set_nonblocking(true).is_err() || !blocking {
            std::thread::sleep(timeout);
        }
    }
}

impl enet::Socket for WakeSocket {
    type Address = SocketAddr;
    type Error = io::Error;

    fn init(&mut self, opts: enet::SocketOptions) -> Result<(), io::Error> {
        enet::Socket::init(&mut self.0, opts)
    }

    fn send(&mut self, address: SocketAddr, buffer: &[u8]) -> Result<usize, io::Error> {
        enet::Socket::send(&mut self.0, address, buffer)
    }

    fn receive(
        &mut self,
        buffer: &mut [u8; enet::MTU_MAX],
    ) -> Result<Option<(SocketAddr, enet::PacketReceived)>, io::Error> {
        enet::Socket::receive(&mut self.0, buffer)
    }
}

struct Active {
    id: SessionId,
    session: ControlSession,
}

struct Service<S: ControlEventSink> {
    host: enet::Host<WakeSocket>,
    sink: S,
    pending: HashMap<u32, (SessionId, [u8; 16])>,
    active: HashMap<enet::PeerID, Active>,
    out: Vec<u8>,
    /// The sink's messages of this turn (kept for its capacity).
    outgoing: Vec<Outgoing>,
    timeout: Duration,
    next_rtt_report: Instant,
}

impl<S: ControlEventSink> Service<S> {
    fn new(host: enet::Host<WakeSocket>, sink: S, timeout: Duration) -> Self {
        Service {
            host,
            sink,
            pending: HashMap::new(),
            active: HashMap::new(),
            out: Vec::with_capacity(256),
            outgoing: Vec::new(),
            timeout,
            next_rtt_report: Instant::now() + RTT_REPORT_INTERVAL,
        }
    }

    fn run(mut self, cmds: mpsc::Receiver<Command>) {
        loop {
            loop {
                match cmds.try_recv() {
                    Ok(Command::Shutdown) | Err(mpsc::TryRecvError::Disconnected) => {
                        self.shutdown();
                        return;
                    }
                    Ok(c) => self.command(c),
                    Err(mpsc::TryRecvError::Empty) => break,
                }
            }
            self.service();
            self.send_outgoing();
            let now = Instant::now();
            self.check_timeouts(now);
            self.report_rtt(now);
            self.host.socket().wait_readable(POLL_INTERVAL);
        }
    }

    fn peer_of(&self, id: SessionId) -> Option<enet::PeerID> {
        self.active
            .iter()
            .find(|(_, a)| a.id == id)
            .map(|(p, _)| *p)
    }

    fn command(&mut self, c: Command) {
        match c {
            Command::Add {
                id,
                connect_data,
                rikey,
            } => {
                self.pending.insert(connect_data, (id, rikey));
            }
            Command::RemovePending(id) => self.pending.retain(|_, (sid, _)| *sid != id),
            Command::Terminate { id, hresult } => {
                self.pending.retain(|_, (sid, _)| *sid != id);
                if let Some(peer) = self.peer_of(id) {
                    self.send_sealed(peer, MSG_TERMINATION, &host::termination(hresult));
                    // disconnect_later: ENet delivers the queued termination first.
                    if let Some(p) = self.host.get_peer_mut(peer) {
                        p.disconnect_later(0);
                    }
                    self.host.flush();
                    self.end(peer, DisconnectReason::Terminated(hresult));
                }
            }
            Command::Send {
                id,
                msg_type,
                payload,
            } => {
                if let Some(peer) = self.peer_of(id) {
                    self.send_sealed(peer, msg_type, &payload);
                }
            }
            Command::Shutdown => {}
        }
    }

    fn send_outgoing(&mut self) {
        let mut msgs = std::mem::take(&mut self.outgoing);
        self.sink.outgoing(&mut msgs);
        for m in msgs.drain(..) {
            if let Some(peer) = self.peer_of(m.session) {
                self.send_sealed(peer, m.msg_type, &m.payload);
            }
        }
        self.outgoing = msgs;
    }

    fn send_sealed(&mut self, peer: enet::PeerID, msg_type: u16, payload: &[u8]) {
        let Some(a) = self.active.get_mut(&peer) else {
            return;
        };
        if a.session.seal(msg_type, payload, &mut self.out).is_err() {
            return;
        }
        if let Some(p) = self.host.get_peer_mut(peer) {
            let _ = p.send(HOST_CHANNEL, &enet::Packet::reliable(self.out.as_slice()));
        }
    }

    /// Forget the session and tell the manager; the ENet peer is handled by the caller.
    fn end(&mut self, peer: enet::PeerID, reason: DisconnectReason) {
        if let Some(a) = self.active.remove(&peer) {
            self.sink.event(a.id, ControlEvent::Disconnected { reason });
        }
    }

    fn service(&mut self) {
        for _ in 0..MAX_EVENTS_PER_TURN {
            let ev = match self.host.service() {
                Ok(Some(ev)) => ev.no_ref(),
                Ok(None) => break,
                // ICMP errors surface as socket errors on Linux; the peer timeout handles them.
                Err(_) => break,
            };
            let now = Instant::now();
            match ev {
                enet::EventNoRef::Connect { peer, data } => self.on_connect(peer, data, now),
                enet::EventNoRef::Disconnect { peer, .. } => {
                    self.end(peer, DisconnectReason::PeerDisconnected)
                }
                enet::EventNoRef::Receive { peer, packet, .. } => {
                    let Some(a) = self.active.get_mut(&peer) else {
                        continue;
                    };
                    match a.session.on_packet(packet.data(), now) {
                        Ok(Some(e)) => {
                            let id = a.id;
                            self.sink.event(id, e);
                        }
                        Ok(None) => {}
                        Err(SessionEnd::DecryptFailed) => {
                            if let Some(p) = self.host.get_peer_mut(peer) {
                                p.disconnect_now(0);
                            }
                            self.end(peer, DisconnectReason::DecryptFailed);
                        }
                    }
                }
            }
        }
    }

    fn on_connect(&mut self, peer: enet::PeerID, data: u32, now: Instant) {
        let Some((id, rikey)) = self.pending.remove(&data) else {
            if let Some(p) = self.host.get_peer_mut(peer) {
                p.disconnect_now(0);
            }
            return;
        };
        let addr = self
            .host
            .get_peer(peer)
            .and_then(|p| p.address())
            .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
        if let Some(p) = self.host.get_peer_mut(peer) {
            p.set_ping_interval(RTT_PING_INTERVAL_MS);
        }
        self.active.insert(
            peer,
            Active {
                id,
                session: ControlSession::with_timeout(&rikey, now, self.timeout),
            },
        );
        self.sink.event(id, ControlEvent::Connected { peer: addr });
    }

    fn check_timeouts(&mut self, now: Instant) {
        let dead: Vec<enet::PeerID> = self
            .active
            .iter()
            .filter(|(_, a)| a.session.is_timed_out(now))
            .map(|(p, _)| *p)
            .collect();
        for peer in dead {
            if let Some(p) = self.host.get_peer_mut(peer) {
                p.disconnect_now(0);
            }
            self.end(peer, DisconnectReason::Timeout);
        }
    }

    fn report_rtt(&mut self, now: Instant) {
        if now < self.next_rtt_report {
            return;
        }
        self.next_rtt_report = now + RTT_REPORT_INTERVAL;
        for (peer, a) in &self.active {
            if let Some(p) = self.host.get_peer(*peer) {
                let rtt = p.round_trip_time();
                self.sink.event(a.id, ControlEvent::RoundTrip { rtt });
            }
        }
    }

    fn shutdown(&mut self) {
        let peers: Vec<enet::PeerID> = self.active.keys().copied().collect();
        for peer in peers {
            if let Some(p) = self.host.get_peer_mut(peer) {
                p.disconnect_now(0);
            }
            self.end(peer, DisconnectReason::HostShutdown);
        }
        self.host.flush();
    }
}
