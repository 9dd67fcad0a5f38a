//! The media tx tile: one thread that sends every session's packets, paced, through the
//! transport each destination routes to.
//!
//! Contract:
//! - Inputs: [`Command`]s from the server thread (ports opened/closed, sessions added/removed,
//!   FEC changes; each followed by an unpark) and, per stream, a ring of units from the
//!   stream's encoder thread ([`super::ring`]). Outputs: [`TileEvent`]s (a session's transport
//!   chosen or changed), failures recorded in the session's [`Shared`], metrics.
//! - The frame stage runs here, on the tile: a unit is packetized (FEC, sealing) straight into
//!   the transport frame that carries it — the payload is copied once, from the encoder's unit
//!   buffer into the frame, and the queue (UMEM for AF_XDP, registered buffers for io_uring)
//!   hands it to the NIC or kernel. The unit's slot returns to its encoder when the unit's last
//!   packet is written. This is why there is no separate frame thread: UMEM frames belong to the
//!   socket's owner, and one owner means no locks between packetizing and sending.
//! - Pacing: every stream has its own [`Pacer`] (GameStream video: spread mode over half the
//!   frame interval; native video: the link rate; audio: a small rate) and one link pacer caps
//!   the sum. Each turn the stream whose
//!   next release is earliest goes, gated by the link pacer; the wait is
//!   [`strahl_runtime::sched::wait_plan`] (spin short gaps, park for long ones, waking early for
//!   new units). Kicks are coalesced by [`strahl_runtime::sched::should_kick`].
//! - A slow session never blocks the others: a stream whose queue has no free frame is skipped
//!   until the next housekeeping (counted in `strahl_tx_tile_stalls_total`), and every wait is
//!   bounded.
//! - Housekeeping every [`HOUSEKEEPING_NS`] while sessions exist (every [`IDLE_PARK`] otherwise):
//!   commands, pings on each stream port (the client's pings learn and follow its address, see
//!   [`super::ping`]), ping time-outs, neighbour retries, AF_XDP verification
//!   ([`super::paths`]), reclaiming completions, and flushing tile-local counters into the
//!   metrics registry.
//! - The steady state allocates nothing per packet or per unit (`tests/media_alloc.rs`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, TryRecvError};
use std::time::Duration;

use strahl_ipc::StopReason;
use strahl_metrics::{Metric, Registry};
use strahl_net::TransportKind;
use strahl_pacer::{Backlog, Pacer, PacerConfig};
use strahl_runtime::Clock;
use strahl_runtime::sched::{Wait, should_kick, wait_plan};

use super::Shared;
use super::knob::DropKnob;
use super::paths::{Path, Paths, PortPath, Routed};
use super::ping::{PingMatcher, PingOutcome};
use super::ring::{Consumer, Slot};
use super::stream::{StreamPacketizer, UnitCost, WIRE_OVERHEAD};

/// Housekeeping cadence while sessions exist: a ping is learned within 1 ms and completions are
/// reclaimed 1000 times a second (a 4096-frame UMEM holds ~45 ms at 1 Gbit/s, far more).
pub const HOUSEKEEPING_NS: u64 = 1_000_000;
/// Longest park with no session (commands unpark the tile at once).
pub const IDLE_PARK: Duration = Duration::from_millis(50);
/// Datagrams read per port and housekeeping, so a flood on a media port cannot starve sending.
const PINGS_PER_PORT: usize = 64;
/// Alloc retries (flush + reclaim) before a stream is marked blocked for this round.
const ALLOC_RETRIES: u32 = 2;

/// Which stream of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    Video,
    Audio,
}

impl StreamKind {
    /// Label index of the `stream` label (`video`, `audio`).
    pub fn index(self) -> usize {
        match self {
            StreamKind::Video => 0,
            StreamKind::Audio => 1,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            StreamKind::Video => "video",
            StreamKind::Audio => "audio",
        }
    }
}

