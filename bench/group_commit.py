#!/usr/bin/env python3
"""SETs under `--fsync always`: throughput, batch sizes and where the CPU goes.

Under `always` every SET waits for a sync of the log, and concurrent SETs
share one (group commit), so the peak depends on how many records each
sync carries as much as on the CPU each request costs. For each binary
(alternating, --runs times) and each --connections count, this starts
`pykv serve --fsync always` afresh, preloads the keys, and measures --duration
seconds of SETs at full speed. It reports, medians over the runs:

- SETs a second and their mean latency (`pykv bench`);
- syncs a second, the mean sync, and records per sync (`/metrics`,
  `pykv_wal_sync_duration_seconds`);
- CPU per SET of the generator (`getrusage` of the child) and of each of
  the server's threads by name (`/proc/PID/task/*/stat`): the runtime's
  workers and the log's writer.

    cargo build --release
    python3 bench/group_commit.py --binary A --binary B --connections 1 8 32 --runs 3
"""

import argparse
import os
import re
import resource
import statistics
import urllib.request

import benchlib


def thread_cpu(pid):
    """{thread name: user + system seconds}, summed over threads of a name."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            name, user, system = benchlib.cpu_times(f"/proc/{pid}/task/{tid}/stat")
        except OSError:
            continue  # the thread ended
        out[name] = out.get(name, 0) + user + system
    return out


def syncs(url):
    """(count, total seconds) of the log's syncs so far."""
    metrics = urllib.request.urlopen(url + "/metrics").read().decode()
    count = re.search(r"pykv_wal_sync_duration_seconds_count (\S+)", metrics)
    total = re.search(r"pykv_wal_sync_duration_seconds_sum (\S+)", metrics)
    return float(count.group(1)), float(total.group(1))


def generator_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def one_run(args, binary, connections):
    """The figures of one measurement, as {name: number}."""
    with benchlib.pykv(binary, "always", args.workers) as server:
        load = ["--op", "set", "-c", connections, "--keyspace", args.keyspace, "--value-size", 32]
        benchlib.bench(binary, server.url, "--preload", "--duration", 1, *load)
        before = (thread_cpu(server.proc.pid), syncs(server.url), generator_cpu())
        report = benchlib.bench(binary, server.url, "--duration", args.duration, *load)
        after = (thread_cpu(server.proc.pid), syncs(server.url), generator_cpu())
    n = report["answered"]
    synced = after[1][0] - before[1][0]
    out = {
        "SETs/s": n / args.duration,
        "mean latency µs": report["latency_us"]["mean"],
        "syncs/s": synced / args.duration,
        "mean sync µs": (after[1][1] - before[1][1]) / synced * 1e6 if synced else 0,
        "records/sync": n / synced if synced else 0,
        "generator µs/SET": (after[2] - before[2]) * 1e6 / n,
    }
    for name, seconds in after[0].items():
        spent = seconds - before[0].get(name, 0)
        if spent > 0.01:
            out[f"{name} µs/SET"] = spent * 1e6 / n
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--binary", action="append", help="give it twice to compare")
    p.add_argument("--connections", type=int, nargs="+", default=[32])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--duration", type=float, default=4)
    p.add_argument("--keyspace", type=int, default=100_000)
    benchlib.add_workers_argument(p)
    args = p.parse_args()
    binaries = args.binary or [benchlib.default_binary()]
    for binary in binaries:
        benchlib.check_binary(binary)
    runs = {(b, c): [] for b in binaries for c in args.connections}
    for r in range(args.runs):
        for c in args.connections:
            for b in binaries:
                figures = one_run(args, b, c)
                runs[(b, c)].append(figures)
                shown = ", ".join(f"{k} {v:,.1f}" for k, v in figures.items())
                print(f"run {r + 1}/{args.runs}, {c} connections, {b}: {shown}", flush=True)
    print(f"\nmedians of {args.runs} runs, {benchlib.workers_label(args.workers)}:")
    for (b, c), figures in runs.items():
        keys = [k for k in figures[0] if all(k in f for f in figures)]
        shown = ", ".join(f"{k} {statistics.median(f[k] for f in figures):,.1f}" for k in keys)
        print(f"{c} connections, {b}: {shown}")


if __name__ == "__main__":
    main()
