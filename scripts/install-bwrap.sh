#!/usr/bin/env bash
# Installs bubblewrap (bwrap) on a Debian/Ubuntu machine: bench/sandbox_bench.py measures
# our sandbox beside it. Needs root and apt; elsewhere, or when apt fails, it says so and
# exits 0, and the bench prints "not measured" for the peer.
set -euo pipefail
command -v bwrap >/dev/null && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "bwrap will not be measured beside the sandbox: install bubblewrap (needs root and apt)"
  exit 0
fi
{ apt-get update -qq &&
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends bubblewrap >/dev/null; } ||
  echo "bwrap will not be measured beside the sandbox: apt-get could not install bubblewrap"
