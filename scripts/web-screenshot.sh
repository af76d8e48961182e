#!/usr/bin/env bash
# Refreshes docs/screenshot.png from a real run: the browser test
# (tests/e2e/web_client.test.js) against the release build, with
# SB_WEB_SCREENSHOT=1 so it also writes the picture shown in README.md.
#   scripts/web-screenshot.sh [path/to/switchboard]
set -euo pipefail
cd "$(dirname "$0")/.."
set -a
# shellcheck disable=SC1090
source <(scripts/services.sh env)
set +a
SB_WEB_SCREENSHOT=1 scripts/e2e.sh "${1:-build/release/switchboard}" tests/e2e/web_client.test.js
ls -l docs/screenshot.png
