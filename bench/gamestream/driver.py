#!/usr/bin/env python3
"""Moonlight client for `strahl-bench gamestream`: the real Moonlight core (PyPI
moonlight-python 0.3.0 — GPL, a test tool run as a separate process, never linked).

One client process per invocation (common-c is process-global). Every step prints one JSON
object per line on stdout; the Rust side parses them.

Modes:
  check   decode a stream file with FFmpeg's h264 decoder (PyAV): frames, key frames, errors —
          the independent proof that the generated stream is valid H.264.
  pair    serverinfo over HTTP, MoonlightClient.pair(server, pin=PIN) in a thread while the main
          thread submits PIN through `strahl-control pin` (retried until a client is waiting).
  stream  (paired config dir) /launch WxH@FPS, the StreamingSession handshake at the given
          bitrate (packet size 1392), then a pull loop that does NOT decode or copy: each
          decode unit's frameNumber, frameType and fullLength are read and the unit is
          completed at once (common-c's own queue holds only 15 frames; copying 1 MB AUs into
          Python would make the client, not the host, the bottleneck). After --warmup seconds a
          measurement window of --seconds starts; at both ends (monotonic and wall-clock time,
          the window step carries both) it samples the client's RTP video counters (LiGetRTPVideoStats through a second cffi handle on the same .so), the data
          plane's CPU time (/proc/PID/stat utime+stime), this process's CPU, machine-wide CPU
          (/proc/stat), the load average and the machine's UDP receive-buffer drops
          (/proc/net/snmp). Then stop, /cancel, /serverinfo.
"""

import argparse
import json
import os
import subprocess
import sys
import threading
import time
import traceback

RTP_STATS_CDEF = """
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
"""
RTP_FIELDS = ["packetCountVideo", "packetCountFec", "packetCountFecRecovered",
              "packetCountFecFailed", "packetCountOOS", "packetCountInvalid",
              "packetCountFecInvalid"]
# Bounds: how long a pull may block before the loop re-checks its deadline (the client's own
# timeouts are 10 s, §B9), and the longest the pin submission is retried.
PIN_RETRY_S = 45.0


def emit(**kw):
    print(json.dumps(kw), flush=True)


def err_obj(e):
    return {"error": type(e).__name__, "message": str(e),
            "code": getattr(e, "status_code", None)}


def proc_cpu_s(pid):
    """utime + stime of a process in seconds (fields 14 and 15 of /proc/PID/stat)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(rest[11]) + int(rest[12])) / ticks
    except (OSError, IndexError, ValueError):
        return None


def machine_cpu():
    """(busy, total) jiffies over all CPUs from /proc/stat."""
    with open("/proc/stat") as f:
        vals = [int(x) for x in f.readline().split()[1:]]
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
    return sum(vals) - idle, sum(vals)


def udp_counters():
    """Machine-wide UDP counters from /proc/net/snmp (InErrors, RcvbufErrors): datagrams the
    kernel dropped at a full socket receive buffer show up here, not in the client's RTP stats."""
    with open("/proc/net/snmp") as f:
        rows = [l.split() for l in f if l.startswith("Udp:")]
    names, vals = rows[0][1:], [int(x) for x in rows[1][1:]]
    d = dict(zip(names, vals))
    return {"InErrors": d.get("InErrors", 0), "RcvbufErrors": d.get("RcvbufErrors", 0)}


def sample(rtp, dp_pid):
    s = {f: int(getattr(rtp, f)) for f in RTP_FIELDS}
    t = os.times()
    return {
        "t": time.monotonic(),
        # Wall clock (CLOCK_REALTIME): the clock of the kernel's packet timestamps, so the
        # bench can cut a receive-side capture to this window.
        "wall": time.time(),
        "rtp": s,
        "dp_cpu_s": proc_cpu_s(dp_pid) if dp_pid else None,
        "client_cpu_s": t.user + t.system,
        "machine": machine_cpu(),
        "loadavg": os.getloadavg(),
        "udp": udp_counters(),
    }


