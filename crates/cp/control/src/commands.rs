//! The operator subcommands that talk to a running `serve`: `status`, `clients`, `pair`,
//! `passwd`, `token` (and `doctor`, which only looks at this host).
//!
//! Contract: each talks to the running control process through its status server
//! (`127.0.0.1:<[network] status_port>` unless `--url`), with the admin bearer token from the
//! state directory when it is readable. Every request is one HTTP/1.1 exchange on a fresh
//! connection, bounded by [`IO_TIMEOUT`] and [`MAX_RESPONSE`]. A control process that is not
//! running is a clear error ("is `strahl-control serve` running?"), exit 1. Output is human text
//! by default; `--json` prints the API's JSON unchanged where the command reads.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};
use strahl_config::{Config, Env, resolve_state_dir};
use strahl_status::auth::{PASSWORD_FILE, SECRET_FILE_MODE, TOKEN_FILE};

use crate::cli::{ClientArgs, ClientsAction};

/// Connect/read/write bound for one request (argon2 hashing on a `passwd` takes ~0.1 s).
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest response read (a status JSON with 256 paired clients is ~100 KiB).
pub const MAX_RESPONSE: u64 = 4 * 1024 * 1024;

/// Where the running `serve` is and how to authenticate.
#[derive(Debug, Clone)]
pub struct Target {
    pub addr: SocketAddr,
    pub state_dir: PathBuf,
    pub token: Option<String>,
}

/// A failed command: message for stderr, exit code.
#[derive(Debug)]
pub struct CmdError {
    pub msg: String,
    pub code: u8,
}

fn fail(msg: impl Into<String>) -> CmdError {
    CmdError {
        msg: msg.into(),
        code: 1,
    }
}

fn usage(msg: impl Into<String>) -> CmdError {
    CmdError {
        msg: msg.into(),
        code: 2,
    }
}

/// Resolves the target from the configuration and the command line.
pub fn target(a: &ClientArgs) -> Result<Target, CmdError> {
    let cfg = Config::load_or_default(a.config.as_deref())
        .map_err(|e| usage(format!("configuration error: {e}")))?;
    let state_dir = match &a.state_dir {
        Some(d) => d.clone(),
        None => resolve_state_dir(&cfg.host.state_dir, &Env::from_process()).path,
    };
    let addr = match &a.url {
        Some(u) => {
            let hp = u
                .trim_start_matches("http://")
                .trim_end_matches('/')
                .to_string();
            hp.to_socket_addrs()
                .ok()
                .and_then(|mut i| i.next())
                .ok_or_else(|| usage(format!("--url {u:?}: expected HOST:PORT")))?
        }
        None => SocketAddr::from(([127, 0, 0, 1], cfg.network.status_port.0)),
    };
    let token = std::fs::read_to_string(state_dir.join(TOKEN_FILE))
        .ok()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty());
    Ok(Target {
        addr,
        state_dir,
        token,
    })
}

/// One request; returns (status code, body).
pub fn http(
    t: &Target,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<(u16, String), CmdError> {
    let not_running = |e: std::io::Error| {
        fail(format!(
            "cannot reach the control process's status server at {} ({e}); is `strahl-control \
             serve` running?",
            t.addr
        ))
    };
    let mut s = TcpStream::connect_timeout(&t.addr, IO_TIMEOUT).map_err(not_running)?;
    s.set_read_timeout(Some(IO_TIMEOUT))
        .and_then(|()| s.set_write_timeout(Some(IO_TIMEOUT)))
        .map_err(not_running)?;
    let payload = body.map(|b| b.to_string()).unwrap_or_default();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nAccept: application/json\r\n",
        t.addr
    );
    if let Some(tok) = &t.token {
        req.push_str(&format!("Authorization: Bearer {tok}\r\n"));
    }
    if body.is_some() {
        req.push_str("Content-Type: application/json\r\n");
    }
    req.push_str(&format!(
        "Content-Length: {}\r\n\r\n{payload}",
        payload.len()
    ));
    s.write_all(req.as_bytes()).map_err(not_running)?;
    let mut raw = Vec::new();
    (&mut s)
        .take(MAX_RESPONSE)
        .read_to_end(&mut raw)
        .map_err(|e| fail(format!("reading the answer from {}: {e}", t.addr)))?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| fail(format!("malformed answer from {}", t.addr)))?;
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| fail(format!("malformed status line from {}", t.addr)))?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok((code, body))
}

