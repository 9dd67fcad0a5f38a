#!/usr/bin/env python3
"""Decode DNS messages with python-zeroconf (a dependency of moonlight-python; an mDNS
implementation independent of ours), for tests/mdns.rs. Reads hex messages, one per line, on
stdin; prints one JSON object per message on stdout."""

import json
import socket
import sys

from zeroconf import DNSAddress, DNSIncoming, DNSPointer, DNSService, DNSText


def record(r):
    out = {"name": r.name, "type": r.type, "class": r.class_, "unique": r.unique, "ttl": r.ttl}
    if isinstance(r, DNSPointer):
        out["alias"] = r.alias
    elif isinstance(r, DNSService):
        out.update(server=r.server, port=r.port, priority=r.priority, weight=r.weight)
    elif isinstance(r, DNSText):
        out["text"] = r.text.hex()
    elif isinstance(r, DNSAddress):
        family = socket.AF_INET6 if len(r.address) == 16 else socket.AF_INET
        out["address"] = socket.inet_ntop(family, r.address)
    return out


for line in sys.stdin:
    line = line.strip()
    if not line:
        continue
    m = DNSIncoming(bytes.fromhex(line))
    print(json.dumps({
        "valid": m.valid,
        "id": m.id,
        "flags": m.flags,
        "is_response": m.is_response(),
        "questions": [{"name": q.name, "type": q.type} for q in m.questions],
        "answers": m.num_answers,
        "additionals": m.num_additionals,
        "records": [record(r) for r in m.answers()],
    }), flush=True)
