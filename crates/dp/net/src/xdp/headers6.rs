//! Ethernet + IPv6 + UDP header templates and parser for AF_XDP (sans-IO, no allocation).
//!
//! Contract: a [`HeaderTemplate6`] is built once per destination (MACs, addresses, ports, hop
//! limit, traffic class). [`HeaderTemplate6::write`] stamps the 62 header bytes in front of a
//! payload already in the frame, filling only the per-packet fields (payload length, UDP length,
//! UDP checksum). The UDP checksum is mandatory on IPv6 (RFC 8200 §8.1): it is always computed
//! over the IPv6 pseudo-header (src, dst, upper-layer length, next header 17), and a computed 0 is
//! sent as 0xFFFF. The parser rejects a zero UDP checksum for the same reason. The ones'-
//! complement helpers are shared with the IPv4 path ([`super::headers::sum16`], `fold`).

use super::headers::{ETH_LEN, ParseError, UDP_LEN, fold, sum16};
use std::net::{Ipv6Addr, SocketAddrV6};

pub const IPV6_LEN: usize = 40;
/// Bytes in front of the UDP payload for IPv6.
pub const HDR6_LEN: usize = ETH_LEN + IPV6_LEN + UDP_LEN;
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
const NEXT_HEADER_UDP: u8 = 17;
pub const DEFAULT_HOP_LIMIT: u8 = 64;

/// Per-destination Ethernet/IPv6/UDP header template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderTemplate6 {
    bytes: [u8; HDR6_LEN],
    /// Pseudo-header partial sum without the upper-layer length (src, dst, next header).
    pseudo: u64,
    pub dest: SocketAddrV6,
}

impl HeaderTemplate6 {
    /// `traffic_class` carries DSCP in its upper 6 bits (pass `dscp << 2`); flow label is 0.
    pub fn new(
        src_mac: [u8; 6],
        dst_mac: [u8; 6],
        src: SocketAddrV6,
        dest: SocketAddrV6,
        hop_limit: u8,
        dscp: u8,
    ) -> Self {
        let mut b = [0u8; HDR6_LEN];
        b[0..6].copy_from_slice(&dst_mac);
        b[6..12].copy_from_slice(&src_mac);
        b[12..14].copy_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
        let ip = &mut b[ETH_LEN..ETH_LEN + IPV6_LEN];
        let tc = (dscp & 0x3f) << 2;
        // version 6 | traffic class | flow label 0
        ip[0] = 0x60 | (tc >> 4);
        ip[1] = tc << 4;
        ip[6] = NEXT_HEADER_UDP;
        ip[7] = hop_limit;
        ip[8..24].copy_from_slice(&src.ip().octets());
        ip[24..40].copy_from_slice(&dest.ip().octets());
        let udp = &mut b[ETH_LEN + IPV6_LEN..];
        udp[0..2].copy_from_slice(&src.port().to_be_bytes());
        udp[2..4].copy_from_slice(&dest.port().to_be_bytes());
        let pseudo =
            sum16(&src.ip().octets()) + sum16(&dest.ip().octets()) + NEXT_HEADER_UDP as u64;
        Self {
            bytes: b,
            pseudo,
            dest,
        }
    }

    /// Write headers into `frame[..HDR6_LEN]` for the payload at `frame[HDR6_LEN..HDR6_LEN + len]`.
    /// Returns the frame length. `frame` must hold `HDR6_LEN + len` bytes and `len` must fit a
    /// (non-jumbogram) datagram: `UDP_LEN + len <= 65535` (the caller checks capacity).
    pub fn write(&self, frame: &mut [u8], len: usize) -> usize {
        let total = HDR6_LEN + len;
        debug_assert!(UDP_LEN + len <= 0xffff && frame.len() >= total);
        let (hdr, rest) = frame.split_at_mut(HDR6_LEN);
        hdr.copy_from_slice(&self.bytes);
        // IPv6 payload length = UDP length (no extension headers).
        let udp_len = (UDP_LEN + len) as u16;
        hdr[ETH_LEN + 4..ETH_LEN + 6].copy_from_slice(&udp_len.to_be_bytes());
        let udp = &mut hdr[ETH_LEN + IPV6_LEN..];
        udp[4..6].copy_from_slice(&udp_len.to_be_bytes());
        let acc = self.pseudo + udp_len as u64 + sum16(&udp[..]) + sum16(&rest[..len]);
        let c = fold(acc);
        let c = if c == 0 { 0xffff } else { c };
        udp[6..8].copy_from_slice(&c.to_be_bytes());
        total
    }
}

/// A well-formed IPv6/UDP datagram inside an Ethernet frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpView6 {
    pub src: SocketAddrV6,
    pub dst: SocketAddrV6,
    /// Payload byte range inside the frame.
    pub payload: (usize, usize),
}

