#!/usr/bin/env bash
# live.sh SBLOAD [SWITCHBOARD] — small end-to-end runs of sbload against the
# real server (default build/release/switchboard, SB_TEST_CHANNELS=1 for the
# echo:* topics). Checks that every connection joined, nothing failed, the
# fan-out delivered everything and a forged token is refused.
set -euo pipefail
SBLOAD=$(realpath "$1")
SB_BIN=$(realpath "${2:-${SB_BIN:-$(dirname "$0")/../../build/release/switchboard}}")
cd "$(dirname "$0")"
LOG=$(mktemp -d)
trap 'kill $SRV_PID 2>/dev/null || true; rm -rf "$LOG"' EXIT
SECRET=live-test-secret-0123456789abcdef-0123
SB_SECRET=$SECRET SB_TEST_CHANNELS=1 SB_RATELIMIT_CONNECT_IP=off SB_PORT=0 SB_HOST=127.0.0.1 SB_ADMIN_PORT=0 "$SB_BIN" serve >"$LOG/srv" 2>&1 &
SRV_PID=$!
for _ in $(seq 100); do grep -q listening "$LOG/srv" 2>/dev/null && break; sleep 0.1; done
PORT=$(grep -m1 listening "$LOG/srv" | python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())["port"])')
URL=ws://127.0.0.1:$PORT/socket/websocket
COMMON=(--url "$URL" --token-secret $SECRET --progress 0 --server-pid $SRV_PID)

check() { # name file python-condition
  python3 - "$2" "$3" "$1" <<'PY'
import json, sys
line = [l for l in open(sys.argv[1]) if l.startswith("RESULT ")][-1]
r = json.loads(line[7:])
ok = eval(sys.argv[2], {}, {"r": r})
print(("PASS " if ok else "FAIL ") + sys.argv[3])
if not ok:
    print(json.dumps(r, indent=1)); sys.exit(1)
PY
}

"$SBLOAD" --scenario connections --conns 300 --procs 2 --hold 1 --topic 'echo:{id}' "${COMMON[@]}" >"$LOG/c" 
check connections "$LOG/c" 'r["connect"]["joined"]==300 and not r["errors"] and r["held_at_stop"]==300'
"$SBLOAD" --scenario fanout --conns 200 --procs 2 --count 300 --window 4 --topic echo:fanout "${COMMON[@]}" >"$LOG/f"
check fanout "$LOG/f" 'r["fanout"]["deliveries"]==300*200 and r["fanout"]["broadcasts_complete"]==300 and not r["errors"]'
"$SBLOAD" --scenario sends --conns 50 --run 1 --topic 'echo:{id}' --event ping "${COMMON[@]}" >"$LOG/s"
check sends-as-ping "$LOG/s" 'r["sends"]["acks"]>0 and not r["errors"]'
# open loop: 500 sends/s over 50 connections, 1 s of warm-up then 2 s measured;
# the echo keeps up: 1,500 sends, the 1,000 of the measured slots in the histograms
"$SBLOAD" --scenario sends --conns 50 --warmup 1 --run 2 --send-rate 500 --topic 'echo:{id}' --event ping "${COMMON[@]}" >"$LOG/sp"
check sends-paced "$LOG/sp" '(lambda s: s["mode"]=="paced" and 425<=s["achieved_rate"]<=525 and s["acks"]==1500 and s["unanswered"]==0 and s["ack_latency"]["count"]==1000 and s["send_lag"]["count"]==1000)(r["sends"]) and not r["errors"]'
# open loop past capacity: one connection owed 200,000 sends/s falls behind;
# the backlog must show as late sends, unanswered ones and latency, not vanish
"$SBLOAD" --scenario sends --conns 1 --run 1 --drain 1 --send-rate 200000 --topic 'echo:{id}' --event ping "${COMMON[@]}" >"$LOG/so"
check sends-paced-overload "$LOG/so" '(lambda s: s["late"]>100 and s["unanswered"]>50000 and s["achieved_rate"]<100000 and s["ack_latency"]["p99_ms"]>500 and s["ack_latency"]["count"]==s["acks"]+s["unanswered"])(r["sends"])'
"$SBLOAD" --scenario connections --conns 20 --hold 0 --topic 'echo:{id}' --url "$URL" --token-secret wrong --retries 0 --progress 0 >"$LOG/bad" || true
check bad-token-refused "$LOG/bad" 'r["connect"]["joined"]==0 and r["errors"].get("err_http_status")==20'
