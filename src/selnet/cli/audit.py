"""`selnet audit`: wiring only; the pipeline is imported when it runs."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from selnet.cli.options import bool_parent, emit, load, parse_bools, sysctl_parent
from selnet.cli.output import write_bytes, write_text
from selnet.errors import EXIT_DENIED, EXIT_OK, InputError

if TYPE_CHECKING:
    from selnet.audit.auditor import AuditReport
    from selnet.policy.index import Policy

PROGRESS_EVERY = 200_000  # lines between progress updates on a terminal
DEFAULT_AUDIT_LOG = "/var/log/audit/audit.log"


class _Counted:
    """A text file's binary stream that reports lines read on stderr: the parsers read it
    a chunk at a time (``read1``), so counting costs nothing per line."""

    def __init__(self, raw: object, count: list[int]) -> None:
        self._read1 = raw.read1  # type: ignore[attr-defined]
        self._count = count
        self._next = PROGRESS_EVERY

    def read1(self, size: int = -1) -> bytes:
        data: bytes = self._read1(size)
        self._count[0] += data.count(b"\n")
        if self._count[0] >= self._next:
            self._next = self._count[0] + PROGRESS_EVERY
            sys.stderr.write(f"\rselnet audit: {self._count[0]:,} lines read")
            sys.stderr.flush()
        return data


def with_progress(sources: list[TextIO]) -> list[Iterable[str]]:
    """Long logs show progress on a terminal (stderr only; never in pipes or CI)."""
    if not sys.stderr.isatty():
        return list(sources)
    count = [0]
    out: list[Iterable[str]] = []
    for src in sources:
        raw = getattr(src, "buffer", None)
        out.append(_Counted(raw, count) if hasattr(raw, "read1") else src)  # type: ignore[arg-type]
    return out


def open_inputs(paths: list[str]) -> list[TextIO]:
    """Check every file is readable before any work (exit 2 otherwise)."""
    if not paths or paths == ["-"]:
        return [sys.stdin]
    handles: list[TextIO] = []
    for p in paths:
        if p == "-":
            handles.append(sys.stdin)
            continue
        try:
            handles.append(open(p, encoding="utf-8", errors="replace"))  # noqa: SIM115
        except OSError as exc:
            for h in handles:
                if h is not sys.stdin:
                    h.close()
            raise InputError(f"{p}: cannot read ({exc.strerror})") from exc
    return handles


def cmd_audit(args: argparse.Namespace) -> int:
    if args.follow:
        return _follow(args)
    from selnet.audit.auditor import run_audit
    from selnet.model.env import parse_sysctls
    from selnet.render.audit import report_json, report_lines

    handles = open_inputs(args.files)
    try:
        overrides = parse_bools(args.bool)
        policy = load(args)
        env = parse_sysctls(args.sysctl or [])
        report = run_audit(policy, with_progress(list(handles)), overrides, env,
                           use_interfaces=not args.no_interfaces, show_broad=args.show_broad)
    finally:
        for h in handles:
            if h is not sys.stdin:
                h.close()
    if args.module:
        return _module(args, policy, report)
    emit(args, lambda: report_json(report), lambda: report_lines(report, args.fixes), policy)
    return EXIT_DENIED if report.exit_denied else EXIT_OK


def _follow(args: argparse.Namespace) -> int:
    """Watch a log until SIGINT/SIGTERM (or stdin's EOF); a summary at the end."""
    import json
    import signal

    from selnet.audit.follow import Follower, Tail, follow
    from selnet.model.env import parse_sysctls
    from selnet.render.audit import (
        follow_group_json,
        follow_group_lines,
        follow_summary_json,
        follow_summary_lines,
        follow_update_line,
    )
    from selnet.render.facts import policy_json
    from selnet.render.jsonout import SCHEMA_VERSION

    if len(args.files) > 1:
        raise InputError("--follow takes one FILE (or - for stdin)")
    if args.module:
        raise InputError("--follow and --module do not go together")
    path = args.files[0] if args.files else DEFAULT_AUDIT_LOG
    try:
        tail = Tail(path, from_start=args.from_start)
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from exc
    overrides = parse_bools(args.bool)
    policy = load(args)
    env = parse_sysctls(args.sysctl or [])
    out = sys.stdout

    def write(obj: dict[str, object] | None, lines: list[str]) -> None:
        if args.json:
            out.write(json.dumps({"schema_version": SCHEMA_VERSION, **(obj or {})}) + "\n")
        else:
            out.write("\n".join(lines) + "\n")
        out.flush()  # a live view: each explanation as it happens

    follower = Follower(
        policy, overrides, env,
        on_new=lambda g: write(follow_group_json(g), [*follow_group_lines(g, args.fixes), ""]),
        on_update=lambda g: None if args.json else write(None, [follow_update_line(g)]),
        max_groups=args.max_groups, update_every=args.update_every,
        use_interfaces=not args.no_interfaces,
    )  # fmt: skip
    stopped: list[int] = []

    def on_signal(signum: int, frame: object) -> None:
        stopped.append(signum)

    old = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        if not args.json:
            write(None, [f"following {path} (Ctrl-C for the summary)"])
        summary = follow(tail, follower, poll=args.poll, stop=lambda: bool(stopped))
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
    write({**follow_summary_json(summary), "policy": policy_json(policy)},
          follow_summary_lines(summary))
    return EXIT_DENIED if summary.still_denied else EXIT_OK


def _module(args: argparse.Namespace, policy: Policy, report: AuditReport) -> int:
    """Write NAME.te, NAME.cil, NAME.pp (when checkmodule is installed) and NAME.sh, with
    only what the groups' best fixes need; verify by layering and deciding again."""
    from selnet.audit.auditor import needs_of
    from selnet.fix.module import check_module, choose_fixes, plan_module
    from selnet.render.module import cil_text, module_json, module_lines, script_text, te_text

    name = args.module
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,63}", name):
        raise InputError(f"--module needs a module name (letters, digits, _), got {name!r}")
    outdir = Path(args.output or ".")
    if not outdir.is_dir():
        raise InputError(f"-o {outdir}: not a directory")
    denied = [g for g in report.groups if g.still_denied and g.fix is not None]
    chosen = choose_fixes(name, policy, report.bools, [
        (needs_of(e.diag for e in g.entries), [f for f in g.fixes if f.verified])
        for g in denied])
    needs = needs_of(e.diag for g in report.groups if g.still_denied for e in g.entries)
    plan = plan_module(name, chosen)
    te, cil = te_text(plan, policy), cil_text(plan)
    if plan.rules or plan.types:
        pp, pp_error = _compile_pp(name, te, policy.snap.mls)
    else:  # checkmodule refuses a module with no statement; nothing to load anyway
        pp, pp_error = None, "the fixes need no rule: no .pp to load, only the commands"
    files = {f"{name}.te": te, f"{name}.cil": cil, f"{name}.sh": script_text(plan, pp is not None)}
    for fname, text in files.items():
        write_text(outdir / fname, text)
    if pp is not None:
        write_bytes(outdir / f"{name}.pp", pp)
        files[f"{name}.pp"] = ""
    result = check_module(policy, report.bools, plan, cil, needs)
    emit(args, lambda: module_json(plan, result, outdir, list(files), pp_error),
         lambda: module_lines(plan, result, outdir, list(files), pp_error), policy)
    return EXIT_OK if result.ok else EXIT_DENIED


