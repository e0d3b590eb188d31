"""The entry point: build the parser from each command group, dispatch, never a traceback."""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys
from collections.abc import Sequence

from selnet.cli.options import Handler, policy_parent, validate_args
from selnet.errors import EXIT_BAD_INPUT, EXIT_OK, SelnetError

# Each command group (a module of selnet.cli with a ``register(sub, common)``) and the
# commands it registers, in the order --help lists them.  A run imports and builds only
# its own command's group: importing every group and building ~50 parsers was a fifth of
# a warm `selnet connect`.  To add a command: its module and its names here
# (tests/test_cli.py checks that each group registers exactly the names listed).
GROUPS: dict[str, tuple[str, ...]] = {
    "info": ("info", "label"),
    "check": ("connect", "listen", "bind", "send"),
    "trace": ("trace",),
    "profiles": ("domain", "port", "matrix"),
    "audit": ("audit",),
    "explain": ("explain",),
    "generate": ("generate",),
    "lint": ("lint",),
    "review": ("diff", "whatif"),
    "review_graph": ("graph", "report"),
    "verify": ("verify",),
    "completion": ("completion", "complete"),
}
EXIT_INTERNAL = 70


def _group_of(argv: Sequence[str]) -> str | None:
    """The group of the command in ``argv`` (its first word not an option: the top-level
    parser has only --help and --version), or None: build every group."""
    for word in argv:
        if word == "--":
            return None
        if not word.startswith("-"):
            return next((g for g, names in GROUPS.items() if word in names), None)
    return None


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or with ``argv`` only of the group of its command
    (every group when it names none, so usage errors and --help list all commands)."""
    from selnet import __version__

    parser = argparse.ArgumentParser(
        prog="selnet",
        description="What SELinux does to a program's network access, as the kernel checks it.",
    )
    parser.add_argument("--version", action="version", version=f"selnet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    common = policy_parent()
    only = _group_of(argv) if argv is not None else None
    for group in GROUPS if only is None else (only,):
        importlib.import_module(f"selnet.cli.{group}").register(sub, common)
    return parser


def _silence_stdout() -> None:
    """After a failed write to stdout, point it at /dev/null so the interpreter's final
    flush of what is still buffered neither fails again nor prints a traceback."""
    try:
        fd = sys.stdout.fileno()
    except (OSError, ValueError, AttributeError):
        return  # not a descriptor: nothing the interpreter flushes at exit can fail on it
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, fd)
        os.close(null)
    except OSError:
        pass


def _fail(args: argparse.Namespace, message: str, code: int) -> int:
    """One line on stderr; under --json the same error as JSON on stdout too."""
    print(f"selnet: {message}", file=sys.stderr)
    if getattr(args, "json", False) and sys.stdout is not None:
        from selnet.render.jsonout import error_json

        try:
            error_json(message, code)
            sys.stdout.flush()
        except OSError:
            _silence_stdout()
    return code


def _write_error(exc: OSError) -> int:
    if isinstance(exc, BrokenPipeError) or exc.errno == errno.EPIPE:
        _silence_stdout()
        return EXIT_OK
    reason = exc.strerror or os.strerror(exc.errno or 0) or str(exc)
    print(f"selnet: cannot write the output: {reason}", file=sys.stderr)
    _silence_stdout()
    return EXIT_BAD_INPUT


def main(argv: Sequence[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(words)
    try:
        args = parser.parse_args(words)
    except SystemExit as exc:  # argparse already printed a one-line usage error
        return EXIT_OK if exc.code == 0 else EXIT_BAD_INPUT
    if sys.stdout is None:  # started with stdout closed
        print("selnet: cannot write the output: standard output is closed", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        validate_args(args)
        func: Handler = args.func
        code = func(args)
        sys.stdout.flush()  # a full disk or a closed descriptor shows here: one line, exit 2
        return code
    except SelnetError as exc:
        return _fail(args, str(exc), exc.exit_code)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_OK
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EBADF, errno.EPIPE, errno.EIO, errno.EDQUOT,
                         errno.EFBIG):
            return _write_error(exc)
        return _fail(args, f"internal error: {type(exc).__name__}: {exc}", EXIT_INTERNAL)
    except Exception as exc:  # never a traceback for the user; keep the cause on one line
        return _fail(args, f"internal error: {type(exc).__name__}: {exc}", EXIT_INTERNAL)
