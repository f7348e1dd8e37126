#!/bin/sh
# Writes a small report about /data/repo to the file given as $1.
set -eu
out="$1"
{
  echo "# Report on /data/repo"
  echo
  echo "files: $(find /data/repo -type f | wc -l)"
  echo "lines of Python: $(cat /data/repo/src/*.py | wc -l)"
  echo
  echo "## Files"
  find /data/repo -type f | sort | sed 's|^/data/repo/|- |'
} > "$out"
mkdir -p /work/published
echo "wrote $out"
