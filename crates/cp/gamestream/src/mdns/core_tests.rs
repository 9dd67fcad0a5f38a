//! The sans-IO responder: query parsing (bounded, never panicking on any bytes), which names
//! and types are answered, where replies go (multicast, QU unicast, legacy unicast), the
//! per-link multicast rate limit, the link's addresses. Replies are decoded with a small
//! decoder written here from RFC 1035 §4.1, independent of the encoder.

use super::*;
use proptest::prelude::*;
use std::net::Ipv6Addr;

const PORT: u16 = 47989;

/// A decoded resource record: (name, type, class, ttl, rdata).
type Rr = (String, u16, u16, u32, Vec<u8>);

/// A decoded message: (id, flags, questions as (name, type, class), answers, additional).
type Decoded = (u16, u16, Vec<(String, u16, u16)>, Vec<Rr>, Vec<Rr>);

/// Test-side decoder of a whole message.
fn decode(p: &[u8]) -> Decoded {
    fn name(p: &[u8], mut at: usize) -> (String, usize) {
        let mut s = String::new();
        let mut end = None;
        for _ in 0..64 {
            let len = p[at] as usize;
            if len == 0 {
                return (s, end.unwrap_or(at + 1));
            }
            if len & 0xC0 == 0xC0 {
                end.get_or_insert(at + 2);
                at = ((len & 0x3F) << 8) | p[at + 1] as usize;
                continue;
            }
            s.push_str(&String::from_utf8_lossy(&p[at + 1..at + 1 + len]));
            s.push('.');
            at += 1 + len;
        }
        panic!("name loop");
    }
    let be16 = |at: usize| u16::from_be_bytes([p[at], p[at + 1]]);
    let (qd, an, ns, ar) = (be16(4), be16(6), be16(8), be16(10));
    assert_eq!(ns, 0);
    let mut at = 12;
    let mut qs = Vec::new();
    for _ in 0..qd {
        let (n, next) = name(p, at);
        qs.push((n, be16(next), be16(next + 2)));
        at = next + 4;
    }
    let rrs = |count: u16, at: &mut usize| {
        let mut v = Vec::new();
        for _ in 0..count {
            let (n, next) = name(p, *at);
            let ttl = u32::from_be_bytes(p[next + 4..next + 8].try_into().unwrap());
            let len = be16(next + 8) as usize;
            v.push((
                n,
                be16(next),
                be16(next + 2),
                ttl,
                p[next + 10..next + 10 + len].to_vec(),
            ));
            *at = next + 10 + len;
        }
        v
    };
    let answers = rrs(an, &mut at);
    let additional = rrs(ar, &mut at);
    assert_eq!(at, p.len(), "no trailing bytes");
    (be16(0), be16(2), qs, answers, additional)
}

/// A query: (name, type, QU bit) questions.
fn query(id: u16, qs: &[(&str, u16, bool)]) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(&(qs.len() as u16).to_be_bytes());
    p.extend_from_slice(&[0; 6]);
    for (n, t, qu) in qs {
        Name::from_dotted(n).encode(&mut p);
        p.extend_from_slice(&t.to_be_bytes());
        p.extend_from_slice(&(if *qu { 0x8001u16 } else { 1 }).to_be_bytes());
    }
    p
}

fn link() -> Link {
    Link {
        if_indexes: vec![2],
        addrs: vec![
            "192.168.1.20".parse().unwrap(),
            "fe80::1234".parse().unwrap(),
        ],
    }
}

fn mdns_src() -> SocketAddr {
    "192.168.1.50:5353".parse().unwrap()
}

fn responder() -> Responder {
    Responder::new("Living Room PC", PORT, MDNS_PORT)
}

const INSTANCE: &str = "Living Room PC._nvstream._tcp.local.";
const HOST: &str = "Living-Room-PC.local.";

