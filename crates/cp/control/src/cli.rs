//! Command line of `strahl-control`.

use std::path::PathBuf;
use std::time::Duration;

pub const USAGE: &str = "\
strahl-control — the strahl control plane

USAGE:
    strahl-control serve [--config FILE] [--socket PATH] [--admin-socket PATH] [--no-mdns]
                         [--stats-interval-ms N] [--connect-timeout-ms N]
    strahl-control pin [--config FILE] [--socket PATH] [--admin-socket PATH] [--client ID] PIN
    strahl-control status [--json] [COMMON]
    strahl-control clients [--json] [COMMON] [unpair NAME|ID | rename ID NAME]
    strahl-control pair [COMMON]
    strahl-control passwd [COMMON]
    strahl-control token [--rotate] [COMMON]
    strahl-control doctor [--json] [--config FILE]
    strahl-control SUBCOMMAND --help
    strahl-control --help | --version

COMMON (status, clients, pair, passwd, token):
    --config FILE      configuration file (gives the status port and the state directory)
    --url HOST:PORT    the running serve's status server (default 127.0.0.1:<[network] status_port>)
    --state-dir DIR    state directory holding the admin token (default: as serve resolves it)

serve:
    Runs the GameStream host: nvhttp on HTTP (base port) and HTTPS (base − 5), RTSP (base + 21)
    while a launch is pending, an mDNS responder (answers queries for _nvstream._tcp, never
    announces), and the admin socket for `pin`. Up to [gamestream] max_sessions paired clients
    stream at once, one session each. Connects to the data
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
    --no-mdns                do not answer mDNS queries for _nvstream._tcp (serve)
    --client ID              pin: the uniqueid of the client to pair when several are waiting
    --stats-interval-ms N    statistics poll period (default 5000)
    --connect-timeout-ms N   give up (exit 1) when the data plane cannot be reached for this
                             long, at start or after losing it (default 30000)
    -h, --help               print this help
    -V, --version            print the version

Logging: RUST_LOG=debug|info|warn (default info).
";

pub const STATUS_HELP: &str = "\
strahl-control status [--json] [--config FILE] [--url HOST:PORT] [--state-dir DIR]

Asks the running `serve` (its status server, with the admin token from the state directory)
for the host, data plane, sessions, paired clients and pending pairings. --json prints
/api/v1/status as it is. Exit 1 when serve is not running or refuses.
";

pub const CLIENTS_HELP: &str = "\
strahl-control clients [--json] [COMMON]                 list paired clients
strahl-control clients [COMMON] unpair NAME|ID           unpair one (by display name or id)
strahl-control clients [COMMON] rename ID NAME           set a client's display name
strahl-control clients [COMMON] perm NAME|ID PERMS       set a GameStream client's permissions

PERMS is `all`, `none` or a comma-separated list of: view (stream), list (app list), launch,
keyboard, mouse, controller, touch, pen, clipboard-read, clipboard-set. The first client paired
gets all; later ones view,list until granted more. A change applies to the client's requests at
once and to its input from its next launch or resume.

Talks to the running `serve` with the admin token (unpair, rename and perm always need it). A
name that matches several clients is refused; use the id from the list.
";

pub const PAIR_HELP: &str = "\
strahl-control pair [COMMON]

Arms a native pairing window on the running `serve` and prints its PIN, and lists Moonlight
clients waiting for a PIN (give theirs with `strahl-control pin PIN`).
";

pub const PASSWD_HELP: &str = "\
strahl-control passwd [COMMON]

Sets the status page's login password (read from stdin: one line, at least 8 characters).
With `serve` running it goes through its API (the admin token authorises it, and browser
sessions are logged out); otherwise the argon2id hash is written to the state directory
(status-password, atomically, mode 0600).
";

pub const TOKEN_HELP: &str = "\
strahl-control token [--rotate] [COMMON]

Prints the status server's admin bearer token (state directory, status-token; created if
absent). --rotate replaces it with a new random one; refused while `serve` runs (the running
server holds the old one): stop serve, rotate, start it.
";

pub const DOCTOR_HELP: &str = "\
strahl-control doctor [--json] [--config FILE]

