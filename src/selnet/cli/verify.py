"""`selnet verify SPEC.toml | DOMAIN STEP...`: the user's scenarios on the real kernel under
QEMU, with the user's policy and modules, against selnet's prediction."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from selnet.cli.check import SYSCTL_HELP
from selnet.cli.options import bool_parent, emit, parse_bools, sysctl_parent
from selnet.cli.trace import STEPS_HELP
from selnet.errors import EXIT_DENIED, EXIT_OK, InputError
from selnet.verify.build import SUITES as KERNEL_SUITES

if TYPE_CHECKING:
    from selnet.policy.index import Policy
    from selnet.verify.scenarios import Scenario


def _progress(msg: str) -> None:
    print(f"selnet verify: {msg}", file=sys.stderr, flush=True)


def predict(policy: Policy, s: Scenario) -> dict[str, Any]:
    """What `selnet trace|connect|listen|bind|send ... --json` prints for the scenario (its
    own command line, parsed by selnet's own parser), decided on ``policy``."""
    from selnet.cli.check import decide_check
    from selnet.cli.main import build_parser
    from selnet.cli.options import validate_args
    from selnet.cli.trace import decide_trace
    from selnet.render.chain import chain_json
    from selnet.render.trace import trace_json

    argv = s.selnet_argv("-")
    try:
        args = build_parser(argv).parse_args(argv)
    except SystemExit:
        raise InputError(f"{s.name}: not a selnet command line: {' '.join(argv)}") from None
    validate_args(args)
    if s.op == "trace":
        return trace_json(decide_trace(policy, args))
    return chain_json(decide_check(policy, args))


def _sysctls(items: list[str] | None) -> dict[str, str]:
    out = {}
    for item in items or []:
        k, eq, v = item.partition("=")
        if not eq:
            raise InputError(f"--sysctl needs KEY=VALUE, got {item!r}")
        k = k.strip()
        out[k if k.startswith("net.") else f"net.ipv4.{k}"] = v.strip().strip('"')
    return out


def cmd_verify(args: argparse.Namespace) -> int:
    from selnet.policy.loader import load_policy
    from selnet.policy.modules import ModuleStore, gen_require_shim, prepare
    from selnet.policy.source import resolve, split_layers
    from selnet.render.verify import verify_json, verify_lines
    from selnet.verify import run, spec

    target = args.target
    if target.endswith(".toml") or (not args.steps and Path(target).is_file()):
        given = [f"--{o.replace('_', '-')}" for o in ("socket_from", "sockcreate", "labeled",
                                                        "peer", "secmark", "bool", "sysctl")
                 if getattr(args, o)] + (["--mode"] if args.mode != "enforcing" else [])
        if args.steps or given:
            raise InputError(f"{target}: a SPEC file takes no steps or "
                             f"{(given or ['trace options'])[0]}: set them in its scenarios")
        found = spec.load_spec(Path(target))
    else:
        found = [spec.trace_scenario(spec.TraceArgs(
            domain=target, steps=tuple(args.steps), socket_from=args.socket_from,
            mode=args.mode, bools=parse_bools(args.bool), sysctl=_sysctls(args.sysctl),
            sockcreate=args.sockcreate, labeled=args.labeled, peer=args.peer,
            secmark=args.secmark))]
    run.require_tools(found, args.install, _progress)

    paths = [*(args.policy or []), *(args.module or [])]
    if args.module and not args.policy:
        raise InputError("--module needs --policy (the base the modules are layered on)")
    user = load_policy(paths or None, use_cache=not args.no_cache)
    found = spec.with_contexts(found, lambda t: str(user.context_for_domain(t)))
    base_paths, module_paths = split_layers(paths)
    source = resolve(base_paths or None, use_cache=not args.no_cache)
    try:
        with ModuleStore(use_cache=not args.no_cache) as store:
            mods = [prepare(Path(p), store) for p in module_paths]
            shim = gen_require_shim((), mods, store)
            inp = run.Inputs(user, source.binary, user.snap.mls,
                             (*shim, *(m.cil for m in mods)), tuple(found))
            result = run.verify(inp, predict,
                                lambda p: load_policy([str(p)], use_cache=not args.no_cache),
                                _progress, use_cache=not args.no_cache, suite=args.kernel)
    finally:
        source.cleanup()
    emit(args, lambda: verify_json(result), lambda: verify_lines(result, args.full), user)
    return EXIT_OK if result.agree else EXIT_DENIED


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser],
             common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "verify", parents=[bool_parent(), sysctl_parent(SYSCTL_HELP), common],
        help="run scenarios on the real kernel under QEMU with your policy and compare with "
        "selnet's prediction")
    p.add_argument("target", metavar="SPEC.toml|DOMAIN",
                   help="a scenario file (the conformance format; its policy keys are ignored) "
                   "or the domain of one trace")
    p.add_argument("steps", nargs="*", metavar="STEP", help=f"the trace's steps: {STEPS_HELP}")
    p.add_argument("--module", action="append", metavar="FILE",
                   help="a module layered on --policy (.cil, .te, .pp; repeatable)")
    p.add_argument("--socket-from", metavar="CONTEXT",
                   help="the socket was created by this domain (as selnet trace)")
    p.add_argument("--mode", choices=("enforcing", "permissive"), default="enforcing",
                   help="the guest's SELinux mode for the trace (default enforcing)")
    p.add_argument("--sockcreate", metavar="CONTEXT",
                   help="socket label set with setsockcreatecon")
    p.add_argument("--labeled", choices=("netlabel",),
                   help="a NetLabel static label for loopback traffic (--peer)")
    p.add_argument("--peer", metavar="CONTEXT", help="the NetLabel static peer label")
    p.add_argument("--secmark", metavar="CONTEXT",
                   help="SECMARK label set on every packet (nftables)")
    p.add_argument("--kernel", choices=tuple(KERNEL_SUITES), metavar="SUITE",
                   help="the Debian suite whose kernel the guest boots: "
                   f"{', '.join(f'{k} ({v})' for k, v in KERNEL_SUITES.items())}; default the "
                   "host's own archive (fetched and verified into the cache, never installed)")
    p.add_argument("--install", action="store_true",
                   help="install the missing host packages (QEMU, busybox-static, gcc, cpio) "
                   "with apt-get; without it selnet only names the command")
    p.add_argument("--full", action="store_true",
                   help="every statement the harness adds, every scenario's steps")
    p.set_defaults(func=cmd_verify)
