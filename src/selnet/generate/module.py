"""`selnet generate NAME`: a module for a service's declared network needs, proven.

The permissions come from the kernel model: for each operation of the spec the model's
plan says which checks the kernel makes (socket permissions per syscall, name_bind,
node_bind, name_connect, capabilities), and the module grants exactly those, on the labels
the base policy gives.  A port with a generic type gets a port type of the service's own
(``NAME_port_t``, keeping the generic type's attributes) and its ``semanage port``
command; a port with a service's type is used as it is, with a warning naming the other
ports and domains that share the type.  Permissions no kernel checks are never granted.

The module is then layered on the base (its CIL read back through the overlay, with the
semanage labels applied), every operation is decided again as a full chain, and what it
opens beyond the spec is measured.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from selnet.analyses.porttypes import PolicyFacts
from selnet.analyses.profiles import Range, candidate_subjects, merge_ranges
from selnet.decide.chain import ChainResult, evaluate
from selnet.fix.interfaces import InterfaceIndex
from selnet.fix.opens import Measurer, Opens, Want
from selnet.generate.spec import Op
from selnet.kernel.checks import CAP_CLASS
from selnet.kernel.classes import socket_class
from selnet.model.env import NetEnv
from selnet.model.labels import port_map
from selnet.model.plan import Endpoint, Scenario
from selnet.policy.cilmodule import read_cil
from selnet.policy.index import Policy
from selnet.policy.overlay import AddPortcon, AddRoleType, AddRule, AddType, Change
from selnet.policy.snapshot import Context

ANY4 = ipaddress.IPv4Address("0.0.0.0")
LOOP4 = ipaddress.IPv4Address("127.0.0.1")


@dataclass(frozen=True, slots=True)
class Shared:
    """A port type the module uses that labels more than the spec's ports."""

    type: str
    proto: str
    other_ports: tuple[Range, ...]
    other_domains: tuple[str, ...]  # domains that may already use it the same way
    perm: str


@dataclass(frozen=True, slots=True)
class Generated:
    name: str
    domain: str
    types: tuple[AddType, ...]
    rules: tuple[AddRule, ...]
    labels: tuple[AddPortcon, ...]  # semanage port -a for the module's own port types
    role: str
    interfaces: tuple[str, ...]  # refpolicy interface calls covering the port rules
    chains: tuple[tuple[Op, ChainResult], ...]  # every operation, decided on base + module
    opens: Opens
    shared: tuple[Shared, ...]
    unapplied: tuple[str, ...]

    @property
    def all_allowed(self) -> bool:
        return all(ch.allowed for _, ch in self.chains)

    @property
    def beyond_spec(self) -> bool:
        return bool(self.shared) or bool(self.opens.excess_domains) or \
            self.opens.excess_port_numbers > 0


def _ctx(policy: Policy, domain: str) -> Context:
    level = policy.snap.users["system_u"].level if policy.snap.mls and \
        "system_u" in policy.snap.users else ""
    return Context("system_u", "system_r", domain, level)


def _scenario(op: Op, dom: Context, env: NetEnv) -> Scenario:
    if op.operation == "bind":
        return Scenario("listen", dom, Endpoint(ANY4, op.port, op.proto), env)
    return Scenario(op.operation, dom, Endpoint(LOOP4, op.port, op.proto), env)


def plan_module(base: Policy, name: str, ops: Sequence[Op], env: NetEnv | None = None,
                bools: Mapping[str, bool] | None = None,
                interfaces: object | None = None) -> tuple[list[Change], list[AddPortcon],
                                                           list[Shared], str]:
    """The module's changes (types, rules) and its semanage labels, from the model."""
    env = env or NetEnv()
    values = base.bool_values(None) if bools is None else dict(bools)
    facts = PolicyFacts(base)
    domain = f"{name}_t"
    if base.snap.resolve_type(domain) is not None:
        from selnet.errors import InputError

        raise InputError(f"the base policy already has a type {domain}")
    role = "system_r" if "system_r" in base.snap.role_types else sorted(base.snap.role_types)[0]
    attrs = tuple(a for a in ("domain",) if a in base.snap.attr_types)
    changes: list[Change] = [AddType(domain, attrs), AddRoleType(role, domain)]
    labels: list[AddPortcon] = []
    shared: list[Shared] = []
    own_port = f"{name}_port_t"
    own_attrs: tuple[str, ...] | None = None
    # A plan on the base with the new domain (its own type, no rules yet) tells which
    # checks each operation makes and on which labels.
    probe = base.with_changes(*changes)
    dom = _ctx(probe, domain)
    perms: dict[tuple[str, str], set[str]] = {}

    def grant(target: str, tclass: str, perm: str) -> None:
        perms.setdefault((target, tclass), set()).add(perm)

    for op in ops:
        plan = evaluate(probe, _scenario(op, dom, env), values).plan
        for c in plan.checks:
            if c.step in ("rx", "tx"):
                continue  # per-packet checks: only with labeled networking
            if c.spec.tclass == CAP_CLASS or c.spec.target == "socket":
                grant("self", c.tclass, c.perm)
            elif c.spec.target == "node":
                grant(c.target.type, c.tclass, c.perm)
            elif c.spec.target == "port":
                t = c.target.type
                if t in facts.generic:
                    if own_attrs is None:
                        own_attrs = tuple(sorted(base.snap.type_attrs.get(t, ())))
                    lab = AddPortcon(op.proto, op.port, op.port, own_port)
                    if lab not in labels:
                        labels.append(lab)
                    t = own_port
                else:
                    shared += _shared(base, facts, t, op, c.tclass, c.perm, ops)
                grant(t, c.tclass, c.perm)
    if own_attrs is not None:
        changes.append(AddType(own_port, own_attrs))
    for (target, tclass), ps in sorted(perms.items()):
        changes.append(AddRule("allow", domain, target, tclass, frozenset(ps)))
    return changes, labels, list(dict.fromkeys(shared)), role


