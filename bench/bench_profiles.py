"""Benchmark: `selnet domain httpd_t` vs `sepolicy network -d httpd_t`, and `selnet matrix`.

Usage: .venv/bin/python bench/bench_profiles.py [RUNS]   (uses the full MCS reference policy
from scripts/build-refpolicy; warm selnet index cache, as a user would run it twice).
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

ROOT = Path(__file__).resolve().parent.parent
SELNET = str(ROOT / ".venv" / "bin" / "selnet")


def refpolicy() -> str:
    out = subprocess.run([str(ROOT / "scripts" / "build-refpolicy")], capture_output=True,
                         text=True, check=True).stdout
    return next(line.split(" ", 1)[1] for line in out.splitlines() if line.startswith("mcs "))


def timed(cmd: list[str], runs: int) -> float:
    subprocess.run(cmd, capture_output=True, check=True)  # warm-up (and index cache)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> int:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    pol = refpolicy()
    rows = []
    sel = timed([SELNET, "domain", "httpd_t", "--policy", pol], runs)
    rows.append(("selnet domain httpd_t", sel))
    if shutil.which("sepolicy"):
        sep = timed(["sepolicy", "-P", pol, "network", "-d", "httpd_t"], max(1, runs // 2))
        rows.append(("sepolicy network -d httpd_t", sep))
        rows.append(("ratio selnet/sepolicy", sel / sep))
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in ("csv", "sqlite"):
            out = str(Path(tmp) / f"m.{fmt}")
            rows.append((f"selnet matrix --format {fmt} (full refpolicy)",
                         timed([SELNET, "matrix", "--policy", pol, "--format", fmt, "-o", out],
                               max(1, runs // 2))))
    for name, value in rows:
        unit = "" if name.startswith("ratio") else " s"
        print(f"{name:48s} {value:8.3f}{unit}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
