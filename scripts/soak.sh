#!/usr/bin/env bash
# Runs a test command PASSES times in a row while another process keeps every core busy,
# stopping at the first failing pass: `make test-soak` runs `make test`'s pytest this way.
# The load is stress-ng (installed with apt-get where missing, as root); elsewhere one
# Python busy loop per core. One line per pass with its duration; each pass's output is
# kept in a log folder, and the end of a failing pass's log is printed.
# Usage: scripts/soak.sh PASSES COMMAND [ARG...]
set -uo pipefail
if [ $# -lt 2 ] || ! [[ $1 =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: $0 PASSES COMMAND [ARG...]" >&2
  exit 2
fi
passes=$1
shift
cores=$(nproc)

if ! command -v stress-ng >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends stress-ng >/dev/null
fi

load=()
stop_load() {
  [ ${#load[@]} -eq 0 ] && return
  kill "${load[@]}" 2>/dev/null
  wait "${load[@]}" 2>/dev/null
  load=()
}
trap stop_load EXIT
trap 'exit 130' INT TERM

if command -v stress-ng >/dev/null; then
  stress-ng --cpu "$cores" --quiet &
  load+=($!)
  echo "soak: stress-ng --cpu $cores (pid ${load[0]})"
else
  for _ in $(seq "$cores"); do
    python3 -c 'while True: pass' &
    load+=($!)
  done
  echo "soak: stress-ng not installed: $cores Python busy loops (pids ${load[*]})"
fi

logs=$(mktemp -d "${TMPDIR:-/tmp}/luminaguard-soak.XXXXXX")
echo "soak: $passes passes of: $*  (logs in $logs)"
for pass in $(seq "$passes"); do
  start=$(date +%s)
  "$@" >"$logs/pass-$pass.log" 2>&1
  code=$?
  took=$(($(date +%s) - start))
  if [ $code -ne 0 ]; then
    tail -n 60 "$logs/pass-$pass.log"
    echo "pass $pass/$passes: FAILED (exit $code) after ${took}s: $logs/pass-$pass.log"
    exit $code
  fi
  echo "pass $pass/$passes: ok in ${took}s ($(grep -Eo '[0-9]+ passed[^=]*' "$logs/pass-$pass.log" | tail -n 1))"
done
echo "soak: $passes/$passes passes under load"
