#!/usr/bin/env python3
"""Reads strahl's input devices in the appliance guest, as a game would (appliance-report.sh
starts it as root before the host side streams).

Usage: input-reader.py DIR

Watches /sys/class/input/event* for devices whose name starts with "strahl", opens each node
as it appears and records, as JSON lines in DIR/input-events.jsonl (times are the guest's
CLOCK_MONOTONIC in seconds; only differences mean anything):
  {"ev": "start", "present": [names of strahl devices already there]}
  {"ev": "appeared", "name", "node", "t"}
  {"ev": "event", "name", "node", "t", "type", "code", "value"}   every event read (SYN too)
  {"ev": "holders", "t", "devices": [names present], "holders": [{"pid", "comm", "user",
      "cap_eff", "fds"}], "stat": {name: "user:group mode" of its node}}   the processes
      holding /dev/uinput open, once a gamepad is open
  {"ev": "gone", "name", "node", "t"}   the node left sysfs (or its reads said ENODEV)
  {"ev": "ended_seen", "t"}   DIR/stream-ended appeared (the host's stream process ended)
  {"ev": "done", "t", "why", "left": [names still present]}
and writes DIR/input.ready once a keyboard+mouse device is open, DIR/pad.ready once a gamepad
is (the host's stream waits for them before sending: events before a reader opens are lost).
Ends when every strahl device is gone after stream-ended, GONE_WAIT_S after stream-ended
regardless, when DIR/host-done appears, or after LIMIT_S. evdev's struct input_event on
64-bit: struct timeval (16 bytes), type u16, code u16, value i32.
"""

import errno
import grp
import json
import os
import pwd
import select
import struct
import sys
import time

EVENT = struct.Struct("@qqHHi")
PREFIX = "strahl"
KBD = "strahl keyboard and mouse"
PAD = "strahl gamepad"
POLL_MS = 20
GONE_WAIT_S = 60.0
LIMIT_S = 1200.0
OPEN_RETRY_S = 5.0


def now():
    return time.monotonic()


def node_stat(node):
    """'user:group mode' of /dev/input/NODE (what udev's rules gave it by now)."""
    try:
        st = os.stat(f"/dev/input/{node}")
    except OSError as e:
        return str(e)
    try:
        owner = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        owner = str(st.st_uid)
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    return f"{owner}:{group} {st.st_mode & 0o777:o}"


