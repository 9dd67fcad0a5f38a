"""The end-to-end client case (crates/test/e2e): a full stream, decoded and measured.

Contract:
  stream   (paired --config) serverinfo, applist, keys, launch, serverinfo_busy, launch_busy
           (--busy-launch), stream_start (RTSP, ENet, video, audio); then pulls --frames
           frames (past that until --until-file exists, a test's signal), decodes them with
           PyAV and reads the synthetic source's frame-number band (video.py), captures
           --audio-seconds of Opus and decodes it, sends INPUT (--input) and PAD (--input-pad)
           once 30 frames (or half of --frames) arrived (with --ready-dir, first waiting for a
           reader of the host's devices: READY_INPUT before INPUT, READY_PAD after the pad's
           arrival); steps input {rcs}, video {frames, first, last, distinct,
           lost, gap_count, gaps, idr, seconds, terminated, termination_error, t_first, t_last,
           arrivals (--frame-times), decoded, pixel_*, pixel_numbers (--pixel-numbers:
           every picture's number in decode order, null where unreadable), ...}, video_stats {stats, rtt_ms},
           audio {..., rms, dominant_hz: per channel}; then cancel (with --cancel while
           streaming: ended, the host must end the
           stream within --end-wait s) and serverinfo_free. Every wait is bounded by --timeout.
Arrival times are time.monotonic(), the machine-wide CLOCK_MONOTONIC, so clients in different
processes and network namespaces compare.
"""

import os
import threading
import time

from . import codecs
from .core import rtt_ms, send_inputs, video_stats
from .flows import end, open_stream
from .out import emit
from .video import VideoDecodeThread

# Input the stream sends (the Rust tests expect exactly these in the recording sink).
KEY_CODE = 0x4B          # VK 'K'
KEY_MODIFIERS = 0x02     # ctrl
KEY_DOWN, KEY_UP = 0x03, 0x04
BUTTON_DOWN, BUTTON_UP = 0x07, 0x08
BUTTON_RIGHT = 3
MOVE_DX, MOVE_DY = 123, -77
SCROLL_CLICKS = 2
INPUT = [
    ("key_down", lambda lib: lib.LiSendKeyboardEvent(KEY_CODE, KEY_DOWN, KEY_MODIFIERS)),
    ("key_up", lambda lib: lib.LiSendKeyboardEvent(KEY_CODE, KEY_UP, 0)),
    ("move", lambda lib: lib.LiSendMouseMoveEvent(MOVE_DX, MOVE_DY)),
    ("button_down", lambda lib: lib.LiSendMouseButtonEvent(BUTTON_DOWN, BUTTON_RIGHT)),
    ("button_up", lambda lib: lib.LiSendMouseButtonEvent(BUTTON_UP, BUTTON_RIGHT)),
    ("scroll", lambda lib: lib.LiSendScrollEvent(SCROLL_CLICKS)),
]
# --input-pad: controller 0 arrives as an Xbox pad (LiSendControllerArrivalEvent), then three
# states (LiSendMultiControllerEvent: number, active mask, buttons, LT, RT, LSx, LSy, RSx, RSy):
# A+LB with both triggers and every stick axis off centre (RSy at the XInput minimum), then
# B+d-pad up with the values moved, then rest. The appliance boot reads them back as evdev.
PAD_NUMBER, PAD_MASK = 0, 0x1
PAD_TYPE_XBOX = 0x01
PAD_SUPPORTED_BUTTONS = 0xFFFF
PAD_A, PAD_B, PAD_LB, PAD_DPAD_UP = 0x1000, 0x2000, 0x0100, 0x0001
PAD_ARRIVAL = [
    ("pad_arrival", lambda lib: lib.LiSendControllerArrivalEvent(
        PAD_NUMBER, PAD_MASK, PAD_TYPE_XBOX, PAD_SUPPORTED_BUTTONS, 0)),
]
PAD = [
    ("pad_press", lambda lib: lib.LiSendMultiControllerEvent(
        PAD_NUMBER, PAD_MASK, PAD_A | PAD_LB, 100, 200, 1000, 20000, -32768, -32768)),
    ("pad_change", lambda lib: lib.LiSendMultiControllerEvent(
        PAD_NUMBER, PAD_MASK, PAD_B | PAD_DPAD_UP, 0, 255, -1000, 0, 0, 32767)),
    ("pad_rest", lambda lib: lib.LiSendMultiControllerEvent(
        PAD_NUMBER, PAD_MASK, 0, 0, 0, 0, 0, 0, 0)),
]
# Apart enough that the core sends each pad state on its own (it coalesces queued ones).
PAD_GAP_S = 0.3
# --ready-dir: the files a reader of the host's devices writes once it has them open.
READY_INPUT, READY_PAD = "input.ready", "pad.ready"
# The longest wait for one of them (within the stream's --timeout).
READY_WAIT_S = 60.0


