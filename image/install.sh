#!/usr/bin/env bash
# Installs strahl's files into a root file system, exactly as image/install.manifest lists them.
# The only way a strahl root is made: image/Containerfile runs it, and so does anything else that
# builds one (the booted-VM test), so what is tested is what ships.
set -euo pipefail

usage() {
  cat <<'USAGE'
usage: image/install.sh [options]

Installs the files of image/install.manifest into a root file system.

  --root DIR         root to install into (required; / inside an image build)
  --src DIR          repository checkout the sources are read from (default: this script's ..)
  --bin DIR          directory holding the release binaries for @bin/ sources
                     (default: SRC/target/release)
  --profiles LIST    comma-separated profiles: core, dataplane, headless
                     (default: core,dataplane,headless; core is always installed)
  --manifest FILE    manifest to read (default: SRC/image/install.manifest)
  --preset           afterwards, enable the installed units by the shipped presets
                     (systemctl --root=DIR preset; --global preset for user units), as
                     the image does
  --list             print "mode destination" for each selected file; install nothing
  -h, --help         this text
USAGE
}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=""
src=$(dirname "$here")
bin=""
profiles="core,dataplane,headless"
manifest=""
preset=0
list=0
while (($#)); do
  case $1 in
    --root) root=${2:?--root needs a directory}; shift 2 ;;
    --src) src=${2:?--src needs a directory}; shift 2 ;;
    --bin) bin=${2:?--bin needs a directory}; shift 2 ;;
    --profiles) profiles=${2:?--profiles needs a list}; shift 2 ;;
    --manifest) manifest=${2:?--manifest needs a file}; shift 2 ;;
    --preset) preset=1; shift ;;
    --list) list=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "install.sh: unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
bin=${bin:-$src/target/release}
manifest=${manifest:-$src/image/install.manifest}
[ -f "$manifest" ] || { echo "install.sh: no manifest at $manifest" >&2; exit 2; }
if [ "$list" -eq 0 ] && [ -z "$root" ]; then
  echo "install.sh: --root is required (see --help)" >&2
  exit 2
fi

selected=",core,$profiles,"
for p in ${profiles//,/ }; do
  case $p in core | dataplane | headless) ;; *) echo "install.sh: unknown profile: $p" >&2; exit 2 ;; esac
done

units=()
user_units=()
lineno=0
while read -r profile mode source dest extra || [ -n "${profile:-}" ]; do
  lineno=$((lineno + 1))
  case ${profile:-} in '' | '#'*) continue ;; esac
  if [ -z "${dest:-}" ] || [ -n "${extra:-}" ]; then
    echo "install.sh: $manifest:$lineno: expected 'profile mode source destination'" >&2
    exit 2
  fi
  case $selected in *",$profile,"*) ;; *) continue ;; esac
  if [ "$list" -eq 1 ]; then
    echo "$mode $dest"
    continue
  fi
  case $source in
    @bin/*) from=$bin/${source#@bin/} ;;
    *) from=$src/$source ;;
  esac
  [ -f "$from" ] || { echo "install.sh: $manifest:$lineno: missing source $from" >&2; exit 1; }
  install -D -m "$mode" "$from" "$root$dest"
  case $dest in
    /usr/lib/systemd/system/*.service | /usr/lib/systemd/system/*.target) units+=("${dest##*/}") ;;
    /usr/lib/systemd/user/*.service) user_units+=("${dest##*/}") ;;
  esac
done <"$manifest"

if [ "$preset" -eq 1 ] && ((${#units[@]})); then
  systemctl --root="$root" preset "${units[@]}"
fi
# User units: enabled for every user (links under /etc/systemd/user) by the user preset.
if [ "$preset" -eq 1 ] && ((${#user_units[@]})); then
  systemctl --root="$root" --global preset "${user_units[@]}"
fi
