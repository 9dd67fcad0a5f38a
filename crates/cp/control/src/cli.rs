//! Command line of `strahl-control`.

use std::path::PathBuf;
use std::time::Duration;

pub const USAGE: &str = "\
strahl-control — the strahl control plane

USAGE:
    strahl-control serve [--config FILE] [--socket PATH] [--stats-interval-ms N] [--connect-timeout-ms N]
    strahl-control --help | --version

serve:
    Connects to the data plane's IPC socket (retrying with back-off for at most the connect
    timeout), polls its statistics, reconnects when it goes away, and on SIGTERM/SIGINT stops
    its own sessions and exits. It never stops the data plane.

OPTIONS:
    --config FILE            configuration file (default: the compiled-in appliance/strahl.toml)
    --socket PATH            data-plane IPC socket (overrides [dataplane] socket)
    --stats-interval-ms N    statistics poll period (default 5000)
    --connect-timeout-ms N   give up (exit 1) when the data plane cannot be reached for this
                             long, at start or after losing it (default 30000)
    -h, --help               print this help
    -V, --version            print the version

Logging: RUST_LOG=debug|info|warn (default info).
";

/// Default statistics poll period.
pub const DEFAULT_STATS_INTERVAL: Duration = Duration::from_secs(5);
/// Default bound on reaching the data plane; systemd restarts us after that.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeArgs {
    pub config: Option<PathBuf>,
    pub socket: Option<PathBuf>,
    pub stats_interval: Duration,
    pub connect_timeout: Duration,
}

impl Default for ServeArgs {
    fn default() -> Self {
        Self {
            config: None,
            socket: None,
            stats_interval: DEFAULT_STATS_INTERVAL,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cli {
    Serve(ServeArgs),
    Help,
    Version,
}

pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Cli, String> {
    let mut it = args.into_iter();
    let cmd = match it.next() {
        None => return Err("missing subcommand (try `strahl-control serve` or --help)".into()),
        Some(c) => c,
    };
    match cmd.as_str() {
        "-h" | "--help" | "help" => return Ok(Cli::Help),
        "-V" | "--version" => return Ok(Cli::Version),
        "serve" => {}
        other => return Err(format!("unknown subcommand {other:?} (see --help)")),
    }
    let mut out = ServeArgs::default();
    while let Some(a) = it.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (a.clone(), None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| it.next())
                .ok_or(format!("{name} needs a value"))
        };
        let millis = |name: &str, v: String| -> Result<Duration, String> {
            match v.parse::<u64>() {
                Ok(ms) if ms > 0 => Ok(Duration::from_millis(ms)),
                _ => Err(format!(
                    "{name} needs a positive number of milliseconds, got {v:?}"
                )),
            }
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Cli::Help),
            "--config" => out.config = Some(PathBuf::from(value("--config")?)),
            "--socket" => out.socket = Some(PathBuf::from(value("--socket")?)),
            "--stats-interval-ms" => {
                out.stats_interval = millis("--stats-interval-ms", value("--stats-interval-ms")?)?
            }
            "--connect-timeout-ms" => {
                out.connect_timeout =
                    millis("--connect-timeout-ms", value("--connect-timeout-ms")?)?
            }
            other => return Err(format!("unknown argument {other:?} (see --help)")),
        }
    }
    Ok(Cli::Serve(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(a: &[&str]) -> Result<Cli, String> {
        parse(a.iter().map(|s| s.to_string()))
    }

    #[test]
    fn parses() {
        assert_eq!(p(&["serve"]), Ok(Cli::Serve(ServeArgs::default())));
        let Ok(Cli::Serve(s)) = p(&[
            "serve",
            "--socket",
            "/s",
            "--stats-interval-ms=200",
            "--connect-timeout-ms",
            "900",
        ]) else {
            panic!()
        };
        assert_eq!(s.socket, Some("/s".into()));
        assert_eq!(s.stats_interval, Duration::from_millis(200));
        assert_eq!(s.connect_timeout, Duration::from_millis(900));
        assert_eq!(p(&["--help"]), Ok(Cli::Help));
        assert_eq!(p(&["serve", "--help"]), Ok(Cli::Help));
        assert!(p(&[]).is_err());
        assert!(p(&["ipc-smoke"]).is_err());
        assert!(p(&["serve", "--stats-interval-ms", "0"]).is_err());
        assert!(p(&["serve", "--what"]).is_err());
    }
}
