//! Ethernet + IPv4 + UDP header templates for AF_XDP transmit (sans-IO, no allocation).
//!
//! Contract: a [`HeaderTemplate`] is built once per destination (MACs, addresses, ports, TTL,
//! DSCP). [`HeaderTemplate::write`] stamps the 42 header bytes in front of a payload already in
//! the frame, filling the per-packet fields (IP total length, IP id, IP header checksum, UDP
//! length, UDP checksum). The UDP checksum is computed over the RFC 768 pseudo-header (IPv4 allows
//! 0 = "none", which we use only when asked to), and a computed 0 is sent as 0xFFFF.

use std::net::SocketAddrV4;

pub const ETH_LEN: usize = 14;
pub const IPV4_LEN: usize = 20;
pub const UDP_LEN: usize = 8;
/// Bytes in front of the UDP payload.
pub const HDR_LEN: usize = ETH_LEN + IPV4_LEN + UDP_LEN;
pub const ETHERTYPE_IPV4: u16 = 0x0800;
const IPPROTO_UDP: u8 = 17;
/// Don't-fragment flag in the IPv4 flags/fragment field: we size datagrams to the path MTU.
const IPV4_DF: u16 = 0x4000;
pub const DEFAULT_TTL: u8 = 64;

/// Ones'-complement sum of `data` as big-endian 16-bit words (odd tail padded with zero), as a
/// partial sum (≤ 0xffff) that may be added to other partial sums and folded once (RFC 1071).
///
/// Sums native-endian 64-bit words with end-around carry and swaps once at the end: the ones'-
/// complement sum is byte-order independent (RFC 1071 §2(B)). Why: with the first version
/// (big-endian 32-bit halves) AF_XDP TX to an XDP_DROP peer ran 639k pps with the UDP checksum
/// vs 881k without; with this one 651k vs 689k (tests/pps.rs, medians of 3 on a loaded 2-core VM,
/// so only the direction is trustworthy).
pub fn sum16(data: &[u8]) -> u64 {
    let mut acc = 0u64;
    let mut carry = 0u64;
    let mut words = data.chunks_exact(8);
    for w in &mut words {
        let v = u64::from_ne_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
        let (s, c) = acc.overflowing_add(v);
        acc = s;
        carry += c as u64;
    }
    let mut rest = words.remainder().chunks_exact(2);
    let mut tail = 0u64;
    for h in &mut rest {
        tail += u16::from_ne_bytes([h[0], h[1]]) as u64;
    }
    if let [last] = rest.remainder() {
        tail += u16::from_ne_bytes([*last, 0]) as u64;
    }
    // Fold 64 -> 16 bits in native word order: split into halves so nothing overflows.
    let mut x = (acc & 0xffff_ffff) + (acc >> 32) + carry + tail;
    while x >> 16 != 0 {
        x = (x & 0xffff) + (x >> 16);
    }
    u16::from_be(x as u16) as u64
}

/// Fold a sum to 16 bits and complement it.
pub fn fold(mut acc: u64) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// Per-destination header template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderTemplate {
    bytes: [u8; HDR_LEN],
    /// Pseudo-header sum without the UDP length (src, dst, protocol).
    pseudo: u64,
    pub dest: SocketAddrV4,
}

impl HeaderTemplate {
    pub fn new(
        src_mac: [u8; 6],
        dst_mac: [u8; 6],
        src: SocketAddrV4,
        dest: SocketAddrV4,
        ttl: u8,
        dscp: u8,
    ) -> Self {
        let mut b = [0u8; HDR_LEN];
        b[0..6].copy_from_slice(&dst_mac);
        b[6..12].copy_from_slice(&src_mac);
        b[12..14].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        let ip = &mut b[ETH_LEN..ETH_LEN + IPV4_LEN];
        ip[0] = 0x45; // version 4, IHL 5
        ip[1] = (dscp & 0x3f) << 2;
        ip[6..8].copy_from_slice(&IPV4_DF.to_be_bytes());
        ip[8] = ttl;
        ip[9] = IPPROTO_UDP;
        ip[12..16].copy_from_slice(&src.ip().octets());
        ip[16..20].copy_from_slice(&dest.ip().octets());
        let udp = &mut b[ETH_LEN + IPV4_LEN..];
        udp[0..2].copy_from_slice(&src.port().to_be_bytes());
        udp[2..4].copy_from_slice(&dest.port().to_be_bytes());
        let pseudo = sum16(&src.ip().octets()) + sum16(&dest.ip().octets()) + IPPROTO_UDP as u64;
        Self {
            bytes: b,
            pseudo,
            dest,
        }
    }

