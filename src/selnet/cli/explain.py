"""`selnet explain`: a client and a server chain side by side on the example policy."""

from __future__ import annotations

import argparse

from selnet.cli.options import emit, load
from selnet.errors import EXIT_OK, InputError

# (title, operation, domain, endpoint) — the story of the bundled example policy.
DEMO = [
    ("web server listens on its own port", "listen", "web_t", "0.0.0.0:80/tcp"),
    ("the same web server connects out to the database", "connect", "web_t", "127.0.0.1:5432/tcp"),
    ("a client connects to the web server", "connect", "client_t", "127.0.0.1:80/tcp"),
]


def cmd_explain(args: argparse.Namespace) -> int:
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
    emit(args, lambda: demo_json(chains), lambda: demo_lines(chains))
    return EXIT_OK


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser],
             common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("explain", parents=[common],
                       help="demo: a client and a server chain side by side")
    p.set_defaults(func=cmd_explain)
