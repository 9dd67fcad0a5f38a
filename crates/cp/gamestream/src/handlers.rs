//! nvhttp routing: request (path, query, transport facts) → reply (reference §A3–§A7).
//!
//! Contract: every reply is HTTP 200 carrying an XML `status_code` (the server adds
//! `Connection: close`), except /appasset which returns a PNG. HTTP serves only /serverinfo,
//! /pair and /unpair; HTTPS serves /serverinfo, /pair, /unpair, /applist, /appasset, /launch,
//! /resume and /cancel, each only for a client certificate in the paired set (401 otherwise).
//! Unknown paths are 404. /unpair really unpairs: over HTTPS the asking certificate; over
//! HTTP (where stock clients send it, with the uniqueid every Moonlight shares) the pairing
//! attempt of that uniqueid and the paired clients of that uniqueid whose last authorised
//! HTTPS request came from the asking address — never a client last seen elsewhere. The only wait is pairing stage 1, bounded by `pairing::PIN_WAIT`.
//! Sessions are per paired client: /launch, /resume and /cancel carry the asking client's
//! certificate to the `SessionHost`, and /serverinfo's `state`/`currentgame` describe that
//! client's view ([`HostState`]); over HTTP the asker is anonymous and is answered as a client
//! without a session (free while the host has room — Apollo, which also serves several
//! clients, answers HTTP with free/0 always).

use std::net::IpAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use tokio::sync::watch;

use crate::identity::HostIdentity;
use crate::launch::{
    DisplayMode, HostError, HostState, LaunchParams, LaunchRequest, SessionHost, VideoSupport,
};
use crate::paired::{PairedClient, PairedStore};
use crate::pairing::{PairReply, PairStep, Pairing, PinPoll};
use crate::perms::Permissions;
use crate::query::{Query, encode_hex};
use crate::xml::XmlReply;

/// appversion advertised in /serverinfo: major 7 (SHA-256 pairing), ≥ 7.1.431 (encrypted
/// control, single PLAY), < 7.1.446 (old frame header), negative 4th field = Sunshine
/// extensions (§A4).
pub const APP_VERSION: &str = "7.1.431.-1";
/// Major version of `APP_VERSION`, which selects the pairing hash.
pub const APP_VERSION_MAJOR: u32 = 7;
/// GfeVersion advertised in /serverinfo (§A4).
pub const GFE_VERSION: &str = "3.23.0.74";
/// `GsVersion` in /serverinfo: GFE's GameStream version; moonlight-embedded reads the tag
/// and gives up on a host without it.
pub const GS_VERSION: &str = "7.1.431.0";
/// `gputype` when the operator's configuration names none.
pub const DEFAULT_GPU_TYPE: &str = "strahl software encoder";
/// ServerCodecModeSupport bit for H.264 (§A4).
pub const SCM_H264: u32 = 0x1;
/// The SCM bits of every HEVC format (Main, Main10, RExt 4:4:4 8/10-bit): MaxLumaPixelsHEVC is
/// non-zero with any of them.
pub const SCM_ANY_HEVC: u32 = 0x100 | 0x200 | 0x80000 | 0x100000;
/// The message clients see for an unpaired certificate on HTTPS (§A3).
pub const UNAUTHORIZED_MESSAGE: &str =
    "The client is not authorized. Certificate verification failed.";
/// Box art served by /appasset: a small PNG (dark grey 4x4). Clients show it as app art.
pub const APP_ASSET_PNG: &[u8] = include_bytes!("../assets/box-art.png");

/// One app offered in /applist.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct App {
    /// Stable positive id.
    pub id: u32,
    pub title: String,
    /// Not read by /applist: its `IsHdrSupported` follows the encoder (10-bit available,
    /// [`crate::VideoSupport::hdr`]), because every app streams the same desktop picture.
    pub hdr_supported: bool,
}

impl App {
    /// The default app list: "Desktop", id 1.
    pub fn default_list() -> Vec<App> {
        vec![App {
            id: 1,
            title: "Desktop".into(),
            hdr_supported: false,
        }]
    }
}

