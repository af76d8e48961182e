#!/usr/bin/env bash
# Starts or stops the private Postgres and Redis used by `make run` and `make test`.
#   scripts/services.sh start|stop|status|env
# Data lives under .data/ (Postgres cluster in .data/pg, Redis in .data/redis).
# Postgres refuses to run as root, so it runs as the `postgres` system user.
# Ports: SB_PG_PORT (default 55432) and SB_REDIS_PORT (default 56379), loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DATA=$ROOT/.data
PG_PORT=${SB_PG_PORT:-55432}
REDIS_PORT=${SB_REDIS_PORT:-56379}
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
PGDATA=$DATA/pg

# Runs a command as postgres from / (the checkout may be a folder that user
# cannot enter); data paths given to it are resolved (pg_real) for the same reason.
as_pg() { if [ "$(id -u)" -eq 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi; }
pg_real() { readlink -f "$PGDATA"; }

# Postgres (as user postgres) must be able to reach $DATA: when the checkout sits
# in a folder that user cannot enter (mktemp -d makes 0700 folders), the cluster
# lives in a folder of its own under /var/tmp and .data/pg links to it.
pg_dir() {
  mkdir -p "$DATA"
  if [ -L "$PGDATA" ] || [ -d "$PGDATA" ]; then return; fi
  if [ "$(id -u)" -eq 0 ] && ! runuser -u postgres -- test -x "$DATA" 2>/dev/null; then
    local alt
    alt=/var/tmp/switchboard-pg-$(echo "$ROOT" | md5sum | cut -c1-12)
    mkdir -p "$alt"; chown postgres: "$alt"; chmod 700 "$alt"
    ln -s "$alt" "$PGDATA"
  else
    mkdir -p "$PGDATA"
    [ "$(id -u)" -eq 0 ] && chown postgres: "$PGDATA"
    chmod 700 "$PGDATA"
  fi
}

pg_start() {
  pg_dir
  if [ ! -f "$PGDATA/PG_VERSION" ]; then
    as_pg "$PGBIN/initdb" -D "$(pg_real)/" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >/dev/null
    cat >> "$PGDATA/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$(readlink -f "$PGDATA")'
max_connections = 300
shared_buffers = 2GB
fsync = on
synchronous_commit = on
CONF
  fi
  if ! as_pg "$PGBIN/pg_ctl" -D "$(pg_real)/" status >/dev/null 2>&1; then
    as_pg "$PGBIN/pg_ctl" -D "$(pg_real)/" -l "$(readlink -f "$PGDATA")/server.log" -w -t 30 start >/dev/null
  fi
  # the application role and database (idempotent)
  local psql=("$PGBIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -qtA)
  if [ "$("${psql[@]}" -c "select 1 from pg_roles where rolname='switchboard'")" != 1 ]; then
    "${psql[@]}" -c "create role switchboard login superuser"
  fi
  for db in switchboard switchboard_test; do
    if [ "$("${psql[@]}" -c "select 1 from pg_database where datname='$db'")" != 1 ]; then
      "${psql[@]}" -c "create database $db owner switchboard"
    fi
  done
}

pg_stop() {
  if [ -f "$PGDATA/PG_VERSION" ]; then
    as_pg "$PGBIN/pg_ctl" -D "$(pg_real)/" -m fast -w stop >/dev/null 2>&1 || true
  fi
}

redis_start() {
  mkdir -p "$DATA/redis"
  if redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1; then return; fi
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$DATA/redis" --daemonize yes \
    --pidfile "$DATA/redis/redis.pid" --logfile "$DATA/redis/redis.log" --save "" --appendonly no
  for _ in $(seq 50); do redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1 && return; sleep 0.1; done
  echo "services: redis did not start" >&2; exit 1
}

redis_stop() {
  redis-cli -h 127.0.0.1 -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
}

case "${1:-}" in
  start) pg_start; redis_start ;;
  stop) redis_stop; pg_stop ;;
  pg-stop) pg_stop ;;   # Postgres alone (the R4 test stops and restarts it)
  pg-start) pg_start ;;
  status)
    as_pg "$PGBIN/pg_ctl" -D "$(pg_real)/" status || true
    redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping || true ;;
  env)
    echo "SB_DATABASE_URL=postgresql://switchboard@127.0.0.1:$PG_PORT/switchboard"
    echo "SB_TEST_DATABASE_URL=postgresql://switchboard@127.0.0.1:$PG_PORT/switchboard_test"
    echo "SB_TEST_REDIS_URL=redis://127.0.0.1:$REDIS_PORT" ;;
  *) echo "usage: $0 start|stop|status|env" >&2; exit 2 ;;
esac
