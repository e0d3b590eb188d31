"""The campaign: every part, its counts printed and written to DIR/fuzz-report.json."""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench.fuzz import cache, cli, harness, logs, policy

# (policy mutants, log lines, CLI calls, cache corruptions)
LONG = (10_000, 1_000_000, 3_000, 1_000)
QUICK = (40, 5_000, 60, 20)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="scripts/fuzz", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="a small fixed-seed slice (seconds)")
    ap.add_argument("--seed", type=int, default=None, help="random seed (default: time; --quick: 0)")
    ap.add_argument("--out", type=Path, default=None,
                    help="where fuzz-report.json goes (default: the current directory)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--parts", default="policy,logs,cli,cache")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply the long run's counts")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args(argv)
    seed = args.seed if args.seed is not None else (0 if args.quick else int(time.time()))
    counts = QUICK if args.quick else tuple(int(c * args.scale) for c in LONG)
    n_policy, n_lines, n_cli, n_cache = counts
    out_dir = (args.out or Path.cwd()).resolve()
    wanted = set(args.parts.split(","))
    parts: list[harness.Part] = []
    with harness.Workspace(keep=args.keep) as ws:
        print(f"fuzz: seed {seed}, workspace {ws.root}, {args.jobs} jobs", flush=True)
        runs: list[tuple[str, Callable[[random.Random], harness.Part]]] = [
            ("policy", lambda r: policy.run(ws, r, n_policy, args.jobs)),
            ("logs", lambda r: logs.run(ws, r, n_lines, jobs=args.jobs)),
            ("cli", lambda r: cli.run(ws, r, n_cli, args.jobs)),
            ("cache", lambda r: cache.run(ws, r, n_cache, args.jobs)),
        ]
        for i, (name, fn) in enumerate(runs):
            if name not in wanted:
                continue
            part = fn(random.Random(seed * 10 + i))
            parts.append(part)
            print(part.line(), flush=True)
            for kind, example in part.examples.items():
                print(f"  {kind}: {example[:400]}", flush=True)
        report = harness.write_report(parts, out_dir, {"seed": seed, "quick": args.quick,
                                                      "counts": dict(zip(
                                                          ["policy", "logs", "cli", "cache"],
                                                          counts, strict=True))})
    print(f"fuzz: report {report}")
    return 1 if any(p.failures for p in parts) else 0


if __name__ == "__main__":
    sys.exit(main())
