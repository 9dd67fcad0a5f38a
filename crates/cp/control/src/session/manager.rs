//! The session manager's lifecycle: launch, resume and cancel per client, the data plane ending
//! sessions, control-stream events (keyframe requests, adaptive FEC, round trips, disconnects),
//! the FEC decay tick, and the views the status page reads.
//!
//! Contract: see the module contract in `session.rs`; this half arms pending launches
//! ([`SessionManager::launch`] / [`SessionManager::resume`]) and acts on streaming sessions,
//! while [`super::rtsp`] serves the pending launches' RTSP and turns PLAY into a stream. Imports
//! [`super::types`] only.

use std::collections::BTreeMap;
use std::time::Instant;

use strahl_enet::{ControlEvent, DisconnectReason};
use strahl_gamestream::VideoSupport;
use strahl_gamestream::handlers::canonical_ip;
use strahl_gamestream::{HostError, HostState, LaunchRequest, Permissions};
use strahl_ipc::{Codec, HdrMetadata, Message, SessionStop, SessionUpdate, StopReason, VideoCaps};
use strahl_metrics::{GLOBAL, Metric, Registry};
use strahl_rtsp::{HostCodecs, LaunchContext, PingPayload, RtspSession};
use strahl_seal::gamestream::{Role, RtspCipher};

use super::types::{
    Actions, ClientKey, ClientSlot, ControlAction, LaunchRandom, ManagerConfig, Pending,
    StreamView, Streaming, TERMINATION_GRACEFUL,
};
use crate::fec_adapt::ReportClass;

/// `a=x-ss-general.featureFlags` bit SS_FF_PEN_TOUCH_EVENTS (gamestream-host.md §A8).
const HOST_FF_PEN_TOUCH: u32 = 0x01;

/// See the module contract.
pub struct SessionManager {
    pub(super) cfg: ManagerConfig,
    /// What the data plane's encoder makes (H.264 only until its capabilities arrive).
    pub(super) video: EncoderVideo,
    pub(super) clients: BTreeMap<ClientKey, ClientSlot>,
    pub(super) next_id: u64,
    pub(super) next_arm_seq: u64,
}

impl SessionManager {
    pub fn new(cfg: ManagerConfig) -> Self {
        SessionManager {
            cfg,
            video: EncoderVideo::default(),
            clients: BTreeMap::new(),
            next_id: 1,
            next_arm_seq: 0,
        }
    }

    pub fn config(&self) -> &ManagerConfig {
        &self.cfg
    }

    /// The data plane's encoder capabilities (its `VideoCaps` event): from now on DESCRIBE
    /// advertises, ANNOUNCE accepts and /serverinfo reports exactly these formats.
    pub fn set_video_caps(&mut self, caps: &VideoCaps) {
        self.video = EncoderVideo::from_caps(caps);
        log::info!(
            "encoder {}: ServerCodecModeSupport {:#x}, HDR {}",
            self.video.describe,
            self.video.codecs.scm(),
            if self.video.codecs.ten_bit() {
                if self.video.hdr.is_some() {
                    "yes (with mastering metadata)"
                } else {
                    "yes (no mastering metadata)"
                }
            } else {
                "no"
            }
        );
    }

    /// What the encoder makes, as DESCRIBE/ANNOUNCE use it.
    pub fn host_codecs(&self) -> HostCodecs {
        self.video.codecs
    }

    /// /serverinfo's and /applist's view of the encoder.
    pub fn video_support(&self) -> VideoSupport {
        VideoSupport {
            codec_mode_support: self.video.codecs.scm(),
            hdr: self.video.codecs.ten_bit(),
        }
    }

    /// The encoder's one-line description ("openh264: H.264 profile 66 8-bit", ...).
    pub fn encoder_description(&self) -> &str {
        &self.video.describe
    }

    fn max_sessions(&self) -> usize {
        usize::from(self.cfg.max_sessions.max(1))
    }

    /// Clients with a running app.
    pub fn running_apps(&self) -> usize {
        self.clients.len()
    }

    /// The app running for `client`, if any.
    pub fn app_of(&self, client: &ClientKey) -> Option<u32> {
        self.clients.get(client).map(|c| c.app)
    }

    /// /serverinfo `state` and `currentgame` for the asking client (`None`: anonymous).
    pub fn state_for(&self, client: Option<&ClientKey>) -> HostState {
        match client.and_then(|c| self.clients.get(c)) {
            Some(slot) => HostState::Running { app_id: slot.app },
            None if self.clients.len() >= self.max_sessions() => HostState::Full,
            None => HostState::Free,
        }
    }

