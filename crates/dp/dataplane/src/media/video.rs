//! The video worker of one GameStream session: frame clock → capture → encode (AU capped to the
//! FEC capacity) → GameStream packetizer (FEC, optional SS_ENC_VIDEO) → paced sendmmsg.
//!
//! - Frame clock: slot k is due at k · 10^9 / fps ns after the first ping (integer arithmetic, no
//!   drift). A late worker skips the missed slots (counted) instead of bursting them; frame
//!   numbers stay dense (the pixels and frameIndex count frames sent, not slots), the RTP
//!   timestamp is the slot's time.
//! - The first AU is an IDR (a fresh encoder), and so is the one after a keyframe request.
//! - The AU cap is `max_access_unit_bytes(packet_size)`: what 4 FEC blocks carry at the lowest
//!   parity percentage, so every frame goes out with ≥ 2 parity shards per block; the
//!   packetizer lowers the % for frames above the unlowered capacity (counted).
//! - Pacing: [`strahl_pacer`] in spread mode sends each frame over [`SPREAD_PERMILLE`] of the
//!   frame interval, capped at [`PACER_LINK_BPS`] (or 4 × the stream bitrate when larger).
//! - The `[testing]` drop knob discards packets after packetization (data and parity alike), so
//!   sequence numbers show the gap as real loss would.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use strahl_capture::synthetic::{SyntheticConfig, SyntheticSource};
use strahl_capture::{Frame, PixelFormat, VideoSource};
use strahl_encode::openh264_enc::{OpenH264Config, OpenH264Encoder};
use strahl_encode::passthrough::PassthroughEncoder;
use strahl_encode::{EncodeError, Encoder};
use strahl_ipc::{SessionStart, StopReason, StreamOptions};
use strahl_metrics::{Metric, Registry};
use strahl_net::TxQueue;
use strahl_net::mmsg::{MmsgConfig, MmsgTx};
use strahl_pacer::{Backlog, Mode, Pacer, PacerConfig};
use strahl_packetize::PacketizeError;
use strahl_packetize::gamestream::{
    FrameType, GsFrameMeta, GsVideoConfig, GsVideoPacketizer, max_access_unit_bytes,
};
use strahl_seal::gamestream::VideoCipher;

use super::knob::DropKnob;
use super::{MediaSettings, Shared, StreamSocket, VideoSourceKind, WORKER_TICK, check_session};

/// Part of the frame interval each frame is spread over. Half leaves room for encode jitter
/// on the shared 2-core machine while keeping the instantaneous rate at 2 × the stream rate
/// (Moonshine PR #192: ~100 µs gaps already removed the unpaced 1 % loss at 60 Mbit/s).
pub const SPREAD_PERMILLE: u32 = 500;
/// Pacing cap: 2 Gbit/s, above every GameStream rate (the 1 Gbit/s goal at 50 % spread needs
/// 2 Gbit/s); Sunshine's fixed 800 Mbit/s cap is the bottleneck this avoids (§A18).
pub const PACER_LINK_BPS: u64 = 2_000_000_000;
/// TX frame slots: more than one frame's 4 × 255 packets, so a frame never waits for slots.
const TX_FRAMES: u32 = 2048;
/// Send buffer: a few frames at 1 Gbit/s (Sunshine uses 1 MiB).
const SOCKET_BUFFER: usize = 4 << 20;
/// Waits shorter than this are spun (yielding) rather than slept: a sleep overshoots by
/// ~60–100 µs on this loaded VM, more than a pacing gap.
const SPIN_BELOW: Duration = Duration::from_micros(200);
/// Geometry of the dummy frame handed to the passthrough encoder (it ignores the pixels).
const PASSTHROUGH_FRAME: u32 = 16;

type Failure = (String, StopReason);

fn fatal(m: String) -> Failure {
    (m, StopReason::Error)
}

pub struct VideoWorker {
    s: SessionStart,
    settings: MediaSettings,
    shared: Arc<Shared>,
    metrics: &'static Registry,
}

/// Per-stream objects, built inside the worker thread.
struct Pipeline {
    synthetic: Option<SyntheticSource>,
    frame: Frame,
    enc: Box<dyn Encoder>,
    au: Vec<u8>,
    pk: GsVideoPacketizer,
    tx: MmsgTx,
    pacer: Pacer,
    knob: DropKnob,
    bitrate_kbps: u32,
    fec: u8,
    frames: u32,
}

impl VideoWorker {
    pub fn new(
        s: SessionStart,
        settings: MediaSettings,
        shared: Arc<Shared>,
        metrics: &'static Registry,
    ) -> Self {
        Self {
            s,
            settings,
            shared,
            metrics,
        }
    }

