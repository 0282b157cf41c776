#!/usr/bin/env python3
"""Peak throughput against the ceiling, PyKV and the ceiling in alternating pairs.

`compare.py` measures PyKV and then the ceiling a minute later, with a fresh
server for each; on a shared virtual machine the host's share of the two
cores changes faster than that (the ceiling alone has run from 45,000 to
130,000 requests a second from one run to the next, docs/BENCHMARKS.md), so
one run's ratio is as much the host's as the server's. This script keeps
every server running and measures them back to back, a few seconds apart,
many times: each PyKV figure has a ceiling figure from the same moment
beside it, and the median of the per-pair ratios is the figure reported.

    cargo build --release
    python3 bench/ratio_pairs.py --pairs 10

Three servers run throughout: PyKV with `--fsync everysec` (keys preloaded),
PyKV with `--fsync always`, and the ceiling. Each pair measures, in turn,
GET on PyKV and on the ceiling, then SET on PyKV `everysec`, on the ceiling
and on PyKV `always`; the order within a pair is reversed every other pair,
so that neither side always goes first. Each measurement is --duration
seconds after --warmup seconds of the same load, one generator thread and
32 connections, as compare.py's peaks.
"""

import argparse
import statistics

import benchlib


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--binary", default=benchlib.default_binary())
    p.add_argument("--pairs", type=int, default=10)
    p.add_argument("--duration", type=float, default=2)
    p.add_argument("--warmup", type=float, default=0.5)
    p.add_argument("--threads", type=int, default=1, help="generator threads")
    benchlib.add_workers_argument(p)
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--keyspace", type=int, default=100_000)
    p.add_argument("--value-size", type=int, default=32)
    return p.parse_args()


def peak(args, url, op):
    """Requests a second at full speed."""
    return benchlib.load(args, url, op)["throughput_rps"]


def one_pair(args, everysec, always, ceiling, reverse):
    """One pair's figures: {measure: (PyKV, ceiling)}."""
    get_order = [("pykv", everysec), ("ceiling", ceiling)]
    set_order = [("everysec", everysec), ("ceiling", ceiling), ("always", always)]
    if reverse:
        get_order.reverse()
        set_order.reverse()
    gets = {name: peak(args, server.url, "get") for name, server in get_order}
    sets = {name: peak(args, server.url, "set") for name, server in set_order}
    return {
        "GET": (gets["pykv"], gets["ceiling"]),
        "SET `everysec`": (sets["everysec"], sets["ceiling"]),
        "SET `always`": (sets["always"], sets["ceiling"]),
    }


def main():
    args = parse_args()
    benchlib.check_binary(args.binary)
    pairs = []
    with (
        benchlib.pykv(args.binary, "everysec", args.workers) as everysec,
        benchlib.pykv(args.binary, "always", args.workers) as always,
        benchlib.ceiling(args.binary, args.value_size, workers=args.workers) as ceiling,
    ):
        benchlib.bench(
            args.binary, everysec.url, "--op", "set", "--preload", "-n", 1,
            "--keyspace", args.keyspace, "--value-size", args.value_size,
        )
        for n in range(args.pairs):
            pair = one_pair(args, everysec, always, ceiling, reverse=n % 2 == 1)
            pairs.append(pair)
            print(f"pair {n + 1}/{args.pairs}: " + "; ".join(
                f"{name} {mine:,.0f} / {bare:,.0f} = {mine / bare:.2f}"
                for name, (mine, bare) in pair.items()
            ))
    print(
        f"\n{len(pairs)} pairs of {args.duration:g} s, {args.connections} connections, "
        f"{args.threads} generator thread(s), {benchlib.workers_label(args.workers)}, "
        f"{args.keyspace} keys, "
        f"{args.value_size}-byte values.\n"
    )
    print("| Measure | PyKV (median req/s) | Ceiling (median req/s) | median of the pairs' ratios | lowest, highest |")
    print("| --- | ---: | ---: | ---: | --- |")
    for name in pairs[0]:
        mine = [p[name][0] for p in pairs]
        bare = [p[name][1] for p in pairs]
        ratios = [m / b for m, b in zip(mine, bare)]
        print(
            f"| {name} | {statistics.median(mine):,.0f} | {statistics.median(bare):,.0f} "
            f"| **{statistics.median(ratios):.2f}** | {min(ratios):.2f}, {max(ratios):.2f} |"
        )


if __name__ == "__main__":
    main()