    /// The session `client` streams, if any.
    pub fn streaming_of(&self, client: &ClientKey) -> Option<Streaming> {
        self.clients
            .get(client)?
            .stream
            .as_ref()
            .map(|s| Streaming { id: s.id })
    }

    /// Every streaming session, by id.
    pub fn streams(&self) -> Vec<StreamView> {
        let mut v: Vec<StreamView> = self
            .clients
            .iter()
            .filter_map(|(k, c)| {
                let s = c.stream.as_ref()?;
                Some(StreamView {
                    id: s.id,
                    client: *k,
                    app: c.app,
                    format: s.format,
                    fec_percent: s.fec.current(),
                    rtt: s.rtt,
                    fec_recovered: s.fec_recovered,
                    fec_lost: s.fec_lost,
                })
            })
            .collect();
        v.sort_by_key(|s| s.id);
        v
    }

    /// Session `id`'s current FEC percentage (adaptive), if it streams.
    pub fn fec_percent(&self, id: u64) -> Option<u8> {
        self.streams()
            .into_iter()
            .find(|s| s.id == id)
            .map(|s| s.fec_percent)
    }

    /// `/launch` for `req`'s client (see the module contract for busy and full).
    pub fn launch(
        &mut self,
        req: &LaunchRequest,
        rand: LaunchRandom,
        now: Instant,
    ) -> Result<(), HostError> {
        let client = ClientKey::of_cert(&req.client_cert_der);
        if self.clients.contains_key(&client) {
            return Err(HostError::Busy);
        }
        if self.clients.len() >= self.max_sessions() {
            return Err(HostError::Full {
                max: self.cfg.max_sessions.max(1),
            });
        }
        let pending = self.arm(req, rand, now);
        self.clients.insert(
            client,
            ClientSlot {
                app: req.params.app_id,
                pending: Some(pending),
                stream: None,
            },
        );
        Ok(())
    }

    /// `/resume`: new keys for the client's running app; its running stream (and ENet
    /// registration) is replaced.
    pub fn resume(
        &mut self,
        req: &LaunchRequest,
        rand: LaunchRandom,
        now: Instant,
    ) -> Result<Actions, HostError> {
        let client = ClientKey::of_cert(&req.client_cert_der);
        if !self.clients.contains_key(&client) {
            return Err(HostError::NoRunningApp);
        }
        let pending = self.arm(req, rand, now);
        let slot = self
            .clients
            .get_mut(&client)
            .ok_or(HostError::NoRunningApp)?;
        let actions = stop_stream(slot, StopReason::Replaced, true);
        slot.pending = Some(pending);
        Ok(actions)
    }

    /// `/cancel` from `client`: terminate its control stream, stop its stream, free its slot.
    /// Idempotent; other clients are not touched.
    pub fn cancel(&mut self, client: &ClientKey) -> Actions {
        match self.clients.remove(client) {
            Some(mut slot) => stop_stream(&mut slot, StopReason::ClientQuit, true),
            None => Actions::default(),
        }
    }

    /// The operator stops session `id` (status page): its client's app is cancelled. `None`
    /// when no client streams under `id`.
    pub fn cancel_session(&mut self, id: u64) -> Option<Actions> {
        let client = self.owner_of(id)?;
        Some(self.cancel(&client))
    }

    fn owner_of(&self, id: u64) -> Option<ClientKey> {
        self.clients
            .iter()
            .find(|(_, c)| c.stream.as_ref().is_some_and(|s| s.id == id))
            .map(|(k, _)| *k)
    }

    /// The data plane ended session `id` (or went away: `None`, every session). The client's
    /// control stream is terminated: without media it would otherwise sit in a stream that never
    /// resumes. Its app stays running, so the client can `/resume` once the data plane is back.
    pub fn session_ended(&mut self, id: Option<u64>) -> Actions {
        let mut a = Actions::default();
        for slot in self.clients.values_mut() {
            if let Some(s) = &slot.stream
                && (id.is_none() || Some(s.id) == id)
            {
                a.control.push(ControlAction::Terminate {
                    session: s.id,
                    hresult: TERMINATION_GRACEFUL,
                });
                slot.stream = None;
            }
        }
        a
    }

    /// A control-stream event for `session` (the SessionStart id it was registered under).
    pub fn on_control(&mut self, session: u64, ev: &ControlEvent, now: Instant) -> Actions {
        self.on_control_in(session, ev, now, &GLOBAL)
    }

