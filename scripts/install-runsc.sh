#!/usr/bin/env bash
# Installs gVisor's runsc for the gvisor backend when the system's is missing or too old.
# Debian 12's runsc (2022-12-19) fails statx in its sandboxes; Debian 13's package (a static
# binary) works on Debian 12 too. It goes to /opt/luminaguard/bin, never over the system's.
# First choice: the pinned package, checked against its SHA-256. If the archive no longer
# has that version, apt downloads the current one from trixie, checked against Debian's
# signed index, with a private apt state (the system's sources and lists are untouched).
# Without root or network it says so and exits 0: the gvisor tests then skip with the reason.
set -euo pipefail
version="0.0~20240729.0-4+b7"
sha256="3c25a5130dfac2f71237d5baad56ac86a255de87a0400f11b36a555156dc325a"
url="http://deb.debian.org/debian/pool/main/g/golang-gvisor-gvisor/runsc_${version}_amd64.deb"
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
target=/opt/luminaguard/bin/runsc
[ -x "$target" ] && exit 0
if [ "$(id -u)" != 0 ] || [ "$(uname -m)" != x86_64 ]; then
  echo "gvisor tests will be skipped: installing runsc needs root on x86_64"
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

pinned() {
  curl -fsS --retry 3 -m 120 -o "$work/runsc.deb" "$url" &&
    echo "$sha256  $work/runsc.deb" | sha256sum -c --quiet -
}

current() {
  command -v apt-get >/dev/null && [ -f "$keyring" ] || return 1
  mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/get"
  echo "deb [signed-by=$keyring] http://deb.debian.org/debian trixie main" >"$work/sources.list"
  local opts=(-o "Dir::Etc::SourceList=$work/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache" -o APT::Sandbox::User=root)
  apt-get "${opts[@]}" -qq update &&
    (cd "$work/get" && apt-get "${opts[@]}" -qq download runsc) &&
    mv "$work"/get/runsc_*.deb "$work/runsc.deb"
}

if [ -z "${LUMINAGUARD_RUNSC_UNPINNED:-}" ] && pinned; then
  :
elif ! current; then
  echo "gvisor tests will be skipped: could not download runsc ($url, nor trixie's current one)"
  exit 0
fi
dpkg-deb -x "$work/runsc.deb" "$work/x"
install -D -m 0755 "$work/x/usr/bin/runsc" "$target"