    pub fn run(self) {
        let id = self.s.id;
        match self.stream() {
            Ok(()) => log::info!("session {id}: video worker stopped"),
            Err((detail, why)) => {
                log::warn!("session {id}: video: {detail}");
                self.shared.fail(detail, why);
            }
        }
    }

    fn build(&self, ss: &StreamSocket) -> Result<Pipeline, Failure> {
        let s = &self.s;
        let (rikey, _) = check_session(s).map_err(fatal)?;
        let (w, h, fps) = (
            u32::from(s.video.width),
            u32::from(s.video.height),
            u32::from(s.video.fps),
        );
        let fec = self.shared.fec_percent.load(Ordering::Relaxed);
        let bitrate_kbps = self.shared.bitrate_kbps.load(Ordering::Relaxed);
        let cfg = GsVideoConfig {
            packet_size: usize::from(s.video.packet_size),
            fec_percent: fec,
            // Our rule: ≥ 2 parity per block even when a client asks for fewer (2 is also the
            // most the packetizer can represent for 1-shard blocks).
            min_required_fec_packets: 2,
        };
        let cipher = s
            .stream
            .has(StreamOptions::ENCRYPT_VIDEO)
            .then(|| VideoCipher::new(rikey));
        let pk = GsVideoPacketizer::new(cfg, cipher)
            .map_err(|e| fatal(format!("video packetizer: {e}")))?;
        let cap = max_access_unit_bytes(pk.config().packet_size);
        let (synthetic, frame, mut enc): (_, _, Box<dyn Encoder>) =
            match &self.settings.video_source {
                VideoSourceKind::Synthetic => {
                    let src = SyntheticSource::new(SyntheticConfig {
                        width: w,
                        height: h,
                        fps,
                        format: PixelFormat::I420,
                        first_frame_number: 0,
                    })
                    .map_err(|e| fatal(format!("synthetic source: {e}")))?;
                    let frame = Frame::new(w, h, PixelFormat::I420)
                        .map_err(|e| fatal(format!("frame: {e}")))?;
                    let enc = OpenH264Encoder::new(OpenH264Config::new(
                        w,
                        h,
                        fps,
                        bitrate_kbps.saturating_mul(1000),
                    ))
                    .map_err(|e| fatal(format!("openh264: {e}")))?;
                    (Some(src), frame, Box::new(enc))
                }
                VideoSourceKind::Passthrough(path) => {
                    let src = strahl_capture::passthrough::PassthroughSource::open(path)
                        .map_err(|e| fatal(format!("passthrough file {}: {e}", path.display())))?;
                    let frame = Frame::new(PASSTHROUGH_FRAME, PASSTHROUGH_FRAME, PixelFormat::I420)
                        .map_err(|e| fatal(format!("frame: {e}")))?;
                    (None, frame, Box::new(PassthroughEncoder::new(src)))
                }
            };
        enc.set_max_access_unit_bytes(Some(cap));
        let tx_sock = ss
            .sock
            .try_clone()
            .map_err(|e| fatal(format!("video socket clone: {e}")))?;
        let tx = MmsgTx::new(
            tx_sock,
            MmsgConfig {
                frames: TX_FRAMES,
                frame_payload: pk.packet_len(),
                gso_segments: 0,
                socket_buffer: SOCKET_BUFFER,
            },
        )
        .map_err(|e| fatal(format!("sendmmsg queue: {e}")))?;
        let link = PACER_LINK_BPS.max(u64::from(bitrate_kbps) * 4000);
        let mut pc = PacerConfig::new(link);
        pc.mode = Mode::Spread {
            permille: SPREAD_PERMILLE,
        };
        Ok(Pipeline {
            synthetic,
            frame,
            enc,
            au: Vec::with_capacity(cap.min(4 << 20)),
            pk,
            tx,
            pacer: Pacer::new(pc, 0),
            knob: DropKnob::new(self.settings.drop_fraction, self.settings.drop_seed),
            bitrate_kbps,
            fec,
            frames: 0,
        })
    }

