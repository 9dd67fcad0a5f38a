//! The client's media receiver, sans-IO: `strahl/1` datagrams and `now` in, verified frames
//! counted and control messages ([`Output`]) out. The shell (`stream.rs`) owns the socket, the
//! clock and the QUIC connection; everything here runs on simulated time in the tests.
//!
//! Contract:
//! - [`Receiver::on_datagram`] hands one datagram to the `strahl/1` [`Reassembler`] (it opens the
//!   seal in place, runs FEC only when a data shard is missing) and counts what it did: a bad tag,
//!   a replayed packet number, a shard of an earlier epoch's frame (older than the current
//!   epoch's first frame, after a `reconfigured`) and other anomalies each have a counter; none
//!   of them is ever delivered.
//! - [`Receiver::poll`] takes the frames the reassembler delivers (in frame order) and verifies
//!   every one: a passthrough frame must be a whole checkable frame
//!   ([`strahl_packetize::native::verify_checkable`], every byte), an H.264 frame must start with
//!   an Annex-B start code; other codecs are counted only. A frame the reassembler gave up (or
//!   never saw) is lost; a new loss asks for a keyframe at once, again only after
//!   [`RecvConfig::keyframe_retry`] while no keyframe has arrived since.
//! - Every [`RecvConfig::report_interval`] `poll` emits a loss report for the interval: frames
//!   received, recovered by FEC and lost, and the shard loss in ppm from the packet-number span
//!   (the host seals every media packet of the session with one counter from 0, so the span of
//!   authenticated numbers is what was sent).
//! - [`Receiver::next_deadline`] says when `poll` must run next without a datagram.
//! - Passthrough frames' sizes are the session's configuration (bitrate / 8 / fps): each change
//!   of size is recorded with the frame it starts at ([`Receiver::frame_sizes`], the first
//!   [`MAX_SIZE_RUNS`]), so a reconfigure can be checked against its `reconfigured` answer —
//!   every frame from `first frame` on in the new size, none before.
//! - Memory is bounded by the reassembler's budget plus a fixed frame-timing ring and at most
//!   [`MAX_LATENCY_SAMPLES`] latency samples.
//! - Each delivered frame's `pts_us` waits for the shell in [`Receiver::drain_delivered_pts`]
//!   (at most [`MAX_PENDING_PTS`]; the shell drains after every `poll`): the shell reads the
//!   wall clock there, which this sans-IO core never does.

use std::time::Duration;

use strahl_native::msg::{KeyframeRequest, LossReport, Reconfigured, codec};
use strahl_packetize::native::wire::{PN_BITS, PREFIX_LEN, Prefix, ShardHeader};
use strahl_packetize::native::{Accepted, Anomaly, Reassembler, verify_checkable};

/// Latency samples kept (one per frame): 1000 fps for ~17 minutes.
pub const MAX_LATENCY_SAMPLES: usize = 1 << 20;
/// Delivered frames' pts kept until the shell drains them (more are not kept).
pub const MAX_PENDING_PTS: usize = 4096;
/// Losses described one by one (the summary's `loss_events`); later ones are only counted.
pub const MAX_LOSS_EVENTS: usize = 16;
/// Passthrough frame-size changes recorded (the summary's `frame_sizes`); a configuration
/// changes a handful of times a session, a size that changes every frame is not one.
pub const MAX_SIZE_RUNS: usize = 64;
/// Frames whose first-shard time and delivery are remembered (more than the reassembler keeps
/// in flight).
const TIMING_RING: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecvConfig {
    /// The welcome's codec bit: what verification means.
    pub codec: u64,
    /// The welcome's epoch.
    pub epoch: u32,
    pub report_interval: Duration,
    pub keyframe_retry: Duration,
}

impl RecvConfig {
    pub fn new(codec: u64, epoch: u32) -> Self {
        RecvConfig {
            codec,
            epoch,
            // Often enough for the host's FEC adaptation to follow a change within a second,
            // rare enough to cost nothing on the control connection.
            report_interval: Duration::from_millis(250),
            // About two round trips of a loaded host's keyframe path: a request lost with the
            // connection's packets or answered by a frame that was itself lost is repeated.
            keyframe_retry: Duration::from_millis(200),
        }
    }
}