/// Static facts the routes report.
#[derive(Clone, Debug)]
pub struct HostInfo {
    pub hostname: String,
    /// MAC reported over HTTPS ("00:00:00:00:00:00" is always used over HTTP).
    pub mac: String,
    pub codec_mode_support: u32,
    pub apps: Vec<App>,
    /// The ports actually bound (advertised as HttpsPort / ExternalPort).
    pub http_port: u16,
    pub https_port: u16,
    /// RTSP port placed in `sessionUrl0`.
    pub rtsp_port: u16,
    /// `gputype` (clients show it; moonlight-embedded requires the tag).
    pub gpu_type: String,
    /// `SupportedDisplayMode`: what a client told to refuse unsupported modes checks against.
    pub display_modes: Vec<DisplayMode>,
}

/// The display modes advertised by default: the common 16:9 sizes at 30, 60 and 120 fps (the
/// encoder takes any size the ANNOUNCE asks for; this list only keeps strict clients going).
pub fn default_display_modes() -> Vec<DisplayMode> {
    let mut v = Vec::new();
    for (width, height) in [(1280, 720), (1920, 1080), (2560, 1440), (3840, 2160)] {
        for fps in [30, 60, 120] {
            v.push(DisplayMode { width, height, fps });
        }
    }
    v
}

/// State shared by every connection.
pub(crate) struct Shared {
    pub(crate) info: HostInfo,
    pub(crate) identity: Arc<HostIdentity>,
    pub(crate) unique_id: String,
    pub(crate) pairing: Mutex<Pairing>,
    pub(crate) paired: RwLock<PairedStore>,
    pub(crate) host: Arc<dyn SessionHost>,
    /// Bumped on every submitted PIN (wakes held stage-1 requests).
    pub(crate) pin_submitted: watch::Sender<u64>,
    /// Bumped whenever a stage-1 request starts waiting for a PIN.
    pub(crate) pin_requested: watch::Sender<u64>,
    /// Where each paired certificate's last authorised HTTPS request came from (what an HTTP
    /// /unpair is matched against). Bounded: only paired certificates are ever inserted.
    pub(crate) last_seen: Mutex<std::collections::HashMap<Vec<u8>, IpAddr>>,
    /// The host's clipboard, shared by every client and the control streams.
    pub(crate) clipboard: Arc<crate::clipboard::Clipboard>,
}

/// The transport a request arrived on.
#[derive(Clone, Debug)]
pub enum Transport {
    Http,
    /// HTTPS with the client's certificate (DER; TLS made it mandatory).
    Https {
        client_cert: Vec<u8>,
    },
}

/// Per-request facts from the connection.
#[derive(Clone, Debug)]
pub struct RequestCtx {
    pub transport: Transport,
    pub local_ip: IpAddr,
    pub peer_ip: IpAddr,
}

/// What to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    Xml(XmlReply),
    Png(&'static [u8]),
    /// `text/plain; charset=utf-8` (the clipboard's text).
    Text(String),
}