/// One stream of a session, as the server thread builds it.
pub struct StreamSetup {
    pub kind: StreamKind,
    pub port: u16,
    pub packetizer: Box<dyn StreamPacketizer>,
    pub units: Consumer,
    pub pacer: PacerConfig,
    /// Spread pacing spreads each unit over a fraction of this (0: rate pacing only).
    pub unit_interval_ns: u64,
    pub knob: DropKnob,
    pub matcher: PingMatcher,
}

/// A session, as the server thread builds it.
pub struct SessionSetup {
    pub id: u64,
    pub shared: Arc<Shared>,
    pub streams: Vec<StreamSetup>,
    pub ping_timeout: Duration,
}

/// Server thread → tile.
pub enum Command {
    OpenPort(Box<PortPath>),
    ClosePort(u16),
    AddSession(Box<SessionSetup>),
    RemoveSession(u64),
    SetFec {
        id: u64,
        percent: u8,
    },
    /// A native session's video pacing rate (the control plane's loss-driven ceiling).
    SetPace {
        id: u64,
        rate_bps: u64,
    },
}

/// Tile → server thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TileEvent {
    /// The transport of session `id`'s video (or only) stream, with both streams' detail.
    Transport {
        id: u64,
        transport: TransportKind,
        detail: String,
    },
}

struct Flow {
    session: u64,
    kind: StreamKind,
    port: u16,
    pk: Box<dyn StreamPacketizer>,
    units: Consumer,
    current: Option<Box<Slot>>,
    cost: UnitCost,
    left: Backlog,
    pacer: Pacer,
    unit_interval_ns: u64,
    knob: DropKnob,
    matcher: PingMatcher,
    dest: Option<SocketAddr>,
    path: Path,
    route_detail: String,
    /// Retry AF_XDP for this destination until then (next hop unresolved).
    neighbour_retry_until: Option<u64>,
    ping_deadline_ns: u64,
    ping_timeout: Duration,
    blocked: bool,
    /// A unit was begun and not yet announced to the pacer ([`TxTile::schedule_begun`]).
    begun: bool,
    shared: Arc<Shared>,
}

/// Tile-local counters, flushed into the registry on housekeeping.
#[derive(Debug, Default)]
struct Local {
    packets: [u64; 2],
    bytes: [u64; 2],
    by_transport: [u64; 3],
    frames_sent: u64,
    keyframes: u64,
    knob_drops: u64,
    lowered: u64,
    refused: u64,
    stalls: u64,
    spin_ns: u64,
    pings: [u64; 2],
}

fn transport_index(k: TransportKind) -> usize {
    match k {
        TransportKind::AfXdp => 0,
        TransportKind::IoUring => 1,
        TransportKind::SendMmsg => 2,
    }
}

/// The tile's state; [`TxTile::run`] is its thread body.
pub struct TxTile {
    paths: Paths,
    flows: Vec<Flow>,
    link: Pacer,
    commands: Receiver<Command>,
    events: Sender<TileEvent>,
    metrics: &'static Registry,
    shutdown: Arc<AtomicBool>,
    clock: Clock,
    local: Local,
    ping_buf: [u8; 64],
}

impl TxTile {
    pub fn new(
        paths: Paths,
        link_rate_bps: u64,
        commands: Receiver<Command>,
        events: Sender<TileEvent>,
        metrics: &'static Registry,
        shutdown: Arc<AtomicBool>,
    ) -> Self {
        let clock = Clock::new();
        Self {
            paths,
            flows: Vec::with_capacity(32),
            link: Pacer::new(PacerConfig::new(link_rate_bps), 0),
            commands,
            events,
            metrics,
            shutdown,
            clock,
            local: Local::default(),
            ping_buf: [0; 64],
        }
    }

