"""Network profiles: what a domain may do as server and client, who may bind or reach a
port, and the whole policy as a domain x port matrix (issue #4).

Pure computation: a :class:`Policy`, booleans and a :class:`NetEnv` in, dataclasses out.
Every verdict is a :class:`~selnet.decide.decision.Decider` decision.  The rule index is used only
to find the *candidate* targets (the expanded targets of the rules whose source covers the
subject): a pair no rule mentions has no grant, so Decider would deny it anyway.

Ports are resolved once per policy into a :class:`~selnet.model.labels.PortMap`: per protocol, intervals
covering 1-65535, each with the context the kernel's first-match lookup gives
(kernel-network-checks.md 6.1; the ``port`` initial SID fills the gaps).  Permissions are
then decided per distinct port *context* (type and level), never per port number.
"""

from __future__ import annotations

import ipaddress
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

# moved to analyses.decisions (the fix engine imports them without the profiles); re-exported
from selnet.analyses.decisions import Access as Access
from selnet.analyses.decisions import Decisions as Decisions
from selnet.analyses.decisions import Range as Range
from selnet.analyses.decisions import access_of as access_of
from selnet.analyses.decisions import candidate_subjects as candidate_subjects
from selnet.analyses.decisions import candidate_targets as candidate_targets
from selnet.analyses.decisions import defined as defined
from selnet.analyses.decisions import grant_condition as grant_condition
from selnet.analyses.decisions import in_ranges as in_ranges
from selnet.analyses.decisions import merge_ranges as merge_ranges
from selnet.analyses.decisions import ranges_text as ranges_text
from selnet.analyses.decisions import rule_condition as rule_condition
from selnet.analyses.decisions import subtract_ranges as subtract_ranges
from selnet.decide.decision import Decider, Decision
from selnet.errors import InputError
from selnet.kernel.classes import (
    INET_SOCKET_CLASSES,
    NAME_CONNECT_CLASSES,
    PACKET_CLASSES,
    PORT_PROTOCOLS,
    obsolete_reason,
    socket_class,
)
from selnet.model.env import NetEnv
from selnet.model.labels import LabelResult, node_label, port_label, port_map
from selnet.model.plan import CheckPlan, Endpoint, KernelModel, Scenario, socket_label
from selnet.notes import Note, note
from selnet.policy.index import Policy
from selnet.policy.snapshot import AVRule, Context

PROTOCOLS = PORT_PROTOCOLS
# The steps of a server's and a client's plan whose socket permissions a profile shows.
SERVER_STEPS = ("socket", "bind", "listen", "accept")
CLIENT_STEPS = ("socket", "connect", "send", "recv")


# -- subjects and candidates ------------------------------------------------------------------
def socket_context(
    policy: Policy, domain: Context, sclass: str, bools: Mapping[str, bool]
) -> Context:
    """The label of a socket the domain creates (no setsockcreatecon)."""
    return socket_label(policy, domain, sclass, bools)[0]


# -- the domain profile --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PortGrant:
    type: str
    context: str
    ranges: tuple[Range, ...]
    access: Access


@dataclass(frozen=True, slots=True)
class NodeGrant:
    type: str
    context: str
    addresses: tuple[str, ...]  # nodecon address/prefix, or "every other address"
    access: Access


@dataclass(frozen=True, slots=True)
class ServerSide:
    protocol: str
    sclass: str
    socket: str  # the socket's context (subject of name_bind/node_bind)
    socket_perms: dict[str, Access]  # create bind listen accept (task -> socket)
    name_bind: tuple[PortGrant, ...]  # allowed now, under a boolean, or blocked by a constraint
    name_bind_ports: tuple[Range, ...]  # allowed now
    no_name_bind: Range  # ip_local_port_range: bind() there checks no name_bind
    node_bind: tuple[NodeGrant, ...]
    bindable: tuple[Range, ...]  # bind() to 0.0.0.0:port passes every check now


@dataclass(frozen=True, slots=True)
class ClientSide:
    protocol: str
    sclass: str
    socket: str
    socket_perms: dict[str, Access]  # create connect write read
    port_checked: bool  # False: no name_connect for this class
    name_connect: tuple[PortGrant, ...]
    name_connect_ports: tuple[Range, ...]
    reachable: tuple[Range, ...]  # connect() + write/read pass now (no labeled networking)


@dataclass(frozen=True, slots=True)
class LabeledGrant:
    tclass: str
    perm: str
    subject: str  # the domain or one of its socket types
    targets: tuple[str, ...]
    condition: str  # "" unconditional


@dataclass(frozen=True, slots=True)
class ObsoleteGrant:
    tclass: str
    perm: str
    rule: str
    reason: str


