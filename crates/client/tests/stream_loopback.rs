//! `strahl-client pair` then `stream` as the binary runs them (`strahl_client::run`), against
//! the real `strahl/1` host shell on loopback whose session sink stands in for the data plane:
//! it packetizes checkable frames with the session's exporter secret and sends them over UDP,
//! losing, replaying and corrupting some on purpose. Also the exit codes of the failures a
//! person meets: not paired, unreachable, a session that brings no media.

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use strahl_client::{Args, Command, StreamOptions};
use strahl_native::host::{EpochChange, HostPolicy};
use strahl_native::msg::{LossReport, Reason, Reconfigure, StopReason, codec};
use strahl_native::pairing::fingerprint;
use strahl_native::quic::quinn;
use strahl_native::quic::server::{
    FirstFrame, HostShared, NativeSession, SessionSink, first_frame_known, lock, serve,
};
use strahl_native::quic::tls::server_config;
use strahl_native::store::{ClientIdentity, PairedStore};
use strahl_packetize::native::{FrameMeta, NativeConfig, NativePacketizer, fill_checkable};
use strahl_seal::aead::Backend;
use strahl_seal::native::{Direction, TxSealer};

/// Frames the sender loses past their parity (the client must report them).
const LOST_FRAME: u64 = 50;

/// The data plane's stand-in: one sending thread per started session.
#[derive(Default)]
struct PatternSink {
    /// Send nothing (a host whose data plane is away).
    silent: bool,
    stop: Arc<AtomicBool>,
    keyframe: Arc<AtomicBool>,
    events: Mutex<Vec<String>>,
}

impl SessionSink for PatternSink {
    fn start(&self, s: &NativeSession) -> Result<(), Reason> {
        if !self.silent {
            let (s, stop, kf) = (s.clone(), self.stop.clone(), self.keyframe.clone());
            std::thread::spawn(move || send_pattern(&s, &stop, &kf));
        }
        Ok(())
    }
    fn loss(&self, _: u64, r: &LossReport) {
        self.events.lock().unwrap().push(format!(
            "loss lost={} ppm={}",
            r.frames_lost, r.shard_loss_ppm
        ));
    }
    fn keyframe(&self, _: u64) {
        self.keyframe.store(true, Ordering::Relaxed);
        self.events.lock().unwrap().push("keyframe".into());
    }
    fn reconfigure(&self, e: &EpochChange) -> Result<FirstFrame, Reason> {
        self.events
            .lock()
            .unwrap()
            .push(format!("epoch {} fec {}", e.epoch, e.fec_percent));
        // This fake's sender keeps one configuration: any frame may be the boundary.
        Ok(first_frame_known(0))
    }
    fn stop(&self, _: u64, why: StopReason) {
        self.stop.store(true, Ordering::Relaxed);
        self.events
            .lock()
            .unwrap()
            .push(format!("stop {}", why.code()));
    }
}

/// 200 frames a second of 30 000 B checkable frames until stopped. Every 10th frame loses a
/// data shard (FEC rebuilds it), frame [`LOST_FRAME`] loses all but two shards; one datagram
/// is sent twice and one corrupted.
fn send_pattern(s: &NativeSession, stop: &AtomicBool, keyframe_asked: &AtomicBool) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut cfg = NativeConfig::new(s.plan.welcome.shard_len as usize);
    cfg.fec_percent = u32::from(s.plan.welcome.fec_percent);
    let mut p = NativePacketizer::new(
        cfg,
        TxSealer::new(&s.h2c, Direction::HostToClient, Backend::DEFAULT),
    )
    .unwrap();
    let mut au = vec![0u8; 30_000];
    let mut buf = vec![0u8; 65_536];
    let t0 = Instant::now();
    for seq in 0u64.. {
        if stop.load(Ordering::Relaxed) || t0.elapsed() > Duration::from_secs(30) {
            return;
        }
        fill_checkable(seq, &mut au).unwrap();
        let keyframe = seq == 0 || keyframe_asked.swap(false, Ordering::Relaxed);
        let meta = FrameMeta {
            pts_us: seq * 5000,
            keyframe,
        };
        let mut f = p.frame(&au, meta).unwrap();
        let mut i = 0;
        while let Some(n) = f.next_packet(&mut buf).unwrap() {
            let lose = (seq % 10 == 3 && i == 1) || (seq == LOST_FRAME && i >= 2);
            if !lose {
                if seq == 7 && i == 0 {
                    sock.send_to(&buf[..n], s.client).unwrap(); // a replay
                }
                if seq == 8 && i == 0 {
                    let mut bad = buf[..n].to_vec();
                    bad[n / 2] ^= 0x40;
                    sock.send_to(&bad, s.client).unwrap(); // a forgery
                }
                sock.send_to(&buf[..n], s.client).unwrap();
            }
            i += 1;
        }
        // Paced by the clock, not by the sleep: a late wake-up catches up.
        let next = t0 + Duration::from_millis(5 * (seq + 1));
        if let Some(d) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
    }
}

