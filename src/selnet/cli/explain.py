"""`selnet explain`: a client and a server chain side by side on the example policy."""

from __future__ import annotations

import argparse

from selnet.cli.options import bool_parent, emit, env_of, load, parse_bools, sysctl_parent
from selnet.errors import EXIT_OK, InputError

# (title, operation, domain, endpoint) — the story of the bundled example policy.
DEMO = [
    ("web server listens on its own port", "listen", "web_t", "0.0.0.0:80/tcp"),
    ("the same web server connects out to the database", "connect", "web_t", "127.0.0.1:5432/tcp"),
    ("a client connects to the web server", "connect", "client_t", "127.0.0.1:80/tcp"),
]


def cmd_explain(args: argparse.Namespace) -> int:
    if args.domain:
        return _explain_domain(args)
    from selnet.decide.chain import evaluate
    from selnet.model.env import NetEnv
    from selnet.model.plan import Scenario, parse_endpoint
    from selnet.render.chain import demo_json, demo_lines

    policy = load(args)
    bools = policy.bool_values()
    chains = []
    for title, op, dom, ep in DEMO:
        if policy.snap.resolve_type(dom) is None:
            continue
        sc = Scenario(op, policy.context_for_domain(dom), parse_endpoint(ep), NetEnv())
        chains.append((title, evaluate(policy, sc, bools)))
    if not chains:
        raise InputError("this policy lacks the example's domains (web_t, client_t); "
                         "try selnet connect/listen with your own")
    emit(args, lambda: {"demo": demo_json(chains)}, lambda: demo_lines(chains), policy)
    return EXIT_OK


def _explain_domain(args: argparse.Namespace) -> int:
    from selnet.explain.domain import explain_domain
    from selnet.render.explain import explain_json, explain_lines

    overrides = parse_bools(args.bool)
    policy = load(args)
    e = explain_domain(policy, args.domain, policy.bool_values(overrides), env_of(policy, args))
    emit(args, lambda: explain_json(e), lambda: explain_lines(e, args.full), policy)
    return EXIT_OK


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser],
             common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("explain", parents=[bool_parent(), sysctl_parent(), common],
                       help="a domain's network access layer by layer (no DOMAIN: the demo)")
    p.add_argument("domain", nargs="?", help="a domain type (httpd_t); none: the bundled demo")
    p.add_argument("--full", action="store_true", help="every macro and rule, not one page")
    p.set_defaults(func=cmd_explain)
