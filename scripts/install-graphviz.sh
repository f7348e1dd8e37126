#!/usr/bin/env bash
# Installs Graphviz's dot on a Debian/Ubuntu machine: a test renders `plan --format dot`
# with it. Needs root and apt; elsewhere, or when apt fails, it says so and exits 0, and
# that test skips with the reason.
set -euo pipefail
command -v dot >/dev/null && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "the Graphviz rendering test will be skipped: install graphviz (needs root and apt)"
  exit 0
fi
{ apt-get update -qq &&
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends graphviz >/dev/null; } ||
  echo "the Graphviz rendering test will be skipped: apt-get could not install graphviz"
