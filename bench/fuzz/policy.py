"""Policy mutants: bytes of compiled policies mutated, then ``selnet info`` and ``selnet
connect web_t 127.0.0.1:5432`` on each.

Failure kinds: the contract's (``harness.judge_call``) for either call, a hang or a signal
(libsepol crashing the process), and ``wrong-answer``: connect answered (exit 0/1) with an
answer that differs from the unmutated policy's while setools cannot load the mutant.  A
mutant setools loads is a real policy, and a different answer on it is legitimate (noted as
``changed-valid``).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.fuzz import harness
from bench.fuzz.harness import BASE_CIL, EXAMPLE_CIL, Part, Workspace
from bench.fuzz.mutate import mutate_bytes

SMALL_POLICIES = {
    "small-allow": """
(type web_t) (roletype system_r web_t) (typeattributeset domain (web_t))
(type db_port_t) (roletype object_r db_port_t) (typeattributeset port_type (db_port_t))
(portcon tcp 5432 (system_u object_r db_port_t low_low))
(allow web_t self (tcp_socket (create connect read write getopt setopt)))
(allow web_t db_port_t (tcp_socket (name_connect)))
(allow web_t node_t (tcp_socket (node_bind)))
""",
    "small-bool": """
(type web_t) (roletype system_r web_t) (typeattributeset domain (web_t))
(type db_port_t) (roletype object_r db_port_t) (typeattributeset port_type (db_port_t))
(portcon tcp (5000 6000) (system_u object_r db_port_t low_low))
(boolean web_db false)
(allow web_t self (tcp_socket (create connect read write)))
(booleanif web_db (true (allow web_t db_port_t (tcp_socket (name_connect)))))
(dontaudit web_t port_type (tcp_socket (name_connect)))
(nodecon (127.0.0.1) (255.0.0.0) (system_u object_r node_t low_low))
""",
}


@dataclass(frozen=True)
class Seed:
    name: str
    data: bytes
    answer: tuple[int | None, str]  # connect's exit status and stdout on the clean policy


def connect_argv(path: Path, cache: bool) -> list[str]:
    argv = ["connect", "web_t", "127.0.0.1:5432", "--policy", str(path), "--no-interfaces"]
    return argv if cache else [*argv, "--no-cache"]


def info_argv(path: Path) -> list[str]:
    return ["info", "--policy", str(path), "--no-cache"]


def _norm(text: str, path: Path) -> str:
    return text.replace(str(path), "POLICY")


def seeds(ws: Workspace) -> list[Seed]:
    out = []
    paths = {"example": harness.secilc(ws, "seed-example.policy", EXAMPLE_CIL)}
    for name, snippet in SMALL_POLICIES.items():
        src = ws.path(f"seed-{name}.cil")
        src.write_text(snippet)
        paths[name] = harness.secilc(ws, f"seed-{name}.policy", BASE_CIL, src)
    for name, path in paths.items():
        call = harness.cli(connect_argv(path, cache=False))
        if call.rc not in (0, 1):
            raise AssertionError(f"seed {name}: connect failed: {call.err.strip()}")
        out.append(Seed(name, path.read_bytes(), (call.rc, _norm(call.out, path))))
    return out


def _case(path: Path, data: bytes, answer: tuple[int | None, str], cache: bool
          ) -> Callable[[], dict[str, Any]]:
    def run() -> dict[str, Any]:
        path.write_bytes(data)
        info = harness.cli(info_argv(path))
        conn = harness.cli(connect_argv(path, cache))
        valid = None
        if conn.rc in (0, 1) and (conn.rc, _norm(conn.out, path)) != answer:
            import setools  # the referee: does the mutant load as a policy at all?

            try:
                setools.SELinuxPolicy(str(path))
                valid = True
            except Exception:
                valid = False
        return {"info": info, "connect": conn, "valid": valid,
                "same": (conn.rc, _norm(conn.out, path)) == answer}
    return run


def judge(value: dict[str, Any]) -> tuple[str | None, str | None]:
    """(failure kind, note)."""
    for name in ("info", "connect"):
        kind = harness.judge_call(value[name])
        if kind:
            return f"{name}:{kind}", None
    conn = value["connect"]
    if conn.rc in (0, 1) and not value["same"]:
        return ("wrong-answer", None) if value["valid"] is False else (None, "changed-valid")
    return None, ("rejected" if conn.rc == 2 else "same-answer")


def run(ws: Workspace, rng: random.Random, n: int, jobs: int = 1, timeout: float = 20.0,
        seed_list: list[Seed] | None = None) -> Part:
    part = Part("policy")
    t0 = time.monotonic()
    seed_list = seed_list or seeds(ws)
    mdir = ws.fresh_dir("mutants")
    meta: list[tuple[Seed, str, Path, bool]] = []

    def tasks() -> Iterator[Callable[[], dict[str, Any]]]:
        for i in range(n):
            seed = rng.choice(seed_list)
            data = seed.data
            what = []
            for _ in range(rng.choice((1, 1, 1, 2, 3))):
                desc, data = mutate_bytes(rng, data)
                what.append(desc)
            path, cache = mdir / f"m{i}.policy", i % 8 == 0
            meta.append((seed, " + ".join(what), path, cache))
            yield _case(path, data, seed.answer, cache)

    for idx, child in harness.run_children(ws, tasks(), jobs, timeout):
        seed, what, path, cache = meta[idx]
        path.unlink(missing_ok=True)
        repro = f"{seed.name}: {what}; selnet {' '.join(connect_argv(Path('MUTANT'), cache))}"
        kind = harness.judge_child(child)
        if kind:
            part.record(kind, f"{repro}: {child.detail}")
            continue
        kind, note = judge(child.value)
        if note:
            part.notes[note] += 1
        if child.fd_noise.strip():
            part.notes["fd-noise"] += 1
        v = child.value
        part.record(kind, f"{repro}: info rc={v['info'].rc} {v['info'].err.strip()[:200]!r} "
                    f"connect rc={v['connect'].rc} {v['connect'].err.strip()[:200]!r}")
    part.units = 2 * part.cases
    part.seconds = time.monotonic() - t0
    return part
