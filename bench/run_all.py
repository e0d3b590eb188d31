"""Every benchmark in one command: each script's table, side by side with its anchor.

Run: .venv/bin/python bench/run_all.py [--quick]
Runs, in order: bench_core (label/connect vs seinfo/sesearch/sepolicy, cold index),
bench_profiles (domain/port/matrix vs sepolicy), bench_scale (1k-10k port types vs
sepolicy), bench_graph, bench_review (diff/whatif vs sediff), bench_audit (audit vs
audit2why -i).  --quick runs the small sizes and skips sediff (minutes) and the 1M-AVC
log.  The tables go to stdout and to bench/results/all.md; a failing script is reported
and the others still run.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = str(ROOT / ".venv" / "bin" / "python")


def scripts(quick: bool) -> list[tuple[str, list[str]]]:
    return [
        ("bench_core.py", ["--runs", "3" if quick else "10"]),
        ("bench_profiles.py", ["3"]),
        ("bench_scale.py", ["1", "1000", "5000"] if quick else ["3"]),
        ("bench_graph.py", ["3"]),
        ("bench_review.py", ["--runs", "1", "--skip-sediff"] if quick else ["--runs", "3"]),
        ("bench_audit.py", ["100000"] if quick else []),
    ]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    out = [f"# bench/run_all.py ({time.strftime('%Y-%m-%d %H:%M')})", ""]
    failed = 0
    for name, argv in scripts(args.quick):
        print(f"== {name} {' '.join(argv)}", file=sys.stderr, flush=True)
        start = time.perf_counter()
        proc = subprocess.run([PY, str(ROOT / "bench" / name), *argv], capture_output=True,
                              text=True, check=False)
        took = time.perf_counter() - start
        out.append(f"## {name} {' '.join(argv)} ({took:.0f} s)")
        out.append("")
        if proc.returncode != 0:
            failed += 1
            out.append(f"failed (exit {proc.returncode}): {proc.stderr.strip()[-500:]}")
        else:
            out.append(proc.stdout.strip())
        out.append("")
        print(out[-2], flush=True)
    text = "\n".join(out)
    (ROOT / "bench" / "results").mkdir(exist_ok=True)
    (ROOT / "bench" / "results" / "all.md").write_text(text + "\n")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
