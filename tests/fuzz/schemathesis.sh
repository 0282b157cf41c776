#!/usr/bin/env bash
# Property-based fuzzing of the HTTP API from its own OpenAPI document, with
# Schemathesis (`pip install schemathesis`, version 4): every operation of
# /openapi.json gets generated requests, valid and invalid, and every check
# runs (`--checks all`: no 5xx, statuses, content types, headers and bodies
# as documented, invalid data refused, valid data accepted, auth honoured).
#
#   bash tests/fuzz/schemathesis.sh target/debug/pykv
#
# Builds nothing: $1 is the pykv binary. Runs the server twice, each in a
# fresh data directory on a free port:
#   1. open (no token);
#   2. closed: an admin token and a tenant token exist; Schemathesis sends
#      the admin token.
# Each run must end with zero failures, zero 5xx answers (counted by the
# server itself in /metrics) and at least MIN_REQUESTS requests. The last
# line is `N passed, M failed` (test cases, both runs together).
#
# Environment: ST_MAX_EXAMPLES (default 300 per operation), ST_SEED (default
# 20261125), ST_WORKERS (default 1), MIN_REQUESTS (default 1000). Works
# offline: Schemathesis reads the document from the server under test.
#
# One worker by default: CPython 3.11 keeps the AST constructor's recursion
# depth in state shared by every thread (fixed in 3.12), so two workers
# that describe a Hypothesis filter at the same moment (`ast.parse`) crash
# the tool with "AST constructor recursion depth mismatch", now and then,
# on any operation. With one worker that cannot happen, and a crash of the
# tool counts as a failure like any other.
set -euo pipefail

PYKV=${1:?usage: $0 PATH/TO/pykv}
PYKV=$(cd "$(dirname "$PYKV")" && pwd)/$(basename "$PYKV")
MAX_EXAMPLES=${ST_MAX_EXAMPLES:-300}
SEED=${ST_SEED:-20261125}
WORKERS=${ST_WORKERS:-1}
MIN_REQUESTS=${MIN_REQUESTS:-1000}
CONFIG=$(cd "$(dirname "$0")" && pwd)/schemathesis.toml

command -v schemathesis >/dev/null || {
    echo "schemathesis is not installed: python3 -m pip install schemathesis" >&2
    exit 2
}
case "$(schemathesis --version 2>&1)" in
    *"version 4."*) ;;
    *) echo "this script needs Schemathesis 4 (found: $(schemathesis --version 2>&1))" >&2; exit 2 ;;
esac

