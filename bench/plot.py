#!/usr/bin/env python3
"""Throughput against connections: PyKV GET of existing keys and the
ceiling, for 1, 2, 4, 8, 16, 32 and 64 connections, plotted into
docs/throughput.png.

Each point is the median of --runs closed-loop runs of --duration seconds
of `pykv bench --op get`; each server is started once (PyKV preloaded with
the key space) and loaded at every connection count in turn.

    cargo build --release
    pip install matplotlib
    python3 bench/plot.py [--runs 3] [--duration 5] [--out docs/throughput.png]
"""

import argparse
import os
import statistics
import sys

import benchlib

CONNECTIONS = [1, 2, 4, 8, 16, 32, 64]


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--binary", default=benchlib.default_binary())
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--duration", type=float, default=5)
    p.add_argument("--threads", type=int, default=1, help="generator threads")
    p.add_argument("--keyspace", type=int, default=100_000)
    p.add_argument("--value-size", type=int, default=32)
    p.add_argument("--out", default=os.path.join(benchlib.ROOT, "docs", "throughput.png"))
    return p.parse_args()


def sweep(args, url, preload):
    """Median GET throughput at each connection count."""
    common = [
        "--op", "get", "--threads", args.threads, "--duration", args.duration,
        "--keyspace", args.keyspace, "--value-size", args.value_size,
    ]
    if preload:
        benchlib.bench(args.binary, url, "--op", "set", "--preload", "-n", 1,
                       "--keyspace", args.keyspace, "--value-size", args.value_size)
    medians = []
    for c in CONNECTIONS:
        runs = [benchlib.bench(args.binary, url, "-c", c, *common)["throughput_rps"]
                for _ in range(args.runs)]
        medians.append(statistics.median(runs))
        print(f"  {c:>2} connections: {medians[-1]:,.0f} req/s", file=sys.stderr)
    return medians


def plot(args, pykv, ceiling):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    ax.plot(CONNECTIONS, ceiling, "o--", label="ceiling (HTTP only, no work)", color="grey")
    ax.plot(CONNECTIONS, pykv, "o-", label="PyKV GET (existing key)", color="tab:blue")
    ax.set_xscale("log", base=2)
    ax.set_xticks(CONNECTIONS, [str(c) for c in CONNECTIONS])
    ax.set_xlabel("connections (keep-alive HTTP/1.1)")
    ax.set_ylabel("requests per second")
    ax.set_ylim(bottom=0)
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.grid(True, alpha=0.3)
    ax.legend()
    ax.set_title(f"GET throughput, {os.cpu_count()} cores shared with the generator "
                 f"(median of {args.runs})", fontsize=10)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    fig.savefig(args.out)


def main():
    args = parse_args()
    benchlib.check_binary(args.binary)
    try:
        import matplotlib  # noqa: F401  (fail before a long run, not after)
    except ImportError:
        sys.exit("matplotlib is needed: pip install matplotlib")
    print("PyKV:", file=sys.stderr)
    with benchlib.pykv(args.binary) as s:
        pykv = sweep(args, s.url, preload=True)
    print("ceiling:", file=sys.stderr)
    with benchlib.ceiling(args.binary, args.value_size) as c:
        ceiling = sweep(args, c.url, preload=False)
    print("| connections | PyKV GET (req/s) | ceiling (req/s) | ratio |")
    print("| ---: | ---: | ---: | ---: |")
    for c, p, q in zip(CONNECTIONS, pykv, ceiling):
        print(f"| {c} | {p:,.0f} | {q:,.0f} | {p / q:.2f} |")
    plot(args, pykv, ceiling)
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
