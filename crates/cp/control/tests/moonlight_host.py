#!/usr/bin/env python3
"""Drive the real Moonlight core (PyPI moonlight-python 0.3.0, a GPL test tool, never linked)
against `strahl-control serve`. Used by tests/moonlight_host.rs; each invocation is one client
process (common-c is process-global).

Every step prints one JSON object per line on stdout; the Rust test asserts on them.

Modes:
  pair     serverinfo over HTTP, MoonlightClient.pair(server, pin=PIN), then apps()
  applist  serverinfo over HTTP (learns HttpsPort), then /applist over HTTPS
  stream   (paired config dir) applist, /launch 1280x720@60 with a chosen rikey/rikeyid, the
           StreamingSession start from sessionUrl0 (RTSP, then the ENet control stream and the
           media ports: all 11 stages), then while connected: an IDR request and a few
           keyboard/mouse events through LiSend* (a second cffi handle on the same .so, §B8),
           frames pulled for --frame-wait s (default FRAME_WAIT_S; counted; none arrive while the data plane sends no
           media), then /cancel, the host's termination as the client saw it, HTTPS /serverinfo
"""

import argparse
import json
import secrets
import struct
import sys
import threading
import time
import traceback

# How long the connected client pulls frames before /cancel. Short of the client's own
# no-video timeout (~10 s, ML_ERROR_NO_VIDEO_TRAFFIC) so the termination seen is ours.
FRAME_WAIT_S = 4.0
# How long the client waits for the host's termination message after /cancel.
TERMINATE_WAIT_S = 8.0

INPUT_CDEF = """
int LiSendKeyboardEvent(short keyCode, signed char keyAction, signed char modifiers);
int LiSendMouseButtonEvent(signed char action, int button);
int LiSendMouseMoveEvent(short deltaX, short deltaY);
"""


def send_inputs():
    """Key 'A' down/up, left button down/up, one relative move; returns each call's rc."""
    import cffi
    from moonlight_python.stream import _find_shared_lib

    ffi = cffi.FFI()
    ffi.cdef(INPUT_CDEF)
    lib = ffi.dlopen(_find_shared_lib())
    calls = [
        ("key_down", lambda: lib.LiSendKeyboardEvent(0x41, 0x03, 0)),
        ("key_up", lambda: lib.LiSendKeyboardEvent(0x41, 0x04, 0)),
        ("button_down", lambda: lib.LiSendMouseButtonEvent(0x07, 1)),
        ("button_up", lambda: lib.LiSendMouseButtonEvent(0x08, 1)),
        ("move", lambda: lib.LiSendMouseMoveEvent(17, -9)),
    ]
    rcs = {}
    for name, call in calls:
        rcs[name] = call()
        time.sleep(0.02)  # separate packets (common-c batches mouse motion)
    return rcs


def pull_frames(session, seconds):
    """Frame numbers pulled within `seconds` (a timer wakes the blocking pull)."""
    numbers = []
    deadline = time.monotonic() + seconds
    timer = threading.Timer(seconds, session.wake)
    timer.start()
    try:
        while time.monotonic() < deadline:
            f = session.pull_frame()
            if f is None:
                break
            numbers.append(f.frame_number)
    finally:
        timer.cancel()
    return numbers


def emit(**kw):
    print(json.dumps(kw), flush=True)


def err_obj(e):
    return {
        "error": type(e).__name__,
        "message": str(e),
        "code": getattr(e, "status_code", None),
    }