def _shared(base: Policy, facts: PolicyFacts, t: str, op: Op, tclass: str, perm: str,
            ops: Sequence[Op]) -> list[Shared]:
    mine = {o.port for o in ops if o.proto == op.proto}
    pm = port_map(base)
    ranges = [(iv.low, iv.high) for iv in pm.intervals[op.proto] if iv.context.type == t]
    others = []
    for lo, hi in merge_ranges(ranges):
        for a, b in _minus((lo, hi), mine):
            others.append((a, b))
    if not others:
        return []
    doms = sorted(candidate_subjects(base, tclass, t, perm) & set(base.domains()))
    return [Shared(t, op.proto, tuple(others), tuple(doms), perm)]


def _minus(r: Range, points: set[int]) -> list[Range]:
    out, lo = [], r[0]
    for p in sorted(x for x in points if r[0] <= x <= r[1]):
        if p > lo:
            out.append((lo, p - 1))
        lo = p + 1
    if lo <= r[1]:
        out.append((lo, r[1]))
    return out


def cil_text(name: str, role: str, changes: Sequence[Change]) -> str:
    lines = [f"; {name}: generated by selnet generate, verified on its base"]
    for c in changes:
        if isinstance(c, AddType):
            lines += c.cil()
        elif isinstance(c, AddRoleType | AddRule):
            lines.append(c.cil())
    return "\n".join(lines) + "\n"


def generate(base: Policy, name: str, ops: Sequence[Op], env: NetEnv | None = None,
             bools: Mapping[str, bool] | None = None,
             interfaces: object | None = None) -> tuple[Generated, str]:
    env = env or NetEnv()
    values = base.bool_values(None) if bools is None else dict(bools)
    changes, labels, shared, role = plan_module(base, name, ops, env, values)
    cil = cil_text(name, role, changes)
    overlay, unapplied = read_cil(cil, base)
    changed = overlay.apply(base).with_changes(*labels) if labels else overlay.apply(base)
    domain = f"{name}_t"
    dom = _ctx(changed, domain)
    chains = tuple((op, evaluate(changed, _scenario(op, dom, env), values)) for op in ops)
    want = Want(frozenset({domain}),
                frozenset((socket_class(o.proto, base.snap.polcaps),
                           "name_bind" if o.operation == "bind" else "name_connect")
                          for o in ops),
                frozenset((o.proto, o.port) for o in ops))
    measured = Measurer(base, values, PolicyFacts(base)).measure(
        changed, [*overlay.changes, *labels], (), want)
    ifaces = _interfaces(base, domain, changes, interfaces)
    types = tuple(c for c in changes if isinstance(c, AddType))
    rules = tuple(c for c in changes if isinstance(c, AddRule))
    return Generated(name, domain, types, rules, tuple(labels), role, ifaces, chains, measured,
                     tuple(shared), tuple(u.describe() for u in unapplied)), cil


def _interfaces(base: Policy, domain: str, changes: Sequence[Change],
                interfaces: object | None) -> tuple[str, ...]:
    ifx = interfaces if interfaces is not None else InterfaceIndex.load()
    if not isinstance(ifx, InterfaceIndex):
        return ()
    needs = [(c.target, c.tclass, p) for c in changes if isinstance(c, AddRule)
             and c.target != "self" and base.snap.resolve_type(c.target) is not None
             for p in sorted(c.perms)]
    if not needs:
        return ()
    plan = ifx.find_for_rules(needs, target_attrs={})
    if plan.uncovered:
        return ()
    return tuple(m.call(domain) for m in plan.matches if not m.broad)
