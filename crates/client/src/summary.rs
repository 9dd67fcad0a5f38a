//! The summary `strahl-client stream` prints at the end (stdout or `--json FILE`).
//!
//! Contract: [`Summary::to_json`] writes one JSON object with every counter of
//! [`crate::recv::Counters`] under a stable name, the session's resolved parameters, the
//! receive path (`rx`; `xdp`: AF_XDP's program and socket counters, or `null`), the
//! latency (first shard → frame reassembled, `null` when no frame arrived), the capture →
//! reassembled latency (the host's pts on CLOCK_MONOTONIC against the client's clock after
//! rebuild and verify: meaningful only when host and client share a machine) and how the
//! session ended; goodput is frame bytes over the time from the first datagram to the end.

use strahl_native::msg::{Mode, Reconfigured, codec};

use crate::recv::{Counters, Latency};

/// The JSON summary of one run.
#[derive(Debug, Clone)]
pub struct Summary {
    pub host: String,
    pub session_id: u64,
    pub codec: u64,
    pub mode: Mode,
    pub bitrate_kbps: u64,
    pub fec_percent: u8,
    pub shard_len: u16,
    pub gro: bool,
    /// The receive path: `af_xdp`, `recvmmsg` or `recv` (after recvmmsg failed).
    pub rx: &'static str,
    /// AF_XDP's counters when it received (`null` otherwise).
    pub xdp: Option<crate::xdp_rx::XdpReport>,
    /// How long an incomplete frame waited before it counted as lost.
    pub frame_timeout_ms: u64,
    /// Seconds from the first datagram to the end (0 when none arrived).
    pub seconds: f64,
    pub counters: Counters,
    pub latency: Option<Latency>,
    /// The host's capture time (pts) → frame rebuilt and verified, same-machine clock.
    pub capture_latency: Option<Latency>,
    pub in_flight_at_end: usize,
    pub first_failure: Option<String>,
    /// When and why frames were lost (the receiver's first few).
    pub loss_events: Vec<String>,
    /// Passthrough: (first frame id, bytes) of each frame size seen, in order.
    pub frame_sizes: Vec<(u32, usize)>,
    /// The epochs the host opened (answers to `--reconfigure`).
    pub reconfigured: Vec<Reconfigured>,
    /// How the session ended.
    pub end: String,
}

fn codec_name(c: u64) -> &'static str {
    match c {
        codec::H264 => "h264",
        codec::HEVC => "hevc",
        codec::AV1 => "av1",
        codec::PASSTHROUGH => "passthrough",
        _ => "unknown",
    }
}

