"""Server CPU time per request, two binaries side by side.

Throughput on a shared 2-core machine moves with the host's noise; the
CPU time the server process spends per answered request (user + system,
from /proc/PID/stat) moves much less, so it is what tells whether a change
made each request dearer. Each run starts a fresh server, fills the key
space with SETs and warms up, then measures one load (GET or SET) at full
speed, 32 connections. Runs
of the two binaries alternate; the medians are printed.

    cargo build --release
    python3 bench/cpu_per_request.py --binary A --binary B --op get --runs 3

With --ceiling, each binary's ceiling (`pykv bench --ceiling`, which answers
every request with a fixed body and does no work) is measured too, in the
same alternation: the ceiling's CPU per request over PyKV's is the share of
the server's work that is HTTP and the loopback, the steady counterpart of
the throughput ratios of compare.py.
"""

import argparse
import statistics

import benchlib

def cpu_seconds(pid, user_only=False):
    """User + system time of a process (user time alone with `user_only`),
    in seconds."""
    _, user, system = benchlib.cpu_times(f"/proc/{pid}/stat")
    return user if user_only else user + system


def one_run(args, binary, ceiling=False):
    """Microseconds of server CPU per request answered, by PyKV or, with
    `ceiling`, by the same binary's ceiling (`pykv bench --ceiling`)."""
    start = benchlib.ceiling(binary, 32, args.namespaces, args.workers) if ceiling else benchlib.pykv(binary, args.fsync, args.workers)
    with start as server:
        load = [
            "--op", args.op, "-c", args.connections, "--keyspace", args.keyspace,
            "--value-size", 32, "--namespaces", args.namespaces,
        ]
        # Unmeasured: every key set (so that every GET hits), and a second
        # of the load itself to warm the connections and tables.
        benchlib.bench(binary, server.url, "--preload", "--duration", 1, *load)
        before = cpu_seconds(server.proc.pid, args.user)
        report = benchlib.bench(binary, server.url, "--duration", args.duration, *load)
        spent = cpu_seconds(server.proc.pid, args.user) - before
    return spent * 1e6 / report["answered"]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--binary", action="append", help="give it twice to compare")
    benchlib.add_workers_argument(p)
    p.add_argument("--op", choices=["get", "set"], default="get")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--duration", type=float, default=4)
    p.add_argument("--keyspace", type=int, default=100_000)
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--fsync", choices=["always", "everysec", "no"], default="everysec")
    p.add_argument(
        "--namespaces", type=int, default=1,
        help="spread the keys over this many namespaces; 0: the default namespace",
    )
    p.add_argument(
        "--user", action="store_true",
        help="count user time only: the server's own code, without the kernel's network work",
    )
    p.add_argument(
        "--ceiling", action="store_true",
        help="also measure each binary's ceiling, in the same alternation",
    )
    args = p.parse_args()
    binaries = args.binary or [benchlib.default_binary()]
    for binary in binaries:
        benchlib.check_binary(binary)

    servers = [(b, False) for b in binaries]
    if args.ceiling:
        servers += [(b, True) for b in binaries]
    label = {s: f"{s[0]}{' (ceiling)' if s[1] else ''}" for s in servers}
    figures = {server: [] for server in servers}
    for run in range(args.runs):
        for server in servers:
            us = one_run(args, *server)
            figures[server].append(us)
            print(f"run {run + 1}/{args.runs}: {label[server]}: {us:.2f} µs per {args.op.upper()}")
    medians = {server: statistics.median(runs) for server, runs in figures.items()}
    for server, median in medians.items():
        what = "user time" if args.user else "server CPU"
        print(f"{label[server]}: median {median:.2f} µs of {what} per {args.op.upper()}")
    if args.ceiling:
        for binary in binaries:
            ratio = medians[(binary, True)] / medians[(binary, False)]
            print(f"{binary}: the ceiling's CPU per request / PyKV's: {ratio:.2f}")


if __name__ == "__main__":
    main()