    fn stream(&self) -> Result<(), Failure> {
        let s = &self.s;
        let id = s.id;
        let mut ss = StreamSocket::bind(s.ports.video_src, s).map_err(|e| {
            fatal(format!(
                "cannot bind the video port 0.0.0.0:{}: {e}",
                s.ports.video_src
            ))
        })?;
        let mut p = self.build(&ss)?;
        let timeout = self.settings.ping_timeout;
        log::info!(
            "session {id}: video {}x{}@{} {} kbit/s P={} fec {} %{}{} on 0.0.0.0:{}; waiting up to {timeout:?} for the video ping",
            s.video.width,
            s.video.height,
            s.video.fps,
            p.bitrate_kbps,
            s.video.packet_size,
            p.fec,
            if s.stream.has(StreamOptions::ENCRYPT_VIDEO) {
                ", encrypted"
            } else {
                ""
            },
            if p.knob.is_off() {
                String::new()
            } else {
                format!(
                    ", TEST KNOB dropping {} of packets",
                    self.settings.drop_fraction
                )
            },
            s.ports.video_src
        );
        let Some(mut dest) = ss.wait_first(&self.shared, timeout) else {
            if self.shared.stopped() {
                return Ok(());
            }
            return Err((
                format!("no video ping from the client within {timeout:?}"),
                StopReason::ClientTimeout,
            ));
        };
        self.metrics.add_at(Metric::PingsLearned, 0, 1);
        log::info!("session {id}: video destination {dest} learned from its ping");

        let fps = u64::from(s.video.fps);
        let interval_ns = 1_000_000_000 / fps;
        let t0 = Instant::now();
        let now_ns = || u64::try_from(t0.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let mut slot: u64 = 0;
        while !self.shared.stopped() {
            if let Some(a) = ss.poll() {
                log::info!("session {id}: video destination changed to {a}");
                self.metrics.add_at(Metric::PingsLearned, 0, 1);
                dest = a;
            }
            self.apply_updates(&mut p);
            let due = slot * 1_000_000_000 / fps;
            let now = now_ns();
            if now < due {
                std::thread::sleep(Duration::from_nanos(due - now).min(WORKER_TICK));
                continue;
            }
            let behind = (now - due) / interval_ns;
            if behind > 0 {
                self.metrics.add(Metric::VideoFramesSkipped, behind);
                slot += behind;
            }
            let capture_time = Duration::from_nanos(slot * 1_000_000_000 / fps);
            slot += 1;
            self.one_frame(&mut p, dest, capture_time, t0, interval_ns)?;
        }
        Ok(())
    }

    fn apply_updates(&self, p: &mut Pipeline) {
        let b = self.shared.bitrate_kbps.load(Ordering::Relaxed);
        if b != p.bitrate_kbps {
            match p.enc.set_bitrate(b.saturating_mul(1000)) {
                Ok(()) => log::info!("session {}: bitrate now {b} kbit/s", self.s.id),
                Err(e) => log::info!("session {}: bitrate {b} kbit/s not applied: {e}", self.s.id),
            }
            p.bitrate_kbps = b;
        }
        let f = self.shared.fec_percent.load(Ordering::Relaxed);
        if f != p.fec {
            p.pk.set_fec_percent(f);
            p.fec = f;
            self.metrics.set(Metric::VideoFecPercent, u64::from(f));
        }
        if self.shared.keyframe.swap(false, Ordering::Relaxed) {
            p.enc.request_idr();
        }
    }

    fn one_frame(
        &self,
        p: &mut Pipeline,
        dest: std::net::SocketAddr,
        capture_time: Duration,
        t0: Instant,
        interval_ns: u64,
    ) -> Result<(), Failure> {
        let m = self.metrics;
        match &mut p.synthetic {
            Some(src) => src
                .next_frame(&mut p.frame)
                .map_err(|e| fatal(format!("capture: {e}")))?,
            None => {
                p.frame.frame_number = p.frames;
                p.frame.pts_us = u64::try_from(capture_time.as_micros()).unwrap_or(u64::MAX);
            }
        }
        m.inc(Metric::VideoFramesCaptured);
        let started = Instant::now();
        let info = match p.enc.encode(&p.frame, &mut p.au) {
            Ok(i) => i,
            Err(EncodeError::AccessUnitTooLarge { len, cap }) => {
                // The encoder already made the next AU an IDR.
                m.inc(Metric::FramesRefused);
                log::warn!(
                    "session {}: AU of {len} B over the FEC cap {cap} B: frame dropped",
                    self.s.id
                );
                return Ok(());
            }
            Err(e) => return Err(fatal(format!("encoder: {e}"))),
        };
        let took = started.elapsed();
        m.add(
            Metric::VideoEncodeMicros,
            u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
        );
        m.inc(Metric::VideoFramesEncoded);
        let meta = GsFrameMeta {
            frame_type: if info.idr {
                FrameType::Idr
            } else {
                FrameType::P
            },
            capture_time,
            host_latency_tenth_ms: u16::try_from(took.as_micros() / 100).unwrap_or(u16::MAX),
        };
        let sent = send_frame(
            &mut p.pk,
            &p.au[..info.len.min(p.au.len())],
            meta,
            &mut p.tx,
            &mut p.pacer,
            &mut p.knob,
            dest,
            t0,
            interval_ns,
            &self.shared,
        );
        match sent {
            Ok(st) => {
                p.frames = p.frames.wrapping_add(1);
                if st.complete {
                    m.inc(Metric::VideoFramesSent);
                    m.add(Metric::VideoKeyframes, u64::from(info.idr));
                }
                m.add_at(Metric::PacketsSent, 0, st.packets);
                m.add_at(Metric::BytesSent, 0, st.bytes);
                m.add(Metric::VideoKnobDrops, st.dropped);
                m.add(Metric::FecParityLowered, u64::from(st.lowered));
                m.set(Metric::VideoPacingKbps, p.pacer.effective_rate_bps() / 1000);
                Ok(())
            }
            Err(PacketizeError::FrameTooLarge { bytes, max }) => {
                m.inc(Metric::FramesRefused);
                p.enc.request_idr();
                log::warn!(
                    "session {}: frame of {bytes} B refused (FEC capacity {max} B); IDR requested",
                    self.s.id
                );
                Ok(())
            }
            Err(e) => Err(fatal(format!("packetizer: {e}"))),
        }
    }
}

/// What one frame put on the wire.
#[derive(Debug, Default, Clone, Copy)]
pub struct FrameSent {
    pub packets: u64,
    pub bytes: u64,
    pub dropped: u64,
    pub lowered: bool,
    /// False when the stop flag cut the frame short.
    pub complete: bool,
}

/// Packetizes and sends one frame, paced (cut short, `complete: false`, when stopped midway).
#[allow(clippy::too_many_arguments)]
pub fn send_frame(
    pk: &mut GsVideoPacketizer,
    au: &[u8],
    meta: GsFrameMeta,
    tx: &mut MmsgTx,
    pacer: &mut Pacer,
    knob: &mut DropKnob,
    dest: std::net::SocketAddr,
    t0: Instant,
    interval_ns: u64,
    shared: &Shared,
) -> Result<FrameSent, PacketizeError> {
    let now_ns = || u64::try_from(t0.elapsed().as_nanos()).unwrap_or(u64::MAX);
    let len = pk.packet_len() as u64;
    let mut f = pk.frame(au, meta)?;
    let plan = *f.plan();
    let mut out = FrameSent {
        lowered: plan.lowered_to.is_some(),
        complete: true,
        ..FrameSent::default()
    };
    let mut left = plan.packets() as u64;
    pacer.frame_queued(
        now_ns(),
        Backlog {
            packets: left,
            bytes: left * len,
        },
        interval_ns,
    );
    while left > 0 {
        if shared.stopped() {
            out.complete = false;
            break;
        }
        let backlog = Backlog {
            packets: left,
            bytes: left * len,
        };
        let Some(rel) = pacer.next_release(now_ns(), backlog) else {
            break;
        };
        wait_until(t0, rel.at_ns);
        let mut batch_bytes = 0u64;
        let mut batch = 0u32;
        for _ in 0..u64::from(rel.packets).min(left) {
            let slot = match tx.alloc() {
                Some(s) => s,
                None => {
                    let _ = tx.flush();
                    let _ = tx.reclaim();
                    match tx.alloc() {
                        Some(s) => s,
                        None => break,
                    }
                }
            };
            match f.next_packet(tx.payload_mut(&slot)) {
                Ok(Some(n)) => {
                    left -= 1;
                    if knob.drop_next() {
                        tx.abandon(slot);
                        out.dropped += 1;
                    } else if tx.submit(slot, n, dest).is_ok() {
                        batch += 1;
                        batch_bytes += n as u64;
                    }
                }
                Ok(None) => {
                    tx.abandon(slot);
                    left = 0;
                    break;
                }
                Err(e) => {
                    tx.abandon(slot);
                    return Err(e);
                }
            }
        }
        // Socket-level trouble (full buffer, unreachable client) is counted by the queue;
        // the frame goes on: the client recovers with FEC or asks for an IDR.
        let handed = tx.flush().map_or(0, |r| r.sent) as u64;
        let _ = tx.reclaim();
        pacer.on_sent(now_ns(), batch, batch_bytes);
        // Counted as the kernel took them (a stalled flush sends the rest with the next batch).
        out.packets += handed;
        out.bytes += handed * len;
    }
    Ok(out)
}

/// Sleeps for long waits, spins (yielding) for short ones.
fn wait_until(t0: Instant, at_ns: u64) {
    let target = t0 + Duration::from_nanos(at_ns);
    loop {
        let now = Instant::now();
        if now >= target {
            return;
        }
        let left = target - now;
        if left > SPIN_BELOW {
            std::thread::sleep((left - SPIN_BELOW).min(WORKER_TICK));
        } else {
            std::thread::yield_now();
        }
    }
}