fn json_str(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for ch in s.chars() {
        match ch {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

impl Summary {
    pub fn goodput_mbps(&self) -> f64 {
        if self.seconds > 0.0 {
            self.counters.bytes as f64 * 8.0 / self.seconds / 1e6
        } else {
            0.0
        }
    }

    pub fn to_json(&self) -> String {
        let c = &self.counters;
        let lat = |what: &str, l: Option<Latency>| match l {
            Some(l) => format!(
                "{{\"what\": \"{what}\", \"samples\": {}, \
                 \"p50_us\": {}, \"p99_us\": {}, \"max_us\": {}}}",
                l.samples, l.p50_us, l.p99_us, l.max_us
            ),
            None => "null".into(),
        };
        let latency = lat("first shard to frame reassembled", self.latency);
        let capture_latency = lat(
            "host capture (pts, CLOCK_MONOTONIC) to frame reassembled and verified",
            self.capture_latency,
        );
        let fields: Vec<(&str, String)> = vec![
            ("host", json_str(&self.host)),
            ("session_id", self.session_id.to_string()),
            ("codec", json_str(codec_name(self.codec))),
            (
                "mode",
                json_str(&format!(
                    "{}x{}@{}",
                    self.mode.width, self.mode.height, self.mode.fps
                )),
            ),
            ("bitrate_kbps", self.bitrate_kbps.to_string()),
            ("fec_percent", self.fec_percent.to_string()),
            ("shard_len", self.shard_len.to_string()),
            ("gro", self.gro.to_string()),
            ("rx", json_str(self.rx)),
            (
                "xdp",
                self.xdp
                    .as_ref()
                    .map_or_else(|| "null".into(), |x| x.to_json()),
            ),
            ("frame_timeout_ms", self.frame_timeout_ms.to_string()),
            ("seconds", format!("{:.3}", self.seconds)),
            ("frames", c.frames.to_string()),
            ("bytes", c.bytes.to_string()),
            ("goodput_mbps", format!("{:.3}", self.goodput_mbps())),
            ("keyframes", c.keyframes.to_string()),
            ("recovered", c.recovered.to_string()),
            ("shards_recovered", c.shards_recovered.to_string()),
            ("lost", c.lost.to_string()),
            ("verify_failures", c.verify_failures.to_string()),
            ("seq_out_of_order", c.seq_out_of_order.to_string()),
            ("datagrams", c.datagrams.to_string()),
            ("bad_tag", c.bad_tag.to_string()),
            ("replayed", c.replayed.to_string()),
            ("old_epoch", c.old_epoch.to_string()),
            ("surplus", c.surplus.to_string()),
            ("late", c.late.to_string()),
            ("duplicate", c.duplicate.to_string()),
            ("malformed", c.malformed.to_string()),
            ("over_budget", c.over_budget.to_string()),
            ("keyframe_requests", c.keyframe_requests.to_string()),
            ("loss_reports", c.loss_reports.to_string()),
            ("in_flight_at_end", self.in_flight_at_end.to_string()),
            ("latency", latency),
            ("capture_latency", capture_latency),
            (
                "first_failure",
                self.first_failure
                    .as_deref()
                    .map_or("null".into(), json_str),
            ),
            (
                "loss_events",
                format!(
                    "[{}]",
                    self.loss_events
                        .iter()
                        .map(|e| json_str(e))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
            (
                "frame_sizes",
                format!(
                    "[{}]",
                    self.frame_sizes
                        .iter()
                        .map(|(id, b)| format!("{{\"from_frame\": {id}, \"bytes\": {b}}}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
            (
                "reconfigured",
                format!(
                    "[{}]",
                    self.reconfigured
                        .iter()
                        .map(|r| format!(
                            "{{\"epoch\": {}, \"first_frame\": {}, \"bitrate_kbps\": {}, \
                             \"fec_percent\": {}, \"mode\": \"{}x{}@{}\", \"shard_len\": {}}}",
                            r.epoch,
                            r.first_frame,
                            r.bitrate_kbps,
                            r.fec_percent,
                            r.mode.width,
                            r.mode.height,
                            r.mode.fps,
                            r.shard_len
                        ))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
            ("end", json_str(&self.end)),
        ];
        let body: Vec<String> = fields
            .into_iter()
            .map(|(k, v)| format!("  \"{k}\": {v}"))
            .collect();
        format!("{{\n{}\n}}", body.join(",\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_is_json_with_every_counter() {
        let s = Summary {
            host: "a\"b".into(),
            session_id: 3,
            codec: codec::PASSTHROUGH,
            mode: Mode {
                width: 1280,
                height: 720,
                fps: 60,
            },
            bitrate_kbps: 1000,
            fec_percent: 20,
            shard_len: 1428,
            gro: true,
            rx: "af_xdp",
            xdp: Some(crate::xdp_rx::XdpReport {
                iface: "veth0".into(),
                queues: 1,
                redirected: 9,
                ..Default::default()
            }),
            frame_timeout_ms: 100,
            seconds: 2.0,
            counters: Counters {
                frames: 120,
                bytes: 250_000,
                ..Counters::default()
            },
            latency: Some(Latency {
                samples: 120,
                p50_us: 80,
                p99_us: 300,
                max_us: 900,
            }),
            capture_latency: None,
            in_flight_at_end: 1,
            first_failure: None,
            loss_events: vec!["0.5 s, after frame 3: 1 never seen".into()],
            frame_sizes: vec![(0, 2083), (9, 4166)],
            reconfigured: vec![Reconfigured {
                epoch: 1,
                first_frame: 9,
                bitrate_kbps: 2000,
                fec_percent: 30,
                mode: Mode {
                    width: 1280,
                    height: 720,
                    fps: 60,
                },
                shard_len: 1428,
            }],
            end: "2 s done".into(),
        };
        let j = s.to_json();
        for key in [
            "\"frames\": 120",
            "\"bytes\": 250000",
            "\"goodput_mbps\": 1.000",
            "\"recovered\": 0",
            "\"lost\": 0",
            "\"bad_tag\": 0",
            "\"replayed\": 0",
            "\"old_epoch\": 0",
            "\"verify_failures\": 0",
            "\"p99_us\": 300",
            "\"host\": \"a\\\"b\"",
            "\"codec\": \"passthrough\"",
            "\"rx\": \"af_xdp\"",
            "\"xdp\": {\"iface\": \"veth0\", \"queues\": 1, \"redirected\": 9",
            "\"first_failure\": null",
            "\"capture_latency\": null",
            "\"reconfigured\": [{\"epoch\": 1, \"first_frame\": 9, \"bitrate_kbps\": 2000, \"fec_percent\": 30, \"mode\": \"1280x720@60\", \"shard_len\": 1428}]",
            "\"frame_sizes\": [{\"from_frame\": 0, \"bytes\": 2083}, {\"from_frame\": 9, \"bytes\": 4166}]",
            "\"loss_events\": [\"0.5 s, after frame 3: 1 never seen\"]",
        ] {
            assert!(j.contains(key), "{key} missing in {j}");
        }
        assert!(j.starts_with('{') && j.ends_with('}'));
    }
}
