#!/usr/bin/env bash
# The static binary serves with nothing else around it, as in the
# FROM-scratch image (deploy/Dockerfile): a root directory holding only the
# binary and an empty data directory, entered with chroot as an
# unprivileged user (the image's USER). A write, a read, a clean stop, and
# the log on disk. Needs root (chroot).
#
#   RUSTFLAGS="-C target-feature=+crt-static" cargo build --profile dist --target x86_64-unknown-linux-gnu
#   bash deploy/smoke-static.sh target/x86_64-unknown-linux-gnu/dist/pykv
set -euo pipefail
binary=${1:?usage: smoke-static.sh PATH-TO-STATIC-PYKV}

if ldd "$binary" 2>&1 | grep -q '=>'; then
    echo "FAIL: $binary is linked dynamically:"; ldd "$binary"; exit 1
fi
root=$(mktemp -d)
out=$(mktemp)
pid=
cleanup() {
    [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
    rm -rf "$root" "$out"
}
trap cleanup EXIT
chmod 755 "$root"
cp "$binary" "$root/pykv"
mkdir "$root/data"
chown 65532:65532 "$root/data"
echo "root directory: $(cd "$root" && find . | sort | tr '\n' ' ')"

chroot --userspec=65532:65532 "$root" /pykv serve --host 127.0.0.1 --port 0 --data-dir /data >"$out" 2>&1 &
pid=$!
url=
for _ in $(seq 100); do
    url=$(sed -n 's/^PyKV listening on //p' "$out")
    [ -n "$url" ] && break
    sleep 0.1
done
[ -n "$url" ] || { echo "FAIL: no listening line"; cat "$out"; exit 1; }

python3 - "$url" <<'PY'
import json, sys, urllib.request
url = sys.argv[1]
def call(method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url + path, data=data, method=method)
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status, json.loads(r.read())
assert call("POST", "/set?ns=smoke", {"key": "k", "value": {"n": 1}}) == (200, {"key": "k", "namespace": "smoke", "status": "success"})
status, answer = call("GET", "/get/k?ns=smoke")
assert status == 200 and answer["value"] == {"n": 1}, answer
status, health = call("GET", "/health")
assert status == 200 and health["status"] == "healthy", health
print("smoke: set, get and health answered inside the empty root")
PY

kill -TERM "$pid"
wait "$pid"
pid=
grep -q '"smoke"' "$root/data/wal.log" || { echo "FAIL: the write is not in the log"; exit 1; }
echo "smoke: clean stop, the write is in /data/wal.log"
