"""Cache corruption: the example policy's index (and compiled CIL) cache under the
workspace's XDG_CACHE_HOME is corrupted, then ``selnet connect`` must answer exactly as on a
clean cache: a corrupt or foreign cache is rebuilt silently, never trusted.

Corruptions: byte mutations of a cache file (bit flips, truncation, chunks, zeroed ranges),
another policy's index file swapped in under this policy's name, another policy's binary
put in place of ``compiled/<sha>.policy``.  Failure kinds: the call's contract
(``harness.judge_call``), ``different-answer`` (exit 0/1, not the clean answer) and
``error-instead-of-answer`` (exit 2: a corrupt cache is not the user's bad input).
"""

from __future__ import annotations

import random
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bench.fuzz import harness
from bench.fuzz.harness import BASE_CIL, EXAMPLE_CIL, Part, Workspace
from bench.fuzz.mutate import mutate_bytes
from bench.fuzz.policy import SMALL_POLICIES


def _argv(policy: Path) -> list[str]:
    return ["connect", "web_t", "127.0.0.1:5432", "--policy", str(policy), "--no-interfaces"]


class Setup:
    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.binary = harness.secilc(ws, "cache-example.policy", EXAMPLE_CIL)
        self.cil = ws.path("cache-example.cil")
        self.cil.write_text(EXAMPLE_CIL.read_text())
        small = ws.path("cache-small.cil")
        small.write_text(SMALL_POLICIES["small-allow"])
        self.other = harness.secilc(ws, "cache-other.policy", BASE_CIL, small)
        self.pristine = ws.fresh_dir("cache-pristine")
        env = {"XDG_CACHE_HOME": str(self.pristine)}
        self.answers: dict[str, tuple[int | None, str]] = {}
        for pol in (self.binary, self.cil):
            def clean_call(pol: Path = pol) -> harness.Call:
                return harness.cli(_argv(pol), env)

            clean = harness.run_map(ws, [clean_call])[0].value
            if clean.rc not in (0, 1):
                raise AssertionError(f"clean connect failed: {clean.err}")
            self.answers[str(pol)] = (clean.rc, clean.out)
        index_dir = self.pristine / "selnet" / "index"
        before = set(index_dir.iterdir())
        harness.run_map(ws, [lambda: harness.cli(_argv(self.other), env)])
        self.index = sorted(p for p in index_dir.iterdir() if p.is_file())
        self.compiled = sorted((self.pristine / "selnet" / "compiled").glob("*.policy"))
        (self.other_index,) = [p for p in self.index if p not in before]
        self.targets = [p for p in self.index if p != self.other_index] + self.compiled


def corrupt(rng: random.Random, s: Setup, case_dir: Path) -> tuple[str, Path]:
    """Copy the pristine cache into case_dir and corrupt one file: (description, policy arg)."""
    shutil.copytree(s.pristine, case_dir, dirs_exist_ok=True)
    target = rng.choice(s.targets)
    rel = target.relative_to(s.pristine)
    dest = case_dir / rel
    r = rng.random()
    if r < 0.12 and target in s.index:
        shutil.copyfile(s.other_index, dest)
        what = f"{rel}: another policy's index swapped in"
    elif r < 0.24 and target in s.compiled:
        shutil.copyfile(s.other, dest)
        what = f"{rel}: another policy's binary in its place"
    else:
        data = target.read_bytes()
        descs = []
        for _ in range(rng.choice((1, 1, 2))):
            d, data = mutate_bytes(rng, data)
            descs.append(d)
        dest.write_bytes(data)
        what = f"{rel}: {' + '.join(descs)}"
    # the compiled file only matters to the CIL run; an index file, to both
    policy = s.cil if target in s.compiled or rng.random() < 0.5 else s.binary
    return what, policy


def run(ws: Workspace, rng: random.Random, n: int, jobs: int = 1, timeout: float = 20.0,
        setup: Setup | None = None) -> Part:
    part = Part("cache")
    t0 = time.monotonic()
    s = setup or Setup(ws)
    meta: list[tuple[str, Path, Path]] = []

    def tasks() -> Iterator[Callable[[], Any]]:
        for _ in range(n):
            d = ws.fresh_dir("cachecase")
            what, pol = corrupt(rng, s, d)
            meta.append((what, pol, d))
            env = {"XDG_CACHE_HOME": str(d)}
            def call(pol: Path = pol, env: dict[str, str] = env) -> harness.Call:
                return harness.cli(_argv(pol), env)

            yield call

    for idx, child in harness.run_children(ws, tasks(), jobs, timeout):
        what, pol, d = meta[idx]
        shutil.rmtree(d, ignore_errors=True)
        repro = f"{what}; selnet {' '.join(_argv(Path(pol.name)))}"
        kind = harness.judge_child(child)
        if kind is None:
            c = child.value
            kind = harness.judge_call(c)
            if kind is None and (c.rc, c.out) != s.answers[str(pol)]:
                kind = "error-instead-of-answer" if c.rc == 2 else "different-answer"
            part.record(kind, f"{repro} -> rc={c.rc} {c.err.strip()[:300]!r}")
        else:
            part.record(kind, f"{repro} -> {child.detail}")
    part.units = part.cases
    part.seconds = time.monotonic() - t0
    return part
