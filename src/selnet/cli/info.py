"""`selnet info` and `selnet label port|node|netif`."""

from __future__ import annotations

import argparse

from selnet.cli.options import emit, load
from selnet.errors import EXIT_OK


def cmd_info(args: argparse.Namespace) -> int:
    from selnet.analyses.info import network_facts
    from selnet.render.facts import info_json, info_lines

    facts = network_facts(load(args))
    emit(args, lambda: info_json(facts), lambda: info_lines(facts))
    return EXIT_OK


def cmd_label(args: argparse.Namespace) -> int:
    from selnet.model import labels
    from selnet.render.facts import label_json, label_lines

    # Validate the query before loading the policy: bad input fails fast.
    if args.what == "port":
        port, proto = labels.parse_port(args.value)
    elif args.what == "node":
        addr = labels.parse_address(args.value)
    else:
        labels.check_netif_name(args.value)
    policy = load(args)
    if args.what == "port":
        res = labels.port_label(policy, proto, port)
    elif args.what == "node":
        res = labels.node_label(policy, addr)
    else:
        res = labels.netif_label(policy, args.value)
    emit(args, lambda: label_json(res), lambda: label_lines(res), policy)
    return EXIT_OK


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser],
             common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("info", parents=[common], help="network facts of a policy")
    p.set_defaults(func=cmd_info)
    p = sub.add_parser("label", parents=[common],
                       help="label of a port, node (address) or network interface")
    p.add_argument("what", choices=("port", "node", "netif"))
    p.add_argument("value", help="8080/tcp, 127.0.0.1, ::1, eth0")
    p.set_defaults(func=cmd_label)
