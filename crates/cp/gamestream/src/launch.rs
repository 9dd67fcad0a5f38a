//! /launch, /resume, /cancel: parameter validation and the seam to the session manager
//! (reference §A7, §B5).
//!
//! Contract: `LaunchParams::from_query` turns a hostile query into a validated, typed request
//! or a `QueryError`. The server hands requests to a `SessionHost` (implemented by the
//! embedding application's session manager) and maps its `HostError`s to the XML status codes
//! Sunshine uses. Sessions are per client (its paired certificate): `cancel` and /serverinfo's
//! `state` concern the asking client only ([`HostState`]). `RecordingSessionHost` is a minimal
//! in-crate implementation that only records state, for tests and for running the HTTP side
//! alone.

use std::net::IpAddr;
use std::sync::Mutex;

use crate::query::{Query, QueryError};

/// Stereo `surroundAudioInfo` (0x3 << 16 | 2), the default when absent.
pub const SURROUND_STEREO: u32 = 196_610;
/// Largest accepted stream dimension in `mode` (8K is 7680; leave headroom, reject nonsense).
pub const MAX_DIMENSION: u32 = 16_384;
/// Largest accepted fps in `mode`.
pub const MAX_FPS: u32 = 1_000;

/// The `mode=WxHxFPS` parameter (informational; the RTSP ANNOUNCE is authoritative).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DisplayMode {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
}

impl DisplayMode {
    pub fn parse(s: &str) -> Option<Self> {
        let mut it = s.split('x');
        let mut next = |max: u32| {
            it.next()?
                .parse::<u32>()
                .ok()
                .filter(|v| (1..=max).contains(v))
        };
        let m = DisplayMode {
            width: next(MAX_DIMENSION)?,
            height: next(MAX_DIMENSION)?,
            fps: next(MAX_FPS)?,
        };
        if it.next().is_some() { None } else { Some(m) }
    }
}

/// Validated parameters of /launch (`is_launch`) or /resume.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LaunchParams {
    /// `appid` (launch only; 0 for resume).
    pub app_id: u32,
    /// `rikey`: the AES-128 key for every later cipher.
    pub rikey: [u8; 16],
    /// `rikeyid` as its u32 bit pattern (avRiKeyId).
    pub rikeyid: u32,
    pub mode: Option<DisplayMode>,
    pub sops: bool,
    pub local_audio_play_mode: bool,
    pub surround_audio_info: u32,
    pub gcmap: u32,
    pub hdr_mode: bool,
    /// `corever` ≥ 1 selects encrypted RTSP (`rtspenc://`).
    pub corever: u32,
}

fn flag(q: &Query, key: &'static str) -> Result<bool, QueryError> {
    Ok(q.opt_u32(key)?.is_some_and(|v| v != 0))
}

impl LaunchParams {
    /// Validates a /launch (`is_launch = true`) or /resume query.
    pub fn from_query(q: &Query, is_launch: bool) -> Result<Self, QueryError> {
        let app_id = if is_launch {
            let id = q.u32("appid")?;
            if id == 0 {
                return Err(QueryError::Invalid {
                    key: "appid",
                    reason: "must be positive",
                });
            }
            if !q.has("localaudioplaymode") {
                return Err(QueryError::Missing("localAudioPlayMode"));
            }
            id
        } else {
            0
        };
        let rikey: [u8; 16] = q
            .hex("rikey", Some(16))?
            .try_into()
            .expect("length checked");
        let rikeyid = q.i32_bits("rikeyid")?;
        let mode = match q.get("mode") {
            None => None,
            Some(m) => Some(DisplayMode::parse(m).ok_or(QueryError::Invalid {
                key: "mode",
                reason: "not WxHxFPS",
            })?),
        };
        Ok(LaunchParams {
            app_id,
            rikey,
            rikeyid,
            mode,
            sops: flag(q, "sops")?,
            local_audio_play_mode: flag(q, "localaudioplaymode")?,
            surround_audio_info: q.opt_u32("surroundaudioinfo")?.unwrap_or(SURROUND_STEREO),
            gcmap: q.opt_u32("gcmap")?.unwrap_or(0),
            hdr_mode: flag(q, "hdrmode")?,
            corever: q.opt_u32("corever")?.unwrap_or(0),
        })
    }
}

