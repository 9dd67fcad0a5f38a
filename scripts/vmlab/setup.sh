#!/usr/bin/env bash
# Installs the VM lab (../shared/reference/vm-lab.md): QEMU from bookworm-backports, busybox and
# kmod, stock Debian guest kernels downloaded and extracted (never installed on the host), and one
# busybox initramfs per kernel. Called by scripts/setup.sh; idempotent and fast once done (the
# finished lab is recorded in $LAB/lab.env, which scripts/vmlab/run-guest and strahl-vmlab read).
#
# Layout of $LAB (default /var/cache/strahl-vmlab, outside the repository; STRAHL_VMLAB_DIR):
#   apt/            the private APT configuration, lists and downloads (/etc/apt and
#                   /var/lib/apt/lists are left as they are)
#   kernels/KVER/   a guest kernel's package contents (boot/vmlinuz-KVER, lib/modules/KVER)
#   initramfs-KVER.cpio.gz
#   lab.env         what was installed: QEMU, the default kernel, the zero-copy kernel
#
# The kernels: the newest linux-image of bookworm-backports (6.12: DRM, uinput, XDP, AF_XDP copy
# mode) is the default; the newest of trixie-backports (7.x: AF_XDP zero-copy on virtio-net) is
# added when its packages resolve (STRAHL_VMLAB_ZC_KERNEL=0 skips it). Versions are resolved at
# setup time and written to lab.env; `--refresh` resolves them again.
set -euo pipefail

LAB=${STRAHL_VMLAB_DIR:-/var/cache/strahl-vmlab}
refresh=0
[ "${1:-}" = "--refresh" ] && refresh=1
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

ready() {
  [ -f "$LAB/lab.env" ] || return 1
  # shellcheck disable=SC1091
  (. "$LAB/lab.env" && [ -x "$QEMU" ] && [ -f "$LAB/kernels/$KVER/boot/vmlinuz-$KVER" ] &&
    [ -f "$LAB/initramfs-$KVER.cpio.gz" ] && [ "$INIT_SUM" = "$(cksum <"$here/initramfs-init")" ])
}
if [ "$refresh" -eq 0 ] && ready; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "vmlab setup: the VM lab is not installed in $LAB and installing it needs root" >&2
  exit 1
fi
mkdir -p "$LAB/apt/lists/partial" "$LAB/apt/archives/partial" "$LAB/apt/cache" "$LAB/kernels" "$LAB/dl"

# Host packages from the machine's own APT configuration (bookworm).
HOST_PACKAGES=(busybox-static kmod xz-utils zstd cpio ethtool iproute2 iputils-ping)
missing=()
for p in "${HOST_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "vmlab setup: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq "${missing[@]}" >/dev/null
fi

