//! Shared helpers for the delivery tests: sequence-numbered payloads, a bounded sender loop and a
//! bounded receiver thread.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};
use strahl_net::{RxBatch, RxCounters, RxQueue, TxQueue};

/// Upper bound for a whole transfer (send + drain); tests fail rather than hang past it.
pub const TRANSFER_DEADLINE: Duration = Duration::from_secs(20);
/// Receiver gives up this long after the sender finished without new datagrams.
pub const RX_IDLE_AFTER_DONE: Duration = Duration::from_millis(1500);

/// Datagram length for sequence number `seq`: mostly 1200 B, every 37th 600 B (breaks GSO trains
/// mid-stream), every 101st 64 B.
pub fn len_for(seq: u32) -> usize {
    if seq % 101 == 100 {
        64
    } else if seq % 37 == 36 {
        600
    } else {
        1200
    }
}

fn byte_at(seq: u32, i: usize) -> u8 {
    (seq.wrapping_mul(31) as usize).wrapping_add(i * 7) as u8
}

/// Fill `buf[..len_for(seq)]`: seq (LE u32), length (LE u16), then a pattern derived from both.
pub fn fill(buf: &mut [u8], seq: u32) -> usize {
    let len = len_for(seq);
    buf[0..4].copy_from_slice(&seq.to_le_bytes());
    buf[4..6].copy_from_slice(&(len as u16).to_le_bytes());
    for (i, b) in buf[6..len].iter_mut().enumerate() {
        *b = byte_at(seq, i);
    }
    len
}

/// Check a received datagram; returns its sequence number if intact.
pub fn verify(d: &[u8]) -> Option<u32> {
    if d.len() < 6 {
        return None;
    }
    let seq = u32::from_le_bytes(d[0..4].try_into().ok()?);
    let len = u16::from_le_bytes(d[4..6].try_into().ok()?) as usize;
    if len != d.len() || len != len_for(seq) {
        return None;
    }
    d[6..]
        .iter()
        .enumerate()
        .all(|(i, &b)| b == byte_at(seq, i))
        .then_some(seq)
}

#[derive(Debug, Default)]
pub struct Outcome {
    pub sent: u32,
    pub intact: u32,
    pub duplicates: u32,
    pub corrupt: u32,
    pub out_of_range: u32,
    pub send_time: Duration,
    pub rx: RxCounters,
}

/// Receive until `n` intact datagrams arrived, or the deadline, or idle after the sender is done.
pub struct RxResult {
    pub seen: Vec<bool>,
    pub duplicates: u32,
    pub corrupt: u32,
    pub out_of_range: u32,
    pub counters: RxCounters,
}

/// `progress` is updated with the count of intact datagrams (for windowed senders).
pub fn spawn_receiver<R: RxQueue + Send + 'static>(
    mut rx: R,
    n: u32,
    done: Arc<AtomicBool>,
    progress: Arc<AtomicU32>,
) -> std::thread::JoinHandle<RxResult> {
    std::thread::spawn(move || {
        let mut seen = vec![false; n as usize];
        let (mut intact, mut dup, mut corrupt, mut oor) = (0u32, 0u32, 0u32, 0u32);
        let mut batch = RxBatch::new(64, 2048);
        let start = Instant::now();
        let mut last_rx = Instant::now();
        while intact < n && start.elapsed() < TRANSFER_DEADLINE {
            let got = rx
                .recv(&mut batch, Duration::from_millis(50))
                .expect("recv");
            if got > 0 {
                last_rx = Instant::now();
            } else if done.load(Ordering::Acquire) && last_rx.elapsed() > RX_IDLE_AFTER_DONE {
                break;
            }
            for (d, _src) in batch.iter() {
                match verify(d) {
                    Some(s) if (s as usize) < seen.len() => {
                        if std::mem::replace(&mut seen[s as usize], true) {
                            dup += 1;
                        } else {
                            intact += 1;
                            progress.store(intact, Ordering::Release);
                        }
                    }
                    Some(_) => oor += 1,
                    None => corrupt += 1,
                }
            }
        }
        RxResult {
            seen,
            duplicates: dup,
            corrupt,
            out_of_range: oor,
            counters: *rx.counters(),
        }
    })
}

