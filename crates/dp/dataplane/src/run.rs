//! The blocking event loop: `poll(2)` over the signal self-pipe, the listening socket and (at
//! most) one control connection. Every wait is bounded: poll wakes at least every
//! [`TICK`], a connection must say Hello within [`HELLO_TIMEOUT`], and sends time out after
//! [`SEND_TIMEOUT`] (a control plane that stops reading is dropped, not waited for).

use std::io::{self, Read};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use strahl_ipc::socket::{Recv, SeqPacket, SeqPacketListener};
use strahl_ipc::{MAX_MESSAGE_LEN, Message, StopReason};
use strahl_metrics::{Metric, Registry};

use crate::server::Server;

/// Longest poll sleep; also the granularity of the Hello deadline check.
pub const TICK: Duration = Duration::from_millis(500);
/// A new connection must complete the handshake within this time.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// A send that cannot complete in this time drops the connection (the socket buffer holds
/// ~200 KiB, so this only fires when the control plane stopped reading).
pub const SEND_TIMEOUT: Duration = Duration::from_secs(2);
/// Connections accepted per wake-up, so a connect flood cannot starve the control connection.
const ACCEPTS_PER_WAKE: usize = 16;

/// Why the loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Signal,
    ShutdownMessage,
}

struct Conn {
    sock: SeqPacket,
    hello_deadline: Option<Instant>,
}

/// Runs until a termination signal (a byte on `signals`) or a Shutdown message.
pub fn serve(
    listener: &SeqPacketListener,
    mut signals: UnixStream,
    server: &mut Server<'_>,
    metrics: &Registry,
    started: Instant,
) -> io::Result<Exit> {
    signals.set_nonblocking(true)?;
    let mut conn: Option<Conn> = None;
    let mut rx = vec![0u8; MAX_MESSAGE_LEN];
    let mut tx = vec![0u8; MAX_MESSAGE_LEN];
    loop {
        let (sig, incoming, readable) = {
            let mut fds = vec![
                PollFd::new(&signals, PollFlags::IN),
                PollFd::new(listener, PollFlags::IN),
            ];
            if let Some(c) = &conn {
                fds.push(PollFd::new(&c.sock, PollFlags::IN));
            }
            let ts = Timespec::try_from(TICK).unwrap_or(Timespec {
                tv_sec: 0,
                tv_nsec: 500_000_000,
            });
            match rustix::event::poll(&mut fds, Some(&ts)) {
                Ok(_) => {}
                Err(Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
            let ready = |f: &PollFd<'_>| !f.revents().is_empty();
            (
                ready(&fds[0]),
                ready(&fds[1]),
                fds.get(2).is_some_and(ready),
            )
        };

        if sig {
            let mut drain = [0u8; 64];
            while matches!(signals.read(&mut drain), Ok(n) if n > 0) {}
            log::info!("termination signal (SIGTERM/SIGINT) received: stopping");
            let events = server.stop_all(StopReason::ControlShutdown);
            if let Some(c) = &conn {
                for m in &events {
                    // Best effort: the control plane may already be gone.
                    let _ = send(&c.sock, m, &mut tx, metrics);
                }
            }
            return Ok(Exit::Signal);
        }

        if incoming {
            for _ in 0..ACCEPTS_PER_WAKE {
                let sock = match listener.accept() {
                    Ok(s) => s,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        log::warn!("accept failed: {e}");
                        break;
                    }
                };
                // Bounded sends: a peer that stops reading cannot stall the loop.
                if let Err(e) = sock.set_write_timeout(Some(SEND_TIMEOUT)) {
                    log::warn!("cannot set a send timeout on a new connection ({e}); dropping it");
                    continue;
                }
                let peer = sock
                    .peer_pid()
                    .map_or_else(|_| "?".to_owned(), |p| p.to_string());
                if conn.is_some() {
                    let refusal = server.busy_refusal();
                    let _ = send(&sock, &refusal, &mut tx, metrics);
                    continue;
                }
                log::info!("connection from pid {peer}; waiting for Hello");
                server.on_connect();
                conn = Some(Conn {
                    sock,
                    hello_deadline: Some(Instant::now() + HELLO_TIMEOUT),
                });
            }
        }

        if readable && let Some(c) = conn.as_mut() {
            let outcome = match c.sock.recv(&mut rx) {
                Ok(Recv::Closed) => None,
                Ok(Recv::Datagram(n)) => Some(server.on_datagram(&rx[..n], started.elapsed())),
                Ok(Recv::Truncated(n)) => Some(server.on_oversized(n)),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) =>
                {
                    continue;
                }
                Err(e) => {
                    log::warn!("control connection receive failed: {e}");
                    None
                }
            };
            let Some(outcome) = outcome else {
                conn = None;
                server.on_disconnect();
                continue;
            };
            if server.control_pid().is_some() {
                c.hello_deadline = None;
            }
            let mut failed = false;
            for m in &outcome.replies {
                if let Err(e) = send(&c.sock, m, &mut tx, metrics) {
                    log::warn!("sending {:?} to the control plane failed: {e}", m.kind());
                    failed = true;
                    break;
                }
            }
            if outcome.shutdown {
                return Ok(Exit::ShutdownMessage);
            }
            if outcome.close || failed {
                conn = None;
                server.on_disconnect();
                continue;
            }
        }

        // Media failures (no ping, bind/encoder errors) end their sessions.
        let media_events = server.poll_media();
        if let Some(c) = &conn {
            for m in &media_events {
                if let Err(e) = send(&c.sock, m, &mut tx, metrics) {
                    log::warn!("sending {:?} to the control plane failed: {e}", m.kind());
                    break;
                }
            }
        }

        if let Some(c) = &conn
            && c.hello_deadline.is_some_and(|d| Instant::now() >= d)
        {
            log::warn!("no Hello within {HELLO_TIMEOUT:?}: dropping the connection");
            conn = None;
            server.on_disconnect();
        }
    }
}

fn send(sock: &SeqPacket, m: &Message, tx: &mut [u8], metrics: &Registry) -> io::Result<()> {
    let n = strahl_ipc::encode(m, tx).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    sock.send(&tx[..n])?;
    metrics.inc(Metric::IpcMessagesSent);
    Ok(())
}
