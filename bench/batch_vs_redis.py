#!/usr/bin/env python3
"""Batches (issue 15): keys per second with batches of N GETs and of N SETs
over HTTP (`POST /batch`), against Redis's pipelined figure
(`redis-benchmark -P N -t get,set`), on the same machine.

Each run starts every server afresh and measures, in turns: PyKV GET
batches, Redis on the same workload (SET then GET, as redis-benchmark
orders them), PyKV SET batches, then Redis as the issue quotes it. PyKV
runs with its defaults (`--fsync everysec`).

- "Redis, same workload": `--appendonly yes --appendfsync everysec` (what
  PyKV's default promises), --keyspace random keys (`-r`) of --value-size
  bytes (`-d`), as PyKV's generator picks them.
- "Redis, as quoted": `redis-benchmark -P N -t get,set` with its defaults
  (one key, 3-byte values, 50 clients), no persistence: the figure the
  issue quotes (1.5 to 1.8 million operations a second on this machine).

Every PyKV measurement follows --warmup seconds of the same load,
unmeasured; its GETs find every key (preloaded). Medians are printed as a
Markdown table, each run's figures on stderr.

    cargo build --release
    python3 bench/batch_vs_redis.py [--runs 5] [--batch-size 100]

Needs redis-server and redis-benchmark (Debian: apt-get install
redis-server).
"""

import argparse
import os
import re
import shutil
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
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--duration", type=float, default=4, help="seconds per PyKV measurement")
    p.add_argument("--warmup", type=float, default=1)
    p.add_argument("--connections", type=int, default=8, help="PyKV generator connections")
    p.add_argument("--redis-clients", type=int, default=50, help="redis-benchmark -c")
    p.add_argument("--redis-requests", type=int, default=4_000_000, help="redis-benchmark -n")
    p.add_argument("--keyspace", type=int, default=100_000)
    p.add_argument("--value-size", type=int, default=32)
    return p.parse_args()


def pykv_keys_per_s(args, url, ratio, preload):
    extra = ["--preload"] if preload else []
    report = benchlib.bench(
        args.binary, url, "--op", "batch", "--batch-size", args.batch_size,
        "--ratio", ratio, "-c", args.connections, "--threads", 1,
        "--duration", args.duration, "--warmup", args.warmup,
        "--keyspace", args.keyspace, "--value-size", args.value_size, *extra,
    )
    return report["keys_per_s"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis_run(args, same_workload):
    """redis-benchmark -P N -t set,get on a fresh Redis: {"SET": ops/s, "GET": ops/s}."""
    port = free_port()
    persistence = ["--appendonly", "yes", "--appendfsync", "everysec"] if same_workload else []
    workload = [
        "-c", str(args.redis_clients), "-d", str(args.value_size), "-r", str(args.keyspace),
    ] if same_workload else []
    with tempfile.TemporaryDirectory(prefix="pykv-bench-redis-") as d:
        server = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", d,
             "--save", "", *persistence],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            for _ in range(100):
                ping = subprocess.run(["redis-cli", "-p", str(port), "ping"],
                                      capture_output=True, text=True)
                if ping.stdout.strip() == "PONG":
                    break
                time.sleep(0.05)
            done = subprocess.run(
                ["redis-benchmark", "-h", "127.0.0.1", "-p", str(port),
                 "-P", str(args.batch_size), "-t", "set,get", "-q",
                 "-n", str(args.redis_requests), *workload],
                capture_output=True, text=True, check=True,
            )
        finally:
            server.terminate()
            server.wait()
    figures = {}
    for name, rate in re.findall(r"(SET|GET): ([\d.]+) requests per second", done.stdout):
        figures[name] = float(rate)
    if set(figures) != {"SET", "GET"}:
        raise RuntimeError(f"redis-benchmark printed no figures: {done.stdout!r}")
    return figures


def main():
    args = parse_args()
    benchlib.check_binary(args.binary)
    for tool in ("redis-server", "redis-benchmark", "redis-cli"):
        if not shutil.which(tool):
            sys.exit(f"{tool} not found: apt-get install redis-server")
    rows = {name: [] for name in (
        "pykv_get", "pykv_set", "redis_get", "redis_set", "quoted_get", "quoted_set")}
    for run in range(args.runs):
        with benchlib.pykv(args.binary) as server:
            get = pykv_keys_per_s(args, server.url, "get=1", preload=True)
        redis = redis_run(args, same_workload=True)
        with benchlib.pykv(args.binary) as server:
            put = pykv_keys_per_s(args, server.url, "set=1", preload=False)
        quoted = redis_run(args, same_workload=False)
        figures = {
            "pykv_get": get, "pykv_set": put,
            "redis_get": redis["GET"], "redis_set": redis["SET"],
            "quoted_get": quoted["GET"], "quoted_set": quoted["SET"],
        }
        for name, value in figures.items():
            rows[name].append(value)
        print(
            f"run {run + 1}: PyKV GET {get:,.0f}, SET {put:,.0f} keys/s; "
            f"Redis same workload GET {redis['GET']:,.0f}, SET {redis['SET']:,.0f}; "
            f"Redis as quoted GET {quoted['GET']:,.0f}, SET {quoted['SET']:,.0f} ops/s",
            file=sys.stderr,
        )
    med = {k: statistics.median(v) for k, v in rows.items()}
    n = args.batch_size
    print(f"| Batches of {n} (keys/s, medians) | PyKV `POST /batch` | Redis `-P {n}`, same workload "
          f"| PyKV / Redis | Redis `-P {n}`, as quoted | PyKV / Redis |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for op in ("get", "set"):
        p, r, q = med[f"pykv_{op}"], med[f"redis_{op}"], med[f"quoted_{op}"]
        print(f"| {op.upper()} | {p:,.0f} | {r:,.0f} | {p / r:.2f} | {q:,.0f} | {p / q:.2f} |")


if __name__ == "__main__":
    main()