#[test]
fn ptr_query_gets_ptr_with_srv_txt_and_addresses_multicast() {
    let mut r = responder();
    assert_eq!(r.instance_name(), INSTANCE);
    assert_eq!(r.host_name(), HOST);
    let t0 = Instant::now();
    let reply = r
        .handle(
            &query(7, &[("_nvstream._tcp.local", TYPE_PTR, false)]),
            mdns_src(),
            &link(),
            t0,
        )
        .expect("answered");
    assert_eq!(reply.to, Destination::Multicast);
    let (id, flags, qs, an, ar) = decode(&reply.bytes);
    assert_eq!(
        (id, flags),
        (0, 0x8400),
        "multicast replies carry id 0, QR|AA"
    );
    assert!(qs.is_empty());
    let mut instance_rdata = Vec::new();
    Name::from_dotted("Living Room PC._nvstream._tcp.local").encode(&mut instance_rdata);
    assert_eq!(
        an,
        [(
            "_nvstream._tcp.local.".to_string(),
            TYPE_PTR,
            1,
            TTL_OTHER,
            instance_rdata
        )]
    );
    let types: Vec<(String, u16, u16)> = ar.iter().map(|r| (r.0.clone(), r.1, r.2)).collect();
    assert_eq!(
        types,
        [
            (INSTANCE.to_string(), TYPE_SRV, 0x8001),
            (INSTANCE.to_string(), TYPE_TXT, 0x8001),
            (HOST.to_string(), TYPE_A, 0x8001),
            (HOST.to_string(), TYPE_AAAA, 0x8001),
        ]
    );
    // SRV: priority 0, weight 0, our port, the host name.
    let srv = &ar[0].4;
    assert_eq!(&srv[..6], &[0, 0, 0, 0, (PORT >> 8) as u8, PORT as u8]);
    let mut host = Vec::new();
    Name::from_dotted("Living-Room-PC.local").encode(&mut host);
    assert_eq!(&srv[6..], &host[..]);
    assert_eq!(ar[1].4, [0], "an empty TXT holds one empty string");
    assert_eq!(ar[2].4, [192, 168, 1, 20]);
    assert_eq!(ar[3].4, "fe80::1234".parse::<Ipv6Addr>().unwrap().octets());
    assert_eq!(ar[2].3, TTL_HOST);
    assert_eq!(r.counters().answered, 1);
}

#[test]
fn instance_and_host_questions_and_case_insensitivity() {
    let mut r = responder();
    let t0 = Instant::now();
    let qu = |r: &mut Responder, qs: &[(&str, u16, bool)]| {
        r.handle(&query(1, qs), mdns_src(), &link(), t0)
            .map(|reply| decode(&reply.bytes))
    };
    // SRV for the instance (any case): the SRV, addresses as additional.
    let (_, _, _, an, ar) = qu(
        &mut r,
        &[("living room pc._NVSTREAM._tcp.LOCAL", TYPE_SRV, true)],
    )
    .unwrap();
    assert_eq!(an.iter().map(|x| x.1).collect::<Vec<_>>(), [TYPE_SRV]);
    assert_eq!(
        ar.iter().map(|x| x.1).collect::<Vec<_>>(),
        [TYPE_A, TYPE_AAAA]
    );
    // TXT alone; ANY for the instance gives both.
    let (_, _, _, an, ar) = qu(&mut r, &[(INSTANCE, TYPE_TXT, true)]).unwrap();
    assert_eq!((an.len(), an[0].1, ar.len()), (1, TYPE_TXT, 0));
    let (_, _, _, an, _) = qu(&mut r, &[(INSTANCE, TYPE_ANY, true)]).unwrap();
    assert_eq!(
        an.iter().map(|x| x.1).collect::<Vec<_>>(),
        [TYPE_SRV, TYPE_TXT]
    );
    // A and AAAA for the host name.
    let (_, _, _, an, ar) = qu(&mut r, &[("living-room-pc.local", TYPE_A, true)]).unwrap();
    assert_eq!(
        (an.len(), an[0].4.clone(), ar.len()),
        (1, vec![192, 168, 1, 20], 0)
    );
    let (_, _, _, an, _) = qu(&mut r, &[(HOST, TYPE_AAAA, true)]).unwrap();
    assert_eq!(an[0].1, TYPE_AAAA);
    // Other names, other types of our names, other classes: silence.
    for qs in [
        &[("_airplay._tcp.local", TYPE_PTR, true)][..],
        &[("_nvstream._tcp.local", TYPE_SRV, true)][..],
        &[(INSTANCE, TYPE_A, true)][..],
        &[("other.local", TYPE_A, true)][..],
    ] {
        assert_eq!(qu(&mut r, qs), None, "{qs:?}");
    }
    let mut chaos = query(1, &[(HOST, TYPE_A, false)]);
    let n = chaos.len();
    chaos[n - 1] = 3; // class CH
    assert_eq!(r.handle(&chaos, mdns_src(), &link(), t0), None);
    // A host with no IPv6 on the link has no AAAA to give.
    let v4_only = Link {
        if_indexes: vec![2],
        addrs: vec!["10.1.1.1".parse().unwrap()],
    };
    assert_eq!(
        r.handle(
            &query(1, &[(HOST, TYPE_AAAA, true)]),
            mdns_src(),
            &v4_only,
            t0
        ),
        None
    );
}

