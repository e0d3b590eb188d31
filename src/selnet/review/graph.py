"""The reachability graph: client domain -> (name_connect) -> port type <- (name_bind) <- server
domain, and, when asked, the labeled-networking edges (peer recv, association) between
domains and the peer / SA labels they accept.

Built from decisions, never from raw rules: the port edges are :func:`matrix_rows` (one
Decider decision per domain x port context), so the graph says what ``selnet check``
says; the labeled edges are Decider decisions on the candidates the rule index gives,
for the checks of the kernel table on the ``peer`` and ``association`` classes.  Typed
nodes and edges out; rendered by :mod:`selnet.render.graph`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import groupby
from operator import attrgetter

from selnet.analyses.profiles import (
    PROTOCOLS,
    MatrixRow,
    Range,
    access_of,
    candidate_targets,
    in_ranges,
    matrix_rows,
    merge_ranges,
    socket_context,
)
from selnet.decide.decision import Decider
from selnet.errors import InputError
from selnet.kernel.checks import CHECKS
from selnet.kernel.classes import INET_SOCKET_CLASSES
from selnet.model.labels import parse_port, port_map
from selnet.policy.index import Policy
from selnet.policy.snapshot import Context

DEFAULT_DEPTH = 2
LABELED_CLASSES = ("peer", "association")
# Node kinds and the edge kinds between them.
DOMAIN, PORT, LABEL = "domain", "port", "label"
NAME_CONNECT, NAME_BIND = "name_connect", "name_bind"


@dataclass(frozen=True, slots=True)
class GraphNode:
    id: str  # "<kind>:<type>": a type can be a domain and a peer label, never two nodes
    kind: str  # domain | port | label (a peer or SA label that is not a domain)
    name: str  # the type
    ports: tuple[tuple[str, tuple[Range, ...]], ...] = ()  # port types: protocol -> ranges
    permissive: bool = False  # a domain the policy does not enforce


@dataclass(frozen=True, slots=True)
class GraphEdge:
    source: str  # node id: always the subject's domain
    target: str  # node id: a port type, or a peer/SA label (a domain node when it is one)
    kind: str  # name_connect | name_bind | peer recv | association <perm>
    protocol: str  # tcp | udp | sctp | dccp for port edges, "" for labeled edges
    ports: tuple[Range, ...]  # the port numbers this edge covers ("" for labeled edges)
    condition: str  # "" unconditional, else the boolean guard (sesearch's syntax)
    allowed_now: bool  # with the booleans as they are
    subject: str  # the socket's type (a type_transition can make it differ from the domain)


@dataclass(frozen=True, slots=True)
class GraphFilter:
    domains: tuple[str, ...] = ()
    ports: tuple[tuple[int, str], ...] = ()
    depth: int = DEFAULT_DEPTH

    @property
    def active(self) -> bool:
        return bool(self.domains or self.ports)


@dataclass(frozen=True, slots=True)
class ReachGraph:
    nodes: tuple[GraphNode, ...]  # domains, then port types, then labels, each sorted
    edges: tuple[GraphEdge, ...]
    labeled: bool
    filter: GraphFilter
    total_nodes: int  # before filtering
    total_edges: int

    def node(self, node_id: str) -> GraphNode:
        for n in self.nodes:
            if n.id == node_id:
                return n
        raise KeyError(node_id)

    def degree(self) -> dict[str, int]:
        out = dict.fromkeys((n.id for n in self.nodes), 0)
        for e in self.edges:
            out[e.source] += 1
            out[e.target] += 1
        return out


def node_id(kind: str, name: str) -> str:
    return f"{kind}:{name}"


# -- building ------------------------------------------------------------------------------
_ROW_KEY = attrgetter("domain", "protocol", "operation", "port_type", "condition",
                      "allowed_now", "socket_type")
_ROW_RANGE = attrgetter("low", "high")
_EDGE_ORDER = attrgetter("source", "target", "kind", "protocol", "ports")


def _port_edges(rows: Iterable[MatrixRow]) -> list[GraphEdge]:
    """Matrix rows (one per port range) grouped into one edge per domain, protocol,
    operation, port type and decision.

    This is the graph's own cost (200,000 rows on the reference policy), so it leans on
    C: the matrix yields each context's ranges one after another, sorted and already
    merged, so groupby makes the edges and only a key seen in two runs (two MLS
    contexts of one type, decided alike) needs its ranges merged."""
    groups: dict[tuple[str, str, str, str, str, bool, str], list[Range]] = {}
    remerge: set[tuple[str, str, str, str, str, bool, str]] = set()
    for key, run in groupby(rows, _ROW_KEY):
        got = groups.get(key)
        if got is None:
            groups[key] = list(map(_ROW_RANGE, run))
        else:
            got.extend(map(_ROW_RANGE, run))
            remerge.add(key)
    out = []
    for key, ranges in groups.items():
        dom, proto, op, ptype, cond, now, sock = key
        merged = tuple(merge_ranges(ranges)) if key in remerge else tuple(ranges)
        out.append(GraphEdge(f"{DOMAIN}:{dom}", f"{PORT}:{ptype}",
                             NAME_BIND if op == "bind" else NAME_CONNECT, proto, merged, cond,
                             now, sock))
    return out


def _port_nodes(policy: Policy, types: set[str]) -> list[GraphNode]:
    """Each port type with every port number that resolves to it, per protocol."""
    pm = port_map(policy)
    ranges: dict[str, dict[str, list[Range]]] = {t: {} for t in types}
    for proto in PROTOCOLS:
        for ctx, rs in pm.ranges(proto).items():
            if ctx.type in ranges:
                ranges[ctx.type].setdefault(proto, []).extend(rs)
    return [
        GraphNode(node_id(PORT, t), PORT, t,
                  tuple((p, tuple(merge_ranges(rs))) for p, rs in ranges[t].items()))
        for t in sorted(types)
    ]


def labeled_checks() -> tuple[tuple[str, str, str], ...]:
    """(class, permission, subject role) of each kernel check on the peer and association
    classes: the table says which exist and whether the task or its socket asks."""
    out: dict[tuple[str, str, str], None] = {}
    for c in CHECKS:
        if c.tclass in LABELED_CLASSES:
            out[(c.tclass, c.perm, c.subject)] = None
    return tuple(sorted(out))


def _labeled_edges(
    policy: Policy, decider: Decider, bools: Mapping[str, bool], domains: Sequence[str],
    domain_set: set[str],
) -> list[GraphEdge]:
    checks = labeled_checks()
    targets_ctx: dict[str, Context] = {}

    def target_context(t: str) -> Context:
        # A peer label is a process's label when it is a domain; else an object's.
        got = targets_ctx.get(t)
        if got is None:
            try:
                got = policy.context_for_domain(t) if t in domain_set else policy.object_context(t)
            except InputError:
                got = policy.object_context(t)
            targets_ctx[t] = got
        return got

    out: list[GraphEdge] = []
    for d in domains:
        try:
            dom = policy.context_for_domain(d)
        except InputError:
            continue
        socks = list(dict.fromkeys(
            socket_context(policy, dom, cls, bools) for cls in sorted(INET_SOCKET_CLASSES)))
        for tclass, perm, role in checks:
            subjects = [dom] if role == "task" else socks
            for subj in subjects:
                for t in sorted(candidate_targets(policy, tclass, subj.type, perm)):
                    acc = access_of(decider.decide(subj, target_context(t), tclass, perm))
                    if not acc.possible:
                        continue
                    tid = node_id(DOMAIN if t in domain_set else LABEL, t)
                    out.append(GraphEdge(node_id(DOMAIN, d), tid, f"{tclass} {perm}", "", (),
                                         acc.condition or "", acc.allowed, subj.type))
    return out


def build_graph(
    policy: Policy,
    bools: Mapping[str, bool] | None = None,
    *,
    labeled: bool = False,
    filt: GraphFilter | None = None,
) -> ReachGraph:
    values = policy.bool_values(None) if bools is None else dict(bools)
    filt = filt or GraphFilter()
    _check_filter(policy, filt)  # bad input fails before the work
    edges = _port_edges(matrix_rows(policy, values))
    if labeled:
        every = policy.domains()
        edges.extend(_labeled_edges(policy, Decider(policy, values), values, every, set(every)))
    edges.sort(key=_EDGE_ORDER)
    ids = {e.source for e in edges} | {e.target for e in edges}
    domain_names = sorted(i.partition(":")[2] for i in ids if i.startswith(DOMAIN + ":"))
    permissive = policy.snap.permissive
    port_types = {i.partition(":")[2] for i in ids if i.startswith(PORT + ":")}
    nodes = [GraphNode(node_id(DOMAIN, d), DOMAIN, d, permissive=d in permissive)
             for d in domain_names]
    nodes += _port_nodes(policy, port_types)
    nodes += [GraphNode(i, LABEL, i.partition(":")[2])
              for i in sorted(i for i in ids if i.startswith(LABEL + ":"))]
    whole = ReachGraph(tuple(nodes), tuple(edges), labeled, GraphFilter(), len(nodes),
                       len(edges))
    return filter_graph(policy, whole, filt) if filt.active else whole


def _check_filter(policy: Policy, filt: GraphFilter) -> None:
    for d in filt.domains:
        policy.context_for_domain(d)  # an unknown name, an attribute, a non-domain: exit 2
    if filt.depth < 0:
        raise InputError(f"--depth must be 0 or more, got {filt.depth}")


def filter_graph(policy: Policy, graph: ReachGraph, filt: GraphFilter) -> ReachGraph:
    """The part of a whole graph that ``filt`` keeps (see :func:`_filtered`)."""
    _check_filter(policy, filt)
    nodes = list(graph.nodes)
    have = {n.id for n in nodes}
    # A queried port's type is shown even when nobody may bind or reach it.
    wanted = {_port_type(policy, p, proto) for p, proto in filt.ports}
    nodes += _port_nodes(policy, {t for t in wanted if node_id(PORT, t) not in have})
    kept_nodes, kept_edges = _filtered(policy, nodes, list(graph.edges), filt)
    return ReachGraph(tuple(kept_nodes), tuple(kept_edges), graph.labeled, filt,
                      graph.total_nodes, graph.total_edges)


def _port_type(policy: Policy, port: int, proto: str) -> str:
    return port_map(policy).lookup(proto, port).context.type


def _filtered(
    policy: Policy, nodes: list[GraphNode], edges: list[GraphEdge], filt: GraphFilter
) -> tuple[list[GraphNode], list[GraphEdge]]:
    """--domain keeps each domain's neighbourhood to --depth hops (edges in either
    direction) with the edges among it; --port keeps the port's type and the edges of
    the domains that may bind or reach that port number.  Filters add up."""
    keep_nodes: set[str] = set()
    keep_edges: set[int] = set()
    if filt.domains:
        adj: dict[str, set[str]] = {}
        for e in edges:
            adj.setdefault(e.source, set()).add(e.target)
            adj.setdefault(e.target, set()).add(e.source)
        near: set[str] = set()
        for d in filt.domains:
            start = node_id(DOMAIN, policy.context_for_domain(d).type)
            seen = {start: 0}
            queue = deque([start])
            while queue:
                cur = queue.popleft()
                if seen[cur] == filt.depth:
                    continue
                for nxt in adj.get(cur, ()):
                    if nxt not in seen:
                        seen[nxt] = seen[cur] + 1
                        queue.append(nxt)
            near |= set(seen)
        keep_nodes |= near
        keep_edges |= {i for i, e in enumerate(edges) if e.source in near and e.target in near}
    for port, proto in filt.ports:
        pid = node_id(PORT, _port_type(policy, port, proto))
        keep_nodes.add(pid)
        for i, e in enumerate(edges):
            if e.target == pid and e.protocol == proto and in_ranges(list(e.ports), port):
                keep_edges.add(i)
                keep_nodes.add(e.source)
    all_ids = {n.id for n in nodes}
    kept = [edges[i] for i in sorted(keep_edges)]
    # A domain asked for that has no network edge at all is still shown.
    extra = [GraphNode(i, DOMAIN, i.partition(":")[2], permissive=i.partition(":")[2]
                       in policy.snap.permissive)
             for i in sorted(keep_nodes - all_ids) if i.startswith(DOMAIN + ":")]
    return [n for n in nodes if n.id in keep_nodes] + extra, kept


def parse_port_filters(items: Iterable[str]) -> tuple[tuple[int, str], ...]:
    """``--port 80``, ``--port 53/udp``: bad input is one line and exit 2."""
    return tuple(dict.fromkeys(parse_port(i) for i in items))


# -- the most-connected part, for pictures of a whole policy ---------------------------------
def top_connected(graph: ReachGraph, limit: int) -> ReachGraph:
    """The ``limit`` most-connected nodes and the edges among them (a whole policy's graph
    is too large to draw usefully).  Ties are broken by name, so the result is stable."""
    if len(graph.nodes) <= limit:
        return graph
    deg = graph.degree()
    keep = set(sorted(deg, key=lambda i: (-deg[i], i))[:limit])
    nodes = tuple(n for n in graph.nodes if n.id in keep)
    edges = tuple(e for e in graph.edges if e.source in keep and e.target in keep)
    return ReachGraph(nodes, edges, graph.labeled, graph.filter, graph.total_nodes,
                      graph.total_edges)
