"""`selnet graph` (the reachability graph) and `selnet report` (one self-contained HTML file)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from selnet.cli.options import bool_parent, emit, load, parse_bools
from selnet.cli.output import check_target, write_text
from selnet.errors import EXIT_OK, InputError

GRAPH_FORMATS = ("dot", "graphml", "json", "svg")
# dot's layout grows much faster than linearly in edges: past this, refuse at once rather
# than run dot for minutes (the whole reference policy has ~53,000).
SVG_MAX_EDGES = 3000


def cmd_graph(args: argparse.Namespace) -> int:
    from selnet.render.graph import graph_json, to_dot, to_graphml, to_svg
    from selnet.review.graph import DEFAULT_DEPTH, GraphFilter, build_graph, parse_port_filters

    fmt = args.format or ("json" if args.json and not args.output else "dot")
    if args.json and fmt != "json" and not args.output:
        raise InputError(f"--json prints the graph as JSON: give --output FILE for --format {fmt}")
    if args.depth is not None and not args.domain:
        raise InputError("--depth needs --domain (it counts hops from the domains given)")
    if fmt == "svg":
        from selnet.render.graph import dot_available

        if not dot_available():
            to_svg("")  # the one-line error, before any work
    output = Path(args.output) if args.output else None
    if output is not None:
        check_target(output)  # before any work: a device, FIFO or directory is refused
    ports = parse_port_filters(args.port or [])
    depth = DEFAULT_DEPTH if args.depth is None else args.depth
    if depth < 0:
        raise InputError(f"--depth must be 0 or more, got {depth}")
    overrides = parse_bools(args.bool)
    policy = load(args)
    graph = build_graph(policy, policy.bool_values(overrides), labeled=args.labeled,
                        filt=GraphFilter(tuple(args.domain or ()), ports, depth))
    if fmt == "svg" and len(graph.edges) > SVG_MAX_EDGES:
        raise InputError(f"the graph has {len(graph.edges)} edges, too many to draw (at most "
                         f"{SVG_MAX_EDGES}): narrow it with --domain/--depth or --port, or "
                         "write --format dot|graphml|json")
    if fmt == "json" and output is None:
        emit(args, lambda: graph_json(graph), lambda: [], policy)
        return EXIT_OK
    if fmt == "json":
        import json

        from selnet.render.facts import policy_json

        text = json.dumps({"schema_version": 1, **graph_json(graph),
                           "policy": policy_json(policy)}, indent=1) + "\n"
    elif fmt == "graphml":
        text = to_graphml(graph)
    else:
        text = to_dot(graph)
        if fmt == "svg":
            text = to_svg(text)
    if output is None:
        sys.stdout.write(text)
    else:
        write_text(output, text)
        if args.json:
            emit(args, lambda: {"output": str(output), "format": fmt, "nodes": len(graph.nodes),
                                "edges": len(graph.edges)}, lambda: [], policy)
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from selnet.render.graph import dot_available
    from selnet.render.report import report_html
    from selnet.review.report import build_report

    output = Path(args.output)
    if output.suffix.lower() not in (".html", ".htm"):
        raise InputError(f"--output must name an .html file, got {args.output!r}")
    check_target(output)
    if args.top < 1:
        raise InputError(f"--top must be 1 or more, got {args.top}")
    overrides = parse_bools(args.bool)
    policy = load(args)
    diff = None
    if args.against:
        from selnet.policy.loader import load_policy
        from selnet.review.diff import diff_policies

        old = load_policy(args.against, use_cache=not args.no_cache)
        diff = diff_policies(old, policy)
    rep = build_report(policy, policy.bool_values(overrides), top=args.top, diff=diff)
    write_text(output, report_html(rep))
    emit(args, lambda: {"output": str(output), "domains": len(rep.exposures),
                        "detailed": len(rep.details), "graph_drawn": dot_available(),
                        "changes": None if diff is None else len(diff.changes)},
         lambda: [f"wrote {output}: {len(rep.exposures)} domains with network access, "
                  f"{len(rep.details)} in detail"
                  + ("" if diff is None else f", {len(diff.changes)} changes against "
                     f"{diff.old}")],
         policy)
    return EXIT_OK


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser],
             common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("graph", parents=[bool_parent(), common],
                       help="the reachability graph: client -> port type <- server, booleans "
                       "on conditional edges")
    p.add_argument("--format", choices=GRAPH_FORMATS,
                   help="dot (default), graphml, json, svg (needs graphviz)")
    p.add_argument("--output", "-o", metavar="FILE", help="write here instead of stdout")
    p.add_argument("--domain", action="append", metavar="TYPE",
                   help="keep this domain's neighbourhood (repeatable)")
    p.add_argument("--port", action="append", metavar="PORT[/PROTO]",
                   help="keep this port's type and the domains that may bind or reach it")
    p.add_argument("--depth", type=int, metavar="N",
                   help="hops kept around each --domain (default 2)")
    p.add_argument("--labeled", action="store_true",
                   help="add labeled-networking edges (peer recv, association)")
    p.set_defaults(func=cmd_graph)

    p = sub.add_parser("report", parents=[bool_parent(), common],
                       help="one self-contained HTML file: summary, exposure, graph, diff")
    p.add_argument("--output", "-o", metavar="FILE.html", required=True, help="the HTML file")
    p.add_argument("--against", action="append", metavar="OLD",
                   help="an older policy to diff against (repeat like --policy)")
    p.add_argument("--top", type=int, default=20, metavar="N",
                   help="domains shown in detail, most exposed first (default 20)")
    p.set_defaults(func=cmd_report)
