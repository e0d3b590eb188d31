"""What a change opens across the whole policy: decided, not guessed.

A candidate fix is a set of overlay changes (and boolean settings).  Its *delta* is the
rules it adds or activates and the port ranges whose label it changes.  Every (subject,
target, class, permission) the delta can touch is decided before and after with the
Decider; what is allowed after and not before is a gain.  A relabel is measured for every
domain that may bind or reach the old or the new type, so "who loses the old label" is
measured too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from selnet.analyses.decisions import Decisions, Range, candidate_subjects, merge_ranges
from selnet.analyses.porttypes import PolicyFacts
from selnet.errors import InputError
from selnet.kernel.classes import (
    CLASS_PROTOCOL,
    KERNEL_PERMS,
    NAME_CONNECT_CLASSES,
    PORT_PROTOCOLS,
    socket_class,
)
from selnet.model.labels import PortMap, port_map
from selnet.policy.conditions import eval_cond
from selnet.policy.index import Policy
from selnet.policy.overlay import AddPortcon, Change, DeletePortcon, ModifyPortcon
from selnet.policy.snapshot import AVRule, Context

PORT_PERMS = frozenset({"name_bind", "name_connect"})
# Beyond this many (subject, target, perm) triples one rule is counted, not decided.
MAX_DECIDED = 20000


@dataclass(frozen=True, slots=True)
class Gain:
    """A subject type newly allowed (or no longer allowed) one permission on a target."""

    subject: str
    tclass: str
    perm: str
    target: str
    ports: tuple[Range, ...] = ()  # the port numbers, for name_bind/name_connect on a port type

    @property
    def proto(self) -> str | None:
        return CLASS_PROTOCOL.get(self.tclass)


@dataclass(frozen=True, slots=True)
class Opens:
    gains: tuple[Gain, ...]
    losses: tuple[Gain, ...]
    domains: tuple[str, ...]  # subject types that gain anything
    port_numbers: int  # distinct (protocol, port) pairs some subject gains
    port_types: tuple[str, ...]  # port types some subject gains a port permission on
    generic: bool  # a generic port type (port_t, unreserved, reserved, ...) is involved
    excess_domains: tuple[str, ...]  # subjects gaining the needed permission, other than those denied
    excess_port_numbers: int  # ports gained beyond the ones denied (any subject, any port perm)
    estimated: bool = False  # a rule too wide to decide pair by pair was counted
    generic_types: frozenset[str] = frozenset()  # the policy's generic port types

    @property
    def every_port(self) -> bool:
        return self.port_numbers >= 60000

    @property
    def takes_service_port(self) -> bool:
        """A relabel takes a port from another service's server (it may no longer bind it)."""
        return any(g.perm == "name_bind" and g.target not in self.generic_types
                   for g in self.losses)


@dataclass(frozen=True, slots=True)
class Want:
    """The accesses a fix is for: what "beyond the denied access" is measured from."""

    subjects: frozenset[str]
    perms: frozenset[tuple[str, str]]  # (class, perm)
    ports: frozenset[tuple[str, int]]  # (protocol, port)