#[test]
fn unicast_bit_and_legacy_queries_are_answered_to_the_source() {
    let mut r = responder();
    let t0 = Instant::now();
    // QU on every answered question: unicast to the querier, still an mDNS-style reply.
    let reply = r
        .handle(
            &query(9, &[("_nvstream._tcp.local", TYPE_PTR, true)]),
            mdns_src(),
            &link(),
            t0,
        )
        .unwrap();
    assert_eq!(reply.to, Destination::Unicast(mdns_src()));
    let (id, _, qs, an, _) = decode(&reply.bytes);
    assert_eq!((id, qs.len(), an[0].3), (0, 0, TTL_OTHER));
    // QU on one question but not on another answered one: multicast.
    let reply = r
        .handle(
            &query(
                9,
                &[
                    ("_nvstream._tcp.local", TYPE_PTR, true),
                    (HOST, TYPE_A, false),
                ],
            ),
            mdns_src(),
            &link(),
            t0,
        )
        .unwrap();
    assert_eq!(reply.to, Destination::Multicast);
    // Legacy (source port ≠ 5353): unicast, id and question echoed, short TTLs, no flush bit.
    let legacy: SocketAddr = "192.168.1.50:41234".parse().unwrap();
    let reply = r
        .handle(
            &query(0xBEEF, &[("_nvstream._tcp.local", TYPE_PTR, false)]),
            legacy,
            &link(),
            t0,
        )
        .unwrap();
    assert_eq!(reply.to, Destination::Unicast(legacy));
    let (id, flags, qs, an, ar) = decode(&reply.bytes);
    assert_eq!((id, flags), (0xBEEF, 0x8400));
    assert_eq!(qs, [("_nvstream._tcp.local.".to_string(), TYPE_PTR, 1)]);
    for rr in an.iter().chain(&ar) {
        assert!(rr.3 <= TTL_LEGACY, "{rr:?}");
        assert_eq!(rr.2, 1, "no cache-flush bit in legacy replies: {rr:?}");
    }
}

#[test]
fn multicast_replies_are_rate_limited_per_link() {
    let mut r = responder();
    let t0 = Instant::now();
    let q = query(1, &[("_nvstream._tcp.local", TYPE_PTR, false)]);
    assert!(r.handle(&q, mdns_src(), &link(), t0).is_some());
    let soon = t0 + Duration::from_millis(300);
    assert_eq!(r.handle(&q, mdns_src(), &link(), soon), None);
    assert_eq!(r.counters().rate_limited, 1);
    // Another link, or a unicast-wanted query, is not held back.
    let other = Link {
        if_indexes: vec![3],
        addrs: vec!["10.0.0.2".parse().unwrap()],
    };
    assert!(
        r.handle(&q, "10.0.0.9:5353".parse().unwrap(), &other, soon)
            .is_some()
    );
    let qu = query(1, &[("_nvstream._tcp.local", TYPE_PTR, true)]);
    assert!(r.handle(&qu, mdns_src(), &link(), soon).is_some());
    assert!(
        r.handle(&q, mdns_src(), &link(), t0 + MULTICAST_INTERVAL)
            .is_some()
    );
}

#[test]
fn responses_and_malformed_packets_are_dropped_and_counted() {
    let mut r = responder();
    let t0 = Instant::now();
    // Our own multicast reply, looped back: a response, never answered.
    let reply = r
        .handle(
            &query(1, &[("_nvstream._tcp.local", TYPE_PTR, false)]),
            mdns_src(),
            &link(),
            t0,
        )
        .unwrap();
    assert_eq!(r.handle(&reply.bytes, mdns_src(), &link(), t0), None);
    assert_eq!(r.counters().responses, 1);
    let mut opcode = query(1, &[(HOST, TYPE_A, true)]);
    opcode[2] = 0x28; // opcode 5 (update)
    for bad in [
        &b""[..],
        &[0u8; 11][..],
        &opcode[..],
        // A label running past the end.
        &[0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 9, b'a'][..],
        // A pointer to itself (a loop) and a forward pointer.
        &[0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xC0, 12, 0, 1, 0, 1][..],
        &[0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xC0, 40, 0, 1, 0, 1][..],
        // Reserved label type 0x40.
        &[
            0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0x41, b'a', 0, 0, 1, 0, 1,
        ][..],
    ] {
        assert_eq!(r.handle(bad, mdns_src(), &link(), t0), None, "{bad:?}");
    }
    assert_eq!(r.counters().malformed, 7);
    // A backward pointer is fine: the second question reuses the first's name.
    let mut p = query(1, &[(HOST, TYPE_A, true)]);
    p[5] = 2;
    p.extend_from_slice(&[0xC0, 12, 0, TYPE_AAAA as u8, 0x80, 1]);
    let q = parse_query(&p).unwrap();
    assert_eq!(q.questions.len(), 2);
    assert!(q.questions[1].name.eq_ignore_case(&Name::from_dotted(HOST)));
    assert!(q.questions[1].unicast);
    // Names over 255 bytes are refused.
    let long = vec!["a".repeat(63); 5].join(".");
    assert_eq!(
        parse_query(&query(1, &[(&long, TYPE_A, false)])),
        Err(ParseError::BadName)
    );
}