@dataclass(frozen=True, slots=True)
class BooleanChange:
    what: str  # e.g. "tcp name_bind", "udp socket create", "capability net_bind_service"
    type: str | None  # the port/node type, if any
    ranges: tuple[Range, ...]


@dataclass(frozen=True, slots=True)
class BooleanEffect:
    name: str
    current: bool
    when_on: tuple[BooleanChange, ...]  # allowed with it on, not with it off
    when_off: tuple[BooleanChange, ...]  # allowed with it off, not with it on


@dataclass(frozen=True, slots=True)
class DomainProfile:
    domain: str
    env: NetEnv
    capabilities: dict[str, Access]
    server: tuple[ServerSide, ...]
    client: tuple[ClientSide, ...]
    unrestricted_clients: tuple[str, ...]  # protocols SELinux never port-checks
    other_sockets: dict[str, dict[str, Access]]  # rawip_socket/icmp_socket: create connect
    labeled: tuple[LabeledGrant, ...]
    obsolete: tuple[ObsoleteGrant, ...]
    booleans: tuple[BooleanEffect, ...]
    notes: tuple[Note, ...]


# An entry is one decision of the profile; booleans are re-decided entry by entry.
EntryKey = tuple[str, ...]


@dataclass(slots=True)
class _Entry:
    key: EntryKey  # ("name_bind", proto, type) ("node_bind", proto, type) ("sock", cls, perm)...
    scon: Context
    tcon: Context
    tclass: str
    perm: str
    sig: tuple[object, ...]  # Decisions.key: entries with the same sig decide alike
    access: Access = field(default=Access(False, None, "no-rule", None))




