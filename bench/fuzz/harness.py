"""The sandbox and the runner: each case in a forked child, its output captured, judged.

A case runs in a child made with ``os.fork()`` (setools and selnet are imported before, so a
child starts in a few ms): a crash in libsepol (a signal) or a hang (a FIFO opened for
writing) is then a counted failure, not the end of the campaign.  In the child, Python's
stdout/stderr go to ``io.StringIO`` (``contextlib.redirect_*``) and file descriptors 1 and 2
to a file, so C libraries' noise is captured separately.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pickle
import select
import shutil
import signal
import stat
import subprocess
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent.parent
EXAMPLE_CIL = ROOT / "src" / "selnet" / "data" / "example.cil"
BASE_CIL = ROOT / "tests" / "policies" / "base.cil"

EXIT_INTERNAL = 70


class Workspace:
    """One fresh temporary directory; XDG_CACHE_HOME points inside it.  ``path(name)`` is the
    only way the campaign makes a path, and it refuses anything that would leave the
    directory."""

    def __init__(self, keep: bool = False) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="selnet-fuzz-")).resolve()
        self.keep = keep
        self.cache = self.path("xdg-cache")
        self.cache.mkdir()
        self._old_xdg = os.environ.get("XDG_CACHE_HOME")
        os.environ["XDG_CACHE_HOME"] = str(self.cache)
        self._n = 0

    def path(self, *parts: str) -> Path:
        p = self.root.joinpath(*parts).resolve()
        if p != self.root and self.root not in p.parents:
            raise AssertionError(f"fuzz path outside the workspace: {p}")
        return p

    def fresh_dir(self, prefix: str) -> Path:
        self._n += 1
        d = self.path(f"{prefix}-{self._n}")
        d.mkdir()
        return d

    def inside(self, p: str | Path) -> bool:
        q = Path(p)
        if not q.is_absolute():
            return True  # relative arguments are resolved in the child's cwd, the workspace
        q = Path(os.path.abspath(q))
        return q == self.root or self.root in q.parents

    def close(self) -> None:
        if self._old_xdg is None:
            os.environ.pop("XDG_CACHE_HOME", None)
        else:
            os.environ["XDG_CACHE_HOME"] = self._old_xdg
        if not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def secilc(ws: Workspace, out_name: str, *cil: Path, mls: bool = False) -> Path:
    out = ws.path(out_name)
    subprocess.run(
        ["secilc", "-M", "true" if mls else "false", "-o", str(out), "-f", str(ws.path("fc.out")),
         *map(str, cil)], check=True, capture_output=True,
    )
    return out


# ---------------------------------------------------------------------------
# Children


@dataclass
class Child:
    status: str  # ok | timeout | signal | died
    value: Any = None
    fd_noise: str = ""
    detail: str = ""


def _child_main(fn: Callable[[], Any], wfd: int, noise: Path, cwd: Path, stdin: Path) -> None:
    try:
        os.chdir(cwd)
        fd = os.open(noise, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        fd = os.open(stdin, os.O_RDONLY)
        os.dup2(fd, 0)
        os.close(fd)
        import sys

        sys.stdin = open(0, closefd=False)  # noqa: SIM115  (not a test runner's capture)
        os.environ["SELNET_LOAD_TIMEOUT"] = LOAD_TIMEOUT  # the child's only: not the caller's
        value = fn()
        data = pickle.dumps(value)
    except BaseException:
        data = pickle.dumps({"child_error": traceback.format_exc()})
    try:
        view = memoryview(data)
        while view:
            n = os.write(wfd, view[:65536])
            view = view[n:]
    finally:
        os._exit(0)


def warm() -> None:
    """Import what every case uses once, in the campaign, before any fork.  selnet reads a
    policy in a forked grandchild that would otherwise import setools (and libsepol)
    afresh each time: about 0.3 s of every call, 15 times the cost of the call itself."""
    import selnet.audit.auditor
    import selnet.cli.main  # noqa: F401
    import selnet.policy.extract as extract

    extract._import_setools()


# selnet's loader reads a policy in a child killed after SELNET_LOAD_TIMEOUT seconds; each
# case's child sets it (well under the case's own time limit) so that libsepol spinning on
# a mutant is selnet's clean exit 2, and only a hang elsewhere is a "hang".
LOAD_TIMEOUT = "5"


def run_children(ws: Workspace, tasks: Iterable[Callable[[], Any]], jobs: int = 1,
                 timeout: float = 20.0) -> Iterator[tuple[int, Child]]:
    """Run each task in its own forked child, ``jobs`` at a time; yield (index, Child) as
    they finish (not in order)."""
    warm()
    empty = ws.path("stdin.empty")
    empty.touch()
    it = iter(enumerate(tasks))
    running: dict[int, tuple[int, int, int, float, Path, bytearray]] = {}  # rfd -> ...
    exhausted = False
    while True:
        while not exhausted and len(running) < jobs:
            try:
                idx, fn = next(it)
            except StopIteration:
                exhausted = True
                break
            noise = ws.path(f".noise-{idx % 64}-{len(running)}")
            rfd, wfd = os.pipe()
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the child
                os.close(rfd)
                _child_main(fn, wfd, noise, ws.root, empty)
            os.close(wfd)
            running[rfd] = (pid, idx, rfd, time.monotonic() + timeout, noise, bytearray())
        if not running:
            return
        now = time.monotonic()
        wait = max(0.0, min(r[3] for r in running.values()) - now)
        ready, _, _ = select.select(list(running), [], [], wait)
        for rfd in ready:
            chunk = os.read(rfd, 1 << 16)
            if chunk:
                running[rfd][5].extend(chunk)
                continue
            pid, idx, _, _, noise, buf = running.pop(rfd)
            os.close(rfd)
            _, st = os.waitpid(pid, 0)
            yield idx, _finish(st, buf, noise)
        now = time.monotonic()
        for rfd in [r for r, v in running.items() if v[3] <= now and r not in ready]:
            pid, idx, _, _, noise, _ = running.pop(rfd)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os.close(rfd)
            yield idx, Child("timeout", None, _read(noise), f"killed after {timeout:.0f}s")


def _read(p: Path) -> str:
    try:
        return p.read_text(errors="replace")
    except OSError:
        return ""


def _finish(st: int, buf: bytearray, noise: Path) -> Child:
    fd_noise = _read(noise)
    if os.WIFSIGNALED(st):
        return Child("signal", None, fd_noise, signal.Signals(os.WTERMSIG(st)).name)
    try:
        value = pickle.loads(bytes(buf))
    except Exception:
        return Child("died", None, fd_noise, f"exit status {os.WEXITSTATUS(st)}, no result")
    if isinstance(value, dict) and "child_error" in value:
        return Child("died", None, fd_noise, value["child_error"].strip().splitlines()[-1])
    return Child("ok", value, fd_noise)


def run_map(ws: Workspace, tasks: Sequence[Callable[[], Any]], jobs: int = 1,
            timeout: float = 20.0) -> list[Child]:
    out: list[Child | None] = [None] * len(tasks)
    for idx, child in run_children(ws, tasks, jobs, timeout):
        out[idx] = child
    return [c for c in out if c is not None]


# ---------------------------------------------------------------------------
# One CLI call, in the child


@dataclass(frozen=True)
class Call:
    rc: int | None
    out: str
    err: str
    tb: str = ""  # a BaseException that escaped main()


def cli(argv: Sequence[str], env: dict[str, str] | None = None) -> Call:
    """``selnet.cli.main(argv)`` in this process, stdout and stderr captured."""
    from selnet.cli import main

    for k, v in (env or {}).items():
        os.environ[k] = v
    out, err = io.StringIO(), io.StringIO()
    tb = ""
    rc: int | None
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(list(argv))
        except BaseException:
            rc, tb = None, traceback.format_exc()
    return Call(rc, out.getvalue(), err.getvalue(), tb)


def _is_note(line: str) -> bool:
    """selnet's notes, printed before any answer (an error included) on purpose: a cache
    it will not use, and the bundled example policy standing in for a missing --policy
    (an answer about a toy policy must never pass for one about this machine).  They are
    not part of an error message."""
    from selnet.cli.options import example_note

    return line.startswith("selnet: note: ") or line == example_note()


def error_lines(err: str) -> list[str]:
    """The lines of an error message.  argparse's usage block that precedes its one
    ``selnet CMD: error: ...`` line is not counted: it is argparse's standard shape; nor
    are selnet's notes (``_is_note``)."""
    lines = [ln for ln in err.splitlines() if ln.strip() and not _is_note(ln)]
    if lines and lines[0].startswith("usage:"):
        for i, ln in enumerate(lines):
            if ": error: " in ln:
                return lines[i:]
    return lines


