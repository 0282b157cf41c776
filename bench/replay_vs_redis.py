#!/usr/bin/env python3
"""Replay speed: PyKV loading 1,000,000 SETs from its log against Redis
loading the same 1,000,000 SETs from its append-only file.

Both servers start on a fresh copy of their file; the time measured is from
the start of the process until it answers on its port (so it includes
reading, parsing and inserting every record). Runs alternate between the two
servers; the medians and their ratio are printed.

    cargo build --release
    python3 bench/replay_vs_redis.py [--records 1000000] [--runs 5]

Needs redis-server (Debian: apt-get install redis-server).
"""

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def generate(workdir, records, namespaces=100):
    """The same records in both formats: 12-byte keys, 32-byte values."""
    wal = os.path.join(workdir, "wal.log")
    aof = os.path.join(workdir, "appendonly.aof")
    ts = time.time()
    value = "v" * 32
    with open(wal, "w") as w, open(aof, "w") as a:
        a.write("*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n")
        for i in range(records):
            ns = f"ns{i % namespaces:02d}"
            key = f"key:{i:08d}"
            w.write(
                f'{{"timestamp":{ts:.3f},"action":"SET","key":"{key}",'
                f'"value":"{value}","namespace":"{ns}"}}\n'
            )
            rkey = f"{ns}:{key}"
            a.write(
                f"*3\r\n$3\r\nSET\r\n${len(rkey)}\r\n{rkey}\r\n${len(value)}\r\n{value}\r\n"
            )
    return wal, aof


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_answering(port, proc, request, ready, timeout=120):
    """Polls until the server answers `request` with something starting
    with `ready`: Redis accepts connections while loading (answering
    -LOADING), so a connection alone does not mean the data is loaded."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(request)
                if s.recv(64).startswith(ready):
                    return
        except OSError:
            pass
        time.sleep(0.002)
    raise RuntimeError("server did not start")


def time_pykv(binary, wal):
    with tempfile.TemporaryDirectory() as d:
        shutil.copy(wal, os.path.join(d, "wal.log"))
        port = free_port()
        t0 = time.monotonic()
        proc = subprocess.Popen(
            [binary, "serve", "--port", str(port), "--data-dir", d],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "RUST_LOG": "warn"},
        )
        try:
            wait_until_answering(
                port, proc, b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", b"HTTP/1.1 200"
            )
            return time.monotonic() - t0
        finally:
            proc.kill()
            proc.wait()


def time_redis(aof, records):
    with tempfile.TemporaryDirectory() as d:
        shutil.copy(aof, os.path.join(d, "appendonly.aof"))
        port = free_port()
        t0 = time.monotonic()
        proc = subprocess.Popen(
            ["redis-server", "--port", str(port), "--dir", d, "--appendonly", "yes",
             "--appendfilename", "appendonly.aof", "--save", "",
             "--aof-use-rdb-preamble", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_until_answering(port, proc, b"DBSIZE\r\n", f":{records}".encode())
            return time.monotonic() - t0
        finally:
            proc.kill()
            proc.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--binary", default=os.path.join(ROOT, "target/release/pykv"))
    args = parser.parse_args()
    if not shutil.which("redis-server"):
        sys.exit("redis-server not found: apt-get install redis-server")
    with tempfile.TemporaryDirectory() as work:
        wal, aof = generate(work, args.records)
        pykv, redis = [], []
        for _ in range(args.runs):
            pykv.append(time_pykv(args.binary, wal))
            redis.append(time_redis(aof, args.records))
        mp, mr = statistics.median(pykv), statistics.median(redis)
        print(f"records: {args.records}, runs: {args.runs}")
        print(f"wal.log: {os.path.getsize(wal)} bytes, appendonly.aof: {os.path.getsize(aof)} bytes")
        print(f"pykv  load: median {mp:.3f} s  (runs: {', '.join(f'{t:.3f}' for t in pykv)})")
        print(f"redis load: median {mr:.3f} s  (runs: {', '.join(f'{t:.3f}' for t in redis)})")
        print(f"pykv time / redis time: {mp / mr:.2f} (1.00 or less meets the target)")


if __name__ == "__main__":
    main()
