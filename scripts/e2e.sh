#!/usr/bin/env bash
# End-to-end tests of the server core: phoenix.js, ws and raw sockets against
# the real binary.   scripts/e2e.sh <path/to/switchboard> [test files...]
# Each test file starts its own server(s) on fresh ports (tests/e2e/lib/server.js);
# server logs land in tests/artifacts/e2e/<variant>/. Exits non-zero when any test fails.
# Env: SB_TEST_DATABASE_URL (passed to the server as SB_DATABASE_URL when set),
#      SB_E2E_CONCURRENCY (test files run at once, default 1),
#      SB_E2E_TIME_FACTOR / SB_E2E_SANITIZER / SB_E2E_RSS_LIMIT_MB (see lib/server.js).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ $# -lt 1 ]; then
  echo "usage: $0 <switchboard binary> [test files...]" >&2
  exit 2
fi
bin=$(readlink -f "$1")
shift
if [ ! -x "$bin" ]; then
  echo "e2e: $bin is not an executable" >&2
  exit 2
fi
export SB_BIN=$bin

# node:test's --test-force-exit came in Node.js 20.14 (tests/e2e/package.json: engines)
if ! node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=14)?0:1)'; then
  echo "e2e: Node.js >= 20.14 is needed, found $(node --version 2>/dev/null || echo none) (Debian bookworm's own nodejs is 18: use the machine's Node.js 20 or NodeSource's)" >&2
  exit 2
fi

if [ ! -d tests/e2e/node_modules/phoenix ] || [ ! -d tests/e2e/node_modules/ws ]; then
  echo "e2e: installing test clients (npm install in tests/e2e)"
  (cd tests/e2e && npm install --no-audit --no-fund --loglevel=error)
fi

# server logs of this run, one folder per build variant (release, asan)
export SB_E2E_ARTIFACTS=$PWD/tests/artifacts/e2e/$(basename "$(dirname "$bin")")
rm -rf "$SB_E2E_ARTIFACTS"
mkdir -p "$SB_E2E_ARTIFACTS"

if [ $# -gt 0 ]; then
  files=("$@")
else
  files=(tests/e2e/*.test.js)
fi

echo "e2e: ${#files[@]} test files against $bin"
node --test --test-concurrency="${SB_E2E_CONCURRENCY:-1}" --test-force-exit --test-reporter=spec "${files[@]}"
