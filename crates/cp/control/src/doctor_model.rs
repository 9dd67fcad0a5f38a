//! The `doctor` vocabulary: findings and their levels, the [`SystemView`] the checks read the
//! machine through, the configuration they need ([`Inputs`]) and the reference tables. Split
//! from `doctor.rs` so that the checks there and those in `doctor_host.rs` share it without
//! importing each other; the contract is in `doctor.rs`'s header.

use serde::Serialize;
use strahl_config::{
    AudioSource, AutoPath, Config, Cores, EncoderPref, TransportPref, VideoSource,
};

/// How much a finding matters; see the module contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Required,
    Recommended,
}

/// The verdict of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Ok,
    /// Missing or misconfigured.
    Fail,
    /// Could not be determined (no permission, tool missing).
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Stable identifier, e.g. "kernel_args", "port_tcp_47989".
    pub check: String,
    pub level: Level,
    pub verdict: Verdict,
    /// What was found.
    pub detail: String,
    /// How to fix it (empty when the verdict is Ok).
    pub fix: String,
}

/// Output of an external command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CmdOut {
    pub status: i32,
    pub stdout: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortState {
    Free,
    InUse,
    /// Binding was refused (privileged port without the capability).
    Denied,
}

/// Everything the checks may ask of the machine.
pub trait SystemView {
    /// Contents of a (small) file; `None` when absent or unreadable.
    fn read(&self, path: &str) -> Option<String>;
    fn exists(&self, path: &str) -> bool;
    /// File names in a directory (empty when absent).
    fn list_dir(&self, path: &str) -> Vec<String>;
    /// Target of a symbolic link.
    fn read_link(&self, path: &str) -> Option<String>;
    /// Whether this process may open `path` for reading and writing.
    fn can_read_write(&self, path: &str) -> bool;
    /// Runs a command (bounded in time by the implementation); `None` when it cannot run.
    fn run(&self, argv: &[&str]) -> Option<CmdOut>;
    fn port(&self, proto: Proto, port: u16) -> PortState;
    /// Connects to a Unix stream socket and closes the connection at once, sending nothing;
    /// `Err` is the error.
    fn connect_unix(&self, path: &str) -> Result<(), String>;
}

/// What the checks need from the configuration.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// `[dataplane] interface` ("auto" or a name).
    pub interface: String,
    pub cores: Cores,
    pub transport: TransportPref,
    pub source: VideoSource,
    pub encoder: EncoderPref,
    pub audio: AudioSource,
    /// `[audio] pipewire_socket` when it names a path (`None`: "auto").
    pub pipewire_socket: Option<String>,
    /// (what, protocol, port) for every port strahl listens on.
    pub ports: Vec<(String, Proto, u16)>,
}

impl Inputs {
    pub fn from_config(cfg: &Config) -> Inputs {
        let gs = cfg.network.gamestream_ports();
        let ports = vec![
            ("GameStream HTTPS".into(), Proto::Tcp, gs.https),
            ("GameStream HTTP".into(), Proto::Tcp, gs.http),
            ("GameStream RTSP".into(), Proto::Tcp, gs.rtsp),
            ("GameStream video".into(), Proto::Udp, gs.video),
            ("GameStream control".into(), Proto::Udp, gs.control),
            ("GameStream audio".into(), Proto::Udp, gs.audio),
            ("status page".into(), Proto::Tcp, cfg.network.status_port.0),
            (
                "native protocol".into(),
                Proto::Udp,
                cfg.network.native_port.0,
            ),
        ];
        Inputs {
            interface: cfg.dataplane.interface.clone(),
            cores: cfg.dataplane.cores.clone(),
            transport: cfg.dataplane.transport,
            source: cfg.video.source,
            encoder: cfg.video.encoder,
            audio: cfg.audio.source,
            pipewire_socket: match &cfg.audio.pipewire_socket {
                AutoPath::Auto => None,
                AutoPath::Path(p) => Some(p.display().to_string()),
            },
            ports,
        }
    }
}

/// Memlock limit under which AF_XDP is likely to fail without CAP_IPC_LOCK. Not a measurement:
/// headroom for a UMEM per queue plus rings; the appliance unit sets `LimitMEMLOCK=infinity`.
pub const MEMLOCK_RECOMMENDED: u64 = 64 * 1024 * 1024;
/// Drivers with native (driver-mode) XDP in mainline Linux 6.x.
pub const NATIVE_XDP_DRIVERS: &[&str] = &[
    "i40e",
    "ice",
    "ixgbe",
    "ixgbevf",
    "igb",
    "igc",
    "mlx4_core",
    "mlx5_core",
    "bnxt_en",
    "ena",
    "nfp",
    "qede",
    "sfc",
    "virtio_net",
    "veth",
    "tun",
    "stmmac",
    "mvneta",
    "mvpp2",
    "fec",
];
/// Where the dynamic loader finds NVIDIA's user-space libraries on Debian/Ubuntu/Fedora/Arch.
pub const LIB_DIRS: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/lib64",
    "/usr/lib",
    "/usr/local/cuda/lib64",
    "/usr/lib/wsl/lib",
];
/// Process names that mean strahl itself holds a port.
pub(super) const STRAHL_PROCESSES: &[&str] = &["strahl-control", "strahl-dataplane"];

pub(super) fn finding(
    check: &str,
    level: Level,
    verdict: Verdict,
    detail: String,
    fix: &str,
) -> Finding {
    Finding {
        check: check.into(),
        level,
        verdict,
        detail,
        fix: if verdict == Verdict::Ok {
            String::new()
        } else {
            fix.into()
        },
    }
}

pub(super) fn level_if(required: bool) -> Level {
    if required {
        Level::Required
    } else {
        Level::Recommended
    }
}
