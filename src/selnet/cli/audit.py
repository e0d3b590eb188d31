"""`selnet audit`: wiring only; the pipeline is imported when it runs."""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from selnet.cli.options import bool_parent, emit, load, parse_bools, sysctl_parent
from selnet.cli.output import write_bytes, write_text
from selnet.errors import EXIT_DENIED, EXIT_OK, InputError

if TYPE_CHECKING:
    from selnet.audit.auditor import AuditReport
    from selnet.policy.index import Policy

PROGRESS_EVERY = 200_000  # lines between progress updates on a terminal


def with_progress(sources: list[Iterable[str]]) -> list[Iterable[str]]:
    """Long logs show progress on a terminal (stderr only; never in pipes or CI)."""
    if not sys.stderr.isatty():
        return sources
    count = [0]

    def counted(lines: Iterable[str]) -> Iterator[str]:
        for line in lines:
            count[0] += 1
            if count[0] % PROGRESS_EVERY == 0:
                sys.stderr.write(f"\rselnet audit: {count[0]:,} lines read")
                sys.stderr.flush()
            yield line
        if count[0] >= PROGRESS_EVERY:
            sys.stderr.write(f"\rselnet audit: {count[0]:,} lines read\n")

    return [counted(src) for src in sources]


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


def _module(args: argparse.Namespace, policy: Policy, report: AuditReport) -> int:
    """Write NAME.te, NAME.cil, NAME.pp (when checkmodule is installed) and NAME.sh, with
    only what the groups' best fixes need; verify by layering and deciding again."""
    from selnet.audit.auditor import needs_of
    from selnet.fix.module import check_module, plan_module
    from selnet.render.module import cil_text, module_json, module_lines, script_text, te_text

    name = args.module
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,63}", name):
        raise InputError(f"--module needs a module name (letters, digits, _), got {name!r}")
    outdir = Path(args.output or ".")
    if not outdir.is_dir():
        raise InputError(f"-o {outdir}: not a directory")
    chosen = [g.fix for g in report.groups if g.still_denied and g.fix is not None]
    needs = needs_of(e.diag for g in report.groups if g.still_denied for e in g.entries)
    plan = plan_module(name, chosen)
    te, cil = te_text(plan, policy), cil_text(plan)
    pp, pp_error = _compile_pp(name, te, policy.snap.mls)
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
    p.set_defaults(func=cmd_audit)
