#!/usr/bin/env bash
# Refreshes docs/screenshot.png, docs/call-incoming.png and docs/call-connected.png
# from a real run: the browser tests (tests/e2e/web_client.test.js,
# tests/e2e/web_call.test.js) against the release build, with
# SB_WEB_SCREENSHOT=1 so they also write the pictures shown in the docs.
#   scripts/web-screenshot.sh [path/to/switchboard]
set -euo pipefail
cd "$(dirname "$0")/.."
set -a
# shellcheck disable=SC1090
source <(scripts/services.sh env)
set +a
SB_WEB_SCREENSHOT=1 scripts/e2e.sh "${1:-build/release/switchboard}" tests/e2e/web_client.test.js tests/e2e/web_call.test.js
ls -l docs/screenshot.png docs/call-incoming.png docs/call-connected.png