/// A launch or resume handed to the session manager.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LaunchRequest {
    pub params: LaunchParams,
    /// The paired client's certificate (DER) that asked.
    pub client_cert_der: Vec<u8>,
    /// The client's address and the local address the request arrived on (the RTSP URL
    /// points at the latter).
    pub client_ip: IpAddr,
    pub local_ip: IpAddr,
    /// The client's permissions when it asked (its input is filtered by them for the whole
    /// stream; an operator's change applies from its next launch or resume).
    pub permissions: crate::perms::Permissions,
}

/// Why the session manager refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostError {
    /// The asking client's app is already running (launch; Moonlight resumes its own app with
    /// /resume) → 400.
    Busy,
    /// `max` sessions already run for other clients (launch) → 400.
    Full { max: u8 },
    /// Nothing to resume → 503.
    NoRunningApp,
    /// Encoder/capture could not start → 503 with the message.
    Unavailable(String),
}

/// What /serverinfo tells the asking client (`currentgame` and `state`, §A4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostState {
    /// The client may launch: `SUNSHINE_SERVER_FREE`, currentgame 0.
    Free,
    /// The client's own app runs: `SUNSHINE_SERVER_BUSY`, currentgame = the app (the client
    /// resumes it, §B5).
    Running { app_id: u32 },
    /// The client has no app and the host has no room: `SUNSHINE_SERVER_BUSY`, currentgame 0
    /// (the client launches and is told why it cannot; a non-zero currentgame would send it to
    /// /resume or /cancel, which act on its own, absent, session).
    Full,
}

/// The seam between nvhttp and the session manager. Calls are made from the server's async
/// tasks: implementations must return promptly (hand work to their own task or channel).
///
/// A client is its paired certificate (`client_cert_der`): Moonlight sends the same `uniqueid`
/// from every device (§B2), so the certificate is the only per-client identity.
pub trait SessionHost: Send + Sync + 'static {
    /// Start `params.app_id` for the asking client and arm a pending launch with the keys.
    fn launch(&self, req: LaunchRequest) -> Result<(), HostError>;
    /// Re-arm the asking client's launch with new keys for its running app.
    fn resume(&self, req: LaunchRequest) -> Result<(), HostError>;
    /// Stop the asking client's streams and app. Cancelling with nothing running is not an
    /// error; other clients' sessions are not touched.
    fn cancel(&self, client_cert_der: &[u8]) -> Result<(), HostError>;
    /// /serverinfo for the asking client; `None` over HTTP, where the asker is anonymous (it is
    /// answered as a client without a session).
    fn state_for(&self, client_cert_der: Option<&[u8]>) -> HostState;
    /// What the host's encoder can make now (its SCM bits and whether it can make HDR), for
    /// /serverinfo and /applist; `None`: not known (yet), the configured SCM is reported.
    fn video_support(&self) -> Option<VideoSupport> {
        None
    }
}

/// The encoder's capabilities as nvhttp reports them (§A4, §A6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VideoSupport {
    /// ServerCodecModeSupport; never 0.
    pub codec_mode_support: u32,
    /// A 10-bit format is available: /applist says `IsHdrSupported` 1 for HDR-capable apps.
    pub hdr: bool,
}

/// One recorded call on `RecordingSessionHost`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostEvent {
    Launch(LaunchRequest),
    Resume(LaunchRequest),
    /// The cancelling client's certificate (DER).
    Cancel(Vec<u8>),
}

/// Most events `RecordingSessionHost` keeps (oldest dropped), so a long-running demo host
/// does not grow without bound.
pub const MAX_RECORDED_EVENTS: usize = 1024;

#[derive(Debug, Default)]
struct Recorded {
    /// Running app per client certificate.
    apps: std::collections::BTreeMap<Vec<u8>, u32>,
    /// What `video_support` answers (set by tests).
    video: Option<VideoSupport>,
    events: Vec<HostEvent>,
}

/// A `SessionHost` that only records state: launch marks the client's app running, cancel
/// frees it; at most `max_sessions` clients (1 unless [`RecordingSessionHost::with_max_sessions`]).
#[derive(Debug)]
pub struct RecordingSessionHost {
    max_sessions: usize,
    inner: Mutex<Recorded>,
}

impl Default for RecordingSessionHost {
    fn default() -> Self {
        Self::with_max_sessions(1)
    }
}

