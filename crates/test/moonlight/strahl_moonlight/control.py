"""The client of the control-stream interop check (crates/cp/enet): the real moonlight-common-c
connects to a plain-RTSP + ENet host at rtsp://--host:--port (tests/moonlight.rs or
examples/moonlight_control_host.rs), runs through all start stages, streams nothing, and stops.

Contract:
  control  --port RTSP_PORT --rikey HEX [hold|terminate|input|rumble]: stream_start, then
           result {started, stage, code, start_s, terminated, term_error, input_rc?, rumbles?}.
           hold: stay connected HOLD_S (the client pings every 100 ms and wiggles the mouse at
           start); terminate: wait up to TERMINATE_WAIT_S for the host's termination; input:
           send INPUT (one of each LiSend* call; the names match tests/moonlight.rs) and hold;
           rumble: hold, recording every call of the core's rumble callback as
           [controller, low, high] in `rumbles`.
"""

import time

from .core import APP_VERSION, GFE_VERSION, Server, send_inputs, stream_config
from .flows import start
from .out import emit

# How long the client stays connected in "hold" and "input".
HOLD_S = 1.0
# How long it waits for the host's termination in "terminate".
TERMINATE_WAIT_S = 8.0
TEXT = "h\u00e9llo".encode()
INPUT = [
    ("key_down", lambda lib: lib.LiSendKeyboardEvent(0x41, 0x03, 0x01)),
    ("key_up", lambda lib: lib.LiSendKeyboardEvent(0x41, 0x04, 0x00)),
    ("button_down", lambda lib: lib.LiSendMouseButtonEvent(0x07, 3)),
    ("button_up", lambda lib: lib.LiSendMouseButtonEvent(0x08, 3)),
    ("scroll", lambda lib: lib.LiSendScrollEvent(2)),
    ("hscroll", lambda lib: lib.LiSendHScrollEvent(-1)),
    ("position", lambda lib: lib.LiSendMousePositionEvent(100, 200, 1920, 1080)),
    ("move", lambda lib: lib.LiSendMouseMoveEvent(-300, 250)),
    ("gamepad", lambda lib: lib.LiSendMultiControllerEvent(1, 3, 0x1000, 10, 200, 1000, -1000,
                                                           32767, -32768)),
    ("text", lambda lib: lib.LiSendUtf8TextEvent(TEXT, len(TEXT))),
    ("arrival", lambda lib: lib.LiSendControllerArrivalEvent(2, 7, 2, 0xFFFF, 0x3)),
    ("battery", lambda lib: lib.LiSendControllerBatteryEvent(2, 3, 77)),
    ("motion", lambda lib: lib.LiSendControllerMotionEvent(2, 2, 1.5, -2.5, 3.25)),
    ("touch", lambda lib: lib.LiSendTouchEvent(1, 7, 0.5, 0.25, 1.0, 0.0, 0.0, 90)),
]


def rumble_session():
    """A StreamingSession whose connection callbacks also record the core's rumble calls."""
    from moonlight_python.stream import StreamingSession

    class RumbleSession(StreamingSession):
        def __init__(self):
            super().__init__()
            self.rumbles = []

        def _make_connection_callbacks(self):
            cl = super()._make_connection_callbacks()

            @self._ffi.callback("void(unsigned short, unsigned short, unsigned short)")
            def rumble(controller, low, high):
                self.rumbles.append([controller, low, high])

            self._callbacks.append(rumble)
            cl.rumble = rumble
            return cl

    return RumbleSession()


def control_cmd(a):
    from moonlight_python.stream import StreamingSession

    terminate = a.action == "terminate"
    cfg = stream_config(1280, 720, 60, 20000)
    session = rumble_session() if a.action == "rumble" else StreamingSession()
    out = {"started": False, "stage": None, "code": None, "terminated": None, "term_error": None}
    err, secs = start(session, a.host, Server(APP_VERSION, GFE_VERSION, 0x1),
                      f"rtsp://{a.host}:{a.port}", cfg, bytes.fromhex(a.rikey), bytes(16))
    if err is not None:
        out["stage"], out["code"] = err.stage, err.error_code
        emit(step="result", **out)
        return
    out["started"] = True
    out["start_s"] = round(secs, 3)
    if a.action == "input":
        out["input_rc"] = send_inputs(INPUT, gap=0.02)
    deadline = time.monotonic() + (TERMINATE_WAIT_S if terminate else HOLD_S)
    while time.monotonic() < deadline and not (terminate and session.is_terminated):
        time.sleep(0.02)
    if a.action == "rumble":
        out["rumbles"] = list(session.rumbles)
    out["terminated"] = session.is_terminated
    out["term_error"] = session.termination_error if session.is_terminated else None
    session.stop()
    emit(step="result", **out)