/// What the shell sends on the control connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Loss(LossReport),
    Keyframe(KeyframeRequest),
}

/// Everything counted since the receiver started (the JSON summary's numbers).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Frames delivered (verified or not).
    pub frames: u64,
    /// Bytes of delivered frames (access units, not datagrams).
    pub bytes: u64,
    pub keyframes: u64,
    /// Delivered frames that needed FEC.
    pub recovered: u64,
    /// Data shards FEC rebuilt.
    pub shards_recovered: u64,
    /// Frames given up or never seen (a gap before a delivered frame).
    pub lost: u64,
    /// Delivered frames that failed verification.
    pub verify_failures: u64,
    /// Passthrough frames whose sequence number did not increase.
    pub seq_out_of_order: u64,
    pub datagrams: u64,
    /// Datagrams that authenticated (shards the host sent that arrived intact).
    pub authenticated: u64,
    /// Authentication failed (forged or corrupted).
    pub bad_tag: u64,
    /// Packet number seen before or too old for the replay window.
    pub replayed: u64,
    /// Shards of a frame before the current epoch's first frame, after that frame was reached.
    pub old_epoch: u64,
    /// Shards a frame no longer needed: parity after its data was complete (normal: the host
    /// sends every parity shard).
    pub surplus: u64,
    /// Shards of frames already given up.
    pub late: u64,
    pub duplicate: u64,
    /// Short, bad prefix or header, wrong length or stream, inconsistent with its frame.
    pub malformed: u64,
    /// Refused for the memory budget or the window of frames in flight.
    pub over_budget: u64,
    pub keyframe_requests: u64,
    pub loss_reports: u64,
}

/// Latency percentiles over a run (first shard → delivered, or capture → delivered).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Latency {
    pub samples: usize,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

impl Latency {
    /// Percentiles of `samples` (µs); `None` when there are none.
    pub fn of(samples: &[u32]) -> Option<Latency> {
        if samples.is_empty() {
            return None;
        }
        let mut v = samples.to_vec();
        v.sort_unstable();
        let at = |q: f64| u64::from(v[((v.len() - 1) as f64 * q).round() as usize]);
        Some(Latency {
            samples: v.len(),
            p50_us: at(0.5),
            p99_us: at(0.99),
            max_us: u64::from(v[v.len() - 1]),
        })
    }
}

#[derive(Clone, Copy)]
struct Snapshot {
    frames: u64,
    recovered: u64,
    lost: u64,
    authenticated: u64,
    pn_end: u64,
}

/// See the module contract.
pub struct Receiver {
    cfg: RecvConfig,
    reasm: Reassembler,
    c: Counters,
    epoch: u32,
    /// Wire id of the current epoch's first frame (after a `reconfigured`).
    epoch_first_frame: Option<u32>,
    /// Largest authenticated packet number + 1 (0 before any).
    pn_end: u64,
    last_report: Snapshot,
    next_report: Duration,
    /// When the last keyframe request went out, while no keyframe has arrived since.
    keyframe_wait: Option<Duration>,
    /// A frame was lost since the last keyframe: later frames do not decode.
    broken: bool,
    /// The last frame delivered while the decode chain was whole.
    last_good_frame: Option<u64>,
    /// The last frame delivered (wire id).
    last_delivered: Option<u32>,
    /// Losses counted so far, per [`LOSS_CAUSES`].
    loss_causes: [u64; 6],
    loss_events: Vec<String>,
    last_seq: Option<u64>,
    /// (wire frame id, first shard's arrival) by `frame id % TIMING_RING`.
    first_seen: Vec<Option<(u32, Duration)>>,
    /// Wire ids of delivered frames, by `frame id % TIMING_RING`.
    delivered: Vec<Option<u32>>,
    latency_us: Vec<u32>,
    /// `pts_us` of frames delivered since the last [`Receiver::drain_delivered_pts`].
    delivered_pts: Vec<u64>,
    /// (first wire frame id, bytes) of each run of equal passthrough frame sizes.
    frame_sizes: Vec<(u32, usize)>,
    first_failure: Option<String>,
}