/// Parse and verify an Ethernet/IPv6/UDP frame (hostile input: bounds-checked, never panics).
/// Only UDP directly after the fixed header is accepted (extension headers → `NotUdp`; our
/// senders use none). The UDP checksum is mandatory: 0 is rejected, and it is verified unless
/// `verify_udp_checksum` is false (see `XdpRx::set_verify_udp_checksum`).
pub fn parse_udp_ipv6_with(
    frame: &[u8],
    verify_udp_checksum: bool,
) -> Result<UdpView6, ParseError> {
    let eth = frame.get(..ETH_LEN).ok_or(ParseError::Truncated)?;
    if u16::from_be_bytes([eth[12], eth[13]]) != ETHERTYPE_IPV6 {
        return Err(ParseError::NotIpv4);
    }
    let ip = frame
        .get(ETH_LEN..ETH_LEN + IPV6_LEN)
        .ok_or(ParseError::Truncated)?;
    if ip[0] >> 4 != 6 {
        return Err(ParseError::NotIpv4);
    }
    if ip[6] != NEXT_HEADER_UDP {
        return Err(ParseError::NotUdp);
    }
    let plen = u16::from_be_bytes([ip[4], ip[5]]) as usize;
    let l4 = ETH_LEN + IPV6_LEN;
    if plen < UDP_LEN || l4 + plen > frame.len() {
        return Err(ParseError::BadLength);
    }
    let udp = &frame[l4..l4 + UDP_LEN];
    let udp_len = u16::from_be_bytes([udp[4], udp[5]]) as usize;
    if udp_len < UDP_LEN || udp_len > plen {
        return Err(ParseError::BadLength);
    }
    let csum = u16::from_be_bytes([udp[6], udp[7]]);
    if csum == 0 {
        return Err(ParseError::BadUdpChecksum);
    }
    if verify_udp_checksum {
        let pseudo = sum16(&ip[8..40]) + NEXT_HEADER_UDP as u64 + udp_len as u64;
        if fold(pseudo + sum16(&frame[l4..l4 + udp_len])) != 0 {
            return Err(ParseError::BadUdpChecksum);
        }
    }
    let addr = |s: &[u8]| {
        let mut o = [0u8; 16];
        o.copy_from_slice(s);
        Ipv6Addr::from(o)
    };
    Ok(UdpView6 {
        src: SocketAddrV6::new(addr(&ip[8..24]), u16::from_be_bytes([udp[0], udp[1]]), 0, 0),
        dst: SocketAddrV6::new(
            addr(&ip[24..40]),
            u16::from_be_bytes([udp[2], udp[3]]),
            0,
            0,
        ),
        payload: (l4 + UDP_LEN, l4 + udp_len),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hand-computed vector (worked in the comment below, not derived from the code under test):
    /// src fd00:5a::1 port 1, dst fd00:5a::2 port 2, payload "AB".
    #[test]
    fn checksum_matches_hand_computed_vector() {
        let src = SocketAddrV6::new("fd00:5a::1".parse().unwrap(), 1, 0, 0);
        let dst = SocketAddrV6::new("fd00:5a::2".parse().unwrap(), 2, 0, 0);
        let t = HeaderTemplate6::new([0; 6], [0; 6], src, dst, 64, 0);
        let mut frame = [0u8; HDR6_LEN + 2];
        frame[HDR6_LEN..].copy_from_slice(b"AB");
        assert_eq!(t.write(&mut frame, 2), HDR6_LEN + 2);
        // 16-bit words, by hand:
        //   src: fd00 + 005a + 0001          = fd5b
        //   dst: fd00 + 005a + 0002          = fd5c
        //   upper-layer length 000a, next header 0011
        //   UDP: 0001 + 0002 + 000a (len) + checksum 0
        //   data: 4142
        // fd5b + fd5c = 1fab7 -> fab8; + 000a + 0011 = fad3; + 0001 + 0002 + 000a = fae0;
        // + 4142 = 13c22 -> 3c23; complement = c3dc.
        let udp = &frame[ETH_LEN + IPV6_LEN..];
        assert_eq!(u16::from_be_bytes([udp[6], udp[7]]), 0xc3dc);
        assert_eq!(u16::from_be_bytes([udp[4], udp[5]]), 10);
        let ip = &frame[ETH_LEN..ETH_LEN + IPV6_LEN];
        assert_eq!(u16::from_be_bytes([ip[4], ip[5]]), 10, "payload length");
        assert_eq!((ip[0] >> 4, ip[6], ip[7]), (6, 17, 64));
        assert_eq!(&frame[12..14], &[0x86, 0xdd]);
    }

    /// Independent reference: the pseudo-header built out and summed with a plain word loop.
    fn verifies(frame: &[u8]) -> bool {
        let ip = &frame[ETH_LEN..ETH_LEN + IPV6_LEN];
        let udp = &frame[ETH_LEN + IPV6_LEN..];
        let mut v = Vec::new();
        v.extend_from_slice(&ip[8..40]);
        v.extend_from_slice(&(udp.len() as u32).to_be_bytes());
        v.extend_from_slice(&[0, 0, 0, 17]);
        v.extend_from_slice(udp);
        let mut s: u32 = 0;
        for w in v.chunks(2) {
            let x = if w.len() == 2 {
                u16::from_be_bytes([w[0], w[1]])
            } else {
                (w[0] as u16) << 8
            };
            s += x as u32;
            s = (s & 0xffff) + (s >> 16);
        }
        s == 0xffff
    }

    #[test]
    fn headers_verify_and_parse_and_corruption_is_caught() {
        let src = SocketAddrV6::new("fd00:5a::1".parse().unwrap(), 40000, 0, 0);
        let dst = SocketAddrV6::new("fd00:5a::2".parse().unwrap(), 47998, 0, 0);
        let t = HeaderTemplate6::new([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2], src, dst, 64, 46);
        for len in [1usize, 2, 3, 63, 64, 600, 1199, 1200, 1452] {
            let mut frame = vec![0u8; HDR6_LEN + len];
            for (i, b) in frame[HDR6_LEN..].iter_mut().enumerate() {
                *b = (i * 13 + len) as u8;
            }
            t.write(&mut frame, len);
            assert!(verifies(&frame), "len {len}");
            let tc = ((frame[ETH_LEN] & 0x0f) << 4) | (frame[ETH_LEN + 1] >> 4);
            assert_eq!(tc >> 2, 46, "DSCP");
            let v = parse_udp_ipv6_with(&frame, true).expect("own frames parse");
            assert_eq!((v.src, v.dst), (src, dst));
            assert_eq!(v.payload, (HDR6_LEN, HDR6_LEN + len));
            for i in [
                13usize,
                18,
                20,
                30,
                50,
                56,
                60,
                HDR6_LEN,
                HDR6_LEN + len - 1,
            ] {
                let mut bad = frame.clone();
                bad[i] ^= 0x40;
                assert!(
                    parse_udp_ipv6_with(&bad, true).is_err(),
                    "flip at {i} (len {len}) must be rejected"
                );
            }
            for cut in [0, 13, 20, 53, 61] {
                assert!(parse_udp_ipv6_with(&frame[..cut], true).is_err());
            }
        }
    }

    #[test]
    fn computed_zero_is_sent_as_ffff_and_zero_is_rejected() {
        // Search payloads of 2 bytes until the computed checksum is 0 (i.e. sent as 0xffff).
        let src = SocketAddrV6::new("fd00:5a::1".parse().unwrap(), 1, 0, 0);
        let dst = SocketAddrV6::new("fd00:5a::2".parse().unwrap(), 2, 0, 0);
        let t = HeaderTemplate6::new([0; 6], [0; 6], src, dst, 64, 0);
        // From the hand vector, sum without data is fae0; data word w gives 0 iff
        // fae0 + w folds to ffff, i.e. w = 051f.
        let mut frame = [0u8; HDR6_LEN + 2];
        frame[HDR6_LEN..].copy_from_slice(&[0x05, 0x1f]);
        t.write(&mut frame, 2);
        assert_eq!(&frame[HDR6_LEN - 2..HDR6_LEN], &[0xff, 0xff]);
        assert!(verifies(&frame));
        assert!(parse_udp_ipv6_with(&frame, true).is_ok());
        frame[HDR6_LEN - 2..HDR6_LEN].copy_from_slice(&[0, 0]);
        assert_eq!(
            parse_udp_ipv6_with(&frame, false),
            Err(ParseError::BadUdpChecksum),
            "zero UDP checksum is illegal on IPv6"
        );
    }

    #[test]
    fn parser_survives_random_and_mutated_frames() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut rnd = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let src = SocketAddrV6::new("fd00::1".parse().unwrap(), 1, 0, 0);
        let dst = SocketAddrV6::new("fd00::2".parse().unwrap(), 2, 0, 0);
        let t = HeaderTemplate6::new([1; 6], [2; 6], src, dst, 64, 0);
        let mut valid = vec![0u8; HDR6_LEN + 200];
        t.write(&mut valid, 200);
        for i in 0..50_000 {
            let frame: Vec<u8> = if i % 2 == 0 {
                let len = (rnd() % 300) as usize;
                (0..len).map(|_| rnd() as u8).collect()
            } else {
                let mut f = valid.clone();
                for _ in 0..(1 + rnd() % 4) {
                    let at = (rnd() as usize) % f.len();
                    f[at] = rnd() as u8;
                }
                f.truncate((rnd() as usize) % (f.len() + 1));
                f
            };
            if let Ok(v) = parse_udp_ipv6_with(&frame, true) {
                assert!(v.payload.0 <= v.payload.1 && v.payload.1 <= frame.len());
            }
        }
    }
}
