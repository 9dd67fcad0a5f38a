#!/usr/bin/env bash
# What `make run` runs: both processes on the embedded default config, supervised together.
#
# Contract:
# - the data plane starts first and opens the IPC socket; the control plane connects to it
#   (and reconnects by itself whenever the data plane comes back);
# - once connected, one block tells the operator where the status page is and how to pair;
# - a process that dies (crash, kill -9, non-zero exit) is restarted after a back-off that
#   doubles from STRAHL_BACKOFF_START_MS to STRAHL_BACKOFF_MAX_MS; the other process keeps running (the control plane reports the lost data plane and ends its
#   sessions; the data plane stops emitting when the control plane goes away);
# - a process that dies STRAHL_RESTART_MAX times within STRAHL_RESTART_WINDOW_S seconds, or
#   exits with status 2 (bad arguments or configuration: a restart cannot fix it), is not
#   restarted again: the script says so, stops the other process and exits 1;
# - Ctrl-C / SIGTERM stops both (SIGTERM, then SIGKILL after STRAHL_STOP_TIMEOUT_S) and exits 0;
#   a process that exits 0 by itself was asked to stop (a signal): the other is stopped too, exit 0.
# Arguments are passed to both binaries (both accept --config FILE and --socket PATH);
# $STRAHL_CONTROL_ARGS adds options for `strahl-control serve` only (e.g. --no-mdns).
# The appliance uses the systemd units in appliance/ instead (same policy, Restart=).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

BIN=${STRAHL_BIN_DIR:-target/release}
export RUST_LOG=${RUST_LOG:-info}
# Restart policy; the same numbers as the units' StartLimitBurst=/StartLimitIntervalSec=.
RESTART_MAX=${STRAHL_RESTART_MAX:-5}
RESTART_WINDOW_S=${STRAHL_RESTART_WINDOW_S:-60}
BACKOFF_START_MS=${STRAHL_BACKOFF_START_MS:-500}
BACKOFF_MAX_MS=${STRAHL_BACKOFF_MAX_MS:-8000}
# Both processes stop within ~2 s on SIGTERM (the control plane waits ≤ 2 s for session stops).
STOP_TIMEOUT_S=${STRAHL_STOP_TIMEOUT_S:-10}
read -r -a CONTROL_EXTRA <<<"${STRAHL_CONTROL_ARGS:-}"
ARGS=("$@")

for b in strahl-dataplane strahl-control; do
  [ -x "$BIN/$b" ] || { echo "run: $BIN/$b missing (make build)" >&2; exit 1; }
done

LOG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/strahl-run.XXXXXX")
say() { echo "run: $*" >&2; }

# Nothing leaves the machine until a client connects. The one packet the kernel would send by
# itself is an IGMP membership report when the mDNS responder joins 224.0.0.251; the appliance's
# kernel-config/sysctl.d turns those off for link-local groups, and so does this script in the
# network namespace it runs in, when it may (root). Without root the report still goes out.
IGMP_LL=/proc/sys/net/ipv4/igmp_link_local_mcast_reports
if [ -w "$IGMP_LL" ] && [ "$(cat "$IGMP_LL" 2>/dev/null)" != 0 ]; then
  if (printf '0\n' >"$IGMP_LL") 2>/dev/null; then
    say "set net.ipv4.igmp_link_local_mcast_reports=0 (as the appliance's sysctl.d does): the mDNS join sends no IGMP report"
  fi
fi

# Per process (index 0 = data plane, 1 = control plane): pid, crash times, current back-off.
NAMES=(dataplane control)
PIDS=(0 0)
# shellcheck disable=SC2034 # read and written through the nameref in crash_count
CRASHES_0=()
# shellcheck disable=SC2034
CRASHES_1=()
BACKOFF=("$BACKOFF_START_MS" "$BACKOFF_START_MS")
STOPPING=0

# Copies a process's log to the terminal and its file. Ctrl-C reaches the whole process group:
# the copier ignores it and ends at EOF, so the processes' last lines (their clean stop) survive.
log_to() {
  trap '' INT TERM
  exec tee -a "$1" >&2
}
start_dataplane() {
  "$BIN/strahl-dataplane" "${ARGS[@]}" 2> >(log_to "$LOG_DIR/dataplane.log") &
  PIDS[0]=$!
  say "started dataplane (pid ${PIDS[0]})"
}
start_control() {
  "$BIN/strahl-control" serve "${ARGS[@]}" "${CONTROL_EXTRA[@]}" \
    2> >(log_to "$LOG_DIR/control.log") &
  PIDS[1]=$!
  say "started control (pid ${PIDS[1]})"
}
start_one() { if [ "$1" -eq 0 ]; then start_dataplane; else start_control; fi; }

stop_all() {
  STOPPING=1
  local p alive
  for p in "${PIDS[1]}" "${PIDS[0]}"; do
    [ "$p" -gt 0 ] && kill -TERM "$p" 2>/dev/null
  done
  for _ in $(seq 1 $((STOP_TIMEOUT_S * 10))); do
    alive=0
    for p in "${PIDS[@]}"; do
      [ "$p" -gt 0 ] && kill -0 "$p" 2>/dev/null && alive=1
    done
    [ "$alive" -eq 0 ] && break
    sleep 0.1
  done
  for p in "${PIDS[@]}"; do
    if [ "$p" -gt 0 ] && kill -0 "$p" 2>/dev/null; then
      say "pid $p ignored SIGTERM for ${STOP_TIMEOUT_S} s: SIGKILL"
      kill -KILL "$p" 2>/dev/null
    fi
  done
  wait 2>/dev/null
}
trap 'say "stop requested: stopping both processes"; stop_all; say "stopped"; exit 0' INT TERM

