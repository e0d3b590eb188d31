"""Fix search, ranking and verification for a group of denials.

Kinds, and how each is verified before it is shown:

* ``boolean``   -- Decision.boolean_fixes; re-decided with the booleans set.  Its
  blast radius is the diff of the active allow rules with and without it.
* ``semanage-port`` -- relabel the port to a port type the domain may already
  use; re-decided against the new port type.  Verb: ``-m`` only when the
  policy has a record for exactly that port (``semanage port -m`` modifies a
  record with exactly that protocol/port/range; a single port inside a wider
  policy range such as 1024-65535 needs ``-a``, which adds a local record that
  the kernel then sees first, kernel-network-checks.md 6.4).
* ``sysctl``    -- ephemeral-port situations: a widened ``ip_local_port_range``;
  verified in the kernel model (``name_bind`` is not checked inside it).
* ``interface`` -- a refpolicy interface (selinux-policy-dev) that grants the
  access; verified like a rule, with the triples the interface grants.
* ``rule``      -- the narrowest CIL rule and its TE form.  Policies built from
  CIL are recompiled with the rule (secilc) and re-decided; otherwise the rule
  is evaluated in the model (TE allow added, constraints and typebounds still
  evaluated).

Ranking by what a fix opens up: a narrow boolean (no generic port type, at most
``NARROW_BOOLEAN_PAIRS`` domain x port pairs) first, then a port relabel, an
interface, a rule, and last a broad boolean.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from selnet.audit.diagnose import PORT_PERMS, Diagnoser, Diagnosis
from selnet.model.env import NetEnv
from selnet.policy.conditions import eval_cond
from selnet.policy.index import Policy
from selnet.policy.overlay import AddRule
from selnet.policy.snapshot import AVRule, Context

NARROW_BOOLEAN_PAIRS = 1024
TIERS = {"boolean": 0, "semanage-port": 1, "sysctl": 1, "interface": 2, "rule": 3,
         "boolean-broad": 4}

# scon, tcon (as the kernel resolves it now), class, perm
Denial = tuple[Context, Context, str, str]


@dataclass(frozen=True, slots=True)
class BooleanBlast:
    """What setting some booleans opens across the whole policy."""

    gained_rules: int
    revoked_rules: int
    domains: tuple[str, ...]  # sources of the rules it activates, expanded
    port_types: tuple[str, ...]
    generic_port_types: tuple[str, ...]
    port_numbers: int
    breadth: int  # (domain, target, perm) triples, ports counted per number
    sample: tuple[AVRule, ...]
    broad: bool


@dataclass(slots=True)
class Fix:
    kind: str
    title: str
    commands: list[str]
    breadth: int  # how much it opens: (domain, port-or-object, perm) triples
    verified: bool
    verify: str  # how it was verified
    grants: list[str] = field(default_factory=list)  # what else it opens
    alternatives: list[str] = field(default_factory=list)
    data: dict[str, object] = field(default_factory=dict)
    cil: list[str] = field(default_factory=list)  # rules to compile for verification
    denials: list[Denial] = field(default_factory=list)

    @property
    def tier(self) -> int:
        if self.kind == "boolean" and self.data.get("broad"):
            return TIERS["boolean-broad"]
        return TIERS.get(self.kind, 9)


def _shared_prefix(a: str, b: str) -> int:
    """Characters two names share at the start (``httpd`` and ``http``: 4)."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def denials_of(diags: Iterable[Diagnosis]) -> list[Denial]:
    out: dict[Denial, None] = {}
    for d in diags:
        if d.scon is None or d.tcon is None or d.logged_tcon is None:
            continue
        for v in d.verdicts:
            if v.decision is None or v.decision.allowed or v.obsolete is not None:
                continue
            tcon = d.tcon if v.perm in PORT_PERMS else d.logged_tcon
            out[(d.scon, tcon, d.tclass, v.perm)] = None
    return list(out)


