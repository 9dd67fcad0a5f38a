//! `strahl-client stream HOST`: one native session, received and verified for a while.
//!
//! Contract:
//! - The media socket is bound before `hello` (its port goes in it), so nothing the host sends
//!   after `start` is refused by the kernel; it is read with `recvmmsg`, with UDP GRO when the
//!   kernel allows it (else one datagram per slot; plain `recv` where `recvmmsg` fails), on a
//!   thread of its own that owns the sans-IO [`Receiver`]. With `--xdp IFACE` the same receiver
//!   reads from AF_XDP sockets instead (`xdp_rx.rs`: set up before `hello`, refused with exit 5
//!   unless `--rx auto`, which falls back to recvmmsg with one line). The media keys are the QUIC TLS
//!   exporter's (`media_secrets`, the welcome's key context): the same host → client secret the
//!   host hands its data plane.
//! - Datagrams are stamped with the time their receive returned; a backlog read in full batches
//!   keeps the time its reading began, so this thread's own lateness never times a frame out.
//! - The async side owns the control connection: it sends the receiver's loss reports and
//!   keyframe requests (and `--reconfigure`'s request), passes `reconfigured` to the receiver,
//!   and ends the session with `stop` after `--seconds`, or when the host stops it.
//! - A progress line goes to stderr at most 4 times a second (once a second when stderr is not a
//!   terminal); the summary ([`Summary::to_json`]) goes to stdout or `--json FILE`, also when the
//!   stream failed.
//! - Exit codes follow `lib.rs` (refused 1, unreachable 3, version mismatch 4, local 5), plus
//!   [`EXIT_MEDIA`] when the session ran but no frame arrived or a frame failed verification.