    /// Write headers into `frame[..HDR_LEN]` for the payload at `frame[HDR_LEN..HDR_LEN + len]`.
    /// Returns the frame length (headers + payload). `frame` must hold `HDR_LEN + len` bytes and
    /// `len` must fit a datagram (the caller checks capacity).
    pub fn write(&self, frame: &mut [u8], len: usize, ip_id: u16, udp_checksum: bool) -> usize {
        let total = HDR_LEN + len;
        debug_assert!(len <= 65_507 && frame.len() >= total);
        let (hdr, rest) = frame.split_at_mut(HDR_LEN);
        hdr.copy_from_slice(&self.bytes);
        let ip_len = (IPV4_LEN + UDP_LEN + len) as u16;
        let udp_len = (UDP_LEN + len) as u16;
        {
            let ip = &mut hdr[ETH_LEN..ETH_LEN + IPV4_LEN];
            ip[2..4].copy_from_slice(&ip_len.to_be_bytes());
            ip[4..6].copy_from_slice(&ip_id.to_be_bytes());
            let csum = fold(sum16(ip));
            ip[10..12].copy_from_slice(&csum.to_be_bytes());
        }
        let udp = &mut hdr[ETH_LEN + IPV4_LEN..];
        udp[4..6].copy_from_slice(&udp_len.to_be_bytes());
        if udp_checksum {
            // Pseudo-header (src, dst, proto, UDP length) + UDP header (checksum field zero) + data.
            let acc = self.pseudo + udp_len as u64 + sum16(&udp[..]) + sum16(&rest[..len]);
            let c = fold(acc);
            let c = if c == 0 { 0xffff } else { c };
            udp[6..8].copy_from_slice(&c.to_be_bytes());
        }
        total
    }
}

/// Why a received frame was not accepted as IPv4/UDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    Truncated,
    NotIpv4,
    NotUdp,
    Fragment,
    BadLength,
    BadIpChecksum,
    BadUdpChecksum,
}

/// A well-formed IPv4/UDP datagram inside an Ethernet frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpView {
    pub src: SocketAddrV4,
    pub dst: SocketAddrV4,
    /// Payload byte range inside the frame.
    pub payload: (usize, usize),
}

/// Parse and verify an Ethernet/IPv4/UDP frame (hostile input: bounds-checked, never panics).
/// Checks the IPv4 header checksum, and the UDP checksum when it is not 0.
pub fn parse_udp_ipv4(frame: &[u8]) -> Result<UdpView, ParseError> {
    parse_udp_ipv4_with(frame, true)
}

