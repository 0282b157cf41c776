#!/usr/bin/env python3
"""PyKV over Redis Cluster against webdis, with the same generator.

Issue 14, item 7: GET and SET throughput and p99, side by side in one run,
of
- one PyKV node over a Redis Cluster;
- two PyKV nodes over the same cluster, loaded at once (one generator each,
  half the connections each; throughputs summed, the worse p99 kept);
- the embedded backend;
- one PyKV node over a single Redis (the like-for-like of the next line);
- webdis over that single Redis (Debian's `webdis`, HTTP over Redis), with
  `pykv bench --api webdis`: `GET /GET/KEY` and `GET /SET/KEY/VALUE`.

The Redis servers are the ones `.ci/redis.sh` starts (loopback, no
persistence); webdis is started here on a free port with its Debian
configuration's settings (2 threads) pointed at the single Redis.

    cargo build --release
    source .ci/redis.sh && redis_start_single && redis_start_cluster
    python3 bench/redis_vs_webdis.py --single $REDIS_SINGLE_URL \\
        --cluster $REDIS_CLUSTER_URL [--runs 3] [--duration 5]
    redis_stop_all

Medians over the runs are printed as a Markdown table; each run's figures
on stderr. GETs are of existing keys (the key space is preloaded).
"""

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import benchlib


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--binary", default=benchlib.default_binary())
    p.add_argument("--single", required=True, help="redis://HOST:PORT of a single Redis")
    p.add_argument("--cluster", required=True, help="redis-cluster://... of a Redis Cluster")
    p.add_argument("--webdis", default="webdis", help="the webdis binary")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--duration", type=float, default=5, help="seconds per measurement")
    p.add_argument("--warmup", type=float, default=1)
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--keyspace", type=int, default=10_000)
    p.add_argument("--value-size", type=int, default=32)
    return p.parse_args()


def serve(args, *flags):
    argv = [args.binary, "serve", "--port", "0", "--data-dir", "{data}", *flags]
    return benchlib.Process(argv, "PyKV listening on ")


def bench_argv(args, url, op, connections, *extra):
    return [
        args.binary, "bench", "--url", url, "--json", "--quiet", "--op", op,
        "-c", str(connections), "--threads", "1", "--duration", str(args.duration),
        "--warmup", str(args.warmup), "--keyspace", str(args.keyspace),
        "--value-size", str(args.value_size), *extra,
    ]


def measure(args, urls, op, *extra):
    """GET (preloaded) or SET through every URL at once, one generator
    each, the connections shared out: (summed req/s, worst p99 in ms)."""
    if op == "get":
        # Preload once, unmeasured, through the first URL.
        benchlib.bench(
            args.binary, urls[0], "--op", "get", "-n", "1", "--preload",
            "--keyspace", args.keyspace, "--value-size", args.value_size, *extra,
        )
    each = max(1, args.connections // len(urls))
    runs = [
        subprocess.Popen(bench_argv(args, url, op, each, *extra), stdout=subprocess.PIPE, text=True)
        for url in urls
    ]
    reports = [json.loads(run.communicate()[0]) for run in runs]
    for report in reports:
        if report["errors_total"] or report["non_2xx"]:
            print(f"warning: {op} {report['url']}: {report['status']} {report['first_error']}",
                  file=sys.stderr)
    rps = sum(r["throughput_rps"] for r in reports)
    p99 = max(r["latency_us"]["p99"] for r in reports) / 1000
    return rps, p99


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Webdis:
    """webdis on a free port over the Redis at `redis_url`."""

    def __init__(self, binary, redis_url):
        host_port = redis_url.split("//", 1)[1].rstrip("/")
        host, port = host_port.rsplit(":", 1)
        self.dir = tempfile.TemporaryDirectory(prefix="webdis-")
        self.port = free_port()
        config = {
            "redis_host": host, "redis_port": int(port), "redis_auth": None,
            "http_host": "127.0.0.1", "http_port": self.port, "threads": 2,
            "daemonize": False, "database": 0, "verbosity": 0,
            "logfile": os.path.join(self.dir.name, "webdis.log"),
        }
        path = os.path.join(self.dir.name, "webdis.json")
        with open(path, "w") as f:
            json.dump(config, f)
        self.proc = subprocess.Popen([binary, path], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.05)
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.proc.terminate()
        self.proc.wait()
        self.dir.cleanup()


def one_run(args, run):
    out = {}
    prefix = f"bench-{os.getpid()}-{run}"
    with serve(args, "--backend", args.cluster, "--redis-prefix", prefix) as node:
        out["one node, cluster"] = (measure(args, [node.url], "get"),
                                    measure(args, [node.url], "set"))
    with serve(args, "--backend", args.cluster, "--redis-prefix", prefix + "-2") as a, \
            serve(args, "--backend", args.cluster, "--redis-prefix", prefix + "-2") as b:
        out["two nodes, cluster"] = (measure(args, [a.url, b.url], "get"),
                                     measure(args, [a.url, b.url], "set"))
    with serve(args) as node:
        out["embedded"] = (measure(args, [node.url], "get"), measure(args, [node.url], "set"))
    with serve(args, "--backend", args.single, "--redis-prefix", prefix) as node:
        out["one node, single Redis"] = (measure(args, [node.url], "get"),
                                         measure(args, [node.url], "set"))
    with Webdis(args.webdis, args.single) as webdis:
        out["webdis, single Redis"] = (measure(args, [webdis.url], "get", "--api", "webdis"),
                                       measure(args, [webdis.url], "set", "--api", "webdis"))
    return out


def main():
    args = parse_args()
    benchlib.check_binary(args.binary)
    runs = []
    for run in range(args.runs):
        figures = one_run(args, run)
        print(f"run {run + 1}: {figures}", file=sys.stderr)
        runs.append(figures)
    print("| Setup | GET req/s | GET p99 (ms) | SET req/s | SET p99 (ms) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for setup in runs[0]:
        med = lambda op, i: statistics.median(r[setup][op][i] for r in runs)
        print(f"| {setup} | {med(0, 0):,.0f} | {med(0, 1):.2f} | {med(1, 0):,.0f} | {med(1, 1):.2f} |")


if __name__ == "__main__":
    main()
