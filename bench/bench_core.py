"""Label lookups and check chains, side by side with the tools people use today.

Run: .venv/bin/python bench/bench_core.py [--runs N]
Needs the full reference policy (scripts/build-refpolicy) and hyperfine (Debian
package); falls back to a plain timing loop without hyperfine.  Every command
runs as a fresh process; selnet's index cache is warmed first.  Prints a
Markdown table with the ratios and writes it to bench/results/core.md.
"""

from __future__ import annotations

import argparse
import json
import os
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
                         text=True, check=True, env={**os.environ, "TYPES": "standard"}).stdout
    return out.split()[1]


def timed(cmd: list[str], runs: int) -> float:
    """Mean wall seconds of a fresh process."""
    if shutil.which("hyperfine"):
        with tempfile.NamedTemporaryFile(suffix=".json") as f:
            subprocess.run(["hyperfine", "-N", "-w", "2", "-r", str(runs), "--export-json", f.name,
                            "-i", " ".join(cmd)], capture_output=True, check=True)
            return float(json.load(open(f.name))["results"][0]["mean"])
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=False)
        samples.append(time.perf_counter() - t)
    return statistics.mean(samples)


def cold_index(policy: str) -> float:
    sys.path.insert(0, str(ROOT / "src"))
    from selnet.policy.extract import extract
    from selnet.policy.source import sha256_file

    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        extract(policy, sha256_file(Path(policy)))
        best = min(best, time.perf_counter() - t)
    return best


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()
    pol = refpolicy()
    subprocess.run([SELNET, "info", "--policy", pol], capture_output=True, check=True)  # warm
    rows = []
    pairs = [
        ("label port 8080/tcp", [SELNET, "label", "port", "8080/tcp", "--policy", pol],
         [("seinfo --portcon", ["seinfo", pol, "--portcon"]),
          ("sepolicy network -p 8080", ["sepolicy", "-P", pol, "network", "-p", "8080"])]),
        ("connect httpd_t 127.0.0.1:5432", [SELNET, "connect", "httpd_t", "127.0.0.1:5432", "--policy", pol],
         [("sesearch -A -s httpd_t -c tcp_socket -p name_connect",
           ["sesearch", "-A", "-s", "httpd_t", "-c", "tcp_socket", "-p", "name_connect", pol])]),
    ]
    for name, ours, theirs in pairs:
        t_ours = timed(ours, args.runs)
        for tname, tcmd in theirs:
            t_theirs = timed(tcmd, args.runs)
            rows.append((f"selnet {name}", t_ours, tname, t_theirs, t_ours / t_theirs))
    cold = cold_index(pol)
    lines = [
        "| selnet | time | today's tool | time | ratio |",
        "|---|---|---|---|---|",
        *[f"| `{a}` | {ta * 1000:.0f} ms | `{b}` | {tb * 1000:.0f} ms | {r:.2f} |"
          for a, ta, b, tb, r in rows],
        "",
        f"Index built cold from the binary policy (setools, in process, best of 3): {cold:.2f} s",
    ]
    text = "\n".join(lines)
    print(text)
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "core.md").write_text(f"Reference policy: {Path(pol).name}\n\n{text}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