    /// [`Self::on_control`] counting into `metrics` (tests pass their own registry).
    pub fn on_control_in(
        &mut self,
        session: u64,
        ev: &ControlEvent,
        now: Instant,
        metrics: &Registry,
    ) -> Actions {
        let mut a = Actions::default();
        let Some(slot) = self
            .clients
            .values_mut()
            .find(|c| c.stream.as_ref().is_some_and(|s| s.id == session))
        else {
            // A replaced or stopped session's late events (its disconnect included).
            return a;
        };
        let keyframe = |cause: &str| {
            if let Some(i) = Registry::label_index(Metric::ControlKeyframeRequests, cause) {
                metrics.add_at(Metric::ControlKeyframeRequests, i, 1);
            }
            Message::SessionUpdate(SessionUpdate {
                id: session,
                bitrate_kbps: None,
                fec_percent: None,
                request_keyframe: true,
            })
        };
        match ev {
            ControlEvent::IdrRequested => a.ipc.push(keyframe("idr")),
            ControlEvent::RefInvalidated { .. } => a.ipc.push(keyframe("rfi")),
            ControlEvent::FecStatus(r) => {
                let Some(stream) = slot.stream.as_mut() else {
                    return a;
                };
                let (class, changed) = stream.fec.on_report(r, now);
                match class {
                    ReportClass::Recovered => stream.fec_recovered += 1,
                    ReportClass::Lost => stream.fec_lost += 1,
                    ReportClass::Clean => {}
                }
                if let Some(i) = Registry::label_index(Metric::ControlFecReports, class.label()) {
                    metrics.add_at(Metric::ControlFecReports, i, 1);
                }
                if let Some(p) = changed {
                    a.ipc.push(fec_update(session, p, metrics));
                }
            }
            ControlEvent::RoundTrip { rtt } => {
                if let Some(stream) = slot.stream.as_mut() {
                    stream.rtt = Some(*rtt);
                }
            }
            ControlEvent::Disconnected { reason } => {
                let stop = match reason {
                    DisconnectReason::PeerDisconnected => Some(StopReason::ClientQuit),
                    DisconnectReason::Timeout => Some(StopReason::ClientTimeout),
                    DisconnectReason::DecryptFailed => Some(StopReason::Error),
                    // Terminated: we ended it ourselves and already sent the SessionStop.
                    // HostShutdown: serve stops its sessions on the way out.
                    DisconnectReason::Terminated(_) | DisconnectReason::HostShutdown => None,
                };
                if let Some(reason) = stop {
                    // The app keeps running: the client may /resume.
                    a = stop_stream(slot, reason, false);
                }
            }
            // An HDR stream: tell the client now that its control stream is up (Sunshine sends
            // it from the stream start as well; the client enables HDR on it).
            ControlEvent::Connected { .. } => {
                if let Some(stream) = slot.stream.as_ref()
                    && stream.format.hdr
                {
                    a.control.push(ControlAction::HdrMode {
                        session,
                        metadata: self.video.hdr.unwrap_or_default(),
                    });
                }
            }
            // Input and the clipboard are handled on the control server's thread
            // (`control_link`), never here.
            ControlEvent::StartB
            | ControlEvent::LtrAck { .. }
            | ControlEvent::Input(_)
            | ControlEvent::SetClipboard { .. } => {}
        }
        a
    }

    /// Time passes: every session's adaptive FEC may decay. Call every few hundred ms.
    pub fn tick(&mut self, now: Instant) -> Actions {
        self.tick_in(now, &GLOBAL)
    }

    pub fn tick_in(&mut self, now: Instant, metrics: &Registry) -> Actions {
        let mut a = Actions::default();
        for slot in self.clients.values_mut() {
            if let Some(s) = slot.stream.as_mut()
                && let Some(p) = s.fec.tick(now)
            {
                a.ipc.push(fec_update(s.id, p, metrics));
            }
        }
        a
    }

