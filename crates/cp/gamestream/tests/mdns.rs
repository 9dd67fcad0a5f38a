//! The mDNS responder on loopback (a free port instead of 5353, IPv4 loopback only, so nothing
//! leaves the machine): it sends nothing in its first seconds — a listener joined to the group
//! hears no response and its counters stay at zero — and a query gets the right answer, unicast
//! for a legacy query and multicast to the group for an mDNS one. Replies are decoded by
//! python-zeroconf (an independent implementation, shipped with the moonlight-python test venv).
//!
//! Interpreter: `$STRAHL_MOONLIGHT_PYTHON`, else `<repo>/.venv/bin/python`, else
//! `/tmp/mlvenv/bin/python`.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use socket2::{Domain, Protocol, Socket, Type};
use strahl_gamestream::mdns::core::GROUP_V4;
use strahl_gamestream::mdns::{MdnsConfig, MdnsResponder, Scope};

/// How long the responder is watched for unsolicited traffic.
const QUIET_WINDOW: Duration = Duration::from_secs(3);
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);
const HOST: &str = "Test Host";
const SERVICE_PORT: u16 = 47989;

fn python() -> PathBuf {
    // moonlight-python's zeroconf is the mDNS peer.
    strahl_testkit::python::python_with("zeroconf").unwrap_or_else(|e| panic!("{e}"))
}

/// Decodes DNS messages with python-zeroconf.
fn decode(messages: &[Vec<u8>]) -> Vec<Value> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mdns_decode.py");
    let mut child = Command::new(python())
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the decoder");
    {
        let mut stdin = child.stdin.take().unwrap();
        for m in messages {
            let hex: String = m.iter().map(|b| format!("{b:02x}")).collect();
            writeln!(stdin, "{hex}").unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "decoder failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A free UDP port (the responder and the listener share it through SO_REUSEPORT).
fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A socket on `port` (shared), joined to the group on loopback, sending to it over loopback.
fn group_socket(port: u16) -> UdpSocket {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
    s.set_reuse_address(true).unwrap();
    s.set_reuse_port(true).unwrap();
    s.bind(&SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port)).into())
        .unwrap();
    s.join_multicast_v4(&GROUP_V4, &Ipv4Addr::LOCALHOST)
        .unwrap();
    s.set_multicast_if_v4(&Ipv4Addr::LOCALHOST).unwrap();
    s.set_multicast_loop_v4(true).unwrap();
    s.into()
}

/// A PTR query for the service type; `id`.
fn ptr_query(id: u16) -> Vec<u8> {
    let mut p = id.to_be_bytes().to_vec();
    p.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in ["_nvstream", "_tcp", "local"] {
        p.push(label.len() as u8);
        p.extend_from_slice(label.as_bytes());
    }
    p.extend_from_slice(&[0, 0, 12, 0, 1]);
    p
}

/// After the first response, how much longer duplicates are waited for.
const SETTLE: Duration = Duration::from_millis(300);

/// Datagrams that arrive on `s` within `window` whose QR bit is set (responses); once one has
/// arrived, only [`SETTLE`] more.
fn responses_within(s: &UdpSocket, window: Duration) -> Vec<(Vec<u8>, SocketAddr)> {
    let mut deadline = Instant::now() + window;
    let mut got = Vec::new();
    let mut buf = [0u8; 9000];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return got;
        }
        s.set_read_timeout(Some(left)).unwrap();
        match s.recv_from(&mut buf) {
            Ok((n, from)) if n > 2 && buf[2] & 0x80 != 0 => {
                if got.is_empty() {
                    deadline = deadline.min(Instant::now() + SETTLE);
                }
                got.push((buf[..n].to_vec(), from));
            }
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("{e}"),
        }
    }
}

