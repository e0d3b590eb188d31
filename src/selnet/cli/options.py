"""Options shared by the commands (argparse parents) and the wiring every handler needs."""

from __future__ import annotations

import argparse
import contextlib
import gc
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

from selnet.errors import InputError

if TYPE_CHECKING:
    from selnet.model.env import NetEnv
    from selnet.policy.index import Policy

Handler = Callable[[argparse.Namespace], int]


def policy_parent() -> argparse.ArgumentParser:
    """--policy, --json, --no-cache: every command."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument(
        "--policy", action="append", metavar="PATH",
        help="compiled policy, CIL file (repeat for several) or policy.conf; default: the "
        "running kernel's policy, else the bundled example policy",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the index cache")
    return p


def bool_parent() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--bool", action="append", metavar="NAME=on|off", help="override a boolean")
    return p


def sysctl_parent(helptext: str = "") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument(
        "--sysctl", action="append", metavar="KEY=VALUE",
        help=helptext or 'net.ipv4.ip_local_port_range="LOW HIGH", '
        "net.ipv4.ip_unprivileged_port_start=N",
    )
    return p


_NONEMPTY = ("sockcreate", "peer", "secmark", "netif", "remote", "bind", "type")


def validate_args(args: argparse.Namespace) -> None:
    """Checks on the arguments that need no policy, before any work: an empty value is
    refused (never silently ignored), and an explicit bind's address family must be the
    destination's (bind() of another family is EINVAL/EAFNOSUPPORT in the kernel)."""
    for name in _NONEMPTY:
        if getattr(args, name, None) == "":
            raise InputError(f"--{name} needs a value, got ''")
    bind, endpoint = getattr(args, "bind", None), getattr(args, "endpoint", None)
    if bind and isinstance(endpoint, str):
        from selnet.model.plan import parse_bind, parse_endpoint

        dest = parse_endpoint(endpoint)
        local = parse_bind(bind, dest.proto)
        if local.address.version != dest.address.version:
            raise InputError(
                f"--bind {local.address} is an IPv{local.address.version} address but the "
                f"destination {dest.address} is IPv{dest.address.version}: bind() of another "
                "address family fails (EINVAL/EAFNOSUPPORT)")


def load(args: argparse.Namespace) -> Policy:
    from selnet.policy.loader import load_policy

    def progress() -> None:
        # Long work shows progress: only the first run on a policy builds its index.
        if sys.stderr.isatty():
            print("selnet: indexing the policy (first run on it; cached afterwards)...",
                  file=sys.stderr, flush=True)

    policy = load_policy(args.policy, use_cache=not args.no_cache, on_build=progress)
    if not args.policy and policy.source.origin == "example":
        # An answer about a toy policy must never pass for one about this machine.
        print(example_note(), file=sys.stderr)
    return policy


def example_note() -> str:
    from selnet.policy.source import example_policy_path

    return ("selnet: no --policy and no running SELinux policy: using the bundled example "
            f"policy ({example_policy_path()}); pass --policy to choose one")


def parse_bools(items: list[str] | None) -> dict[str, bool]:
    out: dict[str, bool] = {}
    for item in items or []:
        name, eq, val = item.partition("=")
        v = val.strip().lower()
        if not eq or v not in ("on", "off", "1", "0", "true", "false"):
            raise InputError(f"--bool needs NAME=on|off, got {item!r}")
        out[name.strip()] = v in ("on", "1", "true")
    return out


def env_of(policy: Policy, args: argparse.Namespace) -> NetEnv:
    from selnet.model.env import env_for

    return env_for(policy.source.origin, args.sysctl)


def emit(args: argparse.Namespace, as_json: Callable[[], object],
         lines: Callable[[], Sequence[str]], policy: Policy | None = None) -> None:
    """JSON under --json, else text lines: rendering is always the last step.  Every JSON
    answer names the policy (and modules, and changes) it was decided on."""
    from selnet.render.facts import policy_footer, policy_json, policy_lines

    if args.json:
        from selnet.render.jsonout import SCHEMA_VERSION, emit_json

        obj = as_json()
        if isinstance(obj, dict):
            obj = {"schema_version": SCHEMA_VERSION, **obj}
            if policy is not None and "policy" not in obj:
                obj["policy"] = policy_json(policy)
        emit_json(obj)
    else:
        head = policy_lines(policy) if policy is not None else []
        tail = policy_footer(policy) if policy is not None else []
        sys.stdout.write("\n".join([*head, *lines(), *tail]) + "\n")


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """The cyclic collector off while a whole-policy answer (profile, matrix, diff) is
    computed: it builds ~10 objects per port type and no reference cycles, and each full
    collection rescans everything alive, which made a 10,000-port-type profile
    superlinear (a third of its time); memory is still freed by reference counting.
    On the way out the objects still alive (the policy, its indexes, the answer) are
    frozen out of the collector's generations: the first collection after it comes back
    would otherwise scan them all once more (80 ms at 10,000 port types) for nothing."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.freeze()
            gc.enable()
