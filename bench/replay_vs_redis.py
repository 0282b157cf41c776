#!/usr/bin/env python3
"""Replay speed: PyKV loading 1,000,000 SETs from its log against Redis
loading the same 1,000,000 SETs from its append-only file.

Both servers start on a fresh copy of their file; the time measured is from
the start of the process until it answers on its port (so it includes
reading, parsing and inserting every record). Runs alternate between the
servers; the medians and their ratio are printed, with each server's
resident memory (VmRSS) and CPU time (user + system, all threads) once it
answers with everything loaded: on a loaded machine the CPU time says more
about the work done than the wall-clock time.

    cargo build --release
    python3 bench/replay_vs_redis.py [--records 1000000] [--runs 5]

`--binary` may be given more than once to compare PyKV builds side by
side in the same run (each against the same Redis runs).

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


def rss_mb(pid):
    """Resident memory of a process, in MB (10^6 bytes)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024 / 1e6
    raise RuntimeError(f"no VmRSS for process {pid}")


def cpu_s(pid):
    """User + system CPU seconds a process has used so far (all threads)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def time_pykv(binary, wal):
    """Seconds until PyKV answers with the log replayed, and its RSS and
    CPU seconds then."""
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
            return time.monotonic() - t0, rss_mb(proc.pid), cpu_s(proc.pid)
        finally:
            proc.kill()
            proc.wait()


def time_redis(aof, records):
    """Seconds until Redis answers with its AOF loaded, and its RSS and CPU
    seconds then."""
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
            return time.monotonic() - t0, rss_mb(proc.pid), cpu_s(proc.pid)
        finally:
            proc.kill()
            proc.wait()


def summary(name, runs):
    times = [t for t, _, _ in runs]
    rss = [r for _, r, _ in runs]
    cpu = [c for _, _, c in runs]
    print(f"{name} load: median {statistics.median(times):.3f} s  "
          f"(runs: {', '.join(f'{t:.3f}' for t in times)}); "
          f"RSS at the end: median {statistics.median(rss):.1f} MB "
          f"(runs: {', '.join(f'{r:.1f}' for r in rss)}); "
          f"CPU (user + system): median {statistics.median(cpu):.2f} s "
          f"(runs: {', '.join(f'{c:.2f}' for c in cpu)})")
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--binary", action="append",
                        help="PyKV binary (repeat to compare builds); "
                             "default target/release/pykv")
    args = parser.parse_args()
    binaries = args.binary or [os.path.join(ROOT, "target/release/pykv")]
    if not shutil.which("redis-server"):
        sys.exit("redis-server not found: apt-get install redis-server")
    with tempfile.TemporaryDirectory() as work:
        wal, aof = generate(work, args.records)
        pykv = {binary: [] for binary in binaries}
        redis = []
        for _ in range(args.runs):
            for binary in binaries:
                pykv[binary].append(time_pykv(binary, wal))
            redis.append(time_redis(aof, args.records))
        print(f"records: {args.records}, runs: {args.runs}")
        print(f"wal.log: {os.path.getsize(wal)} bytes, appendonly.aof: {os.path.getsize(aof)} bytes")
        mr = summary("redis", redis)
        for binary in binaries:
            mp = summary(f"pykv ({binary})" if len(binaries) > 1 else "pykv ", pykv[binary])
            print(f"  pykv time / redis time: {mp / mr:.2f} (0.50 or less meets issue 17's target)")


if __name__ == "__main__":
    main()
