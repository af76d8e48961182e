#!/usr/bin/env bash
# The layering check must fail on a wrong include: copies server/src into a
# temporary tree, plants one wrong include of each kind the rule forbids, and
# asserts that scripts/layering.py fails and names the file and line. Then
# the real tree is checked. Prints 'N passed, N failed'.
set -uo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0
expect_fail() { # name, file (relative to server/src), line to append, expected message part
  local name=$1 file=$2 line=$3 want=$4
  rm -rf "$tmp/src"; cp -r server/src "$tmp/src"
  printf '%s\n' "$line" >> "$tmp/src/$file"
  local n; n=$(wc -l < "$tmp/src/$file")
  local out; out=$(python3 scripts/layering.py "$tmp/src" 2>&1); local rc=$?
  if [ $rc -ne 0 ] && grep -qF "$file:$n: " <<<"$out" && grep -qF "$want" <<<"$out"; then
    passed=$((passed + 1)); echo "ok: $name"
  else
    failed=$((failed + 1)); echo "FAILED: $name (exit $rc)"; echo "$out" | tail -5
  fi
}
expect_fail "a layer includes one above it" base/buf.c '#include "chat/chat.h"' 'a layer above'
expect_fail "the transport names a protocol" net/conn.c '#include "http/http.h"' 'a layer above'
expect_fail "a sibling of the same layer" store/db.c '#include "bus/pubsub.h"' 'sibling'
expect_fail "a domain core includes http" chat/chat_ops.c '#include "http/router.h"' 'only the edges'
expect_fail "an unfoldered include of another folder" sync/cursor.c '#include "buf.h"' 'is not in sync/'
# a domain edge may include http/ and phoenix/, main.c anything: neither is named
rm -rf "$tmp/src"; cp -r server/src "$tmp/src"
edge=$(cd "$tmp/src" && ls chat/*_rest.c | head -1)
printf '#include "http/router.h"\n#include "phoenix/phx_socket.h"\n' >> "$tmp/src/$edge"
printf '#include "chat/chat.h"\n' >> "$tmp/src/main.c"
printf '#include "admin/admin.h"\n' >> "$tmp/src/app.c"
n=$(wc -l < "$tmp/src/$edge")
out=$(python3 scripts/layering.py "$tmp/src" 2>&1)
if ! grep -qE "^($edge:($n|$((n - 1))):|main\.c:|app\.c:)" <<<"$out"; then
  passed=$((passed + 1)); echo "ok: edges, main.c and app.c may include what they compose"
else
  failed=$((failed + 1)); echo "FAILED: an edge's or main.c's include was refused"; echo "$out" | tail -5
fi
if python3 scripts/layering.py; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
echo "layering: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
