//! The tile's scheduling in simulated time: `pick` and `send` driven with a made-up clock
//! over fake queues (a frame arena that records what was submitted, or refuses every frame).
use super::*;
use crate::media::ring::{UnitMeta, ring};
use std::sync::mpsc::channel;
use strahl_net::frame::FrameArena;
use strahl_net::{FlushReport, NetError, SubmitError, TxCounters, TxFrame, TxQueue};
use strahl_pacer::Mode;

/// Records every submitted datagram; `stalled` refuses every frame (a full socket).
struct FakeQueue {
    arena: FrameArena,
    stalled: bool,
    sent: Vec<usize>,
    counters: TxCounters,
}

impl TxQueue for FakeQueue {
    fn kind(&self) -> TransportKind {
        TransportKind::SendMmsg
    }
    fn payload_capacity(&self) -> usize {
        self.arena.payload_capacity()
    }
    fn free_frames(&self) -> usize {
        self.arena.free_count()
    }
    fn pending(&self) -> usize {
        0
    }
    fn alloc(&mut self) -> Option<TxFrame> {
        if self.stalled {
            None
        } else {
            self.arena.alloc()
        }
    }
    fn payload_mut(&mut self, f: &TxFrame) -> &mut [u8] {
        self.arena.payload_mut(f)
    }
    fn payloads_mut<'a>(&'a mut self, frames: &[TxFrame], out: &mut Vec<&'a mut [u8]>) {
        self.arena.payloads_mut(frames, out)
    }
    fn submit(&mut self, f: TxFrame, len: usize, _: SocketAddr) -> Result<(), SubmitError> {
        let slot = self
            .arena
            .redeem(f)
            .map_err(|_| SubmitError::ForeignFrame)?;
        self.arena.release(slot);
        self.sent.push(len);
        Ok(())
    }
    fn abandon(&mut self, f: TxFrame) {
        if let Ok(slot) = self.arena.redeem(f) {
            self.arena.release(slot);
        }
    }
    fn flush(&mut self) -> Result<FlushReport, NetError> {
        Ok(FlushReport::default())
    }
    fn reclaim(&mut self) -> Result<usize, NetError> {
        Ok(0)
    }
    fn counters(&self) -> &TxCounters {
        &self.counters
    }
}

/// One 1000-byte packet per started 1000 bytes of the unit.
struct Chunker {
    left: usize,
}

impl StreamPacketizer for Chunker {
    fn max_packet_len(&self) -> usize {
        1000
    }
    fn begin(&mut self, unit: &Slot) -> Result<UnitCost, strahl_packetize::PacketizeError> {
        let packets = unit.meta.len.div_ceil(1000) as u64;
        self.left = packets as usize;
        Ok(UnitCost {
            packets,
            wire_bytes: packets * (1000 + WIRE_OVERHEAD),
            parity_lowered: false,
        })
    }
    fn next_packet(
        &mut self,
        _: &Slot,
        buf: &mut [u8],
    ) -> Result<Option<usize>, strahl_packetize::PacketizeError> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        buf[..1000].fill(0xab);
        Ok(Some(1000))
    }
}

const INTERVAL_NS: u64 = 16_666_667;

