//! The media plane across network namespaces: the host side of a veth pair runs the data
//! plane's real start-up preparation (AF_XDP bound to the veth, a kernel-socket transport for
//! everything else) and the media plane; a client in the peer namespace pings and receives,
//! while a second client on the host namespace's loopback streams at the same time.
//!
//! What it proves: per-destination routing through the kernel's tables (the veth client gets
//! AF_XDP with the stream's source port, the loopback client the kernel socket), both through
//! the one tx tile; the client's pings reach the stream port's socket while the AF_XDP socket is
//! bound (they pass to the kernel); AF_XDP is verified on the session's first packets (no
//! fallback counted); each client receives every frame of its own session.
//! Needs root (namespaces); skipped loudly otherwise.

use std::collections::BTreeSet;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use strahl_config::TransportPref;
use strahl_dataplane::media::paths::{XdpPath, XdpState};
use strahl_dataplane::media::{Media, MediaHost, Transports};
use strahl_dataplane::transport;
use strahl_ipc::{Event, SessionStart, Transport};
use strahl_metrics::{Metric, Registry};
use strahl_net::testbed::{VethPair, in_netns, skip};

mod common;

const HOST: [u8; 4] = [10, 201, 0, 1];
const STREAM: Duration = Duration::from_millis(2500);

fn session(id: u64, peer: [u8; 4], payload: [u8; 16], vport: u16, aport: u16) -> SessionStart {
    common::session(
        id,
        SocketAddr::from((peer, 40000)),
        Some(payload),
        (vport, aport),
    )
}

/// What one client saw: video datagrams (with their source port), audio datagrams.
#[derive(Debug, Default)]
struct Seen {
    video: Vec<Vec<u8>>,
    video_src_ports: BTreeSet<u16>,
    audio: usize,
}

/// Ping `host` with `payload` every 100 ms and collect for `dur` (bounded loop).
fn client(
    bind: [u8; 4],
    host: [u8; 4],
    payload: [u8; 16],
    ports: (u16, u16),
    dur: Duration,
) -> Seen {
    let mk = || {
        let s = UdpSocket::bind(SocketAddr::from((bind, 0))).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(2))).unwrap();
        // A loaded 2-core machine may starve this thread for a moment: hold ~3 s of video.
        let _ = strahl_net::sys::set_buffer(&s, false, 4 << 20);
        s
    };
    let (v, a) = (mk(), mk());
    let mut seen = Seen::default();
    let mut buf = vec![0u8; 2048];
    let end = Instant::now() + dur;
    let mut last_ping: Option<Instant> = None;
    let mut counter = 0u32;
    while Instant::now() < end {
        if last_ping.is_none_or(|t| t.elapsed() >= Duration::from_millis(100)) {
            counter += 1;
            let mut p = payload.to_vec();
            p.extend_from_slice(&counter.to_be_bytes());
            let _ = v.send_to(&p, SocketAddr::from((host, ports.0)));
            let _ = a.send_to(&p, SocketAddr::from((host, ports.1)));
            last_ping = Some(Instant::now());
        }
        for _ in 0..1000 {
            match v.recv_from(&mut buf) {
                Ok((n, src)) => {
                    seen.video.push(buf[..n].to_vec());
                    seen.video_src_ports.insert(src.port());
                }
                Err(_) => break,
            }
        }
        while a.recv(&mut buf).is_ok() {
            seen.audio += 1;
        }
    }
    seen
}

