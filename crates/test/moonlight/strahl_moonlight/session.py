"""Two short client cases against a GameStream host.

Contract:
  launch   (paired --config; no stream) serverinfo, keys, launch, serverinfo_busy, launch_busy
           (a second /launch of app 1, refused while it runs), resume {ok, url, rikey,
           rikeyid} (/resume with fresh keys, rikeyid RESUME_RIKEYID), cancel, serverinfo_free.
  session  (paired --config) serverinfo, applist, keys, launch, serverinfo_busy, stream_start
           (all 11 start stages); while connected an IDR request, input {rcs} (INPUT through
           LiSend*, then TOUCH_PEN with --touch-pen) and frames {count, first, last, gaps,
           terminated_early, early_error}
           (frames pulled for --frame-wait s, not decoded); then cancel and ended (the host's
           termination as the client saw it, within TERMINATE_WAIT_S), serverinfo_free.
"""

import threading
import time

from .core import SURROUND_AUDIO_INFO, new_keys, send_inputs, stream_config
from .flows import connect, end, launch, open_stream
from .out import emit

# The rikeyid of the launch subcommand's /resume.
RESUME_RIKEYID = 123456789
# How long `session` waits for the host's termination after /cancel.
TERMINATE_WAIT_S = 8.0
# `session`'s input: key 'A' down/up, left button down/up, one relative move.
INPUT = [
    ("key_down", lambda lib: lib.LiSendKeyboardEvent(0x41, 0x03, 0)),
    ("key_up", lambda lib: lib.LiSendKeyboardEvent(0x41, 0x04, 0)),
    ("button_down", lambda lib: lib.LiSendMouseButtonEvent(0x07, 1)),
    ("button_up", lambda lib: lib.LiSendMouseButtonEvent(0x08, 1)),
    ("move", lambda lib: lib.LiSendMouseMoveEvent(17, -9)),
]
# `--touch-pen`: a one-finger tap (pointer 7) and a pen stroke with its barrel button held,
# leaning 30° towards rotation 90. The core sends them only to a host that advertises pen/touch
# (featureFlags 0x01), else it answers LI_ERR_UNSUPPORTED.
TOUCH_PEN = [
    ("touch_down", lambda lib: lib.LiSendTouchEvent(0x01, 7, 0.25, 0.5, 0.5, 0.0, 0.0, 0xFFFF)),
    ("touch_up", lambda lib: lib.LiSendTouchEvent(0x02, 7, 0.25, 0.5, 0.0, 0.0, 0.0, 0xFFFF)),
    ("pen_down",
     lambda lib: lib.LiSendPenEvent(0x01, 0x01, 0x01, 0.75, 0.25, 0.5, 0.0, 0.0, 90, 30)),
    ("pen_up",
     lambda lib: lib.LiSendPenEvent(0x02, 0x01, 0x00, 0.75, 0.25, 0.0, 0.0, 0.0, 90, 30)),
]


def launch_cmd(a):
    from moonlight_python.stream import StreamingSession

    http, _ = connect(a)
    session = StreamingSession()
    cfg = stream_config(a.width, a.height, a.fps, a.bitrate)
    ln = launch(http, session, 1, cfg, busy_launch=True)
    key2, iv2 = new_keys(RESUME_RIKEYID)
    url2 = http.resume_app(key2, iv2, SURROUND_AUDIO_INFO, ln.query)
    emit(step="resume", ok=True, url=url2, rikey=key2.hex(), rikeyid=RESUME_RIKEYID)
    end(http, session, started=False)


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


def session_cmd(a):
    s = open_stream(a, keep_failed=True)
    if s is None:
        return
    session = s.session
    if s.started:
        session.request_idr()
        calls = INPUT + (TOUCH_PEN if a.touch_pen else [])
        emit(step="input", rcs=send_inputs(calls, gap=0.02))
        frames = pull_frames(session, a.frame_wait)
        emit(step="frames", count=len(frames), first=frames[:1], last=frames[-1:],
             gaps=sum(1 for x, y in zip(frames, frames[1:]) if y != x + 1),
             terminated_early=session.is_terminated,
             early_error=session.termination_error if session.is_terminated else None)
    end(s.http, session, s.started, wait=TERMINATE_WAIT_S)
