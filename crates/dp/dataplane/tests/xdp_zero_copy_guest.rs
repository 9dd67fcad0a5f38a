//! The guest half of the AF_XDP zero-copy proof (issue 11 item 8): run by
//! `strahl-vmlab`'s `tests/lab.rs` inside the VM lab's 7.x guest, whose virtio-net NIC has
//! `iommu_platform=on,disable-legacy=on` (what virtio-net's zero-copy needs); ignored on the
//! host, where no driver offers zero-copy (veth refuses it with EOPNOTSUPP).
//!
//! What it does, with the data plane's own code: the start-up preparation with `transport =
//! "af_xdp"` on the guest's NIC, then the media plane (one tx tile) streaming one GameStream
//! session — synthetic video through openh264, the test tone — to a receiver on the host side of
//! the guest's tap, whose pings route it. Checked here: start-up bound AF_XDP and says
//! "zero-copy" (else the test fails with the start-up line, which names why zero-copy was
//! refused: the product never falls back silently); the kernel's `XDP_OPTIONS` of the bound
//! socket carries `XDP_OPTIONS_ZEROCOPY`; the session went out through AF_XDP, its first packets
//! were verified against the NIC's TX counter (no fallback), and the tile did not fail.
//! The receiver (host side) checks what arrived. Findings are printed as `key=value` lines for
//! the host side; `ss`'s view of the socket (its umem's `zc` flag) and `ip -d link` too. The
//! receiver also sends one datagram from each of many source ports to [`FLOW_PORT`]: how many
//! arrive (`flows_received`) shows whether the queue the zero-copy socket owns still delivers to
//! the stack (the tap spreads flows over the queues by hash).
//!
//! Environment: `STRAHL_ZC_IF` (default `eth0`), `STRAHL_ZC_PEER` (the receiver's IPv4,
//! default 10.201.0.1), `STRAHL_ZC_STREAM_MS` (how long to stream once the receiver's pings
//! routed the session, default 4000).

use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;
use std::time::{Duration, Instant};

use strahl_config::TransportPref;
use strahl_dataplane::media::paths::{XdpPath, XdpState};
use strahl_dataplane::media::{Media, MediaHost, Transports};
use strahl_dataplane::transport;
use strahl_ipc::{Event, Transport};
use strahl_metrics::{Metric, Registry};

mod common;

/// GameStream video and audio source ports (what the receiver pings).
const PORTS: (u16, u16) = (47998, 48000);
/// The receiver's ping payload (`ping_payload` of the session).
const PAYLOAD: [u8; 16] = *b"ZEROCOPYCLIENT01";
/// Where the receiver's many-flow datagrams go (a plain kernel socket).
const FLOW_PORT: u16 = 7002;
/// How long the receiver has to start pinging once the session is up (boot + Python under TCG).
const ROUTE_WAIT: Duration = Duration::from_secs(90);

fn env_or(k: &str, d: &str) -> String {
    std::env::var(k).unwrap_or_else(|_| d.to_owned())
}

/// A command's stdout and stderr, or why it did not run (for the report only).
fn shell(cmd: &str) -> String {
    match Command::new("/bin/sh").args(["-c", cmd]).output() {
        Ok(o) => format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => format!("{cmd}: {e}"),
    }
}

/// The kernel's view while the socket is bound: `ss` (the umem's `zc` flag, the socket's ring
/// statistics), the NIC's per-queue XDP statistics and counters, its interrupts per queue.
fn report_kernel_view() {
    println!("ss_begin\n{}ss_end", shell("ss -f xdp -a -e -m 2>&1"));
    println!(
        "ip_link_begin\n{}ip_link_end",
        shell("ip -d -s -s link show dev eth0 2>&1")
    );
    println!(
        "ethtool_begin\n{}ethtool_end",
        shell("ethtool -S eth0 2>&1; cat /proc/net/dev; grep virtio /proc/interrupts")
    );
}

