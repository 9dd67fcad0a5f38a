//! The handles every async shell of the session manager shares: the manager itself behind a
//! mutex ([`SharedManager`]) and the bounded [`Outbox`] of messages for the data plane.
//!
//! Contract:
//! - The shells (nvhttp host, RTSP listener, ENet control link, status backend) lock the
//!   manager for one short, synchronous section (never across an `.await`); a poisoned lock is
//!   recovered ([`lock`]): the manager's state stays consistent between its method calls.
//! - The outbox holds at most [`OUTBOX_CAPACITY`] messages. The IPC loop in `serve.rs` drains it
//!   while the data plane is connected; while it is away, messages wait. A message that does
//!   not fit is refused, never blocks the caller (callers hold the manager's lock, and some run
//!   on non-async threads): the refusal is logged and counted ([`Outbox::refused`]).
//! - This module imports nothing from the rest of the crate, so every shell can use it without
//!   importing another shell.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use strahl_ipc::Message;
use strahl_metrics::{Metric, Registry};
use tokio::sync::mpsc;

use crate::session::SessionManager;

pub type SharedManager = Arc<Mutex<SessionManager>>;

pub fn lock(m: &SharedManager) -> MutexGuard<'_, SessionManager> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Messages the outbox holds before it refuses more. The messages are human- or 100 ms-rate
/// (SessionStart at PLAY, SessionStop at /cancel, a SessionUpdate per FEC change or keyframe
/// request) and at most `[gamestream] max_sessions` (≤ 16) sessions exist: each has a handful
/// queued at a time, so 256 is ~16× what a full host queues in a burst. While the data plane is
/// away the manager has ended every stream (no FEC updates), so only new launches queue. The
/// bound keeps a wedged IPC loop from growing memory without limit.
pub const OUTBOX_CAPACITY: usize = 256;

/// Why a message was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxError {
    /// [`OUTBOX_CAPACITY`] messages are already waiting.
    Full,
    /// The IPC loop has stopped (shutdown).
    Closed,
}

impl std::fmt::Display for OutboxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OutboxError::Full => write!(f, "outbox full ({OUTBOX_CAPACITY} messages waiting)"),
            OutboxError::Closed => write!(f, "control loop stopped"),
        }
    }
}

impl std::error::Error for OutboxError {}

/// The sending side; cheap to clone (all clones share one queue and one refusal count).
#[derive(Debug, Clone)]
pub struct Outbox {
    tx: mpsc::Sender<Message>,
    refused: Arc<AtomicU64>,
    metrics: &'static Registry,
}

/// The receiving side, drained by the IPC loop.
pub type OutboxReceiver = mpsc::Receiver<Message>;

/// A new outbox holding at most `capacity` messages; refusals count into `metrics`
/// (`strahl_ipc_outbox_refused_total`).
pub fn outbox(capacity: usize, metrics: &'static Registry) -> (Outbox, OutboxReceiver) {
    let (tx, rx) = mpsc::channel(capacity);
    (
        Outbox {
            tx,
            refused: Arc::new(AtomicU64::new(0)),
            metrics,
        },
        rx,
    )
}

impl Outbox {
    /// Queues `m` without waiting. A full outbox refuses it (logged, counted); a closed one
    /// (shutdown) drops it quietly, as nobody will send it anyway.
    pub fn send(&self, m: Message) -> Result<(), OutboxError> {
        match self.tx.try_send(m) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(m)) => {
                let n = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
                self.metrics.inc(Metric::IpcOutboxRefused);
                log::warn!(
                    "outbox to the data plane full ({OUTBOX_CAPACITY} waiting): {:?} refused \
                     ({n} refused since start)",
                    m.kind()
                );
                Err(OutboxError::Full)
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(OutboxError::Closed),
        }
    }

    /// Messages refused because the outbox was full, since it was created.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use strahl_ipc::{SessionStop, StopReason};

    use super::*;

    fn stop(id: u64) -> Message {
        Message::SessionStop(SessionStop {
            id,
            reason: StopReason::ClientQuit,
        })
    }

    #[test]
    fn full_outbox_refuses_and_counts_then_accepts_after_a_drain() {
        let reg: &'static Registry = Box::leak(Box::new(Registry::new()));
        let (tx, mut rx) = outbox(2, reg);
        assert_eq!(tx.send(stop(1)), Ok(()));
        assert_eq!(tx.clone().send(stop(2)), Ok(()));
        assert_eq!(tx.send(stop(3)), Err(OutboxError::Full));
        assert_eq!(tx.refused(), 1, "clones share the count");
        assert_eq!(
            reg.get(Metric::IpcOutboxRefused),
            1,
            "and the metric with it"
        );
        assert_eq!(rx.try_recv().ok(), Some(stop(1)));
        assert_eq!(tx.send(stop(4)), Ok(()));
        assert_eq!(rx.try_recv().ok(), Some(stop(2)));
        assert_eq!(rx.try_recv().ok(), Some(stop(4)), "the refused one is gone");
        drop(rx);
        assert_eq!(tx.send(stop(5)), Err(OutboxError::Closed));
        assert_eq!(tx.refused(), 1, "closed is not counted as refused");
    }
}
