#!/usr/bin/env bash
# `make test` after the builds and services are up: unit tests and the
# end-to-end suite on the release build, then both again on the
# AddressSanitizer + UBSan build. Prints one closing tally.
set -uo pipefail
cd "$(dirname "$0")/.."
set -a
# shellcheck disable=SC1090
source <(scripts/services.sh env)
set +a
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
passed=0 failed=0
step() {
  local name=$1; shift
  echo "=== $name"
  if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "=== FAILED: $name"; fi
}
step "configuration doc is current" scripts/gen-config-doc.sh --check
# no folder of server/src includes a layer above it (docs/architecture.md)
step "layering check" scripts/layering_test.sh
step "exported names carry their file's prefix" scripts/names.py build/release/obj
step "unit tests (release)" scripts/unit.sh build/release
step "unit tests (asan+ubsan)" scripts/unit.sh build/asan
step "end-to-end (release)" scripts/e2e.sh build/release/switchboard
# the server under ASan: leaks are not checked at a signal-driven exit
step "end-to-end (asan+ubsan)" env ASAN_OPTIONS=abort_on_error=1:detect_leaks=0 scripts/e2e.sh build/asan/switchboard
# the instruments must not rot: libFuzzer over every decoder (S3), ~5 s each,
# and every bench scenario and reference at a tiny scale (issue 7)
step "fuzz smoke (libFuzzer, asan+ubsan)" scripts/fuzz.sh --smoke
step "bench smoke" scripts/bench.sh --smoke
echo
echo "suites: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
