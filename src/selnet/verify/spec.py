"""What `selnet verify` runs: scenarios from a SPEC.toml (the conformance format) or one trace
given on the command line (``selnet trace``'s step language), checked for what the guest can do.

The guest has only a loopback interface (QEMU runs with ``-nic none``), so every address a
scenario binds, connects or sends to must be a loopback or wildcard address.  A trace given
on the command line gets the peer its program needs (:func:`with_peers`): a listener for a
stream connect, an echo server for a UDP client, a client for a listen + accept (and a
``ready`` mark after listen); a SPEC writes its own ``before``/``after`` peers.
"""

from __future__ import annotations

import ipaddress
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from selnet.errors import InputError
from selnet.verify import scenarios
from selnet.verify.scenarios import Scenario

POLICY = "user"  # the one policy variant: the user's
VARIANTS: dict[str, dict[str, Any]] = {POLICY: {}}
TRACE_NAME = "verify_trace"


@dataclass(frozen=True, slots=True)
class TraceArgs:
    """One trace from the command line (selnet trace's arguments that the guest can make)."""

    domain: str
    steps: tuple[str, ...]
    socket_from: str | None = None
    mode: str = "enforcing"
    bools: dict[str, bool] = field(default_factory=dict)
    sysctl: dict[str, str] = field(default_factory=dict)
    sockcreate: str | None = None
    labeled: str | None = None
    peer: str | None = None
    secmark: str | None = None


class _AnyPolicy(dict[str, dict[str, Any]]):
    """Every policy variant a SPEC names is the user's policy (its ``policy`` keys are
    ignored), with no level of its own: contexts come from the user's policy."""

    def __contains__(self, key: object) -> bool:
        return True

    def __getitem__(self, key: str) -> dict[str, Any]:
        return {}


def load_spec(path: Path) -> list[Scenario]:
    """The scenarios of a SPEC file, all on the user's policy."""
    try:
        found = [replace(s, policy=POLICY) for s in scenarios.load([path], _AnyPolicy())]
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not valid TOML ({exc})") from None
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise InputError(f"{path}: {exc}") from None
    if not found:
        raise InputError(f"{path}: no [[scenario]] or [[matrix]] table")
    for s in found:
        check_guest(s)
    return found


def trace_scenario(t: TraceArgs) -> Scenario:
    """The command line's trace as a scenario, with the peers its program needs."""
    if not t.steps:
        raise InputError("give the steps: sock=tcp bind=127.0.0.1:80 listen accept recv ...")
    if not t.steps[0].startswith("sock="):
        raise InputError(f"a trace starts with sock=KIND, not {t.steps[0]!r}")
    bad = [x for x in t.steps if x.startswith(scenarios.GUEST_ONLY)]
    if bad:
        raise InputError(f"{bad[0]!r} is not a step of selnet trace (selnet verify adds the "
                         "peers and ready marks a program needs; a SPEC file can set them)")
    steps, before, after = with_peers(list(t.steps), t.sysctl)
    s = Scenario(name=TRACE_NAME, policy=POLICY, op="trace", domain=t.domain, mode=t.mode,
                 bools=dict(t.bools), sysctl=dict(t.sysctl), sockcreate=t.sockcreate,
                 labeled=t.labeled, peer=t.peer, secmark=t.secmark, steps=steps,
                 socket_from=t.socket_from, before=before, after=after, source="command line")
    try:
        scenarios.validate(s, VARIANTS)
    except ValueError as exc:
        raise InputError(str(exc).removeprefix("command line: verify_trace: ")) from None
    check_guest(s)
    return s


def _addr(step: str) -> tuple[str, int] | None:
    """The address of bind=/connect=/sendto= (None: unspec, or no address)."""
    _, _, arg = step.partition("=")
    if not arg or arg == "unspec":
        return None
    arg = arg.removeprefix("unspec:")
    try:
        return scenarios.split_hostport(arg)
    except ValueError:
        raise InputError(f"{step}: expected ADDR:PORT") from None


def _loopback_or_any(host: str) -> bool:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback or ip.is_unspecified