# The Debian archive's URI and keyring, taken from the machine's own sources (deb822 or one-line).
archive_uri=""
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
for f in /etc/apt/sources.list.d/*.sources; do
  [ -f "$f" ] || continue
  uri=$(awk 'BEGIN{RS=""} /Suites:[^\n]*bookworm( |$|\n)/ && !/security/ {
          for (i=1;i<=NF;i++) if ($i=="URIs:") { print $(i+1); exit } }' "$f")
  [ -n "$uri" ] && { archive_uri=$uri; break; }
done
if [ -z "$archive_uri" ] && [ -f /etc/apt/sources.list ]; then
  archive_uri=$(awk '$1=="deb" && $0 ~ / bookworm / && $0 !~ /security/ { for (i=2;i<=NF;i++) if ($i ~ /^https?:/) { print $i; exit } }' /etc/apt/sources.list)
fi
[ -n "$archive_uri" ] || { echo "vmlab setup: no bookworm archive in /etc/apt sources" >&2; exit 1; }

# Two private configurations: "install" (bookworm + its backports, used to install QEMU on this
# bookworm host) and "fetch" (the backports suites the guest kernels come from; only downloads).
write_conf() { # name suites...
  local name=$1; shift
  local d=$LAB/apt/$name
  mkdir -p "$d/lists/partial" "$d/cache"
  : >"$d/sources.list"
  for s in "$@"; do
    echo "deb [signed-by=$keyring] $archive_uri $s main" >>"$d/sources.list"
  done
  cat >"$d/apt.conf" <<EOF
Dir::Etc::sourcelist "$d/sources.list";
Dir::Etc::sourceparts "-";
Dir::State::lists "$d/lists/";
Dir::Cache "$d/cache/";
Dir::Cache::archives "$LAB/apt/archives/";
APT::Get::List-Cleanup "false";
Acquire::Languages "none";
APT::Sandbox::User "root";
EOF
}
write_conf install bookworm bookworm-backports
write_conf fetch bookworm-backports trixie-backports
echo "vmlab setup: apt-get update (private lists in $LAB/apt)"
APT_CONFIG=$LAB/apt/install/apt.conf apt-get update -qq
APT_CONFIG=$LAB/apt/fetch/apt.conf apt-get update -qq

# QEMU 10 from bookworm-backports (bookworm's 7.2 conflicts with this image's qemu-utils 10).
qemu_installed=$(dpkg-query -W -f='${Version}' qemu-system-x86 2>/dev/null || true)
case $qemu_installed in
  *bpo12*) ;;
  *)
    echo "vmlab setup: installing qemu-system-x86 from bookworm-backports"
    APT_CONFIG=$LAB/apt/install/apt.conf DEBIAN_FRONTEND=noninteractive \
      apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends -t bookworm-backports qemu-system-x86 >/dev/null
    ;;
esac
QEMU=$(command -v qemu-system-x86_64)
QEMU_VERSION=$(dpkg-query -W -f='${Version}' qemu-system-x86)

# The newest linux-image-<kver>-amd64 a suite's metapackage points at.
newest_kver() { # suite
  APT_CONFIG=$LAB/apt/fetch/apt.conf apt-cache show "linux-image-amd64/$1" 2>/dev/null |
    awk '/^Depends:/ { if (match($0, /linux-image-[0-9][^ ,]*-amd64/)) { v=substr($0, RSTART+12, RLENGTH-12); print v } }' |
    sort -V | tail -n1
}

# Download and extract one kernel's packages (image, or binary + modules on trixie's split).
fetch_kernel() { # suite kver
  local suite=$1 kver=$2 dir=$LAB/kernels/$2
  [ -f "$dir/.complete" ] && return 0
  rm -rf "$dir" "$LAB/dl/$kver"
  mkdir -p "$dir" "$LAB/dl/$kver"
  local pkgs=("linux-image-$kver")
  # trixie-backports splits the image into linux-binary-* and linux-modules-* (the image package
  # then only depends on them).
  local deps
  deps=$(APT_CONFIG=$LAB/apt/fetch/apt.conf apt-cache show "linux-image-$kver/$suite" 2>/dev/null |
    awk '/^Depends:/ { sub(/^Depends:/, ""); n = split($0, d, ","); for (i = 1; i <= n; i++) { split(d[i], w, " "); print w[1] } }' |
    grep -xF -e "linux-binary-$kver" -e "linux-modules-$kver" | sort -u || true)
  for d in $deps; do pkgs+=("$d"); done
  echo "vmlab setup: downloading ${pkgs[*]} ($suite)"
  (cd "$LAB/dl/$kver" && APT_CONFIG=$LAB/apt/fetch/apt.conf apt-get download -qq "${pkgs[@]/%//$suite}")
  for deb in "$LAB/dl/$kver"/*.deb; do dpkg-deb -x "$deb" "$dir"; done
  # Modules live under lib/ or usr/lib/ depending on the release; the guest needs lib/modules.
  # (trixie-backports splits them between the two): merge into lib/modules.
  if [ -d "$dir/usr/lib/modules/$kver" ]; then
    mkdir -p "$dir/lib/modules/$kver"
    cp -a "$dir/usr/lib/modules/$kver/." "$dir/lib/modules/$kver/"
    rm -rf "$dir/usr/lib/modules/$kver"
  fi
  # Newer packages keep the image next to the modules.
  if [ ! -f "$dir/boot/vmlinuz-$kver" ] && [ -f "$dir/lib/modules/$kver/vmlinuz" ]; then
    mkdir -p "$dir/boot"
    ln -s "../lib/modules/$kver/vmlinuz" "$dir/boot/vmlinuz-$kver"
  fi
  [ -f "$dir/boot/vmlinuz-$kver" ] || { echo "vmlab setup: no vmlinuz in ${pkgs[*]}" >&2; return 1; }
  depmod -b "$dir" "$kver"
  rm -rf "$LAB/dl/$kver"
  touch "$dir/.complete"
}

# A busybox initramfs loading only what mounting the 9p/overlay root needs.
build_initramfs() { # kver
  local kver=$1 dir=$LAB/kernels/$1 tmp
  tmp=$(mktemp -d)
  mkdir -p "$tmp/bin" "$tmp/modules" "$tmp/dev" "$tmp/proc" "$tmp/sys" "$tmp/newroot" "$tmp/lower" "$tmp/upper"
  cp /bin/busybox "$tmp/bin/busybox"
  for applet in sh mount umount mkdir insmod switch_root cat echo sleep ln; do ln -s busybox "$tmp/bin/$applet"; done
  local n=0
  # 9pnet_virtio is no symbol dependency of 9p; the virtio transport and console are built in on
  # 6.12/7.x but modules on older kernels ("builtin" lines are skipped).
  for m in virtio_pci virtio_console 9pnet_virtio 9p overlay; do
    modprobe -d "$dir" -S "$kver" --show-depends "$m" 2>/dev/null | awk '$1=="insmod" {print $2}' || true
  done | awk '!seen[$0]++' | while read -r ko; do
    n=$((n + 1))
    local out
    out=$tmp/modules/$(printf '%02d' "$n")-$(basename "${ko%.xz}")
    out=${out%.zst}
    case $ko in
      *.xz) xz -dc "$ko" >"$out" ;;
      *.zst) zstd -qdc "$ko" >"$out" ;;
      *) cp "$ko" "$out" ;;
    esac
  done
  install -m 0755 "$here/initramfs-init" "$tmp/init"
  (cd "$tmp" && find . | cpio -o -H newc --quiet | gzip -9) >"$LAB/initramfs-$kver.cpio.gz.tmp"
  mv "$LAB/initramfs-$kver.cpio.gz.tmp" "$LAB/initramfs-$kver.cpio.gz"
  rm -rf "$tmp"
}

KVER=$(newest_kver bookworm-backports)
[ -n "$KVER" ] || { echo "vmlab setup: no linux-image-amd64 in bookworm-backports" >&2; exit 1; }
fetch_kernel bookworm-backports "$KVER"
build_initramfs "$KVER"

ZC_KVER=""
if [ "${STRAHL_VMLAB_ZC_KERNEL:-1}" != 0 ]; then
  zc=$(newest_kver trixie-backports)
  if [ -n "$zc" ] && fetch_kernel trixie-backports "$zc" && build_initramfs "$zc"; then
    ZC_KVER=$zc
  else
    echo "vmlab setup: WARNING: no trixie-backports kernel (AF_XDP zero-copy tests will not run)" >&2
  fi
fi

cat >"$LAB/lab.env.tmp" <<EOF
# Written by scripts/vmlab/setup.sh on $(date -u +%Y-%m-%dT%H:%M:%SZ); read by scripts/vmlab/run-guest.
QEMU=$QEMU
QEMU_VERSION=$QEMU_VERSION
KVER=$KVER
ZC_KVER=$ZC_KVER
ARCHIVE=$archive_uri
INIT_SUM="$(cksum <"$here/initramfs-init")"
EOF
mv "$LAB/lab.env.tmp" "$LAB/lab.env"
echo "vmlab setup: ok (QEMU $QEMU_VERSION, kernel $KVER${ZC_KVER:+, zero-copy kernel $ZC_KVER})"
