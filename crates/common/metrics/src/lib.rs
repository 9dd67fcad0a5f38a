//! `strahl-metrics`: one declaration table of counters and gauges, lock-free storage, and two
//! exports generated from the same table: Prometheus text exposition (format 0.0.4, with
//! `# HELP` / `# TYPE`) and JSON.
//!
//! The table ([`TABLE`], declared with [`metrics_table!`] below) is the single source of truth:
//! the [`Metric`] enum, the storage layout and both exports come from it, so a metric cannot be
//! exported in one format and missing in the other.
//!
//! Storage is a fixed array of `AtomicU64` (one per series; a labelled metric has one series per
//! declared label value), updated with `Relaxed` ordering: metrics are statistics, not
//! synchronisation. Gauges hold non-negative values. A [`Registry`] is `const`-constructible, so a
//! process can keep one in a `static` ([`GLOBAL`]); tests use their own.
//!
//! Series keys used in snapshots (and on the IPC wire) are `name` or `name{label="value"}`,
//! exactly as in the Prometheus output.
#![forbid(unsafe_code)]

mod render;

use std::sync::atomic::{AtomicU64, Ordering};

pub use render::{escape_help, escape_json, escape_label_value};

/// Counter (monotonic) or gauge (set to the current value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        }
    }
}

/// A label with its closed set of values (declared up front so storage stays a fixed array).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Label {
    pub name: &'static str,
    pub values: &'static [&'static str],
}

/// One metric's declaration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Desc {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    pub label: Option<Label>,
}

impl Desc {
    pub const fn series_count(&self) -> usize {
        match self.label {
            Some(l) => l.values.len(),
            None => 1,
        }
    }
}

/// Declares the metric table: `Id: Kind "name" "help" ["label": "v1", "v2"];`
#[macro_export]
macro_rules! metrics_table {
    ($( $id:ident : $kind:ident $name:literal $help:literal $( [ $lname:literal : $($lv:literal),+ ] )? ; )*) => {
        /// Every declared metric; `Metric::X as usize` indexes [`TABLE`].
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(usize)]
        pub enum Metric { $($id),* }

        impl Metric {
            /// All metrics in table order.
            pub const ALL: &'static [Metric] = &[$(Metric::$id),*];
        }

        /// The declaration table.
        pub const TABLE: &[Desc] = &[$(
            Desc {
                name: $name,
                help: $help,
                kind: Kind::$kind,
                label: $crate::metrics_table!(@label $( $lname $($lv),+ )?),
            }
        ),*];
    };
    (@label) => { None };
    (@label $lname:literal $($lv:literal),+) => { Some(Label { name: $lname, values: &[$($lv),+] }) };
}

