"""The client of `strahl-bench gamestream`: a measured stream, not decoded.

Contract:
  bench    (paired --config) serverinfo, applist, keys, launch, serverinfo_busy, stream_start at
           --bitrate (packet size 1392); then a pull loop that does NOT decode or copy: each
           decode unit's frameNumber, frameType and fullLength are read and the unit is
           completed at once (common-c's own queue holds only 15 frames; copying 1 MB AUs into
           Python would make the client, not the host, the bottleneck). After --warmup s a
           window of --seconds starts; at both ends (monotonic and wall-clock time) it samples
           the client's RTP video counters, the data plane's CPU time (/proc/--dp-pid/stat
           utime+stime), this process's CPU, machine-wide CPU (/proc/stat), the load average and
           the machine's UDP receive-buffer drops (/proc/net/snmp): step window {...}. Then
           stop, cancel, serverinfo_free.
"""

import os
import time

from .core import STATS_FIELDS, video_stats
from .flows import end, open_stream
from .out import emit


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
        rows = [line.split() for line in f if line.startswith("Udp:")]
    names, vals = rows[0][1:], [int(x) for x in rows[1][1:]]
    d = dict(zip(names, vals))
    return {"InErrors": d.get("InErrors", 0), "RcvbufErrors": d.get("RcvbufErrors", 0)}


def sample(dp_pid):
    t = os.times()
    return {
        "t": time.monotonic(),
        # Wall clock (CLOCK_REALTIME): the clock of the kernel's packet timestamps, so the
        # bench can cut a receive-side capture to this window.
        "wall": time.time(),
        "rtp": video_stats(),
        "dp_cpu_s": proc_cpu_s(dp_pid) if dp_pid else None,
        "client_cpu_s": t.user + t.system,
        "machine": machine_cpu(),
        "loadavg": os.getloadavg(),
        "udp": udp_counters(),
    }


def bench_cmd(a):
    s = open_stream(a)
    if s is None:
        return
    http, session = s.http, s.session

    ffi, lib = session._ffi, session._lib
    handle = ffi.new("VIDEO_FRAME_HANDLE*")
    unit = ffi.new("DECODE_UNIT**")
    first_any = None
    warm_end = time.monotonic() + a.warmup
    win_end = warm_end + a.seconds
    s0 = None
    nums = []  # frame numbers in the window
    au_bytes = 0
    idr = 0
    pulled_total = 0
    while True:
        now = time.monotonic()
        if s0 is None and now >= warm_end:
            s0 = sample(a.dp_pid)
        if now >= win_end or session.is_terminated:
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
    s1 = sample(a.dp_pid)
    terminated = session.is_terminated
    term_code = session.termination_error if terminated else None
    if s0 is None:
        s0 = s1
    secs = s1["t"] - s0["t"]
    distinct = len(set(nums))
    span = (max(nums) - min(nums) + 1) if nums else 0
    rtp_d = {f: s1["rtp"][f] - s0["rtp"][f] for f in STATS_FIELDS}
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
    end(http, session, started=True)
