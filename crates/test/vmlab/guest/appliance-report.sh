#!/usr/bin/env bash
# Runs in the booted appliance guest (systemd PID 1) as the VM lab's job unit: waits (bounded)
# for strahl to come up, writes what the host-side test checks into DIR (shared with the host)
# as KEY=VALUE lines (report.txt) plus the console snippet and the units' journal, copies the admin token for the host's `strahl-control pin`, then waits (bounded) for
# the host to write DIR/host-done before reporting the journal again and powering off.
# input-reader.py (beside this script) reads strahl's /dev/input devices as a game would while
# the host streams, into DIR/input-events.jsonl; it is started before report.txt is written (so
# it is reading before the host starts) and waited for (bounded) at the end.
# Usage: appliance-report.sh DIR
set -u
dir=$1
mkdir -p "$dir/state"

up() {
  systemctl -q is-active strahl-dataplane.service strahl-control.service &&
    [ -s /run/strahl/console.issue ] && [ -S /run/strahl/dataplane.sock ] &&
    journalctl -b -u strahl-dataplane -o cat | grep -q '^.*privileges: '
}
for _ in $(seq 1 180); do up && break; sleep 1; done

# What a peer of the KMS capture helper gets when it connects as user $1: the number of
# messages (at most one: a new peer gets the current picture at once) and of fds passed.
kms_peer() {
  runuser -u "$1" -- timeout 30 /usr/bin/python3 -c '
import socket
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.connect("/run/strahl/kms.sock")
s.settimeout(20)
msgs = fds = 0
try:
    m, anc, _, _ = s.recvmsg(65536, socket.CMSG_SPACE(4 * 8))
    if m or anc:
        msgs = 1
    fds = sum(len(d) // 4 for lvl, typ, d in anc if typ == socket.SCM_RIGHTS)
except OSError as e:
    print("error", e)
print("msgs=%d fds=%d" % (msgs, fds))
' 2>&1 | tail -1
}

caps() { # unit prefix
  local pid
  pid=$(systemctl show -P MainPID "$1")
  echo "$2.pid=$pid"
  echo "$2.active=$(systemctl is-active "$1")"
  echo "$2.user=$(ps -o user= -p "$pid")"
  echo "$2.groups=$(ps -o supgrp= -p "$pid" | tr -d ' ')"
  local f
  for f in CapEff CapPrm CapBnd CapAmb CapInh; do
    # Every thread's value (capabilities are per thread); one line when all agree.
    echo "$2.$f=$(awk -v k="$f:" '$1==k {print $2}' /proc/"$pid"/task/*/status | sort -u | paste -sd, -)"
  done
  echo "$2.threads=$(find /proc/"$pid"/task -mindepth 1 -maxdepth 1 | wc -l)"
}

{
  echo "pid1=$(cat /proc/1/comm)"
  echo "kernel=$(uname -r)"
  echo "system_state=$(systemctl is-system-running)"
  echo "failed_units=$(systemctl --failed --plain --no-legend | awk '{print $1}' | paste -sd, -)"
  echo "target=$(systemctl is-active strahl.target)"
  echo "enabled=$(systemctl is-enabled strahl.target strahl-dataplane.service strahl-control.service | paste -sd, -)"
  caps strahl-dataplane.service dataplane
  caps strahl-control.service control
  caps strahl-kms-helper.service kms
  echo "kms.peer.strahl-control=$(kms_peer strahl-control)"
  echo "kms.peer.strahl-dataplane=$(kms_peer strahl-dataplane)"
  for f in /usr/lib/sysctl.d/60-strahl.conf /usr/lib/sysctl.d/61-strahl-busy-poll.conf; do
    sed -n 's/^-\{0,1\}\([a-z0-9_.]*\) *= *.*/\1/p' "$f" | while read -r k; do
      echo "sysctl.$k=$(sysctl -n "$k" 2>/dev/null || echo MISSING)"
    done
  done
  echo "cmdline=$(cat /proc/cmdline)"
  echo "cpu.isolated=$(cat /sys/devices/system/cpu/isolated)"
  echo "cpu.nohz_full=$(cat /sys/devices/system/cpu/nohz_full 2>/dev/null)"
  echo "cpu.online=$(cat /sys/devices/system/cpu/online)"
  echo "hugepages=$(cat /proc/sys/vm/nr_hugepages)"
  echo "module.uinput=$(grep -c '^uinput ' /proc/modules)"
  for p in /dev/uinput /var/lib/strahl /run/strahl /run/strahl/dataplane.sock /run/strahl/control.sock \
    /run/strahl/kms.sock /run/strahl/console.issue /etc/strahl/strahl.toml; do
    echo "path.$p=$(stat -c '%U:%G %a %F' "$p" 2>&1)"
  done
  echo "path./etc/issue.d/strahl.issue=$(readlink /etc/issue.d/strahl.issue)"
  echo "state_files=$(find /var/lib/strahl -maxdepth 1 -type f -printf '%f ' | tr ' ' '\n' | sort | paste -sd, -)"
} >"$dir/report.tmp" 2>&1
cp /run/strahl/console.issue "$dir/console.issue" 2>/dev/null
journalctl -b -u strahl-nic-tune -u strahl-kms-helper -u strahl-dataplane -u strahl-control -o cat \
  --no-pager >"$dir/journal.txt" 2>&1
cp /var/lib/strahl/status-token "$dir/state/" 2>/dev/null
# Bounded by its own limit and by timeout; it ends by itself once the devices are gone after
# the host's stream ended, or at host-done.
timeout 1300 /usr/bin/python3 "$(dirname "$0")/input-reader.py" "$dir" \
  2>"$dir/input-reader.err" &
reader=$!
mv "$dir/report.tmp" "$dir/report.txt"

for _ in $(seq 1 600); do [ -e "$dir/host-done" ] && break; sleep 1; done
for _ in $(seq 1 30); do kill -0 "$reader" 2>/dev/null || break; sleep 1; done
kill "$reader" 2>/dev/null
wait "$reader"
echo "input-reader exit $?" >>"$dir/input-reader.err"
journalctl -b -u strahl-dataplane -u strahl-control -o cat --no-pager >"$dir/journal-end.txt" 2>&1
cp /run/strahl/console.issue "$dir/console-end.issue" 2>/dev/null
echo "appliance-report: done"