def judge_call(call: Call) -> str | None:
    """The contract for one call: the failure kind, or None when clean."""
    if call.tb or "Traceback (most recent call last)" in call.err:
        return "traceback"
    if call.rc == EXIT_INTERNAL:
        return "exit-70"
    if call.rc not in (0, 1, 2, 4):
        return f"exit-{call.rc}"
    if call.rc in (2, 4):
        lines = error_lines(call.err)
        if len(lines) != 1:
            return "multi-line-error" if lines else "silent-error"
    return None


def judge_child(child: Child) -> str | None:
    if child.status == "ok":
        return None
    return {"timeout": "hang", "signal": "signal", "died": "harness"}[child.status]


# ---------------------------------------------------------------------------
# Counting


@dataclass
class Part:
    name: str
    cases: int = 0
    clean: int = 0
    units: int = 0  # lines for the log part, calls for the others
    failures: Counter[str] = field(default_factory=Counter)
    notes: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def record(self, kind: str | None, example: str = "") -> None:
        self.cases += 1
        if kind is None:
            self.clean += 1
            return
        self.failures[kind] += 1
        self.examples.setdefault(kind, example[:600])

    def to_json(self) -> dict[str, Any]:
        return {"cases": self.cases, "clean": self.clean, "units": self.units,
                "failures": dict(self.failures), "notes": dict(self.notes),
                "examples": self.examples, "seconds": round(self.seconds, 1)}

    def line(self) -> str:
        fails = ", ".join(f"{k} {v}" for k, v in self.failures.most_common()) or "none"
        extra = f", {self.units} units" if self.units else ""
        notes = ("; notes: " + ", ".join(f"{k} {v}" for k, v in self.notes.most_common())
                 if self.notes else "")
        return (f"{self.name}: {self.cases} cases{extra}, {self.clean} clean, failures: {fails}"
                f"{notes} ({self.seconds:.1f}s)")


def is_fifo(p: Path) -> bool:
    try:
        return stat.S_ISFIFO(os.lstat(p).st_mode)
    except OSError:
        return False


def write_report(parts: Sequence[Part], out_dir: Path, meta: dict[str, Any]) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "fuzz-report.json"
    path.write_text(json.dumps({**meta, "parts": {p.name: p.to_json() for p in parts}}, indent=2)
                    + "\n")
    return path
