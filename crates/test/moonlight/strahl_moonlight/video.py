"""H.264 pictures as strahl's synthetic source draws them: decoding (FFmpeg's h264 decoder
through PyAV, independent of strahl) and reading the frame-number band.

Contract: `read_frame_number` is the port of strahl-capture's read_frame_number
(crates/dp/capture/src/synthetic.rs): 32 blocks, MSB first, row-major from the top-left; block
edge 16 * max(1, W // 512), up to 32 per row; the inner half of each block is averaged; a mean
in [70, 180] makes the frame unreadable, above 180 is a 1 bit. `VideoDecodeThread` decodes
access units off the caller's thread and reads every picture's number. The `check` subcommand:
  check    --file STREAM.h264: check {frames, key_frames, errors, size}; with --frame-numbers
           also {numbers, unreadable, first_number, consecutive, key_frame_at}, and exit status
           1 unless every picture's number is readable and one more than the last.
"""

import queue
import threading

from .out import emit, log

FRAME_NUMBER_BITS = 32
AMBIGUOUS_LOW = 70
AMBIGUOUS_HIGH = 180
MIN_WIDTH = 128


def read_frame_number(y, width, height):
    """The frame number from a luma plane (numpy (rows, >= width) uint8), or None."""
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


def luma(frame):
    """A decoded picture's luma plane as a numpy (rows, width) uint8 array (10-bit pictures,
    FFmpeg's *p10le formats, scaled to 8 bits)."""
    import numpy as np
    plane = frame.planes[0]
    if frame.format.name.endswith("10le"):
        y = np.frombuffer(plane, dtype="<u2").reshape(plane.height, plane.line_size // 2)
        return (y[:, :frame.width] >> 2).astype(np.uint8)
    y = np.frombuffer(plane, dtype=np.uint8).reshape(plane.height, plane.line_size)
    return y[:, :frame.width]


class VideoDecodeThread:
    """Decodes pulled access units off the pull thread (common-c's 15-deep decode-unit queue
    must never fill, or it flushes and asks for an IDR, which would look like loss)."""

    def __init__(self, width, height, codec="h264"):
        import av
        self.av = av
        self.ctx = av.CodecContext.create(codec, "r")
        self.ctx.thread_type = "AUTO"
        self.width, self.height = width, height
        self.q = queue.Queue()
        self.pixel_numbers = []
        self.picture_numbers = []  # every picture's, None where unreadable
        self.unreadable = 0
        self.decoded = 0
        self.errors = 0
        self.shapes = set()
        self.formats = set()
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
        self.formats.add(frame.format.name)
        y = luma(frame)
        if len(self.luma_means) < 4096:
            self.luma_means.append(float(y.mean()))
        n = read_frame_number(y, frame.width, frame.height)
        self.picture_numbers.append(n)
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


def check_cmd(a):
    import av
    codec = av.CodecContext.create(a.decoder, "r")
    with open(a.file, "rb") as f:
        data = f.read()
    frames = keys = errors = 0
    size = None
    numbers, key_at = [], []
    # parse(None) flushes the parser (its last AU); decode(None) flushes the decoder.
    packets = list(codec.parse(data)) + list(codec.parse(None)) + [None]
    for pkt in packets:
        try:
            for fr in codec.decode(pkt):
                if fr.key_frame:
                    key_at.append(frames)
                frames += 1
                keys += int(fr.key_frame)
                size = (fr.width, fr.height)
                if a.frame_numbers:
                    numbers.append(read_frame_number(luma(fr), fr.width, fr.height))
        except av.error.InvalidDataError:
            errors += 1
        except av.error.EOFError:
            break
    if not a.frame_numbers:
        emit(step="check", frames=frames, key_frames=keys, errors=errors, size=size)
        return 0
    first = numbers[0] if numbers else None
    consecutive = bool(numbers) and first is not None and all(
        n == (first + i) & 0xFFFFFFFF for i, n in enumerate(numbers))
    emit(step="check", frames=frames, key_frames=keys, errors=errors, size=size,
         numbers=len(numbers), unreadable=sum(1 for n in numbers if n is None),
         first_number=first, consecutive=consecutive, key_frame_at=key_at)
    return 0 if consecutive else 1
