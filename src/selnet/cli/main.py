"""Command line: argument parsing and dispatch only; the work happens elsewhere."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

from selnet.errors import EXIT_BAD_INPUT, EXIT_DENIED, EXIT_OK, InputError, SelnetError

Handler = Callable[[argparse.Namespace], int]


def _emit_json(obj: object) -> None:
    from selnet.render.jsonout import emit_json

    emit_json(obj)


def _emit_lines(lines: Sequence[str]) -> None:
    sys.stdout.write("\n".join(lines) + "\n")


def _load(args: argparse.Namespace) -> Any:
    from selnet.policy.loader import load_policy

    def progress() -> None:
        # Long work shows progress: only the first run on a policy builds its index.
        if sys.stderr.isatty():
            print("selnet: indexing the policy (first run on it; cached afterwards)...",
                  file=sys.stderr, flush=True)

    return load_policy(args.policy, use_cache=not args.no_cache, on_build=progress)


def _parse_bools(items: list[str] | None) -> dict[str, bool]:
    out: dict[str, bool] = {}
    for item in items or []:
        name, eq, val = item.partition("=")
        v = val.strip().lower()
        if not eq or v not in ("on", "off", "1", "0", "true", "false"):
            raise InputError(f"--bool needs NAME=on|off, got {item!r}")
        out[name.strip()] = v in ("on", "1", "true")
    return out


# -- info / label ---------------------------------------------------------------
def cmd_info(args: argparse.Namespace) -> int:
    from selnet.analyses.info import network_facts
    from selnet.render.facts import info_lines

    policy = _load(args)
    facts = network_facts(policy)
    if args.json:
        _emit_json(facts)
    else:
        _emit_lines(info_lines(policy, facts))
    return EXIT_OK


def cmd_label(args: argparse.Namespace) -> int:
    from selnet.model import labels
    from selnet.render.facts import label_lines

    # Validate the query before loading the policy: bad input fails fast.
    if args.what == "port":
        port, proto = labels.parse_port(args.value)
    elif args.what == "node":
        addr = labels.parse_address(args.value)
    else:
        labels.check_netif_name(args.value)
    policy = _load(args)
    if args.what == "port":
        res = labels.port_label(policy, proto, port)
    elif args.what == "node":
        res = labels.node_label(policy, addr)
    else:
        res = labels.netif_label(policy, args.value)
    if args.json:
        _emit_json(labels.label_json(res))
    else:
        _emit_lines(label_lines(res))
    return EXIT_OK


# -- connect / listen / bind / send -------------------------------------------------
def build_scenario(policy: Any, args: argparse.Namespace, operation: str) -> Any:
    from dataclasses import replace

    from selnet.model.env import env_for
    from selnet.model.plan import Scenario, parse_bind, parse_endpoint

    endpoint = parse_endpoint(args.endpoint)
    domain = policy.context_for_domain(args.domain)
    env = env_for(policy.source.origin, args.sysctl)
    peer = policy.parse_context(args.peer) if args.peer else None
    secmark = policy.parse_context(args.secmark) if args.secmark else None
    if args.peer and not args.labeled:
        raise InputError("--peer needs --labeled netlabel|ipsec")
    env = replace(env, labeled=args.labeled, peer=peer, secmark=secmark, userns=args.userns,
                  netif=args.netif, remote=getattr(args, "remote", None))
    bind = parse_bind(args.bind, endpoint.proto) if getattr(args, "bind", None) else None
    sockcreate = policy.context_for_domain(args.sockcreate) if args.sockcreate else None
    return Scenario(operation, domain, endpoint, env, bind, sockcreate,
                    getattr(args, "fastopen", False))


def cmd_check(args: argparse.Namespace) -> int:
    from selnet.decide.chain import chain_json, evaluate
    from selnet.render.text import chain_lines

    policy = _load(args)
    bools = policy.bool_values(_parse_bools(args.bool))
    scenario = build_scenario(policy, args, args.command)
    chain = evaluate(policy, scenario, bools)
    if args.json:
        _emit_json(chain_json(chain))
    else:
        _emit_lines(chain_lines(chain))
    return EXIT_OK if chain.allowed else EXIT_DENIED


def cmd_explain(args: argparse.Namespace) -> int:
    from selnet.cli.explain import run_demo

    return run_demo(args, _load(args))


# -- parser ---------------------------------------------------------------------
def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--policy", action="append", metavar="PATH",
        help="compiled policy, CIL file (repeat for several) or policy.conf; default: the "
        "running kernel's policy, else the bundled example policy",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the index cache")


def _check_options(p: argparse.ArgumentParser, operation: str) -> None:
    p.add_argument("domain", help="a domain type (httpd_t) or a full context")
    p.add_argument("endpoint", metavar="ADDR:PORT[/PROTO]",
                   help="127.0.0.1:5432, [::1]:80/udp; PROTO tcp (default), udp, sctp, dccp, icmp, raw")
    p.add_argument("--bool", action="append", metavar="NAME=on|off", help="override a boolean")
    p.add_argument("--sysctl", action="append", metavar="KEY=VALUE",
                   help='net.ipv4.ip_local_port_range="LOW HIGH", net.ipv4.ip_unprivileged_port_start=N')
    p.add_argument("--sockcreate", metavar="CONTEXT", help="socket label set with setsockcreatecon")
    p.add_argument("--labeled", choices=("netlabel", "ipsec"), help="peer labeling is active")
    p.add_argument("--peer", metavar="CONTEXT", help="the peer label (default: unlabeled initial SID)")
    p.add_argument("--secmark", metavar="CONTEXT", help="SECMARK label of the packets (SECMARK active)")
    p.add_argument("--netif", metavar="NAME", help="interface for per-packet checks (default lo/eth0)")
    p.add_argument("--userns", action="store_true",
                   help="the network namespace belongs to a non-initial user namespace (cap_userns)")
    if operation == "connect":
        p.add_argument("--bind", metavar="ADDR[:PORT]", help="explicit bind() before connect")
    if operation == "listen":
        p.add_argument("--remote", metavar="ADDR", help="client address for per-packet checks")
    if operation in ("send", "connect"):
        p.add_argument("--fastopen", action="store_true",
                       help="TCP Fast Open: sendto(MSG_FASTOPEN) instead of connect()")


def build_parser() -> argparse.ArgumentParser:
    from selnet import __version__

    parser = argparse.ArgumentParser(
        prog="selnet",
        description="What SELinux does to a program's network access, as the kernel checks it.",
    )
    parser.add_argument("--version", action="version", version=f"selnet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("info", help="network facts of a policy")
    _common(p)
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("label", help="label of a port, node (address) or network interface")
    p.add_argument("what", choices=("port", "node", "netif"))
    p.add_argument("value", help="8080/tcp, 127.0.0.1, ::1, eth0")
    _common(p)
    p.set_defaults(func=cmd_label)

    helps = {
        "connect": "a client: socket, [bind], connect, send, receive",
        "listen": "a server: socket, bind, listen, accept (datagram: bind, receive, send)",
        "bind": "socket and bind only",
        "send": "a datagram sent without connect (TCP only with --fastopen)",
    }
    for op, text in helps.items():
        p = sub.add_parser(op, help=text)
        _check_options(p, op)
        _common(p)
        p.set_defaults(func=cmd_check)

    p = sub.add_parser("explain", help="demo: a client and a server chain side by side")
    _common(p)
    p.set_defaults(func=cmd_explain)

    from selnet.cli.profiles import register

    register(sub, _common, _load, _parse_bools)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed a one-line usage error
        return EXIT_OK if exc.code == 0 else EXIT_BAD_INPUT
    try:
        func: Handler = args.func
        return func(args)
    except SelnetError as exc:
        print(f"selnet: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:  # never a traceback for the user; keep the cause on one line
        print(f"selnet: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 70


__all__ = ["EXIT_DENIED", "main"]
