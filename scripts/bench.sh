#!/usr/bin/env bash
# `make bench`: measures the performance targets P1..P12 (shared/spec/targets.md)
# with the project's load generator (loadtest/, sbload) against the release
# build, measures the references in the same run (pgbench, redis-benchmark,
# wrk, nginx), and prints every figure next to its target and reference as a ratio.
#
#   scripts/bench.sh            default scale: fits the 2-core machine, < 15 min
#   scripts/bench.sh --smoke    a < 1 min run of every part (the instrument's own test)
#   BENCH_SCALE=full scripts/bench.sh   the million-connection run (P1 at 1,000,000)
#
# Results: build/bench/<scale>/ (one RESULT json per scenario, summary.json,
# summary.txt, rss.png when gnuplot is there). Exits non-zero when a scenario
# could not run at all or the smoke run's checks fail; a missed target is
# reported, not an error. Env: SB_BIN, SBLOAD, BENCH_OUT, BENCH_ONLY (space-
# separated scenario names to run, e.g. "p1 p3"; r12 = the disconnect storm,
# p10 = pushes to the fake FCM beside h2load, p4push = P4 with every
# recipient offline, push on vs off, p13 = WSS memory and TLS handshakes,
# fanout = presence fan-out in a 1,000-member group; BENCH_P8_HOG=1 runs P8
# with a CPU hog beside it).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SCALE=${BENCH_SCALE:-default}
[ "${1:-}" = --smoke ] && SCALE=smoke
case $SCALE in smoke|default|full) ;; *) echo "bench: BENCH_SCALE must be smoke, default or full" >&2; exit 2 ;; esac
BIN=$(readlink -f "${SB_BIN:-build/release/switchboard}")
SBLOAD=$(readlink -f "${SBLOAD:-build/release/loadtest/sbload}")
OUT=${BENCH_OUT:-$ROOT/build/bench/$SCALE}
ONLY=${BENCH_ONLY:-}
for f in "$BIN" "$SBLOAD"; do
  [ -x "$f" ] || { echo "bench: $f missing (make build loadgen)" >&2; exit 2; }
done
rm -rf "$OUT"; mkdir -p "$OUT"
LOG=$OUT/log; mkdir -p "$LOG"
NOTES=$OUT/notes.txt; : > "$NOTES"
note() { echo "bench: $*" | tee -a "$NOTES" >&2; }
want() { [ -z "$ONLY" ] || [[ " $ONLY " == *" $1 "* ]]; }
T_START=$(date +%s)

# ---- scale --------------------------------------------------------------------
# P1/P2 connections, server processes for them, P3 subscribers, run lengths (s).
case $SCALE in
  smoke)   P1_CONNS=2000;    P3_SUBS=300;   P3_RUN=2;  P7_RUN=4;   P4_USERS=20;   P8_VIEWERS=50;  REF_T=2 ;;
  default) P1_CONNS=100000;  P3_SUBS=18000; P3_RUN=10; P7_RUN=60;  P4_USERS=1000; P8_VIEWERS=2000; REF_T=10 ;;
  full)    P1_CONNS=1000000; P3_SUBS=18000; P3_RUN=10; P7_RUN=600; P4_USERS=1000; P8_VIEWERS=10000; REF_T=10 ;;
esac
# P9: concurrent calls (pairs of users; 1,000 calls = 2,000 users) and the run length
# and the talk time (a connected call is held P9_TALK s before the hangup, the pairs' first
# calls spread over the first P9_TALK s, which are not measured: every pair in a call at once)
case $SCALE in smoke) P9_CALLS=10; P9_RUN=4; P9_TALK=1 ;; *) P9_CALLS=1000; P9_RUN=10; P9_TALK=20 ;; esac
# BENCH_P9_CALLS / BENCH_P9_RUN / BENCH_P9_TALK override them (BENCH_P9_TALK=0: the closed
# loop, every pair hanging up at once and calling again: a setup-time profile)
P9_CALLS=${BENCH_P9_CALLS:-$P9_CALLS}; P9_RUN=${BENCH_P9_RUN:-$P9_RUN}; P9_TALK=${BENCH_P9_TALK:-$P9_TALK}
PER_SERVER=16000   # connections per server process (limit 20,000 descriptors; SO_REUSEPORT is uneven)
P1_SERVERS=$(( (P1_CONNS + PER_SERVER - 1) / PER_SERVER ))
SOURCES=127.0.0.2-127.0.0.50

