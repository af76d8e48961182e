#!/usr/bin/env bash
# Regenerates docs/configuration.md from the server's own option table
# (`switchboard config`), or with --check fails if the file is stale.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-build/release/switchboard}
out=$(mktemp)
{
  echo "# Configuration"
  echo
  echo "Every setting is an environment variable and a command-line flag"
  echo "(\`--name=value\` or \`--name value\`; a flag wins over its variable)."
  echo "This table is generated from the server's option table by"
  echo "\`scripts/gen-config-doc.sh\` (\`make test\` checks it is current)."
  echo
  "$BIN" config
  echo
  echo "The private services of \`make run\` / \`make test\` use \`SB_PG_PORT\` (55432)"
  echo "and \`SB_REDIS_PORT\` (56379), read by \`scripts/services.sh\`."
} > "$out"
if [ "${1:-}" = --check ]; then
  if ! diff -u docs/configuration.md "$out"; then
    echo "docs/configuration.md is stale: run scripts/gen-config-doc.sh" >&2; rm -f "$out"; exit 1
  fi
  rm -f "$out"; echo "docs/configuration.md is current"
else
  mv "$out" docs/configuration.md
fi
