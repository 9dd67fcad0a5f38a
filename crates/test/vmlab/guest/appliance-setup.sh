#!/usr/bin/env bash
# Makes the VM lab guest's root an appliance root before systemd starts (run as root by the
# runner's --setup, in the guest's overlay root: writes land in its tmpfs layer only).
# The appliance's files come from image/install.sh reading image/install.manifest — the same
# step the Containerfile runs — so the booted guest holds exactly what the image ships.
# Usage: appliance-setup.sh REPO BIN_DIR
set -euo pipefail
repo=$1
bin=$2

"$repo/image/install.sh" --root / --src "$repo" --bin "$bin" --preset
# The operator's step for [video] source = "kms": the KMS capture helper, off by the preset.
systemctl --root=/ enable strahl-kms-helper.service

# The guest root is this machine's own; units an appliance does not run (and that would only
# slow a TCG boot) are masked. strahl's units and everything systemd itself brings stay.
for u in postgresql.service avahi-daemon.service avahi-daemon.socket e2scrub_reap.service \
  apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer fstrim.timer \
  man-db.timer systemd-timesyncd.service systemd-pstore.service remote-fs.target; do
  ln -sf /dev/null "/etc/systemd/system/$u"
done
# The strahl users do not exist on this machine: systemd-sysusers must create them at boot.
if getent passwd strahl-dataplane strahl-control >/dev/null; then
  echo "appliance-setup: strahl users already exist before boot" >&2
  exit 1
fi
