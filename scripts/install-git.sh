#!/usr/bin/env bash
# Installs git on a Debian/Ubuntu machine: the GitOps source tests make repositories
# with it. Needs root and apt; elsewhere, or when apt fails, it says so and exits 0, and
# those tests skip with the reason.
set -euo pipefail
command -v git >/dev/null && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "the git tests will be skipped: install git (needs root and apt)"
  exit 0
fi
{ apt-get update -qq &&
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends git >/dev/null; } ||
  echo "the git tests will be skipped: apt-get could not install git"