    /// The thread body: runs until the shutdown flag is set (seen within one park).
    pub fn run(mut self) {
        let mut next_hk = 0u64;
        loop {
            if self.shutdown.load(Ordering::Acquire) {
                break;
            }
            let now = self.clock.now_ns();
            if now >= next_hk {
                self.housekeeping(now);
                next_hk = now + HOUSEKEEPING_NS;
            }
            let now = if self.pull_units() {
                self.clock.now_ns()
            } else {
                now
            };
            self.schedule_begun(now);
            let Some((i, at, n)) = self.pick(now) else {
                self.paths.kick(false);
                let park = if self.flows.is_empty() {
                    IDLE_PARK
                } else {
                    Duration::from_nanos(next_hk.saturating_sub(now).max(1))
                };
                std::thread::park_timeout(park);
                continue;
            };
            let actual = match wait_plan(now, at) {
                Wait::Now => now,
                Wait::Spin { until_ns } => {
                    let t = self.clock.spin_until(until_ns);
                    self.local.spin_ns += t.saturating_sub(now);
                    t
                }
                Wait::Sleep { for_ns } => {
                    self.paths.kick(false); // never hold frames across a sleep
                    let until_hk = next_hk.saturating_sub(now).max(1);
                    std::thread::park_timeout(Duration::from_nanos(for_ns.min(until_hk)));
                    continue;
                }
            };
            self.send(i, n, actual);
            let next = self.pick(actual).map(|(_, at, _)| at);
            if should_kick(actual, self.paths.held(), next) {
                self.paths.kick(false);
            }
        }
        self.paths.kick(true);
        self.flush_metrics();
    }

    /// Start the pacing of every unit begun since the last call, at `now`: after
    /// [`Self::pull_units`] (which may have spent a while encoding parity), so that time is not
    /// credit the frame starts with.
    fn schedule_begun(&mut self, now: u64) {
        for f in &mut self.flows {
            if f.begun {
                f.begun = false;
                if f.unit_interval_ns > 0 {
                    f.pacer.frame_queued(now, f.left, f.unit_interval_ns);
                }
            }
        }
    }

    /// Take (and begin: packet plan, parity) the next unit of every idle stream that has a
    /// destination; returns whether any was begun.
    fn pull_units(&mut self) -> bool {
        let mut any = false;
        for f in &mut self.flows {
            if f.current.is_some() || f.dest.is_none() {
                continue;
            }
            let Some(slot) = f.units.take() else {
                continue;
            };
            match f.pk.begin(&slot) {
                Ok(cost) => {
                    f.cost = cost;
                    f.left = cost.backlog();
                    self.local.lowered += u64::from(cost.parity_lowered);
                    f.begun = true;
                    f.knob.begin_unit();
                    any = true;
                    f.current = Some(slot);
                }
                Err(e) => {
                    self.local.refused += 1;
                    if f.kind == StreamKind::Video {
                        f.shared.keyframe.store(true, Ordering::Relaxed);
                    }
                    log::warn!(
                        "session {}: {} unit of {} B refused ({e}){}",
                        f.session,
                        f.kind.name(),
                        slot.meta.len,
                        if f.kind == StreamKind::Video {
                            "; IDR requested"
                        } else {
                            ""
                        }
                    );
                    f.units.release(slot);
                }
            }
        }
        any
    }

    /// The stream whose release comes first, gated by the link pacer: (flow, at, packets).
    fn pick(&self, now: u64) -> Option<(usize, u64, u32)> {
        let mut best: Option<(usize, u64, u32)> = None;
        for (i, f) in self.flows.iter().enumerate() {
            if f.current.is_none() || f.left.packets == 0 || f.blocked || f.dest.is_none() {
                continue;
            }
            let Some(rel) = f.pacer.next_release(now, f.left) else {
                continue;
            };
            if best.is_none_or(|(_, at, _)| rel.at_ns < at) {
                best = Some((i, rel.at_ns, rel.packets));
            }
        }
        let (i, at, n) = best?;
        let f = &self.flows[i];
        let avg = f.left.bytes / f.left.packets.max(1);
        let batch = Backlog {
            packets: u64::from(n),
            bytes: u64::from(n) * avg,
        };
        let link = self.link.next_release(now.max(at), batch)?;
        Some((i, at.max(link.at_ns), n.min(link.packets)))
    }

