"""What the benchmarks share: the reference policy, the selnet command (``SELNET_SRC=DIR``
runs another source tree, a ``git archive`` of a commit, for before/after pairs), and the
CPU its children used."""

from __future__ import annotations

import os
import resource
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = str(ROOT / ".venv" / "bin" / "python")


def refpolicy(kind: str) -> str:
    """The path of scripts/build-refpolicy's ``kind`` build (standard, mcs, mls, ...)."""
    out = subprocess.run([str(ROOT / "scripts" / "build-refpolicy")], capture_output=True,
                         text=True, check=True, env={**os.environ, "TYPES": kind}).stdout
    return next(ln.split(None, 1)[1] for ln in out.splitlines() if ln.startswith(kind + " "))


def selnet_command() -> tuple[list[str], dict[str, str]]:
    """(argv prefix, environment) that run selnet: the venv's, or ``SELNET_SRC``'s tree."""
    env = dict(os.environ)
    src = os.environ.get("SELNET_SRC")
    if src:
        env["PYTHONPATH"] = src
        return [PY, "-m", "selnet"], env
    return [str(ROOT / ".venv" / "bin" / "selnet")], env


def children_cpu() -> float:
    """CPU seconds (user + system) of every finished child so far: on a shared machine
    the CPU a command needs is steadier than its wall time."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime
