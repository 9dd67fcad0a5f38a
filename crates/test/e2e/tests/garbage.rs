//! Hostile input against a running host (issue 4, part 5): strahl started as the README starts
//! it (harness: `scripts/run.sh --config …`, loopback), a real Moonlight client paired through
//! `strahl-control pin`, then garbage at every GameStream port of the instance — HTTP, HTTPS,
//! RTSP and the status server (TCP); ENet control, video, audio and the native port (UDP):
//!
//! - random bytes on fresh connections (seeded; the seed is printed, `STRAHL_GARBAGE_SEED`
//!   replays it) and random datagrams of every size up to the UDP maximum;
//! - truncated frames (an HTTP request cut mid-header, a TLS record that promises 16 KiB and
//!   stops, an `rtspenc` frame cut after its header, a short ENet header) and oversized ones
//!   (a 1 MiB request line, a 64 KiB TLS record, a 1 GB `Content-Length`, 65 507-byte
//!   datagrams);
//! - half-open connections (connected, silent) and a slowloris (a few connections per TCP port
//!   that trickle one byte of a never-ending header every [`SLOWLORIS_PERIOD`]), both held open
//!   while the paired client is served.
//!
//! Then, with the half-open and slowloris connections still open, and again after they close:
//! `/serverinfo` answers over HTTP, the paired client's `/applist` over HTTPS (real Moonlight
//! core, its own certificate) lists Desktop, both processes are alive with the pids they
//! started with (run.sh did not restart anyone), and no log line says a thread panicked.
//!
//! Bounded: every socket has read/write timeouts, every loop a fixed count, the slowloris a
//! fixed number of rounds, the driver its own timeout.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use strahl_e2e::{Driver, DriverOutput, Options, Strahl};

/// Random-byte connections per TCP port.
const RANDOM_CONNECTIONS: usize = 24;
/// Largest random payload on one connection.
const MAX_RANDOM_BYTES: usize = 8192;
/// Random datagrams per UDP port (sizes 0 ..= 1500, plus the oversized ones below).
const RANDOM_DATAGRAMS: usize = 400;
/// Datagrams of the largest UDP payload per UDP port.
const MAX_SIZE_DATAGRAMS: usize = 8;
/// Largest UDP payload over IPv4 (65535 − 20 − 8).
const MAX_UDP_PAYLOAD: usize = 65_507;
/// Silent connections held open per TCP port during the checks.
const HALF_OPEN: usize = 4;
/// Slowloris connections per TCP port.
const SLOWLORIS: usize = 3;
/// One byte per slowloris connection this often (slower than any sane client, faster than
/// a 10 s header timeout would need to fire on).
const SLOWLORIS_PERIOD: Duration = Duration::from_millis(250);
/// Upper bound of slowloris rounds (the loop also stops when the checks are done).
const SLOWLORIS_MAX_ROUNDS: usize = 600;
/// Oversized request line / header.
const OVERSIZE_BYTES: usize = 1 << 20;
/// Connect, read and write bound of every garbage socket.
const IO_TIMEOUT: Duration = Duration::from_secs(3);
/// Most bytes read back from one garbage connection (the host's error reply, if any).
const MAX_DRAIN: usize = 64 * 1024;
/// Bound of the `/serverinfo` probe (a healthy host answers in milliseconds).
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound of one applist client (Python start-up, TLS with the client certificate).
const QUICK_CLIENT_TIMEOUT: Duration = Duration::from_secs(60);
/// Log text of a Rust panic in either process.
const PANIC_MARKERS: [&str; 2] = ["panicked at", "panicked:"];

/// xorshift64*: deterministic, seedable, good enough to shape garbage.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn seed() -> u64 {
    std::env::var("STRAHL_GARBAGE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
                | 1
        })
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn connect(port: u16) -> std::io::Result<TcpStream> {
    let s = TcpStream::connect_timeout(&addr(port), IO_TIMEOUT)?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    Ok(s)
}