def info_obj(s):
    return {
        "app_version": s.app_version,
        "https_port": s.https_port,
        "codec": s.server_codec_mode_support,
        "state": s.state,
        "current_game": s.current_game,
        "paired": s.paired,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["pair", "applist", "stream"])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--config", required=True)
    ap.add_argument("--pin", default="0000")
    ap.add_argument("--frame-wait", type=float, default=FRAME_WAIT_S,
                    help="seconds of frame pulling before /cancel (stream)")
    a = ap.parse_args()

    from moonlight_python import MoonlightClient
    from moonlight_python.discovery import connect_to_server
    from moonlight_python.http_client import NvHTTP
    from moonlight_python.identity import Identity

    if a.mode == "pair":
        client = MoonlightClient(config_dir=a.config)
        server = connect_to_server(a.host, Identity(a.config), a.port)
        emit(step="serverinfo", **info_obj(server))
        try:
            client.pair(server, pin=a.pin)
        except Exception as e:  # reported; the Rust side decides
            emit(step="pair", ok=False, **err_obj(e))
            return
        emit(step="pair", ok=True, paired=bool(client._server and client._server.paired))
        emit(step="apps", names=[x.name for x in client.apps()])
        return

    http = NvHTTP(a.host, Identity(a.config), http_port=a.port)
    info = http.parse_server_info(http.get_server_info())  # learns HttpsPort
    emit(step="serverinfo", **info_obj(info))
    try:
        apps = http.get_app_list()
        emit(step="applist", ok=True, names=[x.name for x in apps], ids=[x.id for x in apps])
    except Exception as e:
        emit(step="applist", ok=False, **err_obj(e))
        return
    if a.mode == "applist":
        return

    from moonlight_python.config import StreamConfig, VIDEO_FORMAT_H264
    from moonlight_python.exceptions import StreamStartError
    from moonlight_python.stream import StreamingSession

    app_id = [x.id for x in apps if x.name.lower() == "desktop"][0]
    cfg = StreamConfig(width=1280, height=720, fps=60, bitrate_kbps=20000,
                       supported_video_formats=VIDEO_FORMAT_H264)
    session = StreamingSession()
    query = session.get_launch_query_params()
    http.server_cert_pem = b"pinned"  # HTTPS first for /serverinfo
    key = secrets.token_bytes(16)
    iv = struct.pack(">i", -556323120) + secrets.token_bytes(12)
    emit(step="keys", rikey=key.hex(), rikeyid=-556323120, packet_size=cfg.packet_size)
    url = http.launch_app(app_id, 1280, 720, 60, 20000, 1, key, iv, 196610, True, False, query)
    emit(step="launch", ok=True, url=url)
    busy = http.parse_server_info(http.get_server_info(use_https=True))
    emit(step="serverinfo_busy", **info_obj(busy))
    stage = code = None
    t0 = time.monotonic()
    started = False
    try:
        session.start(a.host, info.app_version, info.gfe_version, info.server_codec_mode_support,
                      url, cfg, key, iv)
        started = True
        emit(step="stream", ok=True, seconds=round(time.monotonic() - t0, 2))
    except StreamStartError as e:
        stage, code = e.stage, e.error_code
        emit(step="stream", ok=False, stage=stage, error_code=code,
             seconds=round(time.monotonic() - t0, 2), message=str(e))
    if started:
        session.request_idr()
        emit(step="input", rcs=send_inputs())
        frames = pull_frames(session, a.frame_wait)
        emit(step="frames", count=len(frames), first=frames[:1], last=frames[-1:],
             gaps=sum(1 for x, y in zip(frames, frames[1:]) if y != x + 1),
             terminated_early=session.is_terminated,
             early_error=session.termination_error if session.is_terminated else None)
    http.quit_app()
    emit(step="cancel", ok=True)
    if started:
        end = time.monotonic() + TERMINATE_WAIT_S
        while not session.is_terminated and time.monotonic() < end:
            time.sleep(0.05)
        emit(step="terminated", seen=session.is_terminated,
             error_code=session.termination_error if session.is_terminated else None)
        session.stop()
    free = http.parse_server_info(http.get_server_info(use_https=True))
    emit(step="serverinfo_free", **info_obj(free))


if __name__ == "__main__":
    try:
        main()
    except Exception as e:
        emit(step="fatal", trace=traceback.format_exc(), **err_obj(e))
        sys.exit(2)
