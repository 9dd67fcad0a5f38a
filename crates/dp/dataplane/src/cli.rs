//! Command line: `strahl-dataplane [--config FILE] [--socket PATH]`, `--help`, `--version`.

use std::path::PathBuf;

pub const USAGE: &str = "\
strahl-dataplane — the strahl data plane (capture → encode → packetize → transmit)

USAGE:
    strahl-dataplane [--config FILE] [--socket PATH] [--interface IF]

OPTIONS:
    --config FILE   configuration file (default: the compiled-in appliance/strahl.toml)
    --socket PATH   IPC socket to listen on (overrides [dataplane] socket)
    --interface IF  interface for the transport self-test (overrides [dataplane] interface)
    -h, --help      print this help
    -V, --version   print the version

Logging: RUST_LOG=debug|info|warn (default info). Stops cleanly on SIGTERM/SIGINT or a
Shutdown message from the control plane.
";

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Args {
    pub config: Option<PathBuf>,
    pub socket: Option<PathBuf>,
    pub interface: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cli {
    Run(Args),
    Help,
    Version,
}

/// Parses arguments (without the program name). Errors are user-facing messages.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Cli, String> {
    let mut out = Args::default();
    let mut it = args.into_iter();
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
}