class Reader:
    def __init__(self, out_dir):
        self.dir = out_dir
        self.out = open(os.path.join(out_dir, "input-events.jsonl.tmp"), "w", buffering=1)
        self.open = {}  # node -> (fd, name)
        self.poll = select.poll()
        self.uinput_rdev = os.stat("/dev/uinput").st_rdev if os.path.exists("/dev/uinput") else None
        self.holders_done = False
        # Nodes whose reads said ENODEV while sysfs still listed them: not opened again until
        # sysfs drops them (a later device may reuse the name).
        self.dead = set()

    def rec(self, **kw):
        self.out.write(json.dumps(kw) + "\n")

    def strahl_nodes(self):
        """{node: name} of the strahl devices sysfs lists now."""
        found = {}
        try:
            nodes = os.listdir("/sys/class/input")
        except OSError:
            return found
        for n in nodes:
            if not n.startswith("event"):
                continue
            try:
                with open(f"/sys/class/input/{n}/device/name") as f:
                    name = f.read().strip()
            except OSError:
                continue
            if name.startswith(PREFIX):
                found[n] = name
        return found

    def open_node(self, node, name):
        path = f"/dev/input/{node}"
        t0 = now()
        while True:
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
                break
            except FileNotFoundError:
                # devtmpfs may make the node a moment after sysfs lists the device.
                if now() - t0 > OPEN_RETRY_S:
                    self.rec(ev="open_failed", name=name, node=node, t=now(), error="ENOENT")
                    self.dead.add(node)
                    return
                time.sleep(0.005)
            except OSError as e:
                # Removed between the sysfs scan and the open.
                self.rec(ev="open_failed", name=name, node=node, t=now(), error=str(e))
                self.dead.add(node)
                return
        self.open[node] = (fd, name)
        self.poll.register(fd, select.POLLIN)
        self.rec(ev="appeared", name=name, node=node, t=now())
        if name == KBD:
            self.touch("input.ready")
        if name == PAD:
            self.touch("pad.ready")
            if not self.holders_done:
                self.holders_done = True
                nodes = self.strahl_nodes()
                self.rec(ev="holders", t=now(), devices=sorted(nodes.values()),
                         holders=self.uinput_holders(),
                         stat={name: node_stat(node) for node, name in nodes.items()})

    def touch(self, name):
        with open(os.path.join(self.dir, name), "w"):
            pass

    def uinput_holders(self):
        """Every process with /dev/uinput open (matched by device number, so a private /dev of
        a sandboxed unit counts too) and how many such fds it holds."""
        out = []
        if self.uinput_rdev is None:
            return out
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            fds = 0
            try:
                for fd in os.listdir(f"/proc/{pid}/fd"):
                    try:
                        st = os.stat(f"/proc/{pid}/fd/{fd}")
                    except OSError:
                        continue
                    if st.st_rdev == self.uinput_rdev and (st.st_mode & 0o170000) == 0o020000:
                        fds += 1
                if not fds:
                    continue
                with open(f"/proc/{pid}/comm") as f:
                    comm = f.read().strip()
                status = dict(l.split(":", 1) for l in open(f"/proc/{pid}/status") if ":" in l)
                uid = int(status["Uid"].split()[1])  # effective
                try:
                    user = pwd.getpwuid(uid).pw_name
                except KeyError:
                    user = str(uid)
                out.append({"pid": int(pid), "comm": comm, "user": user,
                            "cap_eff": status["CapEff"].strip(), "fds": fds})
            except OSError:
                continue
        return out

    def drain(self, node):
        """Reads what the node has; False once it says ENODEV (the device is gone)."""
        fd, name = self.open[node]
        while True:
            try:
                buf = os.read(fd, EVENT.size * 64)
            except BlockingIOError:
                return True
            except OSError as e:
                if e.errno == errno.ENODEV:
                    return False
                raise
            if not buf:
                return True
            t = now()
            for off in range(0, len(buf) - EVENT.size + 1, EVENT.size):
                _, _, ty, code, value = EVENT.unpack_from(buf, off)
                self.rec(ev="event", name=name, node=node, t=t, type=ty, code=code, value=value)

    def close(self, node):
        fd, name = self.open.pop(node)
        self.poll.unregister(fd)
        os.close(fd)
        self.rec(ev="gone", name=name, node=node, t=now())

    def run(self):
        t_start = now()
        self.rec(ev="start", t=t_start, present=sorted(self.strahl_nodes().values()))
        ended = None
        why = "limit"
        while now() - t_start < LIMIT_S:
            present = self.strahl_nodes()
            self.dead &= set(present)
            for node, name in present.items():
                if node not in self.open and node not in self.dead:
                    self.open_node(node, name)
            for fd_ev in self.poll.poll(POLL_MS):
                node = next(n for n, (fd, _) in self.open.items() if fd == fd_ev[0])
                if not self.drain(node):
                    self.close(node)
                    self.dead.add(node)
            for node in list(self.open):
                if node not in present:
                    # Removed from sysfs: whatever it still had is read first.
                    self.drain(node)
                    self.close(node)
            if ended is None and os.path.exists(os.path.join(self.dir, "stream-ended")):
                ended = now()
                self.rec(ev="ended_seen", t=ended)
            present = self.strahl_nodes()
            if ended is not None and not present and not self.open:
                why = "all gone"
                break
            if ended is not None and now() - ended > GONE_WAIT_S:
                why = "gone wait passed"
                break
            if os.path.exists(os.path.join(self.dir, "host-done")):
                why = "host done"
                break
        self.rec(ev="done", t=now(), why=why, left=sorted(self.strahl_nodes().values()))
        self.out.close()
        os.rename(os.path.join(self.dir, "input-events.jsonl.tmp"),
                  os.path.join(self.dir, "input-events.jsonl"))


if __name__ == "__main__":
    Reader(sys.argv[1]).run()