    /// Write up to `n` packets of flow `i` into its queue.
    fn send(&mut self, i: usize, n: u32, now: u64) {
        let Self {
            flows,
            paths,
            local,
            link,
            ..
        } = self;
        let f = &mut flows[i];
        let Some(dest) = f.dest else {
            return;
        };
        let Some(kind) = paths.kind(f.path) else {
            return;
        };
        let Some((q, held)) = paths.queue(f.path) else {
            return;
        };
        let (mut sent, mut wire) = (0u32, 0u64);
        let mut unit_done = false;
        for _ in 0..n {
            let mut frame = q.alloc();
            let mut tries = 0;
            while frame.is_none() && tries < ALLOC_RETRIES {
                let _ = q.flush();
                let _ = q.reclaim();
                *held = 0;
                frame = q.alloc();
                tries += 1;
            }
            let Some(frame) = frame else {
                f.blocked = true;
                local.stalls += 1;
                break;
            };
            let Some(unit) = f.current.as_ref() else {
                q.abandon(frame);
                break;
            };
            let block = f.pk.next_fec_block();
            match f.pk.next_packet(unit, q.payload_mut(&frame)) {
                Ok(Some(len)) => {
                    f.left.packets = f.left.packets.saturating_sub(1);
                    let w = len as u64 + WIRE_OVERHEAD;
                    f.left.bytes = f.left.bytes.saturating_sub(w);
                    wire += w;
                    if f.knob.drop_next(block) {
                        q.abandon(frame);
                        local.knob_drops += 1;
                    } else if q.submit(frame, len, dest).is_ok() {
                        sent += 1;
                        *held += 1;
                        local.packets[f.kind.index()] += 1;
                        local.bytes[f.kind.index()] += len as u64;
                        local.by_transport[transport_index(kind)] += 1;
                    }
                    if f.left.packets == 0 {
                        unit_done = true;
                        break;
                    }
                }
                Ok(None) => {
                    q.abandon(frame);
                    unit_done = true;
                    break;
                }
                Err(e) => {
                    q.abandon(frame);
                    log::warn!(
                        "session {}: {} packetizer: {e}; rest of the unit dropped",
                        f.session,
                        f.kind.name()
                    );
                    unit_done = true;
                    break;
                }
            }
        }
        f.pacer.on_sent(now, sent, wire);
        link.on_sent(now, sent, wire);
        if unit_done {
            let complete = f.left.packets == 0;
            if let Some(slot) = f.current.take() {
                if f.kind == StreamKind::Video && complete {
                    local.frames_sent += 1;
                    local.keyframes += u64::from(slot.meta.keyframe);
                }
                f.units.release(slot);
            }
            f.left = Backlog::default();
        }
    }

    fn housekeeping(&mut self, now: u64) {
        self.drain_commands(now);
        self.paths.kick(false);
        // Completions came back: every stream may try again.
        for f in &mut self.flows {
            f.blocked = false;
        }
        self.poll_pings(now);
        self.check_timeouts(now);
        self.retry_neighbours(now);
        if self.paths.check_verification(now) == Some(false) {
            self.metrics.add_at(
                Metric::MediaTransportFallbacks,
                transport_index(TransportKind::AfXdp),
                1,
            );
            let moved: Vec<usize> = (0..self.flows.len())
                .filter(|&i| self.flows[i].path == Path::Xdp)
                .collect();
            for i in moved {
                self.reroute(i, now);
            }
        }
        self.flush_metrics();
    }

