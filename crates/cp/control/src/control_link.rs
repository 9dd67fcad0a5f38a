//! The ENet control stream (gamestream-host.md §A12, UDP `control_port` = base + 10) wired to
//! the session manager.
//!
//! - [`ControlLink::start`] starts `strahl_enet::ControlServer` with an event sink that runs on
//!   its service thread: input events (and the release-all on a disconnect) go straight to the
//!   input sink there, in order and without a hop; every other event is forwarded on an
//!   unbounded channel (human/100 ms-rate: IDR, RFI, FEC status, connect, disconnect). Every
//!   service turn the input sink is polled for the games' rumble, sent back as 0x010b to the
//!   sessions that drove the pad (`CountedSink::poll_rumble`).
//! - [`run_events`] (a tokio task) feeds those events and a periodic tick (FEC decay) to the
//!   manager and executes what it returns: [`ControlAction`]s on the server first, then the
//!   IPC messages on the outbox. Every event carries the id of the session whose control stream
//!   sent it (the server binds each peer by its connect data), so IDR requests, FEC status and
//!   disconnects reach that session only; input is routed by [`CountedSink`] with the same id,
//!   so a disconnect releases only what that session's client held.
//! - [`ControlLink::execute`] is also what the nvhttp and RTSP shells call with the manager's
//!   actions (register at PLAY, terminate at /cancel or a replacing /resume).
//! - Apollo's set-clipboard (0x3001, frontier.md §1) is handled on the service thread too,
//!   by [`ClipboardLink`]: the text goes into the host clipboard that `/actions/clipboard`
//!   serves, only for a session whose client holds `clipboard-set` (looked up in the same
//!   permission table as input, so it fails closed), and only within the clipboard's size and
//!   UTF-8 rules. It never reaches the manager.
//! - A command to a stopped server is logged, never a panic.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use strahl_enet::input_bridge::rumble_message;
use strahl_enet::{
    ControlConfig, ControlEvent, ControlEventSink, ControlServer, DisconnectReason, Outgoing,
    SessionId,
};
use strahl_gamestream::Permissions;
use strahl_gamestream::clipboard::{Clipboard, ClipboardError};
use strahl_metrics::{Metric, Registry};
use tokio::sync::{mpsc, watch};

use crate::input_sink::CountedSink;
use crate::session::{Actions, ControlAction};
use crate::shared::{Outbox, SharedManager, lock};

/// How often the manager's clock-driven work runs (adaptive FEC decay). Well under the
/// controller's 1 s decay interval, so a decay step is late by at most this much.
pub const TICK_INTERVAL: Duration = Duration::from_millis(250);

pub type ControlEvents = mpsc::UnboundedReceiver<(u64, ControlEvent)>;

/// What the control server's thread runs: the clipboard and input there (in order, no hop),
/// every other event on to the manager; and back out, the games' rumble for the sessions that
/// drove each pad (polled every service turn: a game's effect upload waits for it).
struct LinkSink {
    sink: CountedSink,
    clipboard: Arc<ClipboardLink>,
    tx: mpsc::UnboundedSender<(u64, ControlEvent)>,
}

impl ControlEventSink for LinkSink {
    fn event(&mut self, id: SessionId, ev: ControlEvent) {
        if let ControlEvent::SetClipboard { text } = &ev {
            // Refusals are logged by `on_set`; the session goes on either way.
            let _ = self.clipboard.on_set(id.0, text);
            return;
        }
        self.sink.deliver(id.0, &ev);
        if !matches!(ev, ControlEvent::Input(_)) {
            // The receiver lives until the host stops; after that nobody needs events.
            let _ = self.tx.send((id.0, ev));
        }
    }

    fn outgoing(&mut self, out: &mut Vec<Outgoing>) {
        for (session, r) in self.sink.poll_rumble() {
            out.push(rumble_message(SessionId(session), &r));
        }
    }
}

/// The running control server, shared by the shells.
pub struct ControlLink {
    server: Mutex<Option<ControlServer>>,
    local_addr: SocketAddr,
    /// Each registered session's permissions, read by the input sink.
    permissions: crate::input_sink::PermissionTable,
    clipboard: Arc<ClipboardLink>,
}

/// Refusals logged individually; past this only every [`REFUSAL_LOG_EVERY`]-th is, so a client
/// repeating a refused message cannot flood the journal.
const REFUSAL_LOG_FIRST: u64 = 10;
const REFUSAL_LOG_EVERY: u64 = 1000;

/// Why a control-stream clipboard text was not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClipboardRefusal {
    /// The session's client lacks `clipboard-set` (or the session is not registered).
    NoPermission,
    /// Over the size limit or not UTF-8 (the clipboard's own rules, as over HTTPS).
    Invalid(ClipboardError),
    /// The GameStream host (which owns the clipboard) is not up yet.
    NoClipboard,
}