class _Profiler:
    def __init__(
        self, policy: Policy, domain: Context, bools: Mapping[str, bool], env: NetEnv
    ) -> None:
        self.policy = policy
        self.domain = domain
        self.bools = dict(bools)
        self.env = env
        self.decisions = Decisions(policy, self.bools)
        self.ports = port_map(policy)
        self.entries: dict[EntryKey, _Entry] = {}
        self.polcaps = policy.snap.polcaps

    # -- deciding ---------------------------------------------------------------------
    def decide(self, key: EntryKey, scon: Context, tcon: Context, tclass: str, perm: str) -> Access:
        sig = self.decisions.key(scon, tcon, tclass, perm)
        acc = self.decisions.access_as(sig, scon, tcon, tclass, perm)
        self.entries[key] = _Entry(key, scon, tcon, tclass, perm, sig, acc)
        return acc

    def sock(self, proto: str) -> tuple[str, Context]:
        sclass = socket_class(proto, self.polcaps)
        return sclass, socket_context(self.policy, self.domain, sclass, self.bools)

    def plan(self, operation: str, proto: str) -> CheckPlan:
        """The model's plan for one operation on a port that needs every port check.

        Profiles take the structure of the checks (which socket permissions each step
        needs, whether the port is checked at all) from the model, then decide the
        port- and node-typed checks per label."""
        env = NetEnv(self.env.local_port_range, self.env.unprivileged_port_start,
                     userns=self.env.userns)
        ep = Endpoint(ipaddress.IPv4Address("127.0.0.1"), 1, proto)
        return KernelModel(self.policy, self.bools).plan(Scenario(operation, self.domain, ep, env))

    def plan_sock_perms(self, plan: CheckPlan, steps: tuple[str, ...]) -> dict[str, Access]:
        perms = [c.perm for c in plan.checks
                 if c.step in steps and c.spec.subject == "task" and c.spec.target == "socket"]
        return self.sock_perms(plan.sclass, plan.sock, dict.fromkeys(perms))

    def sock_perms(self, sclass: str, sock: Context, perms: Iterable[str]) -> dict[str, Access]:
        return {p: self.decide(("sock", sclass, p), self.domain, sock, sclass, p) for p in perms}

    def port_grants(self, proto: str, sclass: str, sock: Context, perm: str) -> list[PortGrant]:
        by_ctx = self.ports.context_ranges(proto)
        if defined(self.policy, sclass, perm):
            cands = candidate_targets(self.policy, sclass, sock.type, perm)
            ctxs = [c for c in by_ctx if c.type in cands]
        else:
            ctxs = list(by_ctx)  # handle_unknown decides: every port alike
        out = []
        for ctx in ctxs:
            text = str(ctx)
            acc = self.decide((perm, proto, ctx.type, text), sock, ctx, sclass, perm)
            if acc.allowed or acc.condition is not None:
                out.append(PortGrant(ctx.type, text, by_ctx[ctx], acc))
        return out

    def node_grants(self, proto: str, sclass: str, sock: Context) -> list[NodeGrant]:
        out = []
        for ctx, addrs in node_contexts(self.policy).items():
            acc = self.decide(
                ("node_bind", proto, ctx.type, str(ctx)), sock, ctx, sclass, "node_bind"
            )
            if acc.allowed or acc.condition is not None:
                out.append(NodeGrant(ctx.type, str(ctx), tuple(addrs), acc))
        return out

    def capability(self, cap: str) -> Access:
        return self.decide(("cap", cap), self.domain, self.domain, "capability", cap)

    # -- sides --------------------------------------------------------------------------
    def server(self, proto: str, cap_ok: bool) -> ServerSide:
        plan = self.plan("listen", proto)
        sclass, sock = plan.sclass, plan.sock
        sp = self.plan_sock_perms(plan, SERVER_STEPS)
        nb = self.port_grants(proto, sclass, sock, "name_bind")
        nb_ports = merge_ranges(r for g in nb if g.access.allowed for r in g.ranges)
        nodes = self.node_grants(proto, sclass, sock)
        any_ctx = node_label(self.policy, ipaddress.IPv4Address("0.0.0.0")).context
        any_ok = any(n.context == str(any_ctx) and n.access.allowed for n in nodes)
        bindable: list[Range] = []
        # A socket labeled with the kernel SID skips the socket checks: absent, they pass.
        if all(sp[p].allowed for p in ("create", "bind") if p in sp) and any_ok:
            bindable = self._bindable(nb_ports, cap_ok)
        low, high = self.env.local_port_range
        return ServerSide(
            proto,
            sclass,
            str(sock),
            sp,
            tuple(nb),
            tuple(nb_ports),
            (low, high),
            tuple(nodes),
            tuple(bindable),
        )

    def _bindable(self, nb_ports: list[Range], cap_ok: bool) -> list[Range]:
        env = self.env
        free = [
            r
            for r in [
                (max(env.local_port_range[0], env.unprivileged_port_start), env.local_port_range[1])
            ]
            if r[0] <= r[1]
        ]
        ports = merge_ranges([*nb_ports, *free])
        if not cap_ok and env.unprivileged_port_start > 1:
            ports = subtract_ranges(ports, (1, env.unprivileged_port_start - 1))
        return ports

    def client(self, proto: str) -> ClientSide:
        plan = self.plan("connect", proto)
        sclass, sock = plan.sclass, plan.sock
        sp = self.plan_sock_perms(plan, CLIENT_STEPS)
        # The model says whether connect() checks the destination port at all.
        checked = any(c.spec.target == "port" for c in plan.checks if c.step == "connect")
        nc = self.port_grants(proto, sclass, sock, "name_connect") if checked else []
        nc_ports = merge_ranges(r for g in nc if g.access.allowed for r in g.ranges)
        base_ok = all(a.allowed for a in sp.values())
        reach = (nc_ports if checked else [(1, 65535)]) if base_ok else []
        return ClientSide(
            proto, sclass, str(sock), sp, checked, tuple(nc), tuple(nc_ports), tuple(reach)
        )

    # -- rules read directly ----------------------------------------------------------------
    def subjects(self) -> list[str]:
        out = [self.domain.type]
        for cls in sorted(INET_SOCKET_CLASSES):
            t = socket_context(self.policy, self.domain, cls, self.bools).type
            if t not in out:
                out.append(t)
        return out

    def labeled(self) -> list[LabeledGrant]:
        out: dict[tuple[str, str, str, str], set[str]] = {}
        for subj in self.subjects():
            for cls in sorted(PACKET_CLASSES):
                for rule in self.policy.rules_from(cls, subj):
                    if rule.ruletype != "allow":
                        continue
                    cond = "" if rule.cond is None else rule_condition(rule)
                    for perm in sorted(rule.perms):
                        if obsolete_reason(cls, perm) is None:
                            key = (cls, perm, subj, cond)
                            out.setdefault(key, set()).update(self.policy.expand(rule.target))
        return [
            LabeledGrant(c, p, s, tuple(sorted(t)), cond)
            for (c, p, s, cond), t in sorted(out.items())
        ]

    def obsolete(self) -> list[ObsoleteGrant]:
        out: dict[tuple[str, str, str], ObsoleteGrant] = {}
        for subj in self.subjects():
            for cls in sorted(INET_SOCKET_CLASSES | PACKET_CLASSES):
                for rule in self.policy.rules_from(cls, subj):
                    if rule.ruletype != "allow":
                        continue
                    for perm in sorted(rule.perms):
                        why = obsolete_reason(cls, perm)
                        if why is not None:
                            out.setdefault(
                                (cls, perm, rule.sesearch()),
                                ObsoleteGrant(cls, perm, rule.sesearch(), why),
                            )
        return sorted(out.values(), key=lambda o: (o.tclass, o.perm, o.rule))

    # -- booleans --------------------------------------------------------------------------
    def boolean_effects(self) -> list[BooleanEffect]:
        names: set[str] = set()
        for e in self.entries.values():
            names.update(e.access.booleans)
        out = []
        for name in sorted(names):
            on = self._allowed_with(name, True)
            off = self._allowed_with(name, False)
            when_on = self._changes(on - off)
            when_off = self._changes(off - on)
            if when_on or when_off:
                out.append(BooleanEffect(name, self.bools[name], tuple(when_on), tuple(when_off)))
        return out

    def _allowed_with(self, name: str, value: bool) -> set[EntryKey]:
        trial = dict(self.bools)
        trial[name] = value
        decisions = Decisions(self.policy, trial)
        got = set()
        for e in self.entries.values():
            if name in e.access.booleans:
                if decisions.allowed_as(e.sig, e.scon, e.tcon, e.tclass, e.perm):
                    got.add(e.key)
            elif e.access.allowed:
                got.add(e.key)
        return got

    def _changes(self, keys: set[EntryKey]) -> list[BooleanChange]:
        out = []
        by_proto = {p: self.ports.context_ranges(p) for p in PROTOCOLS}
        for key in sorted(keys):
            kind = key[0]
            if kind in ("name_bind", "name_connect"):
                ctx = self.entries[key].tcon
                ranges = by_proto[key[1]][ctx]
                out.append(BooleanChange(f"{key[1]} {kind}", key[2], ranges))
            elif kind == "node_bind":
                out.append(BooleanChange(f"{key[1]} node_bind", key[2], ()))
            elif kind == "sock":
                out.append(BooleanChange(f"{key[1]} {key[2]}", None, ()))
            else:
                out.append(BooleanChange(f"capability {key[1]}", None, ()))
        return out