def check_guest(s: Scenario) -> None:
    """Refuse what the guest cannot make: a non-loopback address, labeled IPsec."""
    where = "" if s.name == TRACE_NAME else f"{s.name}: "
    hosts: list[str] = []
    if s.op != "trace" and not s.unbound:
        hosts.append(s.hostport[0])
    if s.bind:
        hosts.append(scenarios.bind_hostport(s.bind)[0])  # validate() parsed it already
    for step in [*s.steps, *s.before, *s.after]:
        if step.startswith(("bind=", "connect=", "sendto=", "fastopen=")):
            a = _addr(step)
            if a is not None:
                hosts.append(a[0])
    for h in hosts:
        if not _loopback_or_any(h):
            raise InputError(f"{where}{h}: the guest has only a loopback interface (no network "
                             "device): use 127.0.0.1, ::1 or a wildcard address")


def with_peers(steps: list[str], sysctl: dict[str, str]
               ) -> tuple[list[str], list[str], list[str]]:
    """(the program's steps with a ``ready`` mark where a peer must wait for it, the peer
    started before the test, the peer started once it is ready).  The peers run in the
    kernel type; the test's steps are otherwise unchanged."""
    kind = steps[0].partition("=")[2] if steps and steps[0].startswith("sock=") else ""
    proto = kind.rstrip("6")
    v6 = kind.endswith("6")
    stream = proto in ("tcp", "sctp", "dccp")
    ops = [x.partition("=")[0] for x in steps]
    before: list[str] = []
    after: list[str] = []
    dest = next((a for x in steps if x.startswith(("connect=", "sendto="))
                 for a in [_addr(x)] if a is not None and a[1] != 0), None)
    bound = next((a for x in steps if x.startswith("bind=") and not x.startswith("bind=unspec")
                  for a in [_addr(x)] if a is not None), None)
    if stream and "listen" in ops and "accept" in ops:
        if bound is not None and bound[1] != 0:
            host, port = scenarios.peer_target(bound[0]), bound[1]
            src: list[str] = []
        else:
            low, _, high = sysctl.get("net.ipv4.ip_local_port_range", "").partition(" ")
            if not low or low.strip() != high.strip():
                raise InputError("listen without a port, then accept: give --sysctl "
                                 "net.ipv4.ip_local_port_range=\"P P\" (one port) so the "
                                 "peer knows where to connect")
            host, port = ("::1" if v6 else "127.0.0.1"), int(low)
            # its own port explicit: the one-port local range is the listener's
            src = [f"bind={scenarios.fmt_addr(host, 30001)}"]
        if "ready" not in steps:
            i = ops.index("listen")
            steps = [*steps[: i + 1], "ready", *steps[i + 1:]]
        after = [f"sock={scenarios.sock_kind(proto, host)}", *src,
                 f"connect={scenarios.fmt_addr(host, port)}", "send", "recv", "rstclose"]
    elif stream and dest is not None and "connect" in ops:
        host = scenarios.peer_target(dest[0])
        before = [f"sock={scenarios.sock_kind(proto, host)}", "reuse",
                  f"bind={scenarios.fmt_addr(host, dest[1])}", "listen", "ready=/tmp/ready",
                  "accept=3000", "recv", "send", "sleep=50", "rstclose"]
    elif proto == "udp" and dest is not None and ("recv" in ops or "connect" in ops):
        host = scenarios.peer_target(dest[0])
        before = [f"sock={scenarios.sock_kind(proto, host)}",
                  f"bind={scenarios.fmt_addr(host, dest[1])}", "ready=/tmp/ready",
                  "recv=3000", "send", "close"]
    elif proto == "udp" and bound is not None and bound[1] != 0 and "recv" in ops:
        host = scenarios.peer_target(bound[0])
        if "ready" not in steps:
            i = ops.index("bind")
            steps = [*steps[: i + 1], "ready", *steps[i + 1:]]
        after = [f"sock={scenarios.sock_kind(proto, host)}",
                 f"sendto={scenarios.fmt_addr(host, bound[1])}", "recv=2000", "close"]
    return steps, before, after


def with_contexts(found: Sequence[Scenario], context_for: Callable[[str], str]
                  ) -> list[Scenario]:
    """Each scenario with its domain's (and creator's) full context as the user's policy
    builds it (the harness's guess, system_u:system_r:TYPE, need not be valid there)."""
    return [replace(s, context=context_for(s.domain),
                    creator=context_for(s.socket_from) if s.socket_from else "")
            for s in found]
