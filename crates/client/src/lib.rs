//! `strahl-client`: the native `strahl/1` reference client (command line in `main.rs`).
//!
//! Contract:
//! - [`parse`] turns the arguments into a [`Command`] or a usage error (no I/O).
//! - [`run`] carries a command out against a host: `pair HOST PIN` runs the SPAKE2 ceremony and
//!   stores the host's fingerprint (atomic write) for pinned TLS later; `check HOST` connects
//!   with that pin, says hello and stops — proof that a paired client gets in; `stream HOST`
//!   runs a session for a while, receiving, reassembling and verifying every frame
//!   (`stream.rs`, the sans-IO receiver in `recv.rs`), and prints a JSON summary.
//! - Every failure is an [`Exit`] with a sentence for the person and a distinct exit code per
//!   kind (usage, refused, unreachable, version mismatch, local state, media failed).
//! - The client's own certificate lives in its state directory (created on first use).
#![forbid(unsafe_code)]

#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod recv;
pub mod stream;
pub mod summary;
pub mod xdp_rx;

use std::net::SocketAddr;
use std::path::PathBuf;

use strahl_native::msg::{Hello, Mode, Stop, StopReason, VERSION_MAJOR, VERSION_MINOR, codec};
use strahl_native::pairing::hex;
use strahl_native::quic::client::{ClientError, open_session, pair};
use strahl_native::store::{ClientIdentity, KnownHosts};

pub use stream::StreamOptions;

/// The host's default native port (`[network] native_port`).
pub const DEFAULT_PORT: u16 = 47900;

pub const USAGE: &str = "\
usage: strahl-client [--state-dir DIR] pair HOST PIN [--name NAME]
       strahl-client [--state-dir DIR] check HOST
       strahl-client [--state-dir DIR] stream HOST [--seconds N] [--json FILE]
                     [--codec passthrough|h264|any] [--bitrate KBPS] [--mode WxH@FPS]
                     [--mtu BYTES] [--media-port PORT] [--frame-timeout MS]
                     [--reconfigure SECONDS,BITRATE_KBPS,FEC_PERCENT[,WxH@FPS]]
                     [--xdp IFACE] [--rx recvmmsg|af_xdp|auto] [--realtime PRIORITY]

  pair HOST PIN   pair with a strahl host: on the host, `strahl-control pair` (or the status
                  page's button) shows a 4-digit PIN valid for a while; one try per PIN
  check HOST      connect to a paired host with pinned TLS, say hello, and stop
  stream HOST     run a session for N seconds (10): receive, reassemble (FEC when shards are
                  missing), open and verify every frame; a progress line on stderr, then a
                  JSON summary on stdout or in FILE. Defaults: any codec (the host picks),
                  20000 kbit/s, 1280x720@60, MTU 1500, any free media port, and a frame
                  missing shards for 100 ms counts as lost. --reconfigure asks the host for a
                  new bitrate, FEC % and/or mode that far into the stream (any may be empty):
                  a new epoch from the frame the host names in its answer
  --xdp IFACE     receive the media with AF_XDP on IFACE (the interface the host's packets
                  arrive on) instead of recvmmsg + UDP GRO: loads strahl's XDP redirect
                  program, which steers only UDP to the media port into one AF_XDP socket per
                  receive queue of IFACE (copy mode; a NIC's RSS may put the flow on any
                  queue) — everything else, the QUIC control connection included, goes on to
                  the kernel. Needs CAP_NET_ADMIN, CAP_NET_RAW and CAP_BPF (or root), no other
                  XDP program on IFACE, at most 64 receive queues and --mtu <= 1778. A refusal
                  names what is missing (exit 5); nothing falls back unless --rx auto, which
                  uses recvmmsg after one line saying why. --rx recvmmsg is the default; the
                  summary's rx field names the path used
  --realtime N    receive at SCHED_FIFO priority N (1..=99; 0, the default: normal priority):
                  on a busy machine the receiving thread's wake-up is most of a frame's tail
                  latency. Needs CAP_SYS_NICE (root) or `ulimit -r N`; refused: one line, the
                  stream goes on at normal priority

HOST is NAME[:PORT] or an address (port 47900 unless given). State (this client's certificate
and the hosts it paired with): --state-dir, else $XDG_CONFIG_HOME/strahl-client, else
~/.config/strahl-client.
exit codes: 0 ok, 1 refused by the host or pairing failed, 2 usage, 3 host unreachable,
4 protocol version mismatch, 5 local state unusable, 6 streamed but no frame arrived or a
frame failed verification";

#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Help,
    Pair {
        host: String,
        pin: String,
        name: String,
    },
    Check {
        host: String,
    },
    Stream(StreamOptions),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Args {
    pub state_dir: Option<PathBuf>,
    pub command: Command,
}

/// A failure: what to print and the exit code.
#[derive(Debug)]
pub struct Exit {
    pub code: u8,
    pub message: String,
}

fn usage(msg: &str) -> Exit {
    Exit {
        code: 2,
        message: format!("{msg}\n{USAGE}"),
    }
}

pub fn parse(args: &[String]) -> Result<Args, Exit> {
    let mut state_dir = None;
    let mut name = None;
    let mut stream_opts: Vec<(String, String)> = Vec::new();
    let mut words = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-h" | "--help" => {
                return Ok(Args {
                    state_dir,
                    command: Command::Help,
                });
            }
            "--state-dir" => {
                state_dir = Some(PathBuf::from(
                    it.next()
                        .ok_or_else(|| usage("--state-dir needs a directory"))?,
                ));
            }
            "--name" => {
                name = Some(
                    it.next()
                        .ok_or_else(|| usage("--name needs a value"))?
                        .clone(),
                )
            }
            o @ ("--seconds" | "--json" | "--codec" | "--bitrate" | "--mode" | "--mtu"
            | "--media-port" | "--frame-timeout" | "--reconfigure" | "--rx" | "--xdp"
            | "--realtime") => {
                let v = it
                    .next()
                    .ok_or_else(|| usage(&format!("{o} needs a value")))?;
                stream_opts.push((o.to_owned(), v.clone()));
            }
            s if s.starts_with('-') => return Err(usage(&format!("unknown option {s}"))),
            _ => words.push(a.clone()),
        }
    }
    let command = match words.as_slice() {
        [c, host, pin] if c == "pair" => {
            if pin.len() != 4 || !pin.bytes().all(|b| b.is_ascii_digit()) {
                return Err(usage("the PIN is the 4 digits `strahl-control pair` shows"));
            }
            Command::Pair {
                host: host.clone(),
                pin: pin.clone(),
                name: name.unwrap_or_else(|| "strahl-client".into()),
            }
        }
        [c, host] if c == "check" => Command::Check { host: host.clone() },
        [c, host] if c == "stream" => {
            let mut o = StreamOptions::new(host.clone());
            for (k, v) in stream_opts.drain(..) {
                o.set(&k, &v).map_err(|e| usage(&e))?;
            }
            o.finish().map_err(|e| usage(&e))?;
            Command::Stream(o)
        }
        [] => return Err(usage("no command")),
        _ => return Err(usage(&format!("cannot read {:?}", words.join(" ")))),
    };
    if let Some((k, _)) = stream_opts.first() {
        return Err(usage(&format!("{k} is an option of `stream`")));
    }
    Ok(Args { state_dir, command })
}