def node_contexts(policy: Policy) -> dict[Context, list[str]]:
    """Every node context with the addresses that get it (nodecons, then the initial SID)."""
    out: dict[Context, list[str]] = {}
    for nc in policy.snap.nodecons:
        out.setdefault(nc.context, []).append(f"{nc.address}/{nc.prefixlen}")
    node = policy.snap.initial_sids.get("node")
    if node is not None:
        out.setdefault(node, []).append("every other address (the 'node' initial SID)")
    return out


def domain_profile(
    policy: Policy, domain: str, bools: Mapping[str, bool] | None = None, env: NetEnv | None = None
) -> DomainProfile:
    dom = policy.context_for_domain(domain)
    values = policy.bool_values(None) if bools is None else dict(bools)
    env = env or NetEnv()
    pr = _Profiler(policy, dom, values, env)
    caps = {c: pr.capability(c) for c in ("net_bind_service", "net_raw")}
    server = tuple(pr.server(p, caps["net_bind_service"].allowed) for p in PROTOCOLS)
    client = tuple(pr.client(p) for p in PROTOCOLS if p != "udp")
    other: dict[str, dict[str, Access]] = {}
    for proto in ("icmp", "raw"):
        sclass = socket_class(proto, pr.polcaps)
        if sclass not in other:
            other[sclass] = pr.plan_sock_perms(pr.plan("connect", proto), CLIENT_STEPS)
    unrestricted = (*tuple(c.protocol for c in client if not c.port_checked), "udp", "icmp", "raw")
    notes = [
        note("profile-ephemeral", low=env.local_port_range[0], high=env.local_port_range[1]),
        note("profile-bind-service", start=env.unprivileged_port_start),
        note("profile-socket-subject"),
    ]
    if "network_peer_controls" not in policy.snap.polcaps:
        notes.append(note("profile-compat"))
    prof = DomainProfile(
        str(dom),
        env,
        caps,
        server,
        client,
        unrestricted,
        other,
        tuple(pr.labeled()),
        tuple(pr.obsolete()),
        (),
        tuple(notes),
    )
    return _with_booleans(prof, pr.boolean_effects())


def _with_booleans(prof: DomainProfile, effects: list[BooleanEffect]) -> DomainProfile:
    return DomainProfile(
        prof.domain,
        prof.env,
        prof.capabilities,
        prof.server,
        prof.client,
        prof.unrestricted_clients,
        prof.other_sockets,
        prof.labeled,
        prof.obsolete,
        tuple(effects),
        prof.notes,
    )


# -- the summary: port types grouped by the policy's attributes (issue 12) ----------------------
@dataclass(frozen=True, slots=True)
class PortGroup:
    """Port types shown together: an attribute's port types, or one port type."""

    attribute: str | None  # None: the single port type in ``types``
    types: tuple[str, ...]  # the port types of the group that label some port of the protocol
    ranges: tuple[Range, ...]  # their ports, merged
    every: bool  # the attribute's port types are every port type labelling a port


