"""Host-side receiver of the AF_XDP zero-copy stream (tests/lab.rs): pings the guest's video and
audio ports the way a GameStream client does (16-byte payload + a counter, every 100 ms), so the
data plane routes the session to this address; receives until the stream has been quiet for
QUIET s after it began, or TIMEOUT s in all; prints one JSON line with what it saw:
video packets, the frame indices (GameStream video header, little-endian u32 at byte 20), the
source ports, RTP versions, audio packets. Nothing here trusts the sender: the kernel socket
has already dropped any datagram whose UDP checksum is wrong.

Once the first video packet is in (the guest's AF_XDP socket is bound), it also sends one
datagram from each of FLOWS fresh source ports to the guest's FLOW_PORT: the tap spreads flows
over the NIC's queues by hash, so the guest receiving them all shows that the queue the
zero-copy socket owns still delivers to the stack.

usage: zc-receiver.py GUEST_IP VIDEO_PORT AUDIO_PORT PAYLOAD TIMEOUT_S QUIET_S FLOW_PORT FLOWS
"""

import json
import select
import socket
import sys
import time


def main() -> None:
    guest, vport, aport, payload = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    timeout, quiet = float(sys.argv[5]), float(sys.argv[6])
    flow_port, flows = int(sys.argv[7]), int(sys.argv[8])
    payload = payload.encode()
    socks = {}
    for name, port in (("video", vport), ("audio", aport)):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        s.bind(("0.0.0.0", 0))
        s.setblocking(False)
        socks[name] = (s, port)
    seen = {
        "video_packets": 0,
        "audio_packets": 0,
        "video_bytes": 0,
        "video_src_ports": set(),
        "audio_src_ports": set(),
        "rtp_versions": set(),
        "short": 0,
        "pings": 0,
        "flows_sent": 0,
    }
    frames = set()
    t0 = time.monotonic()
    last_ping = first_rx = last_rx = None
    counter = 0
    while True:
        now = time.monotonic()
        if now - t0 > timeout or (last_rx is not None and now - last_rx > quiet):
            break
        if last_ping is None or now - last_ping >= 0.1:
            counter += 1
            for s, port in socks.values():
                try:
                    s.sendto(payload + counter.to_bytes(4, "big"), (guest, port))
                except OSError:
                    pass  # not listening yet (ICMP unreachable on a connected path)
            seen["pings"] += 1
            last_ping = now
        ready, _, _ = select.select([s for s, _ in socks.values()], [], [], 0.02)
        for name, (s, _) in socks.items():
            if s not in ready:
                continue
            while True:
                try:
                    data, src = s.recvfrom(4096)
                except BlockingIOError:
                    break
                last_rx = time.monotonic()
                if first_rx is None:
                    first_rx = last_rx
                seen[name + "_src_ports"].add(src[1])
                if len(data) < 24:
                    seen["short"] += 1
                    continue
                seen["rtp_versions"].add(data[0] >> 6)
                if name == "video":
                    if seen["video_packets"] == 0:
                        for i in range(flows):
                            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as f:
                                f.sendto(b"flow %d" % i, (guest, flow_port))
                        seen["flows_sent"] = flows
                    seen["video_packets"] += 1
                    seen["video_bytes"] += len(data)
                    frames.add(int.from_bytes(data[20:24], "little"))
                else:
                    seen["audio_packets"] += 1
    out = {k: sorted(v) if isinstance(v, set) else v for k, v in seen.items()}
    idx = sorted(frames)
    out["frames"] = len(idx)
    out["first_frame"] = idx[0] if idx else None
    out["last_frame"] = idx[-1] if idx else None
    out["frame_gaps"] = [[a, b] for a, b in zip(idx, idx[1:]) if b != a + 1][:20]
    out["stream_s"] = round(last_rx - first_rx, 3) if first_rx is not None else 0.0
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
