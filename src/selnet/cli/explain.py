"""`selnet explain`: a client and a server chain side by side on the example policy."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from selnet.decide.chain import chain_json, evaluate
from selnet.model.env import NetEnv
from selnet.model.plan import Scenario, parse_endpoint
from selnet.render.jsonout import emit_json
from selnet.render.text import chain_lines

# (title, operation, domain, endpoint) — the story of the bundled example policy.
DEMO = [
    ("web server listens on its own port", "listen", "web_t", "0.0.0.0:80/tcp"),
    ("the same web server connects out to the database", "connect", "web_t", "127.0.0.1:5432/tcp"),
    ("a client connects to the web server", "connect", "client_t", "127.0.0.1:80/tcp"),
]


def run_demo(args: argparse.Namespace, policy: Any) -> int:
    bools = policy.bool_values()
    chains = []
    for title, op, dom, ep in DEMO:
        if policy.snap.resolve_type(dom) is None:
            continue
        sc = Scenario(op, policy.context_for_domain(dom), parse_endpoint(ep), NetEnv())
        chains.append((title, evaluate(policy, sc, bools)))
    if not chains:
        print("selnet explain: this policy lacks the example's domains (web_t, client_t); "
              "try selnet connect/listen with your own", file=sys.stderr)
        return 2
    if args.json:
        emit_json([{"title": t, **chain_json(c)} for t, c in chains])
        return 0
    for title, chain in chains:
        print(f"== {title}")
        print("\n".join(chain_lines(chain)))
        print()
    print("A server may listen on its port without being able to connect out: name_bind and")
    print("name_connect are separate permissions on the port type, and TCP connect() checks")
    print("name_connect on the destination port's type.")
    return 0
