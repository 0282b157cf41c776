# Sourced by .ci/run: starts Redis servers on loopback for the conformance
# runs against the Redis backend, and stops them. Every server runs in a
# directory of its own under $REDIS_ROOT, with no persistence (the tests
# need none) and a short cluster-node-timeout, so a cluster forms (and
# would fail over) in seconds.

REDIS_ROOT=""

# Installs Debian's redis-server (7.x, with cluster support) if missing.
redis_install() {
    if command -v redis-server >/dev/null && command -v redis-cli >/dev/null; then
        return
    fi
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update
    $sudo apt-get install -y redis-server
}

# Prints N free loopback ports whose cluster bus port (port + 10000) is
# free as well.
redis_free_ports() {
    python3 - "$1" <<'PY'
import socket, sys
def free(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False
ports = []
while len(ports) < int(sys.argv[1]):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    if port < 55000 and port not in ports and free(port + 10000):
        ports.append(port)
print(" ".join(map(str, ports)))
PY
}

# Starts one redis-server on PORT with extra flags; waits for its PONG.
redis_start_one() {
    local port=$1
    shift
    local dir="$REDIS_ROOT/$port"
    mkdir -p "$dir"
    redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --save '' --appendonly no \
        --maxmemory-policy noeviction --daemonize yes \
        --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" "$@"
    for _ in $(seq 100); do
        redis-cli -p "$port" ping 2>/dev/null | grep -q PONG && return 0
        sleep 0.05
    done
    echo "redis-server on port $port did not start; its log:" >&2
    cat "$dir/redis.log" >&2
    return 1
}

# Starts a single Redis; sets REDIS_SINGLE_URL.
redis_start_single() {
    [ -n "$REDIS_ROOT" ] || REDIS_ROOT=$(mktemp -d -t pykv-redis-XXXXXX)
    local port
    port=$(redis_free_ports 1)
    redis_start_one "$port"
    REDIS_SINGLE_URL="redis://127.0.0.1:$port"
}

# Starts a cluster of three masters with a replica each and waits for
# cluster_state:ok on every node and every replica in sync; sets
# REDIS_CLUSTER_URL.
redis_start_cluster() {
    [ -n "$REDIS_ROOT" ] || REDIS_ROOT=$(mktemp -d -t pykv-redis-XXXXXX)
    local ports nodes=() port
    ports=$(redis_free_ports 6)
    for port in $ports; do
        redis_start_one "$port" --cluster-enabled yes --cluster-config-file nodes.conf \
            --cluster-node-timeout 2000
        nodes+=("127.0.0.1:$port")
    done
    redis-cli --cluster create "${nodes[@]}" --cluster-replicas 1 --cluster-yes >"$REDIS_ROOT/create.log"
    local ready
    for _ in $(seq 200); do
        ready=0
        for port in $ports; do
            # Ready: the cluster is ok, and a replica has synced with its
            # master (one that never did refuses to take over).
            redis-cli -p "$port" cluster info | grep -q '^cluster_state:ok' &&
                redis-cli -p "$port" info replication |
                grep -qE '^(role:master|master_link_status:up)' &&
                ready=$((ready + 1))
        done
        [ "$ready" -eq 6 ] && break
        sleep 0.1
    done
    if [ "$ready" -ne 6 ]; then
        echo "the Redis Cluster did not reach cluster_state:ok; redis-cli said:" >&2
        cat "$REDIS_ROOT/create.log" >&2
        return 1
    fi
    REDIS_CLUSTER_URL="redis-cluster://$(IFS=,; echo "${nodes[*]}")"
}

# Stops every Redis started here (by the pids they wrote) and removes
# their directories.
redis_stop_all() {
    [ -n "$REDIS_ROOT" ] || return 0
    local pidfile
    for pidfile in "$REDIS_ROOT"/*/redis.pid; do
        [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null || true
    done
    sleep 0.2
    rm -rf "$REDIS_ROOT"
    REDIS_ROOT=""
}