impl RecordingSessionHost {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_max_sessions(max_sessions: u8) -> Self {
        RecordingSessionHost {
            max_sessions: usize::from(max_sessions.max(1)),
            inner: Mutex::new(Recorded::default()),
        }
    }

    /// Makes `video_support` answer `v` (an encoder's report).
    pub fn set_video_support(&self, v: Option<VideoSupport>) {
        self.lock().video = v;
    }

    /// Events so far, oldest first.
    pub fn events(&self) -> Vec<HostEvent> {
        self.lock().events.clone()
    }

    /// The app running for the client with this certificate.
    pub fn app_of(&self, client_cert_der: &[u8]) -> Option<u32> {
        self.lock().apps.get(client_cert_der).copied()
    }

    /// How many clients have an app running.
    pub fn running(&self) -> usize {
        self.lock().apps.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Recorded> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn record(g: &mut Recorded, e: HostEvent) {
        if g.events.len() >= MAX_RECORDED_EVENTS {
            g.events.remove(0);
        }
        g.events.push(e);
    }
}

impl SessionHost for RecordingSessionHost {
    fn launch(&self, req: LaunchRequest) -> Result<(), HostError> {
        let mut g = self.lock();
        if g.apps.contains_key(&req.client_cert_der) {
            return Err(HostError::Busy);
        }
        if g.apps.len() >= self.max_sessions {
            return Err(HostError::Full {
                max: u8::try_from(self.max_sessions).unwrap_or(u8::MAX),
            });
        }
        g.apps
            .insert(req.client_cert_der.clone(), req.params.app_id);
        Self::record(&mut g, HostEvent::Launch(req));
        Ok(())
    }

    fn resume(&self, req: LaunchRequest) -> Result<(), HostError> {
        let mut g = self.lock();
        if !g.apps.contains_key(&req.client_cert_der) {
            return Err(HostError::NoRunningApp);
        }
        Self::record(&mut g, HostEvent::Resume(req));
        Ok(())
    }

    fn cancel(&self, client_cert_der: &[u8]) -> Result<(), HostError> {
        let mut g = self.lock();
        g.apps.remove(client_cert_der);
        Self::record(&mut g, HostEvent::Cancel(client_cert_der.to_vec()));
        Ok(())
    }

    fn video_support(&self) -> Option<VideoSupport> {
        self.lock().video
    }

    fn state_for(&self, client_cert_der: Option<&[u8]>) -> HostState {
        let g = self.lock();
        match client_cert_der.and_then(|c| g.apps.get(c)) {
            Some(&app_id) => HostState::Running { app_id },
            None if g.apps.len() >= self.max_sessions => HostState::Full,
            None => HostState::Free,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn launch_params_validation() {
        let base = "appid=1&mode=1920x1080x60&rikey=00112233445566778899aabbccddeeff&rikeyid=-1&localAudioPlayMode=0";
        let p =
            LaunchParams::from_query(&Query::parse(&format!("{base}&&corever=1")).unwrap(), true)
                .unwrap();
        assert_eq!(p.app_id, 1);
        assert_eq!(p.rikeyid, u32::MAX);
        assert_eq!(
            p.mode,
            Some(DisplayMode {
                width: 1920,
                height: 1080,
                fps: 60
            })
        );
        assert_eq!(p.corever, 1);
        assert_eq!(p.surround_audio_info, SURROUND_STEREO);
        for bad in [
            base.replace("appid=1", "appid=0"),
            base.replace("appid=1&", ""),
            base.replace("&localAudioPlayMode=0", ""),
            base.replace("eeff", "ee"),
            base.replace("1920x1080x60", "1920x1080"),
            base.replace("1920x1080x60", "0x1080x60"),
            base.replace("1920x1080x60", "1920x1080x60x1"),
            base.replace("rikeyid=-1", "rikeyid=x"),
        ] {
            assert!(
                LaunchParams::from_query(&Query::parse(&bad).unwrap(), true).is_err(),
                "{bad}"
            );
        }
        // Resume needs only rikey and rikeyid.
        let r = Query::parse(
            "rikey=00112233445566778899aabbccddeeff&rikeyid=5&surroundAudioInfo=4128774",
        )
        .unwrap();
        let p = LaunchParams::from_query(&r, false).unwrap();
        assert_eq!(
            (p.app_id, p.rikeyid, p.surround_audio_info),
            (0, 5, 4_128_774)
        );
    }
}
