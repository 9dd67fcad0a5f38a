//! The typed configuration. `Default` for every struct equals `appliance/strahl.toml`
//! (enforced by `tests::embedded_equals_default`).

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub host: Host,
    pub network: Network,
    pub gamestream: Gamestream,
    pub dataplane: Dataplane,
    pub video: Video,
    pub audio: Audio,
    pub status: Status,
    pub input: Input,
    pub testing: Testing,
    #[serde(default = "default_apps")]
    pub apps: Vec<App>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            host: Host::default(),
            network: Network::default(),
            gamestream: Gamestream::default(),
            dataplane: Dataplane::default(),
            video: Video::default(),
            audio: Audio::default(),
            status: Status::default(),
            input: Input::default(),
            testing: Testing::default(),
            apps: default_apps(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Host {
    pub name: String,
    pub state_dir: AutoPath,
}

impl Default for Host {
    fn default() -> Self {
        Self {
            name: "strahl".into(),
            state_dir: AutoPath::Auto,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Network {
    pub interface: String,
    pub addresses: Vec<IpAddr>,
    pub gamestream_base_port: Port,
    pub native_port: Port,
    pub status_port: Port,
    /// Advertise the GameStream host as `_nvstream._tcp` over mDNS (Moonlight's host discovery).
    pub mdns: bool,
}

impl Default for Network {
    fn default() -> Self {
        Self {
            interface: "auto".into(),
            addresses: Vec::new(),
            gamestream_base_port: Port(47989),
            native_port: Port(47900),
            status_port: Port(47990),
            mdns: true,
        }
    }
}

impl Network {
    /// GameStream ports as fixed offsets from the base (reference: gamestream-host.md §A1).
    pub fn gamestream_ports(&self) -> GameStreamPorts {
        let b = self.gamestream_base_port.0;
        // validate::check guarantees base − 5 ≥ 1 and base + 21 ≤ 65535.
        GameStreamPorts {
            https: b - 5,
            http: b,
            video: b + 9,
            control: b + 10,
            audio: b + 11,
            rtsp: b + 21,
        }
    }
}

/// GameStream host behaviour (`[gamestream]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Gamestream {
    /// Paired clients that may stream at once, each with its own session (1..=16).
    pub max_sessions: SessionLimit,
    /// Video encryption (SS_ENC_VIDEO) policy; audio and control are always encrypted.
    pub encryption: EncryptionMode,
}

impl Default for Gamestream {
    fn default() -> Self {
        Self {
            max_sessions: SessionLimit(2),
            encryption: EncryptionMode::Preferred,
        }
    }
}

/// `[gamestream] encryption`: whether the video stream is encrypted (gamestream-host.md §A9,
/// §A16). Audio and the control stream are encrypted with every client whatever this says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EncryptionMode {
    /// Every client that can encrypt video is asked to; a client that cannot still streams.
    Preferred,
    /// A client that does not encrypt video (and audio) is refused at ANNOUNCE (RTSP 403).
    Required,
    /// Video is neither advertised nor requested (Sunshine's LAN default): clear video.
    Off,
}

/// How many GameStream sessions may run at once: 1..=[`SessionLimit::MAX`], checked while
/// parsing (the control plane keeps per-session state and the data plane one pacer slot each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct SessionLimit(pub u8);

impl SessionLimit {
    pub const MAX: u8 = 16;
}

impl<'de> Deserialize<'de> for SessionLimit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = i64::deserialize(d)?;
        match u8::try_from(v) {
            Ok(n) if (1..=Self::MAX).contains(&n) => Ok(SessionLimit(n)),
            _ => Err(de::Error::custom(format!(
                "max_sessions must be 1..={}, got {v}",
                Self::MAX
            ))),
        }
    }
}

/// The GameStream port set derived from the base port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GameStreamPorts {
    pub https: u16,
    pub http: u16,
    pub video: u16,
    pub control: u16,
    pub audio: u16,
    pub rtsp: u16,
}

