#!/usr/bin/env bash
# Time `make test` as CI runs it: in a fresh clone of HEAD (its own .venv, set up from nothing;
# ../shared beside it, as in CI), and write the timing to results/ci/make-test.log. Run it alone
# on the machine: a second job slows every test.
#
#     bash bench/time_make_test.sh
set -euo pipefail
root=$(git rev-parse --show-toplevel)
log="$root/results/ci/make-test.log"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git clone -q "$root" "$work/gmdsl"
[ -d "$root/../shared" ] && cp -r "$root/../shared" "$work/shared"
cd "$work/gmdsl"
load=$(cut -d' ' -f1-3 /proc/loadavg)
start=$(date +%s)
make test > "$work/make-test.out" 2>&1
seconds=$(( $(date +%s) - start ))
mkdir -p "$(dirname "$log")"
{
  echo "command: bash bench/time_make_test.sh (make test in a fresh clone, .venv set up from nothing)"
  echo "commit: $(git rev-parse --short HEAD)"
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores, load before $load"
  echo "pytest: $(grep -E '[0-9]+ passed' "$work/make-test.out" | tail -1)"
  echo "make test: $seconds s ($((seconds / 60)) min $((seconds % 60)) s), set-up, ruff, mypy and pytest"
} > "$log"
cat "$log"