def do_pair(a):
    from moonlight_python import MoonlightClient
    from moonlight_python.discovery import connect_to_server
    from moonlight_python.identity import Identity

    client = MoonlightClient(config_dir=a.config)
    server = connect_to_server(a.host, Identity(a.config), a.port)
    emit(step="serverinfo", app_version=server.app_version, paired=server.paired)
    result = {}

    def run():
        try:
            client.pair(server, pin=a.pin)
            result["ok"] = True
        except Exception as e:  # reported below
            result["err"] = err_obj(e)

    th = threading.Thread(target=run, daemon=True)
    th.start()
    deadline = time.monotonic() + PIN_RETRY_S
    submitted = False
    while th.is_alive() and time.monotonic() < deadline and not submitted:
        r = subprocess.run(json.loads(a.pin_cmd) + [a.pin], capture_output=True, text=True, timeout=15)
        submitted = r.returncode == 0
        if not submitted:
            time.sleep(0.3)
    th.join(timeout=PIN_RETRY_S)
    if result.get("ok"):
        emit(step="pair", ok=True)
    else:
        emit(step="pair", ok=False, submitted=submitted, **result.get("err", {"error": "timeout"}))


def do_stream(a):
    import cffi
    from moonlight_python.config import StreamConfig, VIDEO_FORMAT_H264
    from moonlight_python.http_client import NvHTTP
    from moonlight_python.identity import Identity
    from moonlight_python.stream import StreamingSession, _find_shared_lib
    import secrets
    import struct

    http = NvHTTP(a.host, Identity(a.config), http_port=a.port)
    info = http.parse_server_info(http.get_server_info())
    apps = http.get_app_list()
    app_id = [x.id for x in apps if x.name.lower() == "desktop"][0]
    cfg = StreamConfig(width=a.width, height=a.height, fps=a.fps, bitrate_kbps=a.bitrate_kbps,
                       supported_video_formats=VIDEO_FORMAT_H264)
    session = StreamingSession()
    query = session.get_launch_query_params()
    http.server_cert_pem = b"pinned"  # HTTPS first for /serverinfo
    key = secrets.token_bytes(16)
    iv = secrets.token_bytes(16)
    url = http.launch_app(app_id, a.width, a.height, a.fps, a.bitrate_kbps, 1, key, iv, 196610,
                          True, False, query)
    emit(step="launch", ok=True, packet_size=cfg.packet_size)
    ffi2 = cffi.FFI()
    ffi2.cdef(RTP_STATS_CDEF)
    lib2 = ffi2.dlopen(_find_shared_lib())
    from moonlight_python.exceptions import StreamStartError
    t_start = time.monotonic()
    try:
        session.start(a.host, info.app_version, info.gfe_version, info.server_codec_mode_support,
                      url, cfg, key, iv)
    except StreamStartError as e:
        emit(step="start_failed", stage=e.stage, error_code=e.error_code,
             seconds=round(time.monotonic() - t_start, 2))
        http.quit_app()
        return
    emit(step="started", seconds=round(time.monotonic() - t_start, 3))
    rtp = lib2.LiGetRTPVideoStats()

    ffi, lib = session._ffi, session._lib
    handle = ffi.new("VIDEO_FRAME_HANDLE*")
    unit = ffi.new("DECODE_UNIT**")
    first_any = None
    warm_end = time.monotonic() + a.warmup
    end = warm_end + a.seconds
    s0 = None
    nums = []  # frame numbers in the window
    au_bytes = 0
    idr = 0
    pulled_total = 0
    while True:
        now = time.monotonic()
        if s0 is None and now >= warm_end:
            s0 = sample(rtp, a.dp_pid)
        if now >= end or session.is_terminated:
            break
        # Poll (not wait) so the deadline is honoured even when no frame comes.
        if not lib.LiPollNextVideoFrame(handle, unit):
            time.sleep(0.0005)
            continue
        du = unit[0]
        n, kind, length = du.frameNumber, du.frameType, du.fullLength
        lib.LiCompleteVideoFrame(handle[0], 0)
        pulled_total += 1
        if first_any is None:
            first_any = n
        if s0 is not None:
            nums.append(n)
            au_bytes += length
            idr += int(kind == 1)
    s1 = sample(rtp, a.dp_pid)
    terminated = session.is_terminated
    term_code = session.termination_error if terminated else None
    if s0 is None:
        s0 = s1
    secs = s1["t"] - s0["t"]
    distinct = len(set(nums))
    span = (max(nums) - min(nums) + 1) if nums else 0
    rtp_d = {f: s1["rtp"][f] - s0["rtp"][f] for f in RTP_FIELDS}
    busy = s1["machine"][0] - s0["machine"][0]
    total = s1["machine"][1] - s0["machine"][1]
    emit(step="window", seconds=secs, t0_wall=s0["wall"], t1_wall=s1["wall"],
         frames_received=distinct, first_frame=min(nums, default=None),
         last_frame=max(nums, default=None), frames_in_span=span, frames_lost=span - distinct,
         duplicates=len(nums) - distinct, idr_frames=idr, au_bytes=au_bytes, rtp=rtp_d,
         rtp_total=s1["rtp"],
         udp_rcvbuf_errors=s1["udp"]["RcvbufErrors"] - s0["udp"]["RcvbufErrors"],
         udp_in_errors=s1["udp"]["InErrors"] - s0["udp"]["InErrors"],
         dp_cpu_s=(None if s0["dp_cpu_s"] is None or s1["dp_cpu_s"] is None
                   else s1["dp_cpu_s"] - s0["dp_cpu_s"]),
         client_cpu_s=s1["client_cpu_s"] - s0["client_cpu_s"],
         machine_busy_frac=(busy / total if total else None),
         loadavg_start=s0["loadavg"], loadavg_end=s1["loadavg"],
         pulled_total=pulled_total, first_frame_any=first_any,
         terminated=terminated, termination_code=term_code)
    session.stop()
    http.quit_app()
    emit(step="cancel", ok=True)
    free = http.parse_server_info(http.get_server_info(use_https=True))
    emit(step="serverinfo_free", state=free.state, current_game=free.current_game)