@dataclass(frozen=True, slots=True)
class PortTypeIndex:
    """Per protocol, the port types that label some port (first match), with their ports,
    and each attribute's port types among them.  Built once per policy and protocol."""

    protocol: str
    ranges: dict[str, tuple[Range, ...]]  # port type -> its ports, merged
    order: dict[str, int]  # port type -> rank of its first port
    members: dict[str, frozenset[str]]  # attribute -> its port types (those in ``ranges``)
    every: frozenset[str] = frozenset()  # every port type of ``ranges``
    # attribute -> its group, built on first use (sorting and merging 10,000 types' ports
    # once, not once per boolean that names the attribute)
    groups: dict[str, PortGroup] = field(default_factory=dict, compare=False, repr=False)

    def group(self, attribute: str) -> PortGroup:
        got = self.groups.get(attribute)
        if got is None:
            m = self.members[attribute]
            every = m == self.every
            # every port type: every port (the map covers 1-65535, the initial SID the gaps)
            ports = ((1, 65535),) if every else tuple(
                merge_ranges(r for t in m for r in self.ranges[t]))
            got = self.groups[attribute] = PortGroup(
                attribute, tuple(sorted(m, key=self.order.__getitem__)), ports, every)
        return got


_TYPE_INDEX: weakref.WeakKeyDictionary[Policy, dict[str, PortTypeIndex]] = (
    weakref.WeakKeyDictionary())


def port_type_index(policy: Policy, proto: str) -> PortTypeIndex:
    per = _TYPE_INDEX.setdefault(policy, {})
    got = per.get(proto)
    if got is None:
        ranges: dict[str, tuple[Range, ...]] = {}
        several: set[str] = set()  # types with more than one context (levels) need merging
        for ctx, rs in port_map(policy).context_ranges(proto).items():
            if ctx.type in ranges:
                several.add(ctx.type)
                ranges[ctx.type] += rs
            else:
                ranges[ctx.type] = rs  # one context's intervals: sorted, disjoint, merged
        initial = policy.snap.initial_sids.get("port")
        if initial is not None and initial.type in ranges:
            several.add(initial.type)  # a record and the initial SID may abut, unmerged
        for t in several:
            ranges[t] = tuple(merge_ranges(ranges[t]))
        # context_ranges lists contexts by first port, so types come first-port first
        order = {t: i for i, t in enumerate(ranges)}
        members: dict[str, set[str]] = {}
        for t in ranges:
            for a in policy.snap.type_attrs.get(t, ()):
                members.setdefault(a, set()).add(t)
        got = per[proto] = PortTypeIndex(
            proto, ranges, order, {a: frozenset(ts) for a, ts in members.items()},
            frozenset(ranges))
    return got


def group_port_types(
    policy: Policy, proto: str, types: Iterable[str], within: Iterable[str] | None = None
) -> tuple[PortGroup, ...]:
    """``types`` grouped by attributes: an attribute is used when all its port types are in
    ``within`` (default: ``types``) and it covers at least two of ``types`` not yet covered,
    largest first; the rest are single types, in port order.  Nothing is dropped: every
    type of ``types`` that labels a port is in some group, and no group holds a type outside
    ``within``."""
    idx = port_type_index(policy, proto)
    want = {t for t in types if t in idx.ranges}
    span = want if within is None else want | {t for t in within if t in idx.ranges}
    cands: dict[str, frozenset[str]] = {}
    for t in want:
        for a in policy.snap.type_attrs.get(t, ()):
            if a not in cands:
                m = idx.members.get(a, frozenset())
                if len(m) >= 2 and m <= span:
                    cands[a] = m
    groups: list[PortGroup] = []
    left = set(want)
    while left and cands:
        # the most uncovered types; then the smaller attribute (tighter); then the name
        name, m = max(cands.items(), key=lambda kv: (len(kv[1] & left), -len(kv[1]), kv[0]))
        if len(m & left) < 2:
            break
        del cands[name]
        left -= m
        groups.append(idx.group(name))
    for t in sorted(left, key=idx.order.__getitem__):
        groups.append(PortGroup(None, (t,), idx.ranges[t], False))
    return tuple(groups)


@dataclass(frozen=True, slots=True)
class SideSummary:
    """One protocol's server or client side, reduced to what is allowed now."""

    protocol: str
    sclass: str
    perm: str  # name_bind or name_connect
    socket_denied: tuple[str, ...]  # socket permissions of the side not allowed now
    port_checked: bool  # False: the class has no name_connect
    now: tuple[PortGroup, ...]  # port types allowed now
    later: int  # port types granted only under other boolean values (see the booleans)
    blocked: int  # port types a constraint denies even with the TE rule
    nodes_now: tuple[str, ...]  # node types node_bind is allowed on now (server)
    nodes_later: tuple[str, ...]  # node types granted only under other boolean values
    ports: tuple[Range, ...]  # bind() to 0.0.0.0 / connect() passes every check now
    socket: str = ""  # the socket's context, the subject of the port checks


