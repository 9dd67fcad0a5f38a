#!/usr/bin/env python3
"""End-to-end Moonlight client for strahl's tests (crates/test/e2e).

The real moonlight-common-c (PyPI moonlight-python 0.3.0, GPL: a test tool in its own process,
never linked) against a running strahl. One client case per process: common-c is process-global.
Every result is one JSON object per stdout line ({"step": NAME, ...}); the Rust tests assert on
them. Diagnostics go to stderr. Every wait is bounded (--timeout).

Modes:
  pair     HTTP /serverinfo, MoonlightClient.pair(server, pin=PIN) (the host gets the PIN
           out of band, from the test), then the app names over HTTPS.
  applist  HTTP /serverinfo (learns HttpsPort), then /applist over HTTPS (401 when unpaired).
  stream   (paired --config) applist, /launch WxH@FPS H.264 at --bitrate kbit/s with a random
           rikey, HTTPS /serverinfo (busy), optionally a second /launch (--busy-launch), the
           StreamingSession (RTSP, ENet, video, audio), then pulls --frames frames, decodes them
           with PyAV and reads the synthetic source's frame-number band from the luma plane,
           captures --audio-seconds of Opus and decodes it, sends keyboard and mouse input
           (--input), reads LiGetRTPVideoStats, and ends with /cancel (the host must end the
           stream) and HTTPS /serverinfo. With --until-file PATH it keeps pulling past --frames
           until PATH exists (a test's signal, e.g. "the other session has ended"); with
           --frame-times the video step lists each frame's arrival (time.monotonic(), the
           machine-wide CLOCK_MONOTONIC, so clients in different processes and network
           namespaces compare), and the cancel step carries the time /cancel was sent.

The frame-number band (port of strahl-capture's read_frame_number): 32 blocks, MSB first,
row-major from the top-left; block edge 16 * max(1, W // 512); the inner half of each block is
averaged; a mean in [70, 180] makes the frame unreadable, above 180 is a 1 bit.
"""

import argparse
import json
import os
import queue
import secrets
import struct
import sys
import threading
import time
import traceback

# The rikeyid the driver sends: a negative signed int32 (§B5 observed value).
RIKEYID = -556323120
# Frame-number band constants (crates/dp/capture/src/synthetic.rs).
FRAME_NUMBER_BITS = 32
AMBIGUOUS_LOW = 70
AMBIGUOUS_HIGH = 180
MIN_WIDTH = 128

STATS_CDEF = """
typedef struct {
    uint32_t packetCountVideo;
    uint32_t packetCountFec;
    uint32_t packetCountFecRecovered;
    uint32_t packetCountFecFailed;
    uint32_t packetCountOOS;
    uint32_t packetCountInvalid;
    uint32_t packetCountFecInvalid;
} RTP_VIDEO_STATS;
typedef struct {
    uint32_t packetCountAudio;
    uint32_t packetCountFec;
    uint32_t packetCountFecRecovered;
    uint32_t packetCountFecFailed;
    uint32_t packetCountOOS;
    uint32_t packetCountInvalid;
    uint32_t packetCountFecInvalid;
} RTP_AUDIO_STATS;
const RTP_VIDEO_STATS* LiGetRTPVideoStats(void);
const RTP_AUDIO_STATS* LiGetRTPAudioStats(void);
bool LiGetEstimatedRttInfo(uint32_t* estimatedRtt, uint32_t* estimatedRttVariance);
int LiSendKeyboardEvent(short keyCode, signed char keyAction, signed char modifiers);
int LiSendMouseButtonEvent(signed char action, int button);
int LiSendMouseMoveEvent(short deltaX, short deltaY);
int LiSendScrollEvent(signed char scrollClicks);
"""
STATS_FIELDS = ["packetCountVideo", "packetCountFec", "packetCountFecRecovered",
                "packetCountFecFailed", "packetCountOOS", "packetCountInvalid",
                "packetCountFecInvalid"]

# Input the stream mode sends (the Rust test expects exactly these in the recording sink).
KEY_CODE = 0x4B          # VK 'K'
KEY_MODIFIERS = 0x02     # ctrl
KEY_DOWN, KEY_UP = 0x03, 0x04
BUTTON_DOWN, BUTTON_UP = 0x07, 0x08
BUTTON_RIGHT = 3
MOVE_DX, MOVE_DY = 123, -77
SCROLL_CLICKS = 2


def emit(**kw):
    print(json.dumps(kw), flush=True)


def log(msg):
    print(f"driver: {msg}", file=sys.stderr, flush=True)


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


