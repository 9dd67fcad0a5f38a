//! Request routing, authorisation and handlers.
//!
//! Authorisation rules (the contract the API tests check):
//! - The page assets (`/`, `/app.js`, `/style.css`) and `GET /api/v1/session` are always served:
//!   they carry no status data.
//! - `/healthz`, `/metrics`: open when `open_health_and_metrics`, else a login/token is needed.
//! - `/api/v1/status`, `GET /api/v1/clients`: open when `open_reads`, else login/token. The
//!   native pairing PIN is stripped unless the caller is logged in or holds the token.
//! - Every mutation needs the admin bearer token, or the session cookie *plus* the matching
//!   `X-CSRF-Token` header (and, if the browser sent `Origin`, a same-origin one). Missing
//!   credentials → 401; cookie without a valid CSRF token or a foreign Origin → 403.
//! - `POST /api/v1/passwd` is open only while no password is set (first start), and then only
//!   when the `Host` header is an IP literal, `localhost`, a single-label name or a `.local`
//!   name: a DNS-rebinding page (Host = the attacker's domain) cannot claim a fresh appliance.
//!   Without the admin token it also needs `setup_code`, the one-time code on the appliance's
//!   console and in its log: none → 403 naming where to find it; wrong → 403, counted in the
//!   login limiter (per address and globally; 429 with `Retry-After` beyond it); right → the
//!   password is stored and the code is used up (file removed, console snippet rewritten).
//! - Endpoints that read a JSON body require `Content-Type: application/json` (a cross-site
//!   HTML form cannot send it without a CORS preflight, which this server never grants).

use std::net::SocketAddr;
use std::time::Instant;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::{AuthState, SESSION_TTL, SetupCodeError, verify_password};
use crate::backend::BackendError;
use crate::shared::Shared;

/// Largest accepted request body (JSON with a password or a client name fits easily).
pub const MAX_BODY_BYTES: usize = 4096;
/// Longest client display name accepted by rename.
pub const MAX_CLIENT_NAME: usize = 64;
/// Name of the browser session cookie.
pub const SESSION_COOKIE: &str = "strahl_session";
/// Header carrying the CSRF token on browser mutations.
pub const CSRF_HEADER: &str = "x-csrf-token";

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const STYLE_CSS: &str = include_str!("assets/style.css");

type Resp = Response<Full<Bytes>>;

/// Who is calling, as far as mutations are concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Caller {
    Anonymous,
    Token,
    /// A live session cookie; `csrf_ok` when the header matched and the Origin (if any) is ours.
    Session {
        id: String,
        csrf_ok: bool,
    },
}

impl Caller {
    fn privileged_reader(&self) -> bool {
        !matches!(self, Caller::Anonymous)
    }
}

fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// `Origin` absent (non-browser or same-origin GET) or equal to `http://<Host>`.
fn origin_ok(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    match (origin.to_str().ok(), host) {
        (Some(o), Some(h)) => o.strip_prefix("http://") == Some(h),
        _ => false,
    }
}