/// Decodes a chunked body (bounded by its input).
fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// GET/POST expecting 200 and JSON.
fn call(t: &Target, method: &str, path: &str, body: Option<&Value>) -> Result<Value, CmdError> {
    let (code, text) = http(t, method, path, body)?;
    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    if code == 200 {
        return Ok(v);
    }
    let why = v
        .get("error")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or(text);
    let hint = match code {
        401 | 403 if t.token.is_none() => format!(
            " (no admin token readable in {}; run as the service user or pass --state-dir)",
            t.state_dir.display()
        ),
        401 | 403 => " (the token in the state dir was refused: wrong --state-dir?)".into(),
        _ => String::new(),
    };
    Err(fail(format!("{method} {path}: HTTP {code}: {why}{hint}")))
}

fn s(v: &Value, k: &str) -> String {
    match v.get(k) {
        Some(Value::String(x)) => x.clone(),
        Some(Value::Null) | None => "-".into(),
        Some(x) => x.to_string(),
    }
}

/// `status`: returns the text to print.
pub fn status(a: &ClientArgs) -> Result<String, CmdError> {
    let t = target(a)?;
    let v = call(&t, "GET", "/api/v1/status", None)?;
    if a.json {
        return Ok(format!("{v}\n"));
    }
    Ok(render_status(&v))
}

/// The human form of `/api/v1/status`.
pub fn render_status(v: &Value) -> String {
    let h = &v["host"];
    let mut out = format!(
        "host {} — strahl {}, up {} s, encoder {}, capture {}\n",
        s(h, "name"),
        s(h, "version"),
        s(h, "uptime_s"),
        s(h, "encoder"),
        s(h, "capture")
    );
    let dp = v["dataplane_connected"].as_bool().unwrap_or(false);
    out.push_str(&format!(
        "data plane: {}\n",
        if dp { "connected" } else { "NOT connected" }
    ));
    match v.get("transport") {
        Some(tr) if !tr.is_null() => out.push_str(&format!(
            "start-up transport: {} ({}); each session's own transport is on its line\n",
            s(tr, "name"),
            s(tr, "reason")
        )),
        _ => out
            .push_str("start-up transport: unknown (no TransportChosen from the data plane yet)\n"),
    }
    let sessions = v["sessions"].as_array().cloned().unwrap_or_default();
    out.push_str(&format!("sessions: {}\n", sessions.len()));
    // The data plane's send figures exist only host-wide: on a session's line while it is the
    // only one, else once for all.
    let host_wide = |x: &Value| {
        if x["send_kbps"].is_null() {
            "send figures host-wide (below)".to_string()
        } else {
            format!(
                "sending {} kbit/s (paced at {} kbit/s), {} pkt/s, {} packets, {} drops",
                s(x, "send_kbps"),
                s(x, "pacing_rate_kbps"),
                s(x, "packets_per_s"),
                s(x, "packets_sent"),
                s(x, "drops"),
            )
        }
    };
    for x in &sessions {
        let transport = match x["transport"].as_str() {
            Some(t) => format!("transport {t} ({})", s(x, "transport_detail")),
            None => "transport not reported yet".to_string(),
        };
        out.push_str(&format!(
            "  #{} {} {} {} — {} kbit/s requested, FEC {} % ({} recovered, {} lost), {}, RTT {}, {}\n",
            s(x, "id"),
            match x["client_name"].as_str() {
                Some(name) => format!("{name} ({})", s(x, "client")),
                None => s(x, "client"),
            },
            s(x, "protocol"),
            s(x, "mode"),
            s(x, "bitrate_kbps"),
            s(x, "fec_percent"),
            s(x, "fec_recovered"),
            s(x, "fec_failed"),
            host_wide(x),
            x["latency_us"]
                .as_u64()
                .map_or("unknown".to_string(), |us| format!("{:.1} ms", us as f64 / 1000.0)),
            transport,
        ));
    }
    if sessions.len() > 1 {
        let m = &v["media"];
        out.push_str(&format!(
            "  all sessions (host-wide): sending {} kbit/s (latest frame paced at {} kbit/s), {} pkt/s, {} packets, {} drops\n",
            s(m, "send_kbps"),
            s(m, "pacing_rate_kbps"),
            s(m, "packets_per_s"),
            s(m, "packets_sent"),
            s(m, "drops"),
        ));
    }
    let clients = v["paired_clients"].as_array().cloned().unwrap_or_default();
    out.push_str(&format!("paired clients: {}\n", clients.len()));
    for c in &clients {
        out.push_str(&format!(
            "  {} {} ({})\n",
            s(c, "id"),
            s(c, "name"),
            s(c, "protocol")
        ));
    }
    for p in v["pairing"]["moonlight_pending"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        out.push_str(&format!(
            "waiting for a PIN: {} (for {} s) — run `strahl-control pin PIN`\n",
            s(&p, "client"),
            s(&p, "waiting_s")
        ));
    }
    if let Some(w) = v["pairing"].get("native_window").filter(|w| !w.is_null()) {
        out.push_str(&format!(
            "native pairing window open: PIN {} for {} s\n",
            s(w, "pin"),
            s(w, "expires_in_s")
        ));
    }
    out
}

