"""Label lookups and check chains, side by side with the tools people use today.

Run: .venv/bin/python bench/bench_core.py [--runs N]
Needs the full reference policy (scripts/build-refpolicy, standard build).  Every
command runs as a fresh process, selnet with a warm index cache (one untimed run
first); each row's commands run in turn, N rounds, so a loaded machine slows both
alike.  The figure is the median CPU time (user + system, from wait4) of the process,
wall time beside it.  SELNET_SRC=DIR adds the same selnet commands from another source
tree (a ``git archive`` of an older commit), with its own cache directory, for a
before/after pair.  Prints a Markdown table and writes it to bench/results/core.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchenv import PY, ROOT, refpolicy

SELNET = [str(ROOT / ".venv" / "bin" / "selnet")]


def run(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one fresh process, output discarded."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    _, _, usage = os.wait4(proc.pid, 0)
    return usage.ru_utime + usage.ru_stime, time.perf_counter() - t


def medians(cmds: list[tuple[list[str], dict[str, str] | None]],
            runs: int) -> list[tuple[float, float]]:
    """Median (CPU, wall) of each command, the commands interleaved round by round."""
    samples: list[list[tuple[float, float]]] = [[] for _ in cmds]
    for _ in range(runs):
        for i, (cmd, env) in enumerate(cmds):
            samples[i].append(run(cmd, env))
    return [(statistics.median(c for c, _ in s), statistics.median(w for _, w in s))
            for s in samples]


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
    pol = refpolicy("standard")
    before = os.environ.get("SELNET_SRC")
    old_env = None
    old_cache = tempfile.TemporaryDirectory(prefix="selnet-bench-before-")
    if before:
        # its own cache: another selnet may keep another format of the same entries
        old_env = {**os.environ, "PYTHONPATH": before, "XDG_CACHE_HOME": old_cache.name}
    old = [PY, "-m", "selnet"]
    rows = [
        ("label port 8080/tcp", ["label", "port", "8080/tcp", "--policy", pol],
         [("seinfo POLICY --portcon", ["seinfo", pol, "--portcon"]),
          ("sepolicy -P POLICY network -p 8080", ["sepolicy", "-P", pol, "network", "-p", "8080"])]),
        ("connect httpd_t 127.0.0.1:5432 (denied: chain and fixes)",
         ["connect", "httpd_t", "127.0.0.1:5432", "--policy", pol],
         [("sesearch -A -s httpd_t -c tcp_socket -p name_connect",
           ["sesearch", "-A", "-s", "httpd_t", "-c", "tcp_socket", "-p", "name_connect", pol])]),
        ("connect postfix_smtp_t 127.0.0.1:25 (allowed: no fixes)",
         ["connect", "postfix_smtp_t", "127.0.0.1:25", "--policy", pol],
         [("sesearch -A -s postfix_smtp_t -c tcp_socket -p name_connect",
           ["sesearch", "-A", "-s", "postfix_smtp_t", "-c", "tcp_socket", "-p", "name_connect",
            pol])]),
    ]
    lines = ["| selnet | CPU (wall) | before (SELNET_SRC) | today's tool | CPU (wall) | ratio (CPU) |",
             "|---|---|---|---|---|---|"]
    for name, argv, theirs in rows:
        subprocess.run([*SELNET, *argv], capture_output=True, check=False)  # warm
        cmds: list[tuple[list[str], dict[str, str] | None]] = [(SELNET + argv, None)]
        if before:
            subprocess.run([*old, *argv], capture_output=True, check=False, env=old_env)
            cmds.append(([*old, *argv], old_env))
        cmds += [(cmd, None) for _, cmd in theirs]
        got = medians(cmds, args.runs)
        ours = got[0]
        was = f"{got[1][0] * 1000:.0f} ms" if before else ""
        for (tname, _), t in zip(theirs, got[-len(theirs):], strict=True):
            lines.append(f"| `{name}` | {ours[0] * 1000:.0f} ms ({ours[1] * 1000:.0f}) | {was} | "
                         f"`{tname}` | {t[0] * 1000:.0f} ms ({t[1] * 1000:.0f}) | "
                         f"{ours[0] / t[0]:.3f} |")
    # The first run on a policy: a fresh cache directory each run, so the index is built in
    # a child process; what is kept per machine, not per policy (the refpolicy interface
    # index, the boolean descriptions from policy.xml) copied in as the warm run left it.
    # Next to sesearch's one check.
    cold = []
    shared = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "selnet"
    for _ in range(max(3, args.runs // 3)):
        with tempfile.TemporaryDirectory(prefix="selnet-bench-cold-") as home:
            (Path(home) / "selnet").mkdir(mode=0o700)
            (Path(home) / "selnet" / "derived").mkdir(mode=0o700)
            for f in [*shared.glob("interfaces-*.bin"), shared / "derived" / "booldoc.bin"]:
                if f.exists():
                    (Path(home) / "selnet" / f.relative_to(shared)).write_bytes(f.read_bytes())
            cold.append(run([*SELNET, "connect", "httpd_t", "127.0.0.1:5432", "--policy", pol],
                            {**os.environ, "XDG_CACHE_HOME": home}))
    sesearch = medians([(["sesearch", "-A", "-s", "httpd_t", "-c", "tcp_socket", "-p",
                          "name_connect", pol], None)], 3)[0]
    cold_cpu = statistics.median(c for c, _ in cold)
    cold_wall = statistics.median(w for _, w in cold)
    lines.append(f"| `connect httpd_t 127.0.0.1:5432`, first run on the policy (empty cache) | "
                 f"{cold_cpu * 1000:.0f} ms ({cold_wall * 1000:.0f}) | | `sesearch ...` (as above) | "
                 f"{sesearch[0] * 1000:.0f} ms ({sesearch[1] * 1000:.0f}) | "
                 f"{cold_cpu / sesearch[0]:.3f} |")
    floor = medians([([PY, "-c", "pass"], None),
                     ([PY, "-c", "import argparse, dataclasses, pathlib, re, typing"], None)],
                    args.runs)
    lines += ["", f"The interpreter alone: {floor[0][0] * 1000:.0f} ms CPU; with argparse, "
              f"dataclasses, pathlib, re and typing imported: {floor[1][0] * 1000:.0f} ms.",
              f"Index built cold from the binary policy (libsepol through setools, the TE "
              f"rules too; in process, setools imported, best of 3): "
              f"{cold_index(pol):.2f} s"]
    old_cache.cleanup()
    text = "\n".join(lines)
    print(text)
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "core.md").write_text(f"Reference policy: {Path(pol).name}\n\n{text}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