@dataclass(frozen=True, slots=True)
class ChangeSummary:
    """What one boolean value allows that the other does not, for one kind of check."""

    what: str  # as BooleanChange.what: "tcp name_connect", "udp node_bind", "capability ..."
    groups: tuple[PortGroup, ...]  # port types (name_bind/name_connect), grouped
    types: tuple[str, ...]  # node types (node_bind); () otherwise


@dataclass(frozen=True, slots=True)
class BooleanSummary:
    name: str
    current: bool
    when_on: tuple[ChangeSummary, ...]
    when_off: tuple[ChangeSummary, ...]


@dataclass(frozen=True, slots=True)
class DomainSummary:
    profile: DomainProfile
    server: tuple[SideSummary, ...]
    client: tuple[SideSummary, ...]
    booleans: tuple[BooleanSummary, ...]
    labeled: int  # labeled-networking grants (profile.labeled)
    labeled_classes: tuple[str, ...]


def _now_types(grants: Iterable[PortGrant]) -> set[str]:
    return {g.type for g in grants if g.access.allowed}


def _side_summary(
    policy: Policy, proto: str, sclass: str, perm: str, perms: Mapping[str, Access],
    grants: tuple[PortGrant, ...], checked: bool, nodes: tuple[NodeGrant, ...],
    ports: tuple[Range, ...], socket: str,
) -> SideSummary:
    now = _now_types(grants)
    later = {g.type for g in grants if not g.access.allowed and g.access.constraint is None}
    blocked = {g.type for g in grants if g.access.constraint is not None and g.type not in now}
    return SideSummary(
        proto, sclass, perm, tuple(p for p, a in perms.items() if not a.allowed), checked,
        group_port_types(policy, proto, now), len(later - now), len(blocked),
        tuple(dict.fromkeys(n.type for n in nodes if n.access.allowed)),
        tuple(dict.fromkeys(n.type for n in nodes if not n.access.allowed
                            and n.access.constraint is None)),
        ports,
        socket,
    )


def domain_summary(policy: Policy, prof: DomainProfile) -> DomainSummary:
    """The profile grouped to fit a screen: the port types allowed now, grouped by the
    policy's attributes, and each boolean as the change it makes, grouped the same way.
    Every fact of the profile's port and boolean sections is in some group."""
    server = tuple(
        _side_summary(policy, s.protocol, s.sclass, "name_bind", s.socket_perms, s.name_bind,
                      True, s.node_bind, s.bindable, s.socket)
        for s in prof.server)
    client = tuple(
        _side_summary(policy, c.protocol, c.sclass, "name_connect", c.socket_perms,
                      c.name_connect, c.port_checked, (), c.reachable, c.socket)
        for c in prof.client)
    now: dict[str, set[str]] = {}
    for s in prof.server:
        now[f"{s.protocol} name_bind"] = _now_types(s.name_bind)
    for c in prof.client:
        now[f"{c.protocol} name_connect"] = _now_types(c.name_connect)

    def changes(b: BooleanEffect, value: bool) -> tuple[ChangeSummary, ...]:
        gained = b.when_on if value else b.when_off
        lost = b.when_off if value else b.when_on
        out: list[ChangeSummary] = []
        kinds = list(dict.fromkeys(c.what for c in gained))
        for what in kinds:
            types = [c.type for c in gained if c.what == what and c.type]
            proto, _, perm = what.partition(" ")
            if perm in ("name_bind", "name_connect"):
                # the types allowed with this value: those allowed now, less what the
                # change takes away, plus what it adds (the now-set when value is current)
                base = now.get(what, set())
                if value != b.current:
                    base = base - {c.type for c in lost if c.what == what and c.type}
                within = base | set(types)
                out.append(ChangeSummary(what, group_port_types(policy, proto, types, within),
                                         ()))
            else:
                out.append(ChangeSummary(what, (), tuple(dict.fromkeys(types))))
        return tuple(out)

    bools = tuple(BooleanSummary(b.name, b.current, changes(b, True), changes(b, False))
                  for b in prof.booleans)
    classes = tuple(sorted({g.tclass for g in prof.labeled}))
    return DomainSummary(prof, server, client, bools, len(prof.labeled), classes)


# -- who may bind / reach a port --------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PortUser:
    domain: str
    socket_type: str
    access: Access
    # The deciding allow rule (the first active one, else the one a boolean fix would
    # activate, else the first that matches); None: handle_unknown decided it.
    rule: AVRule | None = None
    via: str | None = None  # the attribute of the socket type the rule names, if not the type
    via_target: str | None = None  # the attribute of the port type the rule names, if any


