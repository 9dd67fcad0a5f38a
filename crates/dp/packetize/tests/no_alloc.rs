//! Steady-state packet paths allocate nothing: a counting global allocator watches this thread
//! while the native packetizer + reassembler (with FEC recovery), GameStream video (clear and
//! SS_ENC_VIDEO) and GameStream audio run after a warm-up that has seen every frame shape.

use std::time::Duration;

use strahl_packetize::gamestream::{
    FrameType, GsAudioConfig, GsAudioPacketizer, GsFrameMeta, GsVideoConfig, GsVideoPacketizer,
};
use strahl_packetize::native::{
    FrameMeta, NativeConfig, NativePacketizer, Reassembler, ReassemblerConfig,
};
use strahl_seal::aead::Backend;
use strahl_seal::gamestream::{AudioCipher, VideoCipher};
use strahl_seal::native::{Direction, RxOpener, TxSealer};

use strahl_testkit::{CountingAlloc, counted};

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

const SECRET: [u8; 32] = [3; 32];
const SIZES: [usize; 4] = [300_000, 60_000, 1_000, 120_000];

struct Native {
    tx: NativePacketizer,
    rx: Reassembler,
    bufs: Vec<Vec<u8>>,
    lens: Vec<usize>,
    au: Vec<u8>,
    /// Empty; its capacity is reused for the `parity_into` argument.
    refs: Vec<&'static mut [u8]>,
    now: Duration,
    delivered: usize,
}

impl Native {
    /// One frame: packetize into the preallocated buffers, lose data shard 0, reassemble by FEC.
    fn frame(&mut self, len: usize) {
        self.lens.clear();
        let meta = FrameMeta {
            pts_us: self.now.as_micros() as u64,
            keyframe: false,
        };
        let mut f = self.tx.frame(&self.au[..len], meta).unwrap();
        let (k, m) = (f.shape().data_shards, f.shape().parity_shards);
        // Odd frames: one buffer at a time; even frames: parity straight into the caller's
        // buffers (`parity_into`), the slice-of-buffers vector reusing its allocation.
        let batch = self.delivered.is_multiple_of(2);
        let one_by_one = if batch { k } else { k + m };
        for buf in &mut self.bufs[..one_by_one] {
            let n = f.next_packet(buf).unwrap().expect("packets left");
            self.lens.push(n);
        }
        if batch {
            let mut refs: Vec<&mut [u8]> = std::mem::take(&mut self.refs)
                .into_iter()
                .map(|_| -> &mut [u8] { unreachable!() })
                .collect();
            refs.extend(self.bufs[k..k + m].iter_mut().map(|b| &mut b[..]));
            assert_eq!(f.parity_into(&mut refs).unwrap(), m);
            refs.clear();
            self.refs = refs
                .into_iter()
                .map(|_| -> &'static mut [u8] { unreachable!() })
                .collect();
            self.lens.extend(std::iter::repeat_n(1408 + 44, m));
        }
        assert_eq!(f.remaining(), 0);
        for (j, &n) in self.lens.iter().enumerate() {
            if j != 0 {
                self.rx.push(&mut self.bufs[j][..n], self.now).unwrap();
            }
        }
        let st = self.rx.stats().clone();
        let f = self
            .rx
            .poll(self.now)
            .unwrap_or_else(|| panic!("frame not delivered: {st:?}"));
        assert_eq!(f.data.len(), len);
        self.delivered += 1;
        self.now += Duration::from_millis(16);
    }
}

#[test]
fn steady_state_paths_do_not_allocate() {
    // The counter works: one allocation is seen.
    let (v, a) = counted(|| Vec::<u8>::with_capacity(10));
    assert_eq!((a, v.capacity()), (1, 10));
    // ---- native ----
    let cfg = NativeConfig::new(1408);
    let tx = NativePacketizer::new(
        cfg,
        TxSealer::new(&SECRET, Direction::HostToClient, Backend::DEFAULT),
    )
    .unwrap();
    let rx = Reassembler::new(
        ReassemblerConfig::default(),
        RxOpener::new(&SECRET, Direction::HostToClient, Backend::DEFAULT),
    )
    .unwrap();
    let max_packets = SIZES
        .iter()
        .map(|&s| tx.shape(s).unwrap().packets())
        .max()
        .unwrap();
    let mut n = Native {
        tx,
        rx,
        bufs: vec![vec![0u8; 1408 + 44]; max_packets],
        lens: Vec::with_capacity(max_packets),
        au: (0..SIZES[0]).map(|i| i as u8).collect(),
        refs: Vec::with_capacity(max_packets),
        now: Duration::ZERO,
        delivered: 0,
    };
    for &s in SIZES.iter().chain(SIZES.iter()) {
        n.frame(s);
    }
    let ((), allocs) = counted(|| {
        for _ in 0..5 {
            for &s in &SIZES {
                n.frame(s);
            }
        }
    });
    assert_eq!(n.delivered, 28);
    assert_eq!(n.rx.stats().frames_recovered, 28);
    assert_eq!(
        allocs, 0,
        "native packetize + seal + open + FEC decode allocated"
    );

    // ---- GameStream video, clear and encrypted ----
    for cipher in [None, Some(VideoCipher::new(&[9; 16]))] {
        let enc = cipher.is_some();
        let mut p =
            GsVideoPacketizer::new(GsVideoConfig::new(if enc { 1360 } else { 1392 }), cipher)
                .unwrap();
        let mut buf = vec![0u8; p.packet_len()];
        let au: Vec<u8> = (0..1_300_000).map(|i| (i * 7) as u8).collect();
        let mut run = |p: &mut GsVideoPacketizer| {
            // 1.3 MB needs the lowering path at 20 %: exercised too.
            for &s in SIZES.iter().chain([1_300_000].iter()) {
                let meta = GsFrameMeta {
                    frame_type: FrameType::P,
                    capture_time: Duration::ZERO,
                    host_latency_tenth_ms: 0,
                };
                let mut f = p.frame(&au[..s], meta).unwrap();
                while f.next_packet(&mut buf).unwrap().is_some() {}
            }
        };
        run(&mut p);
        let ((), allocs) = counted(|| run(&mut p));
        assert_eq!(allocs, 0, "GameStream video (encrypted: {enc}) allocated");
        assert!(p.stats().parity_lowered >= 2);
    }

    // ---- GameStream audio ----
    let mut a = GsAudioPacketizer::new(
        GsAudioConfig::default(),
        Some(AudioCipher::new(&[5; 16], 7)),
    )
    .unwrap();
    let mut buf = vec![0u8; GsAudioPacketizer::MAX_PACKET_LEN];
    let opus = [0x55u8; 120];
    let mut run = |a: &mut GsAudioPacketizer| {
        for _ in 0..16 {
            let r = a.push(&opus, &mut buf).unwrap();
            if r.fec_ready {
                while a.next_fec(&mut buf).unwrap().is_some() {}
            }
        }
    };
    run(&mut a);
    let ((), allocs) = counted(|| run(&mut a));
    assert_eq!(allocs, 0, "GameStream audio allocated");
    assert_eq!(a.stats().fec_packets, 16);
}