fn records_of(m: &Value, rtype: u64) -> Vec<&Value> {
    m["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["type"] == rtype)
        .collect()
}

/// The answer to a PTR query names our instance, its SRV port and host, and the loopback
/// address.
fn assert_our_answer(m: &Value) {
    assert_eq!(m["valid"], true, "{m}");
    assert_eq!(m["is_response"], true, "{m}");
    assert_eq!(m["answers"], 1, "{m}");
    let ptr = records_of(m, 12);
    assert_eq!(ptr.len(), 1, "{m}");
    assert_eq!(ptr[0]["name"], "_nvstream._tcp.local.");
    assert_eq!(ptr[0]["alias"], format!("{HOST}._nvstream._tcp.local."));
    let srv = records_of(m, 33);
    assert_eq!(srv.len(), 1, "{m}");
    assert_eq!(srv[0]["port"], SERVICE_PORT);
    assert_eq!(srv[0]["server"], "Test-Host.local.");
    assert_eq!(records_of(m, 16).len(), 1, "TXT: {m}");
    let a = records_of(m, 1);
    assert_eq!(a.len(), 1, "{m}");
    assert_eq!(a[0]["address"], "127.0.0.1");
    assert_eq!(a[0]["name"], "Test-Host.local.");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_until_asked_then_answers_unicast_and_multicast() {
    let port = free_port();
    let listener = group_socket(port);
    let responder = MdnsResponder::start(MdnsConfig {
        instance: HOST.into(),
        service_port: SERVICE_PORT,
        mdns_port: port,
        scope: Scope::Loopback,
    })
    .await
    .expect("responder starts");
    assert_eq!(
        responder.fullname(),
        format!("{HOST}._nvstream._tcp.local.")
    );

    // 1. Nothing sent without a query: no response reaches the group, nothing counted.
    let quiet = tokio::task::block_in_place(|| responses_within(&listener, QUIET_WINDOW));
    assert!(quiet.is_empty(), "unsolicited: {quiet:?}");
    let st = responder.counters();
    let c = st.core;
    assert_eq!((c.received, c.answered, st.sent), (0, 0, 0), "{st:?}");

    // 2. A legacy query (from an ephemeral port) to the group: a unicast reply to the asker,
    // echoing its id and question.
    let asker = UdpSocket::bind("127.0.0.1:0").unwrap();
    let s2 = Socket::from(asker.try_clone().unwrap());
    s2.set_multicast_if_v4(&Ipv4Addr::LOCALHOST).unwrap();
    asker.send_to(&ptr_query(0x5EED), (GROUP_V4, port)).unwrap();
    let replies = tokio::task::block_in_place(|| responses_within(&asker, REPLY_TIMEOUT));
    assert_eq!(replies.len(), 1, "{replies:?}");
    let legacy = &decode(&[replies[0].0.clone()])[0];
    assert_eq!(legacy["id"], 0x5EED, "{legacy}");
    assert_eq!(legacy["questions"][0]["name"], "_nvstream._tcp.local.");
    assert_our_answer(legacy);
    for r in legacy["records"].as_array().unwrap() {
        assert!(r["ttl"].as_u64().unwrap() <= 10, "legacy TTL: {r}");
    }
    assert_eq!(
        replies[0].1.port(),
        port,
        "the reply comes from the mDNS port"
    );

    // 3. An mDNS query (from the mDNS port): the answer goes to the group, where the listener
    // hears it (id 0, no question, cache-flush on the unique records).
    let mdns_asker = group_socket(port);
    mdns_asker
        .send_to(&ptr_query(0x1234), (GROUP_V4, port))
        .unwrap();
    let heard = tokio::task::block_in_place(|| responses_within(&listener, REPLY_TIMEOUT));
    assert_eq!(heard.len(), 1, "one multicast answer: {heard:?}");
    let multicast = &decode(&[heard[0].0.clone()])[0];
    assert_eq!(multicast["id"], 0);
    assert!(multicast["questions"].as_array().unwrap().is_empty());
    assert_our_answer(multicast);
    assert_eq!(records_of(multicast, 33)[0]["unique"], true);
    assert_eq!(records_of(multicast, 12)[0]["unique"], false);

    // 4. Queries for other names are ignored; the counters add up.
    let mut other = ptr_query(1);
    other[13..22].copy_from_slice(b"_airplay_");
    mdns_asker.send_to(&other, (GROUP_V4, port)).unwrap();
    let none = tokio::task::block_in_place(|| responses_within(&listener, Duration::from_secs(1)));
    assert!(none.is_empty(), "{none:?}");
    let st = responder.counters();
    let c = st.core;
    assert_eq!((c.answered, c.ignored, st.sent), (2, 1, 2), "{st:?}");
    // Its own multicast answer came back to it as a response and was not answered.
    assert!(c.responses >= 1, "{c:?}");
    responder.stop().await;
}
