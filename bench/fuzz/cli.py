"""Random and mutated arguments for every command, in-process through ``selnet.cli.main``.

Every path in an argument is a file of the workspace: inputs are the example policy, a log,
a module, a FIFO, a directory or a missing file; outputs (``-o``) are a FIFO, a directory, a
file in a missing directory, a regular file or a symlink to the FIFO.  A failure is a
contract failure of the call (``harness.judge_call``), a hang or a signal, and, after a call
that named the FIFO, a FIFO that is no longer one (``fifo-replaced``).
"""

from __future__ import annotations

import os
import random
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.fuzz import harness
from bench.fuzz.harness import ROOT, Part, Workspace
from bench.fuzz.mutate import WEIRD

COMMANDS = ("info", "label", "connect", "listen", "bind", "send", "domain", "port", "matrix",
            "audit", "explain", "generate", "lint")

# token kinds: "f" a fixed word, "v" a value (mutable), "i" an input path, "o" an output path
Tok = tuple[str, str]


@dataclass
class Paths:
    policy: Path
    log: Path
    module: Path
    fifo: Path
    fifo_link: Path
    dir: Path
    missing: Path
    regular: Path
    spec: Path

    fifo_inputs: bool = True

    def inputs(self) -> list[str]:
        fifo = [self.fifo] if self.fifo_inputs else []
        return [str(p) for p in (self.policy, self.log, self.module, *fifo, self.dir,
                                 self.missing, self.regular, self.spec)]

    def outputs(self) -> list[str]:
        return [str(p) for p in (self.fifo, self.fifo_link, self.dir, self.missing,
                                 self.regular, self.dir / "new")]


@dataclass
class Shared:
    policy: Path
    log: Path
    module: Path
    spec: Path


def setup(ws: Workspace) -> Shared:
    d = ws.fresh_dir("cli")
    policy = harness.secilc(ws, "cli-example.policy", harness.EXAMPLE_CIL)
    log = d / "audit.log"
    log.write_text((ROOT / "tests" / "data" / "audit" / "ausearch-connect.log").read_text())
    module = d / "mod.cil"
    module.write_text("(allow web_t db_port_t (tcp_socket (name_connect)))\n")
    spec = d / "spec.toml"
    spec.write_text('bind = ["8443/tcp"]\nconnect = ["5432/tcp"]\n')
    harness.cli(["connect", "web_t", "127.0.0.1:5432", "--policy", str(policy)])  # warm: imports,
    # the index and the interfaces cache are built once, before the children fork
    return Shared(policy, log, module, spec)


def case_paths(ws: Workspace, sh: Shared) -> Paths:
    """A FIFO, a symlink to it, a directory and a regular file of the case's own."""
    d = ws.fresh_dir("clicase")
    fifo = d / "fifo"
    os.mkfifo(fifo)
    link = d / "fifo-link"
    link.symlink_to(fifo)
    (d / "outdir").mkdir()
    regular = d / "regular.txt"
    regular.write_text("keep\n")
    return Paths(sh.policy, sh.log, sh.module, fifo, link, d / "outdir", d / "missing" / "x",
                 regular, sh.spec)


