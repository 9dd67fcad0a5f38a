#!/usr/bin/env python3
"""Drive the real moonlight-common-c (moonlight-python 0.3.0 wheel, GPL: a test tool, never
linked) through RTSP and the ENet control stream served by examples/moonlight_control_host.rs.

Passing means the client got past stage 8 (control stream establishment): our ENet host accepted
its CONNECT (48 channels, connect data), and its encrypted V2 messages decoded on our side.
Usage: python moonlight_control.py HOST_BINARY [terminate]
"""

import subprocess
import sys
import threading
import time

from moonlight_python.config import StreamConfig, VIDEO_FORMAT_H264
from moonlight_python.exceptions import StreamStartError
from moonlight_python.stream import StreamingSession

RTSP, AUDIO, VIDEO, CONTROL = 48210, 48200, 48198, 48199
RIKEY = bytes(range(16))


def main():
    binary = sys.argv[1]
    terminate = len(sys.argv) > 2 and sys.argv[2] == "terminate"
    args = [binary, str(RTSP), str(AUDIO), str(VIDEO), str(CONTROL), RIKEY.hex()]
    if terminate:
        args.append("1500")
    host = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    assert host.stdout.readline().startswith("READY"), "host did not start"
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(host.stdout), daemon=True)
    reader.start()

    cfg = StreamConfig(width=1280, height=720, fps=60, bitrate_kbps=20000,
                       supported_video_formats=VIDEO_FORMAT_H264)
    session = StreamingSession()
    stage = code = None
    t0 = time.monotonic()
    term = None
    try:
        session.start("127.0.0.1", "7.1.431.-1", "3.23.0.74", 0x1,
                      f"rtsp://127.0.0.1:{RTSP}", cfg, RIKEY, bytes(16))
        started = time.monotonic() - t0
        print(f"client: LiStartConnection returned after {started:.2f} s (all 11 stages)")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not (terminate and session.is_terminated):
            time.sleep(0.05)
        if terminate:
            term = session.termination_error if session.is_terminated else None
            print(f"client: terminated={session.is_terminated} error={term}")
        session.stop()
    except StreamStartError as e:
        stage, code = e.stage, e.error_code
        print(f"client: StreamStartError stage={stage} code={code}")
    host.wait(timeout=60)
    reader.join(timeout=5)
    control = [l.split(" ", 1)[1].strip() for l in lines if l.startswith("CONTROL ")]
    print("host control events:", control)
    checks = {
        "client passed stage 8 (control stream) and started": stage is None,
        "host bound the ENet peer by connect data": any(c.startswith("Connected") for c in control),
        "host decrypted the client's IDR request (Start A)": "IdrRequested" in control,
        "host decrypted the client's Start B": "StartB" in control,
    }
    if terminate:
        # 0x80030023 before any frame maps to -102 in the client (§B9).
        checks["client got the graceful termination (-102 before a frame)"] = term == -102
    else:
        checks["host saw the client's disconnect"] = any(
            "PeerDisconnected" in c for c in control)
    for k, ok in checks.items():
        print(("PASS " if ok else "FAIL ") + k)
    sys.exit(0 if all(checks.values()) else 1)


if __name__ == "__main__":
    main()