struct Host {
    addr: SocketAddr,
    shared: Arc<HostShared>,
    sink: Arc<PatternSink>,
    _dir: tempfile::TempDir,
    endpoint: quinn::Endpoint,
}

impl Drop for Host {
    fn drop(&mut self) {
        self.endpoint.close(0u32.into(), b"");
    }
}

fn host(silent: bool) -> Host {
    let dir = tempfile::tempdir().unwrap();
    let id = ClientIdentity::generate("test host").unwrap();
    let cfg = server_config(&id.cert_der, &id.key_der).unwrap();
    let endpoint = quinn::Endpoint::server(cfg, "127.0.0.1:0".parse().unwrap()).unwrap();
    let shared = Arc::new(HostShared::new(
        PairedStore::load(dir.path()).unwrap(),
        HostPolicy {
            codecs: codec::H264 | codec::PASSTHROUGH,
            max_bitrate_kbps: 3_000_000,
            max_shard_len: 1408,
            fec_percent: 20,
            fec_range: (5, 50),
        },
        fingerprint(&id.cert_der),
    ));
    let sink = Arc::new(PatternSink {
        silent,
        ..PatternSink::default()
    });
    tokio::spawn(serve(endpoint.clone(), shared.clone(), sink.clone()));
    Host {
        addr: endpoint.local_addr().unwrap(),
        shared,
        sink,
        _dir: dir,
        endpoint,
    }
}

async fn cli(dir: &Path, command: Command) -> Result<String, strahl_client::Exit> {
    strahl_client::run(Args {
        state_dir: Some(dir.to_path_buf()),
        command,
    })
    .await
}

/// Pairs the CLI's state in `dir` with `h` (the real ceremony).
async fn paired(h: &Host, dir: &Path) -> String {
    let host = h.addr.to_string();
    lock(&h.shared.arm).arm("4321".into(), Instant::now(), Duration::from_secs(60));
    cli(
        dir,
        Command::Pair {
            host: host.clone(),
            pin: "4321".into(),
            name: "loopback".into(),
        },
    )
    .await
    .unwrap_or_else(|e| panic!("pair: {}", e.message));
    host
}

fn stream(host: &str, seconds: f64, json: &Path) -> Command {
    let mut o = StreamOptions::new(host.into());
    o.seconds = seconds;
    o.codecs = codec::PASSTHROUGH;
    o.json = Some(json.to_path_buf());
    Command::Stream(o)
}

