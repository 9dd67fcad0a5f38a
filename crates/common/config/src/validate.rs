//! Cross-field rules, checked after parsing. Each failure names the dotted key it is about.

use crate::types::{Config, VideoSource};

/// Lowest MTU that still carries a useful shard (IPv4 minimum reassembly size).
const MIN_MTU: u16 = 576;
/// Largest jumbo frame commonly supported by NICs.
const MAX_MTU: u16 = 9216;
/// Highest `[video] max_bitrate_kbps`: 20 Gbit/s (see its check).
pub const MAX_BITRATE_KBPS: u32 = 20_000_000;

pub(crate) fn check(c: &Config) -> Result<(), (String, String)> {
    let err = |k: &str, m: String| Err((k.to_owned(), m));
    if c.host.name.trim().is_empty() || c.host.name.len() > 64 {
        return err("host.name", "must be 1..=64 characters".into());
    }
    let base = c.network.gamestream_base_port.0;
    if !(6..=65535 - 21).contains(&base) {
        return err(
            "network.gamestream_base_port",
            format!("{base}: the derived ports (base − 5 … base + 21) must fit in 1..=65535"),
        );
    }
    let gs = c.network.gamestream_ports();
    for (key, port) in [
        ("network.native_port", c.network.native_port.0),
        ("network.status_port", c.network.status_port.0),
    ] {
        if let Some((what, _)) = gs.all().into_iter().find(|(_, p)| *p == port) {
            return err(
                key,
                format!(
                    "{port} clashes with the GameStream {what} port derived from gamestream_base_port"
                ),
            );
        }
    }
    if c.network.native_port == c.network.status_port {
        // UDP vs TCP would not clash technically, but one number for two services confuses firewalls and people.
        return err(
            "network.status_port",
            "must differ from network.native_port".into(),
        );
    }
    if !(MIN_MTU..=MAX_MTU).contains(&c.dataplane.mtu) {
        return err(
            "dataplane.mtu",
            format!("{} outside {MIN_MTU}..={MAX_MTU}", c.dataplane.mtu),
        );
    }
    // dataplane.cores: range and duplicates are checked while parsing; whether the cores exist
    // on this machine is checked when the plan is derived (Plan::derive).
    let v = &c.video;
    if v.source == VideoSource::Passthrough && v.passthrough_file.is_empty() {
        return err(
            "video.passthrough_file",
            "required when video.source = \"passthrough\"".into(),
        );
    }
    // Up to 20 Gbit/s: no encoder gets near it, but a native client's passthrough session
    // (the data plane's checkable frames, issue 10 item 5) offers the network any rate the cap
    // allows, and the tests push the path to 1–20 Gbit/s.
    if !(500..=MAX_BITRATE_KBPS).contains(&v.max_bitrate_kbps) {
        return err(
            "video.max_bitrate_kbps",
            format!("{} outside 500..={MAX_BITRATE_KBPS}", v.max_bitrate_kbps),
        );
    }
    if v.fec_percent_min > v.fec_percent_max {
        return err(
            "video.fec_percent_min",
            format!(
                "{} is above fec_percent_max {}",
                v.fec_percent_min.0, v.fec_percent_max.0
            ),
        );
    }
    if v.fec_percent_default < v.fec_percent_min || v.fec_percent_default > v.fec_percent_max {
        return err(
            "video.fec_percent_default",
            format!(
                "{} is outside [fec_percent_min, fec_percent_max] = [{}, {}]",
                v.fec_percent_default.0, v.fec_percent_min.0, v.fec_percent_max.0
            ),
        );
    }
    if ![2, 6, 8].contains(&c.audio.channels) {
        return err(
            "audio.channels",
            format!("{} is not 2, 6 or 8", c.audio.channels),
        );
    }
    if c.apps.is_empty() {
        return err("apps", "at least one app is required".into());
    }
    for (i, app) in c.apps.iter().enumerate() {
        if app.name.trim().is_empty() {
            return err(&format!("apps[{i}].name"), "must not be empty".into());
        }
        if c.apps[..i].iter().any(|a| a.name == app.name) {
            return err(
                &format!("apps[{i}].name"),
                format!("duplicate app name {:?}", app.name),
            );
        }
    }
    Ok(())
}