#[test]
#[ignore = "runs inside the VM lab's 7.x guest: strahl-vmlab tests/lab.rs boots it"]
fn af_xdp_zero_copy_streams_a_session_to_the_host_side() {
    // The media plane's log lines (verification, fallbacks) on stderr.
    let _ = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .try_init();
    let ifname = env_or("STRAHL_ZC_IF", "eth0");
    let peer: Ipv4Addr = env_or("STRAHL_ZC_PEER", "10.201.0.1").parse().unwrap();
    let stream_for = Duration::from_millis(env_or("STRAHL_ZC_STREAM_MS", "4000").parse().unwrap());
    let reg: &'static Registry = Box::leak(Box::new(Registry::new()));
    let target = transport::Target {
        ifname: ifname.clone(),
        why: "configured".into(),
    };
    // What the data plane does at start with `transport = "af_xdp"` (main.rs): AF_XDP is
    // required, a kernel socket serves destinations off the interface.
    let prepared = transport::prepare(TransportPref::AfXdp, &target, 1500, 4096, reg);
    // On a line of its own (libtest has printed the test's name without a newline).
    println!("\nstartup={}", prepared.summary);
    let flows = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, FLOW_PORT)).unwrap();
    flows.set_nonblocking(true).unwrap();
    let q = prepared
        .xdp
        .unwrap_or_else(|| panic!("AF_XDP did not bind: {}", prepared.summary));
    assert_eq!(
        prepared.xdp_detail, "zero-copy, native XDP",
        "AF_XDP bound without zero-copy and native XDP: {}",
        prepared.summary
    );
    let kernel_zc = q.kernel_zero_copy().expect("getsockopt XDP_OPTIONS");
    if let Some(Err(e)) = q.native_xdp() {
        panic!("zero-copy without its native XDP program: {e}");
    }
    println!("xdp_options_zerocopy={kernel_zc}");
    assert!(kernel_zc, "the kernel reports copy mode (XDP_OPTIONS)");
    let xdp = XdpPath {
        q,
        ifindex: strahl_net::netlink::ifindex(&ifname).unwrap(),
        ifname: ifname.clone(),
        mode: prepared.xdp_detail.clone(),
        state: XdpState::Unverified,
        held: 0,
    };
    // Small frames: TCG encodes slowly.
    let mut s = common::session(1, SocketAddr::from((peer, 40000)), Some(PAYLOAD), PORTS);
    s.video.width = 320;
    s.video.height = 180;
    s.video.fps = 30;
    s.video.bitrate_kbps = 1_000;
    let mut media = Media::new(
        common::settings(0.0, Duration::from_secs(10)),
        Transports {
            xdp: Some(xdp),
            kernel: prepared.kernel.expect("a kernel-socket transport"),
            core: None,
            worker_cores: Vec::new(),
            link_rate_bps: transport::link_rate_bps(&ifname).unwrap_or(10_000_000_000),
        },
        reg,
    )
    .expect("media plane");
    media.start(&s).expect("session");
    // Bounded: the receiver's first ping routes the session (TransportChosen), then it streams.
    let t0 = Instant::now();
    let mut events = Vec::new();
    let last_choice = |events: &[Event]| {
        events.iter().rev().find_map(|e| match e {
            Event::TransportChosen {
                id: 1,
                transport,
                detail,
            } => Some((*transport, detail.clone())),
            _ => None,
        })
    };
    let chosen = loop {
        events.extend(media.poll_events());
        if let Some(c) = last_choice(&events) {
            break c;
        }
        if t0.elapsed() > ROUTE_WAIT {
            report_kernel_view();
            panic!("no ping from {peer} within {ROUTE_WAIT:?}: {events:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    println!("routed_after_ms={}", t0.elapsed().as_millis());
    println!("session_transport={} ({})", chosen.0.name(), chosen.1);
    let t1 = Instant::now();
    while t1.elapsed() < stream_for {
        events.extend(media.poll_events());
        std::thread::sleep(Duration::from_millis(50));
    }
    report_kernel_view();
    let mut got = std::collections::BTreeSet::new();
    let mut buf = [0u8; 64];
    while let Ok(n) = flows.recv(&mut buf) {
        got.insert(buf[..n].to_vec());
    }
    println!("flows_received={}", got.len());
    let failures = media.poll_failures();
    media.stop(1);
    events.extend(media.poll_events());
    // The last word on the session's transport (a failed verification would move it).
    let chosen = last_choice(&events).unwrap_or(chosen);
    println!("session_transport_end={} ({})", chosen.0.name(), chosen.1);
    let af_xdp_packets = reg.get_at(Metric::MediaPacketsByTransport, 0);
    let fallbacks = reg.get_at(Metric::MediaTransportFallbacks, 0);
    println!("af_xdp_packets={af_xdp_packets}");
    println!("af_xdp_fallbacks={fallbacks}");
    println!("frames_skipped={}", reg.get(Metric::VideoFramesSkipped));
    println!("tile_stalls={}", reg.get(Metric::TxTileStalls));
    assert!(failures.is_empty(), "the media plane failed: {failures:?}");
    assert_eq!(
        chosen.0,
        Transport::AfXdp,
        "the session went out through {:?}: {}",
        chosen.0,
        chosen.1
    );
    assert!(
        chosen.1.contains("zero-copy"),
        "the session's transport detail names the mode: {}",
        chosen.1
    );
    assert_eq!(
        fallbacks, 0,
        "AF_XDP's first packets were not seen on the NIC"
    );
    assert!(af_xdp_packets > 0, "nothing sent through AF_XDP");
}