/// A tile with one fake port per flow and one flow per port, each with one unit of
/// `packets` × 1000 bytes queued; returns the tile and the producers (kept alive).
fn tile(flows: &[(u16, u64, bool)], link_bps: u64) -> (TxTile, Vec<crate::media::ring::Producer>) {
    let (_cmd_tx, cmd_rx) = channel();
    let (ev_tx, _ev_rx) = channel();
    let reg: &'static Registry = Box::leak(Box::new(Registry::new()));
    let mut t = TxTile::new(
        Paths::new(None),
        link_bps,
        cmd_rx,
        ev_tx,
        reg,
        Arc::new(AtomicBool::new(false)),
    );
    let mut producers = Vec::new();
    for (i, &(port, packets, stalled)) in flows.iter().enumerate() {
        t.paths.ports.push(PortPath {
            port,
            sock: std::net::UdpSocket::bind("127.0.0.1:0").unwrap(),
            q: Box::new(FakeQueue {
                arena: FrameArena::new(256, 1024, 0),
                stalled,
                sent: Vec::new(),
                counters: TxCounters::default(),
            }),
            kind: TransportKind::SendMmsg,
            held: 0,
        });
        let (mut prod, cons) = ring(2, 0, None);
        let mut slot = prod.acquire().unwrap();
        slot.meta = UnitMeta {
            len: packets as usize * 1000,
            ..UnitMeta::default()
        };
        assert!(prod.publish(slot));
        producers.push(prod);
        let mut pacer = PacerConfig::new(4_000_000_000);
        pacer.mode = Mode::Spread { permille: 500 };
        t.add_session(
            SessionSetup {
                id: i as u64 + 1,
                shared: Arc::new(Shared::new(1000)),
                streams: vec![StreamSetup {
                    kind: StreamKind::Video,
                    port,
                    packetizer: Box::new(Chunker { left: 0 }),
                    units: cons,
                    pacer,
                    unit_interval_ns: INTERVAL_NS,
                    knob: DropKnob::new(0.0, 0),
                    matcher: PingMatcher::new(None, "127.0.0.1".parse().unwrap()),
                }],
                ping_timeout: Duration::from_secs(10),
            },
            0,
        );
        let f = t.flows.last_mut().unwrap();
        f.dest = Some(SocketAddr::from(([127, 0, 0, 1], 40_000 + i as u16)));
        f.path = Path::Kernel(port);
    }
    assert!(t.pull_units());
    t.schedule_begun(0);
    (t, producers)
}

/// Drive pick/send in simulated time; per flow: (packets sent, time of its last packet).
fn simulate(t: &mut TxTile) -> Vec<(u64, u64)> {
    let mut out = vec![(0u64, 0u64); t.flows.len()];
    let mut now = 0u64;
    for _ in 0..100_000 {
        let Some((i, at, n)) = t.pick(now) else {
            break;
        };
        now = now.max(at);
        let before = t.flows[i].left.packets;
        t.send(i, n, now);
        let sent = before - t.flows[i].left.packets;
        if sent > 0 {
            out[i].0 += sent;
            out[i].1 = now;
        }
    }
    out
}

#[test]
fn each_stream_is_spread_over_half_its_interval_at_its_own_rate() {
    let (mut t, _p) = tile(&[(1, 200, false), (2, 20, false)], 100_000_000_000);
    let r = simulate(&mut t);
    assert_eq!((r[0].0, r[1].0), (200, 20), "every packet of both units");
    // Both finish near the end of their spread window (half of 16.7 ms), the small one at
    // a tenth of the large one's rate — not as fast as it could.
    for (i, (_, last)) in r.iter().enumerate() {
        assert!(
            (7_000_000..=INTERVAL_NS / 2 + 200_000).contains(last),
            "flow {i}: last packet at {last} ns"
        );
    }
}

#[test]
fn the_link_cap_bounds_the_sum_of_the_streams() {
    // 220 packets of 1042 wire bytes = 1.83 Mbit; at a 100 Mbit/s link that takes 18.3 ms,
    // more than the 8.3 ms spread window.
    let (mut t, _p) = tile(&[(1, 200, false), (2, 20, false)], 100_000_000);
    let r = simulate(&mut t);
    assert_eq!((r[0].0, r[1].0), (200, 20));
    let end = r[0].1.max(r[1].1);
    let floor = 220 * 1042 * 8 * 1_000_000_000 / 100_000_000;
    // The link bucket starts with one burst of credit (100 µs at the link rate).
    assert!(
        end + 200_000 >= floor,
        "all sent by {end} ns, the link allows {floor}"
    );
}

#[test]
fn a_stalled_queue_does_not_hold_up_another_session() {
    let (mut t, _p) = tile(&[(1, 200, true), (2, 20, false)], 100_000_000_000);
    let r = simulate(&mut t);
    assert_eq!(r[0].0, 0, "the stalled session sent nothing");
    assert_eq!(r[1].0, 20, "the other session sent its whole unit");
    assert!(
        t.flows[0].blocked,
        "the stalled stream waits for housekeeping"
    );
    assert!(t.local.stalls >= 1);
}
