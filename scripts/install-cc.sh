#!/usr/bin/env bash
# Installs a C compiler (gcc) on a Debian/Ubuntu machine when none is there: the namespace
# sandbox's zygote is compiled from luminaguard/hypervisor/sandbox/zygote.c. Needs root and
# apt; elsewhere, or when apt fails, it says so and exits 0, and the Python zygote serves.
set -euo pipefail
command -v "${CC:-cc}" >/dev/null && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "no C compiler: the sandbox uses its Python zygote (install gcc; needs root and apt)"
  exit 0
fi
{ apt-get update -qq &&
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gcc libc6-dev >/dev/null; } ||
  echo "no C compiler: the sandbox uses its Python zygote (apt-get could not install gcc)"
