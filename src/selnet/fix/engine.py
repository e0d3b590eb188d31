"""One fix engine for every denied check: candidates, verified on the overlay, measured,
ranked (docs/fixes.md).

A :class:`Need` is one denied check (as logged, or as a check command models it).  For a
set of needs the engine builds candidates of five kinds — booleans (minimal settings),
port labels (``semanage port -a``/``-m``), a new port type in a local module, refpolicy
interfaces, narrow rules — plus a port-range change for ports picked at random.  Each
candidate is applied to the policy through the overlay (booleans as settings), every need
is decided again, and what it opens across the whole policy is measured
(:mod:`selnet.fix.opens`).  Ranking (:func:`rank_key`) puts the fixes people accept first
and anything that opens far more than the denied access last, flagged.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from selnet.analyses.porttypes import PolicyFacts
from selnet.decide.chain import ChainResult
from selnet.decide.decision import Decider
from selnet.errors import InputError
from selnet.fix.opens import PORT_PERMS, Measurer, Opens, Want
from selnet.kernel.classes import SNAPSHOT_CLASSES
from selnet.model.env import NetEnv
from selnet.model.labels import port_label
from selnet.notes import Note, note
from selnet.policy.index import Policy
from selnet.policy.overlay import (
    AddAttributeMember,
    AddPortcon,
    AddRule,
    AddType,
    Change,
    ModifyPortcon,
)
from selnet.policy.snapshot import Context, Portcon

KINDS = ("boolean", "port-label", "new-port-type", "interface", "rule", "port-range")
# A fix is narrow when it opens at most this much beyond the denied access.
NARROW_PORTS = 128  # port numbers beyond the denied ones
NARROW_DOMAINS = 3  # other domains gaining the denied permission
# A relabel into a service's port type gives the port to every service of that type (by
# design: they share the type); many of them means the type is not that service's own.
NARROW_RELABEL_DOMAINS = 25
# Near the ephemeral range: a single bind there is a port the program picked at random.
EPHEMERAL_MARGIN = 1024


@dataclass(frozen=True, slots=True)
class Need:
    """One denied check a fix must make pass."""

    scon: Context  # the subject as decided (the socket's label for port checks)
    tcon: Context  # the target exactly as decided (as logged, for an AVC)
    tclass: str
    perm: str
    domain: str  # the process's domain (interfaces are called with it)
    port: int | None = None  # the port behind name_bind/name_connect
    proto: str | None = None
    logged_type: str | None = None  # the logged target type, when the policy labels it otherwise

    @property
    def port_check(self) -> bool:
        return self.perm in PORT_PERMS and self.port is not None and self.proto is not None


@dataclass(frozen=True, slots=True)
class Fix:
    kind: str  # one of KINDS
    commands: tuple[str, ...]  # to paste (shell commands, TE/CIL rules, interface calls)
    verified: bool  # applied to the policy and every need decided again: all pass
    opens: Opens | None  # None for a port-range change (it opens no policy access)
    why: Note  # why this candidate, worded by render/
    tier: int  # 0 accepted kind, 1 narrow, 2 broad (flagged)
    flags: tuple[str, ...] = ()  # generic, other-domains, many-ports, every-port, loses-label
    changes: tuple[Change, ...] = ()  # the overlay it was verified with
    settings: tuple[tuple[str, bool], ...] = ()  # boolean settings
    cil: tuple[str, ...] = ()  # rules for a module, CIL
    te: tuple[str, ...] = ()  # the same, TE
    require: tuple[str, ...] = ()  # types/attributes a TE module must require
    described: tuple[tuple[str, str], ...] = ()  # (boolean, its policy.xml description)
    alternatives: tuple[str, ...] = ()
    preference: int = 0  # the candidate's order within its kind (own service types first)

    @property
    def broad(self) -> bool:
        return self.tier >= 2


@dataclass(slots=True)
class Situation:
    """Facts about the needs that shape the candidates (from the caller's diagnosis)."""

    ephemeral_ports: tuple[int, ...] = ()  # ports picked at random: no one-port relabel
    uninstalled: bool = False  # the domain's own port type exists without a portcon
    # The socket was created by this domain and handed over: the needs cover the service's
    # use of it (the logged denials and the checks that follow), not one logged permission.
    socket_from: str | None = None


def is_near_ephemeral(port: int, env: NetEnv) -> bool:
    """A bind to a port just outside ip_local_port_range: picked at random, not a service."""
    low, high = env.local_port_range
    return port > high or low - EPHEMERAL_MARGIN <= port < low


class FixEngine:
    def __init__(self, policy: Policy, bools: Mapping[str, bool], env: NetEnv | None = None,
                 *, facts: PolicyFacts | None = None, interfaces: object | None = None,
                 use_interfaces: bool = True) -> None:
        self.policy = policy
        self.bools = dict(bools)
        self.env = env or NetEnv()
        self.facts = facts or PolicyFacts(policy)
        self.measurer = Measurer(policy, self.bools, self.facts)
        self._ifx = interfaces
        self._ifx_loaded = interfaces is not None or not use_interfaces
        self._descriptions: dict[str, str] | None = None

    # -- the one call --------------------------------------------------------------
    def fixes(self, needs: Sequence[Need], situation: Situation | None = None) -> list[Fix]:
        """Every verified candidate for these needs, best first (unverified ones last)."""
        if not needs:
            return []
        sit = situation or Situation()
        want = Want(frozenset(n.scon.type for n in needs),
                    frozenset((n.tclass, n.perm) for n in needs),
                    frozenset((n.proto, n.port) for n in needs
                              if n.port is not None and n.proto is not None))
        out: list[Fix] = []
        random_ports = bool(sit.ephemeral_ports) or (all(
            n.perm == "name_bind" and n.port is not None and is_near_ephemeral(n.port, self.env)
            for n in needs if n.port_check) and any(n.port_check for n in needs))
        out += self._booleans(needs, want)
        if not random_ports:
            out += self._port_labels(needs, want, sit)
            out += self._new_port_type(needs, want)
        else:
            out += self._port_range(needs, sit)
        out += self._interfaces(needs, want)
        out += self._rule(needs, want, sit)
        return sorted(_dedup(out), key=rank_key)

    # -- verification ----------------------------------------------------------------
    def _verify(self, needs: Sequence[Need], changes: Sequence[Change],
                settings: Sequence[tuple[str, bool]] = (),
                relabel: Mapping[tuple[str, int], str] | None = None) -> tuple[Policy, bool]:
        """Apply the candidate and decide every need again.  A relabel changes the target
        the kernel will see: the need's port gets the new label's context."""
        changed = self.policy.with_changes(*changes) if changes else self.policy
        bools = {**changed.snap.booleans, **self.bools, **dict(settings)}
        dec = Decider(changed, bools)
        ok = True
        for n in needs:
            tcon = n.tcon
            if n.port_check and changes:
                assert n.proto is not None and n.port is not None
                tcon = port_label(changed, n.proto, n.port, with_shadowed=False).context
            ok = ok and dec.decide(n.scon, tcon, n.tclass, n.perm).allowed
        return changed, ok

    def _make(self, kind: str, needs: Sequence[Need], want: Want, commands: Sequence[str],
              why: Note, changes: Sequence[Change] = (), settings: Sequence[tuple[str, bool]] = (),
              accepted: bool = False, cil: tuple[str, ...] = (), te: tuple[str, ...] = (),
              require: tuple[str, ...] = (),
              described: tuple[tuple[str, str], ...] = (), preference: int = 0,
              domain_limit: int = NARROW_DOMAINS) -> Fix:
        try:
            changed, ok = self._verify(needs, changes, settings)
        except InputError as exc:  # a change the policy refuses: never offered
            return Fix(kind, tuple(commands), False, None, note("fix-refused", reason=str(exc)),
                       3, ("refused",))
        opens = self.measurer.measure(changed, changes, settings, want)
        flags = _flags(opens, domain_limit)
        narrow = not flags or flags == ("loses-label",)
        tier = 0 if accepted and narrow else 1 if narrow else 2
        return Fix(kind, tuple(commands), ok, opens, why, tier, flags, tuple(changes),
                   tuple(settings), cil, te, require, described, preference=preference)

    # -- booleans ------------------------------------------------------------------------
    def _booleans(self, needs: Sequence[Need], want: Want) -> list[Fix]:
        dec = Decider(self.policy, self.bools)
        per_need: list[list[tuple[tuple[str, bool], ...]]] = []
        for n in needs:
            d = dec.decide(n.scon, n.tcon, n.tclass, n.perm)
            if d.boolean_fixes:
                per_need.append([bf.settings for bf in d.boolean_fixes])
        options: dict[tuple[tuple[str, bool], ...], None] = {}
        for opts in per_need:
            options.update(dict.fromkeys(opts))
        if len(per_need) > 1:  # one setting per need, combined
            combo: dict[str, bool] = {}
            for opts in per_need:
                fewest: tuple[tuple[str, bool], ...] = min(opts, key=len)
                combo.update(fewest)
            options[tuple(sorted(combo.items()))] = None
        out = []
        docs = self._boolean_docs()
        for settings in options:
            cmds = [f"setsebool -P {n} {'on' if v else 'off'}" for n, v in settings]
            fix = self._make("boolean", needs, want, cmds,
                             note("fix-boolean", names=", ".join(n for n, _ in settings)),
                             settings=settings, accepted=True,
                             described=tuple((n, docs[n]) for n, _ in settings if n in docs))
            if fix.verified:
                out.append(fix)
        return out

    def _boolean_docs(self) -> dict[str, str]:
        if self._descriptions is None:
            # only when a boolean is a candidate: its module imports the XML parser
            from selnet.policy.booldoc import boolean_descriptions

            self._descriptions = boolean_descriptions()
        return self._descriptions

    # -- port labels ------------------------------------------------------------------------
    def _own_types(self, n: Need) -> list[tuple[str, bool]]:
        """Port types the domain may use for this permission: (type, named directly)."""
        usable = self.facts.usable(n.scon.type, n.tclass, n.perm, self.bools)
        own = [(t, direct) for t, direct in usable.items() if t not in self.facts.generic]
        stem = n.domain.removesuffix("_t")
        # Its own service types first: named by a rule of its own, then sharing its name.
        own.sort(key=lambda td: (not td[1], -_shared_prefix(stem, td[0].removesuffix("_t")
                                                             .removesuffix("_port")),
                                 self.facts.port_count(td[0]), td[0]))
        return own

    def _port_labels(self, needs: Sequence[Need], want: Want, sit: Situation) -> list[Fix]:
        port_needs = [n for n in needs if n.port_check]
        if not port_needs or len(port_needs) != len(needs):
            return []
        n0 = port_needs[0]
        if any(n.scon.type != n0.scon.type or n.perm != n0.perm or n.proto != n0.proto
               for n in port_needs):
            return []
        assert n0.proto is not None
        proto = n0.proto
        ports = sorted({n.port for n in port_needs if n.port is not None})
        # The label the denial was decided against (as logged, for an AVC); the records of
        # the given policy decide between -a and -m.
        old_types = sorted({n.tcon.type for n in port_needs})
        labels = {p: port_label(self.policy, proto, p, with_shadowed=False) for p in ports}
        generic = all(t in self.facts.generic for t in old_types)
        out = self._evidence_labels(port_needs, want, proto, ports, old_types)
        # A port labeled for another service is relabeled only to serve on it (bind):
        # connecting to it means talking to that service.
        if n0.perm == "name_connect" or (not generic and n0.perm != "name_bind"):
            return out
        evidence = {f.changes[0].context for f in out
                    if isinstance(f.changes[0], AddPortcon | ModifyPortcon)}
        for rank, (t, direct) in enumerate(self._own_types(n0)[:4]):
            if t in evidence:
                continue
            if t in old_types and all(lab.type == t for lab in labels.values()):
                continue
            changes: list[Change] = [self._label_change(proto, p, t) for p in ports]
            cmds = [c.describe() for c in changes]
            why = note("fix-relabel-generic" if generic else "fix-relabel-service",
                       ports=", ".join(map(str, ports)), proto=proto, type=t,
                       old=", ".join(old_types),
                       direct="yes" if direct else "no")
            fix = self._make("port-label", needs, want, cmds, why, changes,
                             accepted=generic and direct, preference=rank,
                             domain_limit=NARROW_RELABEL_DOMAINS)
            if fix.verified:
                out.append(fix)
        return out

    def _evidence_labels(self, needs: Sequence[Need], want: Want, proto: str, ports: list[int],
                         old_types: list[str]) -> list[Fix]:
        """Relabels with evidence of what the port is: the label the log shows, or the port's
        type on another protocol (udp 443 beside tcp 443 http_port_t).  A client's denial is
        relabeled only so, never to some type the domain happens to reach.  When the domain
        may not use that type either, the fix adds the narrow rule."""
        n0 = needs[0]
        evidence: dict[str, str] = {}
        serving = n0.perm == "name_bind"
        for n in needs:
            # Who the remote service is, the log tells a client; a server serves on its own
            # type, whatever another service's label the port had.
            if n.logged_type and n.logged_type not in self.facts.generic and not serving:
                evidence.setdefault(n.logged_type, "logged")
        for p in ports:
            # the given policy's own label, when the log shows another (label-differs)
            here = port_label(self.policy, proto, p, with_shadowed=False).type
            if here not in old_types and here not in self.facts.generic:
                evidence.setdefault(here, "policy-label")
            for other in ("tcp", "udp", "sctp", "dccp"):
                if other != proto:
                    t = port_label(self.policy, other, p, with_shadowed=False).type
                    if t in self.facts.generic or t in old_types:
                        continue
                    if serving and not self._serves_on(n0.scon.type, t):
                        continue
                    evidence.setdefault(t, f"{other}-label")
        out = []
        for rank, (t, source) in enumerate(evidence.items()):
            changes: list[Change] = [self._label_change(proto, p, t) for p in ports]
            cmds = [c.describe() for c in changes]
            why = note("fix-relabel-evidence", ports=", ".join(map(str, ports)), proto=proto,
                       type=t, old=", ".join(old_types), source=source)
            fix = self._make("port-label", needs, want, cmds, why, changes, preference=rank,
                             domain_limit=NARROW_RELABEL_DOMAINS, accepted=True)
            if not fix.verified:
                rule = AddRule("allow", n0.scon.type, t, n0.tclass, frozenset({n0.perm}))
                te = rule.te()
                fix = self._make("port-label", needs, want, (*cmds, te), why, (*changes, rule),
                                 preference=rank, domain_limit=NARROW_RELABEL_DOMAINS,
                                 te=(te,), require=(n0.scon.type, t), accepted=True)
            if fix.verified:
                out.append(fix)
        return out

    def _serves_on(self, domain: str, t: str) -> bool:
        """Does a rule of the domain's own name port type ``t`` for name_bind (any protocol)?"""
        return any(self.facts.usable(domain, c, "name_bind", self.bools).get(t, False)
                   for c in ("tcp_socket", "udp_socket", "sctp_socket", "dccp_socket"))

    def _label_change(self, proto: str, port: int, t: str) -> AddPortcon | ModifyPortcon:
        """``semanage port -m`` for a port with a record of exactly its own (``-a`` would be
        refused), ``-a`` otherwise: a local record the kernel sees first."""
        rec = port_label(self.policy, proto, port).matched
        exact = isinstance(rec, Portcon) and rec.low == rec.high == port
        return ModifyPortcon(proto, port, port, t) if exact else AddPortcon(proto, port, port, t)

    def _new_port_type(self, needs: Sequence[Need], want: Want) -> list[Fix]:
        """A port type of the domain's own in a local module, and its semanage command."""
        port_needs = [n for n in needs if n.port_check]
        if not port_needs or len(port_needs) != len(needs):
            return []
        n0 = port_needs[0]
        assert n0.proto is not None
        if any(n.scon.type != n0.scon.type or n.proto != n0.proto for n in port_needs):
            return []
        ports = sorted({n.port for n in port_needs if n.port is not None})
        old_types = sorted({n.tcon.type for n in port_needs})
        if not all(t in self.facts.generic for t in old_types):
            return []
        name = n0.domain.removesuffix("_t") + "_port_t"
        if self.policy.snap.resolve_type(name) is not None:
            return []
        # The new type keeps the generic type's attributes: whoever reached the port
        # through them still does, and only the domain gains.
        attrs = tuple(sorted(self.policy.snap.type_attrs.get(old_types[0], ())))
        perms = sorted({n.perm for n in port_needs})
        decl = AddType(name, attrs)
        rule = AddRule("allow", n0.scon.type, name, n0.tclass, frozenset(perms))
        changes: list[Change] = [decl, rule]
        changes += [self._label_change(n0.proto, p, name) for p in ports]
        cil = (*decl.cil(), rule.cil())
        te = (*decl.te(), rule.te())
        cmds = (*cil, *(c.describe() for c in changes if isinstance(c, AddPortcon | ModifyPortcon)))
        why = note("fix-new-port-type", type=name, ports=", ".join(map(str, ports)),
                   proto=n0.proto)
        fix = self._make("new-port-type", needs, want, cmds, why, changes, cil=cil, te=te,
                         require=(n0.scon.type, *attrs))
        return [fix] if fix.verified else []

    # -- random ports ---------------------------------------------------------------------
    def _port_range(self, needs: Sequence[Need], sit: Situation) -> list[Fix]:
        ports = sorted(set(sit.ephemeral_ports) | {n.port for n in needs
                                                   if n.perm == "name_bind" and n.port})
        if not ports:
            return []
        low, high = self.env.local_port_range
        lo = max(min([low, *ports]), self.env.unprivileged_port_start)
        hi = max([high, *ports])
        ok = all(lo <= p <= hi for p in ports) and all(
            not NetEnv((lo, hi), self.env.unprivileged_port_start).requires_name_bind(p)
            for p in ports)
        cmds = (f'sysctl -w net.ipv4.ip_local_port_range="{lo} {hi}"',)
        why = note("fix-port-range", low=low, high=high, new_low=lo, new_high=hi)
        return [Fix("port-range", cmds, ok, None, why, 1, ("system-wide",))]

    # -- rules and interfaces ----------------------------------------------------------------
    def _rule(self, needs: Sequence[Need], want: Want, sit: Situation) -> list[Fix]:
        by: dict[tuple[str, str, str], set[str]] = {}
        for n in needs:
            by.setdefault((n.scon.type, n.tcon.type, n.tclass), set()).add(n.perm)
        rules = [AddRule("allow", s, t, c, frozenset(perms)) for (s, t, c), perms in by.items()]
        changes: list[Change] = list(rules)
        te = [r.te() for r in rules]
        cil = [r.cil() for r in rules]
        requires = sorted({x for s, t, _ in by for x in (s, t)})
        fix = self._make("rule", needs, want, (*te, *(f"; CIL: {x}" for x in cil)),
                         note("fix-rule-socket-from", creator=sit.socket_from)
                         if sit.socket_from else note("fix-rule"), changes, cil=tuple(cil),
                         te=tuple(te),
                         require=tuple(requires))
        return [fix]

    def _interface_index(self) -> object | None:
        if not self._ifx_loaded:
            self._ifx_loaded = True
            try:
                from selnet.fix.interfaces import InterfaceIndex

                self._ifx = InterfaceIndex.load()
            except Exception:  # no selinux-policy-dev headers: no interface fixes
                self._ifx = None
        return self._ifx

    def _interfaces(self, needs: Sequence[Need], want: Want) -> list[Fix]:
        from selnet.fix.interfaces import InterfaceIndex

        ifx = self._interface_index()
        if not isinstance(ifx, InterfaceIndex):
            return []
        d0 = needs[0].domain
        if any(n.domain != d0 or n.scon.type != d0 for n in needs):
            return []
        snap = self.policy.snap
        needed, attrs = [], {}
        for n in needs:
            target = "self" if n.tcon.type == n.scon.type else n.tcon.type
            needed.append((target, n.tclass, n.perm))
            if target != "self":
                attrs[target] = sorted(snap.type_attrs.get(n.tcon.type, ()),
                                       key=lambda a: len(snap.attr_types.get(a, ())))
        plan = ifx.find_for_rules(needed, target_attrs=attrs)
        if not plan.matches or plan.uncovered:
            return []
        changes: list[Change] = []
        for m in plan.matches:
            for tgt, c, p in m.grants:
                if tgt != "self" and snap.resolve_type(tgt) is None and tgt not in snap.attr_types:
                    return []  # an interface naming types this policy lacks
                if c not in SNAPSHOT_CLASSES or c not in snap.classes or p not in snap.classes[c]:
                    continue  # selnet decides the network classes; the rest is not its business
                changes.append(AddRule("allow", d0, tgt, c, frozenset({p})))
            for a in m.joined_attributes:
                if a in snap.attr_types:
                    changes.append(AddAttributeMember(d0, a))
        calls = tuple(m.call(d0) for m in plan.matches)
        fix = self._make("interface", needs, want, calls,
                         note("fix-interface", names=", ".join(m.name for m in plan.matches)),
                         changes, te=calls)
        return [fix] if fix.verified else []


def _flags(opens: Opens, domain_limit: int = NARROW_DOMAINS) -> tuple[str, ...]:
    flags = []
    if opens.generic:
        flags.append("generic")
    if len(opens.excess_domains) > domain_limit:
        flags.append("other-domains")
    if opens.every_port:
        flags.append("every-port")
    elif opens.excess_port_numbers > NARROW_PORTS:
        flags.append("many-ports")
    if opens.losses:
        flags.append("loses-label")
    if opens.takes_service_port:
        flags.append("takes-service-port")
    return tuple(flags)


def rank_key(f: Fix) -> tuple[object, ...]:
    """Verified first; then tier (0: the kinds people accept, narrow; 1: narrow; 2: broad,
    flagged); then the kind (boolean, port label, new port type, interface, rule, port
    range); then the candidate's own order (a domain's own service types first); then what
    it opens beyond the denied access; then fewer commands."""
    opens = f.opens
    excess = (len(opens.excess_domains), opens.excess_port_numbers) if opens else (0, 0)
    return (not f.verified, f.tier, KINDS.index(f.kind), f.preference, excess, len(f.commands))


def _dedup(fixes: Iterable[Fix]) -> list[Fix]:
    seen: dict[tuple[str, ...], Fix] = {}
    for f in fixes:
        seen.setdefault(f.commands, f)
    return list(seen.values())


def _shared_prefix(a: str, b: str) -> int:
    """Characters two names share at the start (``httpd`` and ``http``: 4)."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def chain_needs(chain: ChainResult) -> list[tuple[int, Need]]:
    """The denied checks of a chain that the syscall really reaches, as needs."""
    sc = chain.plan.scenario
    out = []
    for i, r in enumerate(chain.results):
        if not r.reached or r.decision.allowed:
            continue
        c = r.check
        port = proto = None
        if c.perm in PORT_PERMS and c.label is not None:
            ep = sc.bind if (c.perm == "name_bind" and sc.bind is not None) else sc.endpoint
            port, proto = ep.port, ep.proto
        out.append((i, Need(c.subject, c.target, c.tclass, c.perm, sc.domain.type, port, proto)))
    return out


def fix_chain(engine: FixEngine, chain: ChainResult) -> dict[int, list[Fix]]:
    """Fixes for each denied, reached check of a chain (by its index in the chain)."""
    return {i: engine.fixes([need]) for i, need in chain_needs(chain)}
