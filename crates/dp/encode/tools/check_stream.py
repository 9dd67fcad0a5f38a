#!/usr/bin/env python3
"""Independent check of a strahl synthetic H.264 stream: decode it with FFmpeg's h264 decoder
(PyAV, e.g. the repo's .venv or /tmp/mlvenv) and read the frame number from every picture with
the same rule as strahl_capture::synthetic::read_frame_number (32 blocks, MSB first, block edge
16 * max(1, width // 512), up to 32 per row, inner-half mean, < 70 → 0, > 180 → 1, else unreadable).

usage: check_stream.py STREAM.h264
Exits non-zero unless the frame numbers are consecutive.
"""
import sys

import av


def read_frame_number(y, width):
    block = 16 * max(1, width // 512)
    cols = min(32, width // block)
    inset = block // 4
    n = 0
    for i in range(32):
        ox, oy = (i % cols) * block, (i // cols) * block
        m = y[oy + inset:oy + block - inset, ox + inset:ox + block - inset].mean()
        if 70 <= m <= 180:
            return None
        n = (n << 1) | int(m > 180)
    return n


def main():
    codec = av.CodecContext.create("h264", "r")
    data = open(sys.argv[1], "rb").read()
    numbers, keys = [], []
    packets = codec.parse(data) + codec.parse(None)
    for pkt in packets + [None]:
        for frame in codec.decode(pkt):
            y = frame.to_ndarray(format="gray")
            numbers.append(read_frame_number(y, frame.width))
            keys.append(frame.key_frame)
    first = numbers[0] if numbers else 0
    ok = bool(numbers) and all(n == (first + i) & 0xFFFFFFFF for i, n in enumerate(numbers))
    print(f"{len(numbers)} frames, first {first}, keyframes at "
          f"{[i for i, k in enumerate(keys) if k]}: {'ok' if ok else 'MISMATCH'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
