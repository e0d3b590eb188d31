"""`selnet generate NAME`: a module from a network spec, written only once verified."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from selnet.cli.options import bool_parent, emit, env_of, load, parse_bools, sysctl_parent
from selnet.cli.output import write_text
from selnet.errors import EXIT_DENIED, EXIT_OK, InputError


def cmd_generate(args: argparse.Namespace) -> int:
    from selnet.generate.module import generate
    from selnet.generate.spec import parse_ops, read_spec
    from selnet.render.generate import (
        fc_text,
        generate_json,
        generate_lines,
        if_text,
        script_text,
        te_text,
    )

    name = args.name
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,40}", name):
        raise InputError(f"module name {name!r}: lower-case letters, digits and _ only")
    ops = parse_ops(args.bind or [], args.connect or [], args.send or [])
    if args.spec:
        ops = [*ops, *read_spec(Path(args.spec))]
    if not ops:
        raise InputError("nothing to generate: give --bind, --connect, --send or --spec")
    outdir = Path(args.output)
    if not outdir.is_dir():
        raise InputError(f"-o {outdir}: not a directory")
    overrides = parse_bools(args.bool)
    policy = load(args)
    g, cil = generate(policy, name, ops, env_of(policy, args), policy.bool_values(overrides))
    files: dict[str, str] = {}
    if args.format in ("cil", "both"):
        files[f"{name}.cil"] = cil
    if args.format in ("te", "both"):
        files[f"{name}.te"] = te_text(g)
        files[f"{name}.if"] = if_text(g)
        files[f"{name}.fc"] = fc_text(g)
    files[f"{name}.sh"] = script_text(g, f"{name}.cil" if args.format != "te" else f"{name}.pp")
    for fname, text in files.items():
        write_text(outdir / fname, text)
    paths = [str(outdir / f) for f in files]
    emit(args, lambda: generate_json(g, paths), lambda: generate_lines(g, paths), policy)
    return EXIT_OK if g.all_allowed and not g.beyond_spec else EXIT_DENIED


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser],
             common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("generate", parents=[bool_parent(), sysctl_parent(), common],
                       help="a module for a service's network needs, verified on the base")
    p.add_argument("name", help="module name; the domain is NAME_t")
    p.add_argument("--bind", action="append", metavar="PORT/PROTO", help="serve on this port")
    p.add_argument("--connect", action="append", metavar="PORT/PROTO|SERVICE",
                   help="reach this port (or dns, http, https, ntp, smtp, syslog)")
    p.add_argument("--send", action="append", metavar="PORT/udp", help="send datagrams there")
    p.add_argument("--spec", metavar="FILE", help='TOML: bind = ["8443/tcp"], connect = [...]')
    p.add_argument("--format", choices=("te", "cil", "both"), default="both")
    p.add_argument("--output", "-o", metavar="DIR", default=".", help="where to write")
    p.set_defaults(func=cmd_generate)
