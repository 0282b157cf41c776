#!/usr/bin/env python3
"""What a namespace costs: resident memory (RSS) and idle CPU of a server
holding 100,000 keys, (a) all in one namespace, (b) one per namespace
(100,000 namespaces), and (c) the server of (b) once every namespace was
cleared over HTTP (issue 12, item 4). Then, under `--max-memory 1mb`, the
time of each batch of 5,000 writes to new namespaces, up to 45,000
namespaces, and the RSS at the end: global eviction must not slow down as
namespaces are added, nor the process grow past the limit.

Keys are loaded by replaying a log of SETs (12-byte keys, 32-byte values,
no TTL), as a restart does. RSS is read from /proc/PID/status and idle CPU
from /proc/PID/stat (user + system time over a window with no requests),
after a pause for the server to settle.

    cargo build --release
    python3 bench/namespace_overhead.py [--keys 100000] [--window 5]
"""

import argparse
import http.client
import os
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

from benchlib import check_binary, default_binary
from memory_vs_redis import rss_bytes
from replay_vs_redis import free_port, wait_until_answering

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def write_log(path, keys, namespace_of):
    ts = time.time()
    value = "v" * 32
    with open(path, "w") as log:
        for i in range(keys):
            log.write(
                f'{{"timestamp":{ts:.3f},"action":"SET","key":"key:{i:08d}",'
                f'"value":"{value}","namespace":"{namespace_of(i)}"}}\n'
            )


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as stat:
        # Fields after the command name (which may hold spaces): utime and
        # stime are the 14th and 15th fields of the line.
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def measure(pid, settle, window):
    """(RSS in bytes, CPU used while idle as a fraction of one core)."""
    time.sleep(settle)
    before = cpu_seconds(pid)
    time.sleep(window)
    cpu = (cpu_seconds(pid) - before) / window
    return rss_bytes(pid), cpu


def clear_all(port, names, workers=8):
    def clear(chunk):
        conn = http.client.HTTPConnection("127.0.0.1", port)
        for name in chunk:
            conn.request("DELETE", f"/namespaces/{name}")
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"DELETE /namespaces/{name}: {response.status}")
        conn.close()

    chunks = [names[w::workers] for w in range(workers)]
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(clear, chunks))


def run(binary, keys, namespace_of, settle, window, clear_after=False):
    results = []
    with tempfile.TemporaryDirectory(prefix="pykv-bench-") as data:
        write_log(os.path.join(data, "wal.log"), keys, namespace_of)
        port = free_port()
        proc = subprocess.Popen(
            [binary, "serve", "--port", str(port), "--data-dir", data],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={**os.environ, "RUST_LOG": "warn"},
        )
        try:
            wait_until_answering(port, proc, b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n", b"HTTP/1.1 200")
            results.append(measure(proc.pid, settle, window))
            if clear_after:
                clear_all(port, sorted({namespace_of(i) for i in range(keys)}))
                results.append(measure(proc.pid, settle, window))
        finally:
            proc.kill()
            proc.wait()
    return results


def set_new_namespaces(port, first, count, workers=8):
    """One key in each of `count` new namespaces, from 8 connections."""
    def write(offsets):
        conn = http.client.HTTPConnection("127.0.0.1", port)
        for i in offsets:
            body = f'{{"key": "k", "value": {i}, "namespace": "e{i:06d}"}}'
            conn.request("POST", "/set", body, {"Content-Type": "application/json"})
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"set e{i:06d}: {response.status}")
        conn.close()

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(write, [range(first + w, first + count, workers) for w in range(workers)]))


def eviction_batches(binary, batches, batch=5_000):
    """Seconds taken by each batch of `batch` writes to new namespaces under
    --max-memory 1mb, and the RSS at the end."""
    with tempfile.TemporaryDirectory(prefix="pykv-bench-") as data:
        port = free_port()
        proc = subprocess.Popen(
            [binary, "serve", "--port", str(port), "--data-dir", data, "--max-memory", "1mb"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={**os.environ, "RUST_LOG": "warn"},
        )
        try:
            wait_until_answering(port, proc, b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n", b"HTTP/1.1 200")
            times = []
            for b in range(batches):
                start = time.monotonic()
                set_new_namespaces(port, b * batch, batch)
                times.append(time.monotonic() - start)
            return times, rss_bytes(proc.pid)
        finally:
            proc.kill()
            proc.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", default=default_binary())
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--settle", type=float, default=2.0, help="seconds before measuring")
    parser.add_argument("--window", type=float, default=5.0, help="seconds of idle CPU measured")
    parser.add_argument(
        "--eviction-batches", type=int, default=9,
        help="batches of 5,000 new namespaces under --max-memory 1mb (0: skip)",
    )
    args = parser.parse_args()
    check_binary(args.binary)

    (one,) = run(args.binary, args.keys, lambda i: "one", args.settle, args.window)
    many, cleared = run(
        args.binary, args.keys, lambda i: f"t{i:06d}", args.settle, args.window, clear_after=True
    )
    print(f"| {args.keys:,} keys | RSS | idle CPU |")
    print("| --- | --- | --- |")
    for label, (rss, cpu) in [
        ("in one namespace", one),
        (f"one per namespace, {args.keys:,} namespaces", many),
        ("the same, after every namespace was cleared", cleared),
    ]:
        print(f"| {label} | {rss / 1e6:.0f} MB | {cpu * 100:.0f}% |")
    if args.eviction_batches:
        times, rss = eviction_batches(args.binary, args.eviction_batches)
        print()
        print("--max-memory 1mb, 5,000 writes to new namespaces per batch:")
        print("seconds per batch: " + ", ".join(f"{t:.2f}" for t in times))
        print(f"RSS after {5_000 * len(times):,} namespaces: {rss / 1e6:.0f} MB")


if __name__ == "__main__":
    main()
