#!/usr/bin/env python3
"""strahl's one Moonlight driver: the real Moonlight core (PyPI moonlight-python 0.3.0, GPL, a
test tool run as its own process, never linked) against strahl, for every test, example and
bench that needs a real client.

Contract: `python driver.py SUBCOMMAND [OPTIONS]`; one client case per process (common-c is
process-global). Every subcommand prints one JSON object per stdout line ({"step": NAME, ...})
and its diagnostics on stderr; an unexpected exception ends in a {"step": "fatal"} line and
exit status 2. The subcommands and their steps are listed in strahl_moonlight/cli.py.
"""

from strahl_moonlight.cli import main

if __name__ == "__main__":
    main()
