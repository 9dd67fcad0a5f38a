//! `strahl/1` over real QUIC on loopback: the host shell with the sans-IO cores behind it and the
//! client's calls, as `strahl-control` and `strahl-client` use them.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use strahl_native::host::{EpochChange, HostPolicy};
use strahl_native::msg::{
    ALPN, Hello, LossReport, Message, Mode, Reason, Reconfigure, Stop, StopReason, VERSION_MAJOR,
    VERSION_MINOR, codec,
};
use strahl_native::pairing::{ClientPairError, fingerprint, hex};
use strahl_native::quic::client::{ClientError, Control, open_session, pair};
use strahl_native::quic::server::{
    FirstFrame, HostShared, NativeSession, SessionSink, lock, serve,
};
use strahl_native::quic::tls::server_config;
use strahl_native::store::{ClientIdentity, PairedStore};

#[derive(Default)]
struct Recorder {
    started: Mutex<Vec<NativeSession>>,
    events: Mutex<Vec<String>>,
    unanswered: Mutex<Vec<tokio::sync::oneshot::Sender<u64>>>,
}

impl SessionSink for Recorder {
    fn start(&self, s: &NativeSession) -> Result<(), Reason> {
        self.started.lock().unwrap().push(s.clone());
        Ok(())
    }
    fn loss(&self, id: u64, r: &LossReport) {
        self.events
            .lock()
            .unwrap()
            .push(format!("loss {id} {}", r.frames_lost));
    }
    fn keyframe(&self, id: u64) {
        self.events.lock().unwrap().push(format!("keyframe {id}"));
    }
    fn reconfigure(&self, e: &EpochChange) -> Result<FirstFrame, Reason> {
        self.events
            .lock()
            .unwrap()
            .push(format!("epoch {} fec {}", e.epoch, e.fec_percent));
        // Epoch 2 is never answered: a data plane that does not report its first frame.
        let (tx, rx) = tokio::sync::oneshot::channel();
        if e.epoch == 2 {
            self.unanswered.lock().unwrap().push(tx);
        } else {
            let _ = tx.send(1000);
        }
        Ok(rx)
    }
    fn stop(&self, id: u64, why: StopReason) {
        self.events
            .lock()
            .unwrap()
            .push(format!("stop {id} {}", why.code()));
    }
}

struct Host {
    addr: SocketAddr,
    shared: Arc<HostShared>,
    sink: Arc<Recorder>,
    fp: [u8; 32],
    _dir: tempfile::TempDir,
    endpoint: quinn::Endpoint,
}

impl Drop for Host {
    fn drop(&mut self) {
        self.endpoint.close(0u32.into(), b"");
    }
}

fn host() -> Host {
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
    let sink = Arc::new(Recorder::default());
    tokio::spawn(serve(endpoint.clone(), shared.clone(), sink.clone()));
    Host {
        addr: endpoint.local_addr().unwrap(),
        shared,
        sink,
        fp: fingerprint(&id.cert_der),
        _dir: dir,
        endpoint,
    }
}

impl Host {
    fn arm(&self, pin: &str, window: Duration) {
        lock(&self.shared.arm).arm(pin.into(), Instant::now(), window);
    }
}