impl std::fmt::Display for ClipboardRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClipboardRefusal::NoPermission => f.write_str("the client lacks clipboard-set"),
            ClipboardRefusal::Invalid(e) => e.fmt(f),
            ClipboardRefusal::NoClipboard => f.write_str("the host clipboard is not ready"),
        }
    }
}

impl std::error::Error for ClipboardRefusal {}

/// The control stream's set-clipboard: the session's permission, then the host clipboard.
pub struct ClipboardLink {
    permissions: crate::input_sink::PermissionTable,
    /// Attached once the GameStream host (its owner) is up; the control server starts first.
    clipboard: OnceLock<Arc<Clipboard>>,
    refused: std::sync::atomic::AtomicU64,
}

impl ClipboardLink {
    pub fn new(permissions: crate::input_sink::PermissionTable) -> Self {
        ClipboardLink {
            permissions,
            clipboard: OnceLock::new(),
            refused: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// The host clipboard from now on (a second call keeps the first).
    pub fn attach(&self, clipboard: Arc<Clipboard>) {
        let _ = self.clipboard.set(clipboard);
    }

    /// Session `session`'s 0x3001 with `text`: set, or refused (logged, rate-limited).
    pub fn on_set(&self, session: u64, text: &[u8]) -> Result<(), ClipboardRefusal> {
        let r = self.try_set(session, text);
        match &r {
            Ok(()) => log::info!(
                "clipboard set by session {session} over the control stream ({} bytes)",
                text.len()
            ),
            Err(e) => {
                let n = self
                    .refused
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                    + 1;
                if n <= REFUSAL_LOG_FIRST || n.is_multiple_of(REFUSAL_LOG_EVERY) {
                    log::warn!(
                        "clipboard from session {session} refused (#{n}, {} bytes): {e}",
                        text.len()
                    );
                }
            }
        }
        r
    }

    fn try_set(&self, session: u64, text: &[u8]) -> Result<(), ClipboardRefusal> {
        let allowed = self
            .permissions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&session)
            .is_some_and(|p| p.allows(Permissions::CLIPBOARD_SET));
        if !allowed {
            return Err(ClipboardRefusal::NoPermission);
        }
        let clipboard = self.clipboard.get().ok_or(ClipboardRefusal::NoClipboard)?;
        clipboard.set(text).map_err(ClipboardRefusal::Invalid)
    }
}

impl ControlLink {
    /// Binds UDP `bind` and starts the service thread. Input goes to `sink`; everything else
    /// to the returned receiver (drain it with [`run_events`]).
    pub fn start(bind: SocketAddr, sink: CountedSink) -> io::Result<(Self, ControlEvents)> {
        let (tx, rx) = mpsc::unbounded_channel();
        let permissions = sink.permissions();
        let clipboard = Arc::new(ClipboardLink::new(permissions.clone()));
        let cfg = ControlConfig {
            bind,
            ..ControlConfig::default()
        };
        let server = ControlServer::start(
            cfg,
            LinkSink {
                sink,
                clipboard: clipboard.clone(),
                tx,
            },
        )?;
        let local_addr = server.local_addr();
        Ok((
            ControlLink {
                server: Mutex::new(Some(server)),
                local_addr,
                permissions,
                clipboard,
            },
            rx,
        ))
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The host clipboard that set-clipboard messages write (the GameStream host's, so that
    /// `/actions/clipboard` reads what a control stream set). Until then they are refused.
    pub fn attach_clipboard(&self, clipboard: Arc<Clipboard>) {
        self.clipboard.attach(clipboard);
    }

    /// Executes the manager's control actions in order.
    pub fn execute(&self, actions: &[ControlAction]) {
        let guard = self.server.lock().unwrap_or_else(|p| p.into_inner());
        let Some(server) = guard.as_ref() else {
            if !actions.is_empty() {
                log::warn!(
                    "control server stopped; {} action(s) dropped",
                    actions.len()
                );
            }
            return;
        };
        for a in actions {
            let r = match *a {
                ControlAction::Register {
                    session,
                    connect_data,
                    rikey,
                    permissions,
                } => {
                    log::info!(
                        "control stream: expecting session {session} (connect data {connect_data:#010x}, key {}, permissions {permissions})",
                        crate::session::key_fingerprint(&rikey)
                    );
                    self.permissions
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(session, permissions);
                    server.add_session(SessionId(session), connect_data, rikey)
                }
                ControlAction::Terminate { session, hresult } => {
                    log::info!("control stream: terminating session {session} ({hresult:#010x})");
                    self.permissions
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(&session);
                    server.terminate(SessionId(session), hresult)
                }
                ControlAction::HdrMode { session, metadata } => {
                    let m = strahl_enet::message::host::HdrMetadata {
                        primaries: metadata.primaries,
                        white_point: metadata.white_point,
                        max_display_luminance: metadata.max_luminance,
                        min_display_luminance: metadata.min_luminance,
                        max_cll: metadata.max_cll,
                        max_fall: metadata.max_fall,
                        max_full_frame_luminance: 0,
                    };
                    log::info!(
                        "control stream: session {session}: HDR on (mastering {:?}, {} / {} cd/m², MaxCLL {}, MaxFALL {})",
                        metadata.primaries,
                        metadata.max_luminance,
                        f64::from(metadata.min_luminance) / 10_000.0,
                        metadata.max_cll,
                        metadata.max_fall
                    );
                    server.send_message(
                        SessionId(session),
                        strahl_enet::message::MSG_HDR_MODE,
                        &strahl_enet::message::host::hdr_mode(true, &m),
                    )
                }
            };
            if let Err(e) = r {
                log::warn!("control server: {a:?} failed: {e}");
            }
        }
    }

    /// Stops the service thread (connected clients are disconnected). Idempotent.
    pub fn shutdown(&self) {
        let taken = self.server.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(s) = taken {
            s.shutdown();
        }
    }
}

/// Executes `a`: control actions, then IPC messages (the order the manager's contract needs:
/// the termination reaches the client before the data plane stops sending).
pub fn dispatch(link: &ControlLink, outbox: &Outbox, a: Actions) {
    link.execute(&a.control);
    for m in a.ipc {
        // Full: logged and counted by the outbox. Closed: only at shutdown, nobody would send it.
        let _ = outbox.send(m);
    }
}

fn disconnect_label(r: DisconnectReason) -> &'static str {
    match r {
        DisconnectReason::PeerDisconnected => "peer",
        DisconnectReason::Timeout => "timeout",
        DisconnectReason::DecryptFailed => "decrypt",
        DisconnectReason::Terminated(_) => "terminated",
        DisconnectReason::HostShutdown => "shutdown",
    }
}

fn log_event(session: u64, ev: &ControlEvent, metrics: &Registry) {
    match ev {
        ControlEvent::Connected { peer } => {
            log::info!("control stream: session {session} connected from {peer}")
        }
        ControlEvent::Disconnected { reason } => {
            if let Some(i) =
                Registry::label_index(Metric::ControlDisconnects, disconnect_label(*reason))
            {
                metrics.add_at(Metric::ControlDisconnects, i, 1);
            }
            log::info!("control stream: session {session} ended ({reason:?})")
        }
        // Kept per session by the manager; the host-wide gauge follows in `publish_gauges`.
        ControlEvent::RoundTrip { .. } => {}
        ControlEvent::IdrRequested => log::debug!("session {session}: IDR requested"),
        ControlEvent::RefInvalidated {
            first_frame,
            last_frame,
        } => log::debug!(
            "session {session}: reference frames {first_frame}..={last_frame} invalidated"
        ),
        other => log::trace!("session {session}: {other:?}"),
    }
}

/// Feeds control events and the tick to the manager until `stop` changes; counts into
/// `metrics` (the process registry in production).
pub async fn run_events(
    mut events: ControlEvents,
    manager: SharedManager,
    link: Arc<ControlLink>,
    outbox: Outbox,
    metrics: &'static Registry,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(TICK_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let actions = tokio::select! {
            ev = events.recv() => {
                let Some((session, ev)) = ev else { return };
                log_event(session, &ev, metrics);
                let a = lock(&manager).on_control_in(session, &ev, std::time::Instant::now(), metrics);
                for m in &a.ipc {
                    if let strahl_ipc::Message::SessionStop(s) = m {
                        log::info!(
                            "session {} stream ended by the control stream ({:?}); the app keeps running (resume possible)",
                            s.id, s.reason
                        );
                    }
                }
                a
            }
            _ = tick.tick() => lock(&manager).tick_in(std::time::Instant::now(), metrics),
            _ = stop.changed() => return,
        };
        dispatch(&link, &outbox, actions);
        publish_gauges(&manager, metrics);
    }
}