class FixFinder:
    def __init__(self, diagnoser: Diagnoser, *, interfaces: object | None = None,
                 use_interfaces: bool = True) -> None:
        self.dx = diagnoser
        self.policy: Policy = diagnoser.policy
        self.facts = diagnoser.facts
        self.bools = diagnoser.bools
        self._ifx = interfaces
        self._ifx_loaded = interfaces is not None or not use_interfaces
        self._by_bool: dict[str, list[AVRule]] = {}
        for r in self.policy.snap.rules:
            if r.cond is not None and r.ruletype == "allow":
                for tok in set(r.cond):
                    self._by_bool.setdefault(tok, []).append(r)
        self._deciders: dict[tuple[tuple[str, bool], ...], object] = {}
        self._gain_cache: dict[tuple[str, str, str], frozenset[str]] = {}

    # -- helpers ---------------------------------------------------------------------
    def _decider(self, settings: tuple[tuple[str, bool], ...]) -> object:
        from selnet.decide.decision import Decider

        d = self._deciders.get(settings)
        if d is None:
            b = dict(self.bools)
            b.update(settings)
            d = self._deciders[settings] = Decider(self.policy, b)
        return d

    def _allowed_all(self, denials: list[Denial],
                     settings: tuple[tuple[str, bool], ...] = ()) -> bool:
        from selnet.decide.decision import Decider

        dec = self._decider(settings)
        assert isinstance(dec, Decider)
        return all(dec.decide(s, t, c, p).allowed for s, t, c, p in denials)

    def _interfaces(self) -> object | None:
        if not self._ifx_loaded:
            self._ifx_loaded = True
            try:
                from selnet.fix.interfaces import InterfaceIndex

                self._ifx = InterfaceIndex.load()
            except Exception:
                self._ifx = None
        return self._ifx

    def _target_weight(self, t: str) -> int:
        return max(1, self.facts.port_count(t)) if t in self.facts.port_types else 1

    # -- boolean fixes ---------------------------------------------------------------
    def boolean_blast(self, settings: tuple[tuple[str, bool], ...]) -> BooleanBlast:
        new = dict(self.bools)
        new.update(settings)
        gained: list[AVRule] = []
        lost: list[AVRule] = []
        seen: set[AVRule] = set()
        for name, _ in settings:
            for r in self._by_bool.get(name, ()):
                if r in seen:
                    continue
                seen.add(r)
                assert r.cond is not None
                before = eval_cond(r.cond, self.bools) == r.branch
                after = eval_cond(r.cond, new) == r.branch
                if after and not before:
                    gained.append(r)
                elif before and not after:
                    lost.append(r)
        domains: set[str] = set()
        port_types: set[str] = set()
        generic: set[str] = set()
        breadth = 0
        for r in gained:
            srcs = self.policy.expand(r.source)
            tgts = self.policy.expand(r.target)
            domains |= srcs
            w = 0
            for t in tgts:
                w += self._target_weight(t)
                if t in self.facts.port_types:
                    port_types.add(t)
                    if t in self.facts.generic:
                        generic.add(t)
            breadth += len(srcs) * w * len(r.perms)
        ports = sum(self.facts.port_count(t) for t in port_types)
        return BooleanBlast(len(gained), len(lost), tuple(sorted(domains)),
                            tuple(sorted(port_types)), tuple(sorted(generic)), ports, breadth,
                            tuple(gained[:6]), bool(generic) or breadth > NARROW_BOOLEAN_PAIRS)

    def boolean_fixes(self, diags: list[Diagnosis], denials: list[Denial]) -> list[Fix]:
        options: dict[tuple[tuple[str, bool], ...], None] = {}
        per_denial: list[list[tuple[tuple[str, bool], ...]]] = []
        for d in diags:
            for v in d.verdicts:
                if v.decision is not None and v.decision.boolean_fixes:
                    opts = [bf.settings for bf in v.decision.boolean_fixes]
                    per_denial.append(opts)
                    for o in opts:
                        options[o] = None
        if not options:
            return []
        covering = [o for o in options if self._allowed_all(denials, o)]
        if not covering and len(per_denial) > 1:  # combine: narrowest option per denial
            combo: dict[str, bool] = {}
            for opts in per_denial:
                best = min(opts, key=lambda o: self.boolean_blast(o).breadth)
                combo.update(best)
            merged = tuple(sorted(combo.items()))
            if self._allowed_all(denials, merged):
                covering = [merged]
        out = []
        domains_denied = {s.type for s, _, _, _ in denials}
        for o in covering:
            blast = self.boolean_blast(o)
            cmds = [f"setsebool -P {n} {'on' if v else 'off'}" for n, v in o]
            grants = []
            others = [x for x in blast.domains if x not in domains_denied]
            grants.append(f"{blast.gained_rules} allow rules become active")
            if blast.port_types:
                pts = blast.port_types
                grants.append(f"port types: {', '.join(pts[:6])}"
                              + (f" (+{len(pts) - 6} more)" if len(pts) > 6 else "")
                              + f" = {blast.port_numbers} port numbers")
            if blast.generic_port_types:
                grants.append("GENERIC port types: " + ", ".join(blast.generic_port_types))
            if others:
                grants.append(f"other domains: {', '.join(others[:6])}"
                              + (f" (+{len(others) - 6} more)" if len(others) > 6 else ""))
            if blast.revoked_rules:
                grants.append(f"and turns off {blast.revoked_rules} rules")
            names = " + ".join(f"{n}={'on' if v else 'off'}" for n, v in o)
            out.append(Fix("boolean", f"set boolean {names}", cmds, blast.breadth,
                           True, "re-decided with the boolean set", grants, [],
                           {"set": dict(o), "gained_rules": blast.gained_rules,
                            "revoked_rules": blast.revoked_rules, "domains": list(blast.domains),
                            "port_types": list(blast.port_types),
                            "generic_port_types": list(blast.generic_port_types),
                            "port_numbers": blast.port_numbers, "breadth": blast.breadth,
                            "broad": blast.broad,
                            "sample_rules": [r.sesearch() for r in blast.sample]},
                           denials=denials))
        out.sort(key=lambda f: (f.tier, f.breadth, len(f.commands)))
        return out[:3]

    # -- port relabel ------------------------------------------------------------------
    def _domains_gaining(self, t: str, tclass: str, perm: str) -> frozenset[str]:
        key = (t, tclass, perm)
        got = self._gain_cache.get(key)
        if got is None:
            names = set(self.policy.names_of(t))
            doms: set[str] = set()
            for r in self.policy.snap.rules:
                if r.tclass != tclass or r.ruletype != "allow" or perm not in r.perms:
                    continue
                if r.target not in names:
                    continue
                if r.cond is not None and eval_cond(r.cond, self.bools) != r.branch:
                    continue
                doms |= self.policy.expand(r.source)
            got = self._gain_cache[key] = frozenset(doms)
        return got

    def rank_port_types(self, domain: str, tclass: str, perm: str,
                        prefer_uninstalled: bool = False) -> list[str]:
        usable = self.dx.usable_port_types(domain, tclass, perm)
        stem = domain.removesuffix("_t")
        cands = []
        for t, direct in usable.items():
            if t in self.facts.generic:
                continue
            tstem = t.removesuffix("_t").removesuffix("_port")
            sim = _shared_prefix(stem, tstem)
            sim = sim if sim >= 3 else 0
            uninstalled = t not in self.facts.portcons_of
            cands.append(((not (prefer_uninstalled and uninstalled)), -sim, not direct,
                          self.facts.port_count(t), t))
        cands.sort()
        return [c[-1] for c in cands]

    def semanage_fix(self, diags: list[Diagnosis], denials: list[Denial]) -> Fix | None:
        port_denials = [x for x in denials if x[3] in PORT_PERMS]
        if not port_denials or len(port_denials) != len(denials):
            return None
        d0 = diags[0]
        proto = d0.protocol
        if proto not in ("tcp", "udp", "sctp", "dccp"):
            return None
        ports = sorted({d.port for d in diags if d.port is not None})
        if not ports:
            return None
        # Relabel only a port with a generic label: a service's port keeps its label.
        if any(d.tcon is None or d.tcon.type not in self.facts.generic for d in diags):
            return None
        perm = port_denials[0][3]
        ranked = self.rank_port_types(d0.domain, d0.tclass, perm,
                                      "port-label-not-installed" in d0.situations)
        verified: list[str] = []
        for t in ranked:
            if len(verified) >= 3:
                break
            trial = [(s, Context(tc.user, tc.role, t, tc.mls), c, p) for s, tc, c, p in denials]
            if self._allowed_all(trial):
                verified.append(t)
        if not verified:
            return None
        t = verified[0]
        cmds = []
        for port in ports:
            exact = any(pc.protocol == proto and pc.low == pc.high == port
                        for pc in self.policy.snap.portcons)
            verb = "-m" if exact else "-a"
            cmds.append(f"semanage port {verb} -t {t} -p {proto} {port}")
        gaining = self._domains_gaining(t, d0.tclass, perm)
        old = self._domains_gaining(d0.tcon.type, d0.tclass, perm) if d0.tcon else frozenset()
        new_doms = sorted(gaining - old)
        grants = [f"port{'s' if len(ports) > 1 else ''} {', '.join(map(str, ports))}/{proto} "
                  f"become {t} for every domain: {len(new_doms)} domain(s) gain {perm} on "
                  f"{'them' if len(ports) > 1 else 'it'}"
                  + (f" ({', '.join(new_doms[:5])}{', ...' if len(new_doms) > 5 else ''})"
                     if new_doms else "")]
        lost = sorted(old - gaining)
        if lost:
            grants.append(f"{len(lost)} domain(s) that could use the old label lose it: "
                          + ", ".join(lost[:5]))
        return Fix("semanage-port", f"label port {', '.join(map(str, ports))}/{proto} {t}",
                   cmds, max(1, len(new_doms)) * len(ports), True,
                   f"re-decided against port type {t}", grants,
                   [f"semanage port -a -t {a} -p {proto} {ports[0]}" for a in verified[1:]],
                   {"port_type": t, "ports": ports, "protocol": proto,
                    "verb": "-m" if cmds[0].split()[2] == "-m" else "-a"},
                   denials=denials)

    # -- ephemeral port range ----------------------------------------------------------
    def sysctl_fix(self, ports: list[int], env: NetEnv) -> Fix:
        low, high = env.local_port_range
        lo = max(min([low, *ports]), env.unprivileged_port_start)
        hi = max([high, *ports])
        new = NetEnv((lo, hi), env.unprivileged_port_start)
        ok = all(not new.requires_name_bind(p) for p in ports)
        return Fix("sysctl", "let the service pick its ports inside ip_local_port_range",
                   [f"# configure the service to bind inside {low}-{high} (or to port 0), or:",
                    f'sysctl -w net.ipv4.ip_local_port_range="{lo} {hi}"'],
                   len(ports), ok, "kernel model: name_bind is not checked inside the range",
                   [f"ports {lo}-{hi} become ephemeral for every program (no name_bind check)"],
                   data={"range": [lo, hi], "ports": ports})

    # -- rules and interfaces ----------------------------------------------------------
    def _allowed_with(self, changes: list[AddRule], denials: list[Denial]) -> bool:
        """Apply the rules to the policy (the overlay) and decide every denial again:
        constraints, typebounds and everything else the Decider knows still apply."""
        from selnet.decide.decision import Decider

        changed = self.policy.with_changes(*changes)
        dec = Decider(changed, self.bools)
        return all(dec.decide(s, t, c, p).allowed for s, t, c, p in denials)

    def rule_fix(self, denials: list[Denial]) -> Fix | None:
        if not denials:
            return None
        by: dict[tuple[str, str, str], list[str]] = {}
        for s, t, c, p in denials:
            by.setdefault((s.type, t.type, c), []).append(p)
        te, cil = [], []
        breadth = 0
        for (sname, tname, c), perms in by.items():
            ps = sorted(set(perms))
            ptext = ps[0] if len(ps) == 1 else "{ " + " ".join(ps) + " }"
            te.append(f"allow {sname} {tname}:{c} {ptext};")
            cil.append(f"(allow {sname} {tname} ({c} ({' '.join(ps)})))")
            breadth += len(ps) * self._target_weight(tname)
        changes = [AddRule("allow", sname, tname, c, frozenset(perms))
                   for (sname, tname, c), perms in by.items()]
        ok = self._allowed_with(changes, denials)
        return Fix("rule", "add the narrowest rule", [*cil, *(f"# TE: {x}" for x in te)], breadth,
                   ok, "rule applied to the policy (overlay) and every denial decided again"
                   if ok else "a constraint or typebounds still denies it: not a fix",
                   [], [], {"cil": cil, "te": te}, cil=cil, denials=denials)

    def interface_fix(self, denials: list[Denial]) -> Fix | None:
        ifx = self._interfaces()
        if ifx is None or not denials:
            return None
        from selnet.fix.interfaces import InterfaceIndex

        assert isinstance(ifx, InterfaceIndex)
        s0 = denials[0][0].type
        if any(s.type != s0 for s, _, _, _ in denials):
            return None
        needed = []
        attrs: dict[str, list[str]] = {}
        snap = self.policy.snap
        for s, t, c, p in denials:
            target = "self" if t.type == s.type else t.type
            needed.append((target, c, p))
            if target != "self":
                attrs[target] = sorted(snap.type_attrs.get(t.type, ()),
                                       key=lambda a: len(snap.attr_types.get(a, ())))
        plan = ifx.find_for_rules(needed, target_attrs=attrs)
        if not plan.matches or plan.uncovered:
            return None
        # Only interfaces whose names exist in this policy can be used with it.
        for m in plan.matches:
            for tgt, _, _ in m.grants:
                if tgt != "self" and snap.resolve_type(tgt) is None and tgt not in snap.attr_types:
                    return None
        ok = self._allowed_with([AddRule("allow", s0, tgt, c, frozenset({p}))
                                 for m in plan.matches for tgt, c, p in m.grants], denials)
        calls = [m.call(s0) for m in plan.matches]
        extra = sum(len(m.extra) for m in plan.matches)
        breadth = sum(len(m.grants) for m in plan.matches)
        grants = [f"{m.name} also grants {len(m.extra)} other permission(s)"
                  for m in plan.matches if m.extra]
        return Fix("interface", "refpolicy interface", calls, breadth + extra, ok,
                   "the interface's grants applied to the policy (overlay), decided again",
                   grants, [], {"interfaces": [m.name for m in plan.matches]}, denials=denials)
