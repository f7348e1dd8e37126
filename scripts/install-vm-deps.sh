#!/usr/bin/env bash
# Installs what the micro-VM tests need on a Debian/Ubuntu machine: QEMU (microvm),
# dash as the guest's sh, lz4 to unpack the kernel, cpio for the initramfs. Needs root and apt;
# elsewhere it says what is missing and exits 0, and the VM tests skip with that reason.
set -euo pipefail
packages=(qemu-system-x86 dash lz4 cpio squashfs-tools)
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "micro-VM tests will be skipped: install ${missing[*]} (needs root and apt)"
  exit 0
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
