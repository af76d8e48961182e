#!/usr/bin/env bash
# Installs what Switchboard needs to build, run and test, and nothing already present.
# Idempotent: a second run on a ready machine only checks. Needs root (as CI is) for apt.
#   scripts/deps.sh                 everything (build, run, test, bench)
#   scripts/deps.sh --build-only    what compiling the server needs (deploy/Dockerfile's build stage)
#   scripts/deps.sh --runtime-only  the shared libraries the server binary needs (its run stage)
set -euo pipefail
cd "$(dirname "$0")/.."

# The one list of the server's build dependencies: the Dockerfile installs
# it through --build-only, so the image and `make run` cannot drift apart.
BUILD_PKGS=(build-essential pkg-config libuv1-dev node-llhttp libwslay-dev libpq-dev
  libhiredis-dev libjansson-dev libssl-dev libargon2-dev libcurl4-openssl-dev)
RUNTIME_PKGS=(libuv1 libwslay1 libpq5 libhiredis0.14 libjansson4 libssl3 libargon2-1 libcurl4 ca-certificates)
# Tests: services, clients, the balancer and compose checks (haproxy, nginx,
# docker-compose, yamllint), fuzzing, benchmarks.
APT_PKGS=("${BUILD_PKGS[@]}" openssl libcmocka-dev
  postgresql redis-server coturn nodejs npm clang libclang-rt-14-dev wrk gnuplot-nox curl python3
  chromium prometheus nghttp2-client haproxy nginx docker-compose yamllint)
case "${1:-}" in
  --build-only) APT_PKGS=("${BUILD_PKGS[@]}") ;;
  --runtime-only) APT_PKGS=("${RUNTIME_PKGS[@]}") ;;
  "") ;;
  *) echo "usage: scripts/deps.sh [--build-only|--runtime-only]" >&2; exit 2 ;;
esac

missing=()
for p in "${APT_PKGS[@]}"; do
  # nodejs may come from another repository (with npm bundled): accept any installed node+npm
  if [ "$p" = npm ] && command -v npm >/dev/null 2>&1; then continue; fi
  if [ "$p" = nodejs ] && command -v node >/dev/null 2>&1; then continue; fi
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then echo "deps: need root to install packages" >&2; exit 1; fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
[ -z "${1:-}" ] || exit 0 # a part only: no services to stop, no test clients
# prometheus (promtool and the server, for the metrics test: about 96 MB installed); coturn and redis packages start system services on install; we run our own private ones.
for svc in coturn redis-server postgresql prometheus haproxy nginx; do
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active -q "$svc" 2>/dev/null; then
    systemctl stop "$svc" >/dev/null 2>&1 || true
  fi
done

# JavaScript test clients (phoenix.js + ws, playwright-core for the browser test).
for d in tests/e2e; do
  if [ ! -d "$d/node_modules" ] || [ "$d/package.json" -nt "$d/node_modules/.stamp" ]; then
    echo "deps: npm install in $d"
    (cd "$d" && npm install --no-audit --no-fund --loglevel=error && touch node_modules/.stamp)
  fi
done
