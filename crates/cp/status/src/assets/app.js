// strahl status page: polls /api/v1/status once a second and renders it; mutations go through
// api() which adds the CSRF token from the login. No external resources (works offline on a LAN).
"use strict";

const POLL_MS = 1000;          // status refresh period
const HISTORY = 120;           // chart points kept (2 minutes at POLL_MS)
const MIN_SPAN = 30;           // a young chart spans at least this many points, not all 120
const REQUEST_TIMEOUT_MS = 5000;

const state = { csrf: null, loggedIn: false, passwordSet: true, openReads: false, bitrate: [], pps: [] };

const $ = (id) => document.getElementById(id);

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

async function api(method, path, body) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (state.csrf) headers["X-CSRF-Token"] = state.csrf;
  const ctl = new AbortController();
  const t = setTimeout(() => ctl.abort(), REQUEST_TIMEOUT_MS);
  try {
    const r = await fetch(path, {
      method, headers, signal: ctl.signal, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let data = null;
    try { data = await r.json(); } catch (_) { data = null; }
    return { status: r.status, data };
  } catch (e) {
    return { status: 0, data: { error: String(e) } };
  } finally {
    clearTimeout(t);
  }
}

function fmtKbps(k) { return (k / 1000).toFixed(1) + " Mbit/s"; }
function fmtUptime(s) {
  const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
  return (d ? d + "d " : "") + h + "h " + m + "m " + (s % 60) + "s";
}

async function refreshSession() {
  const r = await api("GET", "/api/v1/session");
  if (r.status !== 200 || !r.data) return;
  state.passwordSet = r.data.password_set;
  state.loggedIn = r.data.logged_in;
  state.csrf = r.data.csrf || null;
  state.openReads = r.data.open_reads;
  renderAuth();
}

function renderAuth() {
  $("logout").classList.toggle("hidden", !state.loggedIn);
  $("login-section").classList.toggle("hidden", state.loggedIn);
  $("login-title").textContent = state.passwordSet ? "Log in" : "Set the admin password";
  $("login-hint").textContent = state.passwordSet
    ? "Log in to pair clients, unpair, rename or stop sessions."
    : "First start: enter the setup code shown on the appliance's console (or in its journal: " +
      "journalctl -u strahl-control), then choose a password (at least 8 characters).";
  // The one-time setup code proves the browser's user can see the appliance's console.
  $("setup-code").classList.toggle("hidden", state.passwordSet);
  $("setup-code").required = !state.passwordSet;
  $("login-button").textContent = state.passwordSet ? "Log in" : "Set password";
  $("password").autocomplete = state.passwordSet ? "current-password" : "new-password";
  for (const b of document.querySelectorAll(".needs-login, #pin-button, #arm")) b.disabled = !state.loggedIn;
}

function renderHost(s) {
  const dl = $("host");
  dl.replaceChildren();
  const rows = [
    ["Host", s.host.name], ["Version", s.host.version], ["Uptime", fmtUptime(s.host.uptime_s)],
    ["Data plane", s.dataplane_connected ? "connected" : "DISCONNECTED"],
    // The self-test's pick when the data plane started; sessions may send through another
    // (a fallback), so each session's own transport is in its row.
    ["Start-up transport", s.transport
      ? s.transport.name + " (the data plane's start-up choice; each session's transport is in its row)"
      : "—"],
    ["Why", s.transport ? s.transport.reason : "—"],
  ];
  for (const [k, v] of rows) { dl.append(el("dt", k), el("dd", v)); }
  // What each subsystem runs on and why (the start-up choices): capture, encode and audio
  // come from the data plane once it is connected; until then the configured preference.
  const detected = new Map((s.detected || []).map((d) => [d.subsystem, d]));
  const configured = { capture: s.host.capture, encode: s.host.encoder };
  for (const sub of ["capture", "encode", "audio", "input"]) {
    const d = detected.get(sub);
    const dd = d
      ? el("dd", d.choice + " — " + d.reason)
      : el("dd", configured[sub] ? configured[sub] + " (configured; not reported yet)" : "—", "muted");
    dd.dataset.detected = sub;
    dl.append(el("dt", sub[0].toUpperCase() + sub.slice(1)), dd);
  }
  const h = $("health");
  h.textContent = s.dataplane_connected ? "healthy" : "data plane disconnected";
  h.className = "pill " + (s.dataplane_connected ? "ok" : "bad");
}

function actionButton(label, fn) {
  const b = el("button", label, "needs-login");
  b.type = "button";
  b.disabled = !state.loggedIn;
  b.addEventListener("click", fn);
  return b;
}

// A data-plane figure measured for all sessions together: the API gives it per row only while
// one session runs (then it is that session's); with several the row says so and the totals
// line under the table has the number.
function hostWide(v, fmt) {
  if (v === null || v === undefined) {
    const td = el("td", "host-wide", "muted hostwide");
    td.title = "measured for all sessions together: see the line under the table";
    return td;
  }
  return el("td", fmt(v));
}

function renderSessions(s) {
  const tb = $("sessions");
  tb.replaceChildren();
  const id = (v) => v;
  for (const x of s.sessions) {
    const tr = el("tr");
    tr.dataset.session = x.id;
    const who = el("td", x.client_name ? x.client_name + " (" + x.client + ")" : x.client);
    tr.append(who);
    for (const v of [x.protocol, x.mode]) tr.append(el("td", v));
    const vt = el("td", x.video ? x.video.codec + " " + x.video.bit_depth + "-bit" + (x.video.hdr ? " HDR" : "") +
      (x.video.encrypted ? ", encrypted" : ", clear") : "—");
    vt.className = "video";
    vt.title = x.video ? (x.video.encrypted ? "video shards AES-GCM sealed (SS_ENC_VIDEO)" : "video crosses the network unencrypted") : "";
    tr.append(vt, el("td", fmtKbps(x.bitrate_kbps)));
    tr.append(hostWide(x.send_kbps, fmtKbps));
    for (const v of [x.fec_percent + " %", x.fec_recovered + " / " + x.fec_failed]) tr.append(el("td", v));
    tr.append(hostWide(x.pacing_rate_kbps, fmtKbps), hostWide(x.packets_per_s, id), hostWide(x.drops, id));
    tr.append(el("td", x.latency_us == null ? "—" : (x.latency_us / 1000).toFixed(1) + " ms"));
    const tt = el("td", x.transport || "—");
    tt.className = "transport";
    tt.title = x.transport ? (x.transport_detail || "") : "not reported by the data plane yet";
    tr.append(tt);
    const td = el("td");
    td.append(actionButton("Keyframe", () => api("POST", "/api/v1/sessions/" + x.id + "/keyframe")),
      " ", actionButton("Stop", () => api("POST", "/api/v1/sessions/" + x.id + "/stop").then(poll)));
    tr.append(td);
    tb.append(tr);
  }
  $("no-sessions").classList.toggle("hidden", s.sessions.length > 0);
  const m = s.media;
  $("media-totals").textContent = s.sessions.length && m
    ? "All sessions together (the data plane measures these host-wide): sending " + fmtKbps(m.send_kbps) +
      ", latest frame paced at " + fmtKbps(m.pacing_rate_kbps) + ", " + m.packets_per_s + " packets/s, " +
      m.drops + " frames refused, " + m.frames_skipped + " frame slots skipped (encoder late); audio: " + (m.audio_source || "—") + "."
    : "";
}

function renderClients(s) {
  const tb = $("clients");
  tb.replaceChildren();
  for (const c of s.paired_clients) {
    const tr = el("tr");
    const perms = c.permissions ? (c.permissions.length ? c.permissions.join(", ") : "none") : "—";
    tr.append(el("td", c.name), el("td", c.protocol), el("td", c.id, "muted"), el("td", perms));
    const td = el("td");
    td.append(actionButton("Rename", async () => {
      const name = prompt("New name for " + c.name, c.name);
      if (name) { await api("POST", "/api/v1/clients/rename", { id: c.id, name }); poll(); }
    }), " ");
    if (c.permissions) {
      td.append(actionButton("Permissions", async () => {
        const p = prompt("Permissions of " + c.name + " (comma-separated: view, list, launch, keyboard, " +
          "mouse, controller, touch, pen, clipboard-read, clipboard-set; or all / none)", c.permissions.join(","));
        if (p !== null) { await api("POST", "/api/v1/clients/permissions", { id: c.id, permissions: p }); poll(); }
      }), " ");
    }
    td.append(actionButton("Unpair", async () => {
      if (confirm("Unpair " + c.name + "?")) { await api("POST", "/api/v1/clients/unpair", { id: c.id }); poll(); }
    }));
    tr.append(td);
    tb.append(tr);
  }
}

function renderPairing(s) {
  const p = s.pairing;
  $("pending").textContent = p.moonlight_pending.length
    ? "Waiting for a PIN: " + p.moonlight_pending.map((x) => x.client + " (" + x.waiting_s + " s)").join(", ")
    : "No client waiting.";
  const w = p.native_window;
  $("native-pin").textContent = w ? (w.pin || "••••") : "";
  $("native-expiry").textContent = w ? "window open for another " + w.expires_in_s + " s" : "";
}

function drawChart(canvas, data, color) {
  const ctx = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height;
  ctx.clearRect(0, 0, W, H);
  ctx.strokeStyle = "#253040";
  ctx.lineWidth = 1;
  for (let i = 1; i < 4; i++) { ctx.beginPath(); ctx.moveTo(0, H * i / 4); ctx.lineTo(W, H * i / 4); ctx.stroke(); }
  if (data.length < 2) return;
  const max = Math.max(1, ...data) * 1.15;
  const span = Math.min(HISTORY, Math.max(data.length, MIN_SPAN));
  ctx.strokeStyle = color;
  ctx.lineWidth = 2;
  ctx.beginPath();
  data.forEach((v, i) => {
    const x = W - (data.length - 1 - i) * (W / (span - 1));
    const y = H - (v / max) * H;
    if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
  });
  ctx.stroke();
  ctx.fillStyle = "#8b98a5";
  ctx.font = "11px sans-serif";
  ctx.fillText(max.toFixed(1), 4, 12);
  ctx.fillText("now " + data[data.length - 1].toFixed(1), W - 80, H - 6);
}

function pushHistory(s) {
  // Host-wide totals: the data plane measures its send rate over all sessions together.
  const m = s.media || { send_kbps: 0, packets_per_s: 0 };
  state.bitrate.push(s.sessions.length ? m.send_kbps / 1000 : 0);
  state.pps.push(s.sessions.length ? m.packets_per_s : 0);
  if (state.bitrate.length > HISTORY) state.bitrate.shift();
  if (state.pps.length > HISTORY) state.pps.shift();
  drawChart($("chart-bitrate"), state.bitrate, "#4fb3ff");
  drawChart($("chart-pps"), state.pps, "#3fb950");
}

async function poll() {
  if (!state.loggedIn && !state.openReads) {
    // Reads are closed on this host: do not fetch (a 401 would only log a console error).
    $("footer").textContent = "Log in to see the status (reads are not open on this host).";
    return;
  }
  const r = await api("GET", "/api/v1/status");
  if (r.status === 200 && r.data) {
    renderHost(r.data);
    renderSessions(r.data);
    renderClients(r.data);
    renderPairing(r.data);
    pushHistory(r.data);
    $("footer").textContent = "updated " + new Date().toLocaleTimeString();
  } else if (r.status === 401) {
    $("footer").textContent = "Log in to see the status (reads are not open on this host).";
  } else {
    $("footer").textContent = "status unavailable (" + r.status + ")";
  }
}

async function onLogin(ev) {
  ev.preventDefault();
  const password = $("password").value;
  const r = state.passwordSet
    ? await api("POST", "/api/v1/login", { password })
    : await api("POST", "/api/v1/passwd", { password, setup_code: $("setup-code").value });
  if (r.status === 200 && r.data && r.data.csrf) {
    state.csrf = r.data.csrf;
    state.loggedIn = true;
    state.passwordSet = true;
    $("password").value = "";
    $("setup-code").value = "";
    $("login-error").textContent = "";
    renderAuth();
    poll();
  } else {
    $("login-error").textContent = (r.data && r.data.error) || ("failed (" + r.status + ")");
    if (!state.passwordSet) refreshSession(); // set meanwhile elsewhere: show the login form
  }
}

async function onPin(ev) {
  ev.preventDefault();
  const pin = $("pin").value.trim();
  const r = await api("POST", "/api/v1/pin", { pin });
  const out = $("pin-result");
  if (r.status === 200) { out.textContent = "PIN sent."; out.className = "muted"; $("pin").value = ""; }
  else { out.textContent = (r.data && r.data.error) || ("failed (" + r.status + ")"); out.className = "error"; }
  poll();
}

async function onArm() {
  const r = await api("POST", "/api/v1/pair/arm");
  if (r.status === 200 && r.data) $("native-pin").textContent = r.data.pin;
  poll();
}

async function onLogout() {
  await api("POST", "/api/v1/logout");
  state.csrf = null;
  state.loggedIn = false;
  renderAuth();
  poll();
}

function start() {
  $("login-form").addEventListener("submit", onLogin);
  $("pin-form").addEventListener("submit", onPin);
  $("arm").addEventListener("click", onArm);
  $("logout").addEventListener("click", onLogout);
  refreshSession().then(poll);
  setInterval(poll, POLL_MS);
}

document.addEventListener("DOMContentLoaded", start);
