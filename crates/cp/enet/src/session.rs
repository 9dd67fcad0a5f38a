//! One control session, sans-IO: ENet packet payloads and `now` in, typed events or a session
//! end out; host messages sealed into a caller-owned buffer.
//!
//! Rules (§A12, Sunshine behaviour for mode 13 + CONTROL_V2):
//! - every packet must be the encrypted V2 framing (magic 0x0001); plaintext is dropped;
//! - an authentication failure ends the session ([`SessionEnd::DecryptFailed`]);
//! - a replayed seq is dropped (ENet already dedups; a duplicate is never legitimate);
//! - authenticated but malformed messages are dropped and counted, the session goes on;
//! - no authenticated traffic for [`CONTROL_TIMEOUT`] ends the session.

use std::time::{Duration, Instant};

use strahl_input::InputEvent;
use strahl_seal::SealError;
use strahl_seal::gamestream::{ControlCipher, Role};

use crate::message::{self, ClientMessage, FecStatus};

/// The client pings every 100 ms (§A12) and its own ENet peer timeout is 10 s; Sunshine's
/// ping_timeout is 10 s too. Past this without a valid packet the session is dead.
pub const CONTROL_TIMEOUT: Duration = Duration::from_secs(10);

/// What the control stream tells the session manager.
#[derive(Debug, Clone, PartialEq)]
pub enum ControlEvent {
    Connected {
        peer: std::net::SocketAddr,
    },
    IdrRequested,
    /// "Start B" (0x0307): the client is ready for video.
    StartB,
    RefInvalidated {
        first_frame: i64,
        last_frame: i64,
    },
    LtrAck {
        frame_index: u32,
    },
    FecStatus(FecStatus),
    Input(InputEvent),
    /// Apollo's set-clipboard (0x3001): the text as the client sent it. Unchecked here: the
    /// control plane applies its size and UTF-8 rules and the client's permission.
    SetClipboard {
        text: Vec<u8>,
    },
    /// ENet's smoothed round-trip estimate to the client, sampled every
    /// [`crate::server::RTT_REPORT_INTERVAL`] while the session is up (for the operator's view).
    RoundTrip {
        rtt: Duration,
    },
    Disconnected {
        reason: DisconnectReason,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisconnectReason {
    /// The client sent an ENet disconnect (or ENet itself timed the peer out).
    PeerDisconnected,
    /// No authenticated control traffic for [`CONTROL_TIMEOUT`].
    Timeout,
    /// A packet failed authentication or was malformed framing.
    DecryptFailed,
    /// We sent a termination message (/cancel, app exit) with this HRESULT.
    Terminated(u32),
    /// The control server shut down.
    HostShutdown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEnd {
    DecryptFailed,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SessionStats {
    pub packets: u64,
    pub plaintext_dropped: u64,
    pub replay_dropped: u64,
    pub malformed_dropped: u64,
    pub unknown_types: u64,
    pub pings: u64,
}

pub struct ControlSession {
    cipher: ControlCipher,
    last_rx: Instant,
    timeout: Duration,
    plain: Vec<u8>,
    pub stats: SessionStats,
}

/// The largest V2 plaintext we expect from a client but for a clipboard text, which grows the
/// scratch buffer (once, to at most the framing's 64 KiB).
const SCRATCH: usize = 2048;

impl ControlSession {
    pub fn new(rikey: &[u8; 16], now: Instant) -> Self {
        Self::with_timeout(rikey, now, CONTROL_TIMEOUT)
    }

    /// As [`Self::new`] with another idle timeout (tests; a deployment keeps the default).
    pub fn with_timeout(rikey: &[u8; 16], now: Instant, timeout: Duration) -> Self {
        ControlSession {
            cipher: ControlCipher::new(rikey, Role::Host),
            last_rx: now,
            timeout,
            plain: Vec::with_capacity(SCRATCH),
            stats: SessionStats::default(),
        }
    }

    /// Handle one ENet packet payload from the client.
    pub fn on_packet(
        &mut self,
        packet: &[u8],
        now: Instant,
    ) -> Result<Option<ControlEvent>, SessionEnd> {
        self.stats.packets += 1;
        if packet.len() < 2 || u16::from_le_bytes([packet[0], packet[1]]) != 0x0001 {
            self.stats.plaintext_dropped += 1;
            return Ok(None);
        }
        match self.cipher.open(packet, &mut self.plain) {
            Ok(_) => {}
            Err(SealError::Replayed { .. }) => {
                self.stats.replay_dropped += 1;
                return Ok(None);
            }
            Err(_) => return Err(SessionEnd::DecryptFailed),
        }
        self.last_rx = now;
        let Ok((msg_type, payload)) = ControlCipher::parse_v2(&self.plain) else {
            self.stats.malformed_dropped += 1;
            return Ok(None);
        };
        Ok(match message::decode_client(msg_type, payload) {
            Ok(ClientMessage::IdrRequest) => Some(ControlEvent::IdrRequested),
            Ok(ClientMessage::StartB) => Some(ControlEvent::StartB),
            Ok(ClientMessage::RefInvalidation {
                first_frame,
                last_frame,
            }) => Some(ControlEvent::RefInvalidated {
                first_frame,
                last_frame,
            }),
            Ok(ClientMessage::LtrAck { frame_index }) => Some(ControlEvent::LtrAck { frame_index }),
            Ok(ClientMessage::FecStatus(s)) => Some(ControlEvent::FecStatus(s)),
            Ok(ClientMessage::Input(ev)) => Some(ControlEvent::Input(ev)),
            Ok(ClientMessage::SetClipboard(text)) => Some(ControlEvent::SetClipboard { text }),
            Ok(ClientMessage::Ping) => {
                self.stats.pings += 1;
                None
            }
            Ok(ClientMessage::LossStats) => None,
            Ok(ClientMessage::Unknown(_)) => {
                self.stats.unknown_types += 1;
                None
            }
            Err(_) => {
                self.stats.malformed_dropped += 1;
                None
            }
        })
    }

    pub fn is_timed_out(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.last_rx) >= self.timeout
    }

    /// Seal a host → client message into `out` (cleared first).
    pub fn seal(
        &mut self,
        msg_type: u16,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), SealError> {
        self.cipher.seal_message(msg_type, payload, out).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::*;

    const KEY: [u8; 16] = [7; 16];

    fn client_packet(c: &mut ControlCipher, ty: u16, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        c.seal_message(ty, payload, &mut out).unwrap();
        out
    }

    #[test]
    fn decodes_and_enforces_rules_with_simulated_time() {
        let t0 = Instant::now();
        let mut s = ControlSession::new(&KEY, t0);
        let mut client = ControlCipher::new(&KEY, Role::Client);
        let p = client_packet(&mut client, MSG_IDR_REQUEST, &[0, 0]);
        assert_eq!(s.on_packet(&p, t0), Ok(Some(ControlEvent::IdrRequested)));
        // The same packet again: replay, dropped.
        assert_eq!(s.on_packet(&p, t0), Ok(None));
        assert_eq!(s.stats.replay_dropped, 1);
        // Plaintext V2 message: dropped, session goes on.
        assert_eq!(s.on_packet(&[0x02, 0x03, 0, 0], t0), Ok(None));
        assert_eq!(s.stats.plaintext_dropped, 1);
        // Ping keeps the session alive.
        let t1 = t0 + Duration::from_secs(9);
        let ping = client_packet(&mut client, MSG_PING, &[0; 4]);
        assert_eq!(s.on_packet(&ping, t1), Ok(None));
        assert!(!s.is_timed_out(t1 + Duration::from_secs(9)));
        assert!(s.is_timed_out(t1 + CONTROL_TIMEOUT));
        // Tampered ciphertext ends it.
        let mut bad = client_packet(&mut client, MSG_START_B, &[0]);
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert_eq!(s.on_packet(&bad, t1), Err(SessionEnd::DecryptFailed));
    }

    #[test]
    fn a_sealed_set_clipboard_becomes_its_event() {
        let t0 = Instant::now();
        let mut s = ControlSession::new(&KEY, t0);
        let mut client = ControlCipher::new(&KEY, Role::Client);
        let p = client_packet(&mut client, MSG_SET_CLIPBOARD, "héllo".as_bytes());
        assert_eq!(
            s.on_packet(&p, t0),
            Ok(Some(ControlEvent::SetClipboard {
                text: "héllo".as_bytes().to_vec()
            }))
        );
        // The largest text the V2 framing can carry still arrives whole.
        let max = ControlCipher::MAX_PLAINTEXT_LEN - ControlCipher::V2_HEADER_LEN;
        let big = vec![b'a'; max];
        let p = client_packet(&mut client, MSG_SET_CLIPBOARD, &big);
        assert_eq!(
            s.on_packet(&p, t0),
            Ok(Some(ControlEvent::SetClipboard { text: big }))
        );
    }

    #[test]
    fn host_messages_decrypt_on_the_client() {
        let mut s = ControlSession::new(&KEY, Instant::now());
        let mut client = ControlCipher::new(&KEY, Role::Client);
        let mut out = Vec::new();
        s.seal(
            MSG_TERMINATION,
            &host::termination(TERMINATION_GRACEFUL),
            &mut out,
        )
        .unwrap();
        let mut pt = Vec::new();
        assert_eq!(client.open(&out, &mut pt), Ok(0));
        let (ty, payload) = ControlCipher::parse_v2(&pt).unwrap();
        assert_eq!(ty, MSG_TERMINATION);
        assert_eq!(
            u32::from_be_bytes(payload.try_into().unwrap()),
            TERMINATION_GRACEFUL
        );
    }
}
