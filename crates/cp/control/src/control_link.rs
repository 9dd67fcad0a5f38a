//! The ENet control stream (gamestream-host.md §A12, UDP `control_port` = base + 10) wired to
//! the session manager.
//!
//! - [`ControlLink::start`] starts `strahl_enet::ControlServer` with an event sink that runs on
//!   its service thread: input events (and the release-all on a disconnect) go straight to the
//!   input sink there, in order and without a hop; every other event is forwarded on an
//!   unbounded channel (human/100 ms-rate: IDR, RFI, FEC status, connect, disconnect).
//! - [`run_events`] (a tokio task) feeds those events and a periodic tick (FEC decay) to the
//!   manager and executes what it returns: [`ControlAction`]s on the server first, then the
//!   IPC messages on the outbox. Every event carries the id of the session whose control stream
//!   sent it (the server binds each peer by its connect data), so IDR requests, FEC status and
//!   disconnects reach that session only; input is routed by [`CountedSink`] with the same id,
//!   so a disconnect releases only what that session's client held.
//! - [`ControlLink::execute`] is also what the nvhttp and RTSP shells call with the manager's
//!   actions (register at PLAY, terminate at /cancel or a replacing /resume).
//! - A command to a stopped server is logged, never a panic.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use strahl_enet::{ControlConfig, ControlEvent, ControlServer, DisconnectReason, SessionId};
use strahl_metrics::{Metric, Registry};
use tokio::sync::{mpsc, watch};

use crate::input_sink::CountedSink;
use crate::session::{Actions, ControlAction};
use crate::shared::{Outbox, SharedManager, lock};

/// How often the manager's clock-driven work runs (adaptive FEC decay). Well under the
/// controller's 1 s decay interval, so a decay step is late by at most this much.
pub const TICK_INTERVAL: Duration = Duration::from_millis(250);

pub type ControlEvents = mpsc::UnboundedReceiver<(u64, ControlEvent)>;

/// The running control server, shared by the shells.
pub struct ControlLink {
    server: Mutex<Option<ControlServer>>,
    local_addr: SocketAddr,
    /// Each registered session's permissions, read by the input sink.
    permissions: crate::input_sink::PermissionTable,
}

impl ControlLink {
    /// Binds UDP `bind` and starts the service thread. Input goes to `sink`; everything else
    /// to the returned receiver (drain it with [`run_events`]).
    pub fn start(bind: SocketAddr, mut sink: CountedSink) -> io::Result<(Self, ControlEvents)> {
        let (tx, rx) = mpsc::unbounded_channel();
        let permissions = sink.permissions();
        let cfg = ControlConfig {
            bind,
            ..ControlConfig::default()
        };
        let server = ControlServer::start(cfg, move |id: SessionId, ev: ControlEvent| {
            sink.deliver(id.0, &ev);
            if !matches!(ev, ControlEvent::Input(_)) {
                // The receiver lives until the host stops; after that nobody needs events.
                let _ = tx.send((id.0, ev));
            }
        })?;
        let local_addr = server.local_addr();
        Ok((
            ControlLink {
                server: Mutex::new(Some(server)),
                local_addr,
                permissions,
            },
            rx,
        ))
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
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