class Measurer:
    def __init__(self, base: Policy, bools: Mapping[str, bool], facts: PolicyFacts) -> None:
        self.base = base
        self.bools = dict(bools)
        self.facts = facts
        # Memoised on what a decision depends on: a boolean that activates an
        # attribute's rules asks the same question of hundreds of domains and types.
        self.before = Decisions(base, self.bools)
        self._ctx: dict[str, Context] = {}
        self._octx: dict[tuple[str, str], Context] = {}  # (type, level) -> object context
        self._ranges_of: object = None  # the port map _type_ranges is of
        # boolean settings measured on the base -> (gains, losses, estimated)
        self._by_settings: dict[tuple[tuple[str, bool], ...],
                                tuple[tuple[Gain, ...], tuple[Gain, ...], bool]] = {}
        self._type_ranges: dict[tuple[str, str], tuple[Range, ...]] = {}
        self._ranged: set[str] = set()  # protocols whose types _type_ranges holds
        self._by_bool: dict[str, list[AVRule]] = {}
        for r in base.snap.rules:
            if r.cond is not None and r.ruletype == "allow":
                for tok in set(r.cond):
                    self._by_bool.setdefault(tok, []).append(r)

    # -- contexts --------------------------------------------------------------------
    def subject_ctx(self, policy: Policy, t: str) -> Context:
        got = self._ctx.get(t)
        if got is None:
            try:
                got = policy.context_for_domain(t)
            except InputError:
                got = Context("system_u", "system_r", t, self._level(policy))
            self._ctx[t] = got
        return got

    @staticmethod
    def _level(policy: Policy) -> str:
        users = policy.snap.users
        return users["system_u"].level if policy.snap.mls and "system_u" in users else ""

    def object_ctx(self, policy: Policy, t: str) -> Context:
        return self._object(t, self._level(policy))

    def _object(self, t: str, level: str) -> Context:
        got = self._octx.get((t, level))
        if got is None:
            got = self._octx[(t, level)] = Context("system_u", "object_r", t, level)
        return got

    # -- the delta -------------------------------------------------------------------
    def activated(self, settings: Sequence[tuple[str, bool]]) -> list[AVRule]:
        after = {**self.bools, **dict(settings)}
        out: dict[AVRule, None] = {}
        for name, _ in settings:
            for r in self._by_bool.get(name, ()):
                assert r.cond is not None
                if eval_cond(r.cond, after) == r.branch and eval_cond(r.cond, self.bools) != r.branch:
                    out[r] = None
        return list(out)

    def measure(self, changed: Policy, changes: Sequence[Change],
                settings: Sequence[tuple[str, bool]], want: Want) -> Opens:
        if not changes and changed is self.base:
            # Boolean settings alone: what they open depends on nothing else, and audit
            # measures the same setting for several groups (nis_enabled for every client).
            got = self._by_settings.get(tuple(settings))
            if got is None:
                got = self._by_settings[tuple(settings)] = self._gains(changed, changes,
                                                                       settings)
        else:
            got = self._gains(changed, changes, settings)
        gains, losses, estimated = got
        return self._summary(list(gains), list(losses), want, estimated)

    def _gains(self, changed: Policy, changes: Sequence[Change],
               settings: Sequence[tuple[str, bool]]
               ) -> tuple[tuple[Gain, ...], tuple[Gain, ...], bool]:
        """What the change and settings open and close: (gains, losses, estimated)."""
        after = Decisions(changed, {**changed.snap.booleans, **self.bools, **dict(settings)})
        rules = [r for r in changed.snap.rules[len(self.base.snap.rules):] if r.ruletype == "allow"]
        rules += self.activated(settings)
        gains: dict[tuple[str, str, str, str], Gain] = {}
        losses: dict[tuple[str, str, str, str, int], Gain] = {}
        estimated = self._rule_gains(changed, after, rules, gains)
        relabeled = [(c.protocol, c.low, c.high) for c in changes
                     if isinstance(c, AddPortcon | ModifyPortcon | DeletePortcon)]
        if relabeled:
            self._relabel_gains(changed, after, relabeled, gains, losses)
        return tuple(gains.values()), tuple(losses.values()), estimated

    def _rule_gains(self, changed: Policy, after: Decisions, rules: Iterable[AVRule],
                    gains: dict[tuple[str, str, str, str], Gain]) -> bool:
        estimated = False
        pm = port_map(changed)
        if pm is not self._ranges_of:  # each port type's ranges, per port map
            self._ranges_of, self._type_ranges, self._ranged = pm, {}, set()
        type_ranges = self._type_ranges
        # a boolean setting leaves the policy: one key decides before and after
        same = changed is self.base
        before = self.before
        level = self._level(changed)
        for r in rules:
            subjects = changed.expand(r.source)
            targets = changed.expand(r.target)
            tclass = r.tclass
            live = KERNEL_PERMS.get(tclass)
            perms = [p for p in sorted(r.perms) if live is None or p in live]
            decide = len(subjects) * len(targets) * len(perms) <= MAX_DECIDED
            estimated |= not decide
            proto = CLASS_PROTOCOL.get(tclass)
            tcons = [(t, self._object(t, level)) for t in targets]
            for s in subjects:
                scon = self.subject_ctx(changed, s)
                for p in perms:
                    # the subject's part of the keys once for all the rule's targets
                    sa = after.subject_part(scon, tclass, p) if decide else None
                    sb = sa if same or sa is None else before.subject_part(scon, tclass, p)
                    ported = proto is not None and p in PORT_PERMS
                    for t, tcon in tcons:
                        key = (s, tclass, p, t)
                        if key in gains:
                            continue
                        if sa is not None and sb is not None:
                            ka = after.key_with(sa, tcon)
                            if not after.allowed_as(ka, scon, tcon, tclass, p):
                                continue
                            kb = ka if same else before.key_with(sb, tcon)
                            if before.allowed_as(kb, scon, tcon, tclass, p):
                                continue
                        ports: tuple[Range, ...] = ()
                        if ported:
                            assert proto is not None
                            ports = type_ranges.get((proto, t), ())
                            if not ports and proto not in self._ranged:
                                self._protocol_ranges(pm, proto)
                                ports = type_ranges.get((proto, t), ())
                        gains[key] = Gain(s, tclass, p, t, ports)
        return estimated

    def _protocol_ranges(self, pm: PortMap, proto: str) -> None:
        """Every port type's merged ranges on one protocol, in one pass over the map (a
        boolean on ``port_type`` gains hundreds of types: one scan of the map each was a
        third of the measurement)."""
        acc: dict[str, list[Range]] = {}
        for ctx, rs in pm.context_ranges(proto).items():
            acc.setdefault(ctx.type, []).extend(rs)
        tr = self._type_ranges
        for t, found in acc.items():
            tr[(proto, t)] = tuple(merge_ranges(found))
        self._ranged.add(proto)

    def _relabel_gains(self, changed: Policy, after: Decisions,
                       regions: list[tuple[str, int, int]],
                       gains: dict[tuple[str, str, str, str], Gain],
                       losses: dict[tuple[str, str, str, str, int], Gain]) -> None:
        old_map, new_map = port_map(self.base), port_map(changed)
        for proto, low, high in regions:
            if proto not in PORT_PROTOCOLS:
                continue
            sclass = socket_class(proto, changed.snap.polcaps)
            perms = ["name_bind"] + (["name_connect"] if sclass in NAME_CONNECT_CLASSES else [])
            port = max(low, 1)
            while port <= min(high, 65535):
                old, new = old_map.lookup(proto, port), new_map.lookup(proto, port)
                end = min(old.high, new.high, high)
                if old.context != new.context:
                    for perm in perms:
                        subs = candidate_subjects(changed, sclass, new.context.type, perm) | \
                            candidate_subjects(self.base, sclass, old.context.type, perm)
                        for s in sorted(subs):
                            scon = self.subject_ctx(changed, s)
                            now = after.decision(scon, new.context, sclass, perm).allowed
                            was = self.before.decision(scon, old.context, sclass, perm).allowed
                            if now and not was:
                                key = (s, sclass, perm, new.context.type)
                                prev = gains.get(key)
                                ports = merge_ranges([*(prev.ports if prev else ()), (port, end)])
                                gains[key] = Gain(s, sclass, perm, new.context.type, tuple(ports))
                            elif was and not now:
                                losses[(s, sclass, perm, old.context.type, port)] = Gain(
                                    s, sclass, perm, old.context.type, ((port, end),))
                port = end + 1

    def _summary(self, gains: list[Gain], losses: list[Gain], want: Want,
                 estimated: bool) -> Opens:
        by_proto: dict[str, list[Range]] = {}
        port_types: set[str] = set()
        for g in gains:
            if g.ports and g.proto is not None:
                by_proto.setdefault(g.proto, []).extend(g.ports)
                port_types.add(g.target)
        numbers = 0
        needed = 0
        for proto, ranges in by_proto.items():
            merged = merge_ranges(ranges)
            numbers += sum(hi - lo + 1 for lo, hi in merged)
            needed += sum(1 for p, n in want.ports if p == proto
                          and any(lo <= n <= hi for lo, hi in merged))
        domains = sorted({g.subject for g in gains})
        excess = sorted({g.subject for g in gains
                         if (g.tclass, g.perm) in want.perms and g.subject not in want.subjects})
        generic = any(t in self.facts.generic for t in port_types)
        # expand() gives sets: sorted, so the same policy prints the same answer under any
        # PYTHONHASHSEED (audit's JSON is compared byte for byte)
        order = lambda g: (g.subject, g.tclass, g.perm, g.target, g.ports)  # noqa: E731
        return Opens(tuple(sorted(gains, key=order)), tuple(sorted(losses, key=order)),
                     tuple(domains), numbers,
                     tuple(sorted(port_types)), generic, tuple(excess), numbers - needed,
                     estimated, self.facts.generic)
