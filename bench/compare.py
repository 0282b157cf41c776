#!/usr/bin/env python3
"""PyKV against its ceiling: the same generator, the same connections.

The ceiling (`pykv bench --ceiling`) is a hyper server on the same runtime
as `pykv serve` that reads each request and answers a fixed body the size of
a GET answer, doing no other work. Loading both in turns with the same
`pykv bench` on the same machine shows how much of what the HTTP stack, the
loopback and the generator allow PyKV keeps:

- GET of an existing key (preloaded) vs the ceiling;
- SET with --fsync everysec vs the ceiling (answering SETs);
- SET with --fsync always (group commit, 32 clients) vs the ceiling;
- p99 latency of GET at half of PyKV's measured peak, paced open-loop with
  --rate, vs the ceiling's p99 at the same rate.

Each run starts every server afresh (data in a temporary directory), in
this order: PyKV everysec (GET peak, GET at half the peak, SET peak), PyKV
always (SET peak), the ceiling (GET peak, SET peak, GET at the same rate).
Every measurement follows --warmup seconds of the same load, unmeasured.
Nothing is pinned; the medians over the runs are printed as a Markdown
table, and each run's figures on stderr.

    cargo build --release
    python3 bench/compare.py [--runs 5] [--duration 5] [--connections 32]

On a 2-core machine the generator takes one core (--threads 1) and the
server the rest; see `pykv bench --help`. On a shared machine whose share
of the cores changes from minute to minute, `ratio_pairs.py` measures the
same peaks with PyKV and the ceiling seconds apart instead.
"""

import argparse
import os
import statistics
import sys
import time

import benchlib


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--binary", default=benchlib.default_binary())
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--duration", type=float, default=5, help="seconds per measurement")
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--threads", type=int, default=1, help="generator threads")
    benchlib.add_workers_argument(p)
    p.add_argument("--warmup", type=float, default=1, help="unmeasured seconds before each measurement")
    p.add_argument(
        "--latency-threads", type=int, default=2,
        help="generator threads of the paced p99 runs (see docs/BENCHMARKS.md)",
    )
    p.add_argument("--keyspace", type=int, default=100_000)
    p.add_argument("--value-size", type=int, default=32)
    return p.parse_args()


def tail_at(args, url, rate, op="get"):
    """(p99, p99.9) of `op` requests paced at `rate`, with --latency-threads
    generator threads: a host's stall of one core then holds half the
    connections, not all of them."""
    report = benchlib.load(args, url, op, "--rate", rate, threads=args.latency_threads)
    return report["latency_us"]["p99"], report["latency_us"]["p99.9"]


def one_run(args):
    """The seven measurements of one run, as {name: number}."""
    out = {}
    with benchlib.pykv(args.binary, "everysec", args.workers) as s:
        get = benchlib.load(args, s.url, "get", "--preload")
        out["get"] = get["throughput_rps"]
        # Before the SETs: 5 s of SETs at full speed leave the log's
        # writeback and an automatic compaction running behind them.
        half = out["get"] / 2
        out["p99_half"], out["p999_half"] = tail_at(args, s.url, half)
        out["set_everysec"] = benchlib.load(args, s.url, "set")["throughput_rps"]
        # Paced SETs after a pause: the peak's writeback settles first.
        time.sleep(2)
        set_half = out["set_everysec"] / 2
        out["set_p99_half"], out["set_p999_half"] = tail_at(args, s.url, set_half, "set")
    with benchlib.pykv(args.binary, "always", args.workers) as s:
        out["set_always"] = benchlib.load(args, s.url, "set")["throughput_rps"]
    with benchlib.ceiling(args.binary, args.value_size, workers=args.workers) as c:
        out["ceiling_get"] = benchlib.load(args, c.url, "get")["throughput_rps"]
        out["ceiling_set"] = benchlib.load(args, c.url, "set")["throughput_rps"]
        out["ceiling_p99_half"], out["ceiling_p999_half"] = tail_at(args, c.url, half)
        out["ceiling_set_p99_half"], out["ceiling_set_p999_half"] = tail_at(
            args, c.url, set_half, "set"
        )
    out["rate"] = half
    out["set_rate"] = set_half
    return out


ROWS = [
    # label, pykv key, ceiling key, unit
    ("GET of an existing key", "get", "ceiling_get", "req/s"),
    ("SET, `--fsync everysec`", "set_everysec", "ceiling_set", "req/s"),
    ("SET, `--fsync always`", "set_always", "ceiling_set", "req/s"),
    ("GET p99 at half of PyKV's peak", "p99_half", "ceiling_p99_half", "µs"),
    ("GET p99.9 at half of PyKV's peak", "p999_half", "ceiling_p999_half", "µs"),
    ("SET `everysec` p99 at half of PyKV's peak", "set_p99_half", "ceiling_set_p99_half", "µs"),
    ("SET `everysec` p99.9 at half of PyKV's peak", "set_p999_half", "ceiling_set_p999_half", "µs"),
]


def table(runs, args):
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    lines = [
        f"{len(runs)} runs of {args.duration:g} s, {args.connections} connections, "
        f"{args.threads} generator thread(s) ({args.latency_threads} for the p99), "
        f"{os.cpu_count()} cores, {benchlib.workers_label(args.workers)}, "
        f"{args.keyspace} keys, {args.value_size}-byte values; medians. "
        f"Half of the peak: {med['rate']:.0f} GETs/s, {med['set_rate']:.0f} SETs/s.",
        "",
        "| Measure | PyKV | Ceiling | PyKV / ceiling |",
        "| --- | ---: | ---: | ---: |",
    ]
    for label, mine, ceil, unit in ROWS:
        ratio = med[mine] / med[ceil] if med[ceil] else float("nan")
        lines.append(
            f"| {label} ({unit}) | {med[mine]:,.0f} | {med[ceil]:,.0f} | {ratio:.2f} |"
        )
    return "\n".join(lines)


def main():
    args = parse_args()
    benchlib.check_binary(args.binary)
    runs = []
    for i in range(args.runs):
        run = one_run(args)
        runs.append(run)
        figures = ", ".join(f"{k} {v:,.0f}" for k, v in run.items())
        print(f"run {i + 1}/{args.runs}: {figures}", file=sys.stderr)
    print(table(runs, args))


if __name__ == "__main__":
    main()
