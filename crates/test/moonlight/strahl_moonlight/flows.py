"""The GameStream flows every client subcommand is made of: pairing, /serverinfo + /applist,
/launch, the stream start, and /cancel with the end of the stream.

Contract: each flow prints its own steps (out.emit) and returns what the next flow needs; a
refusal the host is allowed to give (wrong PIN, 401, busy, a start stage failing) is a step with
"ok": false, never an exception. Steps:
  pair              serverinfo, pair {ok, paired, ms | submitted?, error...}, apps {names, ids, ms}
  connect/applist   serverinfo (HTTP), applist {ok, names, ids | error...} (HTTPS)
  launch            keys {rikey, rikeyid, packet_size, query}, launch {ok, url},
                    serverinfo_busy (HTTPS), launch_busy {ok, ...} (a second /launch, when asked)
  start             stream_start {ok, seconds | stage, error_code, message}
  open_stream       connect, applist, launch of --app, start: the prologue of every stream
  end               cancel {ok, t}, ended {terminated, error, seconds} (when waiting for the host
                    to end the stream), serverinfo_free (HTTPS)
"""

import json
import secrets
import subprocess
import threading
import time
from collections import namedtuple

from . import codecs
from .core import SURROUND_AUDIO_INFO, new_keys, set_client_encryption, stream_config
from .out import emit, err_obj, info_obj

# The longest `--pin-cmd` is retried (until a client is waiting) and the pairing then waited for.
PIN_RETRY_S = 45.0

Launch = namedtuple("Launch", "url key iv query")
# An opened stream: `started` says whether LiStartConnection succeeded; `t_launch` is
# time.monotonic() before /launch, `t_start` before LiStartConnection.
Stream = namedtuple("Stream", "http session started t_launch t_start")


def pair(a):
    """Pairs the identity in --config with PIN --pin; the host learns the PIN out of band (the
    test), or from --pin-cmd, run (retried) while the client waits."""
    from moonlight_python import MoonlightClient
    from moonlight_python.discovery import connect_to_server
    from moonlight_python.identity import Identity

    client = MoonlightClient(config_dir=a.config)
    server = connect_to_server(a.host, Identity(a.config), a.port)
    emit(step="serverinfo", **info_obj(server))
    result = {}

    def attempt():
        try:
            client.pair(server, pin=a.pin)
            result["ok"] = True
        except Exception as e:  # reported; the caller decides
            result["err"] = err_obj(e)

    t0 = time.monotonic()
    extra = {}
    if a.pin_cmd:
        th = threading.Thread(target=attempt, daemon=True)
        th.start()
        extra["submitted"] = submit_pin(json.loads(a.pin_cmd) + [a.pin], th)
        th.join(timeout=PIN_RETRY_S)
    else:
        attempt()
    if not result.get("ok"):
        emit(step="pair", ok=False, **extra, **result.get("err", {"error": "timeout"}))
        return
    emit(step="pair", ok=True, paired=bool(client._server and client._server.paired),
         ms=(time.monotonic() - t0) * 1000)
    t0 = time.monotonic()
    apps = client.apps()
    emit(step="apps", names=[x.name for x in apps], ids=[x.id for x in apps],
         ms=(time.monotonic() - t0) * 1000)


def submit_pin(cmd, pairing):
    """Runs `cmd` until it succeeds (a client is waiting) or the pairing thread ends."""
    deadline = time.monotonic() + PIN_RETRY_S
    while pairing.is_alive() and time.monotonic() < deadline:
        if subprocess.run(cmd, capture_output=True, text=True, timeout=15).returncode == 0:
            return True
        time.sleep(0.3)
    return False


def connect(a):
    """(http, serverinfo) after HTTP /serverinfo, which teaches the client the HTTPS port."""
    from moonlight_python.http_client import NvHTTP
    from moonlight_python.identity import Identity

    http = NvHTTP(a.host, Identity(a.config), http_port=a.port)
    info = http.parse_server_info(http.get_server_info())
    emit(step="serverinfo", **info_obj(info))
    return http, info


def applist(http):
    """The host's apps over HTTPS, or None (reported) when it refuses."""
    try:
        apps = http.get_app_list()
    except Exception as e:
        emit(step="applist", ok=False, **err_obj(e))
        return None
    emit(step="applist", ok=True, names=[x.name for x in apps], ids=[x.id for x in apps])
    return apps


