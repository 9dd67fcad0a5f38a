//! How to start one instance: the extra configuration, transport, environment, log level and
//! start-up bound, and where it runs (loopback, a network namespace, the embedded default
//! configuration, an unprivileged data plane).
//!
//! Contract: plain data with builder helpers; [`crate::instance::Strahl::start`] reads it.
//! Imports no other file of this crate.

use std::net::Ipv4Addr;
use std::time::Duration;

/// Start-up bound: the data plane's transport self-test plus both processes' start on a loaded
/// 2-core machine (the self-test alone took a few seconds in the bench's runs).
pub const START_TIMEOUT: Duration = Duration::from_secs(90);

/// How to start one instance.
#[derive(Clone, Debug)]
pub struct Options {
    /// Appended verbatim to the generated config: `[testing]`, `[input]`, `[video]`, `[audio]`,
    /// `[status]`, `[[apps]]`… The harness writes only `[host]`, `[network]` and `[dataplane]`;
    /// do not repeat those (TOML forbids a table twice) — use the fields below instead.
    pub extra_toml: String,
    /// `[dataplane] transport`; `None` keeps the default ("auto": the start-up self-test picks).
    pub transport: Option<String>,
    /// Environment for run.sh (e.g. `STRAHL_BACKOFF_START_MS`), on top of the harness's own.
    pub env: Vec<(String, String)>,
    /// `RUST_LOG` for both processes.
    pub rust_log: String,
    /// Bound on reaching "connected to dataplane".
    pub start_timeout: Duration,
    /// Run strahl inside this network namespace, listening on its address (see the module
    /// header); `None`: on loopback in the test's own namespace.
    pub netns: Option<HostNetns>,
    /// Start run.sh without `--config`: the compiled-in default configuration exactly as `make
    /// run` uses it (mDNS as the default has it; `extra_toml`, `transport` are then refused).
    pub embedded_config: bool,
    /// Run the data plane as this user (e.g. "nobody"), without capabilities, through
    /// `setpriv`: what AF_XDP refuses.
    pub dataplane_user: Option<String>,
}

/// Where an instance runs when it runs in a namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostNetns {
    /// The namespace (under /var/run/netns).
    pub ns: String,
    /// The address strahl listens on and clients connect to.
    pub addr: Ipv4Addr,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            extra_toml: String::new(),
            transport: None,
            env: Vec::new(),
            rust_log: "info".into(),
            start_timeout: START_TIMEOUT,
            netns: None,
            embedded_config: false,
            dataplane_user: None,
        }
    }
}

impl Options {
    /// Input goes to the recording sink at [`Strahl::input_record_path`] (one JSON line per
    /// event).
    pub fn record_input(mut self) -> Self {
        self.extra_toml.push_str("\n[input]\nsink = \"record\"\n");
        self
    }

    /// Appends TOML (see [`extra_toml`](Self::extra_toml)).
    pub fn toml(mut self, text: &str) -> Self {
        self.extra_toml.push('\n');
        self.extra_toml.push_str(text);
        self.extra_toml.push('\n');
        self
    }

    /// Runs the instance in `place` (see [`Options::netns`]).
    pub fn in_netns(mut self, place: HostNetns) -> Self {
        self.netns = Some(place);
        self
    }
}
