#!/usr/bin/env bash
# Installs Debian's chromium for the web page's tests (Playwright drives it at
# /usr/bin/chromium; no browser is downloaded). Needs root and apt; elsewhere it says
# what is missing and exits 0, and the web tests skip with that reason.
set -euo pipefail
packages=(chromium)
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "web page tests will be skipped: install ${missing[*]} (needs root and apt)"
  exit 0
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