    fn drain_commands(&mut self, now: u64) {
        // Bounded: commands are rare; a burst is taken over a few housekeeping rounds.
        for _ in 0..64 {
            let cmd = match self.commands.try_recv() {
                Ok(c) => c,
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => return,
            };
            match cmd {
                Command::OpenPort(p) => {
                    self.paths.ports.retain(|x| x.port != p.port);
                    self.paths.ports.push(*p);
                }
                Command::ClosePort(port) => {
                    if let Some(p) = self.paths.port_mut(port) {
                        let _ = p.q.flush();
                    }
                    self.paths.ports.retain(|x| x.port != port);
                }
                Command::AddSession(s) => self.add_session(*s, now),
                Command::RemoveSession(id) => {
                    // Frames of this session already submitted still go; nothing else of it.
                    self.flows.retain(|f| f.session != id);
                }
                Command::SetFec { id, percent } => {
                    for f in self.flows.iter_mut().filter(|f| f.session == id) {
                        f.pk.set_fec_percent(percent);
                    }
                }
                Command::SetPace { id, rate_bps } => {
                    let video = |f: &&mut Flow| f.session == id && f.kind == StreamKind::Video;
                    for f in self.flows.iter_mut().filter(video) {
                        f.pacer.set_link_rate(now, rate_bps);
                    }
                }
            }
        }
    }

    fn add_session(&mut self, s: SessionSetup, now: u64) {
        let deadline = now + u64::try_from(s.ping_timeout.as_nanos()).unwrap_or(u64::MAX);
        for st in s.streams {
            self.flows.push(Flow {
                session: s.id,
                kind: st.kind,
                port: st.port,
                pk: st.packetizer,
                units: st.units,
                current: None,
                cost: UnitCost::default(),
                left: Backlog::default(),
                pacer: Pacer::new(st.pacer, now),
                unit_interval_ns: st.unit_interval_ns,
                knob: st.knob,
                dest: st.matcher.dest(),
                matcher: st.matcher,
                path: Path::Unrouted,
                route_detail: String::new(),
                neighbour_retry_until: None,
                ping_deadline_ns: deadline,
                ping_timeout: s.ping_timeout,
                begun: false,
                blocked: false,
                shared: s.shared.clone(),
            });
            // A destination known from the start (native: the client's media address from
            // the control plane) needs no ping: route it now.
            let i = self.flows.len() - 1;
            if let Some(a) = self.flows[i].dest {
                let f = &self.flows[i];
                log::info!("session {}: {} destination {a}", f.session, f.kind.name());
                f.shared.ready[f.kind.index()].store(true, Ordering::Release);
                self.reroute(i, now);
            }
        }
    }

    /// Read each stream port's socket; a session's ping learns (or moves) its destination.
    fn poll_pings(&mut self, now: u64) {
        for pi in 0..self.paths.ports.len() {
            let port = self.paths.ports[pi].port;
            for _ in 0..PINGS_PER_PORT {
                let sock = &self.paths.ports[pi].sock;
                let (n, src) = match strahl_net::sys::recv_from_nowait(sock, &mut self.ping_buf) {
                    Ok(r) => r,
                    Err(_) => break, // WouldBlock, or an ICMP error queued on the socket
                };
                let data = &self.ping_buf[..n.min(self.ping_buf.len())];
                let mut learned = None;
                for (i, f) in self.flows.iter_mut().enumerate() {
                    if f.port != port {
                        continue;
                    }
                    match f.matcher.on_datagram(src, data) {
                        PingOutcome::Ignored => continue,
                        PingOutcome::Same => break,
                        PingOutcome::Learned(a) => {
                            learned = Some((i, a));
                            break;
                        }
                    }
                }
                if let Some((i, a)) = learned {
                    let f = &mut self.flows[i];
                    self.local.pings[f.kind.index()] += 1;
                    log::info!(
                        "session {}: {} destination {a} learned from its ping",
                        f.session,
                        f.kind.name()
                    );
                    f.dest = Some(a);
                    f.shared.ready[f.kind.index()].store(true, Ordering::Release);
                    self.reroute(i, now);
                }
            }
        }
    }

