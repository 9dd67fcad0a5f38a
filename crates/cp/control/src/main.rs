//! `strahl-control`: the unprivileged control plane.
//!
//! Exit codes: 0 clean stop (or PIN delivered), 1 data plane unreachable or incompatible, host
//! ports unavailable, PIN refused, 2 bad arguments or configuration.
#![forbid(unsafe_code)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use strahl_config::{
    Config, Env, ResolvedPath, resolve_socket, resolve_state_dir, systemd_runtime_dir,
};
use strahl_control::cli::{self, Cli, PinArgs, ServeArgs};
use strahl_control::commands;
use strahl_control::serve::{self, HostOptions, Options};
use strahl_control::session::ManagerConfig;
use strahl_gamestream::{App, ServerConfig};
use strahl_rtsp::VideoEncryption;
use tokio::signal::unix::{SignalKind, signal};

const VERSION: &str = env!("CARGO_PKG_VERSION");

fn main() -> ExitCode {
    let args = match cli::parse(std::env::args().skip(1)) {
        Ok(Cli::Serve(a)) => a,
        Ok(Cli::Pin(a)) => return pin(a),
        Ok(Cli::Help(text)) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        Ok(Cli::Status(a)) => return report(commands::status(&a)),
        Ok(Cli::Clients(a, action)) => return report(commands::clients(&a, &action)),
        Ok(Cli::Pair(a)) => return report(commands::pair(&a)),
        Ok(Cli::Passwd(a)) => return passwd(a),
        Ok(Cli::Token(a, rotate)) => return report(commands::token(&a, rotate)),
        Ok(Cli::Doctor(a)) => {
            return match commands::doctor(&a) {
                Ok((text, code)) => {
                    print!("{text}");
                    ExitCode::from(code)
                }
                Err(e) => report(Err(e)),
            };
        }
        Ok(Cli::Version) => {
            println!(
                "strahl-control {VERSION} (ipc v{}.{})",
                strahl_ipc::MAJOR,
                strahl_ipc::MINOR
            );
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("strahl-control: {e}");
            return ExitCode::from(2);
        }
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    run_serve(args)
}

/// Prints a command's output (stdout) or error (stderr) and maps it to the exit code.
fn report(r: Result<String, commands::CmdError>) -> ExitCode {
    match r {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("strahl-control: {}", e.msg);
            ExitCode::from(e.code)
        }
    }
}

/// `passwd`: one line from stdin (a terminal shows it; pipe it in from a password manager).
fn passwd(a: cli::ClientArgs) -> ExitCode {
    use std::io::BufRead;
    if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        eprint!("new status page password (shown as typed): ");
    }
    let mut line = String::new();
    let mut stdin = std::io::stdin().lock();
    if let Err(e) = std::io::Read::take(&mut stdin, 4096).read_line(&mut line) {
        eprintln!("strahl-control: reading the password: {e}");
        return ExitCode::from(2);
    }
    let pw = line.trim_end_matches(['\n', '\r']);
    report(commands::passwd(&a, pw))
}

fn load(config: Option<&std::path::Path>) -> Result<Config, String> {
    Config::load_or_default(config).map_err(|e| format!("configuration error: {e}"))
}

fn socket_of(cfg: &Config, arg: Option<PathBuf>) -> ResolvedPath {
    match arg {
        Some(p) => ResolvedPath {
            path: p,
            why: "--socket",
        },
        None => resolve_socket(&cfg.dataplane.socket, &Env::from_process()),
    }
}