metrics_table! {
    IpcMessagesReceived: Counter "strahl_ipc_messages_received_total"
        "IPC messages received by this process.";
    IpcMessagesSent: Counter "strahl_ipc_messages_sent_total"
        "IPC messages sent by this process.";
    IpcDecodeErrors: Counter "strahl_ipc_decode_errors_total"
        "IPC datagrams that could not be decoded (malformed, oversized or unknown kind).";
    IpcHandshakesRefused: Counter "strahl_ipc_handshakes_refused_total"
        "IPC handshakes refused (protocol major version mismatch, wrong role, or busy).";
    DataplaneConnected: Gauge "strahl_dataplane_connected"
        "1 while the control plane and the data plane are connected, else 0.";
    SessionsActive: Gauge "strahl_sessions_active"
        "Streaming sessions currently running.";
    SessionsStarted: Counter "strahl_sessions_started_total"
        "Streaming sessions started since process start.";
    SessionsStopped: Counter "strahl_sessions_stopped_total"
        "Streaming sessions stopped since process start.";
    TransportChosen: Gauge "strahl_transport_chosen"
        "Packet transport in use: 1 on the chosen transport, 0 on the others."
        ["transport": "none", "af_xdp", "io_uring", "sendmmsg"];
    TransportRefused: Gauge "strahl_transport_refused"
        "1 on each transport the start-up self-test refused (reason in the log and the IPC event)."
        ["transport": "af_xdp", "io_uring", "sendmmsg"];
    PacketsSent: Counter "strahl_packets_sent_total"
        "Media packets handed to the transport."
        ["stream": "video", "audio"];
    BytesSent: Counter "strahl_bytes_sent_total"
        "Media bytes (UDP payload) handed to the transport."
        ["stream": "video", "audio"];
    MediaPacketsByTransport: Counter "strahl_media_packets_sent_total"
        "Media packets (video and audio, every session) that left through each transport."
        ["transport": "af_xdp", "io_uring", "sendmmsg"];
    MediaTransportFallbacks: Counter "strahl_media_transport_fallbacks_total"
        "Session paths moved to a fallback transport because their first packets were not seen leaving the interface (kernel TX counter)."
        ["from": "af_xdp", "io_uring", "sendmmsg"];
    SessionsByTransport: Gauge "strahl_media_sessions"
        "Media sessions whose video currently leaves through each transport."
        ["transport": "af_xdp", "io_uring", "sendmmsg"];
    TxTileSpinNanos: Counter "strahl_tx_tile_spin_nanoseconds_total"
        "Time the tx tile busy-waited for pacing releases (CPU spent on timing, not on packets; the same for every transport).";
    TxTileStalls: Counter "strahl_tx_tile_stalls_total"
        "Releases the tx tile cut short or skipped because a transport queue had no free frame (back-pressure; the session is retried, others go on).";
    FecParityLowered: Counter "strahl_fec_parity_lowered_total"
        "GameStream frames whose per-block parity was lowered to fit the 4-block FEC limit.";
    FramesRefused: Counter "strahl_frames_refused_total"
        "Frames not sent because they could not be protected by FEC within the protocol limits.";
    VideoFramesCaptured: Counter "strahl_video_frames_captured_total"
        "Video frames taken from the source by the data plane's media pipeline.";
    VideoFramesEncoded: Counter "strahl_video_frames_encoded_total"
        "Video access units produced by the encoder.";
    VideoFramesSent: Counter "strahl_video_frames_sent_total"
        "Video frames packetized with FEC and handed to the transport.";
    VideoKeyframes: Counter "strahl_video_keyframes_total"
        "IDR access units sent (the first frame and every keyframe request).";
    VideoFramesSkipped: Counter "strahl_video_frames_skipped_total"
        "Frame slots skipped because the pipeline was late (the frame clock skips, never bursts).";
    VideoFramesZeroCopy: Counter "strahl_video_frames_zero_copy_total"
        "Captured frames handed to the encoder as dmabufs without a CPU copy (KMS capture into NVENC).";
    VideoZeroCopyFallbacks: Counter "strahl_video_zero_copy_fallbacks_total"
        "Sessions that left zero-copy capture: the GPU refused a dmabuf import (modifier, format, driver) or was lost; they continue with the CPU copy (map + convert), said in the log.";
    VideoEncodeMicros: Counter "strahl_video_encode_microseconds_total"
        "Wall time spent in the video encoder (divide by frames encoded for the mean).";
    VideoFecPercent: Gauge "strahl_video_fec_percent"
        "FEC parity % the data plane's video packetizer currently applies (GameStream).";
    VideoPacingKbps: Gauge "strahl_video_pacing_kbps"
        "Rate the video pacer releases the latest frame at (spread over part of the frame interval), kbit/s.";
    VideoKnobDrops: Counter "strahl_video_knob_drops_total"
        "Video packets dropped on purpose by the [testing] video_drop_fraction knob.";
    AudioSource: Gauge "strahl_audio_source"
        "Audio source chosen at start: 1 on the chosen one (the reason is in the data plane's start-up line)."
        ["source": "none", "tone", "pipewire"];
    AudioCaptureUnderruns: Counter "strahl_audio_capture_underruns_total"
        "Audio packets padded with silence because PipeWire capture had not delivered enough samples in time.";
    AudioCaptureRestarts: Counter "strahl_audio_capture_restarts_total"
        "PipeWire capture processes (pw-record) that exited during a session and were started again.";
    PingsLearned: Counter "strahl_pings_learned_total"
        "Media destinations learned (or changed) from client pings."
        ["stream": "video", "audio"];
    IpcOutboxRefused: Counter "strahl_ipc_outbox_refused_total"
        "IPC messages for the data plane refused because the control plane's outbox was full.";
    ControlFecPercent: Gauge "strahl_control_fec_percent"
        "FEC parity % the adaptive controller currently asks of the data plane (GameStream; the highest over streaming sessions).";
    ControlRttMicros: Gauge "strahl_control_rtt_microseconds"
        "Round-trip time to the streaming clients, as ENet's smoothed estimate on their control streams (the highest over streaming sessions).";
    ControlFecReports: Counter "strahl_control_fec_status_reports_total"
        "SS_FRAME_FEC_STATUS reports from clients, by what the reported block went through."
        ["result": "clean", "recovered", "lost"];
    ControlKeyframeRequests: Counter "strahl_control_keyframe_requests_total"
        "Keyframes asked of the data plane on behalf of a client, by cause."
        ["cause": "idr", "rfi"];
    ControlDisconnects: Counter "strahl_control_disconnects_total"
        "GameStream control (ENet) sessions that ended, by reason."
        ["reason": "peer", "timeout", "decrypt", "terminated", "shutdown"];
    InputEvents: Counter "strahl_input_events_total"
        "Client input events delivered to the input sink.";
    InputSinkErrors: Counter "strahl_input_sink_errors_total"
        "Client input events (or releases) the input sink failed to apply.";
    InputDropped: Counter "strahl_input_dropped_total"
        "Client input events dropped because the client lacks the permission for that kind of input."
        ["kind": "keyboard", "mouse", "controller", "touch", "pen"];
}