impl GameStreamPorts {
    pub fn all(&self) -> [(&'static str, u16); 6] {
        [
            ("https", self.https),
            ("http", self.http),
            ("video", self.video),
            ("control", self.control),
            ("audio", self.audio),
            ("rtsp", self.rtsp),
        ]
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Dataplane {
    pub cores: Cores,
    pub transport: TransportPref,
    /// Interface the transport self-test runs on ("auto": the default-route interface, else lo).
    pub interface: String,
    pub socket: AutoPath,
    pub mtu: u16,
    /// Real-time priority (SCHED_FIFO) of the media threads: the tx tile, and the encode and
    /// audio threads whose work per frame is small (not a software encoder's).
    pub realtime_priority: Realtime,
}

impl Default for Dataplane {
    fn default() -> Self {
        Self {
            cores: Cores::Auto,
            transport: TransportPref::Auto,
            interface: "auto".to_owned(),
            socket: AutoPath::Auto,
            mtu: 1500,
            realtime_priority: Realtime::Auto,
        }
    }
}

/// `[dataplane] realtime_priority`: `"auto"` (real time only where the tx tile has a core of
/// its own — on shared cores a real-time tile that busy-waits would starve the rest), `0`
/// (never) or a SCHED_FIFO priority `1..=99`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Realtime {
    Auto,
    Priority(u8),
}

/// The highest SCHED_FIFO priority Linux accepts.
pub const MAX_RT_PRIORITY: u8 = 99;

impl<'de> Deserialize<'de> for Realtime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Realtime;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"auto\", 0 (off) or a SCHED_FIFO priority 1..=99")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Realtime, E> {
                if s == "auto" {
                    Ok(Realtime::Auto)
                } else {
                    Err(E::custom(format!(
                        "expected \"auto\", 0 (off) or a priority 1..=99, got {s:?}"
                    )))
                }
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Realtime, E> {
                u8::try_from(v)
                    .ok()
                    .filter(|p| *p <= MAX_RT_PRIORITY)
                    .map(Realtime::Priority)
                    .ok_or_else(|| {
                        E::custom(format!("realtime priority {v} is outside 0..=99 (0 = off)"))
                    })
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Realtime, E> {
                self.visit_i64(i64::try_from(v).unwrap_or(i64::MAX))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransportPref {
    Auto,
    AfXdp,
    IoUring,
    Sendmmsg,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Video {
    pub source: VideoSource,
    pub passthrough_file: String,
    pub encoder: EncoderPref,
    pub max_bitrate_kbps: u32,
    pub fec_percent_min: Percent,
    pub fec_percent_default: Percent,
    pub fec_percent_max: Percent,
}

impl Default for Video {
    fn default() -> Self {
        Self {
            source: VideoSource::Synthetic,
            passthrough_file: String::new(),
            encoder: EncoderPref::Auto,
            max_bitrate_kbps: 1_000_000,
            fec_percent_min: Percent(5),
            fec_percent_default: Percent(strahl_ipc::DEFAULT_FEC_PERCENT),
            fec_percent_max: Percent(50),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VideoSource {
    Synthetic,
    Passthrough,
    Kms,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EncoderPref {
    Auto,
    Nvenc,
    Openh264,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Audio {
    pub source: AudioSource,
    /// The PipeWire socket the data plane connects to: `auto` = libpipewire's rules on the
    /// data plane's environment (`PIPEWIRE_REMOTE`, `PIPEWIRE_RUNTIME_DIR`, `XDG_RUNTIME_DIR`),
    /// and for a system service with none of them the appliance's desktop user's
    /// `/run/user/1000/pipewire-0`; or an absolute path to the socket.
    pub pipewire_socket: AutoPath,
    pub channels: u8,
}

impl Default for Audio {
    fn default() -> Self {
        Self {
            source: AudioSource::Auto,
            pipewire_socket: AutoPath::Auto,
            channels: 2,
        }
    }
}

/// The appliance's desktop user's PipeWire socket: where the data plane, a system service with
/// no runtime directory in its environment, looks with `pipewire_socket = "auto"` (the same
/// path as `strahl_audio::pipewire::APPLIANCE_SOCKET`, which the data plane checks is this one;
/// `strahl-control doctor` looks here too).
pub const APPLIANCE_PIPEWIRE_SOCKET: &str = "/run/user/1000/pipewire-0";
/// The group the desktop session opens its PipeWire socket to (appliance/pipewire/) and the
/// data plane's unit joins (`SupplementaryGroups=`).
pub const AUDIO_GROUP: &str = "strahl-audio";

/// Where the box's sound comes from. `Auto` and `Pipewire` differ only when PipeWire is not
/// reachable at start: `auto` streams the test tone and says why, `pipewire` refuses to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AudioSource {
    Auto,
    Tone,
    Pipewire,
    None,
}

impl AudioSource {
    /// The config value (`[audio] source = "…"`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Tone => "tone",
            Self::Pipewire => "pipewire",
            Self::None => "none",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Status {
    pub open_reads: bool,
}

impl Default for Status {
    fn default() -> Self {
        Self { open_reads: true }
    }
}

/// Where client input (GameStream §A13) goes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Input {
    pub sink: InputSinkPref,
    /// JSON-lines file of the recording sink; `auto` = `<state_dir>/input-events.jsonl`.
    pub record_path: AutoPath,
}

impl Default for Input {
    fn default() -> Self {
        Self {
            sink: InputSinkPref::Auto,
            record_path: AutoPath::Auto,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputSinkPref {
    /// uinput where `/dev/uinput` opens, else the recording sink.
    Auto,
    Uinput,
    Record,
}

/// Test-only knobs of the data plane (never set them on a real appliance).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Testing {
    /// Fraction of outgoing video packets (data and parity) dropped on purpose, 0..=0.5.
    pub video_drop_fraction: DropFraction,
    /// Seed of the deterministic generator that picks the dropped packets.
    pub video_drop_seed: u64,
}

impl Default for Testing {
    fn default() -> Self {
        Self {
            video_drop_fraction: DropFraction(0.0),
            video_drop_seed: 1,
        }
    }
}

/// A finite fraction in 0..=0.5 (a float, compared bit for bit so the config stays `Eq`).
#[derive(Debug, Clone, Copy)]
pub struct DropFraction(pub f64);

impl PartialEq for DropFraction {
    fn eq(&self, o: &Self) -> bool {
        self.0.to_bits() == o.0.to_bits()
    }
}

impl Eq for DropFraction {}

impl<'de> Deserialize<'de> for DropFraction {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = f64::deserialize(d)?;
        if (0.0..=0.5).contains(&v) {
            Ok(DropFraction(v))
        } else {
            Err(de::Error::custom(format!(
                "drop fraction must be 0.0..=0.5, got {v}"
            )))
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct App {
    pub name: String,
    #[serde(default)]
    pub command: Vec<String>,
}

pub(crate) fn default_apps() -> Vec<App> {
    vec![App {
        name: "Desktop".into(),
        command: Vec::new(),
    }]
}

/// A non-zero TCP/UDP port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Port(pub u16);

impl<'de> Deserialize<'de> for Port {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = i64::deserialize(d)?;
        match u16::try_from(v) {
            Ok(p) if p != 0 => Ok(Port(p)),
            _ => Err(de::Error::custom(format!(
                "port must be 1..=65535, got {v}"
            ))),
        }
    }
}

/// A percentage 0..=100.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Percent(pub u8);

impl<'de> Deserialize<'de> for Percent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = i64::deserialize(d)?;
        match u8::try_from(v) {
            Ok(p) if p <= 100 => Ok(Percent(p)),
            _ => Err(de::Error::custom(format!(
                "percentage must be 0..=100, got {v}"
            ))),
        }
    }
}

/// `"auto"` or an absolute path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AutoPath {
    Auto,
    Path(PathBuf),
}

impl<'de> Deserialize<'de> for AutoPath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s == "auto" {
            return Ok(AutoPath::Auto);
        }
        let p = PathBuf::from(&s);
        if !p.is_absolute() {
            return Err(de::Error::custom(format!(
                "expected \"auto\" or an absolute path, got {s:?}"
            )));
        }
        Ok(AutoPath::Path(p))
    }
}

/// `"auto"` or an explicit list of CPU core numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cores {
    Auto,
    List(Vec<u16>),
}

impl<'de> Deserialize<'de> for Cores {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Cores;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"auto\" or a list of core numbers such as [2, 3]")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Cores, E> {
                if s == "auto" {
                    Ok(Cores::Auto)
                } else {
                    Err(E::custom(format!(
                        "expected \"auto\" or a list of core numbers, got {s:?}"
                    )))
                }
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Cores, A::Error> {
                let mut v = Vec::new();
                while let Some(c) = seq.next_element::<i64>()? {
                    let core =
                        u16::try_from(c)
                            .ok()
                            .filter(|c| *c < MAX_CORE)
                            .ok_or_else(|| {
                                de::Error::custom(format!(
                                    "core number {c} out of range 0..{MAX_CORE}"
                                ))
                            })?;
                    if v.contains(&core) {
                        return Err(de::Error::custom(format!("core {core} listed twice")));
                    }
                    v.push(core);
                }
                if v.is_empty() {
                    return Err(de::Error::custom("core list is empty (use \"auto\")"));
                }
                Ok(Cores::List(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// Upper bound for configured core numbers (Linux's default NR_CPUS on x86_64 is 8192; 1024
/// already exceeds any machine this appliance targets and keeps typos like 10000 out).
pub const MAX_CORE: u16 = 1024;