def app_id(apps, name):
    return [x.id for x in apps if x.name.lower() == name.lower()][0]


def launch(http, session, app, cfg, busy_launch=False):
    """/launch of `app` with the core's own launch query and fresh keys; then HTTPS /serverinfo
    (busy) and, with `busy_launch`, a second /launch (which the host must refuse)."""
    query = session.get_launch_query_params()
    http.server_cert_pem = b"pinned"  # HTTPS first for /serverinfo from now on
    key, iv = new_keys()
    emit(step="keys", rikey=key.hex(), rikeyid=int.from_bytes(iv[:4], "big", signed=True),
         packet_size=cfg.packet_size, query=query)
    url = launch_app(http, app, cfg, key, iv, query)
    emit(step="launch", ok=True, url=url)
    serverinfo(http, "serverinfo_busy")
    if busy_launch:
        try:
            url2 = launch_app(http, app, cfg, secrets.token_bytes(16), iv, query)
            emit(step="launch_busy", ok=True, url=url2)
        except Exception as e:
            emit(step="launch_busy", ok=False, **err_obj(e))
    return Launch(url, key, iv, query)


def launch_app(http, app, cfg, key, iv, query):
    return http.launch_app(app, cfg.width, cfg.height, cfg.fps, cfg.bitrate_kbps, 1, key, iv,
                           SURROUND_AUDIO_INFO, True, False, query)


def serverinfo(http, step):
    emit(step=step, **info_obj(http.parse_server_info(http.get_server_info(use_https=True))))


def start(session, host, server, url, cfg, key, iv, **kw):
    """LiStartConnection (RTSP, ENet control, video, audio); `server` has the /serverinfo
    fields it needs. Returns (the StreamStartError or None, seconds it took)."""
    from moonlight_python.exceptions import StreamStartError

    t0 = time.monotonic()
    try:
        session.start(host, server.app_version, server.gfe_version,
                      server.server_codec_mode_support, url, cfg, key, iv, **kw)
    except StreamStartError as e:
        secs = time.monotonic() - t0
        emit(step="stream_start", ok=False, stage=e.stage, error_code=e.error_code,
             seconds=round(secs, 2), message=str(e))
        return e, secs
    secs = time.monotonic() - t0
    emit(step="stream_start", ok=True, seconds=round(secs, 2))
    return None, secs


def open_stream(a, keep_failed=False, busy_launch=False, **kw):
    """The paired identity in --config launches --app at --width/--height/--fps/--bitrate and
    starts the stream (`kw` goes to StreamingSession.start). None when /applist is refused, or
    when the start failed (after /cancel) unless `keep_failed`."""
    from moonlight_python.stream import StreamingSession

    http, info = connect(a)
    apps = applist(http)
    if apps is None:
        return None
    cfg = stream_config(a.width, a.height, a.fps, a.bitrate,
                        formats=codecs.formats(getattr(a, "codec", "h264")))
    session = StreamingSession()
    t_launch = time.monotonic()
    ln = launch(http, session, app_id(apps, a.app), cfg, busy_launch=busy_launch)
    set_client_encryption(a.client_encryption)
    err, secs = start(session, a.host, info, ln.url, cfg, ln.key, ln.iv, **kw)
    if err is not None and not keep_failed:
        http.quit_app()
        return None
    return Stream(http, session, err is None, t_launch, time.monotonic() - secs)


def end(http, session, started, wait=None):
    """/cancel. With `wait` (s) and a started stream, /cancel comes first and the host must end
    the stream within `wait`; otherwise the client stops its stream first. Then HTTPS
    /serverinfo (free)."""
    if started and wait is not None:
        t_cancel = time.monotonic()
        http.quit_app()
        emit(step="cancel", ok=True, t=t_cancel)
        t1 = time.monotonic()
        while not session.is_terminated and time.monotonic() - t1 < wait:
            time.sleep(0.05)
        emit(step="ended", terminated=session.is_terminated,
             error=session.termination_error if session.is_terminated else None,
             seconds=round(time.monotonic() - t1, 2))
        session.stop()
    else:
        if started:
            session.stop()
        t_cancel = time.monotonic()
        http.quit_app()
        emit(step="cancel", ok=True, t=t_cancel)
    serverinfo(http, "serverinfo_free")


def applist_cmd(a):
    applist(connect(a)[0])