#[test]
fn labels_from_display_names() {
    assert_eq!(host_label("My Gaming PC"), "My-Gaming-PC");
    assert_eq!(host_label("  "), "strahl");
    assert_eq!(host_label(&"x".repeat(100)).len(), 63);
    assert_eq!(host_label("héllo"), "h-llo");
    assert_eq!(instance_label("Wohnzimmer-PC ü"), "Wohnzimmer-PC ü");
    assert_eq!(instance_label("a.b\n"), "a-b");
    assert_eq!(instance_label(""), "strahl");
    let long = instance_label(&"ü".repeat(40));
    assert!(long.len() <= 63 && long.chars().all(|c| c == 'ü'), "{long}");
}

#[test]
fn the_link_decides_the_addresses() {
    let host = [
        HostAddr {
            ip: "127.0.0.1".parse().unwrap(),
            prefix_len: 8,
            if_index: 1,
        },
        HostAddr {
            ip: "192.168.1.20".parse().unwrap(),
            prefix_len: 24,
            if_index: 2,
        },
        HostAddr {
            ip: "fe80::20".parse().unwrap(),
            prefix_len: 64,
            if_index: 2,
        },
        HostAddr {
            ip: "10.8.0.1".parse().unwrap(),
            prefix_len: 16,
            if_index: 3,
        },
    ];
    let l = link_for("192.168.1.77:5353".parse().unwrap(), &host);
    assert_eq!(l.if_indexes, [2]);
    assert_eq!(
        l.addrs,
        [
            "192.168.1.20".parse::<IpAddr>().unwrap(),
            "fe80::20".parse().unwrap()
        ]
    );
    // IPv6 link-local: the scope is the interface; IPv4-mapped sources count as IPv4.
    let v6: SocketAddr = SocketAddr::V6(std::net::SocketAddrV6::new(
        "fe80::99".parse().unwrap(),
        5353,
        0,
        3,
    ));
    assert_eq!(
        link_for(v6, &host).addrs,
        ["10.8.0.1".parse::<IpAddr>().unwrap()]
    );
    assert_eq!(
        link_for("[::ffff:10.8.3.3]:5353".parse().unwrap(), &host).if_indexes,
        [3]
    );
    // Unknown network: every non-loopback address; loopback source: loopback only.
    assert_eq!(
        link_for("172.16.0.1:5353".parse().unwrap(), &host)
            .addrs
            .len(),
        3
    );
    assert_eq!(
        link_for("127.0.0.1:5353".parse().unwrap(), &host).addrs,
        ["127.0.0.1".parse::<IpAddr>().unwrap()]
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    /// Any bytes: parsing and handling return, never panic, and only queries for our names are
    /// ever answered.
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600),
                                port in prop_oneof![Just(MDNS_PORT), any::<u16>()]) {
        let _ = parse_query(&bytes);
        let mut r = responder();
        let src = SocketAddr::new("192.168.1.50".parse().unwrap(), port);
        if let Some(reply) = r.handle(&bytes, src, &link(), Instant::now()) {
            // Only possible for a well-formed query naming us.
            let q = parse_query(&bytes).expect("answered a malformed packet");
            prop_assert!(!q.questions.is_empty());
            let (_, flags, _, an, _) = decode(&reply.bytes);
            prop_assert_eq!(flags, 0x8400);
            prop_assert!(!an.is_empty());
        }
    }

    /// Valid queries with random bytes flipped: still no panic.
    #[test]
    fn mutated_queries_never_panic(flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
                                   cut in any::<usize>()) {
        let mut p = query(3, &[("_nvstream._tcp.local", TYPE_PTR, false), (HOST, TYPE_A, true), (INSTANCE, TYPE_ANY, false)]);
        for (i, b) in flips {
            let n = p.len();
            p[i % n] = b;
        }
        p.truncate(cut % (p.len() + 1));
        let mut r = responder();
        let _ = r.handle(&p, mdns_src(), &link(), Instant::now());
    }
}