fn hello() -> Hello {
    Hello {
        version_major: VERSION_MAJOR,
        version_minor: VERSION_MINOR,
        mode: Mode {
            width: 1280,
            height: 720,
            fps: 120,
        },
        codecs: codec::PASSTHROUGH,
        bitrate_kbps: 1_000_000,
        max_shard_payload: 8908,
        media_port: 45_000,
        capabilities: 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn right_pin_pairs_then_a_pinned_session_runs_with_matching_media_keys() {
    let h = host();
    let me = ClientIdentity::generate("deck").unwrap();
    h.arm("2468", Duration::from_secs(60));
    let host_fp = pair(h.addr, "2468", "deck", &me).await.unwrap();
    assert_eq!(
        host_fp, h.fp,
        "the ceremony bound the host's real certificate"
    );
    assert!(lock(&h.shared.store).contains(&me.fingerprint()));

    let mut s = open_session(h.addr, &me, host_fp, &hello()).await.unwrap();
    assert_eq!(s.welcome.codec, codec::PASSTHROUGH);
    assert_eq!((s.welcome.shard_len, s.welcome.fec_percent), (1408, 20));
    // The host's session (after start) carries the same exporter secrets the client derived.
    let started = {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(x) = h.sink.started.lock().unwrap().first().cloned() {
                break x;
            }
            assert!(Instant::now() < deadline, "session never started");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    assert_eq!((started.h2c, started.c2h), (s.h2c, s.c2h));
    assert_ne!(s.h2c, s.c2h, "one secret per direction");
    assert_eq!(started.client.port(), 45_000);
    assert_eq!(started.plan.welcome.session_id, s.welcome.session_id);

    s.control
        .send(&Message::Reconfigure(Reconfigure {
            bitrate_kbps: None,
            fec_percent: Some(35),
            mode: None,
        }))
        .await
        .unwrap();
    let Message::Reconfigured(r) = s.control.next().await.unwrap() else {
        panic!("no reconfigured")
    };
    assert_eq!((r.epoch, r.first_frame, r.fec_percent), (1, 1000, 35));
    s.control
        .send(&Message::Stop(Stop {
            reason: StopReason::ClientQuit,
        }))
        .await
        .unwrap();
    s.control.close().await;
    let id = s.welcome.session_id;
    let want = format!("stop {id} 1");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !h.sink.events.lock().unwrap().contains(&want) {
        assert!(
            Instant::now() < deadline,
            "{:?}",
            h.sink.events.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        h.sink
            .events
            .lock()
            .unwrap()
            .contains(&"epoch 1 fec 35".to_string())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_pin_fails_and_a_second_guess_on_the_same_arm_fails_too() {
    let h = host();
    let me = ClientIdentity::generate("deck").unwrap();
    h.arm("1357", Duration::from_secs(60));
    let e = pair(h.addr, "1358", "deck", &me).await.unwrap_err();
    assert!(
        matches!(e, ClientError::Pairing(ClientPairError::WrongPinOrMitm)),
        "{e}"
    );
    let e = pair(h.addr, "1357", "deck", &me).await.unwrap_err();
    assert_eq!(e.reason(), Some(Reason::NotArmed), "{e}");
    assert!(!lock(&h.shared.store).contains(&me.fingerprint()));
    // And not paired means no session.
    let e = open_session(h.addr, &me, h.fp, &hello())
        .await
        .err()
        .unwrap();
    assert_eq!(e.reason(), Some(Reason::NotPaired), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_window_and_unarmed_host_are_refused_with_their_reasons() {
    let h = host();
    let me = ClientIdentity::generate("deck").unwrap();
    let e = pair(h.addr, "0000", "deck", &me).await.unwrap_err();
    assert_eq!(e.reason(), Some(Reason::NotArmed), "{e}");
    h.arm("0000", Duration::from_millis(1));
    tokio::time::sleep(Duration::from_millis(20)).await;
    let e = pair(h.addr, "0000", "deck", &me).await.unwrap_err();
    assert_eq!(e.reason(), Some(Reason::WindowExpired), "{e}");
    assert!(e.to_string().contains("expired"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unpaired_fingerprint_changed_host_and_other_version_are_refused() {
    let h = host();
    let me = ClientIdentity::generate("deck").unwrap();
    h.arm("1111", Duration::from_secs(60));
    pair(h.addr, "1111", "deck", &me).await.unwrap();
    // Another certificate, never paired.
    let stranger = ClientIdentity::generate("stranger").unwrap();
    let e = open_session(h.addr, &stranger, h.fp, &hello())
        .await
        .err()
        .unwrap();
    assert_eq!(e.reason(), Some(Reason::NotPaired), "{e}");
    // The paired client expecting another host certificate.
    let e = open_session(h.addr, &me, [0xaa; 32], &hello())
        .await
        .err()
        .unwrap();
    assert!(matches!(e, ClientError::HostChanged), "{e}");
    // A client of another major version: refused in the TLS handshake (ALPN).
    let e = Control::connect(h.addr, &me, Some(h.fp), b"strahl/2")
        .await
        .err()
        .unwrap();
    assert!(matches!(e, ClientError::VersionMismatch(_)), "{e}");
    // The same client speaking version 2 inside ALPN strahl/1: refused by the hello.
    let mut hv = hello();
    hv.version_major = 2;
    let e = open_session(h.addr, &me, h.fp, &hv).await.err().unwrap();
    assert_eq!(e.reason(), Some(Reason::VersionMismatch), "{e}");
    let _ = ALPN;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_listening_is_unreachable() {
    // A bound but silent UDP socket: the handshake gets no answer.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let me = ClientIdentity::generate("deck").unwrap();
    let t = Instant::now();
    let e = pair(silent.local_addr().unwrap(), "0000", "deck", &me)
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::Unreachable(_)), "{e}");
    assert!(t.elapsed() < Duration::from_secs(10));
}

/// A client whose process stops sending (its runtime gone, no close frame) is noticed by QUIC's
/// idle timeout and its session stopped by the host within 10 s.
#[test]
fn a_client_that_vanishes_mid_session_is_stopped_within_ten_seconds() {
    let host_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let h = host_rt.block_on(async { host() });
    let client_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let me = ClientIdentity::generate("deck").unwrap();
    h.arm("8642", Duration::from_secs(60));
    // The client's runtime runs only inside block_on: stay in it until the host has started
    // the session (the start message must have left).
    let s = client_rt.block_on(async {
        let fp = pair(h.addr, "8642", "deck", &me).await.unwrap();
        let s = open_session(h.addr, &me, fp, &hello()).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while h.sink.started.lock().unwrap().is_empty() {
            assert!(Instant::now() < deadline, "session never started");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        s
    });
    let id = s.welcome.session_id;
    // The client vanishes: its runtime (and with it quinn's driver) stops without a close frame.
    let vanished = Instant::now();
    client_rt.shutdown_background();
    std::mem::forget(s);
    let want = format!("stop {id} {}", StopReason::Timeout.code());
    while !h.sink.events.lock().unwrap().contains(&want) {
        assert!(
            vanished.elapsed() < Duration::from_secs(10),
            "not cleaned up: {:?}",
            h.sink.events.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!(
        "cleaned up {:?} after the client vanished",
        vanished.elapsed()
    );
    drop(h);
    host_rt.shutdown_background();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unpair_ends_a_running_session_and_locks_the_client_out() {
    let h = host();
    let me = ClientIdentity::generate("deck").unwrap();
    h.arm("9753", Duration::from_secs(60));
    let fp = pair(h.addr, "9753", "deck", &me).await.unwrap();
    let mut s = open_session(h.addr, &me, fp, &hello()).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while h.sink.started.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "session never started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let gone = h.shared.unpair(&hex(&me.fingerprint())).unwrap().unwrap();
    assert_eq!(gone.name, "deck");
    let m = s.control.next().await.unwrap();
    assert_eq!(
        m,
        Message::Stop(Stop {
            reason: StopReason::Unpaired
        })
    );
    let want = format!(
        "stop {} {}",
        s.welcome.session_id,
        StopReason::Unpaired.code()
    );
    assert!(
        h.sink.events.lock().unwrap().contains(&want),
        "{:?}",
        h.sink.events.lock().unwrap()
    );
    s.control.close().await;
    let e = open_session(h.addr, &me, fp, &hello()).await.err().unwrap();
    assert_eq!(e.reason(), Some(Reason::NotPaired), "{e}");
    assert!(h.shared.unpair(&hex(&me.fingerprint())).unwrap().is_none());
}

/// The data plane ended a session's media (refused at start, failed): the client is told
/// `stop error` instead of waiting for media, the sink hears the stop, and the client stays
/// paired (its next session starts).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_whose_media_ended_is_stopped_with_an_error() {
    let h = host();
    let me = ClientIdentity::generate("deck").unwrap();
    h.arm("2468", Duration::from_secs(60));
    let fp = pair(h.addr, "2468", "deck", &me).await.unwrap();
    let mut s = open_session(h.addr, &me, fp, &hello()).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while h.sink.started.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "session never started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Another id first: nobody's session, nothing happens to this one.
    h.shared.end_session(s.welcome.session_id ^ 1);
    h.shared.end_session(s.welcome.session_id);
    let m = s.control.next().await.unwrap();
    assert_eq!(
        m,
        Message::Stop(Stop {
            reason: StopReason::Error
        })
    );
    let want = format!("stop {} {}", s.welcome.session_id, StopReason::Error.code());
    assert!(
        h.sink.events.lock().unwrap().contains(&want),
        "{:?}",
        h.sink.events.lock().unwrap()
    );
    s.control.close().await;
    let again = open_session(h.addr, &me, fp, &hello()).await.unwrap();
    assert_ne!(again.welcome.session_id, s.welcome.session_id);
    again.control.close().await;
}

/// A reconfigure is answered with the data plane's first frame (epoch 1: 1000); one the data
/// plane never answers (epoch 2) ends the session with `stop error` after
/// `RECONFIGURE_TIMEOUT` — stopped in the data plane too — instead of a made-up boundary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_reconfigure_ends_the_session_with_an_error() {
    let h = host();
    let me = ClientIdentity::generate("deck").unwrap();
    h.arm("2468", Duration::from_secs(60));
    let fp = pair(h.addr, "2468", "deck", &me).await.unwrap();
    let mut s = open_session(h.addr, &me, fp, &hello()).await.unwrap();
    let ask = Message::Reconfigure(Reconfigure {
        bitrate_kbps: None,
        fec_percent: None,
        mode: Some(Mode {
            width: 640,
            height: 360,
            fps: 30,
        }),
    });
    s.control.send(&ask).await.unwrap();
    let Message::Reconfigured(r) = s.control.next().await.unwrap() else {
        panic!("no reconfigured")
    };
    assert_eq!((r.epoch, r.first_frame, r.mode.fps), (1, 1000, 30));
    let asked = Instant::now();
    s.control.send(&ask).await.unwrap();
    let m = s.control.next().await.unwrap();
    let waited = asked.elapsed();
    assert_eq!(
        m,
        Message::Stop(Stop {
            reason: StopReason::Error
        })
    );
    assert!(
        waited >= strahl_native::quic::server::RECONFIGURE_TIMEOUT
            && waited < strahl_native::quic::server::RECONFIGURE_TIMEOUT * 2,
        "{waited:?}"
    );
    let want = format!("stop {} {}", s.welcome.session_id, StopReason::Error.code());
    assert!(
        h.sink.events.lock().unwrap().contains(&want),
        "{:?}",
        h.sink.events.lock().unwrap()
    );
    s.control.close().await;
}
