#!/bin/bash -e
# pi-gen step: put this checkout into the image and run its installer inside the image's chroot.
# systemd is not running there, so install.sh installs and enables the units without starting them;
# --pi because the build machine is not the Pi the image boots on.
LIFELINE_SRC=${LIFELINE_SRC:-/lifeline}
install -d "${ROOTFS_DIR}/opt/lifeline/src"
tar -C "${LIFELINE_SRC}" --exclude=.git --exclude=.venv --exclude=var --exclude='__pycache__' -cf - . |
    tar -C "${ROOTFS_DIR}/opt/lifeline/src" -xf -

on_chroot <<'CHROOT'
set -e
/opt/lifeline/src/install.sh --yes --pi
# ModemManager would talk AT to the modems in the middle of Lifeline's commands (the udev rules also
# tell it to ignore them); the image does not need it.
systemctl disable ModemManager.service 2>/dev/null || true
# SD-card wear: no access-time writes on the root file system.
sed -i -E '/[[:space:]]\/[[:space:]]/ s/defaults/defaults,noatime/' /etc/fstab
CHROOT
