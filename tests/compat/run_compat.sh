#!/usr/bin/env bash
# Runs the seed's Python client example (tests/compat/seed_client.py) against
# a real pykv server. Builds nothing: pass the binary to test.
#
#   tests/compat/run_compat.sh [path/to/pykv]   (default: target/debug/pykv)
#
# Needs python3 with `requests`. Exits with the script's status and ends with
# "1 passed, 0 failed" or "0 passed, 1 failed".
set -u

BIN="${1:-target/debug/pykv}"
HERE="$(cd "$(dirname "$0")" && pwd)"
WORK="$(mktemp -d)"
DATA="$WORK/data"
OUT="$WORK/stdout"
ERR="$WORK/stderr"
mkdir -p "$DATA"
PID=""

cleanup() {
    if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
        kill "$PID" 2>/dev/null
        wait "$PID" 2>/dev/null
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

fail() {
    echo "run_compat: $*" >&2
    echo "0 passed, 1 failed"
    exit 1
}

[ -x "$BIN" ] || fail "no executable pykv binary at $BIN (build it first, or pass its path)"

RUST_LOG="${RUST_LOG:-warn}" "$BIN" serve --host 127.0.0.1 --port 0 --data-dir "$DATA" \
    >"$OUT" 2>"$ERR" &
PID=$!

URL=""
for _ in $(seq 1 200); do   # up to 20 s
    URL="$(sed -n 's|^PyKV listening on \(http://[^[:space:]]*\).*$|\1|p' "$OUT" | head -n 1)"
    [ -n "$URL" ] && break
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.1
done
if [ -z "$URL" ]; then
    echo "--- pykv stdout ---" >&2; cat "$OUT" >&2
    echo "--- pykv stderr ---" >&2; cat "$ERR" >&2
    fail "pykv did not print its listening line"
fi
echo "run_compat: pykv listening on $URL"

PYKV_URL="$URL" python3 "$HERE/seed_client.py"
STATUS=$?

kill "$PID" 2>/dev/null
wait "$PID" 2>/dev/null
PID=""

if [ "$STATUS" -eq 0 ]; then
    echo "1 passed, 0 failed"
else
    echo "--- pykv stderr ---" >&2; cat "$ERR" >&2
    echo "0 passed, 1 failed"
fi
exit "$STATUS"