impl Receiver {
    /// `now`: the receiver's start (the first report is due one interval later).
    pub fn new(cfg: RecvConfig, reasm: Reassembler, now: Duration) -> Self {
        let zero = Snapshot {
            frames: 0,
            recovered: 0,
            lost: 0,
            authenticated: 0,
            pn_end: 0,
        };
        Receiver {
            next_report: now + cfg.report_interval,
            epoch: cfg.epoch,
            cfg,
            reasm,
            c: Counters::default(),
            epoch_first_frame: None,
            pn_end: 0,
            last_report: zero,
            keyframe_wait: None,
            broken: false,
            last_good_frame: None,
            last_delivered: None,
            loss_causes: [0; 6],
            loss_events: Vec::new(),
            last_seq: None,
            first_seen: vec![None; TIMING_RING],
            delivered: vec![None; TIMING_RING],
            latency_us: Vec::new(),
            delivered_pts: Vec::new(),
            frame_sizes: Vec::new(),
            first_failure: None,
        }
    }

    /// Passthrough frames: (first wire frame id, bytes) of each size (see the contract).
    pub fn frame_sizes(&self) -> &[(u32, usize)] {
        &self.frame_sizes
    }

    pub fn counters(&self) -> &Counters {
        &self.c
    }

    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// Frames open in the reassembler (cut short if the stream ends now; not counted as lost).
    pub fn frames_in_flight(&self) -> usize {
        self.reasm.frames_in_flight()
    }

    /// When and why frames were lost (the first [`MAX_LOSS_EVENTS`] losses).
    pub fn loss_events(&self) -> &[String] {
        &self.loss_events
    }

    /// What the first failed verification said (for the person reading the summary).
    pub fn first_failure(&self) -> Option<&str> {
        self.first_failure.as_deref()
    }

    /// First shard → delivered, over every delivered frame whose first shard was seen.
    pub fn latency(&self) -> Option<Latency> {
        Latency::of(&self.latency_us)
    }

    /// Hands `f` the `pts_us` of every frame delivered since the last call, in order.
    pub fn drain_delivered_pts(&mut self, f: impl FnMut(u64)) {
        self.delivered_pts.drain(..).for_each(f);
    }

    /// The host opened epoch `r.epoch` at frame `r.first_frame`.
    pub fn on_reconfigured(&mut self, r: &Reconfigured) {
        self.epoch = r.epoch;
        // The wire carries the low 32 bits of frame ids.
        self.epoch_first_frame = Some(r.first_frame as u32);
    }

    /// One datagram as received (opened in place: its bytes are garbage afterwards).
    pub fn on_datagram(&mut self, dgram: &mut [u8], now: Duration) {
        self.c.datagrams += 1;
        let pn_low = Prefix::decode(dgram).ok().map(|p| p.pn_low);
        let r = self.reasm.push(dgram, now);
        let authenticated = !matches!(
            r,
            Err(Anomaly::ShortDatagram
                | Anomaly::BadPrefix
                | Anomaly::WrongStream
                | Anomaly::Forged
                | Anomaly::Replayed)
        );
        if !authenticated {
            match r {
                Err(Anomaly::Forged) => self.c.bad_tag += 1,
                Err(Anomaly::Replayed) => self.c.replayed += 1,
                _ => self.c.malformed += 1,
            }
            return;
        }
        self.c.authenticated += 1;
        if let Some(low) = pn_low {
            let pn = expand_pn(u64::from(low), self.pn_end);
            self.pn_end = self.pn_end.max(pn + 1);
        }
        // Authenticated: the sealed part is plaintext now, so its header can be read.
        let hdr = ShardHeader::decode(&dgram[PREFIX_LEN..]).ok();
        match r {
            Ok(Accepted::Stored | Accepted::Completed { .. }) => {
                if let Some(h) = hdr {
                    let e = &mut self.first_seen[h.frame_id as usize % TIMING_RING];
                    if e.is_none_or(|(id, _)| id != h.frame_id) {
                        *e = Some((h.frame_id, now));
                    }
                }
            }
            Ok(Accepted::Surplus) => self.c.surplus += 1,
            Err(Anomaly::Late) => {
                let old = match (hdr, self.epoch_first_frame) {
                    (Some(h), Some(first)) => (first.wrapping_sub(h.frame_id) as i32) > 0,
                    _ => false,
                };
                let delivered = hdr.is_some_and(|h| {
                    self.delivered[h.frame_id as usize % TIMING_RING] == Some(h.frame_id)
                });
                if old {
                    self.c.old_epoch += 1;
                } else if delivered {
                    self.c.surplus += 1;
                } else {
                    self.c.late += 1;
                }
            }
            Err(Anomaly::Duplicate) => self.c.duplicate += 1,
            Err(Anomaly::OverBudget | Anomaly::WindowFull) => self.c.over_budget += 1,
            // DecodeFailed gives its frame up: counted with the lost frames in `poll`.
            Err(_) => self.c.malformed += 1,
        }
    }