/// Send `n` sequence-numbered datagrams through `tx` to `dest`, flushing every `flush_every`
/// submits, then drain. Panics if the sender cannot make progress within the deadline.
/// With `window`, at most `window` datagrams are in flight beyond what the receiver has counted
/// (`progress`): closed-loop flow control for receivers that drop on overflow (AF_XDP RX rings).
pub fn send_all(
    tx: &mut dyn TxQueue,
    dest: SocketAddr,
    n: u32,
    flush_every: usize,
    window: Option<(u32, &AtomicU32)>,
) -> Duration {
    let start = Instant::now();
    for seq in 0..n {
        if let Some((w, progress)) = window {
            while seq >= progress.load(Ordering::Acquire) + w {
                assert!(
                    start.elapsed() < TRANSFER_DEADLINE,
                    "receiver stopped making progress"
                );
                tx.flush().expect("flush");
                tx.reclaim().expect("reclaim");
                std::thread::sleep(Duration::from_micros(20));
            }
        }
        let frame = loop {
            if let Some(f) = tx.alloc() {
                break f;
            }
            tx.flush().expect("flush");
            tx.reclaim().expect("reclaim");
            if tx.free_frames() == 0 {
                assert!(
                    start.elapsed() < TRANSFER_DEADLINE,
                    "sender stuck without free frames"
                );
                std::thread::sleep(Duration::from_micros(50));
            }
        };
        let len = fill(tx.payload_mut(&frame), seq);
        tx.submit(frame, len, dest).expect("submit");
        if tx.pending() >= flush_every {
            tx.flush().expect("flush");
            tx.reclaim().expect("reclaim");
        }
    }
    while tx.pending() > 0 {
        assert!(
            start.elapsed() < TRANSFER_DEADLINE,
            "sender could not drain"
        );
        let r = tx.flush().expect("flush");
        tx.reclaim().expect("reclaim");
        if r.stalled {
            std::thread::sleep(Duration::from_micros(100));
        }
    }
    start.elapsed()
}

/// Run a full transfer and collect the outcome.
pub fn transfer<R: RxQueue + Send + 'static>(
    tx: &mut dyn TxQueue,
    rx: R,
    dest: SocketAddr,
    n: u32,
) -> Outcome {
    transfer_windowed(tx, rx, dest, n, None)
}

/// As [`transfer`], with the sender limited to `window` datagrams ahead of the receiver.
pub fn transfer_windowed<R: RxQueue + Send + 'static>(
    tx: &mut dyn TxQueue,
    rx: R,
    dest: SocketAddr,
    n: u32,
    window: Option<u32>,
) -> Outcome {
    let done = Arc::new(AtomicBool::new(false));
    let progress = Arc::new(AtomicU32::new(0));
    let handle = spawn_receiver(rx, n, done.clone(), progress.clone());
    let send_time = send_all(tx, dest, n, 64, window.map(|w| (w, &*progress)));
    done.store(true, Ordering::Release);
    let r = handle.join().expect("receiver thread");
    Outcome {
        sent: n,
        intact: r.seen.iter().filter(|&&s| s).count() as u32,
        duplicates: r.duplicates,
        corrupt: r.corrupt,
        out_of_range: r.out_of_range,
        send_time,
        rx: r.counters,
    }
}

/// Wait (bounded) until every frame of the queue is back in the free pool.
pub fn drain_completions(tx: &mut dyn TxQueue, frames: usize) {
    let start = Instant::now();
    while tx.free_frames() < frames {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "completions never arrived"
        );
        tx.reclaim().expect("reclaim");
        std::thread::sleep(Duration::from_micros(100));
    }
}

/// IPv6 ULA of side A / side B used by the IPv6 namespace tests (a /64 on the veth pair).
pub const A6: &str = "fd00:5a::1";
pub const B6: &str = "fd00:5a::2";

/// Give the test bed's veth ends [`A6`] and [`B6`] (no duplicate address detection, so they are
/// usable at once).
pub fn add_ipv6(pair: &strahl_net::testbed::VethPair) {
    for (ns, ifname, addr) in [(&pair.ns_a, &pair.if_a, A6), (&pair.ns_b, &pair.if_b, B6)] {
        ip(&[
            "-n",
            ns,
            "addr",
            "add",
            &format!("{addr}/64"),
            "dev",
            ifname,
            "nodad",
        ]);
    }
}

/// Run `ip` with `args`; the test fails if it does.
pub fn ip(args: &[&str]) {
    let st = std::process::Command::new("ip")
        .args(args)
        .status()
        .expect("run ip");
    assert!(st.success(), "ip {args:?}");
}
