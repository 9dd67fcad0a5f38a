"""The Moonlight core's native side and the launch parameters every flow shares.

Contract: `native()` is one cffi handle on the core's shared library, opened once per process
(glibc hands back the session's own handle: the same process-global state, §B8) and declaring
every LiSend*/LiGet* call a subcommand makes; `send_inputs` runs a table of such calls with a
pause between them and returns each call's return code; `new_keys` is the launch's AES key and
IV, whose first four bytes are the rikeyid (signed, big-endian).
"""

import secrets
import struct
import time
from collections import namedtuple

# The rikeyid the flows send: a negative signed int32 (§B5 observed value), so the host's
# signed parsing is exercised.
RIKEYID = -556323120
# surroundAudioInfo of every /launch and /resume: stereo (0x30002).
SURROUND_AUDIO_INFO = 196610
# What LiStartConnection is told about a host reached without HTTP (the RTSP/ENet interop
# hosts): GFE 3.23's versions.
APP_VERSION, GFE_VERSION = "7.1.431.-1", "3.23.0.74"

# The core's encryptionFlags (Limelight.h ENCFLG_*) by --client-encryption name; the package
# fixes ENCFLG_ALL, read from its module at each start (set_client_encryption patches it).
ENCRYPTION_FLAGS = {"all": -1, "audio": 0x1, "none": 0x0}

Server = namedtuple("Server", "app_version gfe_version server_codec_mode_support")

STATS_FIELDS = ["packetCountVideo", "packetCountFec", "packetCountFecRecovered",
                "packetCountFecFailed", "packetCountOOS", "packetCountInvalid",
                "packetCountFecInvalid"]

CDEF = """
typedef struct {
    uint32_t packetCountVideo;
    uint32_t packetCountFec;
    uint32_t packetCountFecRecovered;
    uint32_t packetCountFecFailed;
    uint32_t packetCountOOS;
    uint32_t packetCountInvalid;
    uint32_t packetCountFecInvalid;
} RTP_VIDEO_STATS;
const RTP_VIDEO_STATS* LiGetRTPVideoStats(void);
bool LiGetEstimatedRttInfo(uint32_t* estimatedRtt, uint32_t* estimatedRttVariance);
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
int LiSendPenEvent(uint8_t eventType, uint8_t toolType, uint8_t penButtons, float x, float y,
    float pressureOrDistance, float contactAreaMajor, float contactAreaMinor, uint16_t rotation,
    uint8_t tilt);
"""

_native = None


def native():
    """(ffi, lib): the second cffi handle on the core's .so."""
    global _native
    if _native is None:
        import cffi
        from moonlight_python.stream import _find_shared_lib
        ffi = cffi.FFI()
        ffi.cdef(CDEF)
        _native = (ffi, ffi.dlopen(_find_shared_lib()))
    return _native


def send_inputs(calls, gap):
    """Runs [(name, fn(lib))] in order, `gap` seconds apart (separate packets: common-c batches
    mouse and controller motion); returns {name: return code}."""
    _, lib = native()
    rcs = {}
    for name, call in calls:
        rcs[name] = int(call(lib))
        time.sleep(gap)
    return rcs


def video_stats():
    """The client's RTP video counters (LiGetRTPVideoStats), or None before a stream."""
    ffi, lib = native()
    s = lib.LiGetRTPVideoStats()
    if s == ffi.NULL:
        return None
    return {f: int(getattr(s, f)) for f in STATS_FIELDS}


def rtt_ms():
    """The client's RTT estimate in ms, or None when it has none."""
    ffi, lib = native()
    rtt, var = ffi.new("uint32_t*"), ffi.new("uint32_t*")
    return int(rtt[0]) if lib.LiGetEstimatedRttInfo(rtt, var) else None


def new_keys(rikeyid=RIKEYID):
    """(rikey, iv): a random AES key, and an IV that starts with `rikeyid`."""
    return secrets.token_bytes(16), struct.pack(">i", rikeyid) + secrets.token_bytes(12)


def set_client_encryption(name):
    """The encryptionFlags the next StreamingSession.start hands the core."""
    import moonlight_python.stream as stream
    stream.ENCFLG_ALL = ENCRYPTION_FLAGS[name]


def stream_config(width, height, fps, bitrate_kbps, formats=None, **kw):
    """A StreamConfig (H.264 unless `formats` says otherwise; packet size 1392)."""
    from moonlight_python.config import StreamConfig, VIDEO_FORMAT_H264
    return StreamConfig(width=width, height=height, fps=fps, bitrate_kbps=bitrate_kbps,
                        supported_video_formats=VIDEO_FORMAT_H264 if formats is None else formats,
                        **kw)