def _compile_pp(name: str, te: str, mls: bool) -> tuple[bytes | None, str | None]:
    """checkmodule -M -m, then semodule_package: the .pp semodule -i loads."""
    import shutil
    import subprocess
    import tempfile

    checkmodule, package = shutil.which("checkmodule"), shutil.which("semodule_package")
    if checkmodule is None or package is None:
        return None, "checkmodule/semodule_package not installed: no .pp written"
    with tempfile.TemporaryDirectory() as tmp:
        src, mod, pp = (Path(tmp) / f"{name}.{x}" for x in ("te", "mod", "pp"))
        src.write_text(te)
        steps = [[checkmodule, *(["-M"] if mls else []), "-m", "-o", str(mod), str(src)],
                 [package, "-o", str(pp), "-m", str(mod)]]
        for cmd in steps:
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                msg = (proc.stderr or proc.stdout).strip().splitlines()
                return None, f"{Path(cmd[0]).name} failed: {msg[0] if msg else proc.returncode}"
        return pp.read_bytes(), None


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser],
             common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "audit", help="explain network AVC denials from audit logs (stdin when no FILE)",
        parents=[bool_parent(),
                 sysctl_parent('net.ipv4.ip_local_port_range="LOW HIGH" as on the logging machine'),
                 common])
    p.add_argument("files", nargs="*", metavar="FILE", help="audit.log, ausearch, journal, dmesg")
    p.add_argument("--show-broad", action="store_true",
                   help="also show the blast radius of a permissive domain / setenforce 0")
    p.add_argument("--fixes", type=int, default=0, metavar="N",
                   help="show N more fixes after the best one (JSON always has them all)")
    p.add_argument("--module", metavar="NAME",
                   help="write NAME.te, NAME.cil, NAME.pp and NAME.sh for the best fixes, verified")
    p.add_argument("--output", "-o", metavar="DIR", help="where --module writes (default .)")
    p.add_argument("--no-interfaces", action="store_true",
                   help="do not look up refpolicy interfaces (selinux-policy-dev)")
    p.add_argument("--follow", "-f", action="store_true",
                   help=f"watch FILE (default {DEFAULT_AUDIT_LOG}; - for stdin) across rotation, "
                        "explain each new network denial as it is logged, summary on Ctrl-C")
    p.add_argument("--from-start", action="store_true",
                   help="with --follow: explain what the file holds already, then follow")
    p.add_argument("--poll", type=float, default=0.5, metavar="SECONDS",
                   help="with --follow: how often a quiet file is checked (default 0.5)")
    p.add_argument("--update-every", type=float, default=5.0, metavar="SECONDS",
                   help="with --follow: report grown counts at most this often (default 5)")
    p.add_argument("--max-groups", type=int, default=1000, metavar="N",
                   help="with --follow: distinct denials kept, least recently seen evicted")
    p.set_defaults(func=cmd_audit)
