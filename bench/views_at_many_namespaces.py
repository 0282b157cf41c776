#!/usr/bin/env python3
"""Server-wide views at many namespaces: how long `/stats` (a tenant's and
an admin's), `/namespaces` and `/metrics` take and how big they are with
100,000 namespaces of one key each, and what they do to another client's
GETs while they are polled.

The namespaces come from a log of 100,000 SETs written into the data
directory before the server starts. Tokens: an admin, a read-only tenant
on one namespace (the poller), and another tenant reading its own key (the
GET client). Each client keeps one connection open (keep-alive).

    cargo build --release
    python3 bench/views_at_many_namespaces.py [--binary PATH] [--namespaces 100000]
"""

import argparse
import http.client
import os
import shutil
import statistics
import subprocess
import tempfile
import threading
import time

from benchlib import check_binary, default_binary


def write_log(data_dir, namespaces):
    now = time.time()
    with open(os.path.join(data_dir, "wal.log"), "w") as log:
        for i in range(namespaces):
            log.write(
                '{"timestamp":%.3f,"action":"SET","key":"k","value":%d,'
                '"namespace":"ns%06d","ttl":null}\n' % (now, i, i)
            )


def create_token(binary, data_dir, *args):
    out = subprocess.run(
        [binary, "token", "create", "--data-dir", data_dir, *args],
        check=True, capture_output=True, text=True,
    )
    return out.stdout.strip()


class Client:
    """One keep-alive connection with a token."""

    def __init__(self, port, token):
        self.port = port
        self.conn = self.connect()
        self.headers = {"Authorization": f"Bearer {token}"}

    def connect(self):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)

    def get(self, path):
        """(seconds, body size) of one GET; fails on any status but 200."""
        started = time.perf_counter()
        try:
            self.conn.request("GET", path, headers=self.headers)
            response = self.conn.getresponse()
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
            # The server closes connections idle for --header-read-timeout.
            self.conn.close()
            self.conn = self.connect()
            started = time.perf_counter()
            self.conn.request("GET", path, headers=self.headers)
            response = self.conn.getresponse()
        body = response.read()
        took = time.perf_counter() - started
        if response.status != 200:
            raise RuntimeError(f"GET {path}: {response.status} {body[:200]!r}")
        return took, len(body)


def timed(client, path, runs):
    """Median seconds and the size of `runs` GETs of `path`."""
    results = [client.get(path) for _ in range(runs)]
    return statistics.median(t for t, _ in results), results[0][1]


def get_p50_while(port, reader_token, pollers, seconds):
    """Median and 99th percentile of a reader's GETs over `seconds` while
    each `(token, path)` in `pollers` is requested in a loop on its own
    connection; also how many polls were answered."""
    stop = threading.Event()
    polls = [0]

    def poll(token, path):
        client = Client(port, token)
        while not stop.is_set():
            client.get(path)
            polls[0] += 1

    threads = [threading.Thread(target=poll, args=p) for p in pollers]
    for t in threads:
        t.start()
    time.sleep(0.5 if pollers else 0)
    reader = Client(port, reader_token)
    latencies = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        latencies.append(reader.get("/get/k?ns=ns000042")[0])
    stop.set()
    for t in threads:
        t.join()
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return statistics.median(latencies), p99, len(latencies), polls[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", default=default_binary())
    parser.add_argument("--namespaces", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=10.0,
                        help="how long each GET series runs")
    args = parser.parse_args()
    check_binary(args.binary)

    data_dir = tempfile.mkdtemp(prefix="pykv-views-")
    proc = None
    try:
        write_log(data_dir, args.namespaces)
        admin = create_token(args.binary, data_dir, "--admin")
        tenant = create_token(args.binary, data_dir, "--ns", "ns000007", "--access", "read")
        reader = create_token(args.binary, data_dir, "--ns", "ns000042", "--access", "read")
        proc = subprocess.Popen(
            [args.binary, "serve", "--port", "0", "--data-dir", data_dir],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            env={**os.environ, "RUST_LOG": "warn"}, text=True,
        )
        line = proc.stdout.readline().strip()
        port = int(line.rsplit(":", 1)[1])
        print(f"{args.namespaces} namespaces, {args.binary}")

        admin_client = Client(port, admin)
        tenant_client = Client(port, tenant)
        for who, client, path, runs in [
            ("tenant", tenant_client, "/stats", 9),
            ("admin", admin_client, "/stats", 5),
            ("tenant", tenant_client, "/namespaces", 9),
            ("admin", admin_client, "/namespaces", 5),
            ("admin", admin_client, "/metrics", 5),
        ]:
            seconds, size = timed(client, path, runs)
            print(f"{who:6} {path:12} median {seconds * 1000:9.1f} ms  {size:>10,} bytes")

        for label, pollers in [
            ("idle", []),
            ("tenant polls /stats on 4 connections", [(tenant, "/stats")] * 4),
            ("admin polls /stats and /metrics, 2 connections each",
             [(admin, "/stats"), (admin, "/stats"), (admin, "/metrics"), (admin, "/metrics")]),
        ]:
            p50, p99, count, polls = get_p50_while(port, reader, pollers, args.seconds)
            print(f"GET p50 {p50 * 1000:8.2f} ms  p99 {p99 * 1000:8.2f} ms  "
                  f"({count} GETs, {polls} polls): {label}")
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait()
        shutil.rmtree(data_dir)


if __name__ == "__main__":
    main()
