"""A local policy module from chosen fixes, proven before it is written.

The module holds only the rules the chosen fixes need (narrow rules, a new port type, an
interface's grants as plain rules); the ``semanage``/``setsebool`` commands go beside it.
It is verified by reading its CIL back into an overlay (the same reader ``--policy BASE
--policy MODULE`` uses), applying it with the fixes' port labels and booleans, and deciding
every logged record again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from selnet.decide.decision import Decider
from selnet.fix.engine import Fix, Need
from selnet.model.labels import port_label
from selnet.policy.cilmodule import read_cil
from selnet.policy.index import Policy
from selnet.policy.overlay import AddPortcon, AddRule, AddType, Change, ModifyPortcon

MODULE_KINDS = ("rule", "new-port-type", "interface")


@dataclass(frozen=True, slots=True)
class ModulePlan:
    name: str
    rules: tuple[AddRule, ...]  # allow rules the module holds
    types: tuple[AddType, ...]  # types it declares (a new port type)
    commands: tuple[str, ...]  # semanage / setsebool, run beside it
    labels: tuple[Change, ...]  # the port label changes those commands make
    settings: tuple[tuple[str, bool], ...]
    from_interfaces: tuple[str, ...]  # interface calls whose grants the module spells out


@dataclass(frozen=True, slots=True)
class Verdict:
    need: Need
    allowed: bool


@dataclass(frozen=True, slots=True)
class ModuleCheck:
    verdicts: tuple[Verdict, ...]
    unapplied: tuple[str, ...]  # module statements the reader could not apply

    @property
    def ok(self) -> bool:
        return all(v.allowed for v in self.verdicts) and not self.unapplied


def plan_module(name: str, fixes: Sequence[Fix]) -> ModulePlan:
    """The module and commands for the chosen fixes (each group's best verified fix)."""
    rules: dict[AddRule, None] = {}
    types: dict[AddType, None] = {}
    commands: list[str] = []
    labels: list[Change] = []
    settings: dict[str, bool] = {}
    ifaces: list[str] = []
    for f in fixes:
        if f.kind in MODULE_KINDS:
            for c in f.changes:
                if isinstance(c, AddRule):
                    rules[c] = None
                elif isinstance(c, AddType):
                    types[c] = None
                elif isinstance(c, AddPortcon | ModifyPortcon):
                    labels.append(c)
                    commands.append(c.describe())
            if f.kind == "interface":
                ifaces.extend(f.commands)
        elif f.kind == "port-label":
            labels.extend(c for c in f.changes if isinstance(c, AddPortcon | ModifyPortcon))
            commands.extend(f.commands)
        elif f.kind == "boolean":
            settings.update(f.settings)
            commands.extend(f.commands)
        else:  # port-range: a sysctl, not policy
            commands.extend(f.commands)
    return ModulePlan(name, tuple(rules), tuple(types), tuple(dict.fromkeys(commands)),
                      tuple(labels), tuple(sorted(settings.items())), tuple(ifaces))


def check_module(base: Policy, bools: Mapping[str, bool], plan: ModulePlan, cil: str,
                 needs: Sequence[Need]) -> ModuleCheck:
    """Layer the module (its CIL, read back) and the commands on the policy; decide again."""
    overlay, unapplied = read_cil(cil, base)
    changed = overlay.apply(base).with_changes(*plan.labels) if plan.labels else overlay.apply(base)
    dec = Decider(changed, {**changed.snap.booleans, **bools, **dict(plan.settings)})
    verdicts = []
    for n in needs:
        tcon = n.tcon
        if n.port_check and plan.labels:
            assert n.proto is not None and n.port is not None
            tcon = port_label(changed, n.proto, n.port, with_shadowed=False).context
        verdicts.append(Verdict(n, dec.decide(n.scon, tcon, n.tclass, n.perm).allowed))
    return ModuleCheck(tuple(verdicts), tuple(u.statement for u in unapplied))


def _plan_allows(base: Policy, bools: Mapping[str, bool], plan: ModulePlan,
                 needs: Sequence[Need]) -> bool:
    """The plan's changes applied directly (no CIL round trip): are all needs allowed?"""
    changes: list[Change] = [*plan.types, *plan.rules, *plan.labels]
    changed = base.with_changes(*changes) if changes else base
    dec = Decider(changed, {**changed.snap.booleans, **bools, **dict(plan.settings)})
    for n in needs:
        tcon = n.tcon
        if n.port_check and plan.labels:
            assert n.proto is not None and n.port is not None
            tcon = port_label(changed, n.proto, n.port, with_shadowed=False).context
        if not dec.decide(n.scon, tcon, n.tclass, n.perm).allowed:
            return False
    return True


def choose_fixes(name: str, base: Policy, bools: Mapping[str, bool],
                 groups: Sequence[tuple[Sequence[Need], Sequence[Fix]]]) -> list[Fix]:
    """One fix per group such that the module allows every group's records together.

    Each group's best fix is verified alone; two can conflict (a port relabeled for one
    domain takes the port from another that reached it by its old type).  Groups are taken
    in order, each with the first of its ranked fixes that keeps every record chosen so far
    allowed; a group none of whose fixes fits keeps its best (the check then says which
    records stay denied)."""
    chosen: list[Fix] = []
    needs: list[Need] = []
    for group_needs, fixes in groups:
        if not fixes:
            continue
        pick = fixes[0]
        for f in fixes:
            if _plan_allows(base, bools, plan_module(name, [*chosen, f]),
                            [*needs, *group_needs]):
                pick = f
                break
        chosen.append(pick)
        needs.extend(group_needs)
    return chosen
