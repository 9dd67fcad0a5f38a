//! `strahl-dataplane`: the privileged-at-start, no-async data plane process.
//!
//! Start-up: parse arguments → load the config (embedded default without `--config`) → derive
//! the plan → privileged set-up (AF_XDP bound and io_uring checked, nothing sent; then capabilities dropped) → register SIGTERM/SIGINT on a self-pipe → bind
//! the IPC socket → serve the control plane until a signal or a Shutdown message.
//! Exit codes: 0 clean stop, 1 runtime failure, 2 bad arguments or configuration.
#![forbid(unsafe_code)]

use std::os::unix::net::UnixStream;
use std::process::ExitCode;
use std::time::Instant;

use strahl_config::{Config, Env, Plan, resolve_socket};
use strahl_dataplane::cli::{self, Cli};
use strahl_dataplane::media;
use strahl_dataplane::run::{self, Exit};
use strahl_dataplane::server::Server;
use strahl_dataplane::transport;
use strahl_ipc::socket::SeqPacketListener;
use strahl_metrics::GLOBAL;
use strahl_net::TransportKind;

const VERSION: &str = env!("CARGO_PKG_VERSION");

fn main() -> ExitCode {
    let args = match cli::parse(std::env::args().skip(1)) {
        Ok(Cli::Run(a)) => a,
        Ok(Cli::Selftest(t)) => {
            return match strahl_dataplane::selftest::run(&t, &mut std::io::stdout()) {
                Ok(_) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("strahl-dataplane selftest: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        Ok(Cli::Help) => {
            print!("{}", cli::USAGE);
            return ExitCode::SUCCESS;
        }
        Ok(Cli::Version) => {
            println!(
                "strahl-dataplane {VERSION} (ipc v{}.{})",
                strahl_ipc::MAJOR,
                strahl_ipc::MINOR
            );
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("strahl-dataplane: {e}");
            return ExitCode::from(2);
        }
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let started = Instant::now();

    let cfg = match Config::load_or_default(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            log::error!("configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    let (online, isolated) = cpu_topology();
    let plan = match Plan::derive_isolated(&cfg, online, &isolated) {
        Ok(p) => p,
        Err(e) => {
            log::error!("configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    log::info!(
        "strahl-dataplane {VERSION} (ipc v{}.{}, pid {}) config {}",
        strahl_ipc::MAJOR,
        strahl_ipc::MINOR,
        std::process::id(),
        args.config.as_ref().map_or_else(
            || strahl_config::DEFAULT_NAME.to_owned(),
            |p| p.display().to_string()
        )
    );
    log::info!(
        "plan: {} online CPUs (kernel-isolated: {:?}), placement {:?}{}, shard payload {} B, rings {:?}, transport preference {:?}",
        online,
        isolated,
        plan.placement,
        if plan.shared {
            " (tiles share cores)"
        } else {
            ""
        },
        plan.shard_payload,
        plan.rings,
        plan.transport
    );
    // Sources and the encoder are decided before anything is bound: `[video] encoder = "nvenc"`
    // without a usable NVENC fails here, with why.
    let mut settings = match media::MediaSettings::from_config(&cfg) {
        Ok(s) => s,
        Err(e) => {
            log::error!("media plane: {e}");
            return ExitCode::from(1);
        }
    };
    // Privileged start-up: bind AF_XDP and check io_uring now (nothing is sent).
    let iface = args
        .interface
        .clone()
        .unwrap_or_else(|| cfg.dataplane.interface.clone());
    let route = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    let target = transport::plan_target(&iface, &route);
    let prepared = transport::prepare(
        plan.transport,
        &target,
        cfg.dataplane.mtu,
        plan.rings.umem_frames,
        &GLOBAL,
    );
    // The one line naming the transport and why the others were refused.
    let required = transport::required(plan.transport);
    let missing = match required {
        Some(TransportKind::AfXdp) => prepared.xdp.is_none(),
        Some(k) => prepared.kernel != Some(k),
        None => prepared.chosen.is_none(),
    };
    if !missing {
        log::info!("{}", prepared.summary);
    } else if required.is_none() {
        log::warn!("{}; media cannot be sent", prepared.summary);
    } else {
        log::error!(
            "{} (transport = {:?} was asked for; not falling back)",
            prepared.summary,
            plan.transport
        );
        return ExitCode::from(1);
    }
    let xdp = match prepared.xdp {
        Some(q) => {
            let ifindex = match strahl_net::netlink::ifindex(&target.ifname) {
                Ok(i) => i,
                Err(e) => {
                    log::error!("interface {}: {e}", target.ifname);
                    return ExitCode::from(1);
                }
            };
            Some(media::paths::XdpPath {
                q,
                ifindex,
                ifname: target.ifname.clone(),
                mode: prepared.xdp_detail.clone(),
                state: media::paths::XdpState::Unverified,
                held: 0,
            })
        }
        None => None,
    };
    let transports = media::Transports {
        xdp,
        kernel: prepared.kernel.unwrap_or(TransportKind::SendMmsg),
        core: plan
            .placement
            .iter()
            .find(|(t, _)| *t == strahl_config::Tile::Tx)
            .filter(|_| plan.tx_dedicated)
            .map(|(_, c)| usize::from(*c)),
        // Encoders stay off the tx core only when that still leaves them two cores: on a 2-core
        // machine a software encoder needs both, so there the pinned tile shares its core.
        worker_cores: match plan.worker_cores() {
            w if plan.tx_dedicated && w.len() >= 2 => w.into_iter().map(usize::from).collect(),
            _ => Vec::new(),
        },
        link_rate_bps: transport::link_rate_bps(&target.ifname).unwrap_or(media::DEFAULT_LINK_BPS),
    };
    // Real-time priority for the media threads, made usable before capabilities go.
    let (rt_priority, rt_why) =
        media::realtime::decide(cfg.dataplane.realtime_priority, plan.tx_dedicated);
    let rt = media::realtime::prepare(rt_priority, rt_why);
    log::info!("{}", rt.line);
    settings.realtime_priority = rt.priority;
    let keep: &[strahl_runtime::privs::Capability] = if rt.keep_sys_nice {
        &[strahl_runtime::privs::Capability::CAP_SYS_NICE]
    } else {
        &[]
    };
    // Sockets are open: capabilities are no longer needed.
    match strahl_runtime::privs::drop_capabilities(keep) {
        Ok(line) => log::info!("{line}"),
        Err(e) => log::warn!("privileges: could not drop capabilities: {e}"),
    }

    let (sig_read, sig_write) = match UnixStream::pair() {
        Ok(p) => p,
        Err(e) => {
            log::error!("cannot create the signal pipe: {e}");
            return ExitCode::from(1);
        }
    };
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        let registered = sig_write
            .try_clone()
            .and_then(|w| signal_hook::low_level::pipe::register(sig, w));
        if let Err(e) = registered {
            log::error!("cannot register signal {sig}: {e}");
            return ExitCode::from(1);
        }
    }

    let socket = match args.socket {
        Some(p) => strahl_config::ResolvedPath {
            path: p,
            why: "--socket",
        },
        None => resolve_socket(&cfg.dataplane.socket, &Env::from_process()),
    };
    if let Err(e) = prepare_shared_tmp_dir(&socket) {
        log::error!("unsafe socket directory for {}: {e}", socket.path.display());
        return ExitCode::from(1);
    }
    let listener = match SeqPacketListener::bind(&socket.path) {
        Ok(l) => l,
        Err(e) => {
            log::error!("cannot listen on {}: {e}", socket.path.display());
            return ExitCode::from(1);
        }
    };
    log::info!(
        "listening for the control plane on {} ({}, mode 0660)",
        socket.path.display(),
        socket.why
    );

    let mut server = Server::new(
        &GLOBAL,
        std::process::id(),
        format!("strahl-dataplane {VERSION}"),
    );
    let link_bps = transports.link_rate_bps;
    let media = match media::Media::new(settings, transports, &GLOBAL) {
        Ok(m) => m,
        Err(e) => {
            log::error!("media plane: {e}");
            return ExitCode::from(1);
        }
    };
    let caps = media.capability();
    // The one line naming what was chosen for capture, encode and audio, and why (input is
    // the control plane's: its "input sink" line). The same goes to the status page.
    let detected = media.settings().detected(caps);
    log::info!(
        "media: {}; every session through the tx tile (link cap {} Mbit/s){}",
        media::describe_detected(&detected),
        link_bps / 1_000_000,
        if media.settings().drop_fraction > 0.0 {
            format!(
                "; TEST KNOB: dropping {} of video packets (seed {})",
                media.settings().drop_fraction,
                media.settings().drop_seed
            )
        } else {
            String::new()
        }
    );
    if caps.formats.is_empty() {
        log::error!("video: {} — every stream will be refused", caps.describe());
    } else {
        log::info!("video: encoder {}", caps.describe());
    }
    server.set_detected(detected);
    server.set_video_caps(media::video::ipc_caps(caps));
    server.set_media(Box::new(media));
    server.set_transport(transport::ipc_transport(prepared.chosen), prepared.summary);
    let result = run::serve(&listener, sig_read, &mut server, &GLOBAL, started);
    drop(listener); // removes the socket file
    match result {
        Ok(Exit::Signal) | Ok(Exit::ShutdownMessage) => {
            log::info!("data plane stopped cleanly");
            ExitCode::SUCCESS
        }
        Err(e) => {
            log::error!("event loop failed: {e}");
            ExitCode::from(1)
        }
    }
}

/// For the `/tmp` fallback the socket directory sits in a world-writable parent: create it
/// private (0700) if missing and refuse one that another user owns or can write.
fn prepare_shared_tmp_dir(socket: &strahl_config::ResolvedPath) -> std::io::Result<()> {
    if socket.why != strahl_config::paths_why::TMP_FALLBACK {
        return Ok(());
    }
    let Some(dir) = socket.path.parent() else {
        return Ok(());
    };
    if !dir.exists() {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new().mode(0o700).create(dir)?;
    }
    strahl_ipc::socket::check_private_dir(dir)
}

/// Online CPUs and the kernel's isolated ones (`isolcpus=`), from sysfs. Not
/// `available_parallelism`: it counts this process's affinity mask, which the kernel already
/// stripped of the isolated CPUs — the very core the tx tile belongs on. Falls back to the
/// affinity count with nothing isolated when sysfs cannot be read.
fn cpu_topology() -> (usize, Vec<u16>) {
    let read = |p: &str| std::fs::read_to_string(p).map(|s| strahl_config::parse_cpu_list(&s));
    let online = read("/sys/devices/system/cpu/online")
        .ok()
        .and_then(|l| l.last().map(|c| usize::from(*c) + 1));
    match online {
        Some(n) => (
            n,
            read("/sys/devices/system/cpu/isolated").unwrap_or_default(),
        ),
        None => (
            std::thread::available_parallelism().map_or(1, |n| n.get()),
            Vec::new(),
        ),
    }
}