/// Where state lives when `--state-dir` is not given.
pub fn default_state_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_CONFIG_HOME").filter(|x| !x.is_empty()) {
        return PathBuf::from(x).join("strahl-client");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| ".".into());
    PathBuf::from(home).join(".config/strahl-client")
}

/// `HOST` with the default port when none is given (an IPv6 literal needs brackets to carry one).
pub(crate) async fn resolve(host: &str) -> Result<SocketAddr, Exit> {
    let with_port = if host.parse::<SocketAddr>().is_ok() {
        host.to_owned()
    } else if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        SocketAddr::new(ip, DEFAULT_PORT).to_string()
    } else if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:{DEFAULT_PORT}")
    };
    let unreachable = |why: String| Exit {
        code: 3,
        message: format!("host unreachable: {host}: {why}"),
    };
    tokio::net::lookup_host(&with_port)
        .await
        .map_err(|e| unreachable(e.to_string()))?
        .next()
        .ok_or_else(|| unreachable("no address".into()))
}

pub(crate) fn client_exit(e: ClientError) -> Exit {
    let code = match &e {
        ClientError::Unreachable(_) => 3,
        ClientError::VersionMismatch(_) => 4,
        ClientError::Refused { reason, .. }
            if *reason == strahl_native::msg::Reason::VersionMismatch =>
        {
            4
        }
        ClientError::Local(_) => 5,
        _ => 1,
    };
    Exit {
        code,
        message: e.to_string(),
    }
}

pub(crate) fn state_exit(e: impl std::fmt::Display) -> Exit {
    Exit {
        code: 5,
        message: e.to_string(),
    }
}

