"""The entry point: build the parser from each command group, dispatch, never a traceback."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from selnet.cli import audit, check, explain, generate, info, lint, profiles
from selnet.cli.options import Handler, policy_parent
from selnet.errors import EXIT_BAD_INPUT, EXIT_OK, SelnetError

GROUPS = (info, check, profiles, audit, explain, generate, lint)


def build_parser() -> argparse.ArgumentParser:
    from selnet import __version__

    parser = argparse.ArgumentParser(
        prog="selnet",
        description="What SELinux does to a program's network access, as the kernel checks it.",
    )
    parser.add_argument("--version", action="version", version=f"selnet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    common = policy_parent()
    for group in GROUPS:
        group.register(sub, common)
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
