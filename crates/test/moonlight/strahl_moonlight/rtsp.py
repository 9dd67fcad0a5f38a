"""The real-client RTSP handshake check (crates/cp/rtsp, manual): moonlight-common-c against
examples/loopback_rtsp_host.rs, started here on the fixed ports below.

No HTTP/pairing is needed: LiStartConnection takes the server information and the rtsp:// URL
directly (plain RTSP, corever 0). The client runs OPTIONS, DESCRIBE, SETUP x3, ANNOUNCE, PLAY
(stage 4), starts audio pings, then tries ENet (stage 8), which the loopback host does not
serve, so the expected end is a start failure at stage 8.

Contract:
  rtsp     --host-binary PATH --case h264_hq|hevc_lq|av1_51 [--sdp-out FILE]
           [--request-dir DIR]: stream_start, requests {requests}, configured {line},
           announce {bytes} (written to --sdp-out; each raw request to --request-dir), one
           check {name, ok} per check, refused {requests} when any was, result {ok, failed};
           exit status 1 unless every check passed.
"""

import subprocess
import threading

from .core import APP_VERSION, GFE_VERSION, Server, stream_config
from .flows import start
from .out import emit

RTSP, AUDIO, VIDEO, CONTROL = 48110, 48100, 48098, 48099
PING_PAYLOAD = b"A1B2C3D4E5F60718"
CONNECT_DATA = 0x8BADF00D
REQUEST_ORDER = ["OPTIONS", "DESCRIBE", "SETUP", "SETUP", "SETUP", "ANNOUNCE", "PLAY"]


def case_config(case):
    """(StreamConfig, host args, server codec support, negotiated format index, Host header)."""
    from moonlight_python.config import (VIDEO_FORMAT_AV1_MAIN8, VIDEO_FORMAT_H264,
                                         VIDEO_FORMAT_H265)
    if case == "h264_hq":
        return stream_config(1280, 720, 60, 20000), [], 0x1, 0, "127.0.0.1"
    if case == "hevc_lq":
        return (stream_config(1920, 1080, 120, 10000, VIDEO_FORMAT_H264 | VIDEO_FORMAT_H265),
                ["hevc"], 0x101, 1, "0.0.0.0")
    if case == "av1_51":
        return (stream_config(3840, 2160, 60, 80000, VIDEO_FORMAT_H264 | VIDEO_FORMAT_AV1_MAIN8,
                              audio_configuration=(0x3F << 16) | (6 << 8) | 0xCA),
                ["av1"], 0x10001, 2, "127.0.0.1")
    raise SystemExit(f"unknown case {case}")


def rtsp_cmd(a):
    from moonlight_python.stream import StreamingSession

    cfg, host_args, scm, want_format, want_host = case_config(a.case)
    host = subprocess.Popen([a.host_binary, str(RTSP), str(AUDIO), str(VIDEO), str(CONTROL),
                             *host_args], stdout=subprocess.PIPE, text=True)
    assert host.stdout.readline().startswith("READY"), "host did not start"
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(host.stdout), daemon=True)
    reader.start()

    session = StreamingSession()
    err, _ = start(session, "127.0.0.1", Server(APP_VERSION, GFE_VERSION, scm),
                   f"rtsp://127.0.0.1:{RTSP}", cfg, bytes(range(16)), bytes(16))
    if err is None:
        session.stop()
    stage = err.stage if err is not None else None
    host.wait(timeout=40)
    reader.join(timeout=5)

    def get(key):
        return [x.split(" ", 1)[1].strip() for x in lines if x.startswith(key + " ")]

    requests = get("REQUEST")
    emit(step="requests", requests=requests)
    refused = get("REFUSED")
    checks = {
        "no request refused": not refused,
        "seven requests in B10 order": [r.split(" ")[0] for r in requests] == REQUEST_ORDER,
        "client failed at stage 8 (ENet), i.e. after the RTSP handshake": stage == 8,
        "host saw PLAY": any(x.strip() == "PLAY" for x in lines),
        "audio ping starts with X-SS-Ping-Payload, 20 bytes, counter 1":
            any(bytes.fromhex(p) == PING_PAYLOAD + (1).to_bytes(4, "big")
                for p in get("AUDIO_PING")),
        "ENet CONNECT carries X-SS-Connect-Data (big-endian)":
            any(CONNECT_DATA.to_bytes(4, "big").hex() in p for p in get("ENET")),
    }
    configured = get("CONFIGURED")
    if configured:
        c = configured[0]
        checks["ANNOUNCE width/height/fps parsed"] = (
            f"width: {cfg.width}, height: {cfg.height}, max_fps: {cfg.fps}" in c)
        checks["codec negotiated"] = ("codec: " + ["H264", "Hevc", "Av1"][want_format]) in c
        checks["configured bitrate parsed"] = f"configured_bitrate_kbps: {cfg.bitrate_kbps}" in c
        checks["stereo quality from Host header"] = (
            ("high_quality: true" if want_host != "0.0.0.0" else "high_quality: false") in c)
        emit(step="configured", line=c)
    else:
        checks["ANNOUNCE accepted"] = False
    hosts = [h for h in get("HEADER") if h.lower().startswith("host:")]
    checks[f"Host header is {want_host}"] = bool(hosts) and all(h.endswith(want_host)
                                                                for h in hosts)
    bodies = get("BODY_HEX")
    if bodies:
        body = bytes.fromhex(bodies[0])
        emit(step="announce", bytes=len(body))
        if a.sdp_out:
            with open(a.sdp_out, "wb") as f:
                f.write(body)
    if a.request_dir:
        for i, raw in enumerate(get("RAW_HEX")):
            name = requests[i].split(" ")[0].lower()
            with open(f"{a.request_dir}/{a.case}_{i + 1:02}_{name}.bin", "wb") as f:
                f.write(bytes.fromhex(raw))
    for name, ok in checks.items():
        emit(step="check", name=name, ok=ok)
    if refused:
        emit(step="refused", requests=refused)
    failed = [k for k, ok in checks.items() if not ok]
    emit(step="result", ok=not failed, failed=failed)
    return 1 if failed else 0