WORK=$(mktemp -d -t pykv-schemathesis.XXXXXX)
SERVER_PID=
cleanup() {
    if [[ -n $SERVER_PID ]]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

TOTAL_PASSED=0
TOTAL_FAILED=0
STATUS=0

# start_server NAME: runs pykv in $WORK/NAME/data; sets SERVER_PID and URL.
start_server() {
    local dir=$WORK/$1
    mkdir -p "$dir/data"
    RUST_LOG=warn "$PYKV" serve --host 127.0.0.1 --port 0 --data-dir "$dir/data" \
        >"$dir/stdout" 2>"$dir/stderr" &
    SERVER_PID=$!
    URL=
    for _ in $(seq 200); do
        URL=$(sed -n 's/^PyKV listening on //p' "$dir/stdout" | head -n 1)
        [[ -n $URL ]] && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "pykv did not start; stderr:" >&2
    cat "$dir/stderr" >&2
    exit 1
}

stop_server() {
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
}

# requests_by_status URL [TOKEN]: "STATUS COUNT" lines from /metrics.
requests_by_status() {
    local auth=()
    [[ -n ${2:-} ]] && auth=(-H "Authorization: Bearer $2")
    python3 - "$1/metrics" "${2:-}" <<'PY'
import re, sys, urllib.request
request = urllib.request.Request(sys.argv[1])
if sys.argv[2]:
    request.add_header("Authorization", "Bearer " + sys.argv[2])
text = urllib.request.urlopen(request, timeout=10).read().decode()
counts = {}
for line in text.splitlines():
    m = re.match(r'pykv_http_requests_total\{[^}]*status="(\d+)"[^}]*\}\s+(\d+)', line)
    if m:
        counts[m.group(1)] = counts.get(m.group(1), 0) + int(m.group(2))
for status, n in sorted(counts.items()):
    print(status, n)
PY
}

# run NAME TOKEN [SCHEMATHESIS OPTIONS...]: Schemathesis against the
# running server (TOKEN may be empty), then the server's own count of
# requests and 5xx answers.
# GET /watch is left out: its answer is a stream that never ends, which
# Schemathesis would wait out to its timeout on every example; the change
# feed has its own tests (tests/watch.rs), bad input included.
run() {
    local name=$1 token=${2:-} dir=$WORK/$1
    shift 2
    local headers=()
    [[ -n $token ]] && headers=(-H "Authorization: Bearer $token")
    echo "== schemathesis: $name server at $URL"
    local rc=0
    # From the work directory: Schemathesis keeps a cache (.schemathesis/)
    # in the current directory.
    (cd "$WORK" && schemathesis --config-file "$CONFIG" run "$URL/openapi.json" \
        --checks all \
        --max-examples "$MAX_EXAMPLES" \
        --seed "$SEED" \
        --workers "$WORKERS" \
        --continue-on-failure \
        --request-timeout 10 \
        --exclude-path /watch \
        --report json --report-dir "$dir/report" \
        "${headers[@]}" "$@") || rc=$?
    local report
    report=$(ls "$dir"/report/json-*.json 2>/dev/null | head -n 1 || true)
    if [[ -z $report ]]; then
        echo "FAIL ($name): schemathesis wrote no report (exit $rc)" >&2
        STATUS=1
        TOTAL_FAILED=$((TOTAL_FAILED + 1))
        return
    fi
    local generated failed
    read -r generated failed < <(python3 - "$report" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
t = r["test_cases"]
print(t["generated"], t["with_failures"] + t["errored"] + sum(e.get("count", 1) for e in r.get("errors") or []))
PY
)
    local statuses requests server_errors
    statuses=$(requests_by_status "$URL" "$token")
    requests=$(awk '{n += $2} END {print n + 0}' <<<"$statuses")
    server_errors=$(awk '$1 >= 500 {n += $2} END {print n + 0}' <<<"$statuses")
    echo "-- $name: $generated test cases, $failed failed; the server answered $requests requests:" \
        $(tr '\n' ' ' <<<"$statuses")
    if grep -q "panicked at" "$dir/stderr"; then
        echo "FAIL ($name): the server panicked:" >&2
        grep -A2 "panicked at" "$dir/stderr" | head -n 20 >&2
        STATUS=1
        failed=$((failed + 1))
    fi
    if ((server_errors > 0)); then
        echo "FAIL ($name): $server_errors answers with a 5xx status" >&2
        STATUS=1
    fi
    # The quota run covers one operation; the two full runs carry the count.
    if [[ $name != quota ]] && ((requests < MIN_REQUESTS)); then
        echo "FAIL ($name): only $requests requests (want at least $MIN_REQUESTS); raise ST_MAX_EXAMPLES" >&2
        STATUS=1
    fi
    if ((rc != 0 || failed > 0)); then
        echo "FAIL ($name): schemathesis exited $rc with $failed failed test cases (see above)" >&2
        STATUS=1
    fi
    TOTAL_PASSED=$((TOTAL_PASSED + generated - failed))
    TOTAL_FAILED=$((TOTAL_FAILED + failed))
}

# PUT /quota (the only PUT) is fuzzed on a server of its own: a quota that
# the fuzzer sets to a few bytes would make every later write answer 507
# (Insufficient Storage, a documented answer that Schemathesis counts as a
# server error), whatever the write.
QUOTA_ONLY=(--include-method PUT)
EVERYTHING_ELSE=(--exclude-method PUT)

# 1. An open server.
start_server open
run open "" "${EVERYTHING_ELSE[@]}"
stop_server
start_server quota
run quota "" "${QUOTA_ONLY[@]}"
stop_server

# 2. A server with tokens: an admin token (sent) and a tenant's.
mkdir -p "$WORK/closed/data"
ADMIN=$("$PYKV" token create --data-dir "$WORK/closed/data" --admin 2>/dev/null)
"$PYKV" token create --data-dir "$WORK/closed/data" --ns tenant_a --access write >/dev/null 2>&1
start_server closed
# The server requires tokens from its start.
code=$(python3 -c 'import sys, urllib.request, urllib.error
try:
    urllib.request.urlopen(sys.argv[1] + "/stats", timeout=10); print(200)
except urllib.error.HTTPError as e:
    print(e.code)' "$URL")
if [[ $code != 401 ]]; then
    echo "FAIL (closed): GET /stats without a token answered $code, not 401" >&2
    STATUS=1
fi
run closed "$ADMIN" "${EVERYTHING_ELSE[@]}"
stop_server

echo "$TOTAL_PASSED passed, $TOTAL_FAILED failed"
exit "$STATUS"
