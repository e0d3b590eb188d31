"""Benchmark: `selnet domain httpd_t` vs `sepolicy network -d httpd_t`, and `selnet matrix`.

Usage: .venv/bin/python bench/bench_profiles.py [RUNS] [POLICY]   (default: the full MCS reference
policy from scripts/build-refpolicy; warm selnet index cache, as a user would run it twice).
Prints wall and CPU seconds (median); SELNET_SRC=DIR runs selnet from another source tree.
Targets (issue #4): selnet domain <= 1/10 of sepolicy's time; matrix < 10 s.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchenv import children_cpu, refpolicy, selnet_command

SELNET_CMD, ENV = selnet_command()


def timed(cmd: list[str], runs: int) -> tuple[float, float]:
    """Median (wall, CPU) seconds: on a shared machine the CPU time is the steadier one."""
    subprocess.run(cmd, capture_output=True, check=True, env=ENV)  # warm-up (index cache)
    walls, cpus = [], []
    for _ in range(runs):
        t, c = time.perf_counter(), children_cpu()
        subprocess.run(cmd, capture_output=True, check=True, env=ENV)
        walls.append(time.perf_counter() - t)
        cpus.append(children_cpu() - c)
    return statistics.median(walls), statistics.median(cpus)


def main() -> int:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    pol = sys.argv[2] if len(sys.argv) > 2 else refpolicy("mcs")
    rows: list[tuple[str, tuple[float, float]]] = []
    for d in ("httpd_t", "sshd_t"):
        rows.append((f"selnet domain {d}", timed([*SELNET_CMD, "domain", d, "--policy", pol],
                                                 runs)))
    rows.append(("selnet domain httpd_t --full",
                 timed([*SELNET_CMD, "domain", "httpd_t", "--full", "--policy", pol], runs)))
    rows.append(("selnet port 80", timed([*SELNET_CMD, "port", "80", "--policy", pol], runs)))
    if shutil.which("sepolicy"):
        sep = timed(["sepolicy", "-P", pol, "network", "-d", "httpd_t"], max(1, runs // 2))
        rows.append(("sepolicy network -d httpd_t", sep))
        sel = rows[0][1]
        rows.append(("ratio selnet/sepolicy", (sel[0] / sep[0], sel[1] / sep[1])))
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in ("csv", "sqlite"):
            out = str(Path(tmp) / f"m.{fmt}")
            rows.append((f"selnet matrix --format {fmt} (full refpolicy)",
                         timed([*SELNET_CMD, "matrix", "--policy", pol, "--format", fmt, "-o",
                                out], max(1, runs // 2))))
    print(f"{'':48s} {'wall':>8} {'cpu':>8}")
    for name, (wall, cpu) in rows:
        unit = "" if name.startswith("ratio") else " s"
        print(f"{name:48s} {wall:8.3f} {cpu:8.3f}{unit}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
