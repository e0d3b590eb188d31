"""`selnet explain DOMAIN`: the policy writer's four-layer question, answered for a domain.

"A TCP client needs socket permissions on itself, netif {tcp_send tcp_recv egress
ingress}, node {tcp_send tcp_recv sendto recvfrom}, port {send_msg recv_msg
name_connect}: is that right?  How does a server differ?  Can it serve without
connecting out?"  Every permission of the four layers is judged against the kernel check
table (checked on which syscall, with which subject, under which condition, or never
since 2.6.30) and against this policy (does it still declare it; does the domain have it).
Chains for the domain's typical operations come from the model, the ports from its
profile, the minimal policy from the fix engine's interface index.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from selnet.analyses.porttypes import PolicyFacts
from selnet.analyses.profiles import DomainProfile, Range, domain_profile
from selnet.decide.chain import ChainResult, evaluate
from selnet.fix.interfaces import InterfaceIndex
from selnet.kernel.checks import CHECKS, KernelCheck
from selnet.kernel.classes import obsolete_reason
from selnet.model.env import NetEnv
from selnet.model.plan import Endpoint, Scenario
from selnet.policy.index import Policy

# The four layers of the question, with the permissions people ask about.
LAYERS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("socket", "tcp_socket", ("create", "bind", "listen", "accept", "connect", "read", "write",
                              "getattr", "setopt", "getopt", "shutdown", "ioctl")),
    ("netif", "netif", ("tcp_send", "tcp_recv", "egress", "ingress")),
    ("node", "node", ("tcp_send", "tcp_recv", "sendto", "recvfrom")),
    ("port", "tcp_socket", ("send_msg", "recv_msg", "name_bind", "name_connect")),
)
# Socket permissions refpolicy's macros grant that no network syscall checks: they are
# checked on the socket's file descriptor by the file hooks, or never for sockets.
FILE_SIDE = {
    "append": "file hooks on the socket fd (write with O_APPEND); not a network syscall",
    "setattr": "file hooks (fchmod/fchown on the socket fd); not a network syscall",
    "lock": "file hooks (flock on the socket fd); not a network syscall",
    "map": "file hooks (mmap of the socket fd)",
    "relabelfrom": "setxattr on the socket's inode (relabeling); not a network syscall",
    "relabelto": "setxattr on the socket's inode (relabeling); not a network syscall",
}
MACROS = ("create_socket_perms", "create_stream_socket_perms", "connected_stream_socket_perms",
          "rw_socket_perms")
OBJ_PERM_SETS = Path("/usr/share/selinux/devel/include/support/obj_perm_sets.spt")


@dataclass(frozen=True, slots=True)
class Judged:
    """One permission of the question, judged against the kernel and this policy."""

    layer: str
    tclass: str
    perm: str
    checks: tuple[KernelCheck, ...]  # the kernel checks that use it (none: never checked)
    obsolete: str | None  # why a current kernel never checks it
    declared: bool  # this policy still declares it
    granted: bool  # some rule of the domain (or its socket type) grants it, any target

    @property
    def conditional(self) -> bool:
        """Checked only with labeled networking or SECMARK (the per-packet checks)."""
        return bool(self.checks) and all(c.step in ("rx", "tx") for c in self.checks)


@dataclass(frozen=True, slots=True)
class MacroPerm:
    perm: str
    checks: tuple[KernelCheck, ...]
    file_side: str | None


@dataclass(frozen=True, slots=True)
class Serving:
    """Can the domain serve on its ports without being able to connect out?"""

    bind: dict[str, tuple[Range, ...]]  # protocol -> ports it may bind now (name_bind)
    connect: tuple[Range, ...]  # tcp ports it may reach now (name_connect)
    joining: tuple[str, ...]  # booleans that would give it name_connect too
    can_serve_without_connecting: bool


@dataclass(frozen=True, slots=True)
class DomainExplanation:
    domain: str
    layers: tuple[Judged, ...]
    server_chains: tuple[ChainResult, ...]
    client_chains: tuple[ChainResult, ...]
    serving: Serving
    macros: dict[str, tuple[MacroPerm, ...]]  # refpolicy macro -> its permissions, judged
    interfaces: tuple[str, ...]  # the minimal refpolicy interfaces for its own ports
    cil: tuple[str, ...]  # the same, as CIL rules
    profile: DomainProfile


def _judge(policy: Policy, domain: str, subjects: Sequence[str]) -> list[Judged]:
    out = []
    for layer, tclass, perms in LAYERS:
        declared = policy.snap.classes.get(tclass, frozenset())
        for perm in perms:
            checks = tuple(c for c in CHECKS if c.matches(tclass, perm))
            granted = any(perm in r.perms and r.ruletype == "allow"
                          for s in subjects for r in policy.rules_from(tclass, s))
            out.append(Judged(layer, tclass, perm, checks, obsolete_reason(tclass, perm),
                              perm in declared, granted))
    return out


def macro_perms(path: Path = OBJ_PERM_SETS) -> dict[str, tuple[str, ...]]:
    """refpolicy's socket permission macros, expanded (support/obj_perm_sets.spt)."""
    try:
        text = path.read_text()
    except OSError:
        return {}
    defs = {m.group(1): m.group(2).split()
            for m in re.finditer(r"define\(`(\w+)',\s*`\{([^}]*)\}'\)", text)}

    def expand(name: str, seen: frozenset[str] = frozenset()) -> list[str]:
        out: list[str] = []
        for word in defs.get(name, []):
            if word in defs and word not in seen:
                out += expand(word, seen | {name})
            else:
                out.append(word)
        return out

    return {m: tuple(dict.fromkeys(expand(m))) for m in MACROS if m in defs}