fn client_list(t: &Target) -> Result<Vec<Value>, CmdError> {
    Ok(call(t, "GET", "/api/v1/clients", None)?["clients"]
        .as_array()
        .cloned()
        .unwrap_or_default())
}

/// The one client `who` names (its id, or its display name when that is unique).
fn find_client<'a>(list: &'a [Value], who: &str, what: &str) -> Result<&'a Value, CmdError> {
    let by_id: Vec<&Value> = list.iter().filter(|c| s(c, "id") == who).collect();
    let by_name: Vec<&Value> = list.iter().filter(|c| s(c, "name") == who).collect();
    match (by_id.as_slice(), by_name.as_slice()) {
        ([c], _) | ([], [c]) => Ok(*c),
        ([], []) => Err(fail(format!("no paired client named or with id {who:?}"))),
        _ => Err(fail(format!(
            "{} clients are named {who:?}; {what} by id (see `strahl-control clients`)",
            by_name.len()
        ))),
    }
}

/// `clients`: list, unpair, rename or set permissions.
pub fn clients(a: &ClientArgs, action: &ClientsAction) -> Result<String, CmdError> {
    let t = target(a)?;
    match action {
        ClientsAction::List => {
            let list = client_list(&t)?;
            if a.json {
                return Ok(format!("{}\n", json!({ "clients": list })));
            }
            if list.is_empty() {
                return Ok("no paired clients\n".into());
            }
            let mut out = format!(
                "{:<18} {:<10} {:<24} PERMISSIONS\n",
                "ID", "PROTOCOL", "NAME"
            );
            for c in &list {
                let perms = match c["permissions"].as_array() {
                    Some(p) if p.is_empty() => "none".to_string(),
                    Some(p) => p
                        .iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(","),
                    None => "-".to_string(),
                };
                out.push_str(&format!(
                    "{:<18} {:<10} {:<24} {perms}\n",
                    s(c, "id"),
                    s(c, "protocol"),
                    s(c, "name")
                ));
            }
            Ok(out)
        }
        ClientsAction::Unpair(who) => {
            let list = client_list(&t)?;
            let c = find_client(&list, who, "unpair")?;
            let id = s(c, "id");
            call(
                &t,
                "POST",
                "/api/v1/clients/unpair",
                Some(&json!({ "id": id })),
            )?;
            Ok(format!("unpaired {} ({id})\n", s(c, "name")))
        }
        ClientsAction::Perm { who, permissions } => {
            let list = client_list(&t)?;
            let c = find_client(&list, who, "set permissions")?;
            let id = s(c, "id");
            call(
                &t,
                "POST",
                "/api/v1/clients/permissions",
                Some(&json!({ "id": id, "permissions": permissions })),
            )?;
            let now = client_list(&t)?;
            let shown = now
                .iter()
                .find(|x| s(x, "id") == id)
                .and_then(|x| x["permissions"].as_array())
                .map(|p| {
                    let v: Vec<&str> = p.iter().filter_map(Value::as_str).collect();
                    if v.is_empty() {
                        "none".to_string()
                    } else {
                        v.join(",")
                    }
                })
                .unwrap_or_else(|| permissions.clone());
            Ok(format!("permissions of {} ({id}): {shown}\n", s(c, "name")))
        }
        ClientsAction::Rename { id, name } => {
            call(
                &t,
                "POST",
                "/api/v1/clients/rename",
                Some(&json!({ "id": id, "name": name })),
            )?;
            Ok(format!("renamed {id} to {name:?}\n"))
        }
    }
}

