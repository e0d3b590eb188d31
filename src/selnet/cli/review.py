"""`selnet diff` and `selnet whatif`: what a policy change does to network access."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from selnet.cli.options import emit, gc_paused, parse_bools
from selnet.errors import EXIT_OK, InputError

if TYPE_CHECKING:
    from selnet.policy.index import Policy
    from selnet.policy.overlay import Change
    from selnet.review.diff import DiffFilter
    from selnet.review.types import PolicyDiff

EXIT_DIFFERENT = 1
FAIL_ON = ("gained", "lost", "any")


def _progress(what: str) -> Callable[[int, int], None] | None:
    if not sys.stderr.isatty():
        return None

    def show(done: int, total: int) -> None:
        if done == total or done % 50 == 0:
            end = "\n" if done == total else ""
            sys.stderr.write(f"\rselnet {what}: {done}/{total} domains{end}")
            sys.stderr.flush()

    return show


def _load(paths: list[str], args: argparse.Namespace) -> Policy:
    from selnet.policy.loader import load_policy

    def progress() -> None:
        if sys.stderr.isatty():
            print(f"selnet: indexing {paths[0]} (first run on it; cached afterwards)...",
                  file=sys.stderr, flush=True)

    return load_policy(paths, use_cache=not args.no_cache, on_build=progress)


def _filter(args: argparse.Namespace, policies: list[Policy]) -> DiffFilter:
    from selnet.model.labels import parse_port
    from selnet.policy.index import did_you_mean
    from selnet.review.diff import DiffFilter

    domains: frozenset[str] | None = None
    if args.domain:
        known = set().union(*(p.domains() for p in policies))
        for d in args.domain:
            if d not in known:
                raise InputError(f"unknown domain {d!r} in either policy"
                                 f"{did_you_mean(d, sorted(known))}")
        domains = frozenset(args.domain)
    ports: list[tuple[str | None, int]] = []
    for text in args.port_filter or []:
        if "/" in text:
            port, proto = parse_port(text)
            ports.append((proto, port))
        else:
            port, _ = parse_port(text)
            ports.append((None, port))
    return DiffFilter(domains, tuple(ports))


def _finish(args: argparse.Namespace, d: PolicyDiff, what: str) -> int:
    from selnet.render.diff import diff_json, diff_lines, write_csv

    if args.csv:
        write_csv(d, sys.stdout)
    else:
        emit(args, lambda: diff_json(d), lambda: diff_lines(d, args.full, what))
    fail_on = args.fail_on or "any"
    wanted = {"gained", "lost", "changed"} if fail_on == "any" else {fail_on}
    if fail_on == "gained":
        wanted.add("changed")  # a conditional grant moved to other booleans may open access
    return EXIT_DIFFERENT if d.directions() & wanted else EXIT_OK


def cmd_diff(args: argparse.Namespace) -> int:
    from selnet.model.env import parse_sysctls
    from selnet.review.diff import diff_policies

    if args.policy:
        raise InputError("diff takes the two policies as OLD NEW, not --policy")
    old = _load([args.old, *(args.old_module or [])], args)
    new = _load([args.new, *(args.new_module or [])], args)
    only = _filter(args, [old, new])
    with gc_paused():
        d = diff_policies(old, new, env=parse_sysctls(args.sysctl or []), only=only,
                          progress=_progress("diff"))
    return _finish(args, d, "diff")


def parse_port_change(text: str, policy: Policy) -> Change:
    """``PROTO PORT[-HIGH] TYPE`` (or ``PORT[-HIGH]/PROTO TYPE``): what ``semanage port -a``
    does, or ``-m`` when a record with exactly this key exists."""
    from selnet.policy.overlay import AddPortcon, ModifyPortcon

    parts = text.split()
    if len(parts) == 2 and "/" in parts[0]:
        ports, _, proto = parts[0].partition("/")
        parts = [proto, ports, parts[1]]
    if len(parts) != 3:
        raise InputError(f"--port needs 'PROTO PORT[-HIGH] TYPE', got {text[:60]!r}")
    proto, ports, ctx = parts
    low_t, _, high_t = ports.partition("-")
    for t in (low_t, high_t or low_t):
        if not (t.isascii() and t.isdigit()) or len(t) > 5:
            raise InputError(f"--port: {ports[:20]!r} is not a port or range")
    low, high = int(low_t), int(high_t or low_t)
    exists = any(p.protocol == proto and p.low == low and p.high == high
                 for p in policy.snap.portcons)
    if exists:
        return ModifyPortcon(proto, low, high, ctx)
    return AddPortcon(proto, low, high, ctx)


def cmd_whatif(args: argparse.Namespace) -> int:
    from selnet.cli.options import load
    from selnet.model.env import parse_sysctls
    from selnet.policy.overlay import SetBoolean
    from selnet.policy.te_rule import parse_rule
    from selnet.review.diff import diff_policies

    bools = parse_bools(args.bool)
    if not (bools or args.port or args.rule or args.module):
        raise InputError("whatif needs a change: --bool NAME=on, --port 'tcp 8082 TYPE', "
                         "--rule 'allow ...;' or --module FILE")
    old = load(args)
    new = _load([*(args.policy or []), *args.module], args) if args.module else old
    changes: list[Change] = []
    known = old.bool_values()
    for name, value in bools.items():
        old.bool_values({name: value})  # an unknown boolean: one line with a suggestion
        if known[name] != value:
            changes.append(SetBoolean(name, value))
    changes.extend(parse_port_change(t, old) for t in args.port or [])
    for text in args.rule or []:
        changes.extend(parse_rule(text))
    if changes:
        new = new.with_changes(*changes)
    only = _filter(args, [old, new])
    with gc_paused():
        d = diff_policies(old, new, env=parse_sysctls(args.sysctl or []), only=only,
                          progress=_progress("whatif"))
    return _finish(args, d, "whatif")


def _outputs(p: argparse.ArgumentParser, port_flag: str) -> None:
    """``port_flag``: --port filters a diff; on whatif --port is a change, --only-port filters."""
    p.add_argument("--full", action="store_true", help="every change with its statements")
    p.add_argument("--csv", action="store_true", help="one CSV row per change")
    p.add_argument("--domain", action="append", metavar="TYPE", help="only these domains")
    p.add_argument(port_flag, dest="port_filter", action="append", metavar="PORT[/PROTO]",
                   help="only changes covering this port (any protocol unless given)")
    p.add_argument("--fail-on", choices=FAIL_ON,
                   help="exit 1 only for these changes (default any): a CI gate")
    p.add_argument("--sysctl", action="append", metavar="KEY=VALUE",
                   help="ip_local_port_range / ip_unprivileged_port_start assumed")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser],
             common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("diff", parents=[common],
                       help="the network access two policies differ in, with causes "
                       "(exit 1 when they differ)")
    p.add_argument("old", metavar="OLD", help="the old policy (binary, CIL, policy.conf)")
    p.add_argument("new", metavar="NEW", help="the new policy")
    p.add_argument("--old-module", action="append", metavar="FILE",
                   help="a module layered on OLD (.cil, .te, .pp; repeat)")
    p.add_argument("--new-module", action="append", metavar="FILE",
                   help="a module layered on NEW (.cil, .te, .pp; repeat)")
    _outputs(p, "--port")
    p.set_defaults(func=cmd_diff)

    p = sub.add_parser("whatif", parents=[common],
                       help="what a boolean, port label, rule or module would open "
                       "(exit 1 when it changes anything)")
    p.add_argument("--bool", action="append", metavar="NAME=on|off",
                   help="a boolean's default (setsebool -P)")
    p.add_argument("--port", action="append", metavar="'PROTO PORT TYPE'",
                   help="a port label, as semanage port -a (or -m for an existing record)")
    p.add_argument("--rule", action="append", metavar="'allow S T:C P;'", help="a TE rule")
    p.add_argument("--module", action="append", default=[], metavar="FILE",
                   help="a module (.cil, .te, .pp) layered on --policy")
    _outputs(p, "--only-port")
    p.set_defaults(func=cmd_whatif)
