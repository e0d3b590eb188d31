"""What ``selnet report`` shows, computed: the policy's summary, every domain's exposure
(from the reachability graph, so from Decider decisions), the most exposed domains in
detail (their :func:`domain_profile` with the rules that grant each port), the graph's
most-connected part, and a :class:`PolicyDiff` when one is given.

Bounded for a whole policy: one graph build (the matrix), ``top`` profiles, one drawing
of at most ``graph_limit`` nodes.  Rendered by :mod:`selnet.render.report`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass

from selnet.analyses.profiles import (
    PROTOCOLS,
    BooleanEffect,
    DomainProfile,
    Range,
    domain_profile,
    merge_ranges,
    subtract_ranges,
)
from selnet.decide.decision import Decider
from selnet.errors import InputError
from selnet.policy.index import Policy
from selnet.policy.snapshot import Context
from selnet.review.graph import (
    DOMAIN,
    NAME_BIND,
    NAME_CONNECT,
    PORT,
    ReachGraph,
    build_graph,
    top_connected,
)
from selnet.review.types import PolicyDiff

DEFAULT_TOP = 20
GRAPH_LIMIT = 30  # nodes drawn for a whole policy: more is a hairball nobody can read
_NAME = re.compile(r"[A-Za-z_][\w.-]*")


@dataclass(frozen=True, slots=True)
class PolicySummary:
    name: str
    sha256: str
    mls: bool
    domains: int
    network_domains: int  # domains with some name_bind/name_connect, now or under a boolean
    port_types: int  # types some port number resolves to (the port initial SID included)
    portcons: int
    booleans: int


@dataclass(frozen=True, slots=True)
class Exposure:
    """One domain's port-level exposure, per protocol, from the graph's edges."""

    domain: str
    permissive: bool
    server: tuple[tuple[str, tuple[Range, ...]], ...]  # name_bind allowed now
    client: tuple[tuple[str, tuple[Range, ...]], ...]  # name_connect allowed now
    server_if: tuple[tuple[str, tuple[Range, ...]], ...]  # only under some boolean setting
    client_if: tuple[tuple[str, tuple[Range, ...]], ...]
    port_types: int
    booleans: tuple[str, ...]  # named in the conditions of its conditional edges

    @property
    def score(self) -> tuple[int, int]:
        """(port, protocol) pairs allowed now (bind and reach), then those booleans add."""
        return (_count(self.server) + _count(self.client),
                _count(self.server_if) + _count(self.client_if))

    @property
    def counts(self) -> tuple[int, int, int, int]:
        """Ports it may bind now, reach now, bind under booleans, reach under booleans."""
        return (_count(self.server), _count(self.client), _count(self.server_if),
                _count(self.client_if))


@dataclass(frozen=True, slots=True)
class Grant:
    """One port type a detailed domain may bind or reach, with the rules that grant it."""

    protocol: str
    operation: str  # name_bind | name_connect
    port_type: str
    ports: tuple[Range, ...]
    allowed_now: bool
    condition: str  # "" unconditional
    constraint: str | None  # a constraint denies it even with the rule
    rules: tuple[str, ...]  # the allow rules, as sesearch prints them


@dataclass(frozen=True, slots=True)
class DomainDetail:
    exposure: Exposure
    profile: DomainProfile | None  # None when the profile could not be built (``error``)
    grants: tuple[Grant, ...]
    widening: tuple[BooleanEffect, ...]  # booleans whose flip grants more
    error: str = ""


@dataclass(frozen=True, slots=True)
class PolicyReport:
    summary: PolicySummary
    exposures: tuple[Exposure, ...]  # every domain with network access, most exposed first
    details: tuple[DomainDetail, ...]  # the first ``top`` of them
    graph: ReachGraph  # what is drawn: the whole graph, or its most-connected part
    graph_whole: bool
    left_out: tuple[str, ...]  # domains not drawn because they reach nearly every port type
    diff: PolicyDiff | None
    seconds: float


def _count(per_proto: tuple[tuple[str, tuple[Range, ...]], ...]) -> int:
    return sum(hi - lo + 1 for _, rs in per_proto for lo, hi in rs)


def _per_proto(got: dict[str, list[Range]]) -> tuple[tuple[str, tuple[Range, ...]], ...]:
    return tuple((p, tuple(merge_ranges(got[p]))) for p in PROTOCOLS if got.get(p))


def exposures(policy: Policy, graph: ReachGraph) -> list[Exposure]:
    by_domain: dict[str, dict[str, dict[str, list[Range]]]] = {}
    types: dict[str, set[str]] = {}
    names: dict[str, set[str]] = {}
    bools = policy.snap.booleans
    for e in graph.edges:
        if e.kind not in (NAME_BIND, NAME_CONNECT):
            continue
        d = e.source.partition(":")[2]
        side = ("server" if e.kind == NAME_BIND else "client") + ("" if e.allowed_now else "_if")
        by_domain.setdefault(d, {}).setdefault(side, {}).setdefault(e.protocol, []).extend(
            e.ports)
        types.setdefault(d, set()).add(e.target)
        if e.condition:
            names.setdefault(d, set()).update(
                n for n in _NAME.findall(e.condition) if n in bools)
    out = []
    for d, sides in by_domain.items():
        now = {k: _per_proto(sides.get(k, {})) for k in ("server", "client")}
        extra = {}
        for k in ("server", "client"):
            # Under a boolean only: what the boolean adds beyond what is allowed now.
            got: dict[str, list[Range]] = {}
            for proto, rs in sides.get(k + "_if", {}).items():
                left = merge_ranges(rs)
                for cut in dict(now[k]).get(proto, ()):
                    left = subtract_ranges(left, cut)
                if left:
                    got[proto] = left
            extra[k] = _per_proto(got)
        out.append(Exposure(d, d in policy.snap.permissive, now["server"], now["client"],
                            extra["server"], extra["client"], len(types[d]),
                            tuple(sorted(names.get(d, ())))))
    out.sort(key=lambda x: (-x.score[0], -x.score[1], x.domain))
    return out


def _grants(policy: Policy, decider: Decider, prof: DomainProfile) -> list[Grant]:
    """Each name_bind/name_connect grant of the profile with its deciding allow rules."""
    out = []
    sides = [(s.protocol, s.sclass, s.socket, NAME_BIND, s.name_bind) for s in prof.server]
    sides += [(c.protocol, c.sclass, c.socket, NAME_CONNECT, c.name_connect) for c in prof.client]
    for proto, sclass, sock, perm, grants in sides:
        scon = Context.parse(sock)
        for g in grants:
            d = decider.decide(scon, Context.parse(g.context), sclass, perm)
            rules = tuple(dict.fromkeys(x.rule.sesearch() for x in d.grants
                                        if x.rule.ruletype == "allow"))
            out.append(Grant(proto, perm, g.type, g.ranges, g.access.allowed,
                             g.access.condition or "", g.access.constraint, rules))
    return out


def summary(policy: Policy, network_domains: int) -> PolicySummary:
    snap = policy.snap
    port_types = {pc.context.type for pc in snap.portcons}
    initial = snap.initial_sids.get("port")
    if initial is not None:
        port_types.add(initial.type)
    return PolicySummary(policy.name(), policy.base.snap.sha256, snap.mls, len(policy.domains()),
                         network_domains, len(port_types), len(snap.portcons),
                         len(snap.booleans))


EVERYWHERE = 0.9  # a domain with edges to this share of the port types is "everywhere"


def drawable(graph: ReachGraph, limit: int) -> tuple[ReachGraph, tuple[str, ...]]:
    """What a picture of the graph can show: the whole graph when small; else its
    ``limit`` most-connected nodes once the domains that reach nearly every port type
    (unconfined ones: they would connect every drawn port to every drawn domain, and
    are listed instead) are set aside."""
    if len(graph.nodes) <= limit:
        return graph, ()
    ports = sum(1 for n in graph.nodes if n.kind == PORT)
    reach: dict[str, set[str]] = {}
    for e in graph.edges:
        if e.kind in (NAME_BIND, NAME_CONNECT) and e.allowed_now:
            reach.setdefault(e.source, set()).add(e.target)
    everywhere = {d for d, ts in reach.items() if ports and len(ts) >= EVERYWHERE * ports}
    # Only what is allowed now: a boolean such as httpd_can_network_connect joins a
    # domain to every port type, which a picture cannot show apart from the rest.
    rest = ReachGraph(
        tuple(n for n in graph.nodes if n.id not in everywhere),
        tuple(e for e in graph.edges if e.source not in everywhere and e.allowed_now),
        graph.labeled, graph.filter, graph.total_nodes, graph.total_edges)
    return top_connected(rest, limit), tuple(sorted(d.partition(":")[2] for d in everywhere))


def build_report(
    policy: Policy,
    bools: Mapping[str, bool] | None = None,
    *,
    top: int = DEFAULT_TOP,
    graph_limit: int = GRAPH_LIMIT,
    diff: PolicyDiff | None = None,
) -> PolicyReport:
    start = time.perf_counter()
    values = policy.bool_values(None) if bools is None else dict(bools)
    graph = build_graph(policy, values)
    exp = exposures(policy, graph)
    decider = Decider(policy, values)
    details = []
    for x in exp[:top]:
        try:
            prof = domain_profile(policy, x.domain, values)
        except (KeyError, InputError) as exc:
            # One domain's profile failing (kernel_t's kernel sockets make no task ->
            # socket checks, which domain_profile expects) must not lose the whole page.
            details.append(DomainDetail(x, None, (), (), f"{type(exc).__name__}: {exc}"))
            continue
        # Booleans whose flip from the current value grants more.
        widening = tuple(b for b in prof.booleans if (b.when_off if b.current else b.when_on))
        details.append(DomainDetail(x, prof, tuple(_grants(policy, decider, prof)), widening))
    drawn, left_out = drawable(graph, graph_limit)
    return PolicyReport(
        summary(policy, sum(1 for n in graph.nodes if n.kind == DOMAIN)),
        tuple(exp),
        tuple(details),
        drawn,
        drawn is graph,
        left_out,
        diff,
        time.perf_counter() - start,
    )