/// Number of declared metrics.
pub const METRICS: usize = TABLE.len();

const fn offsets() -> [usize; METRICS] {
    let mut out = [0usize; METRICS];
    let mut acc = 0;
    let mut i = 0;
    while i < METRICS {
        out[i] = acc;
        acc += TABLE[i].series_count();
        i += 1;
    }
    out
}

const fn total_series() -> usize {
    let mut acc = 0;
    let mut i = 0;
    while i < METRICS {
        acc += TABLE[i].series_count();
        i += 1;
    }
    acc
}

/// First storage slot of each metric.
const OFFSETS: [usize; METRICS] = offsets();
/// Number of storage slots (series) in a registry.
pub const SERIES: usize = total_series();

/// Lock-free storage for every series of [`TABLE`].
#[derive(Debug)]
pub struct Registry {
    values: [AtomicU64; SERIES],
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

/// The process-wide registry.
pub static GLOBAL: Registry = Registry::new();

impl Registry {
    pub const fn new() -> Registry {
        Registry {
            values: [const { AtomicU64::new(0) }; SERIES],
        }
    }

    fn slot(&self, m: Metric, idx: usize) -> Option<&AtomicU64> {
        let d = &TABLE[m as usize];
        if idx >= d.series_count() {
            // A wrong label index is a programming error; in release it is dropped, not fatal.
            debug_assert!(false, "{}: label index {idx} out of range", d.name);
            return None;
        }
        self.values.get(OFFSETS[m as usize] + idx)
    }

    /// Adds 1 to an unlabelled metric.
    pub fn inc(&self, m: Metric) {
        self.add_at(m, 0, 1);
    }

    /// Adds `n` to an unlabelled metric.
    pub fn add(&self, m: Metric, n: u64) {
        self.add_at(m, 0, n);
    }

    /// Adds `n` to series `idx` (index into the label's declared values).
    pub fn add_at(&self, m: Metric, idx: usize, n: u64) {
        if let Some(a) = self.slot(m, idx) {
            a.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Subtracts `n` from a gauge, saturating at 0.
    pub fn sub(&self, m: Metric, n: u64) {
        if let Some(a) = self.slot(m, 0) {
            // fetch_update never fails with a closure that always returns Some.
            let _ = a.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(v.saturating_sub(n))
            });
        }
    }

