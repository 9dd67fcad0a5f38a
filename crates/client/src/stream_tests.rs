//! Unit tests of [`super`] (the stream command's pieces that need no host).

use super::*;

#[test]
fn options_parse_and_refuse_nonsense() {
    let mut o = StreamOptions::new("h".into());
    assert_eq!(o.set("--seconds", "2.5"), Ok(true));
    assert_eq!(o.seconds, 2.5);
    assert_eq!(o.set("--mode", "1920x1080@120"), Ok(true));
    assert_eq!(
        o.mode,
        Mode {
            width: 1920,
            height: 1080,
            fps: 120
        }
    );
    assert_eq!(o.set("--codec", "passthrough"), Ok(true));
    assert_eq!(o.codecs, codec::PASSTHROUGH);
    assert_eq!(o.set("--bitrate", "1000000"), Ok(true));
    assert_eq!(o.set("--name", "x"), Ok(false));
    assert_eq!(o.realtime, 0, "normal priority unless asked");
    assert_eq!(o.set("--realtime", "10"), Ok(true));
    assert_eq!(o.realtime, 10);
    assert_eq!(o.set("--reconfigure", "1.5,,35"), Ok(true));
    assert_eq!(
        o.reconfigure,
        Some((
            Duration::from_millis(1500),
            Reconfigure {
                bitrate_kbps: None,
                fec_percent: Some(35),
                mode: None
            }
        ))
    );
    assert_eq!(o.set("--reconfigure", "2,,,640x360@30"), Ok(true));
    assert_eq!(
        o.reconfigure.as_ref().and_then(|r| r.1.mode),
        Some(Mode {
            width: 640,
            height: 360,
            fps: 30
        })
    );
    for (k, v) in [
        ("--seconds", "0"),
        ("--seconds", "nan"),
        ("--mode", "1920x1080"),
        ("--mode", "0x1@1"),
        ("--codec", "vp9"),
        ("--bitrate", "0"),
        ("--mtu", "100"),
        ("--media-port", "70000"),
        ("--frame-timeout", "0"),
        ("--reconfigure", "2"),
        ("--reconfigure", "2,,"),
        ("--reconfigure", "2,,,"),
        ("--reconfigure", "2,,,640x360"),
        ("--reconfigure", "2,1,2,640x360@30,x"),
        ("--reconfigure", "x,1,2"),
        ("--reconfigure", "1,,101"),
        ("--realtime", "100"),
        ("--realtime", "-1"),
    ] {
        assert!(o.set(k, v).is_err(), "{k} {v}");
    }
}

#[test]
fn both_receive_paths_deliver_every_datagram() {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let to = sock.local_addr().unwrap();
    let mut rx = MmsgRx::new(sock, MMSG_BATCH, 1 << 20).unwrap();
    let _ = rx.enable_gro();
    let path = RxPath::Mmsg(Box::new(rx), RxBatch::new(MMSG_BATCH, SLOT));
    let plain = path.plain().expect("the plain path over the same socket");
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    for mut p in [path, plain] {
        for i in 0..3u8 {
            tx.send_to(&[i; 100], to).unwrap();
        }
        let mut seen = Vec::new();
        let t = Instant::now();
        while seen.len() < 3 && t.elapsed() < Duration::from_secs(5) {
            p.recv(Duration::from_millis(50), |d| seen.push((d[0], d.len())))
                .unwrap();
        }
        assert_eq!(seen, vec![(0, 100), (1, 100), (2, 100)]);
    }
}