# ---- limits -------------------------------------------------------------------
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)
[ "$NOFILE" -lt 20000 ] && note "descriptor limit per process is $NOFILE (< 20,000): fewer connections per process"
declare -A SYSCTL_OLD
set_sysctl() { # key value: raise a kernel setting for the run, restored at exit
  local f=/proc/sys/${1//.//} old
  old=$(cat "$f" 2>/dev/null) || { note "cannot read $1"; return; }
  if [ "$old" = "$2" ]; then return; fi
  if echo "$2" > "$f" 2>/dev/null; then SYSCTL_OLD[$1]=$old
  else note "could not set $1 to '$2' (stays '$old')"; fi
}
set_sysctl net.ipv4.ip_local_port_range "1024 65535"
set_sysctl net.core.somaxconn 65535
set_sysctl net.ipv4.tcp_max_syn_backlog 65535
if [ "$SCALE" = full ]; then
  set_sysctl fs.file-max 4194304
  set_sysctl net.ipv4.tcp_mem "1048576 2097152 4194304"
fi
if [ -r /proc/sys/net/netfilter/nf_conntrack_max ] && [ "$(cat /proc/sys/net/netfilter/nf_conntrack_count 2>/dev/null || echo 0)" != 0 ]; then
  set_sysctl net.netfilter.nf_conntrack_max 4194304
fi

PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
  for k in "${!SYSCTL_OLD[@]}"; do echo "${SYSCTL_OLD[$k]}" > "/proc/sys/${k//.//}" 2>/dev/null; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- services -------------------------------------------------------------------
set -a
# shellcheck disable=SC1090
source <(scripts/services.sh env)
set +a
PG_URL=${SB_DATABASE_URL%/*}/switchboard_bench
PG_ADMIN_URL=$(echo "$SB_DATABASE_URL" | sed -E 's|//[^@/]*@|//|; s|//|//postgres@|; s|/[^/]*$|/postgres|')
REDIS_URL=$SB_TEST_REDIS_URL
REDIS_HOST=$(echo "$REDIS_URL" | sed -E 's|redis://([^:/]+):?([0-9]*).*|\1|')
REDIS_PORT=$(echo "$REDIS_URL" | sed -E 's|redis://([^:/]+):?([0-9]*).*|\2|')
PG_OK=1
if ! psql -q "$PG_ADMIN_URL" -tc "SELECT 1 FROM pg_database WHERE datname='switchboard_bench'" 2>/dev/null | grep -q 1; then
  psql -q "$PG_ADMIN_URL" -c "CREATE DATABASE switchboard_bench OWNER switchboard" >/dev/null 2>&1 \
    || { note "cannot create database switchboard_bench: P4, P6, P8 and pgbench skipped"; PG_OK=0; }
fi

SECRET=$(openssl rand -hex 32)
# One server process: start_server NAME PORT ENV... ; prints nothing, sets SRV_PID.
# The first of a group uses PORT=0 and reads back the port it got.
start_server() {
  local name=$1 port=$2; shift 2
  # the load comes from a few loopback addresses: no per-address connect limit
  env SB_SECRET="$SECRET" SB_HOST=127.0.0.1 SB_PORT="$port" SB_LOG_LEVEL=info SB_SHUTDOWN_MS=2000 \
      SB_IDLE_TIMEOUT_MS=600000 SB_RATELIMIT_CONNECT_IP=off "$@" "$BIN" serve > "$LOG/$name.log" 2>&1 &
  SRV_PID=$!
  PIDS+=("$SRV_PID")
  for _ in $(seq 200); do
    grep -q '"listening"' "$LOG/$name.log" 2>/dev/null && break
    kill -0 "$SRV_PID" 2>/dev/null || break
    sleep 0.05
  done
  if ! grep -q '"listening"' "$LOG/$name.log"; then
    note "server $name did not start: $(tail -n 3 "$LOG/$name.log" | tr '\n' ' ')"
    return 1
  fi
  # With a database, the sync window loads the recent events at start-up
  # (~400 B each: 16 MiB for the 40,000 a bench database holds), in chunks
  # between the tailer's fetches. A memory figure taken before it ends would
  # count the window as the scenario's: wait for it (at most 30 s).
  if [[ " $* " == *" SB_DATABASE_URL="* && " $* " != *" SB_SYNC_WINDOW_BYTES=0 "* ]]; then
    for _ in $(seq 600); do
      grep -q '"sync_window_backfilled"' "$LOG/$name.log" 2>/dev/null && break
      kill -0 "$SRV_PID" 2>/dev/null || break
      sleep 0.05
    done
    grep -q '"sync_window_backfilled"' "$LOG/$name.log" || note "server $name: the sync window backfill did not end within 30 s"
  fi
  SRV_PORT=$(grep -m1 '"listening"' "$LOG/$name.log" | sed -E 's/.*"port":([0-9]+).*/\1/')
  SRV_ADMIN=$(grep -m1 '"listening"' "$LOG/$name.log" | sed -nE 's/.*"admin_port":([0-9]+).*/\1/p')
}
# start_group NAME N ENV...: N processes sharing one port (SO_REUSEPORT); sets
# GROUP_PIDS (comma list), GROUP_PORT, GROUP_ADMIN (admin port of the first).
start_group() {
  local name=$1 n=$2; shift 2
  local pids=()
  start_server "${name}0" 0 SB_ADMIN_PORT=0 "$@" || return 1
  pids+=("$SRV_PID"); GROUP_PORT=$SRV_PORT; GROUP_ADMIN=$SRV_ADMIN
  for i in $(seq 1 $((n - 1))); do
    start_server "$name$i" "$GROUP_PORT" SB_ADMIN_PORT=-1 "$@" || return 1
    pids+=("$SRV_PID")
  done
  GROUP_PIDS=$(IFS=,; echo "${pids[*]}")
}
stop_group() { # pids (comma list)
  local p
  for p in ${1//,/ }; do kill "$p" 2>/dev/null; done
  for p in ${1//,/ }; do wait "$p" 2>/dev/null; done
}
# sbload NAME ARGS...: runs the load generator, keeps its RESULT as NAME.json.
run_sbload() {
  local name=$1; shift
  echo "bench: $name: sbload $*" | sed "s/$SECRET/<secret>/g" >&2
  "$SBLOAD" --progress 5 "$@" > "$LOG/$name.out" 2> "$LOG/$name.err"
  local rc=$?
  grep '^RESULT ' "$LOG/$name.out" | tail -n 1 | cut -c8- > "$OUT/$name.json"
  grep -v '^RESULT ' "$LOG/$name.out" | sed 's/^/    /' >&2
  [ -s "$OUT/$name.json" ] || { note "$name: sbload produced no result (exit $rc): $(tail -n 3 "$LOG/$name.err" | tr '\n' ' ')"; rm -f "$OUT/$name.json"; return 1; }
  return 0
}
TOKEN_ARGS=(--token-secret "$SECRET")

# ---- references -------------------------------------------------------------------
ref_pgbench() {
  [ "$PG_OK" = 1 ] || return
  command -v pgbench >/dev/null || { note "pgbench not installed"; return; }
  psql -q "$PG_URL" >/dev/null 2>&1 <<'SQL'
CREATE SCHEMA IF NOT EXISTS bench;
DROP TABLE IF EXISTS bench.msg, bench.conv;
CREATE TABLE bench.conv (id bigint PRIMARY KEY, last_seq bigint NOT NULL DEFAULT 0);
CREATE TABLE bench.msg (id bigserial PRIMARY KEY, conv_id bigint NOT NULL, seq bigint NOT NULL,
  sender bigint NOT NULL, client_id text NOT NULL, body text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(), UNIQUE (conv_id, seq));
INSERT INTO bench.conv (id) SELECT g FROM generate_series(1, 1000) g;
SQL
  cat > "$OUT/pgbench.sql" <<'SQL'
\set c random(1, 1000)
WITH s AS (UPDATE bench.conv SET last_seq = last_seq + 1 WHERE id = :c RETURNING last_seq)
INSERT INTO bench.msg (conv_id, seq, sender, client_id, body)
  SELECT :c, last_seq, :client_id, md5(random()::text), 'load test message' FROM s;
SQL
  echo "bench: reference: pgbench, one message INSERT + sequence bump per transaction, ${REF_T}s" >&2
  pgbench -n -M prepared -c 64 -j 2 -T "$REF_T" -f "$OUT/pgbench.sql" "$PG_URL" \
    > "$LOG/pgbench.out" 2>&1
  local tps
  tps=$(grep -m1 -E '^tps = ' "$LOG/pgbench.out" | sed -E 's/tps = ([0-9.]+).*/\1/')
  [ -n "$tps" ] && echo "{\"tps\":$tps,\"clients\":64,\"seconds\":$REF_T}" > "$OUT/ref_pgbench.json" \
    || note "pgbench failed: $(tail -n 2 "$LOG/pgbench.out" | tr '\n' ' ')"
}
ref_redis() {
  command -v redis-benchmark >/dev/null || { note "redis-benchmark not installed"; return; }
  local n=$((REF_T * 40000))
  echo "bench: reference: redis-benchmark PUBLISH, $n requests" >&2
  redis-benchmark -h "$REDIS_HOST" -p "$REDIS_PORT" -c 50 -n "$n" -q --csv \
    PUBLISH bench:ref "$(head -c 120 /dev/zero | tr '\0' x)" > "$LOG/redis-benchmark.out" 2>&1
  local rps
  rps=$(grep -m1 -i publish "$LOG/redis-benchmark.out" | cut -d, -f2 | tr -d '"')
  [ -n "$rps" ] && echo "{\"publish_per_s\":$rps}" > "$OUT/ref_redis.json" \
    || note "redis-benchmark failed: $(tail -n 2 "$LOG/redis-benchmark.out" | tr '\n' ' ')"
}
ref_wrk() { # admin_port
  command -v wrk >/dev/null || { note "wrk not installed"; return; }
  echo "bench: reference: wrk GET /healthz, ${REF_T}s" >&2
  wrk -t 1 -c 32 -d "${REF_T}s" "http://127.0.0.1:$1/healthz" > "$LOG/wrk_healthz.out" 2>&1
  local rps
  rps=$(grep -m1 'Requests/sec' "$LOG/wrk_healthz.out" | awk '{print $2}')
  [ -n "$rps" ] && echo "{\"requests_per_s\":$rps}" > "$OUT/ref_wrk_healthz.json" \
    || note "wrk failed: $(tail -n 2 "$LOG/wrk_healthz.out" | tr '\n' ' ')"
}

ref_net() { # the kernel's loopback floor under P2 and P3, no server logic (sbload --net-ref)
  local conns=36000 wconns=$P3_SUBS rounds=10
  [ "$SCALE" = smoke ] && { conns=2000; rounds=3; }
  echo "bench: reference: loopback floor (sbload --net-ref): connect+accept, join-shaped exchange, one write() per socket" >&2
  local mode
  for mode in connect exchange write; do
    local args=(connect --conns "$conns")
    [ $mode = exchange ] && args+=(--exchange)
    [ $mode = write ] && args=(write --conns "$wconns" --rounds "$rounds")
    # a floor is the best the kernel does: the best of three runs
    : > "$LOG/netref_$mode.out"
    for _ in 1 2 3; do "$SBLOAD" --net-ref "${args[@]}" >> "$LOG/netref_$mode.out" 2>&1; done
    grep '^RESULT ' "$LOG/netref_$mode.out" | cut -c8- | python3 -c '
import json, sys
runs = [json.loads(l) for l in sys.stdin if l.strip()]
if runs: print(json.dumps(max(runs, key=lambda r: r.get("per_s") or r.get("writes_per_s") or 0)))' \
      > "$OUT/ref_net_$mode.json"
    grep -v '^RESULT ' "$LOG/netref_$mode.out" | sed 's/^/    /' >&2
    [ -s "$OUT/ref_net_$mode.json" ] || { rm -f "$OUT/ref_net_$mode.json"; note "net-ref $mode failed: $(tail -n 2 "$LOG/netref_$mode.out" | tr '\n' ' ')"; }
  done
}

# ---- P1 + P2: connections ------------------------------------------------------------
bench_connections() {
  local procs=$(( (P1_CONNS + 18999) / 19000 ))
  echo "bench: P1/P2: $P1_CONNS connections over $P1_SERVERS server process(es) (one port, SO_REUSEPORT) and $procs load process(es)" >&2
  start_group p1 "$P1_SERVERS" SB_REACTORS=1 || return 1
  local url=ws://127.0.0.1:$GROUP_PORT/socket/websocket
  # warm-up: every process serves a few connections first, so its idle baseline
  # includes the code and tables touched by the first ones (a running server's idle state)
  "$SBLOAD" --scenario connections --url "$url" --conns $((P1_SERVERS * 100)) --hold 0 \
    "${TOKEN_ARGS[@]}" --sources "$SOURCES" --progress 0 --quiet > /dev/null 2>&1
  sleep 1.5
  local hold=10; [ "$SCALE" = smoke ] && hold=2; [ "$SCALE" = full ] && hold=35
  run_sbload p1_connections --scenario connections --url "$url" --conns "$P1_CONNS" --procs "$procs" \
    --hold $hold --topic 'user:{id}' --sources "$SOURCES" --server-pid "$GROUP_PIDS" \
    --connect-timeout 60 --duration $((hold + 600)) "${TOKEN_ARGS[@]}"
  local rc=$?
  stop_group "$GROUP_PIDS"
  return $rc
}

# ---- P2 alone: the layout of the net-ref floor (2 server + 2 load processes, 36,000) --------
bench_p2() {
  local conns=36000; [ "$SCALE" = smoke ] && conns=2000
  echo "bench: P2: $conns connections as fast as accepted, 2 server processes (one reactor each), 2 load processes" >&2
  start_group p2 2 SB_REACTORS=1 || return 1
  local url=ws://127.0.0.1:$GROUP_PORT/socket/websocket
  "$SBLOAD" --scenario connections --url "$url" --conns 200 --hold 0 \
    "${TOKEN_ARGS[@]}" --sources "$SOURCES" --progress 0 --quiet > /dev/null 2>&1
  run_sbload p2_connect --scenario connections --url "$url" --conns "$conns" --procs 2 --hold 0 \
    --topic 'user:{id}' --sources "$SOURCES" --server-pid "$GROUP_PIDS" "${TOKEN_ARGS[@]}"
  local rc=$?
  stop_group "$GROUP_PIDS"
  return $rc
}

# ---- P3: fan-out on one node -----------------------------------------------------------
bench_fanout() { # name subs run window scenario
  local name=$1 subs=$2 run=$3 window=$4 scen=${5:-fanout}
  echo "bench: $name: $subs subscribers of one topic on one server process, window $window, ${run}s" >&2
  start_group "$name" 1 SB_TEST_CHANNELS=1 || return 1
  run_sbload "$name" --scenario "$scen" --url "ws://127.0.0.1:$GROUP_PORT/socket/websocket" \
    --conns "$subs" --procs 2 --run "$run" --window "$window" --topic echo:fanout \
    --sources "$SOURCES" --server-pid "$GROUP_PIDS" "${TOKEN_ARGS[@]}"
  local rc=$?
  stop_group "$GROUP_PIDS"
  return $rc
}

# ---- P3 at 100,000: one topic over several processes bridged by Redis --------------
bench_fanout_cluster() { # name subs run window
  local name=$1 subs=$2 run=$3 window=$4
  local n=$(( (subs + PER_SERVER - 1) / PER_SERVER )) procs=$(( (subs + 18999) / 19000 ))
  echo "bench: $name: $subs subscribers of one topic over $n server processes (one port, Redis bus), window $window, ${run}s" >&2
  start_group "$name" "$n" SB_TEST_CHANNELS=1 SB_REACTORS=1 SB_REDIS_URL="$REDIS_URL" || return 1
  sleep 0.5
  run_sbload "$name" --scenario fanout --url "ws://127.0.0.1:$GROUP_PORT/socket/websocket" \
    --conns "$subs" --procs "$procs" --run "$run" --window "$window" --topic echo:fanout100k \
    --sources "$SOURCES" --server-pid "$GROUP_PIDS" --connect-timeout 60 --duration $((run + 600)) "${TOKEN_ARGS[@]}"
  local rc=$?
  stop_group "$GROUP_PIDS"
  return $rc
}

# ---- P5: three nodes through Redis ---------------------------------------------------------
bench_cluster() {
  echo "bench: P5: 3 nodes + Redis, publisher on node A, subscribers on nodes B and C" >&2
  local a b c
  start_server p5a 0 SB_ADMIN_PORT=-1 SB_TEST_CHANNELS=1 SB_REDIS_URL="$REDIS_URL" SB_REACTORS=1 || return 1; a=$SRV_PORT; local pa=$SRV_PID
  start_server p5b 0 SB_ADMIN_PORT=-1 SB_TEST_CHANNELS=1 SB_REDIS_URL="$REDIS_URL" SB_REACTORS=1 || return 1; b=$SRV_PORT; local pb=$SRV_PID
  start_server p5c 0 SB_ADMIN_PORT=-1 SB_TEST_CHANNELS=1 SB_REDIS_URL="$REDIS_URL" SB_REACTORS=1 || return 1; c=$SRV_PORT; local pc=$SRV_PID
  sleep 0.5
  # connection i goes to port i % 3: index 0 (the publisher) to A, the others to A, B, C;
  # 2 subscribers per node keep the figure about the bus, not the fan-out
  local run=10; [ "$SCALE" = smoke ] && run=2
  run_sbload p5_cluster --scenario fanout --url "ws://127.0.0.1:$a/socket/websocket" --ports "$a,$b,$c" \
    --conns 6 --procs 1 --run $run --window 256 --topic "echo:bus" --server-pid "$pa,$pb,$pc" \
    "${TOKEN_ARGS[@]}"
  local rc=$?
  stop_group "$pa,$pb,$pc"
  return $rc
}

# ---- P4 / P6 / P8: provisioned users -------------------------------------------------------
bench_db_scenarios() {
  [ "$PG_OK" = 1 ] || return 1
  start_group p4 1 SB_DATABASE_URL="$PG_URL" SB_MIGRATE=1 SB_RATELIMIT_SEND=off \
    SB_RATELIMIT_SIGNUP_IP=1000000/1 SB_ARGON2_T=1 SB_ARGON2_M=64 || return 1
  local port=$GROUP_PORT pids=$GROUP_PIDS admin=$GROUP_ADMIN
  if want p4; then
    python3 scripts/bench_provision.py pairs --base "http://127.0.0.1:$port" --users "$P4_USERS" \
      --out "$OUT/p4" > "$LOG/p4_provision.out" 2>&1 \
      || { note "P4: provisioning failed: $(tail -n 2 "$LOG/p4_provision.out" | tr '\n' ' ')"; }
    if [ -s "$OUT/p4/users.txt" ]; then
      local run=10; [ "$SCALE" = smoke ] && run=2
      run_sbload p4_sends --scenario sends --url "ws://127.0.0.1:$port/socket/websocket" \
        --conns "$P4_USERS" --procs 1 --run $run --topic 'user:{user}' --user-pattern '{user}' \
        --user-file "$OUT/p4/users.txt" --conv-file "$OUT/p4/convs.txt" --server-pid "$pids" \
        --sources "$SOURCES" "${TOKEN_ARGS[@]}"
      # P4's latency bar holds at half the reference rate: the same senders,
      # open loop at half pgbench's tps of this run (else half the closed
      # loop's acks/s), latency from each send's slot (docs/loadtest.md);
      # the first seconds (1,000 sockets just connected, the closed loop's
      # 1,000 just gone) are paced but not measured
      local half warm=3; [ "$SCALE" = smoke ] && warm=1
      half=$(python3 -c 'import json,sys
def rd(p, *k):
    try: d = json.load(open(p))
    except (OSError, ValueError): return 0
    for x in k: d = d.get(x) if isinstance(d, dict) else None
    return d or 0
r = rd(sys.argv[1], "tps") or rd(sys.argv[2], "sends", "acks_per_s")
print(f"{r / 2:.0f}" if r >= 2 else "")' "$OUT/ref_pgbench.json" "$OUT/p4_sends.json")
      if [ -n "$half" ]; then
        run_sbload p4_half_rate --scenario sends --url "ws://127.0.0.1:$port/socket/websocket" \
          --conns "$P4_USERS" --procs 1 --run $run --send-rate "$half" --warmup $warm --drain 5 --topic 'user:{user}' \
          --user-pattern '{user}' --user-file "$OUT/p4/users.txt" --conv-file "$OUT/p4/convs.txt" \
          --server-pid "$pids" --sources "$SOURCES" "${TOKEN_ARGS[@]}"
      else
        note "P4: no reference rate (pgbench and the closed loop gave none): half-rate run skipped"
      fi
    fi
  fi
  if want p6; then
    local nconv=200 nev=5000; [ "$SCALE" = smoke ] && { nconv=5; nev=50; }
    python3 scripts/bench_provision.py sync --base "http://127.0.0.1:$port" --conversations $nconv \
      --events $nev --out "$OUT/p6" > "$LOG/p6_provision.out" 2>&1 \
      || note "P6: provisioning failed: $(tail -n 2 "$LOG/p6_provision.out" | tr '\n' ' ')"
    if [ -s "$OUT/p6/token.txt" ] && command -v wrk >/dev/null; then
      echo "bench: P6: wrk GET /api/v1/sync (user with $nconv conversations, $nev pending events), ${REF_T}s" >&2
      wrk -t 1 -c 8 -d "${REF_T}s" -H "Authorization: Bearer $(cat "$OUT/p6/token.txt")" \
        "http://127.0.0.1:$port/api/v1/sync$(cat "$OUT/p6/query.txt" 2>/dev/null)" > "$LOG/p6_wrk.out" 2>&1
      local rps non2xx
      rps=$(grep -m1 'Requests/sec' "$LOG/p6_wrk.out" | awk '{print $2}')
      non2xx=$(grep -m1 'Non-2xx' "$LOG/p6_wrk.out" | awk '{print $NF}')
      [ -n "$rps" ] && echo "{\"requests_per_s\":$rps,\"non_2xx\":${non2xx:-0},\"bytes_per_response\":$(cat "$OUT/p6/bytes.txt" 2>/dev/null || echo 0)}" > "$OUT/p6_sync.json"
    fi
  fi
  if want p8; then
    python3 scripts/bench_provision.py group --base "http://127.0.0.1:$port" --users "$P8_VIEWERS" \
      --out "$OUT/p8" > "$LOG/p8_provision.out" 2>&1 \
      || note "P8: provisioning failed: $(tail -n 2 "$LOG/p8_provision.out" | tr '\n' ' ')"
    if [ -s "$OUT/p8/users.txt" ]; then
      # a fresh process for P8: its idle baseline must not be what P4 and P6 left behind
      stop_group "$pids"
      start_group p8 1 SB_DATABASE_URL="$PG_URL" || return 1
      port=$GROUP_PORT pids=$GROUP_PIDS
      # the baseline is the idle process after its start-up: start_server
      # waited for the sync window's backfill; what the start-up left free is
      # given back at the next quiet second (malloc_trim, conn.c), else the
      # run's own trims would count the start-up's garbage as freed by viewers
      sleep 2.5
      # BENCH_P8_HOG=1: the same run on a loaded machine, a CPU hog beside it
      # (a busy loop on one core, bounded to 10 min, stopped after the run):
      # memory per viewer must not depend on how fast the loop is
      local hog=
      if [ "${BENCH_P8_HOG:-0}" = 1 ]; then
        timeout 600 sh -c 'while :; do :; done' & hog=$!
        PIDS+=("$hog")
        echo "{\"cpu_hog\":1,\"loadavg_before\":\"$(cut -d' ' -f1-3 /proc/loadavg)\"}" > "$OUT/p8_hog.json"
        echo "bench: P8 with a CPU hog beside it (busy loop, pid $hog)" >&2
      fi
      run_sbload p8_presence --scenario presence --url "ws://127.0.0.1:$port/socket/websocket" \
        --conns "$P8_VIEWERS" --procs 1 --rate 500 --run 3 --topic "conversation:$(cat "$OUT/p8/conv.txt")" \
        --user-pattern '{user}' --user-file "$OUT/p8/users.txt" --server-pid "$pids" \
        --sources "$SOURCES" "${TOKEN_ARGS[@]}"
      [ -n "$hog" ] && { kill "$hog" 2>/dev/null; wait "$hog" 2>/dev/null; }
    fi
  fi
  stop_group "$pids"
}

# ---- P9: calls ------------------------------------------------------------------------------
# P9_CALLS caller/callee pairs set up calls back to back (sbload scenario
# `calls`: POST /calls, ringing, accept, offer, answer, 10 ICE each way,
# connected, hangup; docs/loadtest.md), each call held P9_TALK s once
# connected, so that P9_CALLS calls are live at once; measured for P9_RUN s
# after P9_TALK s of ramp (the first calls spread over it). Same-run reference: a ping round
# trip on echo:{id} by as many sockets of the same server (a relayed signal is
# one push in and one push out).
bench_calls() {
  [ "$PG_OK" = 1 ] || return 1
  local users=$(( P9_CALLS * 2 ))
  start_group p9 1 SB_DATABASE_URL="$PG_URL" SB_MIGRATE=1 SB_RATELIMIT_CALL=off SB_TEST_CHANNELS=1 \
    SB_RATELIMIT_SIGNUP_IP=1000000/1 SB_ARGON2_T=1 SB_ARGON2_M=64 || return 1
  local port=$GROUP_PORT pids=$GROUP_PIDS
  python3 scripts/bench_provision.py pairs --base "http://127.0.0.1:$port" --users "$users" \
    --out "$OUT/p9" > "$LOG/p9_provision.out" 2>&1 \
    || note "P9: provisioning failed: $(tail -n 2 "$LOG/p9_provision.out" | tr '\n' ' ')"
  if [ -s "$OUT/p9/users.txt" ]; then
    run_sbload p9_ping_ref --scenario sends --event ping --topic 'echo:{id}' --body x \
      --url "ws://127.0.0.1:$port/socket/websocket" --conns "$users" --procs 1 --run "$P9_RUN" \
      --sources "$SOURCES" "${TOKEN_ARGS[@]}"
    run_sbload p9_calls --scenario calls --url "ws://127.0.0.1:$port/socket/websocket" \
      --conns "$users" --procs 1 --run "$P9_RUN" --talk "$P9_TALK" --warmup "$P9_TALK" --drain 3 \
      --topic 'user:{user}' --user-pattern '{user}' \
      --user-file "$OUT/p9/users.txt" --server-pid "$pids" --sources "$SOURCES" "${TOKEN_ARGS[@]}"
    # sbload stops with P9_CALLS calls connected. Left in the database, the
    # next run's server ends them (connection_lost, SB_CALL_GRACE_MS after its
    # start) in the middle of that run's ramp, and the talk time carries the
    # delay into its measured window as a bunch of set-ups at once
    # (docs/benchmarks.md, P9, session 6). This server, still up, ends them
    # now (its tick: gone, then the grace period; ~23 s). Not at smoke scale
    # (10 calls, and the smoke run stays short).
    local t0 live
    t0=$(date +%s)
    while [ "$SCALE" != smoke ]; do
      live=$(psql -qtAX "$PG_URL" -c "SELECT count(*) FROM calls WHERE state <> 'ended'" 2>/dev/null)
      [ "${live:-0}" = 0 ] && break
      if [ $(( $(date +%s) - t0 )) -ge 60 ]; then note "P9: $live calls still live 60 s after the run"; break; fi
      sleep 1
    done
  fi
  stop_group "$pids"
}

# ---- P10: pushes per second to the fake FCM, beside h2load ------------------------------------
# scripts/bench_p10.js: the tests' fake FCM (tests/e2e/lib/fake_fcm.js, HTTP/2
# over TLS) in a process of its own; h2load (nghttp2-client) sends FCM v1
# requests to it over 2 connections x 100 streams (the reference); then the
# server (push on, pointed at the same fake; SB_FCM_ALERT_INTERVAL_MS=0 so
# every message is pushed, not coalesced) pushes a group's messages to its
# offline members' devices: the fake holds them until all are decided, then
# releases them and the rate of the pushes after the release is measured.
bench_p10() {
  [ "$PG_OK" = 1 ] || { note "P10: no bench database"; return 1; }
  command -v h2load >/dev/null || { note "P10: h2load not installed (nghttp2-client; scripts/deps.sh)"; return 1; }
  [ -d tests/e2e/node_modules ] || { note "P10: tests/e2e/node_modules missing (npm install in tests/e2e)"; return 1; }
  local members=50 messages=400
  [ "$SCALE" = smoke ] && { members=20; messages=30; }
  echo "bench: p10_push: $members members (one device each, offline), $messages messages" >&2
  SB_BIN="$BIN" SB_TEST_DATABASE_URL="$PG_URL" SB_E2E_ARTIFACTS="$LOG" \
    node scripts/bench_p10.js --bin "$BIN" --members "$members" --messages "$messages" \
    --out "$OUT/p10_push.json" --log "$LOG" > "$LOG/p10.out" 2> "$LOG/p10.err"
  local rc=$?
  grep -v '^RESULT ' "$LOG/p10.out" | sed 's/^/    /' >&2
  [ "$rc" = 0 ] || note "P10: $(grep '^RESULT ' "$LOG/p10.out" | sed -E 's/.*"error":"([^"]*)".*/\1/' | head -c 300) $(tail -n 2 "$LOG/p10.err" | tr '\n' ' ')"
  [ -s "$OUT/p10_push.json" ]
}

# ---- P4 with push: every recipient offline, push on vs off -----------------------------------
# Pairs provisioned with one Android device per user (bench_provision.py
# pairs --devices); only the first of each pair connects and sends (sbload
# `sends`, closed loop, as P4), so every recipient is offline and, with push
# on, every send is decided for a push (devices read, presence checked) and
# each recipient's device gets one push per SB_FCM_ALERT_INTERVAL_MS (the
# default 5 s: docs/push.md, Coalescing). Rounds alternate push off / push on (a fresh
# server each, the same database and users); push on points at the tests'
# fake FCM (scripts/bench_p10.js --fake: Node http2 + TLS) run at nice 19 so
# the stand-in for a remote service does not take the server's CPU. The
# figure: the median acks/s with push on against the median with push off.
bench_p4push() {
  [ "$PG_OK" = 1 ] || { note "P4 push: no bench database"; return 1; }
  local run=10 rounds=3 d=$OUT/p4push; [ "$SCALE" = smoke ] && run=2
  start_group p4push_prov 1 SB_DATABASE_URL="$PG_URL" SB_MIGRATE=1 SB_RATELIMIT_SIGNUP_IP=1000000/1 \
    SB_ARGON2_T=1 SB_ARGON2_M=64 || return 1
  python3 scripts/bench_provision.py pairs --devices --base "http://127.0.0.1:$GROUP_PORT" --users "$P4_USERS" \
    --out "$d" > "$LOG/p4push_provision.out" 2>&1 \
    || note "P4 push: provisioning failed: $(tail -n 2 "$LOG/p4push_provision.out" | tr '\n' ' ')"
  stop_group "$GROUP_PIDS"
  [ -s "$d/users.txt" ] || return 1
  awk 'NR % 2 == 1' "$d/users.txt" > "$d/senders.txt"
  awk 'NR % 2 == 1' "$d/convs.txt" > "$d/sender_convs.txt"
  local n; n=$(wc -l < "$d/senders.txt")
  coproc FAKE { exec nice -n 19 node scripts/bench_p10.js --fake 1 2>> "$LOG/p4push_fake.err"; }
  local fake_pid=$FAKE_PID fake_in=${FAKE[1]} info=""
  PIDS+=("$fake_pid")
  read -r -t 30 info <&"${FAKE[0]}" || { note "P4 push: the fake FCM did not start"; kill "$fake_pid"; return 1; }
  local url key ca
  url=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["url"])' "$info")
  key=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["keyFile"])' "$info")
  ca=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["caFile"])' "$info")
  echo "bench: p4_push: $n senders, every recipient offline with a device; $rounds rounds of push off / on, ${run}s each" >&2
  local r mode
  for r in $(seq 1 $rounds); do
    for mode in off on; do
      local env=(SB_DATABASE_URL="$PG_URL" SB_RATELIMIT_SEND=off SB_METRICS_OPEN=1)
      [ $mode = on ] && env+=(SB_FCM_CREDENTIALS="$key" SB_FCM_ENDPOINT="$url" SB_FCM_CA_FILE="$ca" SB_FCM_TIMEOUT_MS=30000)
      start_group "p4push_${mode}_$r" 1 "${env[@]}" || continue
      run_sbload "p4push_${mode}_$r" --scenario sends --url "ws://127.0.0.1:$GROUP_PORT/socket/websocket" \
        --conns "$n" --procs 1 --run $run --topic 'user:{user}' --user-pattern '{user}' \
        --user-file "$d/senders.txt" --conv-file "$d/sender_convs.txt" --server-pid "$GROUP_PIDS" \
        --sources "$SOURCES" "${TOKEN_ARGS[@]}"
      curl -s "http://127.0.0.1:$GROUP_ADMIN/metrics" | grep -E '^sb_push_(results_total|queued)' \
        > "$LOG/p4push_${mode}_$r.metrics" 2>/dev/null
      stop_group "$GROUP_PIDS"
    done
  done
  exec {fake_in}>&-
  wait "$fake_pid" 2>/dev/null
  python3 - "$OUT" "$rounds" > "$OUT/p4_push.json" <<'PY'
import json, os, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
res = {"off": [], "on": [], "pushes_sent": [], "pushes_dropped": []}
for r in range(1, rounds + 1):
    for mode in ("off", "on"):
        try:
            s = json.load(open(os.path.join(out, f"p4push_{mode}_{r}.json")))["sends"]
            res[mode].append(s.get("acks_per_s") or 0)
        except (OSError, ValueError, KeyError):
            pass
    m = {}
    try:
        for line in open(os.path.join(out, "log", f"p4push_on_{r}.metrics")):
            k, v = line.rsplit(" ", 1)
            m[k] = float(v)
    except OSError:
        pass
    res["pushes_sent"].append(m.get('sb_push_results_total{result="sent"}', 0))
    res["pushes_dropped"].append(m.get('sb_push_results_total{result="dropped"}', 0))
if res["off"] and res["on"]:
    res["off_median"] = statistics.median(res["off"])
    res["on_median"] = statistics.median(res["on"])
    res["ratio"] = res["on_median"] / res["off_median"] if res["off_median"] else 0
print(json.dumps(res))
PY
  [ -s "$OUT/p4_push.json" ]
}

# ---- P12: search and export over a seeded corpus --------------------------------------------
# The corpus (scripts/bench_p12.sql, generate_series in SQL) is made once per
# scale and kept in a database of its own, switchboard_bench_search (table
# bench_p12), so that the search runs over the corpus the target names and
# not over whatever the other scenarios (P4's sends) have added to
# switchboard_bench in this and earlier runs. Search: wrk with 50
# connections, each request a random (user, query) of 1,000 (p99 from wrk's
# latency distribution), then pgbench running the same sb_search_page statement
# with a custom script, 50 clients, in the same run (the reference rate),
# and with 1 client (the database's cost of one search, shown beside p99).
# Export: one conversation of 100,000 messages downloaded with curl (MB/s).
bench_p12() {
  [ "$PG_OK" = 1 ] || { note "P12: no bench database"; return 1; }
  command -v wrk >/dev/null || { note "P12: wrk not installed"; return 1; }
  local nusers=1000 nconv=2000 permsg=500 bigmsg=100000 t=$REF_T
  [ "$SCALE" = smoke ] && { nusers=50; nconv=20; permsg=100; bigmsg=2000; }
  local tag="${SCALE}_${nconv}x${permsg}"; [ "$SCALE" = full ] && tag="default_${nconv}x${permsg}"
  local P12_URL=${SB_DATABASE_URL%/*}/switchboard_bench_search
  if ! psql -q "$PG_ADMIN_URL" -tc "SELECT 1 FROM pg_database WHERE datname='switchboard_bench_search'" 2>/dev/null | grep -q 1; then
    psql -q "$PG_ADMIN_URL" -c "CREATE DATABASE switchboard_bench_search OWNER switchboard" >/dev/null 2>&1 \
      || { note "P12: cannot create database switchboard_bench_search"; return 1; }
  fi
  start_group p12 1 SB_DATABASE_URL="$P12_URL" SB_MIGRATE=1 SB_RATELIMIT_CONNECT_IP=off || return 1
  local port=$GROUP_PORT pids=$GROUP_PIDS
  if [ "$(psql -qtAX "$P12_URL" -c "SELECT count(*) FROM bench_p12 WHERE tag = '$tag'" 2>/dev/null)" != 1 ]; then
    echo "bench: P12: seeding $((nconv * permsg)) messages in $nconv conversations (+ $bigmsg for the export)" >&2
    psql -qX "$P12_URL" -v tag="$tag" -v nusers=$nusers -v nconv=$nconv -v permsg=$permsg -v bigmsg=$bigmsg \
      -f scripts/bench_p12.sql > "$LOG/p12_seed.out" 2>&1 \
      || { note "P12: seeding failed: $(tail -n 3 "$LOG/p12_seed.out" | tr '\n' ' ')"; stop_group "$pids"; return 1; }
  fi
  # a settled database: the writes of the scenarios before (P4's sends, P9's
  # calls) checkpointed now rather than during the measurement; the corpus
  # vacuumed once (hint bits and visibility map set, as on a live server)
  psql -qX "$P12_URL" -c "VACUUM (ANALYZE) messages" -c "CHECKPOINT" > /dev/null 2>&1 \
    || note "P12: VACUUM/CHECKPOINT failed"
  # requests: one line per query, "<path>\t<token>" (tokens minted by the server binary)
  psql -qtAX -F $'\t' "$P12_URL" -c "SELECT user_id, q FROM bench_p12_queries WHERE tag = '$tag' ORDER BY i" > "$OUT/p12_queries.tsv"
  declare -A tok
  local uid q
  : > "$OUT/p12_requests.tsv"
  while IFS=$'\t' read -r uid q; do
    [ -n "${tok[$uid]:-}" ] || tok[$uid]=$(SB_SECRET="$SECRET" "$BIN" token "$uid" --ttl 3600)
    printf '/api/v1/search/messages?limit=20&q=%s\t%s\n' "${q// /+}" "${tok[$uid]}" >> "$OUT/p12_requests.tsv"
  done < "$OUT/p12_queries.tsv"
  cat > "$OUT/p12.lua" <<LUA
local reqs = {}
for line in io.lines("$OUT/p12_requests.tsv") do
  local p, t = line:match("([^\t]+)\t(.+)")
  reqs[#reqs + 1] = { p, { ["Authorization"] = "Bearer " .. t } }
end
local i = 0
function setup(thread) i = i + 1 end
function init(args) math.randomseed(os.time() + i * 7919) end
function request()
  local r = reqs[math.random(#reqs)]
  return wrk.format("GET", r[1], r[2])
end
LUA
  # warm-up, not measured (like pgbench's runs below, which find the
  # statement's plans and the corpus's pages where this left them): the
  # server's new Postgres connections compile sb_search_page and plan its
  # statements on their first searches
  wrk -t 2 -c 50 -d 3s -s "$OUT/p12.lua" "http://127.0.0.1:$port" > "$LOG/p12_wrk_warmup.out" 2>&1
  echo "bench: P12: wrk search, 50 connections, ${t}s" >&2
  wrk -t 2 -c 50 -d "${t}s" --latency -s "$OUT/p12.lua" "http://127.0.0.1:$port" > "$LOG/p12_wrk.out" 2>&1
  # the reference runs the server's own statement text (SEARCH_SQL in
  # server/src/search/search.h; pgbench -M prepared sends :uid and :tsq as
  # text parameters to a statement prepared once per connection, like the server; no conversation, no cursor, 20 rows),
  # after a primary-key lookup of a random query of the same 1,000
  local ssql
  ssql=$(sed -n 's/^#define SEARCH_SQL "\(.*\)"$/\1/p' server/src/search/search.h \
         | sed 's/\$1/:uid/; s/\$2/:tsq/; s/\$3/NULL/; s/\$4/NULL/; s/\$5/20/')
  [ -n "$ssql" ] || { note "P12: SEARCH_SQL not found in server/src/search/search.h"; stop_group "$pids"; return 1; }
  cat > "$OUT/p12_pgbench.sql" <<SQL
\set i random(1, 1000)
SELECT user_id AS uid, tsq FROM bench_p12_queries WHERE tag = '$tag' AND i = :i \gset
$ssql;
SQL
  echo "bench: P12: reference: pgbench, the same sb_search_page statement, 50 clients, ${t}s" >&2
  pgbench -n -M prepared -c 50 -j 2 -T "$t" -f "$OUT/p12_pgbench.sql" "$P12_URL" > "$LOG/p12_pgbench.out" 2>&1
  # the database's cost of one search, alone: one pgbench client (mean latency)
  echo "bench: P12: one search at a time (pgbench, 1 client), $(( (t + 1) / 2 ))s" >&2
  pgbench -n -M prepared -c 1 -T $(( (t + 1) / 2 )) -f "$OUT/p12_pgbench.sql" "$P12_URL" > "$LOG/p12_pgbench1.out" 2>&1
  local big bu btok
  big=$(psql -qtAX "$P12_URL" -c "SELECT big_conv FROM bench_p12 WHERE tag = '$tag'")
  bu=$(psql -qtAX "$P12_URL" -c "SELECT big_users[1] FROM bench_p12 WHERE tag = '$tag'")
  btok=$(SB_SECRET="$SECRET" "$BIN" token "$bu" --ttl 3600)
  echo "bench: P12: export of $bigmsg messages with curl" >&2
  curl -s -o /dev/null -w '%{http_code} %{size_download} %{time_total}\n' -H "Authorization: Bearer $btok" \
    "http://127.0.0.1:$port/api/v1/conversations/$big/export" > "$LOG/p12_export.out" 2>&1
  python3 - "$LOG" "$OUT" "$((nconv * permsg))" "$nconv" "$bigmsg" <<'PY'
import json, re, sys
log, out, nmsg, nconv, bigmsg = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
def ms(v, u):
    return float(v) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[u]
w = open(f"{log}/p12_wrk.out").read()
m99 = re.search(r"^\s+99%\s+([0-9.]+)(us|ms|s|m)\s*$", w, re.M)
m50 = re.search(r"^\s+50%\s+([0-9.]+)(us|ms|s|m)\s*$", w, re.M)
rps = re.search(r"Requests/sec:\s+([0-9.]+)", w)
non2 = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", w)
if m99 and rps:
    json.dump({"p99_ms": ms(*m99.groups()), "p50_ms": ms(*m50.groups()) if m50 else None,
               "requests_per_s": float(rps.group(1)), "non_2xx": int(non2.group(1)) if non2 else 0,
               "messages": nmsg, "conversations": nconv, "connections": 50}, open(f"{out}/p12_search.json", "w"))
p = open(f"{log}/p12_pgbench.out").read()
tps = re.search(r"^tps = ([0-9.]+)", p, re.M)
lat1 = re.search(r"^latency average = ([0-9.]+) ms", open(f"{log}/p12_pgbench1.out").read(), re.M)
if tps:
    json.dump({"tps": float(tps.group(1)), "clients": 50,
               "one_client_ms": float(lat1.group(1)) if lat1 else None}, open(f"{out}/ref_pgbench_search.json", "w"))
try:
    code, size, secs = open(f"{log}/p12_export.out").read().split()
    if code == "200" and float(secs) > 0:
        json.dump({"mb_per_s": int(size) / float(secs) / 1e6, "bytes": int(size), "seconds": float(secs),
                   "messages": bigmsg}, open(f"{out}/p12_export.json", "w"))
except (OSError, ValueError):
    pass
PY
  [ -s "$OUT/p12_search.json" ] || note "P12: no wrk figure: $(tail -n 3 "$LOG/p12_wrk.out" | tr '\n' ' ')"
  [ -s "$OUT/ref_pgbench_search.json" ] || note "P12: no pgbench figure: $(tail -n 3 "$LOG/p12_pgbench.out" | tr '\n' ' ')"
  [ -s "$OUT/p12_export.json" ] || note "P12: export failed: $(cat "$LOG/p12_export.out")"
  stop_group "$pids"
}

# ---- P11: media download and upload throughput, RSS --------------------------------------
# One file of P11_MIB MiB (random bytes) is uploaded P11_UPLOADS times (4 curl
# at a time, POST /api/v1/media, raw body: the upload MB/s), then downloaded by
# wrk with 32 connections for REF_T seconds from the server (GET /api/v1/media/:id
# with a bearer token) and, in the same run, from Debian's nginx serving the same
# file with `sendfile on` (started here on loopback with a temporary config,
# worker_processes auto). The server's RSS is sampled every 50 ms from /proc: its
# growth above the level before the first upload (target <= 16 MiB).
bench_p11() {
  [ "$PG_OK" = 1 ] || { note "P11: no bench database"; return 1; }
  command -v wrk >/dev/null || { note "P11: wrk not installed"; return 1; }
  local mib=50 uploads=8 conns=32 t=$REF_T
  [ "$SCALE" = smoke ] && { mib=4; uploads=4; }
  local dir=$OUT/p11; mkdir -p "$dir/media" "$dir/www" "$dir/nginx"
  head -c $((mib * 1024 * 1024)) /dev/urandom > "$dir/www/file.bin"
  start_group p11 1 SB_DATABASE_URL="$PG_URL" SB_MIGRATE=1 SB_MEDIA_DIR="$dir/media" \
    SB_MEDIA_QUOTA_BYTES=0 SB_MEDIA_SWEEP_MS=0 || return 1
  local port=$GROUP_PORT pid=$GROUP_PIDS uid tok
  uid=$(psql -qtAX "$PG_URL" -c "INSERT INTO users (username, display_name, password_hash)
    VALUES ('p11_$(openssl rand -hex 4)', 'Bench', 'x') RETURNING id" 2>"$LOG/p11_psql.err" | head -n1)
  [ -n "$uid" ] || { note "P11: could not create a user: $(tail -n 2 "$LOG/p11_psql.err" | tr '\n' ' ')"; stop_group "$pid"; return 1; }
  tok=$(SB_SECRET="$SECRET" "$BIN" token "$uid" --ttl 3600)
  local base; base=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
  ( while kill -0 "$pid" 2>/dev/null; do awk '/VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null; sleep 0.05; done ) > "$LOG/p11_rss.txt" &
  local sampler=$!
  echo "bench: P11: $uploads uploads of $mib MiB (4 at a time)" >&2
  local t0 t1 i ups=()
  t0=$(date +%s.%N)
  for i in $(seq "$uploads"); do
    curl -s -o "$dir/up$i.json" -w '%{http_code}\n' -X POST -T "$dir/www/file.bin" \
      -H "Authorization: Bearer $tok" -H 'Content-Type: application/octet-stream' -H 'X-Filename: file.bin' -H 'Expect:' \
      "http://127.0.0.1:$port/api/v1/media" > "$dir/up$i.code" 2>&1 &
    ups+=($!)
    if [ ${#ups[@]} = 4 ]; then wait "${ups[@]}"; ups=(); fi
  done
  [ ${#ups[@]} = 0 ] || wait "${ups[@]}"
  t1=$(date +%s.%N)
  local up_rss; up_rss=$(sort -n "$LOG/p11_rss.txt" | tail -n1)
  local id; id=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["media"]["id"])' "$dir/up1.json" 2>/dev/null)
  [ -n "$id" ] || { note "P11: upload failed: $(cat "$dir/up1.code") $(head -c 300 "$dir/up1.json")"; kill "$sampler"; stop_group "$pid"; return 1; }
  # the reference: nginx, sendfile on, the same file, measured before and
  # after the server (the better of the two counts: the load of a shared
  # machine moves between runs, and the bar must not profit from that)
  local nport; nport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  cat > "$dir/nginx/nginx.conf" <<NGINX
$( [ "$(id -u)" = 0 ] && echo "user root root;" )
worker_processes auto;
pid $dir/nginx/nginx.pid;
error_log $dir/nginx/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  client_body_temp_path $dir/nginx/body; proxy_temp_path $dir/nginx/proxy;
  fastcgi_temp_path $dir/nginx/fastcgi; uwsgi_temp_path $dir/nginx/uwsgi; scgi_temp_path $dir/nginx/scgi;
  types { application/octet-stream bin; }
  server { listen 127.0.0.1:$nport; root $dir/www; }
}
NGINX
  local nginx; nginx=$(command -v nginx || echo /usr/sbin/nginx)
  local ngx_pid=
  if [ -x "$nginx" ]; then
    "$nginx" -p "$dir/nginx" -c "$dir/nginx/nginx.conf" -g 'daemon off;' > "$LOG/p11_nginx.out" 2>&1 &
    ngx_pid=$!; PIDS+=("$ngx_pid")
    for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$nport/" && break; sleep 0.05; done
    echo "bench: P11: reference: nginx (sendfile on), $conns connections, ${t}s (before the server)" >&2
    wrk -t 2 -c "$conns" -d "${t}s" --timeout 30s "http://127.0.0.1:$nport/file.bin" > "$LOG/p11_wrk_nginx_1.out" 2>&1
  else
    note "P11: nginx not installed (scripts/deps.sh): no reference"
  fi
  echo "bench: P11: wrk download, $conns connections, ${t}s: the server" >&2
  wrk -t 2 -c "$conns" -d "${t}s" --timeout 30s -H "Authorization: Bearer $tok" \
    "http://127.0.0.1:$port/api/v1/media/$id" > "$LOG/p11_wrk_server.out" 2>&1
  kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null
  stop_group "$pid"
  if [ -n "$ngx_pid" ]; then
    echo "bench: P11: reference: nginx again (after the server)" >&2
    wrk -t 2 -c "$conns" -d "${t}s" --timeout 30s "http://127.0.0.1:$nport/file.bin" > "$LOG/p11_wrk_nginx.out" 2>&1
    kill "$ngx_pid" 2>/dev/null; wait "$ngx_pid" 2>/dev/null
  fi
  python3 - "$LOG" "$OUT" "$dir" "$mib" "$uploads" "$conns" "$base" "$up_rss" "$t0" "$t1" <<'PY'
import json, os, re, sys
log, out, d, mib, uploads, conns, base, up_rss, t0, t1 = sys.argv[1:]
size, uploads, conns, base, up_rss = int(mib) * 1048576, int(uploads), int(conns), int(base), int(up_rss or 0)
codes = [open(f"{d}/up{i}.code").read().strip() for i in range(1, uploads + 1)]
ok = sum(c == "201" for c in codes)
def wrk(path):
    try:
        w = open(path).read()
    except OSError:
        return None
    rps = re.search(r"Requests/sec:\s+([0-9.]+)", w)
    non2 = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", w)
    errs = re.search(r"Socket errors: (.*)", w)
    if not rps:
        return None
    return {"requests_per_s": float(rps.group(1)), "mib_per_s": float(rps.group(1)) * size / 1048576,
            "non_2xx": int(non2.group(1)) if non2 else 0, "socket_errors": errs.group(1) if errs else None}
rss = [int(l) for l in open(f"{log}/p11_rss.txt") if l.strip().isdigit()]
srv = wrk(f"{log}/p11_wrk_server.out")
ngx = max((x for x in (wrk(f"{log}/p11_wrk_nginx_1.out"), wrk(f"{log}/p11_wrk_nginx.out")) if x),
          key=lambda x: x["mib_per_s"], default=None)
r = {"file_mib": int(mib), "connections": conns, "uploads": uploads, "uploads_ok": ok,
     "upload_mib_per_s": ok * size / 1048576 / (float(t1) - float(t0)) if ok else None,
     "download": srv, "rss_base_kb": base, "rss_peak_upload_kb": up_rss,
     "rss_peak_kb": max(rss + [base]), "rss_growth_mib": (max(rss + [base]) - base) / 1024}
json.dump(r, open(f"{out}/p11_media.json", "w"))
if ngx:
    json.dump(ngx, open(f"{out}/ref_nginx.json", "w"))
PY
  [ -s "$OUT/p11_media.json" ] || note "P11: no figure"
}

# ---- R12: a disconnect storm; online-state fan-out in a 1,000-member group -----------------
# R12: STORM_CONNS user: sockets (users that exist nowhere) on one server
# process (2 reactors), then sbload closes them all at once. The server's RSS
# is sampled every 20 ms from /proc: the peak above the joined level per
# socket (target <= 1,024 B) and the RSS 5 s later (target <= 1.1x the
# pre-storm, joined level; the idle level is shown beside it).
bench_r12() {
  local conns=18000
  [ "$SCALE" = smoke ] && conns=2000
  echo "bench: R12: disconnect storm of $conns user: sockets" >&2
  start_group r12 1 SB_DATABASE_URL="$PG_URL" SB_MIGRATE=1 || return
  local pid=$GROUP_PIDS url="ws://127.0.0.1:$GROUP_PORT/socket/websocket"
  "$SBLOAD" --scenario connections --url "$url" --conns 200 --hold 0 --topic 'user:{id}' --id-offset 700000000 \
    --quiet "${TOKEN_ARGS[@]}" > /dev/null 2>&1
  sleep 2.5 # the warm-up's closes trimmed
  local idle; idle=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
  ( while kill -0 "$pid" 2>/dev/null; do awk '/VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null; sleep 0.02; done ) > "$LOG/r12_rss.txt" &
  local sampler=$!
  run_sbload r12_storm --scenario connections --url "$url" --conns "$conns" --procs 2 --hold 3 \
    --topic 'user:{id}' --id-offset 700000000 --heartbeat 0 --sources "$SOURCES" --server-pid "$pid" "${TOKEN_ARGS[@]}"
  sleep 5
  local after5; after5=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
  kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null
  python3 - "$OUT" "$LOG/r12_rss.txt" "$idle" "$after5" "$conns" <<'PY'
import json, sys
out, samples, idle, after5, conns = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
try:
    r = json.load(open(f"{out}/r12_storm.json"))
except (OSError, ValueError):
    sys.exit(0)
rss = [int(l) for l in open(samples) if l.strip().isdigit()]
joined = r["server_rss_kb"]["end"]
peak = max(rss + [joined])
r["storm"] = {"conns": conns, "joined": r["connect"]["joined"], "idle_kb": idle, "joined_kb": joined,
              "peak_kb": peak, "after5_kb": after5, "bytes_per_socket": (peak - joined) * 1024 / conns,
              "after5_ratio": after5 / joined}
json.dump(r, open(f"{out}/r12_storm.json", "w"))
PY
  stop_group "$GROUP_PIDS"
}

# Online-state fan-out: 1,000 users, all members of one group, log in
# (user:<id>, as fast as accepted) then out; the pushes they receive per
# login (target: 0 beyond direct contacts: they have none) and their joins/s
# against 1,000 users without conversations in the same run (>= 0.9x).
bench_group_fanout() {
  [ "$PG_OK" = 1 ] || return
  local n=1000
  echo "bench: presence fan-out: $n members of one group logging in" >&2
  start_group gf 1 SB_DATABASE_URL="$PG_URL" SB_MIGRATE=1 || return
  local pid=$GROUP_PIDS url="ws://127.0.0.1:$GROUP_PORT/socket/websocket" tag
  tag=$(openssl rand -hex 4)
  mkdir -p "$OUT/gf"
  psql -qtAX "$PG_URL" -v ON_ERROR_STOP=1 > "$OUT/gf/ids.txt" 2> "$LOG/gf_psql.err" <<SQL
INSERT INTO users (username, display_name, password_hash)
  SELECT 'gf${tag}_' || g, 'Member', 'x' FROM generate_series(1, $n) g;
WITH c AS (INSERT INTO conversations (kind, title) VALUES ('group', 'bench $tag') RETURNING id)
INSERT INTO members (conversation_id, user_id, role, from_seq)
  SELECT c.id, u.id, 'member', 0 FROM c, users u WHERE u.username LIKE 'gf${tag}\_%';
SELECT id FROM users WHERE username LIKE 'gf${tag}\_%' ORDER BY id;
SQL
  psql -qtAX "$PG_URL" -v ON_ERROR_STOP=1 > "$OUT/gf/alone.txt" 2>> "$LOG/gf_psql.err" <<SQL
WITH x AS (INSERT INTO users (username, display_name, password_hash)
  SELECT 'ga${tag}_' || g, 'Alone', 'x' FROM generate_series(1, $n) g RETURNING id) SELECT id FROM x ORDER BY id;
SQL
  sed -i '/^$/d' "$OUT/gf/ids.txt" "$OUT/gf/alone.txt"
  if [ "$(wc -l < "$OUT/gf/ids.txt")" != "$n" ]; then
    note "presence fan-out: could not create the group: $(tail -n 2 "$LOG/gf_psql.err" | tr '\n' ' ')"
    stop_group "$pid"; return
  fi
  local f
  for f in alone ids; do
    run_sbload "gf_$f" --scenario connections --url "$url" --conns "$n" --procs 1 --hold 1 --heartbeat 0 \
      --topic 'user:{user}' --user-pattern '{user}' --user-file "$OUT/gf/$f.txt" --server-pid "$pid" "${TOKEN_ARGS[@]}"
    sleep 1
  done
  stop_group "$pid"
}

# ---- P13: WSS (TLS) memory per idle joined connection; handshakes/s beside openssl ----------
# (a) P13_CONNS idle joined connections over plain ws:// (P1's measurement, in
# this run), then the same over wss:// (sbload --tls-ca) against the same
# servers' TLS listener: RSS per connection above the idle baseline; target
# TLS <= plain + 4 KiB. (b) one server process with one reactor and
# `openssl s_server -WWW` (one process, one thread), same certificate (ECDSA
# P-256, made here), both asked by `openssl s_time` (TLS 1.3,
# TLS_AES_128_GCM_SHA256, X25519 for both: checked with s_client) in turns:
# -new (full handshakes) and -reuse (resumed with the ticket), each one
# connect, handshake, GET /healthz (HTTP/1.0), read to the close, close.
# Figures: connections/s of the wall clock (median of the rounds), and the
# server's CPU time per connection (/proc, utime+stime) as handshakes per
# core-second. Target: >= 80 % of s_server's for both kinds.
bench_p13() {
  local conns=20000 hold=10 st_t=4 rounds=5
  # smoke: the hold outlasts the quiet second after the joins (the trim of the
  # handshakes' free memory, see the warm-up below) before the end's RSS
  [ "$SCALE" = smoke ] && { conns=300; hold=4; st_t=1; rounds=1; }
  conns=${BENCH_P13_CONNS:-$conns}; rounds=${BENCH_P13_ROUNDS:-$rounds}
  command -v openssl >/dev/null || { note "P13: openssl not installed"; return 1; }
  local d=$OUT/p13; mkdir -p "$d/www"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$d/key.pem" \
    -out "$d/cert.pem" -days 2 -subj /CN=localhost -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
    > "$LOG/p13_cert.log" 2>&1 || { note "P13: cannot make a certificate: $(tail -n 2 "$LOG/p13_cert.log" | tr '\n' ' ')"; return 1; }
  printf '{"status":"ok"}' > "$d/www/healthz"
  local tls_env=(SB_TLS_CERT="$d/cert.pem" SB_TLS_KEY="$d/key.pem")
  # (a) memory: the same shape as P1 (processes of one reactor, one port, warm-up first)
  local nsrv=$(( (conns + PER_SERVER - 1) / PER_SERVER )) procs=$(( (conns + 18999) / 19000 )) kind
  for kind in plain tls; do
    local url=ws extra=()
    [ $kind = tls ] && { url=wss; extra=(--tls-ca "$d/cert.pem"); }
    if [ $kind = tls ]; then start_group "p13$kind" "$nsrv" SB_REACTORS=1 "${tls_env[@]}" || return 1
    else start_group "p13$kind" "$nsrv" SB_REACTORS=1 || return 1; fi
    url=$url://127.0.0.1:$GROUP_PORT/socket/websocket
    echo "bench: P13: $conns idle joined connections over $url, $nsrv server process(es)" >&2
    # warm-up: over wss, 300 handshakes per process, enough for the server's
    # trim hint (16 KiB per finished handshake, net/tls.c; 4 MiB, conn.c) so
    # the free memory the warm-up's handshakes leave is given back at its
    # quiet second, before the baseline (else a run that trims it later
    # counts it against its own connections, below zero at smoke scale)
    local warm=100 settle=1.5
    [ $kind = tls ] && { warm=300; settle=3; }
    "$SBLOAD" --scenario connections --url "$url" "${extra[@]}" --conns $((nsrv * warm)) --hold 0 \
      "${TOKEN_ARGS[@]}" --sources "$SOURCES" --progress 0 --quiet > /dev/null 2>&1
    sleep $settle
    run_sbload "p13_rss_$kind" --scenario connections --url "$url" "${extra[@]}" --conns "$conns" --procs "$procs" \
      --hold $hold --topic 'user:{id}' --sources "$SOURCES" --server-pid "$GROUP_PIDS" \
      --connect-timeout 60 --duration $((hold + 600)) "${TOKEN_ARGS[@]}"
    stop_group "$GROUP_PIDS"
  done
  # (b) handshakes on one core
  start_group p13hs 1 SB_REACTORS=1 "${tls_env[@]}" || return 1
  local sb_pid=$GROUP_PIDS sb_port=$GROUP_PORT sb_admin=$GROUP_ADMIN
  # the server's own count of full and resumed handshakes (/readyz on the admin port)
  hs_counts() { python3 -c 'import json,sys,urllib.request
try: t=json.load(urllib.request.urlopen("http://127.0.0.1:%s/readyz" % sys.argv[1], timeout=5)).get("tls", {})
except urllib.error.HTTPError as e: t=json.load(e).get("tls", {})
except Exception: t={}
print(t.get("handshakes_full", -1), t.get("handshakes_resumed", -1))' "$sb_admin"; }
  local ref_port; ref_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  ( cd "$d/www" && exec openssl s_server -accept "127.0.0.1:$ref_port" -cert "$d/cert.pem" -key "$d/key.pem" -WWW -quiet ) \
    > "$LOG/p13_s_server.log" 2>&1 &
  local ref_pid=$!; PIDS+=("$ref_pid")
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$ref_port") 2>/dev/null && break; sleep 0.05; done
  local suite=TLS_AES_128_GCM_SHA256 t
  # what each side negotiates (protocol, suite, key exchange, certificate): logged and compared
  for t in sb:$sb_port ref:$ref_port; do
    echo Q | openssl s_client -connect "127.0.0.1:${t#*:}" -tls1_3 -ciphersuites $suite -brief \
      > "$d/negotiated_${t%%:*}.txt" 2>&1
  done
  : > "$d/stime.txt"
  local r mode who port pid
  for r in $(seq "$rounds"); do
    for mode in new reuse; do
      for who in sb ref; do
        port=$sb_port; pid=$sb_pid; [ $who = ref ] && { port=$ref_port; pid=$ref_pid; }
        local c0 c1 t0 t1 n h0="- -" h1="- -"
        [ $who = sb ] && h0=$(hs_counts)
        c0=$(awk '{print $14 + $15}' "/proc/$pid/stat"); t0=$(date +%s.%N)
        openssl s_time -connect "127.0.0.1:$port" -$mode -time "$st_t" -www /healthz -tls1_3 \
          -ciphersuites $suite > "$LOG/p13_stime_${who}_${mode}_$r.out" 2>&1
        t1=$(date +%s.%N); c1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
        [ $who = sb ] && h1=$(hs_counts)
        n=$(grep -E '^[0-9]+ connections in [0-9.]+s' "$LOG/p13_stime_${who}_${mode}_$r.out" | tail -n 1 | cut -d' ' -f1)
        echo "$who $mode $r ${n:-0} $t0 $t1 $c0 $c1 $h0 $h1" >> "$d/stime.txt"
        echo "bench: P13: s_time -$mode against $who (round $r): ${n:-0} connections" >&2
      done
    done
  done
  stop_group "$sb_pid"
  kill "$ref_pid" 2>/dev/null; wait "$ref_pid" 2>/dev/null
  python3 - "$OUT" "$d" "$(getconf CLK_TCK)" "$st_t" "$rounds" "$(cut -d' ' -f1-3 /proc/loadavg)" <<'PY'
import json, re, statistics, sys
out, d, hz, secs, rounds, load = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
runs = {}
for line in open(f"{d}/stime.txt"):
    who, mode, r, n, t0, t1, c0, c1, f0, r0, f1, r1 = line.split()
    n = int(n); wall = float(t1) - float(t0); cpu = (float(c1) - float(c0)) / hz
    x = {"conns": n, "wall_s": wall, "server_cpu_s": cpu}
    if who == "sb" and "-" not in (f0, f1) and int(f0) >= 0:
        x["server_full"], x["server_resumed"] = int(f1) - int(f0), int(r1) - int(r0)
    runs.setdefault((who, mode), []).append(x)
def neg(who):
    try:
        txt = open(f"{d}/negotiated_{who}.txt").read()
    except OSError:
        return {}
    f = {}
    for k, pat in (("protocol", r"Protocol version: (\S+)"), ("suite", r"Ciphersuite: (\S+)"),
                   ("key_exchange", r"(?:Peer|Server) Temp Key: ([^\n]+)"), ("signature", r"Signature type: (\S+)")):
        m = re.search(pat, txt)
        f[k] = m.group(1).strip() if m else None
    return f
res = {"rounds": rounds, "seconds_each": secs, "load_at_end": load, "negotiated": {"sb": neg("sb"), "ref": neg("ref")}}
for mode in ("new", "reuse"):
    m = {}
    for who in ("sb", "ref"):
        rr = runs.get((who, mode), [])
        ok = [x for x in rr if x["conns"] > 0]
        if not ok:
            continue
        m[who] = {"runs": rr,
                  "per_s": statistics.median(x["conns"] / x["wall_s"] for x in ok),
                  "cpu_us": statistics.median(x["server_cpu_s"] * 1e6 / x["conns"] for x in ok)}
    if "sb" in m and "ref" in m:
        m["ratio"] = m["sb"]["per_s"] / m["ref"]["per_s"]
        m["cpu_ratio"] = m["ref"]["cpu_us"] / m["sb"]["cpu_us"] if m["sb"]["cpu_us"] else None
    res[mode] = m
res["same_parameters"] = res["negotiated"]["sb"] == res["negotiated"]["ref"] and all(res["negotiated"]["sb"].values() or [None])
json.dump(res, open(f"{out}/p13_handshakes.json", "w"), indent=1)
PY
  return 0
}

# ---- run -----------------------------------------------------------------------------------
echo "bench: scale $SCALE; results in $OUT" >&2
if want ref; then
  ref_pgbench
  ref_redis
  ref_net
  start_group ref 1 && { ref_wrk "$GROUP_ADMIN"; stop_group "$GROUP_PIDS"; }
fi
want p1 && bench_connections
{ want p1 || want p2; } && bench_p2
want p3 && bench_fanout p3_fanout "$P3_SUBS" "$P3_RUN" 32
# the same subscribers, one broadcast at a time: the latency of a round without a queue
want p3 && bench_fanout p3_fanout_w1 "$P3_SUBS" "$(( P3_RUN / 2 ))" 1
# P3 at 100,000 subscribers (part "p3", or "p3c" alone): back to back (window 32), then one at a time
if [ "$SCALE" != smoke ] && { want p3 || want p3c; }; then
  bench_fanout_cluster p3_fanout_cluster 100000 "$P3_RUN" 32
  bench_fanout_cluster p3_fanout_cluster_w1 100000 "$(( P3_RUN / 2 ))" 1
fi
want p5 && bench_cluster
if want p4 || want p6 || want p8; then bench_db_scenarios; fi
want p9 && bench_calls
want p10 && bench_p10
want p4push && bench_p4push
want p11 && bench_p11
want p12 && bench_p12
want r12 && bench_r12
want p13 && bench_p13
want fanout && bench_group_fanout
want p7 && bench_fanout p7_soak "$(( P3_SUBS / 4 ))" "$P7_RUN" 8 soak

T_END=$(date +%s)
python3 scripts/bench_report.py "$OUT" "$SCALE" $((T_END - T_START))
RC=$?
if command -v gnuplot >/dev/null && [ -s "$OUT/p1_connections.json" ]; then
  scripts/bench_plot.sh "$OUT/p1_connections.json" "$OUT/rss.png" >/dev/null 2>&1 \
    && echo "bench: RSS plot: $OUT/rss.png" >&2
fi
exit $RC
