#!/usr/bin/env bash
# libFuzzer runs over the server's decoders under ASan + UBSan (target S3):
# HTTP requests, WebSocket frames, Phoenix messages, JSON bodies, tokens.
#   scripts/fuzz.sh [--smoke] [target...]     (make fuzz)
# Each target runs FUZZ_SECONDS (default 60; --smoke: 5) from its committed
# seeds (fuzz/corpus/<target>/) plus what earlier runs found
# (build/fuzz/corpus/<target>/, not committed), with fuzz/dict/<target>.dict
# when present. A finding stops the run: the input is saved as
# build/fuzz/artifacts/<target>-crash-... and the script exits non-zero;
# replay it with build/fuzz/fuzz_<target> <file>.
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${FUZZ_SECONDS:-60}
targets=()
for a in "$@"; do
  case $a in
    --smoke) secs=${FUZZ_SMOKE_SECONDS:-5} ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) targets+=("$a") ;;
  esac
done
if [ ${#targets[@]} -eq 0 ]; then
  for f in fuzz/fuzz_*.c; do
    t=$(basename "$f" .c); t=${t#fuzz_}
    [ "$t" = env ] || targets+=("$t")
  done
fi

command -v clang >/dev/null || { echo "fuzz: clang is missing (scripts/deps.sh installs it)" >&2; exit 2; }
make -s -C fuzz -j"$(nproc)" >/dev/null

export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
mkdir -p build/fuzz/artifacts
failed=0
for t in "${targets[@]}"; do
  bin=build/fuzz/fuzz_$t
  [ -x "$bin" ] || { echo "fuzz: no target '$t'" >&2; exit 2; }
  work=build/fuzz/corpus/$t
  mkdir -p "$work"
  dict=()
  [ -f "fuzz/dict/$t.dict" ] && dict=(-dict="fuzz/dict/$t.dict")
  log=build/fuzz/$t.log
  echo "fuzz: $t for ${secs}s"
  # -rss_limit_mb bounds memory: a leak or unbounded growth is a finding too
  if "$bin" -max_total_time="$secs" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 -artifact_prefix="build/fuzz/artifacts/$t-" "${dict[@]}" \
      "$work" "fuzz/corpus/$t" >"$log" 2>&1; then
    echo "fuzz: $t ok ($(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$') runs, $(ls "$work" | wc -l) corpus entries)"
  else
    failed=$((failed + 1))
    echo "fuzz: $t FAILED, see $log:" >&2
    grep -E -m5 'ERROR|SUMMARY|runtime error|Test unit written' "$log" >&2 || tail -n 20 "$log" >&2
  fi
done
[ "$failed" -eq 0 ]