def templates(p: Paths) -> dict[str, list[list[Tok]]]:
    pol: list[Tok] = [("f", "--policy"), ("i", str(p.policy))]
    chk = [("v", "web_t"), ("v", "127.0.0.1:5432")]
    return {
        "info": [[("f", "info"), *pol]],
        "label": [[("f", "label"), ("f", "port"), ("v", "8080/tcp"), *pol],
                  [("f", "label"), ("f", "node"), ("v", "::ffff:127.0.0.1"), *pol],
                  [("f", "label"), ("f", "netif"), ("v", "eth0"), *pol]],
        "connect": [[("f", "connect"), *chk, *pol, ("f", "--no-interfaces")]],
        "listen": [[("f", "listen"), ("v", "web_t"), ("v", "0.0.0.0:80"), *pol,
                    ("f", "--no-interfaces")]],
        "bind": [[("f", "bind"), ("v", "db_t"), ("v", "[::1]:53/udp"), *pol, ("f", "--no-interfaces")]],
        "send": [[("f", "send"), ("v", "client_t"), ("v", "127.0.0.1:123/udp"), *pol,
                  ("f", "--no-interfaces")]],
        "domain": [[("f", "domain"), ("v", "web_t"), *pol]],
        "port": [[("f", "port"), ("v", "5432/tcp"), *pol],
                 [("f", "port"), ("f", "--type"), ("v", "http_port_t"), *pol]],
        "matrix": [[("f", "matrix"), ("f", "--format"), ("v", "csv"), ("f", "-o"), ("o", str(p.regular)),
                    *pol]],
        "audit": [[("f", "audit"), ("i", str(p.log)), *pol, ("f", "--no-interfaces")],
                  [("f", "audit"), ("i", str(p.log)), *pol, ("f", "--module"), ("v", "myfix"),
                   ("f", "-o"), ("o", str(p.dir)), ("f", "--no-interfaces")]],
        "explain": [[("f", "explain"), ("v", "web_t"), *pol]],
        "generate": [[("f", "generate"), ("v", "myapp"), ("f", "--bind"), ("v", "8443/tcp"),
                      ("f", "--connect"), ("v", "5432/tcp"), ("f", "-o"), ("o", str(p.dir)), *pol]],
        "lint": [[("f", "lint"), ("i", str(p.module)), *pol]],
    }


OPTIONS = ("--bool", "--sysctl", "--sockcreate", "--peer", "--secmark", "--netif", "--remote",
           "--bind", "--fixes", "--labeled", "--type", "--domain", "--format", "--connect",
           "--send", "--module")


def mutate(rng: random.Random, toks: list[Tok], p: Paths) -> list[Tok]:
    toks = list(toks)
    for _ in range(rng.choice((1, 1, 2, 3))):
        op = rng.random()
        slots = [i for i, (k, _) in enumerate(toks) if k in "vio"]
        if op < 0.45 and slots:
            i = rng.choice(slots)
            kind = toks[i][0]
            pool = WEIRD if kind == "v" else p.inputs() if kind == "i" else p.outputs()
            toks[i] = (kind, rng.choice(pool))
        elif op < 0.65:
            toks += [("f", rng.choice(OPTIONS)), ("v", rng.choice(WEIRD))]
        elif op < 0.75:
            toks += [("f", rng.choice(("-o", "--output"))), ("o", rng.choice(p.outputs()))]
        elif op < 0.82:
            toks += [("f", "--policy"), ("i", rng.choice(p.inputs()))]
        elif op < 0.9 and len(toks) > 1:
            del toks[rng.randrange(1, len(toks))]
        else:
            toks += [("f", rng.choice(("--json", "--no-cache", "--userns", "--fastopen", "--full",
                                       "--sarif", "--show-broad")))]
    return toks


def _argv(ws: Workspace, toks: list[Tok]) -> list[str]:
    for kind, value in toks:
        if kind in "io" and not ws.inside(value):
            raise AssertionError(f"fuzz path outside the workspace: {value}")
    return [v for _, v in toks]


def destroyed(p: Paths) -> list[str]:
    """The case's fixtures a call destroyed."""
    broken = []
    if not harness.is_fifo(p.fifo):
        broken.append("fifo")
    if not p.fifo_link.is_symlink():
        broken.append("fifo-link")
    return broken


def cases(ws: Workspace, rng: random.Random, sh: Shared, n: int, fifo_inputs: bool = True
          ) -> Iterator[tuple[Paths, list[Tok]]]:
    for i in range(n):
        p = case_paths(ws, sh)
        p.fifo_inputs = fifo_inputs
        cmd = COMMANDS[i % len(COMMANDS)]
        base = rng.choice(templates(p)[cmd])
        yield p, (base if rng.random() < 0.05 else mutate(rng, base, p))


