"""`selnet lint FILE...`: network statements in TE/IF/CIL sources judged by kernel facts."""

from __future__ import annotations

import argparse
import sys

from selnet.errors import EXIT_DENIED, EXIT_OK


def cmd_lint(args: argparse.Namespace) -> int:
    from selnet.lint import lint_paths
    from selnet.render.jsonout import emit_json
    from selnet.render.lint import lint_json, lint_lines, lint_sarif

    policy = None
    if args.policy:  # only when asked: lint never reads the running kernel's policy
        from selnet.cli.options import load

        policy = load(args)
    report = lint_paths(args.files, policy=policy)
    if args.sarif:
        emit_json(lint_sarif(report))
    elif args.json:
        from selnet.cli.options import emit

        emit(args, lambda: lint_json(report), lambda: [], policy)
    else:
        sys.stdout.write("\n".join(lint_lines(report)) + "\n")
    return EXIT_DENIED if report.findings else EXIT_OK


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser],
             common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("lint", parents=[common],
                       help="lint network rules in .te/.if/.cil sources (no compilation)")
    p.add_argument("files", nargs="+", metavar="FILE",
                   help=".te, .if or .cil file, or a directory of them")
    p.add_argument("--sarif", action="store_true", help="SARIF 2.1.0 output")
    p.set_defaults(func=cmd_lint)
