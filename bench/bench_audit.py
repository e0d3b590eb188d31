"""``selnet audit`` next to ``audit2why -i`` on realistic raw audit logs, in one run.

Run: [SELNET_SRC=DIR] .venv/bin/python bench/bench_audit.py [N_AVCS ...] [--distinct D] [--keep DIR]
     (default: 100000 1000000; ``nice -n 10`` on a shared machine)

For each size, ``gen_audit_log.py`` writes a raw audit.log of N AVCs on the reference
policy (MCS build): many domains, true port labels, SYSCALL/SOCKADDR/PROCTITLE records
between the AVCs, repeats and about D (default 60) distinct denials.  Then, one after
the other on the same file, as whole commands (policy load included, selnet with a warm
index cache): ``audit2why -p POLICY -i LOG`` and ``selnet audit --json --policy POLICY
LOG``.  Printed per size: CPU time (user + system), wall time and peak RSS of each
(``wait4`` of that child), the ratio audit2why / selnet of CPU times (steadier than wall
times on a shared machine), and selnet's parser alone on the same file (the raw lanes and
the Python parser, in process) to show where selnet's time goes.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# SELNET_SRC=DIR: selnet from another source tree (a ``git archive`` of a commit)
SRC = os.environ.get("SELNET_SRC") or str(ROOT / "src")
SELNET = [str(ROOT / ".venv" / "bin" / "python"), "-m", "selnet"] if os.environ.get(
    "SELNET_SRC") else [str(ROOT / ".venv" / "bin" / "selnet")]
if os.environ.get("SELNET_SRC"):
    os.environ["PYTHONPATH"] = SRC
sys.path.insert(0, SRC)
sys.path.insert(0, str(ROOT / "bench"))
from benchenv import refpolicy  # noqa: E402


def measured(cmd: list[str]) -> tuple[float, float, int, float]:
    """(wall seconds, peak RSS MiB, exit status, CPU seconds) of one command, output
    discarded."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return (time.perf_counter() - t, usage.ru_maxrss / 1024, proc.returncode,
            usage.ru_utime + usage.ru_stime)


def parser_only(log: Path) -> tuple[float, float]:
    """CPU seconds of selnet's parsing alone: (the raw lanes, Python parser); the repeats
    come as events here (no auditor counts them)."""
    from selnet.audit.auparse_source import AUPARSE_AVAILABLE, events
    from selnet.audit.avclog import AvcLogParser

    out = []
    for use in (True, False):
        if use and not AUPARSE_AVAILABLE:
            out.append(float("nan"))
            continue
        t = time.process_time()
        with open(log, encoding="utf-8", errors="replace") as f:
            for _ in events(AvcLogParser(), f, use_auparse=use):
                pass
        out.append(time.process_time() - t)
    return out[0], out[1]


def main() -> None:
    from gen_audit_log import generate

    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("sizes", nargs="*", type=int, default=[100_000, 1_000_000])
    ap.add_argument("--distinct", type=int, default=60)
    ap.add_argument("--keep", type=Path, help="write the logs here and keep them")
    ap.add_argument("--no-parser", action="store_true", help="skip the parser-only timing")
    a = ap.parse_args()
    # The MCS build: the generated contexts carry ``:s0``, which the non-MLS build rejects
    # (audit2why then prints nothing and computes nothing).
    pol = refpolicy("mcs")
    subprocess.run([*SELNET, "info", "--policy", pol], stdout=subprocess.DEVNULL, check=True)
    with tempfile.TemporaryDirectory() as tmp:
        where = a.keep or Path(tmp)
        where.mkdir(parents=True, exist_ok=True)
        rows = []
        for n in a.sizes:
            log = where / f"audit-{n}.log"
            lines = generate(log, n, pol, distinct=a.distinct)
            a2w = measured(["audit2why", "-p", pol, "-i", str(log)])
            sel = measured([*SELNET, "audit", "--json", "--policy", pol, str(log)])
            parse = (float("nan"), float("nan")) if a.no_parser else parser_only(log)
            rows.append((n, lines, a2w, sel, parse))
            print(f"{n:,} AVCs ({lines:,} lines): audit2why {a2w[3]:.1f} s CPU ({a2w[0]:.1f} "
                  f"wall) / {a2w[1]:.0f} MiB; selnet {sel[3]:.2f} s CPU ({sel[0]:.2f} wall) / "
                  f"{sel[1]:.0f} MiB (exit {sel[2]}); selnet {a2w[3] / sel[3]:.1f}x faster"
                  + ("" if a.no_parser else f"; parser alone (CPU): raw lanes {parse[0]:.2f} s, "
                     f"Python {parse[1]:.2f} s"),
                  flush=True)
        print()
        print("| log | audit2why -i: CPU (wall), peak RSS | selnet audit --json | "
              "ratio of CPU (audit2why / selnet) |")
        print("|---|---|---|---|")
        for n, lines, a2w, sel, _ in rows:
            print(f"| {n:,} AVCs, {lines:,} lines | {a2w[3]:.1f} s ({a2w[0]:.1f}), "
                  f"{a2w[1]:.0f} MiB | {sel[3]:.2f} s ({sel[0]:.2f}), {sel[1]:.0f} MiB | "
                  f"{a2w[3] / sel[3]:.1f}x |")


if __name__ == "__main__":
    main()