/// One garbage connection: write `data` (stopping at the first error: the host may close or
/// stop reading), half-close, read whatever comes back (bounded). Returns whether the host
/// accepted the connection; what happens after that is the host's business.
fn send_tcp(port: u16, data: &[u8]) -> bool {
    let Ok(mut s) = connect(port) else {
        return false;
    };
    let _ = s.write_all(data);
    let _ = s.shutdown(Shutdown::Write);
    let mut buf = [0u8; 4096];
    let mut got = 0;
    while got < MAX_DRAIN {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    true
}

/// What each TCP port gets beyond random bytes: truncated and oversized frames of the
/// protocol spoken there.
fn shaped_tcp(kind: &str) -> Vec<Vec<u8>> {
    let mut big_line = b"GET /".to_vec();
    big_line.resize(OVERSIZE_BYTES, b'A');
    let huge_body =
        b"POST /pair HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\nabc".to_vec();
    let mut huge_header = b"GET /serverinfo HTTP/1.1\r\nX-Junk: ".to_vec();
    huge_header.resize(OVERSIZE_BYTES, b'b');
    match kind {
        "https" => {
            let mut big_record = vec![0x16, 0x03, 0x03, 0xff, 0xff];
            big_record.resize(5 + 0xffff, 0x41);
            vec![
                // A handshake record that promises 16 KiB and stops after 10 bytes.
                vec![0x16, 0x03, 0x01, 0x40, 0x00, 0x01, 0x00, 0x3f, 0xfc, 0x03],
                // Plain HTTP on the TLS port.
                b"GET /applist?uniqueid=0123456789ABCDEF HTTP/1.1\r\n\r\n".to_vec(),
                // A record over the 16 KiB + 2 KiB TLS limit.
                big_record,
                // An alert record of length 0, then a record header cut short.
                vec![0x15, 0x03, 0x03, 0x00, 0x00, 0x16, 0x03],
            ]
        }
        "rtsp" => {
            let mut big_frame = vec![0x80, 0x10, 0x00, 0x00, 0, 0, 0, 1];
            big_frame.resize(big_frame.len() + 16 + 4096, 0x5a);
            vec![
                b"OPTIONS rtsp://127.0.0.1:48010 RTSP/1.0\r\nCSeq: 1\r\n".to_vec(),
                b"ANNOUNCE streamid=control/13/0 RTSP/1.0\r\nCSeq: 5\r\nContent-length: 999999999\r\n\r\nv=0\r\n".to_vec(),
                // rtspenc frame: a header claiming 1 MiB of ciphertext, then 4 KiB.
                big_frame,
                // rtspenc header cut after 6 bytes; a frame with length 0.
                vec![0x80, 0x00, 0x01, 0x00, 0x00, 0x00],
                [vec![0x80, 0, 0, 0, 0, 0, 0, 1], vec![0u8; 16]].concat(),
                big_line,
            ]
        }
        // HTTP (nvhttp) and the status server (axum).
        _ => vec![
            b"GET /serverinfo?uniqueid=0123456789ABCDEF HTTP/1.1\r\nHost: 127.0.0.1\r\n".to_vec(),
            b"GET /pair?uniqueid=abc&devicename=x&updateState=1&phrase=getservercert&salt=zz&clientcert=%%%"
                .to_vec(),
            b"GET /serverinfo?&&&&=&=%ff%fe%00 HTTP/1.1\r\n\r\n".to_vec(),
            b"POST /api/v1/pin HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n12".to_vec(),
            huge_body,
            huge_header,
            big_line,
        ],
    }
}

/// Random and shaped garbage at one TCP port; returns how many connections it refused.
fn garbage_tcp(rng: &mut Rng, port: u16, kind: &str) -> usize {
    let mut refused = 0;
    for _ in 0..RANDOM_CONNECTIONS {
        let n = 1 + rng.below(MAX_RANDOM_BYTES);
        if !send_tcp(port, &rng.bytes(n)) {
            refused += 1;
        }
    }
    for data in shaped_tcp(kind) {
        if !send_tcp(port, &data) {
            refused += 1;
        }
    }
    refused
}

/// Random, truncated and oversized datagrams at one UDP port (the kernel may drop some on
/// loopback; what arrives must not hurt the host).
fn garbage_udp(rng: &mut Rng, sock: &UdpSocket, port: u16) -> usize {
    let to = addr(port);
    let mut sent = 0;
    let mut send = |d: &[u8]| {
        if sock.send_to(d, to).is_ok() {
            sent += 1;
        }
    };
    for i in 0..RANDOM_DATAGRAMS {
        let n = rng.below(1501);
        let mut d = rng.bytes(n);
        if i % 4 == 0 && d.len() >= 4 {
            // ENet-shaped: a plausible peer id / header flags, garbage after.
            d[0] = 0x80 | (d[0] & 0x0f);
        }
        send(&d);
        if i % 50 == 49 {
            // Let the receiver drain: garbage that the kernel drops tests nothing.
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    for _ in 0..MAX_SIZE_DATAGRAMS {
        let d = rng.bytes(MAX_UDP_PAYLOAD);
        send(&d);
    }
    // Truncated ENet protocol header, an encrypted control-V2 header claiming more than sent,
    // and empty datagrams.
    send(&[0xff]);
    send(&[0x00, 0x00, 0x12]);
    send(&[0x01, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0x00]);
    send(&[]);
    sent
}

/// `/serverinfo` over plain HTTP from this process: (status line, body).
fn serverinfo(port: u16) -> Result<(String, String), String> {
    let mut s = connect(port).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(PROBE_TIMEOUT))
        .map_err(|e| e.to_string())?;
    s.write_all(
        b"GET /serverinfo?uniqueid=0123456789ABCDEF&uuid=garbage HTTP/1.1\r\n\
          Host: 127.0.0.1\r\nConnection: close\r\n\r\n",
    )
    .map_err(|e| format!("write: {e}"))?;
    let t0 = Instant::now();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while t0.elapsed() < PROBE_TIMEOUT && out.len() < MAX_DRAIN {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => return Err(format!("read after {} bytes: {e}", out.len())),
        }
        if out.windows(7).any(|w| w == b"</root>") {
            break;
        }
    }
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or(format!("no header end: {text:?}"))?;
    Ok((
        head.lines().next().unwrap_or("").to_string(),
        body.to_string(),
    ))
}

fn applist(s: &Strahl, client_dir: &std::path::Path) -> DriverOutput {
    let mut args: Vec<String> = vec!["applist".into()];
    args.extend(s.client_args());
    args.extend(["--config".into(), client_dir.display().to_string()]);
    Driver::spawn(&args)
        .and_then(|d| d.finish(QUICK_CLIENT_TIMEOUT))
        .unwrap_or_else(|e| panic!("{e}\n--- strahl log ---\n{}", s.log()))
}

fn alive(pid: u32) -> bool {
    Strahl::signal(pid, "0")
}

/// The paired client is served, both processes still run with their first pids, and nothing
/// panicked.
fn assert_serving(s: &Strahl, client_dir: &std::path::Path, pids: (u32, u32), when: &str) {
    let fail = |what: String| -> ! { panic!("{when}: {what}\n--- strahl log ---\n{}", s.log()) };
    match serverinfo(s.ports.http) {
        Ok((status, body)) => {
            if !status.contains(" 200") || !body.contains("<appversion>") {
                fail(format!("/serverinfo answered {status:?}: {body}"));
            }
        }
        Err(e) => fail(format!("/serverinfo over HTTP: {e}")),
    }
    let out = applist(s, client_dir);
    let ok = out.code == Some(0)
        && out.step("applist").is_some_and(|a| {
            a["ok"] == true
                && a["names"]
                    .as_array()
                    .is_some_and(|n| n.iter().any(|x| x == "Desktop"))
        });
    if !ok {
        fail(format!(
            "paired client's /applist over HTTPS failed:\n{out}"
        ));
    }
    if s.pids() != Some(pids) {
        fail(format!("pids changed: {:?} -> {:?}", pids, s.pids()));
    }
    if !alive(pids.0) || !alive(pids.1) {
        fail(format!("a process died: {pids:?}"));
    }
    let panics: Vec<String> = s
        .log_lines()
        .into_iter()
        .filter(|l| PANIC_MARKERS.iter().any(|m| l.contains(m)))
        .collect();
    if !panics.is_empty() {
        fail(format!("panics in the log: {panics:#?}"));
    }
}

/// Holds half-open and slowloris connections to `ports` until `stop` (or the round bound).
fn hold_connections(
    ports: Vec<(u16, &'static str)>,
    stop: Arc<AtomicBool>,
    rounds: Arc<AtomicUsize>,
) {
    let mut silent = Vec::new();
    let mut slow = Vec::new();
    for &(port, kind) in &ports {
        for _ in 0..HALF_OPEN {
            if let Ok(c) = connect(port) {
                silent.push(c);
            }
        }
        for _ in 0..SLOWLORIS {
            if let Ok(mut c) = connect(port) {
                let head: &[u8] = match kind {
                    // A TLS handshake record header promising 16 KiB, then a byte at a time.
                    "https" => &[0x16, 0x03, 0x01, 0x40, 0x00],
                    "rtsp" => b"OPTIONS rtsp://127.0.0.1 RTSP/1.0\r\nCSeq: 1\r\nX-Slow: ",
                    _ => b"GET /serverinfo HTTP/1.1\r\nHost: x\r\nX-Slow: ",
                };
                if c.write_all(head).is_ok() {
                    slow.push(c);
                }
            }
        }
    }
    for _ in 0..SLOWLORIS_MAX_ROUNDS {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        // A connection the host closed errors out; keep the rest trickling.
        slow.retain_mut(|c| c.write_all(b"a").is_ok());
        rounds.fetch_add(1, Ordering::Relaxed);
        std::thread::sleep(SLOWLORIS_PERIOD);
    }
    drop(silent);
    drop(slow);
}

#[test]
fn garbage_on_every_port_leaves_the_paired_client_served() {
    let seed = seed();
    eprintln!("garbage seed: {seed} (replay with STRAHL_GARBAGE_SEED={seed})");
    let mut rng = Rng(seed);
    let s = Strahl::start(Options::default()).unwrap_or_else(|e| panic!("{e}"));
    let client_dir = s.dir.join("client-paired");
    s.pair(&client_dir).unwrap_or_else(|e| panic!("{e}"));
    let pids = s.pids().expect("pids of both processes");
    assert_serving(&s, &client_dir, pids, "before the garbage");

    let p = s.ports;
    let tcp = [
        (p.http, "http"),
        (p.https, "https"),
        (p.rtsp, "rtsp"),
        (p.status, "status"),
    ];
    let udp = [p.control, p.video, p.audio, p.native];

    // Half-open and slowloris connections stay open through the garbage and the first check.
    let stop = Arc::new(AtomicBool::new(false));
    let rounds = Arc::new(AtomicUsize::new(0));
    let holder = {
        let (stop, rounds) = (stop.clone(), rounds.clone());
        std::thread::spawn(move || hold_connections(tcp.to_vec(), stop, rounds))
    };

    let t0 = Instant::now();
    for (port, kind) in tcp {
        let refused = garbage_tcp(&mut rng, port, kind);
        assert_eq!(
            refused,
            0,
            "{kind} port {port} refused {refused} garbage connections\n--- strahl log ---\n{}",
            s.log()
        );
    }
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut datagrams = 0;
    for port in udp {
        datagrams += garbage_udp(&mut rng, &sock, port);
    }
    eprintln!(
        "garbage: {} TCP connections, {datagrams} datagrams in {:?}",
        tcp.iter()
            .map(|(_, k)| RANDOM_CONNECTIONS + shaped_tcp(k).len())
            .sum::<usize>(),
        t0.elapsed()
    );

    assert_serving(
        &s,
        &client_dir,
        pids,
        "with half-open and slowloris connections held",
    );
    let held_rounds = rounds.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    holder.join().expect("connection holder");
    assert!(held_rounds > 0, "the slowloris never trickled");
    eprintln!("slowloris: {held_rounds} rounds of {SLOWLORIS_PERIOD:?} during the checks");

    assert_serving(&s, &client_dir, pids, "after the garbage");
}
