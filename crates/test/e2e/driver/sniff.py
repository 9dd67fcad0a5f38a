#!/usr/bin/env python3
"""Packet sniffer for strahl's namespace tests (crates/test/e2e): every frame that *arrives* on one
interface, one JSON object per line on stdout.

Run it inside the namespace whose interface it watches (`ip netns exec NS python sniff.py
--iface IF`). It opens an AF_PACKET socket (ETH_P_ALL) bound to IF — every frame the kernel
receives on that interface, whatever its protocol — and prints:
  {"step": "ready", ...}                once the socket is bound (start what you test after this);
  {"step": "packet", ...}               per received frame: time.monotonic(), the packet type
                                        (host/broadcast/multicast/otherhost), ethertype, and a
                                        decoded summary (ARP op and addresses; IPv4 addresses,
                                        protocol, UDP/TCP ports, the first payload bytes; IPv6
                                        next header; IGMP type and groups);
  {"step": "done", "packets": N}        when --seconds ran out or on SIGTERM.
With --video-port P, IPv4/UDP datagrams from source port P (strahl's video stream) are not
reported one by one but counted, and every second (and before "done") it prints
  {"step": "video", "packets": N, "clear_nal": M, "examples": [...], "t": ...}
where M counts the datagrams whose payload past its first 32 bytes holds a clear H.264 NAL
start: the 4-byte start code 00 00 00 01 followed by a NAL header with the forbidden bit clear
and type 1, 5, 7 or 8 (slice, IDR slice, SPS, PPS). The first 32 bytes are headers either way
(clear: RTP + NV_VIDEO_PACKET; encrypted: IV, frame number, GCM tag — whose zero bytes followed
by a random tag would match now and then); every clear GameStream frame's first datagram has a
start code after them, while in AES-GCM ciphertext the 5-byte pattern appears with probability
2^-36 per position (about 1e-4 over 10^7 bytes).
Frames this namespace sends itself (PACKET_OUTGOING) are not reported. Every wait is bounded
(--seconds; the receive timeout is 0.2 s).
"""

import argparse
import json
import signal
import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
PKTTYPES = {0: "host", 1: "broadcast", 2: "multicast", 3: "otherhost"}
stop = False


def emit(**kw):
    print(json.dumps(kw), flush=True)


def on_term(_sig, _frame):
    global stop
    stop = True


def describe(frame):
    """A JSON-able summary of an Ethernet frame."""
    if len(frame) < 14:
        return {"short": len(frame)}
    d = {"dst_mac": frame[0:6].hex(":"), "src_mac": frame[6:12].hex(":")}
    ethertype = struct.unpack("!H", frame[12:14])[0]
    d["ethertype"] = f"0x{ethertype:04x}"
    p = frame[14:]
    if ethertype == 0x0806 and len(p) >= 28:
        d["arp_op"] = struct.unpack("!H", p[6:8])[0]
        d["arp_sender"] = socket.inet_ntoa(p[14:18])
        d["arp_target"] = socket.inet_ntoa(p[24:28])
    elif ethertype == 0x0800 and len(p) >= 20:
        ihl = (p[0] & 0x0F) * 4
        proto = p[9]
        d.update(ip_src=socket.inet_ntoa(p[12:16]), ip_dst=socket.inet_ntoa(p[16:20]),
                 ip_proto=proto, ip_len=struct.unpack("!H", p[2:4])[0])
        l4 = p[ihl:]
        if proto in (6, 17) and len(l4) >= 4:
            d["sport"], d["dport"] = struct.unpack("!HH", l4[0:4])
            if proto == 17:
                d["payload_head"] = l4[8:40].decode("latin-1")
        elif proto == 2 and l4:
            d["igmp_type"] = f"0x{l4[0]:02x}"
            if l4[0] == 0x22 and len(l4) >= 8:  # IGMPv3 membership report: its group records
                groups, off = [], 8
                for _ in range(struct.unpack("!H", l4[6:8])[0]):
                    if len(l4) < off + 8:
                        break
                    aux, nsrc = l4[off + 1], struct.unpack("!H", l4[off + 2:off + 4])[0]
                    groups.append(socket.inet_ntoa(l4[off + 4:off + 8]))
                    off += 8 + 4 * nsrc + 4 * aux
                d["igmp_groups"] = groups
            elif len(l4) >= 8:  # IGMPv1/v2: one group
                d["igmp_groups"] = [socket.inet_ntoa(l4[4:8])]
    elif ethertype == 0x86DD and len(p) >= 40:
        d["ip6_next_header"] = p[6]
        d["ip6_dst"] = socket.inet_ntop(socket.AF_INET6, p[24:40])
    return d


# Header bytes of every video datagram, clear or encrypted (see the module header).
VIDEO_HEADER = 32


def clear_nal_at(payload):
    """The offset of a clear H.264 NAL start in `payload` past its headers, or -1."""
    i = payload.find(b"\x00\x00\x00\x01", VIDEO_HEADER)
    while i >= 0 and i + 4 < len(payload):
        nal = payload[i + 4]
        if nal & 0x80 == 0 and nal & 0x1F in (1, 5, 7, 8):
            return i
        i = payload.find(b"\x00\x00\x00\x01", i + 1)
    return -1


def video_payload(frame, port):
    """The UDP payload of an Ethernet/IPv4/UDP frame from source port `port`, else None."""
    if len(frame) < 14 + 20 + 8 or frame[12:14] != b"\x08\x00":
        return None
    p = frame[14:]
    ihl = (p[0] & 0x0F) * 4
    if p[9] != 17 or len(p) < ihl + 8:
        return None
    if struct.unpack("!H", p[ihl:ihl + 2])[0] != port:
        return None
    return p[ihl + 8:]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--iface", required=True)
    ap.add_argument("--seconds", type=float, default=120.0, help="bound of the capture")
    ap.add_argument("--video-port", type=int, default=0,
                    help="count (not report) the UDP datagrams from this source port")
    a = ap.parse_args()
    signal.signal(signal.SIGTERM, on_term)
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.bind((a.iface, ETH_P_ALL))
    s.settimeout(0.2)
    emit(step="ready", iface=a.iface, t=time.monotonic())
    deadline = time.monotonic() + a.seconds
    n = 0
    video = {"packets": 0, "clear_nal": 0}
    examples = []
    next_video = time.monotonic() + 1.0
    while not stop and time.monotonic() < deadline:
        if a.video_port and time.monotonic() >= next_video:
            emit(step="video", t=time.monotonic(), examples=examples, **video)
            next_video = time.monotonic() + 1.0
        try:
            frame, addr = s.recvfrom(65536)
        except socket.timeout:
            continue
        except InterruptedError:
            continue
        pkttype = addr[2]
        if pkttype == PACKET_OUTGOING:
            continue
        n += 1
        if a.video_port:
            payload = video_payload(frame, a.video_port)
            if payload is not None:
                video["packets"] += 1
                at = clear_nal_at(payload)
                if at >= 0:
                    video["clear_nal"] += 1
                    if len(examples) < 5:  # for the failure message
                        examples.append({"len": len(payload), "at": at,
                                         "head": payload[:48].hex(),
                                         "around": payload[max(0, at - 8):at + 8].hex()})
                continue
        emit(step="packet", t=time.monotonic(), pkttype=PKTTYPES.get(pkttype, str(pkttype)),
             len=len(frame), **describe(frame))
    if a.video_port:
        emit(step="video", t=time.monotonic(), examples=examples, **video)
    emit(step="done", packets=n)


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # reported on stdout so the Rust side shows it with the lines
        emit(step="fatal", error=type(e).__name__, message=str(e))
        sys.exit(2)
