//! Native `strahl/1` media across network namespaces: the host side of a veth pair runs the
//! data plane's real start-up preparation (AF_XDP bound to the veth) and the media plane; a
//! native session's client in the peer namespace receives with the `strahl/1` reassembler.
//!
//! What it proves: a native session's destination from the SessionStart (no pings) is routed
//! through the kernel's tables like a GameStream one — the veth client gets AF_XDP from the
//! video port, verified on the first packets (no fallback) — and every checkable frame arrives,
//! opens and verifies. The client sends one datagram to the host first, as its QUIC handshake
//! would, so the host knows its neighbour. Needs root (namespaces); skipped loudly otherwise.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use strahl_config::TransportPref;
use strahl_dataplane::media::paths::{XdpPath, XdpState};
use strahl_dataplane::media::{Media, MediaHost, Transports};
use strahl_dataplane::transport;
use strahl_ipc::{Event, KeyMaterial, Protocol, Secret, StreamOptions, Transport};
use strahl_metrics::{Metric, Registry};
use strahl_net::testbed::{ADDR_A, ADDR_B, VethPair, in_netns, skip};
use strahl_packetize::native::{Anomaly, Reassembler, ReassemblerConfig, verify_checkable};
use strahl_seal::aead::Backend;
use strahl_seal::native::{Direction, RxOpener};

mod common;

/// The testbed's addresses: the host's side A, the client's side B.
const HOST: std::net::Ipv4Addr = ADDR_A;
const CLIENT: std::net::Ipv4Addr = ADDR_B;
const CLIENT_PORT: u16 = 45_000;
const SECRET: [u8; 32] = [0x3c; 32];
const STREAM: Duration = Duration::from_millis(2500);

/// The client: one datagram to the host (its handshake), then every datagram for `dur`, with
/// the source ports seen.
fn client(dur: Duration) -> (Vec<(Duration, Vec<u8>)>, Vec<u16>) {
    let s = UdpSocket::bind(SocketAddr::from((CLIENT, CLIENT_PORT))).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(2))).unwrap();
    let _ = strahl_net::sys::set_buffer(&s, false, 8 << 20);
    let _ = s.send_to(b"hello", SocketAddr::from((HOST, 47_900)));
    let (t0, end) = (Instant::now(), Instant::now() + dur);
    let mut got = Vec::new();
    let mut ports = Vec::new();
    let mut buf = vec![0u8; 2048];
    while Instant::now() < end {
        if let Ok((n, src)) = s.recv_from(&mut buf) {
            got.push((t0.elapsed(), buf[..n].to_vec()));
            if !ports.contains(&src.port()) {
                ports.push(src.port());
            }
        }
    }
    (got, ports)
}

#[test]
fn a_native_session_to_a_veth_client_leaves_through_af_xdp_and_every_frame_verifies() {
    let pair = match VethPair::create("ndx") {
        Ok(p) => p,
        Err(r) => return skip("a_native_session_to_a_veth_client", &r),
    };
    let reg: &'static Registry = Box::leak(Box::new(Registry::new()));
    let vport = 47_998u16;
    let ns_b = pair.ns_b.clone();
    let receiver = std::thread::spawn(move || {
        in_netns(&ns_b, || client(STREAM)).expect("enter the client namespace")
    });
    let if_a = pair.if_a.clone();
    let events = in_netns(&pair.ns_a, move || {
        let target = transport::Target {
            ifname: if_a.clone(),
            why: "test".into(),
        };
        let prepared = transport::prepare(TransportPref::Auto, &target, 1500, 4096, reg);
        let q = prepared
            .xdp
            .unwrap_or_else(|| panic!("AF_XDP on the veth: {}", prepared.summary));
        let xdp = XdpPath {
            q,
            ifindex: strahl_net::netlink::ifindex(&if_a).unwrap(),
            ifname: if_a.clone(),
            mode: prepared.xdp_detail.clone(),
            state: XdpState::Unverified,
            held: 0,
        };
        let mut media = Media::new(
            common::settings(0.0, Duration::from_secs(5)),
            Transports {
                xdp: Some(xdp),
                kernel: prepared.kernel.expect("a kernel transport"),
                core: None,
                worker_cores: Vec::new(),
                link_rate_bps: transport::link_rate_bps(&if_a).unwrap_or(10_000_000_000),
            },
            reg,
        )
        .expect("media plane");
        // The client's handshake datagram has taught the kernel its neighbour by now.
        std::thread::sleep(Duration::from_millis(200));
        let client = SocketAddr::from((CLIENT, CLIENT_PORT));
        let mut s = common::session(7, client, None, (vport, 0));
        s.protocol = Protocol::Native;
        s.keys = KeyMaterial::Native {
            secret: Secret(SECRET),
        };
        s.video.bitrate_kbps = 100_000;
        s.video.packet_size = 1408;
        s.ports.video_dst = CLIENT_PORT;
        s.stream = StreamOptions {
            ping_payload: None,
            flags: StreamOptions::CHECKABLE,
            min_fec_packets: 0,
        };
        media.start(&s).unwrap();
        std::thread::sleep(STREAM - Duration::from_millis(500));
        let events = media.poll_events();
        assert!(media.poll_failures().is_empty());
        media.stop(7);
        events
    })
    .expect("enter the host namespace");
    let (got, ports) = receiver.join().unwrap();

    let chosen = events
        .iter()
        .rev()
        .find_map(|e| match e {
            Event::TransportChosen {
                id: 7,
                transport,
                detail,
            } => Some((*transport, detail.clone())),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no TransportChosen: {events:?}"));
    assert_eq!(chosen.0, Transport::AfXdp, "{}", chosen.1);
    assert_eq!(ports, [vport], "strahl/1 leaves from the video port");
    assert_eq!(
        reg.get_at(Metric::MediaTransportFallbacks, 0),
        0,
        "AF_XDP passed its verification"
    );

    let mut rx = Reassembler::new(
        ReassemblerConfig::default(),
        RxOpener::new(&SECRET, Direction::HostToClient, Backend::DEFAULT),
    )
    .unwrap();
    let mut frames = 0u64;
    for (at, d) in &got {
        let mut d = d.clone();
        match rx.push(&mut d, *at) {
            Ok(_) | Err(Anomaly::Late) => {}
            Err(e) => panic!("datagram at {at:?}: {e:?}"),
        }
        while let Some(f) = rx.poll(*at) {
            assert_eq!(f.id - (1 << 32), frames, "every frame, in order");
            assert_eq!(verify_checkable(f.data), Ok(frames));
            frames += 1;
        }
    }
    assert!(frames >= 80, "{frames} frames over AF_XDP");
    assert_eq!(rx.stats().frames_skipped, 0);
    eprintln!(
        "native over AF_XDP: {frames} frames verified, {} datagrams ({})",
        got.len(),
        chosen.1
    );
}
