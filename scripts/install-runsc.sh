#!/usr/bin/env bash
# Installs gVisor's runsc for the gvisor backend when the system's is missing or too old.
# Debian 12's runsc (2022-12-19) fails statx in its sandboxes; Debian 13's package (a static
# binary) works on Debian 12 too. It goes to /opt/luminaguard/bin, never over the system's.
# Without root or network it says so and exits 0: the gvisor tests then skip with the reason.
set -euo pipefail
version="0.0~20240729.0-4+b7"
sha256="3c25a5130dfac2f71237d5baad56ac86a255de87a0400f11b36a555156dc325a"
url="http://deb.debian.org/debian/pool/main/g/golang-gvisor-gvisor/runsc_${version}_amd64.deb"
target=/opt/luminaguard/bin/runsc
[ -x "$target" ] && exit 0
if [ "$(id -u)" != 0 ] || [ "$(uname -m)" != x86_64 ]; then
  echo "gvisor tests will be skipped: installing runsc needs root on x86_64"
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if ! curl -fsS --retry 3 -m 120 -o "$work/runsc.deb" "$url"; then
  echo "gvisor tests will be skipped: could not download $url"
  exit 0
fi
echo "$sha256  $work/runsc.deb" | sha256sum -c --quiet -
dpkg-deb -x "$work/runsc.deb" "$work/x"
install -D -m 0755 "$work/x/usr/bin/runsc" "$target"