fn summary(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paired_client_streams_verified_frames_recovers_and_reports_a_loss() {
    let h = host(false);
    let dir = tempfile::tempdir().unwrap();
    let host = paired(&h, dir.path()).await;
    let json = dir.path().join("summary.json");
    let mut command = stream(&host, 2.0, &json);
    if let Command::Stream(o) = &mut command {
        o.reconfigure = Some((
            Duration::from_secs(1),
            Reconfigure {
                bitrate_kbps: None,
                fec_percent: Some(35),
                mode: None,
            },
        ));
    }
    let out = cli(dir.path(), command)
        .await
        .unwrap_or_else(|e| panic!("stream: {}", e.message));
    assert_eq!(out, "", "the summary went to the file");
    let s = summary(&json);
    eprintln!("summary: {s:#}");
    let n = |k: &str| s[k].as_u64().unwrap_or_else(|| panic!("{k} in {s}"));
    // 2 s at 200 fps; the machine may be slow, but not that slow.
    assert!(n("frames") >= 150, "{s}");
    assert_eq!(n("bytes"), n("frames") * 30_000, "{s}");
    assert_eq!(n("verify_failures"), 0, "{s}");
    assert_eq!(n("seq_out_of_order"), 0, "{s}");
    assert_eq!(n("lost"), 1, "frame {LOST_FRAME} only: {s}");
    assert!(n("recovered") >= 15, "every 10th frame needed FEC: {s}");
    assert_eq!((n("replayed"), n("bad_tag")), (1, 1), "{s}");
    assert!(n("keyframe_requests") >= 1, "{s}");
    assert!(n("loss_reports") >= 4, "{s}");
    assert_eq!(s["codec"], "passthrough");
    assert!(s["goodput_mbps"].as_f64().unwrap() > 10.0, "{s}");
    assert!(s["latency"]["p50_us"].as_u64().is_some(), "{s}");
    assert_eq!(s["reconfigured"][0]["epoch"], 1, "{s}");
    assert_eq!(s["reconfigured"][0]["fec_percent"], 35, "{s}");
    // The host heard the keyframe request, the loss in a report, and the client's stop.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let ev = h.sink.events.lock().unwrap().clone();
        let heard = ev.contains(&"keyframe".to_string())
            && ev.iter().any(|e| e.starts_with("loss lost=1"))
            && ev.contains(&"epoch 1 fec 35".to_string())
            && ev.contains(&format!("stop {}", StopReason::ClientQuit.code()));
        if heard {
            break;
        }
        assert!(Instant::now() < deadline, "{ev:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_have_their_exit_codes() {
    // A session that brings no media: the summary is still written, exit 6.
    let h = host(true);
    let dir = tempfile::tempdir().unwrap();
    let host = paired(&h, dir.path()).await;
    let json = dir.path().join("summary.json");
    let e = cli(dir.path(), stream(&host, 0.5, &json))
        .await
        .unwrap_err();
    assert_eq!(e.code, strahl_client::stream::EXIT_MEDIA, "{}", e.message);
    assert!(e.message.contains("no frame arrived"), "{}", e.message);
    assert_eq!(summary(&json)["frames"], 0);

    // The host forgot this client: refused, exit 1, with the reason.
    h.shared.unpair(&hex_fp(dir.path())).unwrap().unwrap();
    let e = cli(dir.path(), stream(&host, 0.5, &json))
        .await
        .unwrap_err();
    assert_eq!(e.code, 1, "{}", e.message);
    assert!(e.message.contains("not paired"), "{}", e.message);

    // Never paired with that name: exit 1 before any packet.
    let e = cli(dir.path(), stream("127.0.0.1:1", 0.5, &json))
        .await
        .unwrap_err();
    assert_eq!(e.code, 1, "{}", e.message);

    // Paired, but nothing answers there any more: unreachable, exit 3.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let gone = silent.local_addr().unwrap().to_string();
    let mut known = strahl_native::store::KnownHosts::load(dir.path()).unwrap();
    known.insert(&gone, &[1; 32]).unwrap();
    let e = cli(dir.path(), stream(&gone, 0.5, &json))
        .await
        .unwrap_err();
    assert_eq!(e.code, 3, "{}", e.message);
}

/// The client certificate's fingerprint (hex), as the host's store names it.
fn hex_fp(dir: &Path) -> String {
    let id = ClientIdentity::load_or_create(dir).unwrap();
    strahl_native::pairing::hex(&id.fingerprint())
}