    /// Sets an unlabelled gauge.
    pub fn set(&self, m: Metric, v: u64) {
        self.set_at(m, 0, v);
    }

    pub fn set_at(&self, m: Metric, idx: usize, v: u64) {
        if let Some(a) = self.slot(m, idx) {
            a.store(v, Ordering::Relaxed);
        }
    }

    /// Info-style gauge: 1 on series `idx`, 0 on every other series of `m`.
    pub fn set_info(&self, m: Metric, idx: usize) {
        for i in 0..TABLE[m as usize].series_count() {
            self.set_at(m, i, u64::from(i == idx));
        }
    }

    pub fn get(&self, m: Metric) -> u64 {
        self.get_at(m, 0)
    }

    pub fn get_at(&self, m: Metric, idx: usize) -> u64 {
        self.slot(m, idx).map_or(0, |a| a.load(Ordering::Relaxed))
    }

    /// Index of `value` among `m`'s declared label values.
    pub fn label_index(m: Metric, value: &str) -> Option<usize> {
        TABLE[m as usize]
            .label?
            .values
            .iter()
            .position(|v| *v == value)
    }

    /// Visits every series in table order: (declaration, label value if labelled, value).
    pub fn for_each_series(
        &self,
        mut f: impl FnMut(&Desc, Option<(&'static str, &'static str)>, u64),
    ) {
        for (i, d) in TABLE.iter().enumerate() {
            for s in 0..d.series_count() {
                let v = self.values[OFFSETS[i] + s].load(Ordering::Relaxed);
                f(d, d.label.map(|l| (l.name, l.values[s])), v);
            }
        }
    }

    /// Every series as (key, value); see the crate docs for the key format.
    pub fn snapshot(&self) -> Vec<(String, u64)> {
        let mut out = Vec::with_capacity(SERIES);
        self.for_each_series(|d, label, v| out.push((series_key(d.name, label), v)));
        out
    }

    /// Sets series from a snapshot (e.g. the data plane's, received over IPC). Keys this build
    /// does not know are skipped (a peer of a newer minor may have more); returns how many.
    pub fn absorb(&self, snapshot: &[(String, u64)]) -> usize {
        let mut unknown = 0;
        for (key, value) in snapshot {
            match find_series(key) {
                Some((m, idx)) => self.set_at(m, idx, *value),
                None => unknown += 1,
            }
        }
        unknown
    }

    /// Prometheus text exposition (format 0.0.4), appended to `out`.
    pub fn render_prometheus(&self, out: &mut String) {
        render::prometheus(self, out);
    }

    /// JSON export: `{"metrics":[{"name","help","type","series":[{"labels":{..},"value"}]}]}`.
    pub fn render_json(&self, out: &mut String) {
        render::json(self, out);
    }
}

/// `name` or `name{label="value"}`.
pub fn series_key(name: &str, label: Option<(&str, &str)>) -> String {
    match label {
        None => name.to_owned(),
        Some((l, v)) => format!("{name}{{{l}=\"{}\"}}", escape_label_value(v)),
    }
}

/// Finds the metric and series index for a series key.
pub fn find_series(key: &str) -> Option<(Metric, usize)> {
    let (name, label) = match key.split_once('{') {
        Some((n, rest)) => (n, Some(rest.strip_suffix('}')?)),
        None => (key, None),
    };
    let i = TABLE.iter().position(|d| d.name == name)?;
    let m = Metric::ALL[i];
    match (TABLE[i].label, label) {
        (None, None) => Some((m, 0)),
        (Some(l), Some(sel)) => {
            let (lname, quoted) = sel.split_once('=')?;
            let value = quoted.strip_prefix('"')?.strip_suffix('"')?;
            if lname != l.name {
                return None;
            }
            l.values
                .iter()
                .position(|v| escape_label_value(v) == value)
                .map(|s| (m, s))
        }
        _ => None,
    }
}
