//! Command line of `strahl-control`.

use std::path::PathBuf;
use std::time::Duration;

pub const USAGE: &str = "\
strahl-control — the strahl control plane

USAGE:
    strahl-control serve [--config FILE] [--socket PATH] [--admin-socket PATH] [--no-mdns]
                         [--stats-interval-ms N] [--connect-timeout-ms N]
    strahl-control pin [--config FILE] [--socket PATH] [--admin-socket PATH] [--client ID] PIN
    strahl-control --help | --version

serve:
    Runs the GameStream host: nvhttp on HTTP (base port) and HTTPS (base − 5), RTSP (base + 21)
    while a launch is pending, mDNS, and the admin socket for `pin`. Connects to the data
    plane's IPC socket (retrying with back-off for at most the connect timeout), hands it the
    sessions Moonlight starts, polls its statistics, reconnects when it goes away, and on
    SIGTERM/SIGINT stops its own sessions and exits. It never stops the data plane.

pin:
    Gives the 4-digit PIN that Moonlight shows to the running `serve`, completing pairing.
    Exit 0 when a waiting client received it, 1 when refused (no client waiting, several
    waiting without --client) or serve is unreachable, 2 for a malformed PIN.

OPTIONS:
    --config FILE            configuration file (default: the compiled-in appliance/strahl.toml)
    --socket PATH            data-plane IPC socket (overrides [dataplane] socket)
    --admin-socket PATH      admin socket (default: control.sock next to the data-plane socket)
    --no-mdns                do not advertise _nvstream._tcp over mDNS (serve)
    --client ID              pin: the uniqueid of the client to pair when several are waiting
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
    pub admin_socket: Option<PathBuf>,
    pub mdns: bool,
    pub stats_interval: Duration,
    pub connect_timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PinArgs {
    pub config: Option<PathBuf>,
    pub socket: Option<PathBuf>,
    pub admin_socket: Option<PathBuf>,
    pub client: Option<String>,
    pub pin: String,
}

impl Default for ServeArgs {
    fn default() -> Self {
        Self {
            config: None,
            socket: None,
            admin_socket: None,
            mdns: true,
            stats_interval: DEFAULT_STATS_INTERVAL,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cli {
    Serve(ServeArgs),
    Pin(PinArgs),
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
        "pin" => return parse_pin(it),
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
            "--admin-socket" => out.admin_socket = Some(PathBuf::from(value("--admin-socket")?)),
            "--no-mdns" if inline.is_none() => out.mdns = false,
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

fn parse_pin(mut it: impl Iterator<Item = String>) -> Result<Cli, String> {
    let mut out = PinArgs::default();
    let mut pin = None;
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
        match flag.as_str() {
            "-h" | "--help" => return Ok(Cli::Help),
            "--config" => out.config = Some(PathBuf::from(value("--config")?)),
            "--socket" => out.socket = Some(PathBuf::from(value("--socket")?)),
            "--admin-socket" => out.admin_socket = Some(PathBuf::from(value("--admin-socket")?)),
            "--client" => out.client = Some(value("--client")?),
            f if f.starts_with('-') && f.len() > 1 => {
                return Err(format!("unknown argument {f:?} (see --help)"));
            }
            _ if pin.is_some() => return Err("pin takes exactly one PIN".into()),
            _ => pin = Some(a),
        }
    }
    let pin = pin.ok_or("missing PIN: strahl-control pin <PIN> (the 4 digits Moonlight shows)")?;
    if !crate::admin::valid_pin(&pin) {
        return Err(format!(
            "invalid PIN {pin:?}: a PIN is exactly 4 decimal digits, as Moonlight shows it"
        ));
    }
    out.pin = pin;
    Ok(Cli::Pin(out))
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
        let Ok(Cli::Serve(s)) = p(&["serve", "--no-mdns", "--admin-socket=/a"]) else {
            panic!()
        };
        assert!(!s.mdns);
        assert_eq!(s.admin_socket, Some("/a".into()));
        let Ok(Cli::Pin(a)) = p(&["pin", "--client", "X", "0123"]) else {
            panic!()
        };
        assert_eq!((a.pin.as_str(), a.client.as_deref()), ("0123", Some("X")));
        assert_eq!(p(&["pin", "--help"]), Ok(Cli::Help));
        for bad in [
            &["pin"][..],
            &["pin", "123"],
            &["pin", "12345"],
            &["pin", "12a4"],
            &["pin", "1234", "5678"],
            &["pin", "--what", "1234"],
        ] {
            assert!(p(bad).is_err(), "{bad:?}");
        }
        assert!(
            p(&["pin", "123"])
                .unwrap_err()
                .contains("exactly 4 decimal digits")
        );
    }
}
