"""`selnet trace DOMAIN STEP...`: a whole socket program, step by step."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from selnet.cli.check import SYSCTL_HELP, build_env, label_options
from selnet.cli.options import bool_parent, emit, load, parse_bools, sysctl_parent
from selnet.errors import EXIT_DENIED, EXIT_OK, InputError

if TYPE_CHECKING:
    from selnet.decide.chain import TraceResult
    from selnet.policy.index import Policy

STEPS_HELP = ("sock=tcp|udp|icmp|raw|sctp|dccp (6 suffix: IPv6), bind=ADDR:PORT, "
              "bind=unspec:ADDR:PORT, listen, accept, connect=ADDR:PORT, connect=unspec, "
              "sendto=ADDR:PORT, send, recv, setsockopt=NAME, getsockopt=NAME, shutdown, "
              "getsockname, getpeername, and with --socket-from one of handoff (same process), "
              "recvfd (received over a unix socket), exec (inherited across exec)")


def _gid(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 10 or int(text) > 4294967294:
        raise argparse.ArgumentTypeError(f"not a group id: {text!r}")
    return int(text)


def cmd_trace(args: argparse.Namespace) -> int:
    from selnet.model.trace import parse_steps
    from selnet.render.trace import trace_json, trace_lines

    if not args.steps:
        raise InputError("give the steps: sock=tcp bind=0.0.0.0:80 listen accept recv ...")
    parse_steps(args.steps, bool(args.socket_from))  # bad steps fail before the policy loads
    policy = load(args)
    result = decide_trace(policy, args)
    emit(args, lambda: trace_json(result), lambda: trace_lines(result), policy)
    return EXIT_OK if result.allowed else EXIT_DENIED


def decide_trace(policy: Policy, args: argparse.Namespace) -> TraceResult:
    """The trace the arguments describe, decided on ``policy`` (also selnet verify's)."""
    from selnet.decide.chain import evaluate_trace
    from selnet.model.trace import TraceModel

    bools = policy.bool_values(parse_bools(args.bool))
    domain = policy.context_for_domain(args.domain)
    creator = policy.context_for_domain(args.socket_from) if args.socket_from else None
    sockcreate = policy.context_for_domain(args.sockcreate) if args.sockcreate else None
    env = build_env(policy, args)
    plan = TraceModel(policy, bools).plan(domain, args.steps, env, creator, sockcreate)
    return evaluate_trace(policy, plan, bools)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser],
             common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "trace", parents=[bool_parent(), sysctl_parent(SYSCTL_HELP), common],
        help="a sequence of socket calls: each step's errno and checks, in kernel order")
    p.add_argument("domain", help="a domain type (httpd_t) or a full context")
    p.add_argument("steps", nargs="*", metavar="STEP", help=STEPS_HELP)
    p.add_argument("--socket-from", metavar="CONTEXT",
                   help="the socket was created by this domain (socket activation): it makes "
                   "socket() (and every step before handoff, recvfd or exec); the rest are DOMAIN's")
    p.add_argument("--remote", metavar="ADDR", help="the peer's address for per-packet checks")
    p.add_argument("--gid", type=_gid, action="append", metavar="GID",
                   help="the caller's groups, for net.ipv4.ping_group_range (default 0)")
    label_options(p, fixes=False)
    p.set_defaults(func=cmd_trace)
