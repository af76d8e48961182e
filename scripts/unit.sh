#!/usr/bin/env bash
# Runs every C unit test binary of a build folder (build/release or build/asan).
set -uo pipefail
cd "$(dirname "$0")/.."
B=${1:-build/release}
pass=0 fail=0
for t in "$B"/unit/test_*; do
  [ -x "$t" ] || continue
  if "$t"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "unit: FAILED $t"; fi
done
echo "unit ($B): $pass passed, $fail failed"
[ "$fail" -eq 0 ]