    fn arm(&mut self, req: &LaunchRequest, rand: LaunchRandom, now: Instant) -> Pending {
        let mut ctx =
            LaunchContext::new(PingPayload::from_u64(rand.ping_payload), rand.connect_data);
        ctx.video_port = self.cfg.video_port;
        ctx.audio_port = self.cfg.audio_port;
        ctx.control_port = self.cfg.control_port;
        ctx.fec_percent = u32::from(self.cfg.fec_percent);
        ctx.codecs = self.video.codecs;
        ctx.set_video_encryption(self.cfg.video_encryption);
        // Pen/touch events (featureFlags 0x01) are advertised to a client allowed either:
        // Moonlight then sends them as such (the uinput touchscreen and pen tablet replay them).
        // A client allowed neither is not told, so it falls back to driving the mouse with
        // touch instead of sending events the host would drop.
        if req.permissions.allows(Permissions::TOUCH) || req.permissions.allows(Permissions::PEN) {
            ctx.host_feature_flags |= HOST_FF_PEN_TOUCH;
        }
        let p = &req.params;
        let armed_seq = self.next_arm_seq;
        self.next_arm_seq += 1;
        Pending {
            ping_payload: PingPayload::from_u64(rand.ping_payload),
            connect_data: rand.connect_data,
            rikey: p.rikey,
            rikeyid: p.rikeyid,
            client_ip: canonical_ip(req.client_ip),
            armed_at: now,
            armed_seq,
            rtsp: RtspSession::new(ctx),
            cipher: (p.corever >= 1).then(|| RtspCipher::new(&p.rikey, Role::Host)),
            negotiated: None,
            permissions: req.permissions,
        }
    }
}

/// The encoder as the negotiation sees it.
#[derive(Debug, Clone)]
pub(super) struct EncoderVideo {
    pub(super) codecs: HostCodecs,
    pub(super) hdr: Option<HdrMetadata>,
    pub(super) describe: String,
}

impl Default for EncoderVideo {
    /// Before the data plane's report: H.264 (what OpenH264, the default, makes).
    fn default() -> Self {
        EncoderVideo {
            codecs: HostCodecs::default(),
            hdr: None,
            describe: "not reported yet (H.264 assumed)".into(),
        }
    }
}

impl EncoderVideo {
    /// 4:2:0 formats at 8 and 10 bits set the codec flags; 4:4:4 is advertised only when every
    /// advertised codec also has it (the SCM bits cannot say "4:4:4 for AV1 only" otherwise).
    pub(super) fn from_caps(caps: &VideoCaps) -> Self {
        let mut c = HostCodecs::NONE;
        let has = |codec: Codec, depth: u8, yuv444: bool| {
            caps.formats
                .iter()
                .any(|f| f.codec == codec && f.bit_depth == depth && f.yuv444 == yuv444)
        };
        c.h264 = has(Codec::H264, 8, false);
        c.hevc = has(Codec::Hevc, 8, false);
        c.hevc_main10 = has(Codec::Hevc, 10, false);
        c.av1 = has(Codec::Av1, 8, false);
        c.av1_main10 = has(Codec::Av1, 10, false);
        let any = c.h264 || c.hevc || c.hevc_main10 || c.av1 || c.av1_main10;
        c.yuv444 = any
            && (!c.h264 || has(Codec::H264, 8, true))
            && (!c.hevc || has(Codec::Hevc, 8, true))
            && (!c.hevc_main10 || has(Codec::Hevc, 10, true))
            && (!c.av1 || has(Codec::Av1, 8, true))
            && (!c.av1_main10 || has(Codec::Av1, 10, true));
        if !any {
            log::error!(
                "encoder {} reports no format a GameStream client can take; every stream will \
                 be refused",
                caps.encoder
            );
        }
        let formats: Vec<String> = caps
            .formats
            .iter()
            .map(|f| {
                format!(
                    "{:?} profile {} {}-bit{}",
                    f.codec,
                    f.profile,
                    f.bit_depth,
                    if f.yuv444 { " 4:4:4" } else { "" }
                )
            })
            .collect();
        EncoderVideo {
            codecs: c,
            hdr: caps.hdr,
            describe: format!("{} ({})", caps.encoder, formats.join(", ")),
        }
    }
}

/// Ends `slot`'s stream; `terminate`: also end its control stream (the client is still
/// connected and must be told).
pub(super) fn stop_stream(slot: &mut ClientSlot, reason: StopReason, terminate: bool) -> Actions {
    let mut a = Actions::default();
    if let Some(s) = slot.stream.take() {
        if terminate {
            a.control.push(ControlAction::Terminate {
                session: s.id,
                hresult: TERMINATION_GRACEFUL,
            });
        }
        a.ipc
            .push(Message::SessionStop(SessionStop { id: s.id, reason }));
    }
    a
}

/// A FEC change for `session`. The gauge is host-wide (the metrics table has no per-session
/// series): it shows the latest change of any session; the status page shows each session's.
fn fec_update(session: u64, percent: u8, metrics: &Registry) -> Message {
    metrics.set(Metric::ControlFecPercent, u64::from(percent));
    Message::SessionUpdate(SessionUpdate {
        id: session,
        bitrate_kbps: None,
        fec_percent: Some(percent),
        request_keyframe: false,
    })
}