/// IPv4-mapped IPv6 addresses as IPv4 (clients assume IPv4, §A4).
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    fn authorised(&self, ctx: &RequestCtx) -> Option<Vec<u8>> {
        match &ctx.transport {
            Transport::Https { client_cert } => {
                let store = self.paired.read().unwrap_or_else(|p| p.into_inner());
                let ok = store.is_paired(client_cert);
                if ok {
                    lock(&self.last_seen).insert(client_cert.clone(), canonical_ip(ctx.peer_ip));
                }
                ok.then(|| client_cert.clone())
            }
            Transport::Http => None,
        }
    }

    /// The permissions of a paired client (none for anyone else).
    pub(crate) fn permissions_of(&self, cert_der: &[u8]) -> Permissions {
        let store = self.paired.read().unwrap_or_else(|p| p.into_inner());
        store.permissions_of(cert_der).unwrap_or(Permissions::NONE)
    }

    /// Routes one request; `post_body` is the body of a POST (`None` for a GET).
    pub(crate) async fn route(
        &self,
        ctx: &RequestCtx,
        path: &str,
        query: &str,
        post_body: Option<&[u8]>,
    ) -> Reply {
        let https = matches!(ctx.transport, Transport::Https { .. });
        let known = match path {
            "/serverinfo" | "/pair" | "/unpair" => true,
            "/applist" | "/appasset" | "/launch" | "/resume" | "/cancel" => https,
            crate::clipboard::PATH => https,
            _ => false,
        };
        if !known {
            return Reply::Xml(XmlReply::error(404, "Not Found"));
        }
        let authorised = self.authorised(ctx);
        if https && authorised.is_none() {
            return Reply::Xml(XmlReply::error(401, UNAUTHORIZED_MESSAGE));
        }
        let q = match Query::parse(query) {
            Ok(q) => q,
            Err(e) => return Reply::Xml(XmlReply::error(400, &e.to_string())),
        };
        if let Some(cert) = authorised.as_deref() {
            let perms = self.permissions_of(cert);
            let needed = match path {
                "/applist" | "/appasset" => Permissions::LIST,
                "/launch" => Permissions::VIEW | Permissions::LAUNCH,
                "/resume" => Permissions::VIEW,
                crate::clipboard::PATH if post_body.is_some() => Permissions::CLIPBOARD_SET,
                crate::clipboard::PATH => Permissions::CLIPBOARD_READ,
                _ => 0,
            };
            if !perms.allows(needed) {
                let missing = Permissions(needed & !perms.0);
                tracing::info!(path, %missing, "nvhttp: refused, the client lacks the permission");
                return Reply::Xml(XmlReply::error(
                    403,
                    &format!(
                        "Permission denied: this client may not {missing} (ask the host's operator)"
                    ),
                ));
            }
            if path == crate::clipboard::PATH {
                return self.clipboard.handle(&q, post_body);
            }
        }
        Reply::Xml(match path {
            "/serverinfo" => self.serverinfo(ctx, authorised.as_deref()),
            "/pair" => self.pair(&q, https).await,
            "/unpair" => self.unpair(ctx, &q, authorised.as_deref()),
            "/applist" => self.applist(),
            "/appasset" => return Reply::Png(APP_ASSET_PNG),
            "/launch" => self.launch(ctx, &q, authorised.unwrap_or_default(), true),
            "/resume" => self.launch(ctx, &q, authorised.unwrap_or_default(), false),
            _ => self.cancel(authorised.as_deref().unwrap_or_default()),
        })
    }

    /// `client`: the asking paired client's certificate (HTTPS); `None` over HTTP. `state` and
    /// `currentgame` are for that client ([`HostState`]).
    fn serverinfo(&self, ctx: &RequestCtx, client: Option<&[u8]>) -> XmlReply {
        let i = &self.info;
        let video = self.video_support();
        let https_authorised = client.is_some();
        let (current_game, busy) = match self.host.state_for(client) {
            HostState::Free => (0, false),
            HostState::Running { app_id } => (app_id, true),
            HostState::Full => (0, true),
        };
        let local_ip = match canonical_ip(ctx.local_ip) {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(_) => "127.0.0.1".to_owned(),
        };
        let mut x = XmlReply::new(200)
            .field("hostname", &i.hostname)
            .field("appversion", APP_VERSION)
            .field("GfeVersion", GFE_VERSION)
            .field("uniqueid", &self.unique_id)
            .field("HttpsPort", i.https_port)
            .field("ExternalPort", i.http_port)
            .field(
                "MaxLumaPixelsHEVC",
                if video.codec_mode_support & SCM_ANY_HEVC != 0 {
                    "1869449984"
                } else {
                    "0"
                },
            )
            .field(
                "mac",
                if https_authorised {
                    i.mac.as_str()
                } else {
                    "00:00:00:00:00:00"
                },
            )
            .field("LocalIP", local_ip)
            .field("gputype", &i.gpu_type)
            .field("GsVersion", GS_VERSION)
            .field("ServerCodecModeSupport", video.codec_mode_support)
            .field("PairStatus", u8::from(https_authorised))
            .field("currentgame", current_game)
            .field(
                "state",
                if busy {
                    "SUNSHINE_SERVER_BUSY"
                } else {
                    "SUNSHINE_SERVER_FREE"
                },
            );
        let mut modes = XmlReply::new(200);
        for m in &i.display_modes {
            let mut one = XmlReply::new(200);
            one.push("Width", &m.width.to_string());
            one.push("Height", &m.height.to_string());
            one.push("RefreshRate", &m.fps.to_string());
            modes.push_raw_element("DisplayMode", &one);
        }
        x.push_raw_element("SupportedDisplayMode", &modes);
        if let Some(cert) = client {
            // Apollo's extension (Artemis shows what it may do); stock clients ignore it.
            x = x.field("Permission", self.permissions_of(cert).0);
        }
        x
    }

    /// /unpair (see the module contract). Always 200: the client cannot do anything else,
    /// and what happened is logged.
    fn unpair(&self, ctx: &RequestCtx, q: &Query, client: Option<&[u8]>) -> XmlReply {
        let peer = canonical_ip(ctx.peer_ip);
        let mut store = self.paired.write().unwrap_or_else(|p| p.into_inner());
        let targets: Vec<Vec<u8>> = match client {
            Some(der) => vec![der.to_vec()],
            None => {
                let uniqueid = q.get("uniqueid").unwrap_or("");
                if lock(&self.pairing).abort(uniqueid, Instant::now()) {
                    tracing::info!(uniqueid, %peer, "unpair: pairing attempt abandoned");
                }
                let seen = lock(&self.last_seen);
                store
                    .clients()
                    .iter()
                    .filter(|c| c.uniqueid == uniqueid)
                    .filter_map(|c| crate::crypto::CertInfo::from_pem(c.cert_pem.as_bytes()).ok())
                    .map(|i| i.der)
                    .filter(|der| seen.get(der) == Some(&peer))
                    .collect()
            }
        };
        let mut removed = 0;
        for der in &targets {
            match store.remove_der(der) {
                Ok(n) => removed += n,
                Err(e) => {
                    tracing::error!(%peer, "unpair: could not persist the paired clients: {e}");
                    return XmlReply::error(500, &format!("Could not unpair: {e}"));
                }
            }
            lock(&self.last_seen).remove(der);
        }
        if removed > 0 {
            tracing::info!(%peer, removed, "unpair: client unpaired at its request");
        } else {
            tracing::info!(%peer, "unpair: no paired client matches the request");
        }
        XmlReply::new(200).field("unpaired", u8::from(removed > 0))
    }

    async fn pair(&self, q: &Query, https_authorised: bool) -> XmlReply {
        // Subscribe before handling so a PIN submitted in between is not missed.
        let mut pin_rx = self.pin_submitted.subscribe();
        let step = lock(&self.pairing).handle(q, https_authorised, Instant::now());
        let reply = match step {
            PairStep::Reply(r) => r,
            PairStep::WaitForPin { session, .. } => {
                self.pin_requested.send_modify(|n| *n += 1);
                tracing::info!(
                    device = q.get("devicename").unwrap_or(""),
                    "pairing: waiting for the PIN"
                );
                // Bounded: each turn either sees a new PIN or reaches the session deadline,
                // after which poll_pin answers (the session has expired).
                loop {
                    let deadline = match lock(&self.pairing).poll_pin(session, Instant::now()) {
                        PinPoll::Ready(r) => break r,
                        PinPoll::Waiting { deadline } => deadline,
                    };
                    let sleep = tokio::time::sleep_until(deadline.into());
                    tokio::pin!(sleep);
                    tokio::select! {
                        changed = pin_rx.changed() => if changed.is_err() { sleep.await },
                        () = &mut sleep => {}
                    }
                }
            }
        };
        self.render_pair(reply, q)
    }

    fn render_pair(&self, reply: PairReply, q: &Query) -> XmlReply {
        let ok = || XmlReply::new(200).field("paired", 1);
        match reply {
            PairReply::ServerCert { plaincert_hex } => ok().field("plaincert", plaincert_hex),
            PairReply::ChallengeResponse(b) => ok().field("challengeresponse", encode_hex(&b)),
            PairReply::PairingSecret(b) => ok().field("pairingsecret", encode_hex(&b)),
            PairReply::Paired(None) => ok(),
            PairReply::Paired(Some(c)) => {
                let client = PairedClient {
                    name: c.device_name,
                    uniqueid: c.uniqueid,
                    cert_pem: c.cert_pem,
                    // The store decides: everything for the first client, else view + list.
                    permissions: None,
                };
                let name = client.name.clone();
                // The atomic write (two fsyncs, a few ms) runs under the lock on purpose:
                // authorisation must never see a client that is not on disk. Pairing is rare.
                let mut store = self.paired.write().unwrap_or_else(|p| p.into_inner());
                match store.add(client, c.cert_der) {
                    Ok(()) => {
                        tracing::info!(device = %name, "pairing: client paired");
                        ok()
                    }
                    Err(e) => {
                        tracing::error!("pairing: could not persist the paired client: {e}");
                        XmlReply::error(500, &format!("Could not store the paired client: {e}"))
                            .field("paired", 0)
                    }
                }
            }
            PairReply::Failed { status, message } => {
                tracing::warn!(device = q.get("devicename").unwrap_or(""), status, %message, "pairing failed");
                XmlReply::error(status, &message).field("paired", 0)
            }
        }
    }

    /// What the encoder makes now (the session host's live report), else the configured SCM.
    fn video_support(&self) -> VideoSupport {
        self.host.video_support().unwrap_or(VideoSupport {
            codec_mode_support: self.info.codec_mode_support,
            hdr: false,
        })
    }

    fn applist(&self) -> XmlReply {
        let hdr = self.video_support().hdr;
        let mut x = XmlReply::new(200);
        for app in &self.info.apps {
            let mut a = XmlReply::new(200);
            // Every app is the desktop's picture: HDR exactly when the encoder can make it.
            a.push("IsHdrSupported", if hdr { "1" } else { "0" });
            a.push("AppTitle", &app.title);
            a.push("ID", &app.id.to_string());
            a.push("IsAppCollectorGame", "0");
            x.push_raw_element("App", &a);
        }
        x
    }

    fn session_url(&self, ctx: &RequestCtx, corever: u32) -> String {
        let scheme = if corever >= 1 { "rtspenc" } else { "rtsp" };
        match canonical_ip(ctx.local_ip) {
            IpAddr::V4(v4) => format!("{scheme}://{v4}:{}", self.info.rtsp_port),
            IpAddr::V6(v6) => format!("{scheme}://[{v6}]:{}", self.info.rtsp_port),
        }
    }

    fn launch(
        &self,
        ctx: &RequestCtx,
        q: &Query,
        client_cert: Vec<u8>,
        is_launch: bool,
    ) -> XmlReply {
        let mut params = match LaunchParams::from_query(q, is_launch) {
            Ok(p) => p,
            Err(e) => return XmlReply::error(400, &e.to_string()),
        };
        if !is_launch {
            // /resume carries no appid: it resumes the app this client runs.
            if let HostState::Running { app_id } = self.host.state_for(Some(&client_cert)) {
                params.app_id = app_id;
            }
        }
        if is_launch && !self.info.apps.iter().any(|a| a.id == params.app_id) {
            return XmlReply::error(404, "Cannot find requested application");
        }
        let corever = params.corever;
        let req = LaunchRequest {
            params,
            permissions: self.permissions_of(&client_cert),
            client_cert_der: client_cert,
            client_ip: canonical_ip(ctx.peer_ip),
            local_ip: canonical_ip(ctx.local_ip),
        };
        let result = if is_launch {
            self.host.launch(req)
        } else {
            self.host.resume(req)
        };
        match result {
            Ok(()) => {
                let x = XmlReply::new(200).field("sessionUrl0", self.session_url(ctx, corever));
                if is_launch {
                    x.field("gamesession", 1)
                } else {
                    x.field("resume", 1)
                }
            }
            Err(HostError::Busy) => XmlReply::error(400, "An app is already running on this host"),
            Err(HostError::Full { max }) => XmlReply::error(
                400,
                &format!("The host is already streaming to {max} client(s), its maximum"),
            ),
            Err(HostError::NoRunningApp) => XmlReply::error(503, "No running app to resume"),
            Err(HostError::Unavailable(m)) => XmlReply::error(503, &m),
        }
    }

    fn cancel(&self, client_cert: &[u8]) -> XmlReply {
        match self.host.cancel(client_cert) {
            Ok(()) => XmlReply::new(200).field("cancel", 1),
            Err(HostError::Unavailable(m)) => XmlReply::error(503, &m),
            Err(e) => XmlReply::error(503, &format!("{e:?}")),
        }
    }
}
