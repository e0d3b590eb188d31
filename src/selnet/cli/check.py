"""`selnet connect|listen|bind|send`: one operation's kernel checks, decided."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from selnet.cli.options import bool_parent, emit, load, parse_bools, sysctl_parent
from selnet.errors import EXIT_DENIED, EXIT_OK, InputError

if TYPE_CHECKING:
    from selnet.decide.chain import ChainResult
    from selnet.model.env import NetEnv
    from selnet.model.plan import Scenario
    from selnet.policy.index import Policy

SYSCTL_HELP = ('net.ipv4.ip_local_port_range="LOW HIGH", net.ipv4.ip_unprivileged_port_start=N, '
               'net.ipv4.ping_group_range="LOW HIGH"')
HELPS = {
    "connect": "a client: socket, [bind], connect, send, receive",
    "listen": "a server: socket, bind, listen, accept (datagram: bind, receive, send); "
    "without an address, an unbound listen (the kernel picks the port)",
    "bind": "socket and bind only",
    "send": "a datagram sent without connect, [after a bind] (TCP only with --fastopen)",
}


def build_env(policy: Policy, args: argparse.Namespace) -> NetEnv:
    """--sysctl, --labeled, --peer, --secmark, --userns, --netif, --remote (and --gid)."""
    from dataclasses import replace

    from selnet.model.env import env_for

    env = env_for(policy.source.origin, args.sysctl)
    peer = policy.parse_context(args.peer) if args.peer else None
    secmark = policy.parse_context(args.secmark) if args.secmark else None
    if args.peer and not args.labeled:
        raise InputError("--peer needs --labeled netlabel|ipsec")
    if args.spd and args.labeled != "ipsec":
        raise InputError("--spd needs --labeled ipsec")
    spd = policy.parse_context(args.spd) if args.spd else None
    env = replace(env, labeled=args.labeled, peer=peer, spd=spd, secmark=secmark,
                  userns=args.userns, netif=args.netif, remote=getattr(args, "remote", None))
    gids = getattr(args, "gid", None)
    if gids:
        env = replace(env, gids=tuple(gids))
    return env


def build_scenario(policy: Policy, args: argparse.Namespace, operation: str) -> Scenario:
    from selnet.model.plan import Scenario, parse_bind, parse_endpoint, unbound_endpoint

    unbound = unbound_endpoint(args.endpoint) if operation == "listen" else None
    endpoint = unbound or parse_endpoint(args.endpoint)
    domain = policy.context_for_domain(args.domain)
    env = build_env(policy, args)
    bind = parse_bind(args.bind, endpoint.proto) if getattr(args, "bind", None) else None
    sockcreate = policy.context_for_domain(args.sockcreate) if args.sockcreate else None
    return Scenario(operation, domain, endpoint, env, bind, sockcreate,
                    getattr(args, "fastopen", False), unbound=unbound is not None)


def decide_check(policy: Policy, args: argparse.Namespace) -> ChainResult:
    """The operation the arguments describe, decided on ``policy`` (also selnet verify's)."""
    from selnet.decide.chain import evaluate

    bools = policy.bool_values(parse_bools(args.bool))
    return evaluate(policy, build_scenario(policy, args, args.command), bools)


def cmd_check(args: argparse.Namespace) -> int:
    from selnet.render.chain import chain_json, chain_lines

    policy = load(args)
    chain = decide_check(policy, args)
    bools, scenario = chain.bools, chain.plan.scenario
    fixes = None
    if not chain.allowed:
        from selnet.fix.engine import FixEngine, fix_chain

        engine = FixEngine(policy, bools, scenario.env, use_interfaces=not args.no_interfaces)
        fixes = fix_chain(engine, chain)
    emit(args, lambda: chain_json(chain, fixes), lambda: chain_lines(chain, fixes, args.fixes),
         policy)
    return EXIT_OK if chain.allowed else EXIT_DENIED


def _check_parent(optional_endpoint: bool = False) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("domain", help="a domain type (httpd_t) or a full context")
    if optional_endpoint:
        p.add_argument("endpoint", metavar="ADDR:PORT[/PROTO]", nargs="?", default=None,
                       help="the address to bind; omitted (or only a protocol: tcp, tcp6, "
                       "sctp, dccp6, ...): listen() on an unbound socket")
    else:
        p.add_argument("endpoint", metavar="ADDR:PORT[/PROTO]",
                       help="127.0.0.1:5432, [::1]:80/udp; PROTO tcp (default), udp, sctp, "
                       "dccp, icmp, raw")
    label_options(p)
    return p


def label_options(p: argparse.ArgumentParser, fixes: bool = True) -> None:
    """The socket-label and labeled-networking options (connect, listen, bind, send, trace);
    the fix options only where fixes are computed."""
    p.add_argument("--sockcreate", metavar="CONTEXT", help="socket label set with setsockcreatecon")
    p.add_argument("--labeled", choices=("netlabel", "ipsec"), help="peer labeling is active")
    p.add_argument("--peer", metavar="CONTEXT", help="the peer label (default: unlabeled initial SID)")
    p.add_argument("--spd", metavar="CONTEXT",
                   help="labeled IPsec: the context of the SPD entry outgoing flows match "
                   "(polmatch; the SA carries the socket's own label)")
    p.add_argument("--secmark", metavar="CONTEXT", help="SECMARK label of the packets (SECMARK active)")
    p.add_argument("--netif", metavar="NAME", help="interface for per-packet checks (default lo/eth0)")
    if fixes:
        p.add_argument("--fixes", type=int, default=0, metavar="N",
                       help="show N more fixes after the best one (JSON always has them all)")
        p.add_argument("--no-interfaces", action="store_true",
                       help="do not look up refpolicy interfaces (selinux-policy-dev)")
    p.add_argument("--userns", action="store_true",
                   help="the network namespace belongs to a non-initial user namespace (cap_userns)")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser],
             common: argparse.ArgumentParser) -> None:
    for op, text in HELPS.items():
        parents = [_check_parent(op == "listen"), bool_parent(), sysctl_parent(SYSCTL_HELP),
                   common]
        p = sub.add_parser(op, parents=parents, help=text)
        if op in ("connect", "send"):
            p.add_argument("--bind", metavar="ADDR[:PORT]", help=f"explicit bind() before {op}")
        if op == "listen":
            p.add_argument("--remote", metavar="ADDR", help="client address for per-packet checks")
        if op in ("send", "connect"):
            p.add_argument("--fastopen", action="store_true",
                           help="TCP Fast Open: sendto(MSG_FASTOPEN) instead of connect()")
        p.set_defaults(func=cmd_check)