/// `Host` names a LAN address the operator typed, not a public domain (DNS-rebinding guard).
fn host_is_local(headers: &HeaderMap) -> bool {
    let Some(h) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    // Strip the port: "[v6]:p", "v4:p", "name:p".
    let name = if let Some(rest) = h.strip_prefix('[') {
        return rest
            .split_once(']')
            .is_some_and(|(a, _)| a.parse::<std::net::Ipv6Addr>().is_ok());
    } else {
        h.rsplit_once(':').map_or(h, |(n, _)| n)
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name.parse::<std::net::IpAddr>().is_ok()
        || name == "localhost"
        || (!name.is_empty() && !name.contains('.'))
        || name.ends_with(".local")
}

fn classify(headers: &HeaderMap, auth: &AuthState, now: Instant) -> Caller {
    if let Some(b) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        && auth.token_matches(b.trim())
    {
        return Caller::Token;
    }
    if let Some(id) = cookie_value(headers, SESSION_COOKIE)
        && let Some(csrf) = auth.session_csrf(id, now)
    {
        let sent = headers
            .get(CSRF_HEADER)
            .map(|v| v.as_bytes())
            .unwrap_or(b"");
        let csrf_ok = crate::auth::ct_eq(sent, csrf.as_bytes()) && origin_ok(headers);
        return Caller::Session {
            id: id.to_string(),
            csrf_ok,
        };
    }
    Caller::Anonymous
}

fn with_common_headers(mut r: Resp) -> Resp {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    r
}

fn body(status: StatusCode, content_type: &'static str, b: impl Into<Bytes>) -> Resp {
    let mut r = Response::new(Full::new(b.into()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

fn json_resp(status: StatusCode, v: &Value) -> Resp {
    body(status, "application/json", v.to_string())
}

fn err(status: StatusCode, msg: &str) -> Resp {
    json_resp(status, &json!({ "error": msg }))
}

fn backend_err(e: BackendError) -> Resp {
    let (s, m) = match &e {
        BackendError::NotFound(m) => (StatusCode::NOT_FOUND, m),
        BackendError::Rejected(m) => (StatusCode::CONFLICT, m),
        BackendError::Unavailable(m) => (StatusCode::SERVICE_UNAVAILABLE, m),
    };
    err(s, m)
}

fn ok() -> Resp {
    json_resp(StatusCode::OK, &json!({ "ok": true }))
}

fn session_cookie(id: &str) -> HeaderValue {
    let v = format!(
        "{SESSION_COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
        SESSION_TTL.as_secs()
    );
    HeaderValue::from_str(&v).unwrap_or(HeaderValue::from_static(""))
}

/// Refusal for a caller that may not mutate, or `None` if it may.
fn mutation_refusal(c: &Caller) -> Option<Resp> {
    match c {
        Caller::Token => None,
        Caller::Session { csrf_ok: true, .. } => None,
        Caller::Session { csrf_ok: false, .. } => Some(err(
            StatusCode::FORBIDDEN,
            "missing or wrong CSRF token (or cross-origin request)",
        )),
        Caller::Anonymous => Some(err(
            StatusCode::UNAUTHORIZED,
            "login or bearer token required",
        )),
    }
}

async fn read_json<T: for<'de> Deserialize<'de>>(req: Request<Incoming>) -> Result<T, Resp> {
    let is_json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(';').next().map(str::trim) == Some("application/json"));
    if !is_json {
        return Err(err(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type: application/json required",
        ));
    }
    let bytes = Limited::new(req.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
        .map_err(|_| {
            err(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body too large or unreadable",
            )
        })?
        .to_bytes();
    serde_json::from_slice(&bytes)
        .map_err(|e| err(StatusCode::BAD_REQUEST, &format!("bad JSON: {e}")))
}

/// Runs a (possibly blocking) backend mutation off the async threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, Resp> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| err(StatusCode::INTERNAL_SERVER_ERROR, "backend task failed"))
}

#[derive(Deserialize)]
struct PasswordBody {
    password: String,
}
#[derive(Deserialize)]
struct NewPasswordBody {
    password: String,
    /// Needed at first start unless the caller holds the admin token.
    #[serde(default)]
    setup_code: Option<String>,
}
#[derive(Deserialize)]
struct PinBody {
    pin: String,
}
#[derive(Deserialize)]
struct IdBody {
    id: String,
}
#[derive(Deserialize)]
struct RenameBody {
    id: String,
    name: String,
}

#[derive(Deserialize)]
struct PermissionsBody {
    id: String,
    /// Comma-separated names, `all` or `none`.
    permissions: String,
}

pub(crate) async fn handle(req: Request<Incoming>, peer: SocketAddr, shared: &Shared) -> Resp {
    with_common_headers(route(req, peer, shared).await)
}

async fn route(req: Request<Incoming>, peer: SocketAddr, sh: &Shared) -> Resp {
    let now = Instant::now();
    let caller = {
        let auth = sh.auth.lock().unwrap_or_else(|p| p.into_inner());
        classify(req.headers(), &auth, now)
    };
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let open_reads = sh.config.open_reads || caller.privileged_reader();
    let open_ops = sh.config.open_health_and_metrics || caller.privileged_reader();
    match (&method, segs.as_slice()) {
        (&Method::GET, [""]) => body(StatusCode::OK, "text/html; charset=utf-8", INDEX_HTML),
        (&Method::GET, ["app.js"]) => {
            body(StatusCode::OK, "text/javascript; charset=utf-8", APP_JS)
        }
        (&Method::GET, ["style.css"]) => body(StatusCode::OK, "text/css; charset=utf-8", STYLE_CSS),
        (&Method::GET, ["healthz"]) if open_ops => healthz(sh),
        (&Method::GET, ["metrics"]) if open_ops => {
            let mut s = String::new();
            match sh.backend.dataplane_metrics() {
                Some(dp) => crate::merge::render_merged(
                    &[("control", sh.backend.metrics()), ("dataplane", dp)],
                    &mut s,
                ),
                None => sh.backend.metrics().render_prometheus(&mut s),
            }
            body(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                s,
            )
        }
        (&Method::GET, ["healthz"] | ["metrics"]) => {
            err(StatusCode::UNAUTHORIZED, "login or bearer token required")
        }
        (&Method::GET, ["api", "v1", "session"]) => session_info(sh, &caller, now),
        (&Method::GET, ["api", "v1", "status"]) if open_reads => status_json(sh, &caller),
        (&Method::GET, ["api", "v1", "clients"]) if open_reads => {
            let clients = sh.backend.snapshot().paired_clients;
            json_resp(StatusCode::OK, &json!({ "clients": clients }))
        }
        (&Method::GET, ["api", "v1", "status" | "clients"]) => {
            err(StatusCode::UNAUTHORIZED, "login or bearer token required")
        }
        (&Method::POST, ["api", "v1", "login"]) => login(req, peer, sh, now).await,
        (&Method::POST, ["api", "v1", "passwd"]) => passwd(req, peer, sh, &caller, now).await,
        (&Method::POST, ["api", "v1", "logout"]) => {
            if let Some(r) = mutation_refusal(&caller) {
                return r;
            }
            if let Caller::Session { id, .. } = &caller {
                sh.auth
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .end_session(id);
            }
            let mut r = ok();
            r.headers_mut().insert(
                header::SET_COOKIE,
                HeaderValue::from_static(
                    "strahl_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0",
                ),
            );
            r
        }
        (&Method::POST | &Method::DELETE, ["api", "v1", ..]) => {
            if let Some(r) = mutation_refusal(&caller) {
                return r;
            }
            mutate(req, &method, &segs, sh).await
        }
        (_, ["", ..] | ["app.js" | "style.css" | "healthz" | "metrics"] | ["api", "v1", ..]) => {
            err(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
        }
        _ => err(StatusCode::NOT_FOUND, "not found"),
    }
}

fn healthz(sh: &Shared) -> Resp {
    if sh.backend.snapshot().dataplane_connected {
        json_resp(StatusCode::OK, &json!({ "status": "ok" }))
    } else {
        json_resp(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({ "status": "unhealthy", "reason": "data plane disconnected" }),
        )
    }
}

fn session_info(sh: &Shared, caller: &Caller, now: Instant) -> Resp {
    let auth = sh.auth.lock().unwrap_or_else(|p| p.into_inner());
    let csrf = match caller {
        Caller::Session { id, .. } => auth.session_csrf(id, now).map(str::to_string),
        _ => None,
    };
    json_resp(
        StatusCode::OK,
        &json!({
            "password_set": auth.password_set(),
            "logged_in": csrf.is_some(),
            "csrf": csrf,
            "open_reads": sh.config.open_reads,
        }),
    )
}

fn status_json(sh: &Shared, caller: &Caller) -> Resp {
    let mut snap = sh.backend.snapshot();
    if !caller.privileged_reader()
        && let Some(w) = snap.pairing.native_window.as_mut()
    {
        w.pin = None;
    }
    // render_json gives {"metrics":[...]}; embed the array.
    let metrics_array = |reg: &strahl_metrics::Registry| {
        let mut text = String::new();
        reg.render_json(&mut text);
        serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|mut m| m.get_mut("metrics").map(Value::take))
            .unwrap_or(Value::Null)
    };
    let mut v = serde_json::to_value(&snap).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        m.insert("metrics".into(), metrics_array(sh.backend.metrics()));
        if let Some(dp) = sh.backend.dataplane_metrics() {
            m.insert("dataplane_metrics".into(), metrics_array(dp));
        }
    }
    json_resp(StatusCode::OK, &v)
}

async fn login(req: Request<Incoming>, peer: SocketAddr, sh: &Shared, now: Instant) -> Resp {
    let b: PasswordBody = match read_json(req).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let ip = peer.ip();
    let hash = {
        let mut auth = sh.auth.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(retry) = auth.limiter.check(ip, now) {
            return too_many(retry, "too many failed logins, wait");
        }
        let Some(h) = auth.password_hash().map(str::to_string) else {
            return err(StatusCode::CONFLICT, "no password set yet");
        };
        // Count the attempt before verifying so parallel guesses cannot outrun the limiter;
        // a success clears the address's counter.
        auth.limiter.record_failure(ip, now);
        h
    };
    let good = match blocking(move || verify_password(&hash, &b.password)).await {
        Ok(g) => g,
        Err(r) => return r,
    };
    let mut auth = sh.auth.lock().unwrap_or_else(|p| p.into_inner());
    if !good {
        tracing::warn!(%peer, "status: failed login");
        return err(StatusCode::UNAUTHORIZED, "wrong password");
    }
    auth.limiter.record_success(ip);
    new_session_resp(&mut auth, now)
}

/// 429 with `Retry-After` (whole seconds, at least 1).
fn too_many(retry: std::time::Duration, msg: &str) -> Resp {
    let mut r = err(StatusCode::TOO_MANY_REQUESTS, msg);
    if let Ok(v) = HeaderValue::from_str(&retry.as_secs().max(1).to_string()) {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

/// Said when a first-start request lacks the setup code.
const SETUP_CODE_REQUIRED: &str = "setup code required: it is shown on the appliance's \
     console (a screen attached to it) and in its journal (journalctl -u strahl-control)";

/// The first-start setup-code check; `None` when the request may go on.
fn setup_code_refusal(
    sh: &Shared,
    peer: SocketAddr,
    presented: Option<&str>,
    now: Instant,
) -> Option<Resp> {
    let mut auth = sh.auth.lock().unwrap_or_else(|p| p.into_inner());
    match auth.check_setup_code(peer.ip(), presented, now) {
        Ok(()) => None,
        Err(SetupCodeError::Missing) => Some(err(StatusCode::FORBIDDEN, SETUP_CODE_REQUIRED)),
        Err(SetupCodeError::Wrong) => {
            tracing::warn!(%peer, "status: wrong setup code");
            Some(err(
                StatusCode::FORBIDDEN,
                "wrong setup code: use the one on the appliance's console or in its journal",
            ))
        }
        Err(SetupCodeError::RateLimited { retry_after }) => Some(too_many(
            retry_after,
            "too many wrong setup codes or logins, wait",
        )),
        Err(SetupCodeError::PasswordSet) => Some(err(
            StatusCode::FORBIDDEN,
            "password was set meanwhile; log in",
        )),
    }
}

fn new_session_resp(auth: &mut AuthState, now: Instant) -> Resp {
    match auth.new_session(now) {
        Ok(s) => {
            let mut r = json_resp(StatusCode::OK, &json!({ "ok": true, "csrf": s.csrf }));
            r.headers_mut()
                .insert(header::SET_COOKIE, session_cookie(&s.id));
            r
        }
        Err(e) => err(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

async fn passwd(
    req: Request<Incoming>,
    peer: SocketAddr,
    sh: &Shared,
    caller: &Caller,
    now: Instant,
) -> Resp {
    let headers = req.headers().clone();
    let first_start = !sh
        .auth
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .password_set();
    if !first_start && let Some(r) = mutation_refusal(caller) {
        return r;
    }
    if first_start && !host_is_local(&headers) {
        return err(
            StatusCode::FORBIDDEN,
            "first-start password must be set via the appliance's IP address or .local name",
        );
    }
    let b: NewPasswordBody = match read_json(req).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    if let Err(e) = AuthState::check_new_password(&b.password) {
        return err(
            StatusCode::BAD_REQUEST,
            &format!("password not acceptable: {e:?}"),
        );
    }
    // First start: whoever reaches the page is not yet trusted; the code from the console (or
    // the admin token, which only the box's operator can read) shows they are the owner.
    if first_start
        && *caller != Caller::Token
        && let Some(r) = setup_code_refusal(sh, peer, b.setup_code.as_deref(), now)
    {
        return r;
    }
    let phc = match blocking(move || crate::auth::hash_password(&b.password)).await {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => return err(StatusCode::INTERNAL_SERVER_ERROR, &format!("{e:?}")),
        Err(r) => return r,
    };
    let mut auth = sh.auth.lock().unwrap_or_else(|p| p.into_inner());
    // Re-check under the lock: two first-start requests must not both win.
    if first_start && auth.password_set() {
        return err(StatusCode::FORBIDDEN, "password was set meanwhile; log in");
    }
    if let Err(e) = auth.store_password_hash(phc) {
        return err(StatusCode::INTERNAL_SERVER_ERROR, &format!("{e:?}"));
    }
    // The code is used up: the console shows only the URLs from now on.
    sh.update_console(&auth);
    tracing::info!(first_start, "status: web password set");
    new_session_resp(&mut auth, now)
}

async fn mutate(req: Request<Incoming>, method: &Method, segs: &[&str], sh: &Shared) -> Resp {
    let backend = sh.backend.clone();
    let result = match (method, segs) {
        (&Method::POST, ["api", "v1", "pin"]) => {
            let b: PinBody = match read_json(req).await {
                Ok(b) => b,
                Err(r) => return r,
            };
            if b.pin.len() != 4 || !b.pin.bytes().all(|c| c.is_ascii_digit()) {
                return err(StatusCode::BAD_REQUEST, "PIN must be 4 digits");
            }
            tracing::info!("status: Moonlight PIN submitted");
            blocking(move || backend.submit_pin(&b.pin).map(|()| json!({ "ok": true }))).await
        }
        (&Method::POST, ["api", "v1", "pair", "arm"]) => {
            tracing::info!("status: native pairing window armed");
            blocking(move || {
                backend
                    .arm_native_pairing()
                    .map(|pin| json!({ "ok": true, "pin": pin }))
            })
            .await
        }
        (&Method::POST, ["api", "v1", "clients", "unpair"]) => {
            let b: IdBody = match read_json(req).await {
                Ok(b) => b,
                Err(r) => return r,
            };
            tracing::info!(id = %b.id, "status: unpair");
            blocking(move || backend.unpair(&b.id).map(|()| json!({ "ok": true }))).await
        }
        (&Method::POST, ["api", "v1", "clients", "rename"]) => {
            let b: RenameBody = match read_json(req).await {
                Ok(b) => b,
                Err(r) => return r,
            };
            let name = b.name.trim().to_string();
            if name.is_empty()
                || name.chars().count() > MAX_CLIENT_NAME
                || name.chars().any(char::is_control)
            {
                return err(
                    StatusCode::BAD_REQUEST,
                    "name must be 1..64 printable characters",
                );
            }
            blocking(move || backend.rename(&b.id, &name).map(|()| json!({ "ok": true }))).await
        }
        (&Method::POST, ["api", "v1", "clients", "permissions"]) => {
            let b: PermissionsBody = match read_json(req).await {
                Ok(b) => b,
                Err(r) => return r,
            };
            if b.permissions.len() > 256 || b.permissions.chars().any(char::is_control) {
                return err(
                    StatusCode::BAD_REQUEST,
                    "permissions must be a short list of names",
                );
            }
            tracing::info!(id = %b.id, permissions = %b.permissions, "status: client permissions");
            blocking(move || {
                backend
                    .set_permissions(&b.id, &b.permissions)
                    .map(|()| json!({ "ok": true }))
            })
            .await
        }
        (_, ["api", "v1", "sessions", id, rest @ ..]) => {
            let Ok(id) = id.parse::<u64>() else {
                return err(StatusCode::BAD_REQUEST, "session id must be a number");
            };
            match (method, rest) {
                (&Method::DELETE, []) | (&Method::POST, ["stop"]) => {
                    tracing::info!(id, "status: stop session");
                    blocking(move || backend.stop_session(id).map(|()| json!({ "ok": true }))).await
                }
                (&Method::POST, ["keyframe"]) => {
                    blocking(move || backend.request_keyframe(id).map(|()| json!({ "ok": true })))
                        .await
                }
                _ => return err(StatusCode::NOT_FOUND, "not found"),
            }
        }
        _ => return err(StatusCode::NOT_FOUND, "not found"),
    };
    match result {
        Ok(Ok(v)) => json_resp(StatusCode::OK, &v),
        Ok(Err(e)) => backend_err(e),
        Err(r) => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_host(h: &str) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.insert(header::HOST, HeaderValue::from_str(h).unwrap());
        m
    }

    #[test]
    fn local_hosts_are_recognised() {
        for h in [
            "192.168.1.5:47990",
            "192.168.1.5",
            "[fe80::1]:47990",
            "localhost:47990",
            "strahl",
            "strahl.local:47990",
            "strahl.local.",
        ] {
            assert!(host_is_local(&with_host(h)), "{h}");
        }
        for h in [
            "evil.example:47990",
            "strahl.example.com",
            "[nonsense]:1",
            "",
        ] {
            assert!(!host_is_local(&with_host(h)), "{h}");
        }
        assert!(!host_is_local(&HeaderMap::new()));
    }

    proptest::proptest! {
        /// Hostile cookie/origin/host headers never panic the classifiers.
        #[test]
        fn header_parsers_never_panic(v in "[ -~]{0,80}") {
            let mut m = HeaderMap::new();
            let hv = HeaderValue::from_str(&v).unwrap();
            for n in [header::COOKIE, header::ORIGIN, header::HOST, header::AUTHORIZATION] {
                m.insert(n, hv.clone());
            }
            let _ = cookie_value(&m, SESSION_COOKIE);
            let _ = origin_ok(&m);
            let _ = host_is_local(&m);
        }
    }
}