@dataclass(frozen=True, slots=True)
class RuleGroup:
    """Domains that may use a port through the same rule, with the same outcome."""

    rule: AVRule | None
    via: tuple[str, ...]  # the subject attributes the rule matched through
    via_target: str | None
    access: Access  # the first domain's (the key holds allowed, condition and constraint)
    users: tuple[PortUser, ...]


def rule_groups(users: Iterable[PortUser]) -> tuple[RuleGroup, ...]:
    """Users grouped by deciding rule and outcome: allowed now first, then the largest."""
    acc: dict[tuple[object, ...], list[PortUser]] = {}
    for u in users:
        key = (u.rule, u.access.allowed, u.access.condition, u.access.constraint)
        acc.setdefault(key, []).append(u)
    groups = [
        RuleGroup(us[0].rule, tuple(dict.fromkeys(u.via for u in us if u.via)),
                  us[0].via_target, us[0].access, tuple(us))
        for us in acc.values()
    ]
    groups.sort(key=lambda g: (not g.access.allowed, -len(g.users), g.users[0].domain))
    return tuple(groups)


def _deciding(d: Decision) -> AVRule | None:
    allow = [g for g in d.grants if g.rule.ruletype == "allow"]
    for g in allow:
        if g.active:
            return g.rule
    if d.boolean_fixes:
        return d.boolean_fixes[0].rule
    return allow[0].rule if allow else None


@dataclass(frozen=True, slots=True)
class PortReport:
    query: str
    protocol: str | None  # None for --type over every protocol
    type: str
    context: str
    attributes: tuple[str, ...]
    label: LabelResult | None  # the kernel lookup for PORT/PROTO
    ranges: dict[str, tuple[Range, ...]]  # protocol -> ports that resolve to this context/type
    ephemeral: bool  # the port is inside ip_local_port_range: bind() checks no name_bind
    env: NetEnv
    bind: dict[str, tuple[PortUser, ...]]  # protocol -> domains
    connect: dict[str, tuple[PortUser, ...]]  # protocol -> domains (tcp, sctp, dccp only)
    notes: tuple[Note, ...]


def _port_users(
    policy: Policy,
    decider: Decider,
    bools: Mapping[str, bool],
    proto: str,
    tcon: Context,
    perm: str,
) -> tuple[PortUser, ...]:
    sclass = socket_class(proto, policy.snap.polcaps)
    if perm == "name_connect" and sclass not in NAME_CONNECT_CLASSES:
        return ()
    every = not defined(policy, sclass, perm)
    cands = set() if every else candidate_subjects(policy, sclass, tcon.type, perm)
    out = []
    for d in policy.domains():
        try:
            dom = policy.context_for_domain(d)
        except InputError:
            continue
        sock = socket_context(policy, dom, sclass, bools)
        if not every and sock.type not in cands:
            continue
        dec = decider.decide(sock, tcon, sclass, perm)
        acc = access_of(dec)
        if acc.allowed or acc.condition is not None:
            rule = _deciding(dec)
            via = rule.source if rule is not None and rule.source != sock.type else None
            via_t = rule.target if rule is not None and rule.target != tcon.type else None
            out.append(PortUser(d, sock.type, acc, rule, via, via_t))
    return tuple(out)


def port_report(
    policy: Policy,
    port: int,
    proto: str,
    bools: Mapping[str, bool] | None = None,
    env: NetEnv | None = None,
) -> PortReport:
    values = policy.bool_values(None) if bools is None else dict(bools)
    env = env or NetEnv()
    lab = port_label(policy, proto, port)
    ranges = {proto: port_map(policy).context_ranges(proto)[lab.context]}
    return _report(
        policy,
        f"{port}/{proto}",
        proto,
        lab.context,
        lab,
        ranges,
        not env.requires_name_bind(port),
        values,
        env,
    )


def type_report(
    policy: Policy,
    type_name: str,
    bools: Mapping[str, bool] | None = None,
    env: NetEnv | None = None,
) -> PortReport:
    values = policy.bool_values(None) if bools is None else dict(bools)
    env = env or NetEnv()
    t = policy.require_type(type_name, "port type")
    pm = port_map(policy)
    ranges: dict[str, tuple[Range, ...]] = {}
    ctx: Context | None = None
    for proto in PROTOCOLS:
        for c, rs in pm.context_ranges(proto).items():
            if c.type == t:
                ranges[proto] = tuple(merge_ranges([*ranges.get(proto, ()), *rs]))
                ctx = ctx or c
    if ctx is None:
        ctx = policy.object_context(t)
    return _report(policy, t, None, ctx, None, ranges, False, values, env)