def do_check(a):
    import av
    codec = av.CodecContext.create("h264", "r")
    with open(a.file, "rb") as f:
        data = f.read()
    frames = keys = errors = 0
    size = None
    # parse(None) flushes the parser (its last AU); decode(None) flushes the decoder.
    packets = list(codec.parse(data)) + list(codec.parse(None)) + [None]
    for pkt in packets:
        try:
            for fr in codec.decode(pkt):
                frames += 1
                keys += int(fr.key_frame)
                size = (fr.width, fr.height)
        except av.error.InvalidDataError:
            errors += 1
        except av.error.EOFError:
            break
    emit(step="check", frames=frames, key_frames=keys, errors=errors, size=size)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["check", "pair", "stream"])
    ap.add_argument("--file", default="")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--config", default="")
    ap.add_argument("--pin", default="4711")
    ap.add_argument("--pin-cmd", default="[]",
                    help="JSON list: the command that submits the PIN (the PIN is appended)")
    ap.add_argument("--width", type=int, default=1920)
    ap.add_argument("--height", type=int, default=1080)
    ap.add_argument("--fps", type=int, default=60)
    ap.add_argument("--bitrate-kbps", type=int, default=150000)
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--dp-pid", type=int, default=0)
    a = ap.parse_args()
    if a.mode == "check":
        do_check(a)
    elif a.mode == "pair":
        do_pair(a)
    else:
        do_stream(a)


if __name__ == "__main__":
    try:
        main()
    except Exception as e:
        emit(step="fatal", trace=traceback.format_exc(), **err_obj(e))
        sys.exit(2)