/// Runs a command; returns what to print on success.
pub async fn run(args: Args) -> Result<String, Exit> {
    let dir = args.state_dir.unwrap_or_else(default_state_dir);
    match args.command {
        Command::Help => Ok(USAGE.to_owned()),
        Command::Stream(o) => stream::run(dir, o).await,
        Command::Pair { host, pin, name } => {
            let addr = resolve(&host).await?;
            let id = ClientIdentity::load_or_create(&dir).map_err(state_exit)?;
            let mut known = KnownHosts::load(&dir).map_err(state_exit)?;
            let host_fp = pair(addr, &pin, &name, &id).await.map_err(client_exit)?;
            known.insert(&host, &host_fp).map_err(state_exit)?;
            Ok(format!(
                "paired with {host} ({addr}); host certificate {}\nthis client: {}",
                hex(&host_fp),
                hex(&id.fingerprint())
            ))
        }
        Command::Check { host } => {
            let addr = resolve(&host).await?;
            let id = ClientIdentity::load_or_create(&dir).map_err(state_exit)?;
            let known = KnownHosts::load(&dir).map_err(state_exit)?;
            let host_fp = known.get(&host).ok_or_else(|| Exit {
                code: 1,
                message: format!("not paired with {host}: run `strahl-client pair {host} PIN`"),
            })?;
            let hello = Hello {
                version_major: VERSION_MAJOR,
                version_minor: VERSION_MINOR,
                mode: Mode {
                    width: 1280,
                    height: 720,
                    fps: 60,
                },
                codecs: codec::H264 | codec::PASSTHROUGH,
                bitrate_kbps: 20_000,
                max_shard_payload: 1428,
                // Nothing is received by `check`: the port only has to be valid.
                media_port: 9,
                capabilities: 0,
            };
            let mut s = open_session(addr, &id, host_fp, &hello)
                .await
                .map_err(client_exit)?;
            let w = s.welcome.clone();
            s.control
                .send(&strahl_native::msg::Message::Stop(Stop {
                    reason: StopReason::ClientQuit,
                }))
                .await
                .map_err(client_exit)?;
            s.control.close().await;
            Ok(format!(
                "connected to {host} ({addr}) with pinned TLS: session {} {}x{}@{} at {} kbit/s, \
                 FEC {} %, shards of {} B",
                w.session_id,
                w.mode.width,
                w.mode.height,
                w.mode.fps,
                w.bitrate_kbps,
                w.fec_percent,
                w.shard_len
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(a: &[&str]) -> Result<Args, Exit> {
        parse(&a.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn parses_pair_and_check_and_refuses_bad_pins() {
        let a = p(&["--state-dir", "/x", "pair", "box", "0042", "--name", "deck"]).unwrap();
        assert_eq!(a.state_dir, Some(PathBuf::from("/x")));
        assert_eq!(
            a.command,
            Command::Pair {
                host: "box".into(),
                pin: "0042".into(),
                name: "deck".into()
            }
        );
        assert_eq!(
            p(&["check", "h"]).unwrap().command,
            Command::Check { host: "h".into() }
        );
        for bad in [
            &["pair", "h", "42"][..],
            &["pair", "h", "abcd"],
            &["pair"],
            &[],
            &["-x"],
            &["check", "h", "--seconds", "3"],
            &["stream", "h", "--seconds"],
            &["stream", "h", "--codec", "vp8"],
        ] {
            assert_eq!(p(bad).unwrap_err().code, 2, "{bad:?}");
        }
        let mut want = StreamOptions::new("h:5".into());
        want.seconds = 3.0;
        want.json = Some(PathBuf::from("/tmp/s.json"));
        want.codecs = strahl_native::msg::codec::PASSTHROUGH;
        assert_eq!(
            p(&[
                "stream",
                "h:5",
                "--seconds",
                "3",
                "--json",
                "/tmp/s.json",
                "--codec",
                "passthrough"
            ])
            .unwrap()
            .command,
            Command::Stream(want)
        );
    }

    #[test]
    fn each_failure_kind_has_its_exit_code() {
        use strahl_native::msg::Reason;
        let code = |e| client_exit(e).code;
        assert_eq!(code(ClientError::Unreachable("x".into())), 3);
        assert_eq!(code(ClientError::VersionMismatch("alpn".into())), 4);
        let refused = |reason| ClientError::Refused {
            reason,
            detail: String::new(),
        };
        assert_eq!(code(refused(Reason::VersionMismatch)), 4);
        assert_eq!(code(refused(Reason::NotPaired)), 1);
        assert_eq!(code(refused(Reason::Busy)), 1);
        assert_eq!(code(ClientError::HostChanged), 1);
        assert_eq!(code(ClientError::Local("x".into())), 5);
        let e = client_exit(refused(Reason::NotPaired));
        assert!(e.message.contains("not paired"), "{}", e.message);
    }

    #[tokio::test]
    async fn host_names_get_the_default_port() {
        assert_eq!(resolve("127.0.0.1").await.unwrap().port(), DEFAULT_PORT);
        assert_eq!(resolve("127.0.0.1:5").await.unwrap().port(), 5);
        assert_eq!(resolve("::1").await.unwrap().port(), DEFAULT_PORT);
        assert_eq!(resolve("[::1]:7").await.unwrap().port(), 7);
    }
}
