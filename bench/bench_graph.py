"""Benchmark: the reachability graph of the whole reference policy (`selnet graph`).

Usage: .venv/bin/python bench/bench_graph.py [RUNS]   (the standard reference policy from
scripts/build-refpolicy; warm index cache).  Target (issue 12): the graph builds in < 2 s.

Measures, in process (the policy loaded once, as `selnet graph` does after its load):
build_graph (the matrix decisions grouped into edges), build_graph --labeled, each
renderer, and `selnet report`'s analysis; then `selnet graph` and `selnet report` as
commands.  The median of RUNS is printed, with the minimum: on a shared machine the
minimum is the better estimate of the work itself.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SELNET = str(ROOT / ".venv" / "bin" / "selnet")
TARGET = 2.0


def refpolicy() -> str:
    out = subprocess.run([str(ROOT / "scripts" / "build-refpolicy")], capture_output=True,
                         text=True, check=True).stdout
    return next(line.split(" ", 1)[1] for line in out.splitlines()
                if line.startswith("standard "))


def timed(fn: Callable[[], object], runs: int) -> tuple[float, float]:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), min(times)


def main() -> int:
    from selnet.policy.loader import load_policy
    from selnet.render.graph import graph_json, to_dot, to_graphml
    from selnet.review.graph import build_graph
    from selnet.review.report import build_report

    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    pol_path = refpolicy()
    pol = load_policy([pol_path])
    graph = build_graph(pol)  # warm-up: port map, type names
    print(f"graph: {len(graph.nodes)} nodes, {len(graph.edges)} edges")
    rows = [
        ("build_graph (whole policy)", *timed(lambda: build_graph(pol), runs)),
        ("build_graph --labeled", *timed(lambda: build_graph(pol, labeled=True), 1)),
        ("to_dot", *timed(lambda: to_dot(graph), runs)),
        ("to_graphml", *timed(lambda: to_graphml(graph), runs)),
        ("graph_json", *timed(lambda: graph_json(graph), runs)),
        ("build_report (top 20)", *timed(lambda: build_report(pol), 1)),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for name, argv in (
            ("selnet graph -o F.dot (command)", ["graph", "-o", f"{tmp}/g.dot"]),
            ("selnet graph --domain httpd_t --depth 1 --format svg",
             ["graph", "--domain", "httpd_t", "--depth", "1", "--format", "svg",
              "-o", f"{tmp}/g.svg"]),
            ("selnet report -o F.html (command)", ["report", "-o", f"{tmp}/r.html"]),
        ):
            cmd = [SELNET, *argv, "--policy", pol_path]
            rows.append((name, *timed(partial(subprocess.run, cmd, capture_output=True,
                                              check=True), 1)))
    for name, median, least in rows:
        print(f"{name:56s} {median:7.2f} s  (min {least:.2f} s)")
    best = rows[0][2]
    cpu = time.process_time()
    build_graph(pol)
    cpu = time.process_time() - cpu
    print(f"build_graph CPU time {cpu:.2f} s; load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} cores")
    print(f"target build_graph < {TARGET} s: {'met' if best < TARGET else 'NOT met'} "
          f"({best:.2f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