/// `strahl-control pin PIN`: one request to the running serve's admin socket.
fn pin(a: PinArgs) -> ExitCode {
    let cfg = match load(a.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("strahl-control: {e}");
            return ExitCode::from(2);
        }
    };
    let admin = a
        .admin_socket
        .unwrap_or_else(|| strahl_control::admin::default_path(&socket_of(&cfg, a.socket).path));
    let req = strahl_control::admin::Request {
        cmd: "pin".into(),
        pin: Some(a.pin),
        client: a.client,
    };
    match strahl_control::admin::call(&admin, &req) {
        Ok(r) if r.ok => {
            println!(
                "PIN delivered to client {}; Moonlight finishes pairing now",
                r.client.unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Ok(r) => {
            eprintln!(
                "strahl-control: PIN refused: {}",
                r.error.unwrap_or_else(|| "no reason given".into())
            );
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("strahl-control: {e}");
            ExitCode::from(1)
        }
    }
}

fn run_serve(args: ServeArgs) -> ExitCode {
    let cfg = match load(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            log::error!("{e}");
            return ExitCode::from(2);
        }
    };
    let socket = socket_of(&cfg, args.socket);
    log::info!(
        "strahl-control {VERSION} (ipc v{}.{}, pid {}) data plane socket {} ({})",
        strahl_ipc::MAJOR,
        strahl_ipc::MINOR,
        std::process::id(),
        socket.path.display(),
        socket.why
    );
    if socket.why == strahl_config::paths_why::TMP_FALLBACK
        && let Some(dir) = socket.path.parent()
        && dir.exists()
        && let Err(e) = strahl_ipc::socket::check_private_dir(dir)
    {
        // The data plane creates this directory private; anything else may be an impostor
        // waiting for our session keys.
        log::error!("refusing the data plane socket in {}: {e}", dir.display());
        return ExitCode::from(1);
    }
    let state_dir = resolve_state_dir(&cfg.host.state_dir, &Env::from_process());
    log::info!(
        "state directory {} ({})",
        state_dir.path.display(),
        state_dir.why
    );
    // The console snippet (status URLs, and the setup code until a password is set) lives in
    // the unit's runtime directory, which the image links as /etc/issue.d/strahl.issue.
    let console_issue = systemd_runtime_dir(&Env::from_process())
        .map(|d| d.join(strahl_status::console::CONSOLE_ISSUE_FILE));
    match &console_issue {
        Some(p) => log::info!("console snippet {}", p.display()),
        None => log::info!("no $RUNTIME_DIRECTORY (not under systemd): no console snippet"),
    }
    let ports = cfg.network.gamestream_ports();
    // The nvhttp servers take one address each: the first configured one, else all addresses.
    let ip = match cfg.network.addresses.as_slice() {
        [] => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        [one] => *one,
        [first, ..] => {
            log::warn!("several [network] addresses: the GameStream host listens on {first} only");
            *first
        }
    };
    let mut gs = ServerConfig::new(&state_dir.path);
    gs.hostname = cfg.host.name.clone();
    gs.http_addr = SocketAddr::new(ip, ports.http);
    gs.https_addr = SocketAddr::new(ip, ports.https);
    gs.rtsp_port = ports.rtsp;
    gs.mdns = args.mdns && cfg.network.mdns;
    gs.apps = cfg
        .apps
        .iter()
        .enumerate()
        .map(|(i, a)| App {
            id: i as u32 + 1,
            title: a.name.clone(),
            hdr_supported: false,
        })
        .collect();
    let admin_socket = args
        .admin_socket
        .unwrap_or_else(|| strahl_control::admin::default_path(&socket.path));
    let opts = Options {
        socket: socket.path,
        stats_interval: args.stats_interval,
        connect_timeout: args.connect_timeout,
        host: HostOptions {
            gamestream: gs,
            rtsp_addr: SocketAddr::new(ip, ports.rtsp),
            manager: ManagerConfig {
                video_port: ports.video,
                audio_port: ports.audio,
                control_port: ports.control,
                fec_percent: cfg.video.fec_percent_default.0,
                fec_percent_min: cfg.video.fec_percent_min.0,
                fec_percent_max: cfg.video.fec_percent_max.0,
                max_bitrate_kbps: cfg.video.max_bitrate_kbps,
                max_sessions: cfg.gamestream.max_sessions.0,
                video_encryption: match cfg.gamestream.encryption {
                    strahl_config::EncryptionMode::Preferred => VideoEncryption::Preferred,
                    strahl_config::EncryptionMode::Required => VideoEncryption::Required,
                    strahl_config::EncryptionMode::Off => VideoEncryption::Off,
                },
            },
            admin_socket,
            native: strahl_control::native::NativeOptions::new(
                SocketAddr::new(ip, cfg.network.native_port.0),
                (
                    cfg.video.fec_percent_min.0,
                    cfg.video.fec_percent_default.0,
                    cfg.video.fec_percent_max.0,
                ),
                u64::from(cfg.video.max_bitrate_kbps),
                cfg.dataplane.mtu,
            ),
            status: Some(serve::StatusOptions {
                addr: SocketAddr::new(ip, cfg.network.status_port.0),
                config: strahl_status::StatusConfig {
                    open_reads: cfg.status.open_reads,
                    open_health_and_metrics: true,
                    console_issue,
                },
                facts: strahl_control::status_backend::HostFacts {
                    name: cfg.host.name.clone(),
                    version: VERSION.into(),
                    encoder: format!("{:?}", cfg.video.encoder).to_lowercase(),
                    capture: format!("{:?}", cfg.video.source).to_lowercase(),
                    state_dir: state_dir.path.clone(),
                },
            }),
            input: strahl_control::input_sink::InputOptions::from_config(
                &cfg.input,
                &state_dir.path,
            ),
        },
    };

    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            log::error!("cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = rt.block_on(async {
        // Registered before connecting so a signal during start-up is honoured.
        let (mut term, mut int) = match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
            (Ok(t), Ok(i)) => (t, i),
            (Err(e), _) | (_, Err(e)) => {
                log::error!("cannot register signal handlers: {e}");
                return Err(None);
            }
        };
        let shutdown = async move {
            tokio::select! {
                _ = term.recv() => log::info!("SIGTERM received: stopping our sessions and exiting"),
                _ = int.recv() => log::info!("SIGINT received: stopping our sessions and exiting"),
            }
        };
        serve::serve(opts, shutdown).await.map_err(Some)
    });
    match result {
        Ok(()) => {
            log::info!("control plane stopped cleanly");
            ExitCode::SUCCESS
        }
        Err(Some(e)) => {
            log::error!("{e}");
            ExitCode::from(1)
        }
        Err(None) => ExitCode::from(1),
    }
}
