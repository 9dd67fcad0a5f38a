#!/usr/bin/env python3
"""Client side of the control-stream interop check: the real moonlight-common-c
(moonlight-python 0.3.0 wheel, GPL: a test tool, never linked) connects to an RTSP + ENet host
on 127.0.0.1:RTSP_PORT (tests/moonlight.rs or examples/moonlight_control_host.rs), runs through
all start stages, streams nothing, and stops (or waits for the host's termination).

Usage: python moonlight_control.py RTSP_PORT RIKEY_HEX [terminate]
Prints one line: RESULT {json}.
"""

import json
import sys
import time

from moonlight_python.config import StreamConfig, VIDEO_FORMAT_H264
from moonlight_python.exceptions import StreamStartError
from moonlight_python.stream import StreamingSession

# How long the client stays connected (idle: it pings every 100 ms, wiggles the mouse at start).
HOLD_S = 1.0
# How long it waits for the host's termination in "terminate" mode.
TERMINATE_WAIT_S = 8.0


def main():
    port, rikey = int(sys.argv[1]), bytes.fromhex(sys.argv[2])
    terminate = len(sys.argv) > 3 and sys.argv[3] == "terminate"
    cfg = StreamConfig(width=1280, height=720, fps=60, bitrate_kbps=20000,
                       supported_video_formats=VIDEO_FORMAT_H264)
    session = StreamingSession()
    out = {"started": False, "stage": None, "code": None, "terminated": None, "term_error": None}
    t0 = time.monotonic()
    try:
        session.start("127.0.0.1", "7.1.431.-1", "3.23.0.74", 0x1,
                      f"rtsp://127.0.0.1:{port}", cfg, rikey, bytes(16))
        out["started"] = True
        out["start_s"] = round(time.monotonic() - t0, 3)
        deadline = time.monotonic() + (TERMINATE_WAIT_S if terminate else HOLD_S)
        while time.monotonic() < deadline and not (terminate and session.is_terminated):
            time.sleep(0.02)
        out["terminated"] = session.is_terminated
        out["term_error"] = session.termination_error if session.is_terminated else None
        session.stop()
    except StreamStartError as e:
        out["stage"], out["code"] = e.stage, e.error_code
    print("RESULT " + json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
