#!/usr/bin/env python3
"""Memory: resident set size of PyKV and of Redis holding the same
1,000,000 keys (12-byte keys in 100 namespaces, 32-byte string values;
in Redis, `nsNN:key` strings).

PyKV loads the keys by replaying a log of 1,000,000 SETs (what a restart
does); Redis loads them twice, once through `redis-cli --pipe` (what a
client filling it does) and once from its append-only file, and the lower
of the two is the reference. RSS is read from /proc/PID/status once loading
is over, after a second's pause. Runs alternate; medians are printed.

    cargo build --release
    python3 bench/memory_vs_redis.py [--records 1000000] [--runs 3]
"""

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time

from replay_vs_redis import ROOT, free_port, generate, wait_until_answering


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def settle_and_measure(proc):
    time.sleep(1)
    return rss_bytes(proc.pid)


def pykv_rss(binary, wal):
    with tempfile.TemporaryDirectory() as d:
        shutil.copy(wal, os.path.join(d, "wal.log"))
        port = free_port()
        proc = subprocess.Popen(
            [binary, "serve", "--port", str(port), "--data-dir", d],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={**os.environ, "RUST_LOG": "warn"},
        )
        try:
            wait_until_answering(port, proc, b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", b"HTTP/1.1 200")
            return settle_and_measure(proc)
        finally:
            proc.kill()
            proc.wait()


def redis(args, records, load=None):
    with tempfile.TemporaryDirectory() as d:
        port = free_port()
        proc = subprocess.Popen(
            ["redis-server", "--port", str(port), "--dir", d, "--save", ""] + args(d),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            if load:
                wait_until_answering(port, proc, b"PING\r\n", b"+PONG")
                load(port)
            wait_until_answering(port, proc, b"DBSIZE\r\n", f":{records}".encode())
            return settle_and_measure(proc)
        finally:
            proc.kill()
            proc.wait()


def redis_pipe_rss(aof, records):
    def load(port):
        with open(aof, "rb") as commands:
            subprocess.run(["redis-cli", "-p", str(port), "--pipe"], stdin=commands,
                           stdout=subprocess.DEVNULL, check=True)
    return redis(lambda d: ["--appendonly", "no"], records, load)


def redis_aof_rss(aof, records):
    def args(d):
        shutil.copy(aof, os.path.join(d, "appendonly.aof"))
        return ["--appendonly", "yes", "--appendfilename", "appendonly.aof",
                "--aof-use-rdb-preamble", "no"]
    return redis(args, records)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--binary", default=os.path.join(ROOT, "target/release/pykv"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        wal, aof = generate(work, args.records)
        pykv, pipe, aof_rss = [], [], []
        for _ in range(args.runs):
            pykv.append(pykv_rss(args.binary, wal))
            pipe.append(redis_pipe_rss(aof, args.records))
            aof_rss.append(redis_aof_rss(aof, args.records))
    mb = lambda xs: statistics.median(xs) / 1e6
    reference = min(mb(pipe), mb(aof_rss))
    print(f"keys: {args.records}, runs: {args.runs}")
    print(f"pykv RSS:               median {mb(pykv):.1f} MB  ({', '.join(f'{x / 1e6:.1f}' for x in pykv)})")
    print(f"redis RSS (redis-cli):  median {mb(pipe):.1f} MB  ({', '.join(f'{x / 1e6:.1f}' for x in pipe)})")
    print(f"redis RSS (AOF load):   median {mb(aof_rss):.1f} MB  ({', '.join(f'{x / 1e6:.1f}' for x in aof_rss)})")
    print(f"pykv / redis (lower of the two): {mb(pykv) / reference:.2f} (goal: 0.60 or less)")


if __name__ == "__main__":
    main()
