#!/usr/bin/env python3
"""Drive the real moonlight-common-c (moonlight-python 0.3.0 wheel, GPL: a test tool, never
linked) through the RTSP handshake against examples/loopback_rtsp_host.rs.

No HTTP/pairing is needed: LiStartConnection takes the server information and the rtsp:// URL
directly (plain RTSP, corever 0). The client runs OPTIONS, DESCRIBE, SETUP x3, ANNOUNCE, PLAY
(stage 4), starts audio pings, then tries ENet (stage 8) which this harness does not serve, so
the expected end is StreamStartError(stage=8).

Usage: /tmp/mlvenv/bin/python moonlight_rtsp.py HOST_BINARY CASE [SDP_OUT [REQUEST_DIR]]
CASE: h264_hq (1280x720@60, 20000 kbps, H.264 host) | hevc_lq (1920x1080@120, 10000 kbps,
HEVC host and client).
Exit 0 when every check passes; prints what it checked.
"""

import subprocess
import sys
import threading
import time

from moonlight_python.config import (StreamConfig, VIDEO_FORMAT_AV1_MAIN8, VIDEO_FORMAT_H264,
                                     VIDEO_FORMAT_H265)
from moonlight_python.exceptions import StreamStartError
from moonlight_python.stream import StreamingSession

RTSP, AUDIO, VIDEO, CONTROL = 48110, 48100, 48098, 48099
PING_PAYLOAD = b"A1B2C3D4E5F60718"
CONNECT_DATA = 0x8BADF00D


def main():
    binary, case = sys.argv[1], sys.argv[2]
    sdp_out = sys.argv[3] if len(sys.argv) > 3 else None
    request_dir = sys.argv[4] if len(sys.argv) > 4 else None
    if case == "h264_hq":
        cfg = StreamConfig(width=1280, height=720, fps=60, bitrate_kbps=20000,
                           supported_video_formats=VIDEO_FORMAT_H264)
        host_args, scm, want_format, want_host = [], 0x1, 0, "127.0.0.1"
    elif case == "hevc_lq":
        cfg = StreamConfig(width=1920, height=1080, fps=120, bitrate_kbps=10000,
                           supported_video_formats=VIDEO_FORMAT_H264 | VIDEO_FORMAT_H265)
        host_args, scm, want_format, want_host = ["hevc"], 0x101, 1, "0.0.0.0"
    elif case == "av1_51":
        cfg = StreamConfig(width=3840, height=2160, fps=60, bitrate_kbps=80000,
                           audio_configuration=(0x3F << 16) | (6 << 8) | 0xCA,
                           supported_video_formats=VIDEO_FORMAT_H264 | VIDEO_FORMAT_AV1_MAIN8)
        host_args, scm, want_format, want_host = ["av1"], 0x10001, 2, "127.0.0.1"
    else:
        raise SystemExit(f"unknown case {case}")

    host = subprocess.Popen([binary, str(RTSP), str(AUDIO), str(VIDEO), str(CONTROL), *host_args],
                            stdout=subprocess.PIPE, text=True)
    assert host.stdout.readline().startswith("READY"), "host did not start"
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(host.stdout), daemon=True)
    reader.start()

    session = StreamingSession()
    stage = code = None
    t0 = time.monotonic()
    try:
        session.start("127.0.0.1", "7.1.431.-1", "3.23.0.74", scm,
                      f"rtsp://127.0.0.1:{RTSP}", cfg, bytes(range(16)), bytes(16))
        session.stop()
    except StreamStartError as e:
        stage, code = e.stage, e.error_code
    elapsed = time.monotonic() - t0
    host.wait(timeout=40)
    reader.join(timeout=5)

    def get(key):
        return [l.split(" ", 1)[1].strip() for l in lines if l.startswith(key + " ")]

    print(f"client: StreamStartError stage={stage} code={code} after {elapsed:.1f} s")
    requests = get("REQUEST")
    print("requests:", requests)
    refused = get("REFUSED")
    checks = {
        "no request refused": not refused,
        "seven requests in B10 order": [r.split(" ")[0] for r in requests] ==
            ["OPTIONS", "DESCRIBE", "SETUP", "SETUP", "SETUP", "ANNOUNCE", "PLAY"],
        "client failed at stage 8 (ENet), i.e. after the RTSP handshake": stage == 8,
        "host saw PLAY": any(l.strip() == "PLAY" for l in lines),
        "audio ping starts with X-SS-Ping-Payload, 20 bytes, counter 1":
            any(bytes.fromhex(p) == PING_PAYLOAD + (1).to_bytes(4, "big") for p in get("AUDIO_PING")),
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
        print("configured:", c)
    else:
        checks["ANNOUNCE accepted"] = False
    hosts = [h for h in get("HEADER") if h.lower().startswith("host:")]
    checks[f"Host header is {want_host}"] = bool(hosts) and all(h.endswith(want_host) for h in hosts)
    bodies = get("BODY_HEX")
    if bodies:
        body = bytes.fromhex(bodies[0])
        print(f"ANNOUNCE body: {len(body)} bytes")
        if sdp_out:
            open(sdp_out, "wb").write(body)
    if request_dir:
        for i, raw in enumerate(get("RAW_HEX")):
            name = requests[i].split(" ")[0].lower()
            open(f"{request_dir}/{case}_{i + 1:02}_{name}.bin", "wb").write(bytes.fromhex(raw))
    failed = [k for k, ok in checks.items() if not ok]
    for k, ok in checks.items():
        print(("PASS " if ok else "FAIL ") + k)
    if refused:
        print("refused:", refused)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
