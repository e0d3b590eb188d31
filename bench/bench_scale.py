"""Scale benchmark (issue 13): selnet domain/port/matrix on policies with N port types.

Usage: .venv/bin/python bench/bench_scale.py [RUNS] [N...]   (default 3 runs; N = 1000 2500
5000 10000).  Policies come from bench/gen_policy.py (compiled once per N under /tmp).
Each command runs as a fresh process with a warm index cache (one untimed run first); the
figure is the median CPU time (user + system) of the process.  The anchor is
``sepolicy -P POLICY network -d web_t`` on the same policy, the tool people use today;
ratios are selnet's time over sepolicy's.
Goal: linear in N, and ``domain`` at 10k port types <= 0.1 x sepolicy's time.

SELNET_SRC=DIR runs ``python -m selnet`` from another source tree (e.g. ``git archive`` of an
older commit) for a before/after comparison; SELNET_TIMEOUT (seconds, default 600) stops a
command that takes longer (shown as ">T").
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchenv import children_cpu, selnet_command
from gen_policy import build

DOMAIN = "web_t"


TIMEOUT = float(os.environ.get("SELNET_TIMEOUT", "600"))
SELNET_CMD, ENV = selnet_command()


def timed(cmd: list[str], runs: int) -> float:
    """Median CPU seconds (user + system) of ``runs`` runs after a warm-up: on a shared
    machine the CPU a command needs is steadier than its wall time.  inf when a run exceeds
    TIMEOUT, nan when it fails."""
    try:
        subprocess.run(cmd, capture_output=True, check=True, env=ENV, timeout=TIMEOUT)
        times = []
        for _ in range(runs):
            t = children_cpu()
            subprocess.run(cmd, capture_output=True, check=True, env=ENV, timeout=TIMEOUT)
            times.append(children_cpu() - t)
    except subprocess.TimeoutExpired:
        return float("inf")
    except subprocess.CalledProcessError:
        return float("nan")  # e.g. an older selnet without --full
    return statistics.median(times)


def shown(t: float) -> str:
    return f">{TIMEOUT:.0f}s" if t == float("inf") else f"{t:.3f}s"


def main() -> int:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    sizes = [int(a) for a in sys.argv[2:]] or [1000, 2500, 5000, 10000]
    sep = shutil.which("sepolicy")
    print(f"{'port types':>10} {'portcons':>8} {'domain':>9} {'--full':>9} {'port':>9} "
          f"{'matrix':>9} {'sepolicy':>9} {'domain/sepolicy':>16}")
    for n in sizes:
        pol = str(build(n, Path(f"/tmp/selnet-gen-{n}.policy")))
        dom = timed([*SELNET_CMD, "domain", DOMAIN, "--policy", pol], runs)
        full = timed([*SELNET_CMD, "domain", DOMAIN, "--full", "--policy", pol], runs)
        port = timed([*SELNET_CMD, "port", "--type", "p20_port_t", "--policy", pol], runs)
        mat = timed([*SELNET_CMD, "matrix", "--policy", pol, "-o", "/tmp/selnet-gen-matrix.csv"],
                    runs)
        anchor = timed([sep, "-P", pol, "network", "-d", DOMAIN], runs) if sep else float("nan")
        print(f"{n:>10} {3 * n:>8} {shown(dom):>9} {shown(full):>9} {shown(port):>9} "
              f"{shown(mat):>9} {shown(anchor):>9} {dom / anchor:>16.3f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
