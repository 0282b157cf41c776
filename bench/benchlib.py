"""Shared by the bench scripts (compare.py, ratio_pairs.py, tail_pairs.py,
cpu_per_request.py, plot.py...): start PyKV or the ceiling on a free port in
a temporary data directory, and run `pykv bench --json` against it.

Nothing is pinned to a core: the servers and the generator share the
machine as a real deployment would, so run these on an otherwise idle
machine and compare medians of several runs.
"""

import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def default_binary():
    """The release binary: $CARGO_TARGET_DIR/release/pykv if that is set,
    else target/release/pykv."""
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    return os.path.join(target, "release", "pykv")


def check_binary(binary):
    if not os.access(binary, os.X_OK):
        sys.exit(f"{binary} not found: run `cargo build --release` first (or pass --binary)")


class Process:
    """A server started with `--port 0`; its URL is read from the line it
    prints on stdout. Use it in a `with` block: it is stopped (SIGTERM,
    then SIGKILL after 10 s) and its data directory removed at the end."""

    def __init__(self, argv, prefix):
        self.temp = tempfile.TemporaryDirectory(prefix="pykv-bench-")
        argv = [a.replace("{data}", self.temp.name) for a in argv]
        self.proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "RUST_LOG": "warn"},
            text=True,
        )
        line = self.proc.stdout.readline().strip()
        if not line.startswith(prefix):
            self.stop()
            raise RuntimeError(f"{argv[0]} did not start (first line: {line!r})")
        self.url = line[len(prefix):]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.temp.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def cpu_times(stat_path):
    """(command name, user seconds, system seconds) from a /proc `stat`
    file: /proc/PID/stat for a process, /proc/PID/task/TID/stat for a
    thread."""
    with open(stat_path) as f:
        stat = f.read()
    # The command name may hold spaces and parentheses: it runs from the
    # first '(' to the last ')', and the fields are counted after it.
    name = stat[stat.index("(") + 1 : stat.rindex(")")]
    fields = stat.rsplit(")", 1)[1].split()
    return name, int(fields[11]) / CLOCK_TICKS, int(fields[12]) / CLOCK_TICKS


def workers_flag(workers):
    """`--workers N`, or nothing for the runtime's default (one per core)."""
    return ["--workers", str(workers)] if workers else []


def pykv(binary, fsync="everysec", workers=None):
    """`pykv serve` with the given --fsync policy (and --workers), in a
    fresh data dir."""
    argv = [binary, "serve", "--port", "0", "--data-dir", "{data}", "--fsync", fsync]
    return Process(argv + workers_flag(workers), "PyKV listening on ")


def ceiling(binary, value_size, namespaces=1, workers=None):
    """`pykv bench --ceiling`: answers the size of a GET, does no work."""
    argv = [
        binary, "bench", "--ceiling", "--port", "0",
        "--value-size", str(value_size), "--namespaces", str(namespaces),
    ]
    return Process(argv + workers_flag(workers), "PyKV ceiling listening on ")


def workers_label(workers):
    """How many workers the servers had, for a report."""
    return f"{workers} server worker(s)" if workers else "one server worker per core"


def add_workers_argument(parser):
    """`--workers N` of a script: the server's and the ceiling's alike."""
    parser.add_argument(
        "--workers", type=int,
        help="threads that answer requests, for PyKV and the ceiling alike "
        "(pykv serve --workers); default: one per core",
    )


def load(args, url, op, *extra, threads=None):
    """One measurement of `op` against `url` with a script's common options
    (`args.binary`, `connections`, `threads` unless `threads` is given,
    `duration`, `warmup`, `keyspace`, `value_size`): the report of
    `pykv bench`."""
    return bench(
        args.binary, url,
        "--op", op, "-c", args.connections, "--threads", threads or args.threads,
        "--duration", args.duration, "--warmup", args.warmup, "--keyspace", args.keyspace,
        "--value-size", args.value_size, *extra,
    )


def bench(binary, url, *args):
    """Runs `pykv bench --json --quiet ARGS` against `url`; returns its
    report (a dict). Warns on stderr about errors and unexpected statuses."""
    argv = [binary, "bench", "--url", url, "--json", "--quiet", *map(str, args)]
    done = subprocess.run(argv, capture_output=True, text=True)
    if not done.stdout.strip():
        raise RuntimeError(f"{' '.join(argv)} failed: {done.stderr.strip()}")
    report = json.loads(done.stdout)
    if report["errors_total"] or report["non_2xx"]:
        print(
            f"warning: {' '.join(argv[3:])}: {report['errors_total']} errors, "
            f"statuses {report['status']}: {report['first_error']}",
            file=sys.stderr,
        )
    return report