/// `pair`: arm the native window, list waiting Moonlight clients.
pub fn pair(a: &ClientArgs) -> Result<String, CmdError> {
    let t = target(a)?;
    let armed = call(&t, "POST", "/api/v1/pair/arm", Some(&json!({})))?;
    let mut out = format!(
        "native pairing window open for {} s: enter PIN {} on the strahl client\n",
        crate::status_backend::NATIVE_WINDOW.as_secs(),
        s(&armed, "pin")
    );
    let st = call(&t, "GET", "/api/v1/status", None)?;
    let pending = st["pairing"]["moonlight_pending"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if pending.is_empty() {
        out.push_str(
            "Moonlight: add this host in Moonlight; when it shows a PIN, run `strahl-control pin PIN`\n",
        );
    }
    for p in pending {
        out.push_str(&format!(
            "Moonlight client {} waits for its PIN: run `strahl-control pin PIN`\n",
            s(&p, "client")
        ));
    }
    Ok(out)
}

/// `passwd`: `password` was read by the caller (stdin).
pub fn passwd(a: &ClientArgs, password: &str) -> Result<String, CmdError> {
    strahl_status::auth::AuthState::check_new_password(password).map_err(|e| {
        usage(format!(
            "password not acceptable: {e:?} (at least 8 characters)"
        ))
    })?;
    let t = target(a)?;
    match http(
        &t,
        "POST",
        "/api/v1/passwd",
        Some(&json!({ "password": password })),
    ) {
        Ok((200, _)) => {
            Ok("password set (through the running serve; browser sessions logged out)\n".into())
        }
        Ok((code, body)) => Err(fail(format!(
            "the running serve refused the new password: HTTP {code}: {body}"
        ))),
        Err(_) => {
            // Not running: write the hash where serve will read it at start.
            let phc = strahl_status::auth::hash_password(password)
                .map_err(|e| fail(format!("hashing: {e:?}")))?;
            std::fs::create_dir_all(&t.state_dir)
                .map_err(|e| fail(format!("{}: {e}", t.state_dir.display())))?;
            let path = t.state_dir.join(PASSWORD_FILE);
            strahl_status::write_atomic(&path, format!("{phc}\n").as_bytes(), SECRET_FILE_MODE)
                .map_err(|e| fail(format!("{}: {e}", path.display())))?;
            Ok(format!(
                "password hash stored in {} (serve was not running; it applies at its next start)\n",
                path.display()
            ))
        }
    }
}

/// `token`: print, or rotate while serve is stopped.
pub fn token(a: &ClientArgs, rotate: bool) -> Result<String, CmdError> {
    let t = target(a)?;
    let path = t.state_dir.join(TOKEN_FILE);
    if rotate {
        if http(&t, "GET", "/healthz", None).is_ok() {
            return Err(fail(format!(
                "serve is running at {} and holds the current token: stop it, rotate, start it",
                t.addr
            )));
        }
        std::fs::create_dir_all(&t.state_dir)
            .map_err(|e| fail(format!("{}: {e}", t.state_dir.display())))?;
        let new = strahl_status::auth::random_hex().map_err(|e| fail(e.to_string()))?;
        strahl_status::write_atomic(&path, format!("{new}\n").as_bytes(), SECRET_FILE_MODE)
            .map_err(|e| fail(format!("{}: {e}", path.display())))?;
        return Ok(format!("{new}\n"));
    }
    if t.token.is_none() {
        // Creates it exactly as serve would at first start.
        strahl_status::auth::AuthState::open(&t.state_dir).map_err(|e| fail(e.to_string()))?;
    }
    let tok =
        std::fs::read_to_string(&path).map_err(|e| fail(format!("{}: {e}", path.display())))?;
    Ok(format!("{}\n", tok.trim()))
}

/// `doctor`: (text, exit code).
pub fn doctor(a: &ClientArgs) -> Result<(String, u8), CmdError> {
    use crate::doctor::{Inputs, RealSystem, render_human, required_missing, run_checks};
    let cfg = Config::load_or_default(a.config.as_deref())
        .map_err(|e| usage(format!("configuration error: {e}")))?;
    let findings = run_checks(&RealSystem, &Inputs::from_config(&cfg));
    let missing = required_missing(&findings);
    let text = if a.json {
        format!(
            "{}\n",
            json!({ "findings": findings, "required_missing": missing })
        )
    } else {
        let mut out = String::new();
        render_human(&findings, &mut out);
        out
    };
    Ok((text, u8::from(missing)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(id: u64, transport: Option<&str>, send: Option<u64>) -> Value {
        json!({
            "id": id, "client": format!("10.0.0.{id}"),
            "client_name": (id == 1).then_some("Living room"), "protocol": "gamestream",
            "mode": "1280x720@60 h264", "bitrate_kbps": 15000, "fec_percent": 20 + id,
            "fec_recovered": id, "fec_failed": 0, "send_kbps": send,
            "pacing_rate_kbps": send.map(|k| k * 2), "packets_per_s": send.map(|_| 900),
            "packets_sent": send.map(|_| 9000), "drops": send.map(|_| 0),
            "latency_us": 1500,
            "transport": transport,
            "transport_detail": transport.map(|_| "copy mode on queue 0"),
        })
    }

    fn status_json(sessions: Vec<Value>) -> Value {
        json!({
            "host": { "name": "h", "version": "0", "uptime_s": 1, "encoder": "e", "capture": "c" },
            "dataplane_connected": true,
            "transport": { "name": "af_xdp", "reason": "self-test passed" },
            "sessions": sessions,
            "media": { "send_kbps": 31000, "pacing_rate_kbps": 60000, "packets_per_s": 2800,
                       "packets_sent": 99, "drops": 3 },
            "paired_clients": [],
            "pairing": { "moonlight_pending": [], "native_window": null },
        })
    }

    #[test]
    fn status_shows_each_sessions_transport_and_host_wide_figures_once() {
        let two = render_status(&status_json(vec![
            session(1, Some("af_xdp"), None),
            session(2, None, None),
        ]));
        assert!(
            two.contains("start-up transport: af_xdp (self-test passed); each session's own"),
            "{two}"
        );
        let lines: Vec<&str> = two.lines().collect();
        let one = lines.iter().find(|l| l.contains("#1 ")).unwrap();
        let other = lines.iter().find(|l| l.contains("#2 ")).unwrap();
        assert!(
            one.contains("transport af_xdp (copy mode on queue 0)"),
            "{one}"
        );
        assert!(other.contains("transport not reported yet"), "{other}");
        assert!(
            one.contains("FEC 21 %") && other.contains("FEC 22 %"),
            "{two}"
        );
        assert!(one.contains("send figures host-wide"), "{one}");
        assert!(
            two.contains("all sessions (host-wide): sending 31000 kbit/s"),
            "{two}"
        );
        // Alone, a session's line carries the send figures and there is no totals line.
        let alone = render_status(&status_json(vec![session(1, Some("sendmmsg"), Some(7000))]));
        assert!(
            alone.contains("sending 7000 kbit/s (paced at 14000 kbit/s)"),
            "{alone}"
        );
        assert!(!alone.contains("all sessions"), "{alone}");
    }

    #[test]
    fn dechunks() {
        assert_eq!(
            dechunk("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
            "hello world"
        );
        assert_eq!(dechunk("zz\r\nxx"), "");
        assert_eq!(dechunk("10\r\nshort"), "");
    }
}