/// The host-wide gauges over every streaming session: the worst (highest) round-trip time and
/// FEC percentage. The metrics table has no per-session series; the status page shows each
/// session's own figures.
fn publish_gauges(manager: &SharedManager, metrics: &Registry) {
    let streams = lock(manager).streams();
    let rtt = streams.iter().filter_map(|s| s.rtt).max();
    metrics.set(
        Metric::ControlRttMicros,
        rtt.map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX)),
    );
    if let Some(fec) = streams.iter().map(|s| s.fec_percent).max() {
        metrics.set(Metric::ControlFecPercent, u64::from(fec));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strahl_gamestream::clipboard::MAX_CLIPBOARD_BYTES;

    fn link(grants: &[(u64, u32)]) -> (ClipboardLink, Arc<Clipboard>) {
        let table = crate::input_sink::PermissionTable::default();
        for &(session, bits) in grants {
            table.lock().unwrap().insert(session, Permissions(bits));
        }
        let l = ClipboardLink::new(table);
        let c = Arc::new(Clipboard::new());
        l.attach(c.clone());
        (l, c)
    }

    #[test]
    fn set_clipboard_needs_clipboard_set_and_the_clipboards_rules() {
        // 1: clipboard-set; 2: everything a later-paired client gets plus clipboard-read
        // (reading is not setting); 9: never registered.
        let (l, c) = link(&[
            (1, Permissions::VIEW | Permissions::CLIPBOARD_SET),
            (
                2,
                Permissions::DEFAULT_LATER.0 | Permissions::CLIPBOARD_READ,
            ),
        ]);
        assert_eq!(l.on_set(1, "grüß".as_bytes()), Ok(()));
        assert_eq!(c.get().as_deref(), Some("grüß"));
        for session in [2, 9] {
            assert_eq!(
                l.on_set(session, b"nope"),
                Err(ClipboardRefusal::NoPermission)
            );
        }
        assert_eq!(
            l.on_set(1, &vec![b'x'; MAX_CLIPBOARD_BYTES + 1]),
            Err(ClipboardRefusal::Invalid(ClipboardError::TooLong {
                len: MAX_CLIPBOARD_BYTES + 1
            }))
        );
        assert_eq!(
            l.on_set(1, &[0xc3, 0x28]),
            Err(ClipboardRefusal::Invalid(ClipboardError::NotUtf8))
        );
        // Refusals leave the text as it was.
        assert_eq!(c.get().as_deref(), Some("grüß"));
    }

    /// A sink whose games rumble pad 0 once.
    struct Rumbles(Vec<strahl_input::Rumble>);
    impl strahl_input::InputSink for Rumbles {
        fn apply(&mut self, _: &strahl_input::InputEvent) -> Result<(), strahl_input::SinkError> {
            Ok(())
        }
        fn release_all(&mut self) -> Result<(), strahl_input::SinkError> {
            Ok(())
        }
        fn poll_rumble(&mut self) -> Result<Vec<strahl_input::Rumble>, strahl_input::SinkError> {
            Ok(std::mem::take(&mut self.0))
        }
    }

    #[test]
    fn the_games_rumble_goes_out_as_0x010b_to_the_session_that_drove_the_pad() {
        static M: Registry = Registry::new();
        let r = strahl_input::Rumble {
            pad: 0,
            low_freq: 0x1234,
            high_freq: 0x5678,
        };
        let sink = CountedSink::with_registry(Box::new(Rumbles(vec![r])), &M);
        sink.permissions()
            .lock()
            .unwrap()
            .insert(6, Permissions::ALL);
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut link = LinkSink {
            clipboard: Arc::new(ClipboardLink::new(sink.permissions())),
            sink,
            tx,
        };
        let pad0 = strahl_input::InputEvent::Gamepad(strahl_input::GamepadState::default());
        link.event(SessionId(6), ControlEvent::Input(pad0));
        assert!(rx.try_recv().is_err(), "input is not forwarded");
        let mut out = Vec::new();
        link.outgoing(&mut out);
        assert_eq!(
            out,
            [Outgoing {
                session: SessionId(6),
                msg_type: strahl_enet::message::MSG_RUMBLE,
                payload: vec![0xEE, 0xFF, 0xC0, 0, 0, 0, 0x34, 0x12, 0x78, 0x56],
            }]
        );
        // The clipboard stays on this thread too.
        link.event(
            SessionId(6),
            ControlEvent::SetClipboard {
                text: b"x".to_vec(),
            },
        );
        assert!(rx.try_recv().is_err(), "the clipboard is not forwarded");
        link.event(SessionId(6), ControlEvent::IdrRequested);
        assert_eq!(rx.try_recv().unwrap(), (6, ControlEvent::IdrRequested));
    }

    #[test]
    fn before_the_host_is_up_and_after_a_session_ends_nothing_is_set() {
        let table = crate::input_sink::PermissionTable::default();
        table.lock().unwrap().insert(1, Permissions::ALL);
        let l = ClipboardLink::new(table.clone());
        assert_eq!(l.on_set(1, b"early"), Err(ClipboardRefusal::NoClipboard));
        let c = Arc::new(Clipboard::new());
        l.attach(c.clone());
        assert_eq!(l.on_set(1, b"now"), Ok(()));
        // The session's disconnect removes its entry (CountedSink): fail closed from then on.
        table.lock().unwrap().remove(&1);
        assert_eq!(l.on_set(1, b"late"), Err(ClipboardRefusal::NoPermission));
        assert_eq!(c.get().as_deref(), Some("now"));
    }
}