def wait_file(path, deadline):
    """Whether `path` exists by `deadline` (time.monotonic()) or READY_WAIT_S from now."""
    deadline = min(deadline, time.monotonic() + READY_WAIT_S)
    while not os.path.exists(path):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def send_input(a, deadline):
    """--input's INPUT and --input-pad's PAD, each after its --ready-dir file when given (a
    missing one is reported in the step and the input sent anyway); {name: rc}."""
    rcs, ready = {}, {}
    if a.input:
        if a.ready_dir:
            ready["input"] = wait_file(os.path.join(a.ready_dir, READY_INPUT), deadline)
        rcs.update(send_inputs(INPUT, gap=0.05))
    if a.input_pad:
        rcs.update(send_inputs(PAD_ARRIVAL, gap=PAD_GAP_S))
        if a.ready_dir:
            ready["pad"] = wait_file(os.path.join(a.ready_dir, READY_PAD), deadline)
        rcs.update(send_inputs(PAD, gap=PAD_GAP_S))
    return rcs, ready


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
        # Decoded PCM (frames x channels) kept for the dominant-frequency estimate.
        self.pcm = []
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
                self.pcm.append(arr)
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
                "config": self.config, "loss": self.session.audio_loss_stats,
                "dominant_hz": self.dominant_hz()}

    def dominant_hz(self):
        """Per channel, the frequency (Hz) of the largest peak of the Hann-windowed spectrum of
        everything decoded (resolution rate / samples: 0.67 Hz for 1.5 s); [] without audio."""
        import numpy as np
        if not self.pcm or not self.rate:
            return []
        x = np.concatenate(self.pcm).astype("float64")
        x -= x.mean(axis=0)
        spec = np.abs(np.fft.rfft(x * np.hanning(x.shape[0])[:, None], axis=0))
        spec[0] = 0.0
        return [round(float(k) * self.rate / x.shape[0], 1) for k in spec.argmax(axis=0)]


def gaps_of(numbers):
    """(count, first few (prev, next) pairs) of steps != +1."""
    gaps = [(a, b) for a, b in zip(numbers, numbers[1:]) if b != a + 1]
    return len(gaps), gaps[:20]


def stream_cmd(a):
    s = open_stream(a, busy_launch=a.busy_launch, capture_audio=a.audio_seconds > 0)
    if s is None:
        return
    http, session = s.http, s.session
    deadline = s.t_launch + a.timeout
    t0 = s.t_start

    audio = AudioThread(session, a.audio_seconds) if a.audio_seconds > 0 else None
    dec = VideoDecodeThread(a.width, a.height, codecs.decoder(a.codec)) if a.decode else None
    frames = []  # (frame_number, frame_type)
    arrivals = []  # time.monotonic() per pulled frame
    input_rc = None
    sends_input = a.input or a.input_pad

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

    puller = threading.Thread(target=pull, daemon=True)
    puller.start()
    while puller.is_alive() and time.monotonic() < deadline:
        if sends_input and input_rc is None and len(frames) >= min(30, a.frames // 2):
            input_rc, ready = send_input(a, deadline)
            emit(step="input", rcs=input_rc, **({"ready": ready} if a.ready_dir else {}))
        puller.join(0.05)
    if puller.is_alive():
        session.wake()  # unblock LiWaitForNextVideoFrame
        puller.join(2.0)
    if sends_input and input_rc is None:
        input_rc, ready = send_input(a, deadline)
        emit(step="input", rcs=input_rc, **({"ready": ready} if a.ready_dir else {}))
    vstats = video_stats()
    rtt = rtt_ms()

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
                      "pixel_gaps": pgaps, "pixel_formats": sorted(dec.formats),
                      "luma_mean_min": min(dec.luma_means) if dec.luma_means else None})
        if a.pixel_numbers:
            video["pixel_numbers"] = dec.picture_numbers
    emit(step="video", **video)
    emit(step="video_stats", stats=vstats, rtt_ms=rtt)
    emit(step="hdr", codec=a.codec, **codecs.hdr_state())
    if audio is not None:
        audio.finish(max(2.0, min(a.audio_seconds + 10.0, deadline - time.monotonic())))
        emit(step="audio", **audio.result())
    end(http, session, started=True, wait=a.end_wait if a.cancel else None)
