"""The driver's command line: one subcommand per client case, each in its own module.

Contract: `main()` parses `SUBCOMMAND [OPTIONS]` and runs the subcommand under out.run (JSON
lines on stdout, fatal -> exit 2). A subcommand's module is imported only when it runs, so
`check` needs PyAV but not the Moonlight core. Subcommands (their steps: the modules' headers):
  pair      flows.pair        pair the identity in --config with --pin (test or --pin-cmd)
  applist   flows.applist     HTTP /serverinfo, HTTPS /applist
  launch    session.py        /launch, a refused second /launch, /resume, /cancel; no stream
  session   session.py        a short stream: IDR, input, frames for --frame-wait s, /cancel
  stream    stream.py         the e2e stream: decoded video, audio, input, stats, /cancel
  bench     bench.py          strahl-bench gamestream's measured window
  check     video.py          decode a video file (and read its frame numbers)
  control   control.py        RTSP + ENet control stream against a loopback host (strahl-enet)
  rtsp      rtsp.py           RTSP handshake against examples/loopback_rtsp_host (strahl-rtsp)
"""

import argparse
import importlib

from .core import ENCRYPTION_FLAGS
from .codecs import CODECS
from .out import run


def host_options():
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True, help="HTTP (base) port")
    p.add_argument("--config", required=True, help="client identity directory")
    p.add_argument("--pin", default="0000")
    p.add_argument("--client-encryption", default="all", choices=sorted(ENCRYPTION_FLAGS),
                   help="the core's encryptionFlags: all (the package's fixed ENCFLG_ALL), or "
                        "audio/none, as a client that does not encrypt video")
    return p


def video_options():
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--app", default="Desktop")
    p.add_argument("--width", type=int, default=1280)
    p.add_argument("--height", type=int, default=720)
    p.add_argument("--fps", type=int, default=60)
    p.add_argument("--bitrate", type=int, default=20000, help="kbit/s")
    p.add_argument("--codec", default="h264", choices=sorted(CODECS),
                   help="the formats the client supports (codecs.py); the host picks")
    return p


def parser():
    ap = argparse.ArgumentParser(prog="driver.py")
    sub = ap.add_subparsers(dest="command", required=True)
    host, video = host_options(), video_options()

    def command(name, target, *parents):
        p = sub.add_parser(name, parents=list(parents))
        p.set_defaults(target=target)
        return p

    p = command("pair", "flows:pair", host)
    p.add_argument("--pin-cmd", default="",
                   help="JSON list: the command that submits the PIN (the PIN is appended)")
    command("applist", "flows:applist_cmd", host)
    command("launch", "session:launch_cmd", host, video)
    p = command("session", "session:session_cmd", host, video)
    p.add_argument("--frame-wait", type=float, default=4.0,
                   help="seconds of frame pulling before /cancel (short of the client's own "
                        "~10 s no-video timeout, so the termination seen is the host's)")
    p.add_argument("--touch-pen", action="store_true",
                   help="also send a touch tap and a pen stroke (session.TOUCH_PEN)")
    p = command("stream", "stream:stream_cmd", host, video)
    p.add_argument("--frames", type=int, default=300)
    p.add_argument("--no-decode", dest="decode", action="store_false")
    p.add_argument("--audio-seconds", type=float, default=0.0)
    p.add_argument("--input", action="store_true")
    p.add_argument("--input-pad", action="store_true",
                   help="also a gamepad: controller arrival, then button/stick/trigger states "
                        "(stream.PAD)")
    p.add_argument("--ready-dir", default="",
                   help="before --input wait for DIR/input.ready, and after --input-pad's "
                        "arrival for DIR/pad.ready (a reader of the devices has them open; "
                        "bounded by --timeout)")
    p.add_argument("--busy-launch", action="store_true")
    p.add_argument("--cancel", action="store_true",
                   help="/cancel while streaming and wait for the host to end the stream")
    p.add_argument("--end-wait", type=float, default=10.0)
    p.add_argument("--timeout", type=float, default=60.0, help="bound of the stream phase")
    p.add_argument("--until-file", default="",
                   help="after --frames, keep pulling until this file exists (bounded by "
                        "--timeout)")
    p.add_argument("--frame-times", action="store_true",
                   help="list every frame's arrival time (monotonic) in the video step")
    p.add_argument("--pixel-numbers", action="store_true",
                   help="list every decoded picture's frame number (null: unreadable), in "
                        "decode order, in the video step")
    p = command("bench", "bench:bench_cmd", host, video)
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--dp-pid", type=int, default=0)
    p = command("check", "video:check_cmd")
    p.add_argument("--file", required=True)
    p.add_argument("--frame-numbers", action="store_true",
                   help="read every picture's frame number; exit 1 unless consecutive")
    p.add_argument("--decoder", default="h264",
                   help="PyAV decoder: h264, hevc, libdav1d (AV1)")
    p = command("control", "control:control_cmd")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True, help="RTSP port")
    p.add_argument("--rikey", required=True, help="AES key, hex")
    p.add_argument("action", nargs="?", default="hold",
                   choices=["hold", "terminate", "input", "rumble"])
    p = command("rtsp", "rtsp:rtsp_cmd")
    p.add_argument("--host-binary", required=True)
    p.add_argument("--case", required=True, choices=["h264_hq", "hevc_lq", "av1_51"])
    p.add_argument("--sdp-out", default="")
    p.add_argument("--request-dir", default="")
    return ap


def main():
    a = parser().parse_args()
    module, func = a.target.split(":")
    run(getattr(importlib.import_module(f".{module}", __package__), func), a)
