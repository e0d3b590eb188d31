"""`selnet domain`, `selnet port`, `selnet matrix`: profiles over a whole policy."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

from selnet.cli.options import (
    bool_parent,
    emit,
    env_of,
    gc_paused,
    load,
    parse_bools,
    sysctl_parent,
)
from selnet.cli.output import atomic_file, atomic_path, check_target
from selnet.errors import EXIT_OK, InputError


def cmd_domain(args: argparse.Namespace) -> int:
    with gc_paused():
        return _domain(args)


def cmd_port(args: argparse.Namespace) -> int:
    with gc_paused():
        return _port(args)


def cmd_matrix(args: argparse.Namespace) -> int:
    with gc_paused():
        return _matrix(args)


def _domain(args: argparse.Namespace) -> int:
    from selnet.analyses.profiles import domain_profile, domain_summary
    from selnet.render.profile import profile_json, profile_lines, summary_lines

    overrides = parse_bools(args.bool)
    policy = load(args)
    prof = domain_profile(policy, args.domain, policy.bool_values(overrides), env_of(policy, args))
    summary = domain_summary(policy, prof)
    text = (lambda: profile_lines(prof)) if args.full else (lambda: summary_lines(summary))
    emit(args, lambda: profile_json(prof, summary), text, policy)
    return EXIT_OK


def _port(args: argparse.Namespace) -> int:
    from selnet.analyses.profiles import port_report, type_report
    from selnet.model.labels import parse_port
    from selnet.render.profile import port_json, port_lines

    if (args.port is None) == (args.type is None):
        raise InputError("give either PORT[/PROTO] or --type TYPE")
    parsed = parse_port(args.port) if args.port is not None else None
    overrides = parse_bools(args.bool)
    policy = load(args)
    bools = policy.bool_values(overrides)
    env = env_of(policy, args)
    if parsed is not None:
        rep = port_report(policy, parsed[0], parsed[1], bools, env)
    else:
        rep = type_report(policy, args.type, bools, env)
    emit(args, lambda: port_json(rep), lambda: port_lines(rep, args.full), policy)
    return EXIT_OK


def _progress() -> Callable[[int, int], None] | None:
    if not sys.stderr.isatty():
        return None

    def show(done: int, total: int) -> None:
        if done == total or done % 25 == 0:
            end = "\n" if done == total else ""
            sys.stderr.write(f"\rselnet matrix: {done}/{total} domains{end}")
            sys.stderr.flush()

    return show


def _matrix(args: argparse.Namespace) -> int:
    from selnet.analyses.profiles import matrix_rows
    from selnet.render.matrix import write_csv, write_jsonl, write_sqlite

    fmt = args.format or ("jsonl" if args.json and not args.output else "csv")
    if fmt == "sqlite" and not args.output:
        raise InputError("--format sqlite needs --output FILE")
    output = Path(args.output) if args.output else None
    if output is not None:
        check_target(output)  # before any work: a device, FIFO or directory is refused
    overrides = parse_bools(args.bool)
    policy = load(args)
    bools = policy.bool_values(overrides)
    for d in args.domain or []:
        policy.context_for_domain(d)  # an unknown name, an attribute, a non-domain: exit 2
    start = time.perf_counter()
    rows = matrix_rows(policy, bools, _progress(), args.domain)
    if fmt == "sqlite":
        assert output is not None
        meta = {
            "policy": str(policy.source.binary),
            "sha256": policy.snap.sha256,
            "booleans": json.dumps(overrides, sort_keys=True),
        }
        with atomic_path(output) as tmp:
            n = write_sqlite(rows, tmp, meta)
    else:
        writer = write_csv if fmt == "csv" else write_jsonl
        if output is not None:
            with atomic_file(output) as fh:
                n = writer(rows, fh)
        else:
            n = writer(rows, sys.stdout)
    if args.output and args.json:
        seconds = round(time.perf_counter() - start, 3)
        emit(args, lambda: {"rows": n, "format": fmt, "output": args.output, "seconds": seconds},
             lambda: [], policy)
    return EXIT_OK


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser],
             common: argparse.ArgumentParser) -> None:
    query = [bool_parent(), sysctl_parent(), common]
    p = sub.add_parser("domain", parents=query,
                       help="a domain's network profile: ports it may serve and reach")
    p.add_argument("domain", help="a domain type (httpd_t) or a full context")
    p.add_argument("--full", action="store_true",
                   help="every port type, node and grant, not a one-screen summary")
    p.set_defaults(func=cmd_domain)

    p = sub.add_parser("port", parents=query,
                       help="a port's type and the domains that may bind or reach it")
    p.add_argument("port", nargs="?", metavar="PORT[/PROTO]", help="8080, 53/udp (default tcp)")
    p.add_argument("--type", metavar="TYPE", help="a port type instead of a port number")
    p.add_argument("--full", action="store_true",
                   help="every domain with its whole rule, not grouped by rule")
    p.set_defaults(func=cmd_port)

    p = sub.add_parser("matrix", parents=[bool_parent(), common],
                       help="every domain x protocol x port range x {bind, connect}")
    p.add_argument("--format", choices=("csv", "jsonl", "sqlite"),
                   help="csv (default), jsonl, sqlite (needs --output)")
    p.add_argument("--output", "-o", metavar="FILE", help="write here instead of stdout")
    p.add_argument("--domain", action="append", metavar="TYPE", help="only these domains")
    p.set_defaults(func=cmd_matrix)