use std::io::{IsTerminal, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use strahl_native::msg::{
    Hello, Message, Mode, Reconfigure, Reconfigured, Stop, StopReason, VERSION_MAJOR,
    VERSION_MINOR, codec,
};
use strahl_native::quic::client::{ClientError, open_session};
use strahl_native::store::{ClientIdentity, KnownHosts};
use strahl_net::mmsg::{DEFAULT_SOCKET_BUFFER, MMSG_BATCH, MmsgRx};
use strahl_net::{RxBatch, RxQueue};
use strahl_packetize::native::{Reassembler, ReassemblerConfig, shard_len_for_mtu};
use strahl_seal::aead::Backend;
use strahl_seal::native::{Direction, RxOpener};

use crate::recv::{Counters, Latency, Output, Receiver, RecvConfig};
use crate::summary::Summary;
use crate::xdp_rx::{RxChoice, XDP_MAX_MTU, XdpReport};
use crate::{Exit, client_exit, resolve, state_exit};

/// The session ran, but no frame arrived or a frame failed verification.
pub const EXIT_MEDIA: u8 = 6;
/// Slots of 64 KiB: a GRO message holds up to 64 KiB of datagrams.
const SLOT: usize = 65_536;
/// Full batches read in a row at one time stamp before time moves on (4096 messages).
const MAX_DRAIN_BATCHES: u32 = 64;

/// `stream`'s options (defaults in [`StreamOptions::new`]).
#[derive(Debug, Clone, PartialEq)]
pub struct StreamOptions {
    pub host: String,
    pub seconds: f64,
    pub json: Option<PathBuf>,
    /// Set of codec bits offered in `hello`.
    pub codecs: u64,
    pub bitrate_kbps: u64,
    pub mode: Mode,
    /// Path MTU: sets the largest shard offered.
    pub mtu: usize,
    /// 0: any free port.
    pub media_port: u16,
    /// How long an incomplete frame may wait for its shards before it counts as lost.
    pub frame_timeout: Duration,
    /// Ask the host for a new configuration this long into the stream (a test of epochs).
    pub reconfigure: Option<(Duration, Reconfigure)>,
    /// How the media is received (`--rx`, `--xdp`; settled by [`StreamOptions::finish`]).
    pub rx: RxChoice,
    /// SCHED_FIFO priority of the media thread (`--realtime N`; 0 = normal priority). On a
    /// loaded machine the receive thread's wake-up is most of a frame's tail latency
    /// (docs/measurements.md §media path, "Real-time media threads").
    pub realtime: u8,
    rx_arg: Option<String>,
    xdp_arg: Option<String>,
}

impl StreamOptions {
    pub fn new(host: String) -> Self {
        StreamOptions {
            host,
            seconds: 10.0,
            json: None,
            codecs: codec::H264 | codec::PASSTHROUGH,
            bitrate_kbps: 20_000,
            mode: Mode {
                width: 1280,
                height: 720,
                fps: 60,
            },
            mtu: 1500,
            media_port: 0,
            frame_timeout: strahl_packetize::native::reassembler::DEFAULT_FRAME_TIMEOUT,
            reconfigure: None,
            rx: RxChoice::Recvmmsg,
            realtime: 0,
            rx_arg: None,
            xdp_arg: None,
        }
    }

    /// Settles what depends on several options (after every [`StreamOptions::set`]).
    pub fn finish(&mut self) -> Result<(), String> {
        self.rx = RxChoice::from_args(self.rx_arg.as_deref(), self.xdp_arg.as_deref())?;
        if self.rx.iface().is_some() && self.mtu > XDP_MAX_MTU {
            return Err(format!(
                "--mtu {} is more than AF_XDP receive takes ({XDP_MAX_MTU}: 2048 B UMEM frames)",
                self.mtu
            ));
        }
        Ok(())
    }

    /// Applies one `--option VALUE`; `Ok(false)` when the option is not `stream`'s.
    pub fn set(&mut self, opt: &str, value: &str) -> Result<bool, String> {
        let num = |what: &str| -> Result<u64, String> {
            value
                .parse::<u64>()
                .map_err(|_| format!("{what} needs a whole number, not {value:?}"))
        };
        match opt {
            "--seconds" => {
                self.seconds = value
                    .parse::<f64>()
                    .ok()
                    .filter(|s| s.is_finite() && *s > 0.0 && *s <= 86_400.0)
                    .ok_or_else(|| format!("--seconds needs 0 < N ≤ 86400, not {value:?}"))?;
            }
            "--json" => self.json = Some(PathBuf::from(value)),
            "--codec" => {
                self.codecs = match value {
                    "passthrough" => codec::PASSTHROUGH,
                    "h264" => codec::H264,
                    "any" => codec::H264 | codec::PASSTHROUGH,
                    _ => {
                        return Err(format!(
                            "--codec is passthrough, h264 or any, not {value:?}"
                        ));
                    }
                }
            }
            "--bitrate" => {
                self.bitrate_kbps = num("--bitrate")?;
                if !(1..=100_000_000).contains(&self.bitrate_kbps) {
                    return Err("--bitrate is 1..=100000000 kbit/s".into());
                }
            }
            "--mode" => self.mode = parse_mode(value)?,
            "--mtu" => {
                self.mtu = num("--mtu")? as usize;
                if !(576..=65_535).contains(&self.mtu) {
                    return Err("--mtu is 576..=65535".into());
                }
            }
            "--frame-timeout" => {
                let ms = num("--frame-timeout")?;
                if !(1..=10_000).contains(&ms) {
                    return Err("--frame-timeout is 1..=10000 ms".into());
                }
                self.frame_timeout = Duration::from_millis(ms);
            }
            "--reconfigure" => self.reconfigure = Some(parse_reconfigure(value)?),
            "--realtime" => {
                self.realtime = u8::try_from(num("--realtime")?)
                    .ok()
                    .filter(|p| *p <= 99)
                    .ok_or_else(|| "--realtime is 0..=99 (0: normal priority)".to_string())?;
            }
            "--rx" => self.rx_arg = Some(value.to_owned()),
            "--xdp" => self.xdp_arg = Some(value.to_owned()),
            "--media-port" => {
                self.media_port = u16::try_from(num("--media-port")?)
                    .map_err(|_| "--media-port is 0..=65535".to_string())?;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// `SECONDS,BITRATE_KBPS,FEC_PERCENT[,WxH@FPS]`, any but the first may be empty (unchanged),
/// e.g. `2,200000,30`, `1.5,,35` or `2,,,640x360@30` (a mode change).
fn parse_reconfigure(s: &str) -> Result<(Duration, Reconfigure), String> {
    let bad = || {
        format!(
            "--reconfigure is SECONDS,BITRATE_KBPS,FEC_PERCENT[,WxH@FPS] (e.g. 2,,30), not {s:?}"
        )
    };
    let parts: Vec<&str> = s.split(',').collect();
    let (at, bitrate, fec, mode) = match parts.as_slice() {
        [at, bitrate, fec] => (at, bitrate, fec, None),
        [at, bitrate, fec, mode] => (at, bitrate, fec, Some(*mode).filter(|m| !m.is_empty())),
        _ => return Err(bad()),
    };
    let at = at
        .parse::<f64>()
        .ok()
        .filter(|t| t.is_finite() && *t >= 0.0 && *t <= 86_400.0)
        .ok_or_else(bad)?;
    let opt = |x: &str, max: u64| -> Result<Option<u64>, String> {
        if x.is_empty() {
            return Ok(None);
        }
        x.parse::<u64>()
            .ok()
            .filter(|v| *v <= max)
            .map(Some)
            .ok_or_else(bad)
    };
    let r = Reconfigure {
        bitrate_kbps: opt(bitrate, 100_000_000)?.filter(|b| *b > 0),
        fec_percent: opt(fec, 100)?.map(|f| f as u8),
        mode: mode.map(parse_mode).transpose()?,
    };
    if r.bitrate_kbps.is_none() && r.fec_percent.is_none() && r.mode.is_none() {
        return Err(bad());
    }
    Ok((Duration::from_secs_f64(at), r))
}

/// `WxH@FPS`, e.g. `1280x720@120`.
fn parse_mode(s: &str) -> Result<Mode, String> {
    let bad = || format!("--mode is WxH@FPS (e.g. 1280x720@60), not {s:?}");
    let (wh, fps) = s.split_once('@').ok_or_else(bad)?;
    let (w, h) = wh.split_once('x').ok_or_else(bad)?;
    let n = |x: &str, max: u32| {
        x.parse::<u32>()
            .ok()
            .filter(|v| (1..=max).contains(v))
            .ok_or_else(bad)
    };
    Ok(Mode {
        width: n(w, 16384)?,
        height: n(h, 16384)?,
        fps: n(fps, 1000)?,
    })
}

/// From the control side to the media thread.
enum ToMedia {
    Reconfigured(Reconfigured),
    Stop,
}

/// What the media thread hands back when it ends.
struct MediaEnd {
    counters: Counters,
    latency: Option<Latency>,
    capture_latency: Option<Latency>,
    in_flight: usize,
    first_failure: Option<String>,
    loss_events: Vec<String>,
    frame_sizes: Vec<(u32, usize)>,
    first_datagram: Option<Instant>,
    ended: Instant,
    error: Option<String>,
    /// The receive path at the end (`af_xdp`, `recvmmsg`, or `recv` after a fallback).
    rx: &'static str,
    xdp: Option<XdpReport>,
}

/// The live progress line (see the module contract).
struct Progress {
    tty: bool,
    every: Duration,
    start: Instant,
    last: Instant,
    last_bytes: u64,
    printed: bool,
}

impl Progress {
    fn new(now: Instant) -> Self {
        let tty = std::io::stderr().is_terminal();
        Progress {
            tty,
            every: if tty {
                Duration::from_millis(250)
            } else {
                Duration::from_secs(1)
            },
            start: now,
            last: now,
            last_bytes: 0,
            printed: false,
        }
    }

    fn tick(&mut self, now: Instant, c: &Counters) {
        let dt = now.duration_since(self.last);
        if dt < self.every {
            return;
        }
        let rate = (c.bytes - self.last_bytes) as f64 * 8.0 / dt.as_secs_f64() / 1e6;
        let line = format!(
            "{:7.1} s {:9.1} Mbit/s  frames {}  recovered {}  lost {}{}",
            now.duration_since(self.start).as_secs_f64(),
            rate,
            c.frames,
            c.recovered,
            c.lost,
            if c.verify_failures > 0 {
                format!("  VERIFY FAILED {}", c.verify_failures)
            } else {
                String::new()
            }
        );
        let mut err = std::io::stderr().lock();
        // A progress line that cannot be written is not worth stopping the stream for.
        let _ = if self.tty {
            write!(err, "\r{line}\x1b[K")
        } else {
            writeln!(err, "{line}")
        };
        self.printed = true;
        self.last = now;
        self.last_bytes = c.bytes;
    }

    fn finish(&self) {
        if self.tty && self.printed {
            eprintln!();
        }
    }
}

/// How the media thread reads: `recvmmsg` (with GRO when the kernel allows it), or one
/// `recv` a call where `recvmmsg` itself fails (a sandbox without it).
enum RxPath {
    Mmsg(Box<MmsgRx>, RxBatch),
    Plain(UdpSocket, Vec<u8>),
    /// AF_XDP (`--xdp`); the kernel socket stays bound on the media port (see `xdp_rx.rs`).
    #[cfg(feature = "xdp")]
    Xdp {
        rx: Box<crate::xdp_rx::XdpMedia>,
        batch: RxBatch,
        _port: UdpSocket,
    },
}

impl RxPath {
    /// Waits at most `wait`, then hands every datagram received to `each`.
    fn recv(&mut self, wait: Duration, mut each: impl FnMut(&mut [u8])) -> Result<usize, String> {
        match self {
            RxPath::Mmsg(rx, batch) => {
                let n = rx.recv(batch, wait).map_err(|e| e.to_string())?;
                for i in 0..n {
                    batch.datagrams_mut(i).for_each(&mut each);
                }
                Ok(n)
            }
            RxPath::Plain(sock, buf) => {
                sock.set_read_timeout(Some(wait))
                    .map_err(|e| e.to_string())?;
                match sock.recv(buf) {
                    Ok(n) => {
                        each(&mut buf[..n]);
                        Ok(1)
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) =>
                    {
                        Ok(0)
                    }
                    Err(e) => Err(e.to_string()),
                }
            }
            #[cfg(feature = "xdp")]
            RxPath::Xdp { rx, batch, .. } => {
                rx.recv(batch, wait, &mut each).map_err(|e| e.to_string())
            }
        }
    }

    /// The summary's name for this path.
    fn name(&self) -> &'static str {
        match self {
            RxPath::Mmsg(..) => "recvmmsg",
            RxPath::Plain(..) => "recv",
            #[cfg(feature = "xdp")]
            RxPath::Xdp { .. } => "af_xdp",
        }
    }

    fn xdp_report(&self) -> Option<XdpReport> {
        match self {
            #[cfg(feature = "xdp")]
            RxPath::Xdp { rx, .. } => Some(rx.report()),
            _ => None,
        }
    }

    /// Messages one receive can return (the plain path is never "full": it polls after each).
    fn batch(&self) -> usize {
        match self {
            RxPath::Mmsg(_, batch) => batch.capacity().min(MMSG_BATCH),
            RxPath::Plain(..) => usize::MAX,
            #[cfg(feature = "xdp")]
            RxPath::Xdp { rx, .. } => rx.capacity(),
        }
    }

    /// The plain path over the same socket, GRO off (plain `recv` cannot split what it
    /// coalesces); `None` when even that cannot be set up.
    fn plain(&self) -> Option<RxPath> {
        let RxPath::Mmsg(rx, _) = self else {
            return None;
        };
        let sock = rx.socket().try_clone().ok()?;
        strahl_net::sys::set_udp_gro(&sock, false).ok()?;
        Some(RxPath::Plain(sock, vec![0; SLOT]))
    }
}

/// The media thread: receive, feed the core, send what it says to the control side.
fn media_loop(
    mut path: RxPath,
    mut core: Receiver,
    start: Instant,
    to_media: std_mpsc::Receiver<ToMedia>,
    outputs: tokio::sync::mpsc::UnboundedSender<Output>,
) -> MediaEnd {
    let mut out = Vec::new();
    let mut progress = Progress::new(start);
    let mut first_datagram = None;
    let mut error = None;
    // While reading a backlog: the time its reading began, and how many full batches so far.
    let mut drain_since: Option<Duration> = None;
    let mut drained = 0;
    let mut capture_latency_us: Vec<u32> = Vec::new();
    'run: loop {
        loop {
            match to_media.try_recv() {
                Ok(ToMedia::Reconfigured(r)) => core.on_reconfigured(&r),
                Ok(ToMedia::Stop) | Err(std_mpsc::TryRecvError::Disconnected) => break 'run,
                Err(std_mpsc::TryRecvError::Empty) => break,
            }
        }
        // Wake for the core's next deadline, and often enough to see a stop; while draining a
        // backlog, do not wait at all.
        let wait = if drain_since.is_some() {
            Duration::ZERO
        } else {
            core.next_deadline()
                .saturating_sub(start.elapsed())
                .clamp(Duration::from_millis(1), Duration::from_millis(20))
        };
        // Datagrams are stamped with the time the receive returned (one batch, one time), and
        // a backlog read in full batches with the time its reading began: the core's timers
        // must not judge a frame incomplete while the rest of it still waits in the socket —
        // this thread's own lateness (descheduled on a busy machine) is not the network's.
        // Bounded, so time moves on under a flood.
        let mut stamp = drain_since;
        let got = path.recv(wait, |d| {
            let t = *stamp.get_or_insert_with(|| start.elapsed());
            core.on_datagram(d, t);
        });
        let full = matches!(got, Ok(n) if n >= path.batch());
        match got {
            Ok(n) if n > 0 && first_datagram.is_none() => first_datagram = Some(Instant::now()),
            Ok(_) => {}
            Err(e) => match path.plain() {
                Some(plain) => {
                    eprintln!(
                        "strahl-client: recvmmsg failed ({e}): receiving one datagram a call"
                    );
                    path = plain;
                }
                None => {
                    error = Some(format!("media socket: {e}"));
                    break;
                }
            },
        }
        let t = stamp.unwrap_or_else(|| start.elapsed());
        core.poll(t, &mut out);
        // Capture → reassembled: the host's pts is its capture time on CLOCK_MONOTONIC (the
        // data plane's media clock); read here, after the frame was rebuilt and verified, so
        // FEC decode and this thread's lateness count. Meaningful only on the host's machine.
        let now_us = mono_us();
        core.drain_delivered_pts(|pts| {
            if capture_latency_us.len() < crate::recv::MAX_LATENCY_SAMPLES {
                let us = now_us.saturating_sub(pts);
                capture_latency_us.push(u32::try_from(us).unwrap_or(u32::MAX));
            }
        });
        if full && drained < MAX_DRAIN_BATCHES {
            drain_since = Some(t);
            drained += 1;
        } else {
            drain_since = None;
            drained = 0;
        }
        for o in out.drain(..) {
            if outputs.send(o).is_err() {
                break 'run; // the control side is gone
            }
        }
        progress.tick(Instant::now(), core.counters());
    }
    progress.finish();
    MediaEnd {
        counters: core.counters().clone(),
        latency: core.latency(),
        capture_latency: Latency::of(&capture_latency_us),
        in_flight: core.frames_in_flight(),
        first_failure: core.first_failure().map(str::to_owned),
        loss_events: core.loss_events().to_vec(),
        frame_sizes: core.frame_sizes().to_vec(),
        first_datagram,
        ended: Instant::now(),
        error,
        rx: path.name(),
        xdp: path.xdp_report(),
    }
}

/// The host-shared CLOCK_MONOTONIC now, µs (network namespaces do not change it).
fn mono_us() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    u64::try_from(t.tv_sec).unwrap_or(0) * 1_000_000 + u64::try_from(t.tv_nsec).unwrap_or(0) / 1000
}

/// The receive path `rx` asks for over the bound media socket `sock` (AF_XDP when `xdp_queues`
/// passed the preflight; `--rx auto` falls back with one line), and whether UDP GRO is on.
#[cfg_attr(not(feature = "xdp"), allow(unused_variables))]
fn open_rx(
    rx: &RxChoice,
    xdp_queues: Option<u32>,
    sock: UdpSocket,
    port: u16,
) -> Result<(RxPath, bool), Exit> {
    #[cfg(feature = "xdp")]
    if let (Some(iface), Some(queues)) = (rx.iface(), xdp_queues) {
        use crate::xdp_rx::XdpMedia;
        match XdpMedia::open(iface, queues, port) {
            Ok(x) => {
                let path = RxPath::Xdp {
                    rx: Box::new(x),
                    batch: XdpMedia::batch(),
                    _port: sock,
                };
                return Ok((path, false));
            }
            Err(e) if matches!(rx, RxChoice::Auto(_)) => {
                eprintln!("strahl-client: {e}: receiving with recvmmsg (--rx auto)");
            }
            Err(e) => {
                return Err(Exit {
                    code: 5,
                    message: e.to_string(),
                });
            }
        }
    }
    let mut mmsg = MmsgRx::new(sock, MMSG_BATCH, DEFAULT_SOCKET_BUFFER).map_err(|e| Exit {
        code: 5,
        message: format!("media socket: {e}"),
    })?;
    // Without GRO (an old kernel) every datagram takes a slot of its own: slower, same result.
    let gro = mmsg.enable_gro().is_ok();
    Ok((
        RxPath::Mmsg(Box::new(mmsg), RxBatch::new(MMSG_BATCH, SLOT)),
        gro,
    ))
}

/// How the control side saw the session end.
enum End {
    Time,
    HostStopped(StopReason),
    Lost(ClientError),
    MediaFailed,
}

/// Runs `stream`; returns what to print (the summary, or nothing when it went to a file).
pub async fn run(dir: PathBuf, o: StreamOptions) -> Result<String, Exit> {
    // AF_XDP's local checks come first: a refusal names what is missing before any packet.
    let xdp_queues = match o.rx.iface().map(crate::xdp_rx::preflight) {
        None => None,
        Some(Ok(q)) => Some(q),
        Some(Err(e)) if matches!(o.rx, RxChoice::Auto(_)) => {
            eprintln!("strahl-client: {e}: receiving with recvmmsg (--rx auto)");
            None
        }
        Some(Err(e)) => {
            return Err(Exit {
                code: 5,
                message: e.to_string(),
            });
        }
    };
    let addr = resolve(&o.host).await?;
    let id = ClientIdentity::load_or_create(&dir).map_err(state_exit)?;
    let known = KnownHosts::load(&dir).map_err(state_exit)?;
    let host_fp = known.get(&o.host).ok_or_else(|| Exit {
        code: 1,
        message: format!(
            "not paired with {}: run `strahl-client pair {} PIN`",
            o.host, o.host
        ),
    })?;
    let local = |what: &str, e: &dyn std::fmt::Display| Exit {
        code: 5,
        message: format!("{what}: {e}"),
    };
    let any: IpAddr = if addr.is_ipv6() {
        Ipv6Addr::UNSPECIFIED.into()
    } else {
        Ipv4Addr::UNSPECIFIED.into()
    };
    let sock = UdpSocket::bind(SocketAddr::new(any, o.media_port))
        .map_err(|e| local(&format!("media port {}", o.media_port), &e))?;
    let media_port = sock
        .local_addr()
        .map_err(|e| local("media socket", &e))?
        .port();
    let (path, gro) = open_rx(&o.rx, xdp_queues, sock, media_port)?;
    let shard = shard_len_for_mtu(o.mtu, addr.is_ipv6()).clamp(64, 65_534) & !1;
    let hello = Hello {
        version_major: VERSION_MAJOR,
        version_minor: VERSION_MINOR,
        mode: o.mode,
        codecs: o.codecs,
        bitrate_kbps: o.bitrate_kbps,
        max_shard_payload: shard as u16,
        media_port,
        capabilities: 0,
    };
    let mut s = open_session(addr, &id, host_fp, &hello)
        .await
        .map_err(client_exit)?;
    let w = s.welcome.clone();
    let opener = RxOpener::new(&s.h2c, Direction::HostToClient, Backend::DEFAULT);
    let cfg = ReassemblerConfig {
        frame_timeout: o.frame_timeout,
        ..ReassemblerConfig::default()
    };
    let reasm = Reassembler::new(cfg, opener).map_err(|e| local("reassembler", &e.0))?;
    let start = Instant::now();
    let core = Receiver::new(RecvConfig::new(w.codec, w.epoch), reasm, Duration::ZERO);
    let (to_media, media_rx) = std_mpsc::channel();
    let (out_tx, mut out_rx) = tokio::sync::mpsc::unbounded_channel();
    let realtime = o.realtime;
    let media = std::thread::Builder::new()
        .name("strahl-client media".into())
        .spawn(move || {
            if realtime > 0
                && let Err(e) = strahl_net::sys::set_realtime_current(realtime)
            {
                // The stream goes on; only its tail latency under load differs.
                eprintln!(
                    "strahl-client: --realtime {realtime}: SCHED_FIFO refused ({e}); receiving \
                     at normal priority (needs CAP_SYS_NICE or `ulimit -r {realtime}`)"
                );
            }
            media_loop(path, core, start, media_rx, out_tx)
        })
        .map_err(|e| local("media thread", &e))?;

    let deadline = tokio::time::sleep(Duration::from_secs_f64(o.seconds));
    tokio::pin!(deadline);
    let mut reconfigure = o.reconfigure.clone();
    let reconfigure_at = tokio::time::sleep(reconfigure.as_ref().map_or(Duration::ZERO, |r| r.0));
    tokio::pin!(reconfigure_at);
    let mut reconfigured = Vec::new();
    enum Ev {
        Time,
        Reconfigure,
        Out(Option<Output>),
        Ctl(Result<Message, ClientError>),
    }
    let end = loop {
        // `next` bounds its wait (the client's answer timeout); the receiver's loss reports,
        // every 250 ms, end each wait long before, and a new one starts here. Cancelling it is
        // safe: a partly read message stays in the control stream's reader.
        let ev = tokio::select! {
            _ = &mut deadline => Ev::Time,
            _ = &mut reconfigure_at, if reconfigure.is_some() => Ev::Reconfigure,
            x = out_rx.recv() => Ev::Out(x),
            m = s.control.next() => Ev::Ctl(m),
        };
        let sent = match ev {
            Ev::Time => break End::Time,
            Ev::Reconfigure => match reconfigure.take() {
                Some((_, r)) => s.control.send(&Message::Reconfigure(r)).await,
                None => Ok(()),
            },
            Ev::Out(None) => break End::MediaFailed,
            Ev::Out(Some(Output::Loss(r))) => s.control.send(&Message::LossReport(r)).await,
            Ev::Out(Some(Output::Keyframe(k))) => {
                s.control.send(&Message::KeyframeRequest(k)).await
            }
            Ev::Ctl(Ok(Message::Reconfigured(r))) => {
                reconfigured.push(r.clone());
                // The media thread ends only after this loop: the send cannot fail.
                let _ = to_media.send(ToMedia::Reconfigured(r));
                Ok(())
            }
            Ev::Ctl(Ok(Message::Stop(st))) => break End::HostStopped(st.reason),
            // Anything else (a newer host's messages included) does not concern a receiver.
            Ev::Ctl(Ok(_)) => Ok(()),
            Ev::Ctl(Err(e)) => break End::Lost(e),
        };
        if let Err(e) = sent {
            break End::Lost(e);
        }
    };
    // The thread sees the stop within its 20 ms receive wait.
    let _ = to_media.send(ToMedia::Stop);
    let m = media
        .join()
        .map_err(|_| local("media thread", &"panicked"))?;
    if matches!(end, End::Time) {
        let _ = s
            .control
            .send(&Message::Stop(Stop {
                reason: StopReason::ClientQuit,
            }))
            .await;
    }
    s.control.close().await;

    let seconds = m
        .first_datagram
        .map_or(0.0, |t| m.ended.duration_since(t).as_secs_f64());
    let end_text = match &end {
        End::Time => format!("{} s done", o.seconds),
        End::HostStopped(r) => format!("host stopped the session (reason {})", r.code()),
        End::Lost(e) => e.to_string(),
        End::MediaFailed => m
            .error
            .clone()
            .unwrap_or_else(|| "media thread ended".into()),
    };
    let summary = Summary {
        host: o.host.clone(),
        session_id: w.session_id,
        codec: w.codec,
        mode: w.mode,
        bitrate_kbps: w.bitrate_kbps,
        fec_percent: w.fec_percent,
        shard_len: w.shard_len,
        gro,
        rx: m.rx,
        xdp: m.xdp,
        frame_timeout_ms: u64::try_from(o.frame_timeout.as_millis()).unwrap_or(u64::MAX),
        seconds,
        counters: m.counters,
        latency: m.latency,
        capture_latency: m.capture_latency,
        in_flight_at_end: m.in_flight,
        first_failure: m.first_failure,
        loss_events: m.loss_events,
        frame_sizes: m.frame_sizes,
        reconfigured,
        end: end_text.clone(),
    };
    let json = summary.to_json();
    let printed = match &o.json {
        Some(path) => {
            std::fs::write(path, format!("{json}\n"))
                .map_err(|e| local(&format!("--json {}", path.display()), &e))?;
            String::new()
        }
        None => json,
    };
    let c = &summary.counters;
    let fail = |code: u8, message: String| {
        // The summary is the record of the run: print it even though the run failed.
        if !printed.is_empty() {
            println!("{printed}");
        }
        Err(Exit { code, message })
    };
    match end {
        End::Lost(e) => return fail(client_exit(e).code, format!("stream ended: {end_text}")),
        End::HostStopped(StopReason::Unpaired) => {
            return fail(1, format!("{end_text}: this client was unpaired"));
        }
        End::MediaFailed => return fail(EXIT_MEDIA, end_text),
        End::Time | End::HostStopped(_) => {}
    }
    if c.frames == 0 {
        return fail(
            EXIT_MEDIA,
            format!(
                "no frame arrived in {} s ({} datagrams, {} with a bad tag)",
                o.seconds, c.datagrams, c.bad_tag
            ),
        );
    }
    if c.verify_failures > 0 {
        return fail(
            EXIT_MEDIA,
            format!(
                "{} of {} frames failed verification; first: {}",
                c.verify_failures,
                c.frames,
                summary.first_failure.as_deref().unwrap_or("?")
            ),
        );
    }
    Ok(printed)
}

#[cfg(test)]
#[path = "stream_tests.rs"]
mod tests;
