"""`selnet audit`: wiring only; the pipeline is imported when it runs."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Iterator
from typing import TextIO

from selnet.cli.options import bool_parent, emit, load, parse_bools, sysctl_parent
from selnet.errors import EXIT_DENIED, EXIT_OK, InputError

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
    emit(args, lambda: report_json(report), lambda: report_lines(report, args.fixes))
    return EXIT_DENIED if report.exit_denied else EXIT_OK


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
    p.add_argument("--no-interfaces", action="store_true",
                   help="do not look up refpolicy interfaces (selinux-policy-dev)")
    p.set_defaults(func=cmd_audit)
