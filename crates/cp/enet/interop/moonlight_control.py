#!/usr/bin/env python3
"""Client side of the control-stream interop check: the real moonlight-common-c
(moonlight-python 0.3.0 wheel, GPL: a test tool, never linked) connects to an RTSP + ENet host
on 127.0.0.1:RTSP_PORT (tests/moonlight.rs or examples/moonlight_control_host.rs), runs through
all start stages, streams nothing, and stops (or waits for the host's termination).

Usage: python moonlight_control.py RTSP_PORT RIKEY_HEX [terminate|input]
"input" also sends one of each LiSend* input event through the real client (a second cffi
handle on the same .so, as §B8 describes) and reports each call's return code.
Prints one line: RESULT {json}.
"""

import json
import sys
import time

import cffi

from moonlight_python.config import StreamConfig, VIDEO_FORMAT_H264
from moonlight_python.exceptions import StreamStartError
from moonlight_python.stream import StreamingSession, _find_shared_lib

INPUT_CDEF = """
int LiSendKeyboardEvent(short keyCode, signed char keyAction, signed char modifiers);
int LiSendMouseButtonEvent(signed char action, int button);
int LiSendScrollEvent(signed char scrollClicks);
int LiSendHScrollEvent(signed char scrollClicks);
int LiSendMousePositionEvent(short x, short y, short referenceWidth, short referenceHeight);
int LiSendMouseMoveEvent(short deltaX, short deltaY);
int LiSendMultiControllerEvent(short controllerNumber, short activeGamepadMask, int buttonFlags,
    unsigned char leftTrigger, unsigned char rightTrigger, short leftStickX, short leftStickY,
    short rightStickX, short rightStickY);
int LiSendUtf8TextEvent(const char *text, unsigned int length);
int LiSendControllerArrivalEvent(uint8_t controllerNumber, uint16_t activeGamepadMask,
    uint8_t type, uint32_t supportedButtonFlags, uint16_t capabilities);
int LiSendControllerBatteryEvent(uint8_t controllerNumber, uint8_t batteryState,
    uint8_t batteryPercentage);
int LiSendControllerMotionEvent(uint8_t controllerNumber, uint8_t motionType, float x, float y,
    float z);
int LiSendTouchEvent(uint8_t eventType, uint32_t pointerId, float x, float y,
    float pressureOrDistance, float contactAreaMajor, float contactAreaMinor, uint16_t rotation);
"""


def send_inputs():
    """One of each; the names match the expectations in tests/moonlight.rs."""
    ffi = cffi.FFI()
    ffi.cdef(INPUT_CDEF)
    lib = ffi.dlopen(_find_shared_lib())
    text = "h\u00e9llo".encode()
    calls = {
        "key_down": lambda: lib.LiSendKeyboardEvent(0x41, 0x03, 0x01),
        "key_up": lambda: lib.LiSendKeyboardEvent(0x41, 0x04, 0x00),
        "button_down": lambda: lib.LiSendMouseButtonEvent(0x07, 3),
        "button_up": lambda: lib.LiSendMouseButtonEvent(0x08, 3),
        "scroll": lambda: lib.LiSendScrollEvent(2),
        "hscroll": lambda: lib.LiSendHScrollEvent(-1),
        "position": lambda: lib.LiSendMousePositionEvent(100, 200, 1920, 1080),
        "move": lambda: lib.LiSendMouseMoveEvent(-300, 250),
        "gamepad": lambda: lib.LiSendMultiControllerEvent(1, 3, 0x1000, 10, 200, 1000, -1000,
                                                          32767, -32768),
        "text": lambda: lib.LiSendUtf8TextEvent(text, len(text)),
        "arrival": lambda: lib.LiSendControllerArrivalEvent(2, 7, 2, 0xFFFF, 0x3),
        "battery": lambda: lib.LiSendControllerBatteryEvent(2, 3, 77),
        "motion": lambda: lib.LiSendControllerMotionEvent(2, 2, 1.5, -2.5, 3.25),
        "touch": lambda: lib.LiSendTouchEvent(1, 7, 0.5, 0.25, 1.0, 0.0, 0.0, 90),
    }
    rcs = {}
    for name, call in calls.items():
        rcs[name] = call()
        time.sleep(0.02)  # keep them in separate packets (common-c batches mouse/controller)
    return rcs

# How long the client stays connected (idle: it pings every 100 ms, wiggles the mouse at start).
HOLD_S = 1.0
# How long it waits for the host's termination in "terminate" mode.
TERMINATE_WAIT_S = 8.0


def main():
    port, rikey = int(sys.argv[1]), bytes.fromhex(sys.argv[2])
    terminate = len(sys.argv) > 3 and sys.argv[3] == "terminate"
    inputs = len(sys.argv) > 3 and sys.argv[3] == "input"
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
        if inputs:
            out["input_rc"] = send_inputs()
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
