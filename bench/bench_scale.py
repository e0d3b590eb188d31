"""Scale benchmark (issue 13): selnet domain/port/matrix on policies with N port types.

Usage: .venv/bin/python bench/bench_scale.py [RUNS] [N...]   (default 3 runs; N = 1000 2500
5000 10000).  Policies come from bench/gen_policy.py (compiled once per N under /tmp).
Each command runs as a fresh process with a warm index cache (one untimed run first); the
figure is the median.  The anchor is ``sepolicy -P POLICY network -d web_t`` on the same
policy, the tool people use today; ratios are selnet's time over sepolicy's.
Goal: linear in N, and ``domain`` at 10k port types <= 0.1 x sepolicy's time.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gen_policy import build

ROOT = Path(__file__).resolve().parent.parent
SELNET = str(ROOT / ".venv" / "bin" / "selnet")
DOMAIN = "web_t"


def timed(cmd: list[str], runs: int) -> float:
    subprocess.run(cmd, capture_output=True, check=True)  # warm-up (and index cache)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> int:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    sizes = [int(a) for a in sys.argv[2:]] or [1000, 2500, 5000, 10000]
    sep = shutil.which("sepolicy")
    head = f"{'port types':>10} {'portcons':>8} {'domain':>8} {'--full':>8} {'port':>8} " \
           f"{'matrix':>8} {'sepolicy':>9} {'domain/sepolicy':>16}"
    print(head)
    for n in sizes:
        pol = str(build(n, Path(f"/tmp/selnet-gen-{n}.policy")))
        base = [SELNET]
        dom = timed([*base, "domain", DOMAIN, "--policy", pol], runs)
        full = timed([*base, "domain", DOMAIN, "--full", "--policy", pol], runs)
        port = timed([*base, "port", "--type", "p20_port_t", "--policy", pol], runs)
        mat = timed([*base, "matrix", "--policy", pol, "-o", "/tmp/selnet-gen-matrix.csv"], runs)
        anchor = timed([sep, "-P", pol, "network", "-d", DOMAIN], runs) if sep else float("nan")
        print(f"{n:>10} {3 * n:>8} {dom:>7.3f}s {full:>7.3f}s {port:>7.3f}s {mat:>7.3f}s "
              f"{anchor:>8.3f}s {dom / anchor:>16.3f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