    /// Delivers and verifies what is ready, counts losses, and says what to send.
    pub fn poll(&mut self, now: Duration, out: &mut Vec<Output>) {
        while let Some(f) = self.reasm.poll(now) {
            let (wire_id, keyframe) = (f.id as u32, f.keyframe);
            self.delivered[wire_id as usize % TIMING_RING] = Some(wire_id);
            if self.cfg.codec == codec::PASSTHROUGH
                && self.frame_sizes.len() < MAX_SIZE_RUNS
                && self.frame_sizes.last().is_none_or(|r| r.1 != f.data.len())
            {
                self.frame_sizes.push((wire_id, f.data.len()));
            }
            let c = &mut self.c;
            c.frames += 1;
            c.bytes += f.data.len() as u64;
            c.keyframes += u64::from(f.keyframe);
            c.recovered += u64::from(f.recovered);
            if self.delivered_pts.len() < MAX_PENDING_PTS {
                self.delivered_pts.push(f.pts_us);
            }
            if let Some((id, t)) = self.first_seen[wire_id as usize % TIMING_RING]
                && id == wire_id
                && self.latency_us.len() < MAX_LATENCY_SAMPLES
            {
                let us = now.saturating_sub(t).as_micros();
                self.latency_us.push(u32::try_from(us).unwrap_or(u32::MAX));
            }
            match verify(self.cfg.codec, f.data) {
                Ok(Some(seq)) => {
                    if self.last_seq.is_some_and(|l| seq <= l) {
                        c.seq_out_of_order += 1;
                    }
                    self.last_seq = Some(seq);
                }
                Ok(None) => {}
                Err(why) => {
                    c.verify_failures += 1;
                    if self.first_failure.is_none() {
                        self.first_failure = Some(format!("frame {wire_id}: {why}"));
                    }
                }
            }
            // Frames the reassembler gave up on its way to this one come before it.
            if !keyframe {
                self.count_losses(now, out);
            } else {
                self.note_losses(now);
                self.broken = false;
                self.keyframe_wait = None;
            }
            self.last_delivered = Some(wire_id);
            if !self.broken {
                self.last_good_frame = Some(u64::from(wire_id));
            }
        }
        self.count_losses(now, out);
        self.c.shards_recovered = self.reasm.stats().shards_recovered;
        if now >= self.next_report {
            self.next_report = now + self.cfg.report_interval;
            out.push(Output::Loss(self.report()));
        }
    }

    /// A new loss breaks the decode chain until a keyframe: ask for one (see the contract).
    fn count_losses(&mut self, now: Duration, out: &mut Vec<Output>) {
        if !self.note_losses(now) {
            return;
        }
        self.broken = true;
        let due = self
            .keyframe_wait
            .is_none_or(|t| now >= t + self.cfg.keyframe_retry);
        if due {
            self.keyframe_wait = Some(now);
            self.c.keyframe_requests += 1;
            out.push(Output::Keyframe(KeyframeRequest {
                epoch: self.epoch,
                last_good_frame: self.last_good_frame,
            }));
        }
    }

