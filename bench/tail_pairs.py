#!/usr/bin/env python3
"""Tail latency at a fixed rate, PyKV and the ceiling in alternating pairs.

On a shared virtual machine the p99 of a few seconds of paced load is set
by the host's stalls more often than by the server: the ceiling, which
does nothing but answer, has shown p99s from 0.2 ms to 60 ms at the same
rate from one run to the next (docs/BENCHMARKS.md). `compare.py` takes
medians over runs minutes apart; this script measures PyKV and the
ceiling back to back, many times, so that each PyKV figure has a ceiling
figure from the same few seconds beside it. Pairs whose ceiling is over
--quiet-p99 fell in a noisy window and say nothing about the server; the
ones left show what PyKV's tail is when the host lets it be measured.

    cargo build --release
    python3 bench/tail_pairs.py --op get --rate 50000 --pairs 10

One PyKV server (`--fsync everysec` unless --fsync says otherwise, keys
preloaded) and one ceiling run
throughout; each measurement is --duration seconds after --warmup seconds
of the same load, with --threads generator threads (two, as compare.py's
paced runs, so that one stalled core holds only half the connections), and
--workers server workers for both servers, as the other scripts.
"""

import argparse
import statistics

import benchlib


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--binary", default=benchlib.default_binary())
    p.add_argument("--op", choices=["get", "set"], default="get")
    p.add_argument("--rate", type=int, required=True, help="requests a second, paced")
    p.add_argument("--pairs", type=int, default=10)
    p.add_argument("--duration", type=float, default=3)
    p.add_argument("--warmup", type=float, default=1)
    p.add_argument("--threads", type=int, default=2)
    benchlib.add_workers_argument(p)
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--keyspace", type=int, default=100_000)
    p.add_argument("--value-size", type=int, default=32)
    p.add_argument("--fsync", choices=["always", "everysec", "no"], default="everysec")
    p.add_argument(
        "--quiet-p99", type=float, default=1000,
        help="µs: pairs whose ceiling p99 is above it are counted as the host's",
    )
    return p.parse_args()


def tail(args, url, *extra):
    """(p99, p99.9) in µs of one paced measurement."""
    report = benchlib.load(args, url, args.op, "--rate", args.rate, *extra)
    latency = report["latency_us"]
    return latency["p99"], latency["p99.9"]


def main():
    args = parse_args()
    benchlib.check_binary(args.binary)
    pairs = []
    with benchlib.pykv(args.binary, args.fsync, args.workers) as server, benchlib.ceiling(
        args.binary, args.value_size, workers=args.workers
    ) as ceiling:
        benchlib.bench(
            args.binary, server.url, "--op", "set", "--preload", "-n", 1,
            "--keyspace", args.keyspace, "--value-size", args.value_size,
        )
        for n in range(args.pairs):
            pykv = tail(args, server.url)
            bare = tail(args, ceiling.url)
            pairs.append((pykv, bare))
            print(
                f"pair {n + 1}/{args.pairs}: PyKV p99 {pykv[0]:,} µs, p99.9 {pykv[1]:,} µs; "
                f"ceiling p99 {bare[0]:,} µs, p99.9 {bare[1]:,} µs"
            )
    quiet = [(p, c) for p, c in pairs if c[0] <= args.quiet_p99]
    print(
        f"\n{args.op.upper()} at {args.rate:,} requests a second: {len(quiet)} of "
        f"{len(pairs)} pairs with the ceiling's p99 at most {args.quiet_p99:,.0f} µs"
    )
    if quiet:
        pykv_p99 = [p[0] for p, _ in quiet]
        pykv_p999 = [p[1] for p, _ in quiet]
        print(
            f"PyKV in those pairs: p99 median {statistics.median(pykv_p99):,.0f} µs "
            f"(max {max(pykv_p99):,}), p99.9 median {statistics.median(pykv_p999):,.0f} µs "
            f"(max {max(pykv_p999):,})"
        )


if __name__ == "__main__":
    main()