    /// Route flow `i`'s destination again and report a change of transport.
    fn reroute(&mut self, i: usize, now: u64) {
        let Some(dest) = self.flows[i].dest else {
            return;
        };
        let port = self.flows[i].port;
        let Routed {
            path,
            detail,
            neighbour_pending,
        } = self.paths.route(dest, port);
        if path == Path::Xdp {
            self.paths.start_verification(now);
        }
        let f = &mut self.flows[i];
        f.neighbour_retry_until = match (neighbour_pending, f.neighbour_retry_until) {
            (false, _) => None,
            (true, Some(t)) => Some(t),
            (true, None) => Some(now + super::paths::NEIGH_WAIT_NS),
        };
        let changed = f.path != path || f.route_detail != detail;
        f.path = path;
        f.route_detail = detail;
        if changed {
            self.report_transport(self.flows[i].session);
        }
    }

    fn retry_neighbours(&mut self, now: u64) {
        for i in 0..self.flows.len() {
            let Some(until) = self.flows[i].neighbour_retry_until else {
                continue;
            };
            if now >= until {
                let f = &mut self.flows[i];
                f.neighbour_retry_until = None;
                log::warn!(
                    "session {}: {}: next hop of {:?} still unresolved; staying on the kernel socket",
                    f.session,
                    f.kind.name(),
                    f.dest
                );
                continue;
            }
            self.reroute(i, now);
        }
    }

    fn check_timeouts(&mut self, now: u64) {
        for f in &self.flows {
            if f.dest.is_none() && now >= f.ping_deadline_ns && !f.shared.stopped() {
                f.shared.fail(
                    format!(
                        "no {} ping from the client within {:?}",
                        f.kind.name(),
                        f.ping_timeout
                    ),
                    StopReason::ClientTimeout,
                );
            }
        }
    }

    /// One `TransportChosen` for the session: its video transport, both streams' paths.
    fn report_transport(&self, session: u64) {
        let mine = || self.flows.iter().filter(move |f| f.session == session);
        let Some(lead) = mine()
            .find(|f| f.kind == StreamKind::Video)
            .or_else(|| mine().next())
        else {
            return;
        };
        let Some(transport) = self.paths.kind(lead.path) else {
            return;
        };
        let detail = mine()
            .filter_map(|f| {
                let k = self.paths.kind(f.path)?;
                let dest = f.dest?;
                let via = if f.route_detail.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", f.route_detail)
                };
                Some(format!(
                    "{} → {dest}: {k} from port {}{via}",
                    f.kind.name(),
                    f.port
                ))
            })
            .collect::<Vec<_>>()
            .join("; ");
        log::info!("session {session}: media transport {transport}: {detail}");
        let _ = self.events.send(TileEvent::Transport {
            id: session,
            transport,
            detail,
        });
    }

    fn flush_metrics(&mut self) {
        let m = self.metrics;
        let l = std::mem::take(&mut self.local);
        for s in 0..2 {
            m.add_at(Metric::PacketsSent, s, l.packets[s]);
            m.add_at(Metric::BytesSent, s, l.bytes[s]);
            m.add_at(Metric::PingsLearned, s, l.pings[s]);
        }
        for t in 0..3 {
            m.add_at(Metric::MediaPacketsByTransport, t, l.by_transport[t]);
        }
        m.add(Metric::VideoFramesSent, l.frames_sent);
        m.add(Metric::VideoKeyframes, l.keyframes);
        m.add(Metric::VideoKnobDrops, l.knob_drops);
        m.add(Metric::FecParityLowered, l.lowered);
        m.add(Metric::FramesRefused, l.refused);
        m.add(Metric::TxTileStalls, l.stalls);
        m.add(Metric::TxTileSpinNanos, l.spin_ns);
        let mut per = [0u64; 3];
        let mut pacing = 0u64;
        for f in self.flows.iter().filter(|f| f.kind == StreamKind::Video) {
            if let Some(k) = self.paths.kind(f.path) {
                per[transport_index(k)] += 1;
            }
            pacing = pacing.max(f.pacer.effective_rate_bps());
        }
        for (t, n) in per.iter().enumerate() {
            m.set_at(Metric::SessionsByTransport, t, *n);
        }
        m.set(Metric::VideoPacingKbps, pacing / 1000);
    }
}

#[cfg(test)]
#[path = "tile_tests.rs"]
mod tests;
