#!/usr/bin/env bash
# The test suite as two shards run at once, their coverage combined and checked.
#
# On this 2-core machine most of the suite waits on processes it starts (sandboxes,
# VMs, servers, a browser): one shard of the tests that run things (tests/integration,
# tests/chaos) and one of everything else keep both cores busy, and the whole runs in
# about half the time of one pytest. Each shard has its own coverage data file; they are
# combined, and the package must be covered to 85%. Each shard's output is printed
# whole when it ends; the exit code is the first shard's failure, or coverage's.
#
# Usage: scripts/pytest-shards.sh [PYTEST ARG...]   (extra arguments go to both shards)
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
logs=$(mktemp -d "${TMPDIR:-/tmp}/luminaguard-shards.XXXXXX")
rm -f .coverage .coverage.shard-*
heavy=(tests/integration tests/chaos)
light=(tests/test_*.py)
for path in tests/*/; do
  case "$path" in
    tests/integration/|tests/chaos/|tests/__pycache__/|tests/__snapshots__/|tests/fixtures/) ;;
    *) light+=("${path%/}") ;;
  esac
done

run_shard() {  # name, then the paths
  local name=$1; shift
  COVERAGE_FILE=".coverage.shard-$name" "$BIN/pytest" --cov --cov-report= --durations=10 \
    "$@" "${EXTRA[@]}" >"$logs/$name.log" 2>&1
}
EXTRA=("$@")
run_shard heavy "${heavy[@]}" & heavy_pid=$!
run_shard light "${light[@]}" & light_pid=$!
wait "$light_pid"; light_code=$?
echo "=== shard: everything but integration and chaos (exit $light_code)"; cat "$logs/light.log"
wait "$heavy_pid"; heavy_code=$?
echo "=== shard: integration and chaos (exit $heavy_code)"; cat "$logs/heavy.log"
"$BIN/coverage" combine .coverage.shard-heavy .coverage.shard-light >/dev/null
"$BIN/coverage" report --fail-under=85; cover_code=$?
for code in "$heavy_code" "$light_code" "$cover_code"; do
  [ "$code" -ne 0 ] && exit "$code"
done
exit 0
