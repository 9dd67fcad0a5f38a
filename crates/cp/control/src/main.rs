//! `strahl-control`: the unprivileged control plane.
//!
//! Exit codes: 0 clean stop, 1 data plane unreachable or incompatible, 2 bad arguments or
//! configuration.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use strahl_config::{Config, Env, ResolvedPath, resolve_socket};
use strahl_control::cli::{self, Cli};
use strahl_control::serve::{self, Options};
use tokio::signal::unix::{SignalKind, signal};

const VERSION: &str = env!("CARGO_PKG_VERSION");

fn main() -> ExitCode {
    let args = match cli::parse(std::env::args().skip(1)) {
        Ok(Cli::Serve(a)) => a,
        Ok(Cli::Help) => {
            print!("{}", cli::USAGE);
            return ExitCode::SUCCESS;
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
    let cfg = match Config::load_or_default(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            log::error!("configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    let socket = match args.socket {
        Some(p) => ResolvedPath {
            path: p,
            why: "--socket",
        },
        None => resolve_socket(&cfg.dataplane.socket, &Env::from_process()),
    };
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
    let opts = Options {
        socket: socket.path,
        stats_interval: args.stats_interval,
        connect_timeout: args.connect_timeout,
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
        serve::serve(&opts, shutdown).await.map_err(Some)
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
