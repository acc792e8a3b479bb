#!/usr/bin/env bash
# Runs every fuzz target in the module for FUZZTIME each (default 10s): `make fuzz` in `make test`,
# `make fuzz-long` for long runs. Targets are discovered, so a new Fuzz function is never forgotten.
set -euo pipefail
fuzztime="${FUZZTIME:-10s}"
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# A new input is minimised for at most 5 s (Go's default is 60 s, which can take a short run's whole budget).
run() { go test -run='^$' -fuzz="^$2\$" -fuzztime="$fuzztime" -fuzzminimizetime=5s "$1" >"$log" 2>&1; }

grep -rl --include='*_test.go' '^func Fuzz' . | sort | while read -r f; do
  dir=$(dirname "$f")
  for target in $(grep -o '^func Fuzz[A-Za-z0-9_]*' "$f" | sed 's/^func //'); do
    echo "fuzz: $dir $target ($fuzztime)"
    if run "$dir" "$target"; then continue; fi
    # Go's fuzzer sometimes reports "context deadline exceeded" when -fuzztime ends while a worker is busy,
    # with no failing input. That is the harness, not our code: run it once more. A real crasher writes
    # its input under testdata/fuzz and fails both times.
    if grep -q 'context deadline exceeded' "$log" && ! grep -q 'Failing input written' "$log"; then
      echo "fuzz: $dir $target: the fuzzer's own deadline error, running it again"
      if run "$dir" "$target"; then continue; fi
    fi
    cat "$log"
    exit 1
  done
done