fn frame_indices(pkts: &[Vec<u8>]) -> Vec<u32> {
    pkts.iter()
        .map(|p| u32::from_le_bytes(p[20..24].try_into().unwrap()))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

#[test]
fn veth_client_gets_af_xdp_and_loopback_client_a_kernel_socket_through_one_tile() {
    let pair = match VethPair::create("mdx") {
        Ok(p) => p,
        Err(r) => return skip("veth_client_gets_af_xdp_and_loopback_client", &r),
    };
    let reg: &'static Registry = Box::leak(Box::new(Registry::new()));
    let (vport, aport) = (47998u16, 48000u16);
    let (p_veth, p_lo) = (*b"VETHCLIENT000001", *b"LOOPCLIENT000002");
    // The veth client lives in the peer namespace, on its own thread.
    let ns_b = pair.ns_b.clone();
    let veth_client = std::thread::spawn(move || {
        in_netns(&ns_b, || {
            client([10, 201, 0, 2], HOST, p_veth, (vport, aport), STREAM)
        })
        .expect("enter the client namespace")
    });
    let if_a = pair.if_a.clone();
    let (events, lo_seen) = in_netns(&pair.ns_a, move || {
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
        let settings = common::settings(0.0, Duration::from_secs(5));
        let mut media = Media::new(
            settings,
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
        media
            .start(&session(1, [10, 201, 0, 2], p_veth, vport, aport))
            .unwrap();
        media
            .start(&session(2, [127, 0, 0, 1], p_lo, vport, aport))
            .unwrap();
        // The loopback client runs here, in the host namespace, while the veth client streams.
        let lo_seen = std::thread::scope(|s| {
            s.spawn(|| client([127, 0, 0, 1], [127, 0, 0, 1], p_lo, (vport, aport), STREAM))
                .join()
                .unwrap()
        });
        let mut events = Vec::new();
        events.extend(media.poll_events());
        assert!(media.poll_failures().is_empty());
        media.stop(1);
        media.stop(2);
        (events, lo_seen)
    })
    .expect("enter the host namespace");
    let veth_seen = veth_client.join().unwrap();

    let transport_of = |id: u64| {
        events
            .iter()
            .rev()
            .find_map(|e| match e {
                Event::TransportChosen {
                    id: i,
                    transport,
                    detail,
                } if *i == id => Some((*transport, detail.clone())),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no TransportChosen for session {id}: {events:?}"))
    };
    let (t1, d1) = transport_of(1);
    assert_eq!(t1, Transport::AfXdp, "veth client: {d1}");
    assert!(d1.contains("audio"), "both streams described: {d1}");
    let (t2, d2) = transport_of(2);
    assert!(
        matches!(t2, Transport::IoUring | Transport::Sendmmsg),
        "loopback client: {t2:?} {d2}"
    );
    assert!(d2.contains("local address"), "{d2}");

    for (name, seen) in [("veth", &veth_seen), ("loopback", &lo_seen)] {
        let idx = frame_indices(&seen.video);
        assert!(idx.len() >= 60, "{name}: {} frames", idx.len());
        assert_eq!(idx[0], 1, "{name}: its own frames from 1");
        let gaps: Vec<_> = idx.windows(2).filter(|w| w[1] != w[0] + 1).collect();
        assert!(
            gaps.is_empty(),
            "{name}: every frame; gaps {gaps:?} of {} (stalls {}, skipped {})",
            idx.len(),
            reg.get(Metric::TxTileStalls),
            reg.get(Metric::VideoFramesSkipped)
        );
        assert_eq!(
            seen.video_src_ports,
            BTreeSet::from([vport]),
            "{name}: video leaves from the stream port"
        );
        assert!(seen.audio >= 200, "{name}: {} audio packets", seen.audio);
    }
    let xdp_pkts = reg.get_at(Metric::MediaPacketsByTransport, 0);
    let veth_pkts = veth_seen.video.len() as u64 + veth_seen.audio as u64;
    assert!(
        xdp_pkts >= veth_pkts && veth_pkts * 100 >= xdp_pkts * 95,
        "af_xdp sent {xdp_pkts}, the veth client got {veth_pkts}"
    );
    let kernel_pkts = reg.get_at(Metric::MediaPacketsByTransport, 1)
        + reg.get_at(Metric::MediaPacketsByTransport, 2);
    assert!(kernel_pkts > 0, "loopback went through a kernel socket");
    assert_eq!(
        reg.get_at(Metric::MediaTransportFallbacks, 0),
        0,
        "AF_XDP passed its verification"
    );
}