def read_frame_number(y, width, height):
    """The frame number from a luma plane (numpy (rows, stride) uint8), or None."""
    if width < MIN_WIDTH:
        return None
    block = 16 * max(width // (16 * FRAME_NUMBER_BITS), 1)
    cols = min(width // block, FRAME_NUMBER_BITS)
    rows = -(-FRAME_NUMBER_BITS // cols)
    if rows * block + 32 > height or y.shape[0] < rows * block:
        return None
    inset = block // 4
    inner = block - 2 * inset
    number = 0
    for i in range(FRAME_NUMBER_BITS):
        ox, oy = (i % cols) * block, (i // cols) * block
        region = y[oy + inset:oy + inset + inner, ox + inset:ox + inset + inner]
        mean = int(region.sum(dtype="uint64")) // (inner * inner)
        if AMBIGUOUS_LOW <= mean <= AMBIGUOUS_HIGH:
            return None
        number = (number << 1) | (1 if mean > AMBIGUOUS_HIGH else 0)
    return number


class VideoDecodeThread:
    """Decodes pulled access units off the pull thread (common-c's 15-deep decode-unit queue
    must never fill, or it flushes and asks for an IDR, which would look like loss)."""

    def __init__(self, width, height):
        import av
        self.av = av
        self.ctx = av.CodecContext.create("h264", "r")
        self.ctx.thread_type = "AUTO"
        self.width, self.height = width, height
        self.q = queue.Queue()
        self.pixel_numbers = []
        self.unreadable = 0
        self.decoded = 0
        self.errors = 0
        self.shapes = set()
        self.luma_means = []
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def feed(self, data):
        self.q.put(data)

    def finish(self, timeout):
        self.q.put(None)
        self.t.join(timeout)
        return not self.t.is_alive()

    def on_picture(self, frame):
        self.decoded += 1
        self.shapes.add((frame.width, frame.height))
        plane = frame.planes[0]
        import numpy as np
        y = np.frombuffer(plane, dtype=np.uint8).reshape(plane.height, plane.line_size)
        y = y[:, :frame.width]
        if len(self.luma_means) < 4096:
            self.luma_means.append(float(y.mean()))
        n = read_frame_number(y, frame.width, frame.height)
        if n is None:
            self.unreadable += 1
        else:
            self.pixel_numbers.append(n)

    def decode(self, data):
        try:
            pkt = self.av.Packet(data) if data is not None else None
            for frame in self.ctx.decode(pkt):
                self.on_picture(frame)
        except self.av.error.InvalidDataError:
            self.errors += 1
        except Exception as e:  # counted, reported; never kills the thread
            self.errors += 1
            log(f"decode: {type(e).__name__}: {e}")

    def run(self):
        while True:
            data = self.q.get()
            if data is None:
                self.decode(None)  # flush the decoder's delayed pictures
                return
            self.decode(data)


class AudioThread:
    """Pulls decrypted Opus packets and decodes them with the package's AudioDecoder."""

    def __init__(self, session, seconds):
        self.session = session
        self.seconds = seconds
        self.stop_flag = threading.Event()
        self.packets = 0
        self.samples = 0
        self.channels = None
        self.rate = None
        self.sum_sq = 0.0
        self.values = 0
        self.decode_errors = 0
        self.indices = []
        self.config = None
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        from moonlight_python.audio_decoder import AudioDecoder
        cfg = self.session.wait_for_opus_config(timeout=15.0)
        self.config = {"sample_rate": cfg.sample_rate, "channels": cfg.channel_count,
                       "streams": cfg.streams, "coupled": cfg.coupled_streams,
                       "samples_per_frame": cfg.samples_per_frame}
        dec = AudioDecoder(cfg.sample_rate, cfg.channel_count, cfg.streams,
                           cfg.coupled_streams, cfg.mapping)
        self.rate = cfg.sample_rate
        while not self.stop_flag.is_set():
            if self.rate and self.samples >= self.seconds * self.rate:
                return
            pkt = self.session.pull_audio_packet(timeout=0.2)
            if pkt is None:
                continue
            self.packets += 1
            self.indices.append(pkt.frame_index)
            for arr in dec.decode(pkt.opus_data):
                self.samples += arr.shape[0]
                self.channels = int(arr.shape[1])
                self.sum_sq += float((arr.astype("float64") ** 2).sum())
                self.values += arr.size
        self.decode_errors = dec.decode_errors

    def finish(self, timeout):
        self.t.join(timeout)
        self.stop_flag.set()
        self.t.join(1.0)

    def result(self):
        import math
        rms = math.sqrt(self.sum_sq / self.values) if self.values else 0.0
        gaps = sum(1 for a, b in zip(self.indices, self.indices[1:]) if b != a + 1)
        return {"packets": self.packets, "samples": self.samples, "channels": self.channels,
                "rate": self.rate, "seconds": (self.samples / self.rate) if self.rate else 0.0,
                "rms": rms, "decode_errors": self.decode_errors, "index_gaps": gaps,
                "config": self.config, "loss": self.session.audio_loss_stats}


def stats_lib():
    import cffi
    from moonlight_python.stream import _find_shared_lib
    ffi = cffi.FFI()
    ffi.cdef(STATS_CDEF)
    # glibc hands back the same handle as the session's dlopen: same process-global state (§B8).
    return ffi, ffi.dlopen(_find_shared_lib())


def video_stats(ffi, lib):
    s = lib.LiGetRTPVideoStats()
    if s == ffi.NULL:
        return None
    return {f: int(getattr(s, f)) for f in STATS_FIELDS}


def send_input(lib):
    """Keyboard and mouse through the real client; returns each call's return code."""
    rcs = {}
    steps = [
        ("key_down", lambda: lib.LiSendKeyboardEvent(KEY_CODE, KEY_DOWN, KEY_MODIFIERS)),
        ("key_up", lambda: lib.LiSendKeyboardEvent(KEY_CODE, KEY_UP, 0)),
        ("move", lambda: lib.LiSendMouseMoveEvent(MOVE_DX, MOVE_DY)),
        ("button_down", lambda: lib.LiSendMouseButtonEvent(BUTTON_DOWN, BUTTON_RIGHT)),
        ("button_up", lambda: lib.LiSendMouseButtonEvent(BUTTON_UP, BUTTON_RIGHT)),
        ("scroll", lambda: lib.LiSendScrollEvent(SCROLL_CLICKS)),
    ]
    for name, call in steps:
        rcs[name] = int(call())
        time.sleep(0.05)  # separate packets: common-c batches mouse motion
    return rcs


def gaps_of(numbers):
    """(count, first few (prev, next) pairs) of steps != +1."""
    gaps = [(a, b) for a, b in zip(numbers, numbers[1:]) if b != a + 1]
    return len(gaps), gaps[:20]


def stream_mode(a, http, info, apps):
    from moonlight_python.config import StreamConfig, VIDEO_FORMAT_H264
    from moonlight_python.exceptions import StreamStartError
    from moonlight_python.stream import StreamingSession

    deadline = time.monotonic() + a.timeout
    app_id = [x.id for x in apps if x.name.lower() == a.app.lower()][0]
    cfg = StreamConfig(width=a.width, height=a.height, fps=a.fps, bitrate_kbps=a.bitrate,
                       supported_video_formats=VIDEO_FORMAT_H264)
    session = StreamingSession()
    query = session.get_launch_query_params()
    http.server_cert_pem = b"pinned"  # HTTPS for /serverinfo from now on
    key = secrets.token_bytes(16)
    iv = struct.pack(">i", RIKEYID) + secrets.token_bytes(12)
    emit(step="keys", rikey=key.hex(), rikeyid=RIKEYID, packet_size=cfg.packet_size)
    url = http.launch_app(app_id, a.width, a.height, a.fps, a.bitrate, 1, key, iv, 196610,
                          True, False, query)
    emit(step="launch", ok=True, url=url)
    emit(step="serverinfo_busy", **info_obj(http.parse_server_info(
        http.get_server_info(use_https=True))))
    if a.busy_launch:
        try:
            url2 = http.launch_app(app_id, a.width, a.height, a.fps, a.bitrate, 1,
                                   secrets.token_bytes(16), iv, 196610, True, False, query)
            emit(step="launch_busy", ok=True, url=url2)
        except Exception as e:
            emit(step="launch_busy", ok=False, **err_obj(e))

    t0 = time.monotonic()
    try:
        session.start(a.host, info.app_version, info.gfe_version,
                      info.server_codec_mode_support, url, cfg, key, iv,
                      capture_audio=a.audio_seconds > 0)
    except StreamStartError as e:
        emit(step="stream_start", ok=False, stage=e.stage, error_code=e.error_code,
             seconds=round(time.monotonic() - t0, 2))
        http.quit_app()
        return
    emit(step="stream_start", ok=True, seconds=round(time.monotonic() - t0, 2))
    ffi, lib = stats_lib()

    audio = AudioThread(session, a.audio_seconds) if a.audio_seconds > 0 else None
    dec = VideoDecodeThread(a.width, a.height) if a.decode else None
    frames = []  # (frame_number, frame_type)
    arrivals = []  # time.monotonic() per pulled frame
    input_rc = None
    pull_done = threading.Event()

    def want_more():
        if len(frames) < a.frames:
            return True
        return bool(a.until_file) and not os.path.exists(a.until_file)

    def pull():
        while want_more() and time.monotonic() < deadline:
            raw = session.pull_frame()
            if raw is None:
                if session.is_terminated:
                    return
                continue
            frames.append((raw.frame_number, raw.frame_type))
            arrivals.append(time.monotonic())
            if dec is not None:
                dec.feed(raw.annex_b_data)
        pull_done.set()

    puller = threading.Thread(target=pull, daemon=True)
    puller.start()
    while puller.is_alive() and time.monotonic() < deadline:
        if a.input and input_rc is None and len(frames) >= min(30, a.frames // 2):
            input_rc = send_input(lib)
            emit(step="input", rcs=input_rc)
        puller.join(0.05)
    if puller.is_alive():
        session.wake()  # unblock LiWaitForNextVideoFrame
        puller.join(2.0)
    if a.input and input_rc is None:
        input_rc = send_input(lib)
        emit(step="input", rcs=input_rc)
    vstats = video_stats(ffi, lib)
    rtt, var = ffi.new("uint32_t*"), ffi.new("uint32_t*")
    rtt_ok = bool(lib.LiGetEstimatedRttInfo(rtt, var))

    numbers = [n for n, _ in frames]
    count, gaps = gaps_of(numbers)
    distinct = len(set(numbers))
    lost = (numbers[-1] - numbers[0] + 1 - distinct) if numbers else None
    video = {"frames": len(frames), "first": numbers[0] if numbers else None,
             "last": numbers[-1] if numbers else None, "distinct": distinct, "lost": lost,
             "gap_count": count, "gaps": gaps, "idr": sum(1 for _, t in frames if t == 1),
             "seconds": round(time.monotonic() - t0, 2),
             "terminated": session.is_terminated,
             "termination_error": session.termination_error if session.is_terminated else None,
             "t_first": arrivals[0] if arrivals else None,
             "t_last": arrivals[-1] if arrivals else None}
    if a.frame_times:
        video["arrivals"] = [round(t, 4) for t in arrivals]
    if dec is not None:
        dec_ok = dec.finish(max(5.0, deadline - time.monotonic()))
        px = dec.pixel_numbers
        non_inc = sum(1 for x, y in zip(px, px[1:]) if y <= x)
        pcount, pgaps = gaps_of(px)
        video.update({"decoded": dec.decoded, "decode_errors": dec.errors,
                      "decode_finished": dec_ok, "shapes": sorted(dec.shapes),
                      "pixel_read": len(px), "pixel_unreadable": dec.unreadable,
                      "pixel_first": px[0] if px else None, "pixel_last": px[-1] if px else None,
                      "pixel_non_increasing": non_inc, "pixel_gap_count": pcount,
                      "pixel_gaps": pgaps,
                      "luma_mean_min": min(dec.luma_means) if dec.luma_means else None})
    emit(step="video", **video)
    emit(step="video_stats", stats=vstats, rtt_ms=int(rtt[0]) if rtt_ok else None)
    if audio is not None:
        audio.finish(max(2.0, min(a.audio_seconds + 10.0, deadline - time.monotonic())))
        emit(step="audio", **audio.result())

    if a.cancel:
        t_cancel = time.monotonic()
        http.quit_app()
        emit(step="cancel", ok=True, t=t_cancel)
        t1 = time.monotonic()
        while not session.is_terminated and time.monotonic() - t1 < a.end_wait:
            time.sleep(0.05)
        emit(step="ended", terminated=session.is_terminated,
             error=session.termination_error if session.is_terminated else None,
             seconds=round(time.monotonic() - t1, 2))
        session.stop()
    else:
        session.stop()
        http.quit_app()
        emit(step="cancel", ok=True)
    emit(step="serverinfo_free", **info_obj(http.parse_server_info(
        http.get_server_info(use_https=True))))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["pair", "applist", "stream"])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True, help="HTTP (base) port")
    ap.add_argument("--config", required=True, help="client identity directory")
    ap.add_argument("--pin", default="0000")
    ap.add_argument("--app", default="Desktop")
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=720)
    ap.add_argument("--fps", type=int, default=60)
    ap.add_argument("--bitrate", type=int, default=20000, help="kbit/s")
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--no-decode", dest="decode", action="store_false")
    ap.add_argument("--audio-seconds", type=float, default=0.0)
    ap.add_argument("--input", action="store_true")
    ap.add_argument("--busy-launch", action="store_true")
    ap.add_argument("--cancel", action="store_true",
                    help="/cancel while streaming and wait for the host to end the stream")
    ap.add_argument("--end-wait", type=float, default=10.0)
    ap.add_argument("--timeout", type=float, default=60.0, help="bound of the stream phase")
    ap.add_argument("--until-file", default="",
                    help="after --frames, keep pulling until this file exists (bounded by --timeout)")
    ap.add_argument("--frame-times", action="store_true",
                    help="list every frame's arrival time (monotonic) in the video step")
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
    if a.mode == "stream":
        stream_mode(a, http, info, apps)


if __name__ == "__main__":
    try:
        main()
    except Exception as e:
        emit(step="fatal", trace=traceback.format_exc(), **err_obj(e))
        sys.exit(2)
