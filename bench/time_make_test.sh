#!/usr/bin/env bash
# Time `make test` as CI runs it: in a fresh clone of HEAD (../shared beside it, as in CI), first
# the one-time set-up of its own .venv (what `make test` does first when there is none), then
# `make test` itself; append both to results/ci/make-test.log (every measurement is kept: this
# machine's timings vary from run to run). Run it alone on the machine: a second job slows every test.
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
make .venv/.gmdsl-installed > "$work/set-up.out" 2>&1
set_up=$(( $(date +%s) - start ))
start=$(date +%s)
if ! make test > "$work/make-test.out" 2>&1; then
  tail -n 60 "$work/make-test.out"
  echo "make test failed in the fresh clone (its output's end is above); nothing was written" >&2
  exit 1
fi
seconds=$(( $(date +%s) - start ))
mkdir -p "$(dirname "$log")"
[ -s "$log" ] && echo >> "$log"
{
  echo "command: bash bench/time_make_test.sh (a fresh clone: .venv set up from nothing, then make test)"
  echo "commit: $(git rev-parse --short HEAD)"
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores, load before $load"
  echo "pytest: $(grep -E '[0-9]+ passed' "$work/make-test.out" | tail -1)"
  echo "set-up of .venv: $set_up s (once per clone)"
  echo "make test: $seconds s ($((seconds / 60)) min $((seconds % 60)) s): ruff, mypy and pytest"
} | tee -a "$log"
