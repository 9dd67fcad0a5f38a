#!/usr/bin/env python3
"""Drive the real Moonlight core (PyPI moonlight-python 0.3.0, a GPL test tool) against a
strahl GameStream host. Used by tests/moonlight.rs; each invocation is one client process.

Every step prints one JSON object per line on stdout; the Rust test asserts on them.
Exit status 0 means the script ran to the end (assertions live in the Rust test).

Modes:
  pair     serverinfo over HTTP, then MoonlightClient.pair(server, pin=PIN), then apps()
  applist  serverinfo over HTTP (learns HttpsPort), then /applist over HTTPS
  launch   /launch (with the core's own launch query params), a second /launch (busy),
           HTTPS /serverinfo, /resume, /cancel, HTTPS /serverinfo
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
        "status_message": getattr(e, "status_message", None),
    }


def info_obj(s):
    return {
        "app_version": s.app_version,
        "gfe_version": s.gfe_version,
        "unique_id": s.unique_id,
        "https_port": s.https_port,
        "codec": s.server_codec_mode_support,
        "state": s.state,
        "current_game": s.current_game,
        "paired": s.paired,
        "hostname": s.hostname,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["pair", "applist", "launch"])
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
        identity = Identity(a.config)
        server = connect_to_server(a.host, identity, a.port)
        emit(step="serverinfo", **info_obj(server))
        t0 = time.monotonic()
        try:
            client.pair(server, pin=a.pin)
        except Exception as e:  # report, let the Rust side decide
            emit(step="pair", ok=False, **err_obj(e))
            return
        pair_ms = (time.monotonic() - t0) * 1000
        emit(step="pair", ok=True, paired=bool(client._server and client._server.paired), ms=pair_ms)
        t0 = time.monotonic()
        apps = client.apps()
        apps_ms = (time.monotonic() - t0) * 1000
        emit(step="apps", names=[x.name for x in apps], ids=[x.id for x in apps], ms=apps_ms)
        return

    http = NvHTTP(a.host, Identity(a.config), http_port=a.port)
    info = http.parse_server_info(http.get_server_info())  # learns HttpsPort
    emit(step="serverinfo", **info_obj(info))

    if a.mode == "applist":
        try:
            apps = http.get_app_list()
            emit(step="applist", ok=True, names=[x.name for x in apps])
        except Exception as e:
            emit(step="applist", ok=False, **err_obj(e))
        return

    # launch: same calls the client's _setup_stream makes, minus the native stream start.
    from moonlight_python.stream import StreamingSession

    query = StreamingSession().get_launch_query_params()
    http.server_cert_pem = b"pinned"  # makes get_server_info(use_https=True) try HTTPS first
    key = secrets.token_bytes(16)
    iv = secrets.token_bytes(16)
    # A negative rikeyid (signed BE int32 of the IV) exercises the host's signed parsing.
    iv = struct.pack(">i", -556323120) + iv[4:]
    emit(step="keys", rikey=key.hex(), rikeyid=struct.unpack(">i", iv[:4])[0], query=query)
    url = http.launch_app(1, 1280, 720, 60, 20000, 1, key, iv, 196610, True, False, query)
    emit(step="launch", ok=True, url=url)
    try:
        http.launch_app(1, 1280, 720, 60, 20000, 1, key, iv, 196610, True, False, query)
        emit(step="launch2", ok=True)
    except Exception as e:
        emit(step="launch2", ok=False, **err_obj(e))
    busy = http.parse_server_info(http.get_server_info(use_https=True))
    emit(step="serverinfo_busy", **info_obj(busy))
    key2 = secrets.token_bytes(16)
    iv2 = struct.pack(">i", 123456789) + secrets.token_bytes(12)
    url2 = http.resume_app(key2, iv2, 196610, query)
    emit(step="resume", ok=True, url=url2, rikey=key2.hex(), rikeyid=123456789)
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