def log_fifos(argv: list[str], p: Paths) -> bool:
    """Whether ``audit`` reads the case's FIFO as a log (a FILE argument, as selnet's own
    parser reads the arguments): then the case gives it a writer.  Reading a FIFO waits for
    its writer, by design and as ``cat`` does: ``selnet audit <(ausearch ...)`` hands selnet
    a pipe.  A FIFO anywhere else (``--policy``, ``-o``) gets no writer, so a blocking open
    there is still a hang."""
    if not argv or argv[0] != "audit":
        return False
    import contextlib
    import io

    from selnet.cli.main import build_parser

    try:
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            ns = build_parser().parse_args(argv)
    except SystemExit:
        return False  # argparse refuses it before anything is opened
    files = [str(f) for f in getattr(ns, "files", None) or []]
    return str(p.fifo) in files or str(p.fifo_link) in files


FEED = (b"type=AVC msg=audit(1700000000.123:1): avc:  denied  { name_connect } for  pid=1 "
        b'comm="web" dest=5432 scontext=system_u:system_r:web_t:s0 '
        b"tcontext=system_u:object_r:db_port_t:s0 tclass=tcp_socket permissive=0\n")


def fed_call(argv: list[str], fifo: Path) -> harness.Call:
    """``harness.cli(argv)`` while a writer feeds ``fifo``: one log line each time there is
    a reader, then a pause in which a reader sees EOF, for as long as selnet runs (the same
    FIFO may be named twice, so it may be opened again after an EOF); stopped afterwards."""
    import signal

    pid = os.fork()
    if pid == 0:  # pragma: no cover - the writer
        try:
            while True:
                fd = os.open(fifo, os.O_WRONLY)  # waits for selnet to open it for reading
                os.write(fd, FEED)
                os.close(fd)
                time.sleep(0.2)
        finally:
            os._exit(0)
    try:
        return harness.cli(argv)
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


# A case's time limit: a call that needs the interface index under --no-cache parses the
# refpolicy headers (about 3 s of CPU, much more on a loaded 2-core machine); a real hang
# (a blocking open) never returns, so a generous limit loses nothing.
CASE_TIMEOUT = 30.0


def run(ws: Workspace, rng: random.Random, n: int, jobs: int = 1, timeout: float = CASE_TIMEOUT,
        shared: Shared | None = None, fifo_inputs: bool = True) -> Part:
    part = Part("cli")
    t0 = time.monotonic()
    sh = shared or setup(ws)
    meta: list[tuple[Paths, list[str]]] = []

    def tasks() -> Iterator[Callable[[], Any]]:
        for p, toks in cases(ws, rng, sh, n, fifo_inputs):
            argv = _argv(ws, toks)
            meta.append((p, argv))
            if log_fifos(argv, p):
                yield lambda argv=argv, fifo=p.fifo: fed_call(argv, fifo)  # type: ignore[misc]
            else:
                yield lambda argv=argv: harness.cli(argv)  # type: ignore[misc]

    for idx, child in harness.run_children(ws, tasks(), jobs, timeout):
        p, argv = meta[idx]
        repro = "selnet " + " ".join(repr(a) if (not a or " " in a or len(a) > 60) and len(a) < 200
                                     else (a if len(a) <= 60 else f"<{len(a)} chars {a[:12]!r}...>")
                                     for a in argv)
        names_fifo = any(a in (str(p.fifo), str(p.fifo_link)) for a in argv)
        broken = destroyed(p)
        shutil.rmtree(p.fifo.parent, ignore_errors=True)
        kind = harness.judge_child(child)
        if kind is None:
            kind = harness.judge_call(child.value)
        if kind is None and broken and names_fifo:
            kind = "fifo-replaced"
        detail = child.detail
        if child.status == "ok":
            c = child.value
            detail = f"rc={c.rc} stderr={c.err.strip()[:300]!r}{' ' + c.tb[-300:] if c.tb else ''}"
        part.record(kind, f"{repro} -> {detail}")
    part.units = part.cases
    part.seconds = time.monotonic() - t0
    return part