def _report(
    policy: Policy,
    query: str,
    proto: str | None,
    ctx: Context,
    lab: LabelResult | None,
    ranges: dict[str, tuple[Range, ...]],
    ephemeral: bool,
    bools: dict[str, bool],
    env: NetEnv,
) -> PortReport:
    decider = Decider(policy, bools)
    protos = [proto] if proto else [p for p in PROTOCOLS if p in ranges] or list(PROTOCOLS)
    bind = {p: _port_users(policy, decider, bools, p, ctx, "name_bind") for p in protos}
    connect = {
        p: _port_users(policy, decider, bools, p, ctx, "name_connect")
        for p in protos
        if socket_class(p, policy.snap.polcaps) in NAME_CONNECT_CLASSES
    }
    notes: list[Note] = []
    if ephemeral:
        low, high = env.local_port_range
        notes.append(note("port-ephemeral", query=query, low=low, high=high))
    for p in protos:
        if p not in connect:
            notes.append(note("port-no-name-connect", proto=p,
                              tclass=socket_class(p, policy.snap.polcaps)))
    if ctx.mls:
        notes.append(note("port-mls-default-level"))
    attrs = tuple(sorted(policy.snap.type_attrs.get(ctx.type, ())))
    return PortReport(
        query,
        proto,
        ctx.type,
        str(ctx),
        attrs,
        lab,
        ranges,
        ephemeral,
        env,
        bind,
        connect,
        tuple(notes),
    )


# -- the matrix ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class MatrixRow:
    domain: str
    protocol: str
    operation: str  # bind (name_bind) or connect (name_connect)
    low: int
    high: int
    port_type: str
    condition: str  # "" unconditional
    allowed_now: bool
    socket_type: str

    FIELDS = (
        "domain",
        "protocol",
        "operation",
        "low",
        "high",
        "port_type",
        "condition",
        "allowed_now",
        "socket_type",
    )

    def as_tuple(self) -> tuple[object, ...]:
        return (
            self.domain,
            self.protocol,
            self.operation,
            self.low,
            self.high,
            self.port_type,
            self.condition,
            self.allowed_now,
            self.socket_type,
        )


def matrix_rows(
    policy: Policy,
    bools: Mapping[str, bool] | None = None,
    progress: Callable[[int, int], None] | None = None,
    domains: Iterable[str] | None = None,
) -> Iterator[MatrixRow]:
    """Every domain x protocol x port range x {bind, connect} the policy grants, now or under
    a boolean condition.  Decided per (domain, port context) with Decider, only for the
    contexts some rule of the socket's type covers."""
    values = policy.bool_values(None) if bools is None else dict(bools)
    decisions = Decisions(policy, values)
    pm = port_map(policy)
    by_proto = {p: pm.context_ranges(p) for p in PROTOCOLS}
    names = list(domains) if domains is not None else list(policy.domains())
    for i, d in enumerate(names):
        if progress is not None:
            progress(i, len(names))
        try:
            dom = policy.context_for_domain(d)
        except InputError:
            continue
        for proto in PROTOCOLS:
            yield from _matrix_domain_proto(policy, decisions, values, dom, proto, by_proto[proto])
    if progress is not None:
        progress(len(names), len(names))


def _matrix_domain_proto(
    policy: Policy,
    decisions: Decisions,
    bools: Mapping[str, bool],
    dom: Context,
    proto: str,
    by_ctx: Mapping[Context, tuple[Range, ...]],
) -> Iterator[MatrixRow]:
    sclass = socket_class(proto, policy.snap.polcaps)
    sock = socket_context(policy, dom, sclass, bools)
    for perm, op in (("name_bind", "bind"), ("name_connect", "connect")):
        if perm == "name_connect" and sclass not in NAME_CONNECT_CLASSES:
            continue
        # Subjects with equal keys get equal grants on every context (the candidates come
        # from the same rules): decide once per subject key, not once per domain.
        skey = (decisions.subject_key(sock, sclass, perm), proto, perm)
        grants = decisions.grant_lists.get(skey)
        if grants is None:
            if defined(policy, sclass, perm):
                cands = candidate_targets(policy, sclass, sock.type, perm)
                ctxs = [c for c in by_ctx if c.type in cands]
            else:
                ctxs = list(by_ctx)
            grants = []
            # by_ctx lists contexts in the order of their first port: no sort needed
            for ctx in ctxs:
                acc = decisions.access(sock, ctx, sclass, perm)
                if acc.possible:
                    grants.append((ctx.type, by_ctx[ctx], acc.condition or "", acc.allowed))
            decisions.grant_lists[skey] = grants
        for ptype, ranges, cond, now in grants:
            for low, high in ranges:
                yield MatrixRow(dom.type, proto, op, low, high, ptype, cond, now, sock.type)
