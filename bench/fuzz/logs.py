"""Mutated audit lines through ``selnet.audit.auditor.run_audit`` on the example policy.

Real lines (tests/data/audit/*.log, the avc fields of tests/data/denials/corpus.toml) are
mutated and fed in batches of thousands, mixed with unmutated ones so records still form
events and reach diagnosis and the fix search.  A failure is any exception (or a hang or a
signal) and any count that does not add up: ``stats.lines`` must equal the lines fed, and
every line must be exactly one of record, malformed, continuation or ignored.
"""

from __future__ import annotations

import random
import time
import tomllib
import traceback
from collections.abc import Callable, Iterator
from typing import Any, cast

from bench.fuzz import harness
from bench.fuzz.harness import ROOT, Part, Workspace
from bench.fuzz.mutate import mutate_line


def real_lines() -> list[str]:
    lines: list[str] = []
    for log in sorted((ROOT / "tests" / "data" / "audit").glob("*.log")):
        lines += log.read_text().splitlines()
    corpus = tomllib.loads((ROOT / "tests" / "data" / "denials" / "corpus.toml").read_text())
    tables = cast(list[Any], corpus.get("case", corpus.get("cases", [])))
    for entry in tables if isinstance(corpus, dict) else []:
        if isinstance(entry, dict) and isinstance(entry.get("avc"), str):
            lines += [ln for ln in entry["avc"].splitlines() if ln.strip()]
    for value in corpus.values():  # whatever the table is called: every avc field
        for entry in value if isinstance(value, list) else []:
            if isinstance(entry, dict) and isinstance(entry.get("avc"), str):
                lines += [ln for ln in entry["avc"].splitlines() if ln.strip()]
    return list(dict.fromkeys(ln for ln in lines if ln.strip()))


def batch(rng: random.Random, pool: list[str], size: int) -> list[str | bytes]:
    out: list[str | bytes] = []
    for _ in range(size):
        line = rng.choice(pool)
        if rng.random() < 0.7:
            m = mutate_line(rng, line)
            # one fed item is one line, as reading a file gives them (the parser splits an
            # item at an interior CR or LF, by design: see avclog's record reader)
            if isinstance(m, bytes):
                m = m.replace(b"\n", b" ").replace(b"\r", b" ")
            else:
                m = m.replace("\n", " ").replace("\r", " ")
            out.append(m)
        else:
            out.append(line)
        if rng.random() < 0.1:
            last = out[-1]
            out[-1] = last + b"\n" if isinstance(last, bytes) else last + "\n"
    return out


def _task(policy: Any, lines: list[str | bytes]) -> Callable[[], dict[str, Any]]:
    def run() -> dict[str, Any]:
        from selnet.audit.auditor import run_audit

        try:
            report = run_audit(policy, [lines], use_interfaces=False)
        except Exception:
            return {"error": traceback.format_exc()}
        s = report.stats
        return {"lines": s.lines, "records": s.records, "malformed": s.malformed,
                "continuation": s.continuation_lines, "ignored": s.ignored,
                "avc": s.avc_records, "non_avc": sum(s.non_avc_records.values())}
    return run


def judge(fed: int, v: dict[str, Any]) -> str | None:
    if "error" in v:
        return "exception"
    if v["lines"] != fed:
        return "count-mismatch"
    if v["records"] + v["malformed"] + v["continuation"] + v["ignored"] != v["lines"]:
        return "counters-do-not-add-up"
    if v["avc"] + v["non_avc"] != v["records"]:
        return "record-counters-do-not-add-up"
    return None


def run(ws: Workspace, rng: random.Random, lines: int, batch_size: int = 5000, jobs: int = 1,
        timeout: float = 120.0) -> Part:
    import selnet.audit.auditor  # noqa: F401  (imported once, before the children fork)
    from selnet.policy.loader import load_policy

    part = Part("logs")
    t0 = time.monotonic()
    policy = load_policy([str(harness.EXAMPLE_CIL)])
    pool = real_lines()
    batches: list[list[str | bytes]] = []

    def tasks() -> Iterator[Callable[[], dict[str, Any]]]:
        left = lines
        while left > 0:
            b = batch(rng, pool, min(batch_size, left))
            left -= len(b)
            batches.append(b)
            yield _task(policy, b)

    for idx, child in harness.run_children(ws, tasks(), jobs, timeout):
        b = batches[idx]
        batches[idx] = []  # free it
        part.units += len(b)
        kind = harness.judge_child(child) or judge(len(b), child.value)
        example = f"batch {idx} ({len(b)} lines): {child.detail or child.value}"
        if kind == "count-mismatch":
            example += " -- find the line with bench.fuzz.logs.bisect"
        part.record(kind, example)
    part.seconds = time.monotonic() - t0
    return part


def line_counts(policy: Any, lines: list[str | bytes]) -> int:
    from selnet.audit.auditor import run_audit

    return int(run_audit(policy, [lines], use_interfaces=False).stats.lines)
