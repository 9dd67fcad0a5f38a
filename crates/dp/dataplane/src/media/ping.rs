//! Sans-IO destination learning from client pings (`gamestream-host.md` §A11).
//!
//! Contract: [`PingMatcher::on_datagram`] takes one datagram received on a stream's host port
//! with its source address and says whether it is a ping of this session and whether the
//! destination changed. A ping is the session's 16-byte `X-SS-Ping-Payload` at the front of the
//! datagram (20 bytes with the u32 counter; any source IP is accepted, as the payload is the
//! secret), or — for legacy clients without a payload — the 4 bytes "PING" from the peer's IP.
//! Everything else is ignored (counted by the caller). The destination follows the latest
//! matching ping, so a client whose NAT or socket changes port is followed.
//!
//! A native `strahl/1` session sends no pings: its destination is the client's media address
//! from the control plane ([`PingMatcher::fixed`]), and every datagram is ignored.

use std::net::{IpAddr, SocketAddr};

/// What one datagram did to the destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PingOutcome {
    /// Not a ping of this session.
    Ignored,
    /// A ping from the current destination.
    Same,
    /// The first ping, or one from a new source: send there from now on.
    Learned(SocketAddr),
}

#[derive(Debug, Clone)]
pub struct PingMatcher {
    payload: Option<[u8; 16]>,
    peer_ip: IpAddr,
    dest: Option<SocketAddr>,
    /// The destination was given, not learned: pings never move it.
    fixed: bool,
}

/// Legacy ping body.
pub const LEGACY_PING: &[u8; 4] = b"PING";

fn canonical(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(a.ip().to_canonical(), a.port())
}

impl PingMatcher {
    pub fn new(payload: Option<[u8; 16]>, peer_ip: IpAddr) -> Self {
        Self {
            payload,
            peer_ip: peer_ip.to_canonical(),
            dest: None,
            fixed: false,
        }
    }

    /// A destination known from the start (native sessions): [`Self::dest`] is `dest` at once
    /// and no datagram matches.
    pub fn fixed(dest: SocketAddr) -> Self {
        Self {
            payload: None,
            peer_ip: dest.ip().to_canonical(),
            dest: Some(canonical(dest)),
            fixed: true,
        }
    }

    /// The destination learned so far.
    pub fn dest(&self) -> Option<SocketAddr> {
        self.dest
    }

    pub fn on_datagram(&mut self, src: SocketAddr, data: &[u8]) -> PingOutcome {
        if self.fixed {
            return PingOutcome::Ignored;
        }
        let src = canonical(src);
        let matched = match &self.payload {
            Some(p) => data.len() >= p.len() && data[..p.len()] == p[..],
            None => src.ip() == self.peer_ip && data.starts_with(LEGACY_PING),
        };
        if !matched {
            return PingOutcome::Ignored;
        }
        if self.dest == Some(src) {
            return PingOutcome::Same;
        }
        self.dest = Some(src);
        PingOutcome::Learned(src)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn payload_pings_are_matched_and_followed() {
        let payload = *b"0123456789ABCDEF";
        let mut m = PingMatcher::new(Some(payload), "10.0.0.2".parse().unwrap());
        let mut ping = payload.to_vec();
        ping.extend_from_slice(&1u32.to_be_bytes());
        assert_eq!(
            m.on_datagram(a("10.0.0.9:1"), b"0123456789ABCDE"),
            PingOutcome::Ignored
        );
        assert_eq!(
            m.on_datagram(a("10.0.0.9:1"), b"PING"),
            PingOutcome::Ignored
        );
        let mut wrong = ping.clone();
        wrong[3] ^= 1;
        assert_eq!(m.on_datagram(a("10.0.0.9:1"), &wrong), PingOutcome::Ignored);
        assert_eq!(m.dest(), None);
        assert_eq!(
            m.on_datagram(a("10.0.0.9:4000"), &ping),
            PingOutcome::Learned(a("10.0.0.9:4000"))
        );
        assert_eq!(m.on_datagram(a("10.0.0.9:4000"), &ping), PingOutcome::Same);
        assert_eq!(
            m.on_datagram(a("10.0.0.9:4001"), &ping),
            PingOutcome::Learned(a("10.0.0.9:4001"))
        );
        assert_eq!(m.dest(), Some(a("10.0.0.9:4001")));
    }

    #[test]
    fn a_fixed_destination_is_known_at_once_and_never_moved() {
        let mut m = PingMatcher::fixed(a("10.0.0.2:47901"));
        assert_eq!(m.dest(), Some(a("10.0.0.2:47901")));
        assert_eq!(
            m.on_datagram(a("10.0.0.2:5"), b"PING"),
            PingOutcome::Ignored
        );
        assert_eq!(m.dest(), Some(a("10.0.0.2:47901")));
    }

    #[test]
    fn legacy_pings_need_the_peer_ip() {
        let mut m = PingMatcher::new(None, "::ffff:10.0.0.2".parse().unwrap());
        assert_eq!(
            m.on_datagram(a("10.0.0.3:5"), b"PING"),
            PingOutcome::Ignored
        );
        assert_eq!(
            m.on_datagram(a("10.0.0.2:5"), b"PONG"),
            PingOutcome::Ignored
        );
        assert_eq!(
            m.on_datagram(a("10.0.0.2:5"), b"PING"),
            PingOutcome::Learned(a("10.0.0.2:5"))
        );
        assert_eq!(
            m.on_datagram(a("[::ffff:10.0.0.2]:5"), b"PING\0\0\0\x01"),
            PingOutcome::Same
        );
    }
}