Checks this host against what strahl needs and prints each finding with how to fix it: the tx
tile's core isolated, strahl's kernel-config in effect (the kargs.d profiles against
/proc/cmdline, sysctl.d against /proc/sys; the files the image installed, else built-in copies),
NIC XDP mode and queues, AF_XDP and io_uring permissions, memlock, NVIDIA driver/NVENC/CUDA, DRM
devices, /dev/uinput, ports, firewall, time sync.
Exit 1 when something REQUIRED is missing (the ports; plus the capture device, encoder or
transport the configuration names explicitly), 0 otherwise (recommended items only warn).
";

/// Options shared by the subcommands that talk to a running `serve`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClientArgs {
    pub config: Option<PathBuf>,
    pub url: Option<String>,
    pub state_dir: Option<PathBuf>,
    pub json: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientsAction {
    List,
    Unpair(String),
    Rename { id: String, name: String },
    Perm { who: String, permissions: String },
}

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
    Status(ClientArgs),
    Clients(ClientArgs, ClientsAction),
    Pair(ClientArgs),
    Passwd(ClientArgs),
    Token(ClientArgs, bool),
    Doctor(ClientArgs),
    /// Print this help text.
    Help(&'static str),
    Version,
}

type ClientParse = Result<(ClientArgs, Vec<String>, Vec<String>), Cli>;

/// Parses the common options of status/clients/pair/passwd/token/doctor; other words are
/// returned as positionals; `extra` flags (e.g. "--rotate") are returned when seen.
fn parse_client(
    mut it: impl Iterator<Item = String>,
    help: &'static str,
    json_ok: bool,
    extra: &[&str],
) -> Result<ClientParse, String> {
    let mut out = ClientArgs::default();
    let mut pos = Vec::new();
    let mut flags = Vec::new();
    while let Some(a) = it.next() {
        let (flag, inline) = split_flag(&a);
        let mut value = |name: &str| flag_value(&inline, &mut it, name);
        match flag.as_str() {
            "-h" | "--help" => return Ok(Err(Cli::Help(help))),
            "--config" => out.config = Some(PathBuf::from(value("--config")?)),
            "--url" => out.url = Some(value("--url")?),
            "--state-dir" => out.state_dir = Some(PathBuf::from(value("--state-dir")?)),
            "--json" if json_ok && inline.is_none() => out.json = true,
            f if extra.contains(&f) && inline.is_none() => flags.push(f.to_string()),
            f if f.starts_with('-') && f.len() > 1 => {
                return Err(format!("unknown argument {f:?} (see --help)"));
            }
            _ => pos.push(a),
        }
    }
    Ok(Ok((out, pos, flags)))
}

pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Cli, String> {
    let mut it = args.into_iter();
    let cmd = match it.next() {
        None => return Err("missing subcommand (try `strahl-control serve` or --help)".into()),
        Some(c) => c,
    };
    match cmd.as_str() {
        "-h" | "--help" | "help" => return Ok(Cli::Help(USAGE)),
        "-V" | "--version" => return Ok(Cli::Version),
        "serve" => {}
        "pin" => return parse_pin(it),
        "status" | "pair" | "passwd" | "doctor" => {
            let help = match cmd.as_str() {
                "status" => STATUS_HELP,
                "pair" => PAIR_HELP,
                "passwd" => PASSWD_HELP,
                _ => DOCTOR_HELP,
            };
            let json_ok = matches!(cmd.as_str(), "status" | "doctor");
            let (a, pos, _) = match parse_client(it, help, json_ok, &[])? {
                Ok(v) => v,
                Err(help) => return Ok(help),
            };
            if let Some(p) = pos.first() {
                return Err(format!("{cmd} takes no argument {p:?} (see --help)"));
            }
            return Ok(match cmd.as_str() {
                "status" => Cli::Status(a),
                "pair" => Cli::Pair(a),
                "passwd" => Cli::Passwd(a),
                _ => Cli::Doctor(a),
            });
        }
        "token" => {
            let (a, pos, flags) = match parse_client(it, TOKEN_HELP, false, &["--rotate"])? {
                Ok(v) => v,
                Err(help) => return Ok(help),
            };
            if let Some(p) = pos.first() {
                return Err(format!("token takes no argument {p:?} (see --help)"));
            }
            return Ok(Cli::Token(a, !flags.is_empty()));
        }
        "clients" => {
            let (a, pos, _) = match parse_client(it, CLIENTS_HELP, true, &[])? {
                Ok(v) => v,
                Err(help) => return Ok(help),
            };
            let action = match pos
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .as_slice()
            {
                [] => ClientsAction::List,
                ["unpair", who] => ClientsAction::Unpair(who.to_string()),
                ["rename", id, name] => ClientsAction::Rename {
                    id: id.to_string(),
                    name: name.to_string(),
                },
                ["perm", who, perms] => ClientsAction::Perm {
                    who: who.to_string(),
                    permissions: perms.to_string(),
                },
                _ => {
                    return Err(
                        "usage: clients [unpair NAME|ID | rename ID NAME | perm NAME|ID \
                                PERMS] (see --help)"
                            .into(),
                    );
                }
            };
            return Ok(Cli::Clients(a, action));
        }
        other => return Err(format!("unknown subcommand {other:?} (see --help)")),
    }
    let mut out = ServeArgs::default();
    while let Some(a) = it.next() {
        let (flag, inline) = split_flag(&a);
        let mut value = |name: &str| flag_value(&inline, &mut it, name);
        let millis = |name: &str, v: String| -> Result<Duration, String> {
            match v.parse::<u64>() {
                Ok(ms) if ms > 0 => Ok(Duration::from_millis(ms)),
                _ => Err(format!(
                    "{name} needs a positive number of milliseconds, got {v:?}"
                )),
            }
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Cli::Help(USAGE)),
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
        let (flag, inline) = split_flag(&a);
        let mut value = |name: &str| flag_value(&inline, &mut it, name);
        match flag.as_str() {
            "-h" | "--help" => return Ok(Cli::Help(USAGE)),
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

/// `--flag=value` → (`--flag`, the inline value); anything else is taken whole.
fn split_flag(a: &str) -> (String, Option<String>) {
    match a.split_once('=') {
        Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
        _ => (a.to_owned(), None),
    }
}

/// The value of flag `name`: its inline `=value`, else the next argument.
fn flag_value(
    inline: &Option<String>,
    it: &mut impl Iterator<Item = String>,
    name: &str,
) -> Result<String, String> {
    inline
        .clone()
        .or_else(|| it.next())
        .ok_or(format!("{name} needs a value"))
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
        assert_eq!(p(&["--help"]), Ok(Cli::Help(USAGE)));
        assert_eq!(p(&["serve", "--help"]), Ok(Cli::Help(USAGE)));
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
        assert_eq!(p(&["pin", "--help"]), Ok(Cli::Help(USAGE)));
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
        assert_eq!(p(&["doctor", "--help"]), Ok(Cli::Help(DOCTOR_HELP)));
        assert_eq!(p(&["clients", "-h"]), Ok(Cli::Help(CLIENTS_HELP)));
        let Ok(Cli::Clients(a, ClientsAction::Unpair(n))) =
            p(&["clients", "--url", "127.0.0.1:1", "unpair", "roth"])
        else {
            panic!()
        };
        assert_eq!(
            (a.url.as_deref(), n.as_str()),
            (Some("127.0.0.1:1"), "roth")
        );
        assert_eq!(
            p(&["clients", "perm", "roth", "view,keyboard"]).map(|c| match c {
                Cli::Clients(_, action) => Some(action),
                _ => None,
            }),
            Ok(Some(ClientsAction::Perm {
                who: "roth".into(),
                permissions: "view,keyboard".into()
            }))
        );
        assert_eq!(
            p(&["token", "--rotate", "--state-dir=/s"]),
            Ok(Cli::Token(
                ClientArgs {
                    state_dir: Some("/s".into()),
                    ..Default::default()
                },
                true
            ))
        );
        let Ok(Cli::Status(a)) = p(&["status", "--json"]) else {
            panic!()
        };
        assert!(a.json);
        for bad in [
            &["pair", "--json"][..],
            &["token", "x"],
            &["clients", "unpair"],
            &["clients", "perm", "roth"],
            &["status", "--rotate"],
            &["passwd", "pw"],
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