# The status page's port: from --config FILE when given, else the embedded default.
status_port() {
  local cfg="" prev=""
  for a in "${ARGS[@]}"; do
    [ "$prev" = "--config" ] && cfg=$a
    case $a in --config=*) cfg=${a#--config=} ;; esac
    prev=$a
  done
  local port=""
  [ -n "$cfg" ] && port=$(sed -n 's/^[[:space:]]*status_port[[:space:]]*=[[:space:]]*\([0-9]\+\).*/\1/p' "$cfg" | head -n1)
  echo "${port:-47990}"
}

# The addresses the control plane listens on: [network] addresses from --config when given
# (one quoted address per entry), else every global address of this machine.
listen_addrs() {
  local cfg="" prev="" a
  for a in "${ARGS[@]}"; do
    [ "$prev" = "--config" ] && cfg=$a
    case $a in --config=*) cfg=${a#--config=} ;; esac
    prev=$a
  done
  if [ -n "$cfg" ]; then
    a=$(sed -n 's/^[[:space:]]*addresses[[:space:]]*=[[:space:]]*\[\(.*\)\].*/\1/p' "$cfg" | head -n1 | tr -d '" ' | tr ',' ' ')
    [ -n "$a" ] && { echo "$a"; return; }
  fi
  ip -o addr show scope global 2>/dev/null | awk '{print $4}' | cut -d/ -f1
}

banner() {
  local port addrs a
  port=$(status_port)
  addrs=$(listen_addrs)
  echo
  echo "strahl is running: data plane pid ${PIDS[0]}, control plane pid ${PIDS[1]}, connected over IPC."
  echo "  status page:"
  for a in ${addrs:-127.0.0.1}; do
    case $a in *:*) echo "    http://[$a]:$port/" ;; *) echo "    http://$a:$port/" ;; esac
  done
  case " $addrs " in *" 127.0.0.1 "*) ;; *) echo "    http://127.0.0.1:$port/ (this machine)" ;; esac
  echo "  to pair: in Moonlight add this host by one of the addresses above; when Moonlight"
  echo "    shows a PIN, enter it on the status page or run: strahl-control pin <PIN>"
  echo "  logs: $LOG_DIR   stop: Ctrl-C"
  echo
}

# Records a crash of process i at time now; sets N to the number within the window.
crash_count() {
  local i=$1 now=$2 t kept=()
  local -n times="CRASHES_$i"
  times+=("$now")
  for t in "${times[@]}"; do
    [ $((now - t)) -lt "$RESTART_WINDOW_S" ] && kept+=("$t")
  done
  times=("${kept[@]}")
  N=${#times[@]}
}

start_dataplane
start_control

# Show the operator where things stand once the control plane reports the connection (bounded:
# the supervision loop below runs either way).
for _ in $(seq 1 100); do
  if grep -q "connected to dataplane" "$LOG_DIR/control.log" 2>/dev/null; then
    banner
    break
  fi
  if ! kill -0 "${PIDS[0]}" 2>/dev/null || ! kill -0 "${PIDS[1]}" 2>/dev/null; then break; fi
  sleep 0.1
done

# Supervise. `wait -n -p` names the pid that ended; a trapped signal interrupts the wait.
while [ "$STOPPING" -eq 0 ]; do
  ended=""
  wait -n -p ended "${PIDS[0]}" "${PIDS[1]}"
  status=$?
  [ -z "$ended" ] && continue # interrupted (a signal whose trap returned) or nothing to wait for
  for i in 0 1; do
    [ "${PIDS[i]}" = "$ended" ] || continue
    name=${NAMES[i]}
    if [ "$status" -gt 128 ]; then why="killed by signal $((status - 128))"; else why="exit status $status"; fi
    if [ "$status" -eq 0 ]; then
      # Both binaries exit 0 only when asked to stop (SIGTERM/SIGINT, e.g. Ctrl-C reaching the
      # whole process group, or an operator's kill): like the units' Restart=on-failure, that is
      # not a crash. Stop the other one too.
      say "$name stopped cleanly (asked to stop): stopping the other process"
      PIDS[i]=0
      stop_all
      say "stopped"
      exit 0
    fi
    if [ "$status" -eq 2 ]; then
      say "$name stopped with a configuration or argument error ($why): not restarting; see $LOG_DIR/$name.log"
      PIDS[i]=0
      stop_all
      exit 1
    fi
    crash_count "$i" "$SECONDS"
    n=$N
    if [ "$n" -ge "$RESTART_MAX" ]; then
      say "$name died $n times within ${RESTART_WINDOW_S} s (last: $why): giving up; see $LOG_DIR/$name.log"
      PIDS[i]=0
      stop_all
      exit 1
    fi
    # A first crash in the window starts the back-off afresh.
    [ "$n" -eq 1 ] && BACKOFF[i]=$BACKOFF_START_MS
    delay=${BACKOFF[i]}
    say "$name died ($why); restarting in ${delay} ms (crash $n of $RESTART_MAX allowed in ${RESTART_WINDOW_S} s)"
    sleep "$(awk "BEGIN{print $delay/1000}")" &
    wait $! # interruptible by Ctrl-C
    BACKOFF[i]=$((delay * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : delay * 2))
    [ "$STOPPING" -eq 0 ] && start_one "$i"
  done
done