    /// Counts frames lost since the last call and records why (the first
    /// [`MAX_LOSS_EVENTS`]); whether there were any.
    fn note_losses(&mut self, now: Duration) -> bool {
        let causes = loss_causes(self.reasm.stats());
        let lost: u64 = causes.iter().sum();
        if lost <= self.c.lost {
            return false;
        }
        self.c.lost = lost;
        if self.loss_events.len() < MAX_LOSS_EVENTS {
            let what: Vec<String> = causes
                .iter()
                .zip(self.loss_causes)
                .zip(LOSS_CAUSES)
                .filter(|((now, before), _)| *now > before)
                .map(|((now, before), name)| format!("{} {name}", now - before))
                .collect();
            let after = self
                .last_delivered
                .map_or("the start".to_string(), |id| format!("frame {id}"));
            self.loss_events.push(format!(
                "{:.3} s, after {after}: {}",
                now.as_secs_f64(),
                what.join(", ")
            ));
        }
        self.loss_causes = causes;
        true
    }

    /// The loss report of the interval since the last one (and starts the next interval).
    fn report(&mut self) -> LossReport {
        let now = Snapshot {
            frames: self.c.frames,
            recovered: self.c.recovered,
            lost: self.c.lost,
            authenticated: self.c.authenticated,
            pn_end: self.pn_end,
        };
        let last = std::mem::replace(&mut self.last_report, now);
        let span = now.pn_end.saturating_sub(last.pn_end);
        let got = now.authenticated - last.authenticated;
        let missing = span.saturating_sub(got);
        self.c.loss_reports += 1;
        LossReport {
            epoch: self.epoch,
            frames_received: now.frames - last.frames,
            frames_recovered: now.recovered - last.recovered,
            frames_lost: now.lost - last.lost,
            shard_loss_ppm: (missing * 1_000_000)
                .checked_div(span)
                .map_or(0, |p| p.min(1_000_000) as u32),
        }
    }

    /// When `poll` must run even if no datagram arrives.
    pub fn next_deadline(&self) -> Duration {
        match self.reasm.next_deadline() {
            Some(d) => d.min(self.next_report),
            None => self.next_report,
        }
    }
}

/// Why frames are lost, in [`loss_causes`]' order.
const LOSS_CAUSES: [&str; 6] = [
    "timed out incomplete",
    "incomplete when a newer frame was done",
    "pushed out of the window",
    "evicted for memory",
    "never seen",
    "failed to decode",
];

/// Frames the reassembler gave up, per reason, and those it never saw before a newer one.
fn loss_causes(st: &strahl_packetize::stats::ReassemblerStats) -> [u64; 6] {
    [
        st.frames_abandoned_timeout,
        st.frames_abandoned_superseded,
        st.frames_abandoned_window,
        st.frames_abandoned_memory,
        st.frames_skipped,
        st.decode_failed,
    ]
}

/// Checks one delivered frame for `codec`: `Ok(Some(seq))` for a checkable frame.
fn verify(codec: u64, au: &[u8]) -> Result<Option<u64>, String> {
    match codec {
        codec::PASSTHROUGH => verify_checkable(au).map(Some).map_err(|e| e.to_string()),
        codec::H264 => {
            if au.starts_with(&[0, 0, 1]) || au.starts_with(&[0, 0, 0, 1]) {
                Ok(None)
            } else {
                Err("H.264 access unit without an Annex-B start code".into())
            }
        }
        _ => Ok(None),
    }
}

/// The packet number closest to `expected` whose low [`PN_BITS`] bits are `low` (RFC 9000
/// §A.3's rule, on our own count of authenticated packets).
fn expand_pn(low: u64, expected: u64) -> u64 {
    let win = 1u64 << PN_BITS;
    let half = win / 2;
    let candidate = (expected & !(win - 1)) | low;
    if candidate + half <= expected {
        candidate + win
    } else if candidate > expected + half && candidate >= win {
        candidate - win
    } else {
        candidate
    }
}

#[cfg(test)]
#[path = "recv_tests.rs"]
mod tests;