def _ports_of(ranges: Mapping[str, Sequence[Range]]) -> list[tuple[str, int]]:
    return [(proto, rs[0][0]) for proto, rs in ranges.items() if rs]


def explain_domain(policy: Policy, domain: str, bools: Mapping[str, bool] | None = None,
                   env: NetEnv | None = None, *, interfaces: object | None = None,
                   max_chains: int = 3) -> DomainExplanation:
    env = env or NetEnv()
    values = policy.bool_values(None) if bools is None else dict(bools)
    prof = domain_profile(policy, domain, values, env)
    dom = policy.context_for_domain(domain)
    subjects = list(dict.fromkeys([dom.type, *(s.socket.split(":")[2] for s in prof.server)]))
    layers = _judge(policy, dom.type, subjects)
    any4 = ipaddress.IPv4Address("0.0.0.0")
    lo = ipaddress.IPv4Address("127.0.0.1")
    # Its own server ports: the port types it may bind (first port of each), tcp then udp.
    server: list[ChainResult] = []
    for side in prof.server:
        for grant in side.name_bind:
            if len(server) >= max_chains:
                break
            if grant.access.allowed and grant.ranges:
                ep = Endpoint(any4, grant.ranges[0][0], side.protocol)
                server.append(evaluate(policy, Scenario("listen", dom, ep, env), values))
    client: list[ChainResult] = []
    tcp = next((c for c in prof.client if c.protocol == "tcp"), None)
    generic = PolicyFacts(policy).generic
    if tcp is not None:
        # the services it reaches by name first: not generic types, few ports
        ordered = sorted(tcp.name_connect, key=lambda g: (g.type in generic, sum(
            hi - lo + 1 for lo, hi in g.ranges), g.type))
        for grant in ordered:
            if len(client) >= max_chains:
                break
            if grant.access.allowed and grant.ranges and grant.type not in ("port_t",):
                ep = Endpoint(lo, grant.ranges[0][0], "tcp")
                client.append(evaluate(policy, Scenario("connect", dom, ep, env), values))
    bind = {s.protocol: s.name_bind_ports for s in prof.server if s.name_bind_ports}
    connect = tcp.name_connect_ports if tcp is not None else ()
    joining = tuple(sorted({b.name for b in prof.booleans for ch in b.when_on
                            if ch.what.endswith("name_connect")}))
    serving = Serving(bind, tuple(connect), joining, bool(bind))
    table = macro_perms()
    macros = {m: tuple(MacroPerm(p, tuple(c for c in CHECKS if c.matches("tcp_socket", p)
                                          and c.subject == "task"), FILE_SIDE.get(p))
                       for p in perms)
              for m, perms in table.items()}
    ifaces, cil = _minimal(policy, dom.type, prof, interfaces)
    return DomainExplanation(dom.type, tuple(layers), tuple(server), tuple(client), serving,
                             macros, ifaces, cil, prof)


def _minimal(policy: Policy, domain: str, prof: DomainProfile,
             interfaces: object | None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The narrowest grants for the domain's own ports (the port types its rules name
    directly): refpolicy interfaces when the headers are there, and CIL."""
    needs: list[tuple[str, str, str]] = []
    for side in prof.server:
        for g in side.name_bind:
            if g.access.allowed and g.type not in ("port_t",) and len(g.ranges) <= 8:
                needs.append((g.type, side.sclass, "name_bind"))
    for cside in prof.client:
        for g in cside.name_connect:
            if g.access.allowed and len(g.ranges) <= 8 and g.access.condition == "":
                needs.append((g.type, cside.sclass, "name_connect"))
    needs = list(dict.fromkeys(needs))[:8]
    cil = tuple(f"(allow {domain} {t} ({c} ({p})))" for t, c, p in needs)
    ifaces: tuple[str, ...] = ()
    ifx = interfaces if interfaces is not None else InterfaceIndex.load()
    if isinstance(ifx, InterfaceIndex) and needs:
        plan = ifx.find_for_rules(needs, target_attrs={})
        ifaces = tuple(m.call(domain) for m in plan.matches)
    return ifaces, cil
