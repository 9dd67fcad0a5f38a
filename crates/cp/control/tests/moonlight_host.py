#!/usr/bin/env python3
"""Drive the real Moonlight core (PyPI moonlight-python 0.3.0, a GPL test tool, never linked)
against `strahl-control serve`. Used by tests/moonlight_host.rs; each invocation is one client
process (common-c is process-global).

Every step prints one JSON object per line on stdout; the Rust test asserts on them.

Modes:
  pair     serverinfo over HTTP, MoonlightClient.pair(server, pin=PIN), then apps()
  applist  serverinfo over HTTP (learns HttpsPort), then /applist over HTTPS
  stream   (paired config dir) applist, /launch 1280x720@60 with a chosen rikey/rikeyid, the
           StreamingSession RTSP handshake from sessionUrl0 (expected to end at stage 8, ENet),
           then /cancel and HTTPS /serverinfo
"""

import argparse
import json
import secrets
import struct
import sys
import time
import traceback


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
    try:
        session.start(a.host, info.app_version, info.gfe_version, info.server_codec_mode_support,
                      url, cfg, key, iv)
        session.stop()
        emit(step="stream", ok=True)
    except StreamStartError as e:
        stage, code = e.stage, e.error_code
        emit(step="stream", ok=False, stage=stage, error_code=code,
             seconds=round(time.monotonic() - t0, 2), message=str(e))
    http.quit_app()
    emit(step="cancel", ok=True)
    free = http.parse_server_info(http.get_server_info(use_https=True))
    emit(step="serverinfo_free", **info_obj(free))


if __name__ == "__main__":
    try:
        main()
    except Exception as e:
        emit(step="fatal", trace=traceback.format_exc(), **err_obj(e))
        sys.exit(2)
