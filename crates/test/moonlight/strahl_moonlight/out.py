"""Output every subcommand shares: one JSON object per stdout line, diagnostics on stderr.

Contract: `emit` writes and flushes one line (the Rust callers read steps as they arrive);
`err_obj` and `info_obj` are the one shape of an error and of a host's /serverinfo in every
step; `run` turns an unexpected exception into a {"step": "fatal"} line and exit status 2, and a
subcommand's non-zero return value into its exit status.
"""

import json
import sys
import traceback


def emit(**kw):
    print(json.dumps(kw), flush=True)


def log(msg):
    print(f"driver: {msg}", file=sys.stderr, flush=True)


def err_obj(e):
    return {
        "error": type(e).__name__,
        "message": str(e),
        "code": getattr(e, "status_code", None),
        "status_message": getattr(e, "status_message", None),
    }


def info_obj(s):
    return {
        "app_version": s.app_version,
        "gfe_version": s.gfe_version,
        "unique_id": s.unique_id,
        "https_port": s.https_port,
        "codec": s.server_codec_mode_support,
        "state": s.state,
        "current_game": s.current_game,
        "paired": s.paired,
        "hostname": s.hostname,
    }


def run(command, args):
    try:
        code = command(args)
    except Exception as e:
        emit(step="fatal", trace=traceback.format_exc(), **err_obj(e))
        sys.exit(2)
    sys.exit(code or 0)