/// As [`parse_udp_ipv4`]; `verify_udp_checksum: false` skips the UDP checksum (see
/// `XdpRx::set_verify_udp_checksum` for when that is needed).
pub fn parse_udp_ipv4_with(frame: &[u8], verify_udp_checksum: bool) -> Result<UdpView, ParseError> {
    let eth = frame.get(..ETH_LEN).ok_or(ParseError::Truncated)?;
    if u16::from_be_bytes([eth[12], eth[13]]) != ETHERTYPE_IPV4 {
        return Err(ParseError::NotIpv4);
    }
    let ip0 = *frame.get(ETH_LEN).ok_or(ParseError::Truncated)?;
    let ihl = (ip0 & 0x0f) as usize * 4;
    if ip0 >> 4 != 4 || ihl < IPV4_LEN {
        return Err(ParseError::NotIpv4);
    }
    let ip = frame
        .get(ETH_LEN..ETH_LEN + ihl)
        .ok_or(ParseError::Truncated)?;
    if ip[9] != IPPROTO_UDP {
        return Err(ParseError::NotUdp);
    }
    if u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff != 0 {
        return Err(ParseError::Fragment);
    }
    let total = u16::from_be_bytes([ip[2], ip[3]]) as usize;
    if total < ihl + UDP_LEN || ETH_LEN + total > frame.len() {
        return Err(ParseError::BadLength);
    }
    if fold(sum16(ip)) != 0 {
        return Err(ParseError::BadIpChecksum);
    }
    let l4 = ETH_LEN + ihl;
    let udp = &frame[l4..l4 + UDP_LEN];
    let udp_len = u16::from_be_bytes([udp[4], udp[5]]) as usize;
    if udp_len < UDP_LEN || udp_len > total - ihl {
        return Err(ParseError::BadLength);
    }
    let src_ip = std::net::Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
    let dst_ip = std::net::Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
    if verify_udp_checksum && u16::from_be_bytes([udp[6], udp[7]]) != 0 {
        let pseudo = sum16(&ip[12..20]) + IPPROTO_UDP as u64 + udp_len as u64;
        if fold(pseudo + sum16(&frame[l4..l4 + udp_len])) != 0 {
            return Err(ParseError::BadUdpChecksum);
        }
    }
    Ok(UdpView {
        src: SocketAddrV4::new(src_ip, u16::from_be_bytes([udp[0], udp[1]])),
        dst: SocketAddrV4::new(dst_ip, u16::from_be_bytes([udp[2], udp[3]])),
        payload: (l4 + UDP_LEN, l4 + udp_len),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    /// RFC 1071 §3 example: words 0001 f203 f4f5 f6f7 sum to ddf2 (before complement).
    #[test]
    fn rfc1071_example() {
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum16(&data)), !0xddf2);
        // Odd length: a trailing byte is the high half of a zero-padded word.
        assert_eq!(sum16(&[0x12]), 0x1200);
    }

    #[test]
    fn fast_sum_matches_the_plain_word_loop() {
        let mut x = 0x1234_5678_9abc_def1u64;
        for len in (0..64).chain([1199, 1200, 1201, 1472, 9000]) {
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            assert_eq!(fold(sum16(&data)), naive(&data), "len {len}");
        }
        // Carries: all-ones data exercises end-around carry at every level.
        let ones = vec![0xffu8; 1500];
        assert_eq!(fold(sum16(&ones)), naive(&ones));
    }

    /// Independent reference: a plain 16-bit word loop.
    fn naive(data: &[u8]) -> u16 {
        let mut s: u32 = 0;
        for (i, w) in data.chunks(2).enumerate() {
            let _ = i;
            let v = if w.len() == 2 {
                u16::from_be_bytes([w[0], w[1]])
            } else {
                (w[0] as u16) << 8
            };
            s += v as u32;
            s = (s & 0xffff) + (s >> 16);
        }
        !(s as u16)
    }

    #[test]
    fn headers_verify_like_a_receiver_would() {
        let src = SocketAddrV4::new(Ipv4Addr::new(10, 201, 0, 1), 40000);
        let dst = SocketAddrV4::new(Ipv4Addr::new(10, 201, 0, 2), 47998);
        let t = HeaderTemplate::new([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2], src, dst, 64, 46);
        for len in [1usize, 2, 3, 63, 64, 600, 1199, 1200, 1472] {
            let mut frame = vec![0u8; HDR_LEN + len];
            for (i, b) in frame[HDR_LEN..].iter_mut().enumerate() {
                *b = (i * 13 + len) as u8;
            }
            let n = t.write(&mut frame, len, 0x1234, true);
            assert_eq!(n, HDR_LEN + len);
            let ip = &frame[ETH_LEN..ETH_LEN + IPV4_LEN];
            assert_eq!(naive(ip), 0, "IPv4 header checksum must verify to 0");
            assert_eq!(u16::from_be_bytes([ip[2], ip[3]]) as usize, 28 + len);
            assert_eq!(ip[1] >> 2, 46, "DSCP");
            // Receiver check: pseudo header + UDP segment sums to 0xffff (complement 0).
            let udp = &frame[ETH_LEN + IPV4_LEN..];
            let mut pseudo = Vec::new();
            pseudo.extend_from_slice(&ip[12..20]);
            pseudo.extend_from_slice(&[0, 17]);
            pseudo.extend_from_slice(&((8 + len) as u16).to_be_bytes());
            pseudo.extend_from_slice(udp);
            assert_eq!(naive(&pseudo), 0, "UDP checksum must verify (len {len})");
            assert_ne!(u16::from_be_bytes([udp[6], udp[7]]), 0);
            let v = parse_udp_ipv4(&frame).expect("own frames parse");
            assert_eq!((v.src, v.dst), (src, dst));
            assert_eq!(v.payload, (HDR_LEN, HDR_LEN + len));
            // Any single corrupted byte is caught by one of the checks.
            for i in [15usize, 26, 30, 36, 40, HDR_LEN, HDR_LEN + len - 1] {
                let mut bad = frame.clone();
                bad[i] ^= 0x40;
                assert!(
                    parse_udp_ipv4(&bad).is_err(),
                    "flip at {i} (len {len}) must be rejected"
                );
            }
            for cut in [0, 13, 20, 33, 41] {
                assert!(parse_udp_ipv4(&frame[..cut]).is_err());
            }
        }
        let mut frame = vec![0u8; HDR_LEN + 10];
        t.write(&mut frame, 10, 1, false);
        assert!(parse_udp_ipv4(&frame).is_ok(), "checksum 0 is accepted");
        assert_eq!(
            &frame[40..42],
            &[0, 0],
            "checksum off leaves 0 (allowed on IPv4)"
        );
    }

    /// Hostile input: random bytes and randomly mutated valid frames never panic, and anything
    /// accepted has a payload range inside the frame.
    #[test]
    fn parser_survives_random_and_mutated_frames() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut rnd = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let src = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 1);
        let dst = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 2);
        let t = HeaderTemplate::new([1; 6], [2; 6], src, dst, 64, 0);
        let mut valid = vec![0u8; HDR_LEN + 200];
        t.write(&mut valid, 200, 7, true);
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
            if let Ok(v) = parse_udp_ipv4(&frame) {
                assert!(v.payload.0 <= v.payload.1 && v.payload.1 <= frame.len());
            }
        }
    }
}
