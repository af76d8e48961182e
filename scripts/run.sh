#!/usr/bin/env bash
# `make run`: serve on http://localhost:4000 with the private Postgres.
# A signing secret is generated once into .data/secret (never committed).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-build/release/switchboard}
set -a
# shellcheck disable=SC1090
source <(scripts/services.sh env)
set +a
mkdir -p .data
[ -s .data/secret ] || (umask 077; openssl rand -hex 32 > .data/secret)
export SB_SECRET=${SB_SECRET:-$(cat .data/secret)}
export SB_HOST=${SB_HOST:-127.0.0.1}
export SB_PORT=${SB_PORT:-4000}
export SB_MIGRATE=${SB_MIGRATE:-1}
echo "Switchboard on http://localhost:$SB_PORT (admin on 127.0.0.1:${SB_ADMIN_PORT:-4001}); Ctrl-C stops it."
exec "$BIN" serve
