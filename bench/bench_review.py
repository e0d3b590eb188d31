"""Reviewing a change: `selnet diff` / `selnet whatif` side by side with `sediff`, in one run.

Run: .venv/bin/python bench/bench_review.py [--runs N] [--skip-sediff]
Needs the reference policy and Debian's own (scripts/build-refpolicy builds both:
TYPES="standard debian-local").  Every command runs as a fresh process, selnet's index
cache warmed first.  Prints a Markdown table (ratios: selnet / sediff, lower is better)
and writes it to bench/results/review.md.

sediff compares statements: its output on the pair is counted in lines, next to the
lines of selnet's summary (which must fit a screen).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SELNET = str(ROOT / ".venv" / "bin" / "selnet")


def policies() -> dict[str, str]:
    out = subprocess.run([str(ROOT / "scripts" / "build-refpolicy")], capture_output=True,
                         text=True, check=True,
                         env={**os.environ, "TYPES": "standard debian-local"}).stdout
    return dict(line.split(" ", 1) for line in out.splitlines() if " " in line)


def run(cmd: list[str], runs: int) -> tuple[float, int]:
    """Median wall seconds of a fresh process, and the lines it printed."""
    samples = []
    lines = 0
    for _ in range(runs):
        t = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        samples.append(time.perf_counter() - t)
        lines = proc.stdout.count("\n")
        if proc.returncode not in (0, 1):
            raise SystemExit(f"{' '.join(cmd)}: exit {proc.returncode}: {proc.stderr[-300:]}")
    return statistics.median(samples), lines


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--skip-sediff", action="store_true", help="sediff takes minutes")
    args = ap.parse_args()
    pols = policies()
    ref, deb = pols["standard"], pols["debian-local"]
    for p in (ref, deb):  # warm selnet's index cache
        subprocess.run([SELNET, "info", "--policy", p], capture_output=True, check=True)
    rows: list[tuple[str, float, int, str, float | None, int | None]] = []
    diff_t, diff_n = run([SELNET, "diff", ref, deb], args.runs)
    sediff: tuple[float, int] | None = None
    if not args.skip_sediff:
        sediff = run(["sediff", ref, deb], 1)
    rows.append(("diff refpolicy Debian", diff_t, diff_n, "sediff refpolicy Debian",
                 sediff[0] if sediff else None, sediff[1] if sediff else None))
    self_t, self_n = run([SELNET, "diff", ref, ref], args.runs)
    rows.append(("diff refpolicy refpolicy", self_t, self_n, "", None, None))
    for label, change in (("whatif --port 'tcp 8082 http_port_t'", ["--port", "tcp 8082 http_port_t"]),
                          ("whatif --bool httpd_can_network_connect=on",
                           ["--bool", "httpd_can_network_connect=on"]),
                          ("whatif --rule 'allow httpd_t postgresql_port_t:...'",
                           ["--rule", "allow httpd_t postgresql_port_t:tcp_socket name_connect;"])):
        t, n = run([SELNET, "whatif", "--policy", ref, *change], args.runs)
        rows.append((label, t, n, "", None, None))
    out = ["| selnet | time | lines | today's tool | time | lines | ratio |",
           "|---|---|---|---|---|---|---|"]
    for label, t, n, other, ot, on in rows:
        ratio = f"{t / ot:.3f} ({ot / t:.0f}x faster)" if ot else ""
        out.append(f"| `{label}` | {t:.2f} s | {n} | {other and f'`{other}`'} | "
                   f"{f'{ot:.1f} s' if ot else ''} | {on if on is not None else ''} | {ratio} |")
    text = "\n".join(out)
    print(text)
    (ROOT / "bench" / "results").mkdir(exist_ok=True)
    (ROOT / "bench" / "results" / "review.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
