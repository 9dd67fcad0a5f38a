//! Command line: `strahl-dataplane [--config FILE] [--socket PATH]`, `--help`, `--version`,
//! and `strahl-dataplane selftest --out FILE [...]` (the hardware self-check, [`crate::selftest`]).

use std::path::PathBuf;

use strahl_encode::select::Preference;

use crate::selftest::SelftestArgs;

pub const USAGE: &str = "\
strahl-dataplane — the strahl data plane (capture → encode → packetize → transmit)

USAGE:
    strahl-dataplane [--config FILE] [--socket PATH] [--interface IF]
    strahl-dataplane selftest --out FILE [--seconds S] [--size WxH] [--fps N]
                              [--bitrate KBPS] [--encoder auto|nvenc|software]

OPTIONS:
    --config FILE   configuration file (default: the compiled-in appliance/strahl.toml)
    --socket PATH   IPC socket to listen on (overrides [dataplane] socket)
    --interface IF  interface for the transport self-test (overrides [dataplane] interface)
    -h, --help      print this help
    -V, --version   print the version

SELFTEST: captures and encodes for S seconds (default 5, 1280x720@60, 10000 kbit/s, auto)
into FILE (Annex-B H.264), printing what it chose for capture and encode and why.

Logging: RUST_LOG=debug|info|warn (default info). Stops cleanly on SIGTERM/SIGINT or a
Shutdown message from the control plane.
";

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Args {
    pub config: Option<PathBuf>,
    pub socket: Option<PathBuf>,
    pub interface: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Cli {
    Run(Args),
    Selftest(SelftestArgs),
    Help,
    Version,
}

/// `selftest`'s options (after the word `selftest`).
fn parse_selftest(args: impl Iterator<Item = String>) -> Result<Cli, String> {
    let mut out = None;
    let mut t = SelftestArgs::new(PathBuf::new());
    let mut it = args;
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
        let num = |name: &str, v: String| {
            v.parse::<u32>()
                .map_err(|_| format!("{name}: {v:?} is not a number"))
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Cli::Help),
            "--out" => out = Some(PathBuf::from(value("--out")?)),
            "--seconds" => {
                let v = value("--seconds")?;
                t.seconds = v
                    .parse()
                    .map_err(|_| format!("--seconds: {v:?} is not a number"))?;
            }
            "--size" => {
                let v = value("--size")?;
                let (w, h) = v
                    .split_once('x')
                    .ok_or(format!("--size: {v:?} is not WxH"))?;
                t.width = num("--size", w.to_owned())?;
                t.height = num("--size", h.to_owned())?;
            }
            "--fps" => t.fps = num("--fps", value("--fps")?)?,
            "--bitrate" => t.bitrate_kbps = num("--bitrate", value("--bitrate")?)?,
            "--encoder" => {
                t.encoder = match value("--encoder")?.as_str() {
                    "auto" => Preference::Auto,
                    "nvenc" => Preference::Nvenc,
                    "software" => Preference::Software,
                    other => {
                        return Err(format!("--encoder: {other:?} is not auto|nvenc|software"));
                    }
                }
            }
            other => return Err(format!("selftest: unknown argument {other:?} (see --help)")),
        }
    }
    t.out = out.ok_or("selftest needs --out FILE")?;
    Ok(Cli::Selftest(t))
}

/// Parses arguments (without the program name). Errors are user-facing messages.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Cli, String> {
    let mut out = Args::default();
    let mut it = args.into_iter().peekable();
    if it.peek().is_some_and(|a| a == "selftest") {
        it.next();
        return parse_selftest(it);
    }
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
            "-V" | "--version" => return Ok(Cli::Version),
            "--config" => out.config = Some(PathBuf::from(value("--config")?)),
            "--socket" => out.socket = Some(PathBuf::from(value("--socket")?)),
            "--interface" => out.interface = Some(value("--interface")?),
            other => return Err(format!("unknown argument {other:?} (see --help)")),
        }
    }
    Ok(Cli::Run(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(a: &[&str]) -> Result<Cli, String> {
        parse(a.iter().map(|s| s.to_string()))
    }

    #[test]
    fn parses_flags() {
        assert_eq!(p(&[]), Ok(Cli::Run(Args::default())));
        assert_eq!(
            p(&["--config", "a.toml", "--socket=/x.sock"]),
            Ok(Cli::Run(Args {
                config: Some("a.toml".into()),
                socket: Some("/x.sock".into()),
                interface: None,
            }))
        );
        assert!(
            matches!(p(&["--interface", "veth0"]), Ok(Cli::Run(a)) if a.interface.as_deref() == Some("veth0"))
        );
        assert_eq!(p(&["--help"]), Ok(Cli::Help));
        assert_eq!(p(&["-V"]), Ok(Cli::Version));
        assert!(p(&["--config"]).unwrap_err().contains("needs a value"));
        assert!(p(&["--bogus"]).unwrap_err().contains("unknown argument"));
    }

    #[test]
    fn parses_selftest() {
        let Ok(Cli::Selftest(t)) = p(&["selftest", "--out", "x.h264"]) else {
            panic!("selftest");
        };
        assert_eq!(t, SelftestArgs::new("x.h264".into()));
        let Ok(Cli::Selftest(t)) = p(&[
            "selftest",
            "--out=y",
            "--seconds",
            "0.5",
            "--size",
            "320x240",
            "--fps=30",
            "--bitrate",
            "800",
            "--encoder",
            "software",
        ]) else {
            panic!("selftest with options");
        };
        assert_eq!(
            (
                t.seconds,
                t.width,
                t.height,
                t.fps,
                t.bitrate_kbps,
                t.encoder
            ),
            (0.5, 320, 240, 30, 800, Preference::Software)
        );
        assert!(p(&["selftest"]).unwrap_err().contains("--out"));
        assert!(
            p(&["selftest", "--out", "x", "--size", "320"])
                .unwrap_err()
                .contains("WxH")
        );
        assert!(p(&["selftest", "--out", "x", "--encoder", "gpu"]).is_err());
        // `selftest` is a subcommand only in first position.
        assert!(p(&["--config", "a", "selftest"]).is_err());
    }
}
