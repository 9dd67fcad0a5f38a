#!/usr/bin/env bash
# What `make run` runs: both processes on the embedded default config, supervised together.
# - the data plane starts first and opens the IPC socket; the control plane connects to it;
# - Ctrl-C (or SIGTERM to this script) stops both cleanly;
# - if either process exits, the other is stopped too and the script exits with its status.
# The appliance itself uses systemd units instead of this script.
set -uo pipefail
cd "$(dirname "$0")/.."

BIN=${STRAHL_BIN_DIR:-target/release}
export RUST_LOG=${RUST_LOG:-info}
for b in strahl-dataplane strahl-control; do
  [ -x "$BIN/$b" ] || { echo "run: $BIN/$b missing (make build)" >&2; exit 1; }
done

LOG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/strahl-run.XXXXXX")
"$BIN/strahl-dataplane" "$@" 2> >(tee "$LOG_DIR/dataplane.log" >&2) &
DP=$!
"$BIN/strahl-control" serve "$@" 2> >(tee "$LOG_DIR/control.log" >&2) &
CP=$!

stop() {
  kill -TERM "$CP" "$DP" 2>/dev/null
  wait "$CP" "$DP" 2>/dev/null
}
trap 'stop; exit 0' INT TERM

# Show the operator where things stand once the control plane reports the connection.
for _ in $(seq 1 100); do
  if grep -q "connected to dataplane" "$LOG_DIR/control.log" 2>/dev/null; then
    echo
    echo "strahl is running: data plane pid $DP, control plane pid $CP — connected over IPC."
    echo "  $(grep -m1 'connected to dataplane' "$LOG_DIR/control.log" | sed 's/^.*connected/connected/')"
    echo "  logs: $LOG_DIR   stop: Ctrl-C"
    echo
    break
  fi
  kill -0 "$CP" 2>/dev/null && kill -0 "$DP" 2>/dev/null || break
  sleep 0.1
done

# Supervise: whichever exits first takes the other down.
wait -n "$DP" "$CP"
status=$?
echo "run: a process exited (status $status); stopping the other" >&2
stop
exit "$status"
